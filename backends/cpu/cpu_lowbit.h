/* backends/cpu/cpu_lowbit.h — matmul kernels for the low-bit weight types
 * Q2_K, Q3_K (x q8k activations) and IQ4_NL (x q8), IQ4_XS (x q8k), written
 * in plain C.
 *
 * The scalar table's kernels (cpu_simd.c); the AVX2 and AVX-512 tables use
 * the intrinsics versions in cpu_simd_avx2.c, which follow the same steps.
 * Per weight block the codes are unpacked into an int8 array (the IQ4 types
 * through their 16-entry value table), then every sub-block is one int8 x
 * int8 dot product with an int32 sum (exact in any summation order), scaled
 * by the integer sub-block scale; the float work per block is a fixed
 * sequence. One activation row per call, so a column's result never depends
 * on the tile it is computed in (tiles_exact holds, batch invariance).
 * Rules as ir/dtype.c's dequantisers (layouts in ir/quant_blocks.h).
 * Tested by tests/test_cpu_fast.c on every level. */
#ifndef SX_CPU_LOWBIT_H
#define SX_CPU_LOWBIT_H

#include "backends/cpu/cpu_fast.h"

#include <string.h>

static const int8_t sx_lb_iq4nl[16] = SX_IQ4NL_VALUES;

/* sum_l q[l] * x[l] over n (16 or 32) int8 pairs */
static inline int sx_lb_dot(const int8_t *q, const int8_t *x, int n) {
    int s = 0;
    for (int l = 0; l < n; l++) s += q[l] * x[l];
    return s;
}

/* the 2 low bits of q2_k / q3_k element i (ir/quant_blocks.h) into q[i] */
static inline void sx_lb_unpack2(const uint8_t qs[64], int8_t q[256]) {
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) q[128 * n + 32 * j + l] = (int8_t)((qs[32 * n + l] >> (2 * j)) & 3);
}

/* 32 iq4 codes (16 bytes, low nibbles first) -> values */
static inline void sx_lb_unpack_iq4(const uint8_t qs[16], int8_t q[32]) {
    for (int j = 0; j < 16; j++) {
        q[j] = sx_lb_iq4nl[qs[j] & 0xF];
        q[j + 16] = sx_lb_iq4nl[qs[j] >> 4];
    }
}

/* q8k activation row (cpu_fast.h): qs[K], d[K/256], bsums[K/16] */
#define SX_LB_Q8K(x, K, xq, xd, xbs)                                            \
    const int8_t *xq = (const int8_t *)(x);                                     \
    const float *xd = (const float *)((const char *)(x) + (K));                 \
    const int16_t *xbs = (const int16_t *)(xd + (K) / 256)

/* q2_k: x = d * sc * q - dmin * m; the mins through the activation bsums */
static void sx_lb_dot_q2_k(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    SX_LB_Q8K(x, K, xq, xd, xbs);
    for (int r = 0; r < nr; r++) {
        const sx_block_q2_k *w = (const sx_block_q2_k *)((const char *)W + r * ws);
        float acc = 0.0f;
        for (int64_t b = 0; b < K / 256; b++) {
            int8_t q[256];
            sx_lb_unpack2(w[b].qs, q);
            int isum = 0, msum = 0;
            for (int s = 0; s < 16; s++) {
                isum += (w[b].scales[s] & 0xF) * sx_lb_dot(q + 16 * s, xq + 256 * b + 16 * s, 16);
                msum += (w[b].scales[s] >> 4) * xbs[16 * b + s];
            }
            acc += xd[b] * (sx_fp16_to_fp32(w[b].d) * (float)isum - sx_fp16_to_fp32(w[b].dmin) * (float)msum);
        }
        out[r] = acc;
    }
}

