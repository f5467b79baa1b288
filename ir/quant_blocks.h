/* ir/quant_blocks.h — byte layout of the GGUF block-quantised types.
 * Identical to the on-disk layout, so weights are used straight from the
 * mmap'd file. Sizes are checked against ir/dtype.def at compile time. */
#ifndef SX_QUANT_BLOCKS_H
#define SX_QUANT_BLOCKS_H

#include <stdint.h>

typedef uint16_t sx_fp16_bits;

#define SX_QK 32   /* elements per block, legacy types */
#define SX_QK_K 256 /* elements per super-block, K types */

/* x[j] = (q[j] - 8) * d; low nibbles hold j < 16, high nibbles j >= 16 */
typedef struct { sx_fp16_bits d; uint8_t qs[SX_QK / 2]; } sx_block_q4_0;
/* x[j] = q[j] * d + m; nibble order as q4_0 */
typedef struct { sx_fp16_bits d, m; uint8_t qs[SX_QK / 2]; } sx_block_q4_1;
/* x[j] = q[j] * d */
typedef struct { sx_fp16_bits d; int8_t qs[SX_QK]; } sx_block_q8_0;
/* x[j] = (q[j] - 16) * d; q = nibble (order as q4_0) | bit j of qh (little-endian
 * 32-bit word) << 4 */
typedef struct { sx_fp16_bits d; uint8_t qh[4]; uint8_t qs[SX_QK / 2]; } sx_block_q5_0;
/* x[j] = q[j] * d + m; q as q5_0 */
typedef struct { sx_fp16_bits d, m; uint8_t qh[4]; uint8_t qs[SX_QK / 2]; } sx_block_q5_1;
/* 8 sub-blocks of 32; 6-bit scale and min per sub-block packed in scales[12];
 * x = d*sc*q - dmin*m; each 32 bytes of qs hold two sub-blocks (low, high nibble) */
typedef struct { sx_fp16_bits d, dmin; uint8_t scales[12]; uint8_t qs[SX_QK_K / 2]; } sx_block_q4_k;
/* q4_k with a 5th bit: scales, mins and qs as q4_k; element l of 64-chunk c
 * (0..3) takes bit 2c (first 32, low nibble) or 2c+1 (next 32, high nibble)
 * of qh[l] as bit 4; x = d*sc*q - dmin*m */
typedef struct { sx_fp16_bits d, dmin; uint8_t scales[12]; uint8_t qh[SX_QK_K / 8]; uint8_t qs[SX_QK_K / 2]; } sx_block_q5_k;
/* 16 sub-blocks of 16; 6-bit q = low 4 bits in ql, high 2 bits in qh, minus 32;
 * x = d * scales[sub] * q */
typedef struct { uint8_t ql[SX_QK_K / 2]; uint8_t qh[SX_QK_K / 4]; int8_t scales[SX_QK_K / 16]; sx_fp16_bits d; } sx_block_q6_k;
/* 16 sub-blocks of 16; element i: 2-bit q = bits 2*((i % 128) / 32) of
 * qs[32 * (i / 128) + i % 32]; scales[i / 16] = 4-bit scale | 4-bit min << 4;
 * x = d * (sc & 15) * q - dmin * (sc >> 4) */
typedef struct { uint8_t scales[SX_QK_K / 16]; uint8_t qs[SX_QK_K / 4]; sx_fp16_bits d, dmin; } sx_block_q2_k;
/* 16 sub-blocks of 16; element i: low 2 bits of q as q2_k, bit 2 of q = bit
 * (i / 32) of hmask[i % 32]; 6-bit scale s of sub-block i / 16 packed in
 * scales[12] (low 4 bits: scales[s % 8] >> 4 * (s / 8); high 2 bits:
 * scales[8 + s % 4] >> 2 * (s / 4)); x = d * (s - 32) * (q - 4) */
typedef struct { uint8_t hmask[SX_QK_K / 8]; uint8_t qs[SX_QK_K / 4]; uint8_t scales[12]; sx_fp16_bits d; } sx_block_q3_k;
/* x[j] = d * sx_iq4nl_values[q[j]]; nibble order as q4_0 */
typedef struct { sx_fp16_bits d; uint8_t qs[SX_QK / 2]; } sx_block_iq4_nl;
/* 8 sub-blocks of 32, each as an iq4_nl block's nibbles (qs + 16 * sub) with
 * scale d * (ls - 32), ls = 4 bits of scales_l[sub / 2] >> 4 * (sub % 2) |
 * 2 bits of scales_h >> 2 * sub, << 4 */
typedef struct { sx_fp16_bits d; uint16_t scales_h; uint8_t scales_l[SX_QK_K / 64]; uint8_t qs[SX_QK_K / 2]; } sx_block_iq4_xs;

/* the 16 values of a 4-bit non-linear code (iq4_nl, iq4_xs) */
#define SX_IQ4NL_VALUES {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

#ifdef __cplusplus
#define SX_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define SX_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif
SX_STATIC_ASSERT(sizeof(sx_block_q4_0) == 18, "q4_0 block size");
SX_STATIC_ASSERT(sizeof(sx_block_q4_1) == 20, "q4_1 block size");
SX_STATIC_ASSERT(sizeof(sx_block_q8_0) == 34, "q8_0 block size");
SX_STATIC_ASSERT(sizeof(sx_block_q4_k) == 144, "q4_k block size");
SX_STATIC_ASSERT(sizeof(sx_block_q6_k) == 210, "q6_k block size");
SX_STATIC_ASSERT(sizeof(sx_block_q5_0) == 22, "q5_0 block size");
SX_STATIC_ASSERT(sizeof(sx_block_q5_1) == 24, "q5_1 block size");
SX_STATIC_ASSERT(sizeof(sx_block_q5_k) == 176, "q5_k block size");
SX_STATIC_ASSERT(sizeof(sx_block_q2_k) == 84, "q2_k block size");
SX_STATIC_ASSERT(sizeof(sx_block_q3_k) == 110, "q3_k block size");
SX_STATIC_ASSERT(sizeof(sx_block_iq4_nl) == 18, "iq4_nl block size");
SX_STATIC_ASSERT(sizeof(sx_block_iq4_xs) == 136, "iq4_xs block size");

#endif
