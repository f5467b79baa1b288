/* backends/cpu/cpu_lowbit.h — matmul kernels for the low-bit weight types
 * Q2_K, Q3_K (x q8k activations) and IQ4_NL (x q8), IQ4_XS (x q8k), written
 * in plain C.
 *
 * The scalar table's kernels (cpu_simd.c); the AVX2 and AVX-512 tables use
 * the intrinsics versions in cpu_simd_avx2.c, which follow the same steps:
 * every sub-block is one integer dot product of codes (the IQ4 types through
 * their 16-entry value table) and int8 activations with an int32 sum (exact
 * in any summation order), scaled by the integer sub-block scale; the float
 * work per block is a fixed sequence. One activation row per call, so a column's result never depends
 * on the tile it is computed in (tiles_exact holds, batch invariance).
 * Rules as ir/dtype.c's dequantisers (layouts in ir/quant_blocks.h).
 * Tested by tests/test_cpu_fast.c on every level. */
#ifndef SX_CPU_LOWBIT_H
#define SX_CPU_LOWBIT_H

#include "backends/cpu/cpu_fast.h"

#include <string.h>

/* q8k activation row (cpu_fast.h): qs[K], d[K/256], bsums[K/16] */
#define SX_LB_Q8K(x, K, xq, xd, xbs)                                            \
    const int8_t *xq = (const int8_t *)(x);                                     \
    const float *xd = (const float *)((const char *)(x) + (K));                 \
    const int16_t *xbs = (const int16_t *)(xd + (K) / 256)

/* q2_k (kind 0: x = d sc q - dmin m) and q3_k (kind 1: x = d (sc - 32)
 * (q - 4), q = 2 low bits | hmask bit << 2): unsigned codes times x per
 * sub-block of 16; q2_k's mins and q3_k's -4 through the activation bsums */
static inline void sx_lb_dot_k2bit(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out, const int kind) {
    SX_LB_Q8K(x, K, xq, xd, xbs);
    const size_t bsz = kind ? sizeof(sx_block_q3_k) : sizeof(sx_block_q2_k);
    for (int r = 0; r < nr; r++) {
        float acc = 0.0f;
        for (int64_t b = 0; b < K / 256; b++) {
            const char *blk = (const char *)W + r * ws + b * bsz;
            const sx_block_q2_k *w2 = (const sx_block_q2_k *)blk;
            const sx_block_q3_k *w3 = (const sx_block_q3_k *)blk;
            const uint8_t *qs = kind ? w3->qs : w2->qs;
            const int8_t *xb = xq + 256 * b;
            const int16_t *bs = xbs + 16 * b;
            int isum = 0, msum = 0;
            for (int n = 0; n < 2; n++)
                for (int g = 0; g < 4; g++) { /* elements 128 n + 32 g + l: 2-bit field g of qs[32 n + l] */
                    const uint8_t *q = qs + 32 * n;
                    const int8_t *xs = xb + 128 * n + 32 * g;
                    /* masks, not shifts, in the inner loop: the masked field is code << 2g, so
                     * its dot product is an exact multiple of 4^g */
                    const int m = 3 << (2 * g), hb = 1 << (4 * n + g);
                    int dot[2];
                    for (int h = 0; h < 2; h++) {
                        const uint8_t *qh = q + 16 * h, *hm = kind ? w3->hmask + 16 * h : qh;
                        const int8_t *xh = xs + 16 * h;
                        int lo = 0, hi = 0;
                        for (int l = 0; l < 16; l++) {
                            lo += (qh[l] & m) * xh[l];
                            if (kind) hi += (hm[l] & hb) ? xh[l] : 0;
                        }
                        dot[h] = (lo >> (2 * g)) + 4 * hi;
                    }
                    for (int h = 0; h < 2; h++) {
                        const int s = 8 * n + 2 * g + h;
                        if (kind) {
                            const uint8_t *sc = w3->scales;
                            const int ls = ((sc[s % 8] >> (4 * (s / 8))) & 0xF) | (((sc[8 + s % 4] >> (2 * (s / 4))) & 3) << 4);
                            isum += (ls - 32) * (dot[h] - 4 * bs[s]);
                        } else {
                            isum += (w2->scales[s] & 0xF) * dot[h];
                            msum += (w2->scales[s] >> 4) * bs[s];
                        }
                    }
                }
            if (kind) acc += xd[b] * (sx_fp16_to_fp32(w3->d) * (float)isum);
            else acc += xd[b] * (sx_fp16_to_fp32(w2->d) * (float)isum - sx_fp16_to_fp32(w2->dmin) * (float)msum);
        }
        out[r] = acc;
    }
}
static void sx_lb_dot_q2_k(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    sx_lb_dot_k2bit(K, W, ws, nr, x, out, 0);
}
static void sx_lb_dot_q3_k(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    sx_lb_dot_k2bit(K, W, ws, nr, x, out, 1);
}

static const int8_t sx_lb_iq4nl[16] = SX_IQ4NL_VALUES;

/* 32 iq4 codes (16 bytes, low nibbles first) times 32 int8 x */
static inline int sx_lb_dot_iq4(const uint8_t qs[16], const int8_t *x) {
    int s = 0;
    for (int j = 0; j < 16; j++) s += sx_lb_iq4nl[qs[j] & 0xF] * x[j] + sx_lb_iq4nl[qs[j] >> 4] * x[j + 16];
    return s;
}

/* iq4_nl x q8 (ds pairs: d, d * sum) */
static void sx_lb_dot_iq4_nl(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    const int8_t *xq = (const int8_t *)x;
    const float *ds = (const float *)((const char *)x + K);
    for (int r = 0; r < nr; r++) {
        const sx_block_iq4_nl *w = (const sx_block_iq4_nl *)((const char *)W + r * ws);
        float acc = 0.0f;
        for (int64_t b = 0; b < K / 32; b++) acc += sx_fp16_to_fp32(w[b].d) * ds[2 * b] * (float)sx_lb_dot_iq4(w[b].qs, xq + 32 * b);
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
                const int ls = ((w[b].scales_l[s / 2] >> (4 * (s % 2))) & 0xF) | (((w[b].scales_h >> (2 * s)) & 3) << 4);
                isum += (ls - 32) * sx_lb_dot_iq4(w[b].qs + 16 * s, xq + 256 * b + 32 * s);
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
