/* ir/tensor.h — tensors, op parameters and the op enum generated from ir/ops.def. */
#ifndef SX_TENSOR_H
#define SX_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/dtype.h"
#include "ir/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SX_MAX_DIMS 4
#define SX_MAX_SRC 4
#define SX_MAX_NAME 48

typedef enum sx_op {
    SX_OP_NONE = 0, /* leaf: weight, input, KV cache */
#define SX_OP(NAME, nsrc, nopt, params) SX_OP_##NAME,
#include "ir/ops.def"
#undef SX_OP
    SX_OP_COUNT
} sx_op;

typedef enum sx_rope_mode {
    SX_ROPE_NORMAL = 0, /* rotate adjacent pairs (x0,x1),(x2,x3)... (llama GGUF) */
    SX_ROPE_NEOX = 2,   /* rotate halves (x_i, x_{i+d/2}) (qwen2/qwen3, EAGLE-3) */
} sx_rope_mode;

typedef struct { float eps; } sx_params_norm;
typedef struct { int32_t mode; int32_t n_dims; float freq_base; float freq_scale; } sx_params_rope;
typedef struct { float scale; int32_t n_past; } sx_params_attn;
typedef struct { int32_t k; } sx_params_top_k;
typedef struct { int32_t dim; } sx_params_concat;
typedef struct { int32_t dtype; } sx_params_copy;
typedef struct { int32_t unused; } sx_params_none;

typedef union sx_op_params {
    sx_params_none none;
    sx_params_norm norm;
    sx_params_rope rope;
    sx_params_attn attn;
    sx_params_top_k top_k;
    sx_params_concat concat;
    sx_params_copy copy;
} sx_op_params;

typedef enum sx_tensor_role {
    SX_ROLE_INTERMEDIATE = 0, /* produced by a node; memory from the planner */
    SX_ROLE_WEIGHT,           /* persistent, read-only, lives in a buffer */
    SX_ROLE_KV,               /* persistent, written by SET_ROWS */
    SX_ROLE_INPUT,            /* host data uploaded before compute */
    SX_ROLE_OUTPUT,           /* intermediate kept alive for download */
} sx_tensor_role;

struct sx_buffer;

typedef struct sx_tensor {
    sx_dtype dtype;
    int64_t ne[SX_MAX_DIMS]; /* elements per dim; unused dims are 1 */
    size_t nb[SX_MAX_DIMS];  /* byte strides; nb[0] = bytes per block */
    sx_op op;
    struct sx_tensor *src[SX_MAX_SRC];
    sx_op_params params;
    sx_tensor_role role;

    /* views: a window onto view_src (always the root, never another view) */
    struct sx_tensor *view_src;
    size_t view_offs;

    /* storage (roots only): a backend buffer and an offset into it. Weights
     * and KV have it from creation; intermediates get it from the planner. */
    struct sx_buffer *buffer;
    size_t offset;

    const void *host_data; /* INPUT: host bytes to upload (graph-owned) */
    int device;            /* placement index in the scheduler (-1 = unset) */
    int index;             /* position in the graph's node list (-1 = leaf) */
    int live_from;         /* planner: first node index needing the bytes (-1 = derive) */
    int live_until;        /* planner: last node index needing them, at least (-1 = derive from the readers) */
    char name[SX_MAX_NAME];
} sx_tensor;

const char *sx_op_name(sx_op op);
int sx_op_n_src(sx_op op);
int sx_op_n_src_optional(sx_op op);

/* Shape/dtype rule of an op: fills dst's dtype and ne from its sources and
 * params (already set on dst). Returns SX_ERR_INVALID_ARG with a message
 * when the sources do not fit. One function per op, generated prototypes. */
sx_status sx_op_check(sx_tensor *dst);

int64_t sx_tensor_nelements(const sx_tensor *t);
int64_t sx_tensor_nrows(const sx_tensor *t); /* ne1*ne2*ne3 */
size_t sx_tensor_nbytes(const sx_tensor *t); /* span covered, from strides */
bool sx_tensor_is_contiguous(const sx_tensor *t);
/* Fills nb[] for a contiguous layout of t->dtype and t->ne. */
void sx_tensor_set_contiguous_strides(sx_tensor *t);
/* The tensor that owns storage: view_src for views, t otherwise. */
static inline sx_tensor *sx_tensor_root(sx_tensor *t) { return t->view_src ? t->view_src : t; }
/* Byte offset of t's first element inside its root's buffer. */
size_t sx_tensor_buffer_offset(const sx_tensor *t);
/* "q4_k [576, 1536, 1, 1]" into buf. */
const char *sx_tensor_describe(const sx_tensor *t, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
