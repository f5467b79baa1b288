/* ir/dtype.h — element types: one table (ir/dtype.def) used everywhere. */
#ifndef SX_DTYPE_H
#define SX_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/quant_blocks.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sx_dtype {
#define SX_DTYPE(NAME, str, ggml, bs, ts, q) SX_DTYPE_##NAME,
#include "ir/dtype.def"
#undef SX_DTYPE
    SX_DTYPE_COUNT
} sx_dtype;

typedef struct sx_dtype_info {
    const char *name;  /* "q4_k" */
    int ggml_type;     /* id used in GGUF files */
    int block_size;    /* elements per block (1 for plain types) */
    int type_size;     /* bytes per block */
    bool quantized;
} sx_dtype_info;

/* Table entry of a dtype; NULL for an out-of-range value. */
const sx_dtype_info *sx_dtype_get(sx_dtype t);
const char *sx_dtype_name(sx_dtype t);
/* Maps a GGUF/ggml type id to a dtype; false when the id is not supported. */
bool sx_dtype_from_ggml(int ggml_type, sx_dtype *out);
/* Parses "q4_k", "F16", ... (case-insensitive); false when unknown. */
bool sx_dtype_from_name(const char *name, sx_dtype *out);
/* Bytes of a row of n elements; 0 when n is not a multiple of the block size. */
size_t sx_dtype_row_size(sx_dtype t, int64_t n);

/* Reference conversions (scalar, exact rules of the formats). n must be a
 * multiple of the block size. Used by the CPU reference backend, tests and
 * the model writer. quantize_row uses plain round-to-nearest. */
void sx_dtype_dequantize_row(sx_dtype t, const void *src, float *dst, int64_t n);
void sx_dtype_quantize_row(sx_dtype t, const float *src, void *dst, int64_t n);

/* Scalar IEEE half and bfloat16 conversions (round to nearest even). */
float sx_fp16_to_fp32(uint16_t h);
uint16_t sx_fp32_to_fp16(float f);
float sx_bf16_to_fp32(uint16_t h);
uint16_t sx_fp32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