/* q3_k: x = d * (sc - 32) * (q - 4), q = 2 low bits | hmask bit << 2 */
static void sx_lb_dot_q3_k(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    SX_LB_Q8K(x, K, xq, xd, xbs);
    (void)xbs;
    for (int r = 0; r < nr; r++) {
        const sx_block_q3_k *w = (const sx_block_q3_k *)((const char *)W + r * ws);
        float acc = 0.0f;
        for (int64_t b = 0; b < K / 256; b++) {
            int8_t q[256];
            sx_lb_unpack2(w[b].qs, q);
            for (int i = 0; i < 256; i++) q[i] = (int8_t)(q[i] + (((w[b].hmask[i % 32] >> (i / 32)) & 1) << 2) - 4);
            const uint8_t *sc = w[b].scales;
            int isum = 0;
            for (int s = 0; s < 16; s++) {
                const int ls = ((sc[s % 8] >> (4 * (s / 8))) & 0xF) | (((sc[8 + s % 4] >> (2 * (s / 4))) & 3) << 4);
                isum += (ls - 32) * sx_lb_dot(q + 16 * s, xq + 256 * b + 16 * s, 16);
            }
            acc += xd[b] * (sx_fp16_to_fp32(w[b].d) * (float)isum);
        }
        out[r] = acc;
    }
}

/* iq4_nl x q8 (ds pairs: d, d * sum) */
static void sx_lb_dot_iq4_nl(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    const int8_t *xq = (const int8_t *)x;
    const float *ds = (const float *)((const char *)x + K);
    for (int r = 0; r < nr; r++) {
        const sx_block_iq4_nl *w = (const sx_block_iq4_nl *)((const char *)W + r * ws);
        float acc = 0.0f;
        for (int64_t b = 0; b < K / 32; b++) {
            int8_t q[32];
            sx_lb_unpack_iq4(w[b].qs, q);
            acc += sx_fp16_to_fp32(w[b].d) * ds[2 * b] * (float)sx_lb_dot(q, xq + 32 * b, 32);
        }
        out[r] = acc;
    }
}

/* iq4_xs: 8 iq4_nl-coded sub-blocks of 32 with 6-bit scales (minus 32) */
static void sx_lb_dot_iq4_xs(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    SX_LB_Q8K(x, K, xq, xd, xbs);
    (void)xbs;
    for (int r = 0; r < nr; r++) {
        const sx_block_iq4_xs *w = (const sx_block_iq4_xs *)((const char *)W + r * ws);
        float acc = 0.0f;
        for (int64_t b = 0; b < K / 256; b++) {
            int isum = 0;
            for (int s = 0; s < 8; s++) {
                int8_t q[32];
                sx_lb_unpack_iq4(w[b].qs + 16 * s, q);
                const int ls = ((w[b].scales_l[s / 2] >> (4 * (s % 2))) & 0xF) | (((w[b].scales_h >> (2 * s)) & 3) << 4);
                isum += (ls - 32) * sx_lb_dot(q, xq + 256 * b + 32 * s, 32);
            }
            acc += xd[b] * (sx_fp16_to_fp32(w[b].d) * (float)isum);
        }
        out[r] = acc;
    }
}

/* tile form (cpu_fast.h sx_cpu_gemm_fn): one activation row at a time */
#define SX_LB_GEMM(name)                                                                              \
    static void name##_gemm(int64_t K, const void *W, size_t ws, int nr, const void *x, size_t xs, int nc, \
                            float *y, int64_t ldy) {                                                  \
        for (int c = 0; c < nc; c++) name(K, W, ws, nr, (const char *)x + c * xs, y + c * ldy);       \
    }
SX_LB_GEMM(sx_lb_dot_q2_k)
SX_LB_GEMM(sx_lb_dot_q3_k)
SX_LB_GEMM(sx_lb_dot_iq4_nl)
SX_LB_GEMM(sx_lb_dot_iq4_xs)
#undef SX_LB_GEMM

/* designated initialisers for a level's gemm table */
#define SX_CPU_LOWBIT_GEMMS                                  \
    [SX_DTYPE_Q2_K] = sx_lb_dot_q2_k_gemm,                   \
    [SX_DTYPE_Q3_K] = sx_lb_dot_q3_k_gemm,                   \
    [SX_DTYPE_IQ4_NL] = sx_lb_dot_iq4_nl_gemm,               \
    [SX_DTYPE_IQ4_XS] = sx_lb_dot_iq4_xs_gemm

#endif
