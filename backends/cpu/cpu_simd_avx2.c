/* backends/cpu/cpu_simd_avx2.c — AVX2 + FMA + F16C matmul kernels.
 * Compiled with -mavx2 -mfma -mf16c; only called after the run-time check in
 * cpu_simd.c. Kernels compute tiles of nr (1..4) weight rows x nc (1..2)
 * activation rows: the activation block is loaded once per 4 rows (decode)
 * and the weight unpacking is shared by 2 activation rows (prefill).
 *
 * Integer products: _mm256_maddubs_epi16 needs an unsigned first operand.
 * 4-bit and 6-bit weights are unsigned (offsets are applied through the
 * activation block sums: q4_0 -8*s, q4_1 +m*s, q6_k -32*bsum, q4_k -m*bsum;
 * q5_0/q5_1/q5_k as q4_0/q4_1/q4_k with the 5th bit OR-ed into the codes;
 * q3_k -4*bsum; iq4_nl/iq4_xs as |v| with the sign moved onto x);
 * q8_0 uses |w| and sign(w)*x. No int16 saturation: |q| <= 128, |x| <= 127,
 * so a pair sum is <= 2*128*127 = 32512.
 * Tested by tests/test_cpu_fast.c (SPECEXIT_CPU_SIMD / sx_cpu_simd_force).
 */
#include "backends/cpu/cpu_fast.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define SX_INLINE static inline __attribute__((always_inline))

SX_INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

SX_INLINE float f16(uint16_t h) { return _cvtsh_ss(h); }

/* Instantiates name(K, W, ws, nr, x, out) from name##_n with a constant row
 * count, so the per-row loops unroll into registers. */
/* Instantiates the tile function name(K, W, ws, nr, x, xs, nc, y, ldy) from
 * name##_n with a constant row count, so the per-row loops unroll into
 * registers; activation rows are taken one at a time. */
#define SX_ROWS_FN(name)                                                                       \
    static void name(int64_t K, const void *W, size_t ws, int nr, const void *x, size_t xs,    \
                     int nc, float *y, int64_t ldy) {                                          \
        for (int c = 0; c < nc; c++) {                                                         \
            const void *xc = (const char *)x + c * xs;                                         \
            float *out = y + c * ldy;                                                          \
            switch (nr) {                                                                      \
            case 4: name##_n(K, (const char *)W, ws, 4, xc, out); break;                       \
            case 3: name##_n(K, (const char *)W, ws, 3, xc, out); break;                       \
            case 2: name##_n(K, (const char *)W, ws, 2, xc, out); break;                       \
            default: name##_n(K, (const char *)W, ws, 1, xc, out); break;                      \
            }                                                                                  \
        }                                                                                      \
    }

/* Tile dispatch for kernels with an activation-row dimension: NR in {4, 1}
 * (a short last row group runs row by row), NC in {2, 1} (16 ymm registers
 * hold a 4 x 2 tile and its operands). */
#define SX_TILE_FN(name)                                                                           \
    static void name(int64_t K, const void *W, size_t ws, int nr, const void *x, size_t xs, int nc, \
                     float *y, int64_t ldy) {                                                      \
        const char *w = (const char *)W, *xc = (const char *)x;                                    \
        while (nc > 0) {                                                                           \
            const int c = nc >= 2 ? 2 : 1;                                                         \
            if (nr == 4) {                                                                         \
                if (c == 2) name##_n(K, w, ws, 4, xc, xs, 2, y, ldy);                              \
                else name##_n(K, w, ws, 4, xc, xs, 1, y, ldy);                                     \
            } else {                                                                               \
                for (int r = 0; r < nr; r++) {                                                     \
                    if (c == 2) name##_n(K, w + r * ws, ws, 1, xc, xs, 2, y + r, ldy);             \
                    else name##_n(K, w + r * ws, ws, 1, xc, xs, 1, y + r, ldy);                    \
                }                                                                                  \
            }                                                                                      \
            xc += c * xs, y += c * ldy, nc -= c;                                                   \
        }                                                                                          \
    }

/* ------------------------------------------------ q4_0, q4_1, q8_0 x q8 */

SX_INLINE __m256i unpack_nibbles_32(const uint8_t *qs) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* A weight block's (d, m) as floats in lanes 0, 1 (q4_0, q8_0: (d, d)). */
SX_INLINE __m128 block_dm(const char *blk, const bool has_m) {
    uint32_t u;
    if (has_m) {
        memcpy(&u, blk, 4);
    } else {
        uint16_t d;
        memcpy(&d, blk, 2);
        u = (uint32_t)d * 0x10001u;
    }
    return _mm_cvtph_ps(_mm_cvtsi32_si128((int)u));
}

SX_INLINE __m256i q5_high_bits(const uint8_t qh[4]);

/* kind: 0 = q4_0, 1 = q4_1, 2 = q8_0, 3 = q5_0, 4 = q5_1. Per block: an int
 * dot of 32 codes with 32 int8 activations, times d_w * d_x; plus an offset
 * times s_x (q4_0: -8 d_w, q5_0: -16 d_w, q4_1/q5_1: m_w) accumulated in
 * lane 1 of corr. */
SX_INLINE void dot_legacy_n(int64_t K, const char *W, size_t ws, const int NR, const void *x,
                            float *out, const int kind) {
    const int8_t *xq = (const int8_t *)x;
    const float *xds = (const float *)(xq + K);
    const size_t bsz = kind == 0 ? sizeof(sx_block_q4_0) : kind == 1 ? sizeof(sx_block_q4_1)
                     : kind == 2 ? sizeof(sx_block_q8_0) : kind == 3 ? sizeof(sx_block_q5_0) : sizeof(sx_block_q5_1);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4];
    __m128 corr[4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) {
        acc[r] = _mm256_setzero_ps();
        corr[r] = _mm_setzero_ps();
    }
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, K / 32);
    for (int64_t b = 0; b < K / 32; b++) {
        sx_cpu_pf_step(&pf, b + 1);
        const __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + 32 * b));
        const __m128 ds = _mm_castpd_ps(_mm_load_sd((const double *)(xds + 2 * b))); /* dx, sx */
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const char *blk = W + r * ws + b * bsz;
            const __m128 p = _mm_mul_ps(block_dm(blk, kind == 1 || kind == 4), ds); /* dw*dx, m*sx */
            __m256i dot;
            if (kind == 2) {
                const __m256i wv = _mm256_loadu_si256((const __m256i *)((const sx_block_q8_0 *)blk)->qs);
                dot = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
            } else if (kind >= 3) {
                const uint8_t *qs = kind == 4 ? ((const sx_block_q5_1 *)blk)->qs : ((const sx_block_q5_0 *)blk)->qs;
                const uint8_t *qh = kind == 4 ? ((const sx_block_q5_1 *)blk)->qh : ((const sx_block_q5_0 *)blk)->qh;
                dot = _mm256_maddubs_epi16(_mm256_or_si256(unpack_nibbles_32(qs), q5_high_bits(qh)), xv);
                corr[r] = _mm_add_ps(corr[r], p);
            } else {
                const uint8_t *qs = kind == 1 ? ((const sx_block_q4_1 *)blk)->qs : ((const sx_block_q4_0 *)blk)->qs;
                dot = _mm256_maddubs_epi16(unpack_nibbles_32(qs), xv);
                corr[r] = _mm_add_ps(corr[r], p);
            }
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(dot, ones)),
                                     _mm256_broadcastss_ps(p), acc[r]);
        }
    }
    const float off = kind == 0 ? -8.0f : kind == 3 ? -16.0f : kind == 1 || kind == 4 ? 1.0f : 0.0f;
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
        out[r] = hsum_ps(acc[r]) + off * _mm_cvtss_f32(_mm_movehdup_ps(corr[r]));
}

/* Several activation rows (prefill): the per-row weight work (unpacking,
 * scales) is shared by NC columns. Offsets enter per column: q4_0 as
 * -8 * (sum of each 4 activations) in the int32 lanes, q4_1's min as
 * min * that sum in f32; q8_0 uses |w| and sign(w) x. */
SX_INLINE void tile_legacy_n(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                             const int NC, float *y, int64_t ldy, const int kind) {
    if (NC == 1) { /* decode kernel */
        dot_legacy_n(K, W, ws, NR, x, y, kind);
        return;
    }
    const size_t bsz = kind == 0 ? sizeof(sx_block_q4_0) : kind == 1 ? sizeof(sx_block_q4_1)
                                                                     : sizeof(sx_block_q8_0);
    const __m256i ones16 = _mm256_set1_epi16(1), ones8 = _mm256_set1_epi8(1);
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
        for (int c = 0; c < NC; c++) acc[r][c] = _mm256_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, K / 32);
    for (int64_t b = 0; b < K / 32; b++) {
        sx_cpu_pf_step(&pf, b + 1);
        __m256i xv[2], base[2];
        __m256 dx[2], s4f[2];
#pragma GCC unroll 2
        for (int c = 0; c < NC; c++) {
            const int8_t *xq = (const int8_t *)(x + c * xs);
            xv[c] = _mm256_loadu_si256((const __m256i *)(xq + 32 * b));
            dx[c] = _mm256_set1_ps(((const float *)(xq + K))[2 * b]);
            const __m256i s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, xv[c]), ones16);
            base[c] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(s4, 3));
            s4f[c] = _mm256_cvtepi32_ps(s4);
        }
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const char *blk = W + r * ws + b * bsz;
            __m256i wv;
            __m256 dw, mw = _mm256_setzero_ps();
            if (kind == 2) {
                wv = _mm256_loadu_si256((const __m256i *)((const sx_block_q8_0 *)blk)->qs);
                dw = _mm256_set1_ps(f16(((const sx_block_q8_0 *)blk)->d));
            } else if (kind == 1) {
                const sx_block_q4_1 *w = (const sx_block_q4_1 *)blk;
                wv = unpack_nibbles_32(w->qs);
                dw = _mm256_set1_ps(f16(w->d));
                mw = _mm256_set1_ps(f16(w->m));
            } else {
                const sx_block_q4_0 *w = (const sx_block_q4_0 *)blk;
                wv = unpack_nibbles_32(w->qs);
                dw = _mm256_set1_ps(f16(w->d));
            }
#pragma GCC unroll 2
            for (int c = 0; c < NC; c++) {
                __m256i dot;
                if (kind == 2)
                    dot = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv[c], wv)), ones16);
                else
                    dot = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv[c]), ones16);
                if (kind == 0) dot = _mm256_add_epi32(dot, base[c]);
                const __m256 part = kind == 1 ? _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), dw, _mm256_mul_ps(s4f[c], mw))
                                              : _mm256_mul_ps(_mm256_cvtepi32_ps(dot), dw);
                acc[r][c] = _mm256_fmadd_ps(part, dx[c], acc[r][c]);
            }
        }
    }
#pragma GCC unroll 2
    for (int c = 0; c < NC; c++)
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) y[c * ldy + r] = hsum_ps(acc[r][c]);
}

SX_INLINE void tile_q4_0_n(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                           const int NC, float *y, int64_t ldy) {
    tile_legacy_n(K, W, ws, NR, x, xs, NC, y, ldy, 0);
}
SX_INLINE void tile_q4_1_n(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                           const int NC, float *y, int64_t ldy) {
    tile_legacy_n(K, W, ws, NR, x, xs, NC, y, ldy, 1);
}
SX_INLINE void tile_q8_0_n(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                           const int NC, float *y, int64_t ldy) {
    tile_legacy_n(K, W, ws, NR, x, xs, NC, y, ldy, 2);
}
SX_TILE_FN(tile_q4_0)
SX_TILE_FN(tile_q4_1)
SX_TILE_FN(tile_q8_0)

/* --------------------------------------------------------- q4_k x q8k */

/* Rows outer: per row and super-block, the int sums of the NC activation
 * rows, then into the f32 tile accumulators. */
SX_INLINE void tile_q4_k_n(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                           const int NC, float *y, int64_t ldy) {
    const int64_t nb = K / 256;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    /* duplicates each of 8 bytes: m0 m0 m1 m1 ... m7 m7 */
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    /* pshufb controls broadcasting 16-bit lane j to all lanes of a half */
    __m256i bsel[8];
    for (int j = 0; j < 8; j++) bsel[j] = _mm256_set1_epi16((short)((2 * j + 1) << 8 | 2 * j));
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
        for (int c = 0; c < NC; c++) acc[r][c] = _mm256_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, nb);
    for (int64_t b = 0; b < nb; b++) {
        sx_cpu_pf_step(&pf, b + 1);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const sx_block_q4_k *w = (const sx_block_q4_k *)(W + r * ws) + b;
            uint32_t u[4];
            sx_cpu_q4k_scales(w->scales, u);
            /* the 8 scales as 16-bit lanes, in both 128-bit halves (pshufb is per half) */
            const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_setr_epi32((int)u[0], (int)u[1], 0, 0)));
            const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_setr_epi32((int)u[2], (int)u[3], 0, 0), dup));
            const float d = f16(w->d), dmin = f16(w->dmin);
            __m256i isum[2];
#pragma GCC unroll 2
            for (int c = 0; c < NC; c++) isum[c] = _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i raw = _mm256_loadu_si256((const __m256i *)(w->qs + 32 * k));
                const __m256i lo = _mm256_and_si256(raw, m4);
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
                const __m256i slo = _mm256_shuffle_epi8(sc16, bsel[2 * k]);
                const __m256i shi = _mm256_shuffle_epi8(sc16, bsel[2 * k + 1]);
#pragma GCC unroll 2
                for (int c = 0; c < NC; c++) {
                    const int8_t *xb = (const int8_t *)(x + c * xs) + 256 * b + 64 * k;
                    const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)xb));
                    const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(xb + 32)));
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(_mm256_madd_epi16(plo, slo),
                                                                         _mm256_madd_epi16(phi, shi)));
                }
            }
#pragma GCC unroll 2
            for (int c = 0; c < NC; c++) {
                const int8_t *xq = (const int8_t *)(x + c * xs);
                const float *xd = (const float *)(xq + K);
                const int16_t *xbs = (const int16_t *)(xd + nb);
                const __m256i msum = _mm256_madd_epi16(mins16, _mm256_loadu_si256((const __m256i *)(xbs + 16 * b)));
                const float dx = xd[b];
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_set1_ps(d * dx), acc[r][c]);
                acc[r][c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(dmin * dx), acc[r][c]);
            }
        }
    }
#pragma GCC unroll 2
    for (int c = 0; c < NC; c++)
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) y[c * ldy + r] = hsum_ps(acc[r][c]);
}
SX_TILE_FN(tile_q4_k)

/* --------------------------------------------------------- q6_k x q8k */

SX_INLINE void tile_q6_k_n(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                           const int NC, float *y, int64_t ldy) {
    const int64_t nb = K / 256;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    /* shuffle control selecting scale 2g in the low 8 bytes, 2g+1 in the high 8 */
    __m128i sel[8];
    for (int g = 0; g < 8; g++)
        sel[g] = _mm_or_si128(_mm_set1_epi8((char)(2 * g)),
                              _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
        for (int c = 0; c < NC; c++) acc[r][c] = _mm256_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, nb);
    for (int64_t b = 0; b < nb; b++) {
        sx_cpu_pf_step(&pf, b + 1);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const sx_block_q6_k *w = (const sx_block_q6_k *)(W + r * ws) + b;
            const __m128i sc8 = _mm_loadu_si128((const __m128i *)w->scales);
            const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
            const float d = f16(w->d);
            __m256i isum[2];
#pragma GCC unroll 2
            for (int c = 0; c < NC; c++) { /* -32 offset: start at -32 * sum_i sc[i] * bsum[i] */
                const int16_t *xbs = (const int16_t *)((const float *)(x + c * xs + K) + nb);
                const __m256i o = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)(xbs + 16 * b)));
                isum[c] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(o, 5));
            }
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h));
                const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h + 32));
                const __m256i qh = _mm256_loadu_si256((const __m256i *)(w->qh + 32 * h));
                __m256i g[4];
                g[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
                g[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
                g[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
                g[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                       _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) {
                    const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, sel[4 * h + i]));
#pragma GCC unroll 2
                    for (int c = 0; c < NC; c++) {
                        const int8_t *xb = (const int8_t *)(x + c * xs) + 256 * b + 128 * h + 32 * i;
                        const __m256i p = _mm256_maddubs_epi16(g[i], _mm256_loadu_si256((const __m256i *)xb));
                        isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(p, sc));
                    }
                }
            }
#pragma GCC unroll 2
            for (int c = 0; c < NC; c++) {
                const float dx = ((const float *)(x + c * xs + K))[b];
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_set1_ps(d * dx), acc[r][c]);
            }
        }
    }
#pragma GCC unroll 2
    for (int c = 0; c < NC; c++)
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) y[c * ldy + r] = hsum_ps(acc[r][c]);
}
SX_TILE_FN(tile_q6_k)

/* ------------------------------------------- q5_0, q5_1 x q8; q5_k x q8k */

/* Bit j of the 32-bit qh word -> 0x10 in byte j (the 5th bit of code j). */
SX_INLINE __m256i q5_high_bits(const uint8_t qh[4]) {
    uint32_t h;
    memcpy(&h, qh, 4);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)h), spread), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10));
}

/* kind 0 = q5_0 (x = d (q - 16)), 1 = q5_1 (x = d q + m). One column (decode)
 * goes through dot_legacy_n; several share the weight unpacking, per block,
 * tile element and column:
 *   dot  = sum over 32 of (unsigned code) * x (+ -16 * sum x for q5_0)  (int32 lanes)
 *   part = dot * dw (+ m * sum4(x) for q5_1)                             (f32 lanes)
 *   acc += part * dx
 * maddubs cannot saturate: 2 * 31 * 127 < 32767. */
SX_INLINE void tile_q5_legacy_n(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                                const int NC, float *y, int64_t ldy, const int kind) {
    if (NC == 1) { /* decode kernel */
        dot_legacy_n(K, W, ws, NR, x, y, kind == 0 ? 3 : 4);
        return;
    }
    const size_t bsz = kind == 0 ? sizeof(sx_block_q5_0) : sizeof(sx_block_q5_1);
    const __m256i ones16 = _mm256_set1_epi16(1), ones8 = _mm256_set1_epi8(1);
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
        for (int c = 0; c < NC; c++) acc[r][c] = _mm256_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, K / 32);
    for (int64_t b = 0; b < K / 32; b++) {
        sx_cpu_pf_step(&pf, b + 1);
        __m256i xv[2], base[2];
        __m256 dx[2], s4f[2];
#pragma GCC unroll 2
        for (int c = 0; c < NC; c++) {
            const int8_t *xq = (const int8_t *)(x + c * xs);
            xv[c] = _mm256_loadu_si256((const __m256i *)(xq + 32 * b));
            dx[c] = _mm256_set1_ps(((const float *)(xq + K))[2 * b]);
            const __m256i s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, xv[c]), ones16);
            base[c] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(s4, 4));
            s4f[c] = _mm256_cvtepi32_ps(s4);
        }
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const char *blk = W + r * ws + b * bsz;
            __m256i wv;
            __m256 dw, mw = _mm256_setzero_ps();
            if (kind == 1) {
                const sx_block_q5_1 *w = (const sx_block_q5_1 *)blk;
                wv = _mm256_or_si256(unpack_nibbles_32(w->qs), q5_high_bits(w->qh));
                dw = _mm256_set1_ps(f16(w->d));
                mw = _mm256_set1_ps(f16(w->m));
            } else {
                const sx_block_q5_0 *w = (const sx_block_q5_0 *)blk;
                wv = _mm256_or_si256(unpack_nibbles_32(w->qs), q5_high_bits(w->qh));
                dw = _mm256_set1_ps(f16(w->d));
            }
#pragma GCC unroll 2
            for (int c = 0; c < NC; c++) {
                __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv[c]), ones16);
                if (kind == 0) dot = _mm256_add_epi32(dot, base[c]);
                const __m256 part = kind == 1 ? _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), dw, _mm256_mul_ps(s4f[c], mw))
                                              : _mm256_mul_ps(_mm256_cvtepi32_ps(dot), dw);
                acc[r][c] = _mm256_fmadd_ps(part, dx[c], acc[r][c]);
            }
        }
    }
#pragma GCC unroll 2
    for (int c = 0; c < NC; c++)
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) y[c * ldy + r] = hsum_ps(acc[r][c]);
}

SX_INLINE void tile_q5_0_n(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                           const int NC, float *y, int64_t ldy) {
    tile_q5_legacy_n(K, W, ws, NR, x, xs, NC, y, ldy, 0);
}
SX_INLINE void tile_q5_1_n(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                           const int NC, float *y, int64_t ldy) {
    tile_q5_legacy_n(K, W, ws, NR, x, xs, NC, y, ldy, 1);
}

/* q5_k: the q4_k kernel with bit 4 of each code taken from qh (bit 2k of
 * qh[l] for the low nibbles of chunk k, bit 2k+1 for the high ones). Codes
 * <= 31 times scales <= 63 keep the int32 sums far from overflow. */
SX_INLINE void tile_q5_k_n(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                           const int NC, float *y, int64_t ldy) {
    const int64_t nb = K / 256;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m1 = _mm256_set1_epi8(0x01);
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    __m256i bsel[8];
    for (int j = 0; j < 8; j++) bsel[j] = _mm256_set1_epi16((short)((2 * j + 1) << 8 | 2 * j));
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
        for (int c = 0; c < NC; c++) acc[r][c] = _mm256_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, nb);
    for (int64_t b = 0; b < nb; b++) {
        sx_cpu_pf_step(&pf, b + 1);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const sx_block_q5_k *w = (const sx_block_q5_k *)(W + r * ws) + b;
            uint32_t u[4];
            sx_cpu_q4k_scales(w->scales, u);
            const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_setr_epi32((int)u[0], (int)u[1], 0, 0)));
            const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_setr_epi32((int)u[2], (int)u[3], 0, 0), dup));
            const float d = f16(w->d), dmin = f16(w->dmin);
            const __m256i qh = _mm256_loadu_si256((const __m256i *)w->qh);
            __m256i isum[2];
#pragma GCC unroll 2
            for (int c = 0; c < NC; c++) isum[c] = _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i raw = _mm256_loadu_si256((const __m256i *)(w->qs + 32 * k));
                const __m256i hlo = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), m1), 4);
                const __m256i hhi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * k + 1), m1), 4);
                const __m256i lo = _mm256_or_si256(_mm256_and_si256(raw, m4), hlo);
                const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4), hhi);
                const __m256i slo = _mm256_shuffle_epi8(sc16, bsel[2 * k]);
                const __m256i shi = _mm256_shuffle_epi8(sc16, bsel[2 * k + 1]);
#pragma GCC unroll 2
                for (int c = 0; c < NC; c++) {
                    const int8_t *xb = (const int8_t *)(x + c * xs) + 256 * b + 64 * k;
                    const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)xb));
                    const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(xb + 32)));
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(_mm256_madd_epi16(plo, slo),
                                                                         _mm256_madd_epi16(phi, shi)));
                }
            }
#pragma GCC unroll 2
            for (int c = 0; c < NC; c++) {
                const int8_t *xq = (const int8_t *)(x + c * xs);
                const float *xd = (const float *)(xq + K);
                const int16_t *xbs = (const int16_t *)(xd + nb);
                const __m256i msum = _mm256_madd_epi16(mins16, _mm256_loadu_si256((const __m256i *)(xbs + 16 * b)));
                const float dx = xd[b];
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_set1_ps(d * dx), acc[r][c]);
                acc[r][c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(dmin * dx), acc[r][c]);
            }
        }
    }
#pragma GCC unroll 2
    for (int c = 0; c < NC; c++)
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) y[c * ldy + r] = hsum_ps(acc[r][c]);
}

SX_TILE_FN(tile_q5_0)
SX_TILE_FN(tile_q5_1)
SX_TILE_FN(tile_q5_k)

/* ------------------------------------------------- float weights x f32 */

SX_INLINE __m256 load_f32(const void *p) { return _mm256_loadu_ps((const float *)p); }
SX_INLINE __m256 load_f16(const void *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
SX_INLINE __m256 load_bf16(const void *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
SX_INLINE float scalar_f32(const void *p, int64_t i) { return ((const float *)p)[i]; }
SX_INLINE float scalar_f16(const void *p, int64_t i) { return f16(((const uint16_t *)p)[i]); }
SX_INLINE float scalar_bf16(const void *p, int64_t i) {
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128((int)((uint32_t)((const uint16_t *)p)[i] << 16))));
}

/* Two accumulators per row (16 elements per step) hide FMA latency. */
#define SX_FLOAT_KERNEL(T, ESZ)                                                                \
    SX_INLINE void dot_##T##_n(int64_t K, const char *W, size_t ws, const int NR, const void *x, \
                               float *out) {                                                   \
        const float *xf = (const float *)x;                                                    \
        __m256 a0[4], a1[4];                                                                   \
        _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) a0[r] = a1[r] = _mm256_setzero_ps(); \
        int64_t k = 0;                                                                         \
        for (; k + 16 <= K; k += 16) {                                                         \
            const __m256 x0 = _mm256_loadu_ps(xf + k), x1 = _mm256_loadu_ps(xf + k + 8);       \
            _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) {                             \
                const char *w = W + r * ws + k * ESZ;                                          \
                a0[r] = _mm256_fmadd_ps(load_##T(w), x0, a0[r]);                               \
                a1[r] = _mm256_fmadd_ps(load_##T(w + 8 * ESZ), x1, a1[r]);                     \
            }                                                                                  \
        }                                                                                      \
        for (; k + 8 <= K; k += 8) {                                                           \
            const __m256 x0 = _mm256_loadu_ps(xf + k);                                         \
            _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++)                               \
                a0[r] = _mm256_fmadd_ps(load_##T(W + r * ws + k * ESZ), x0, a0[r]);            \
        }                                                                                      \
        _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) {                                 \
            float s = hsum_ps(_mm256_add_ps(a0[r], a1[r]));                                    \
            for (int64_t j = k; j < K; j++) s += scalar_##T(W + r * ws, j) * xf[j];            \
            out[r] = s;                                                                        \
        }                                                                                      \
    }                                                                                          \
    SX_ROWS_FN(dot_##T)

SX_FLOAT_KERNEL(f32, 4)
SX_FLOAT_KERNEL(f16, 2)
SX_FLOAT_KERNEL(bf16, 2)

static float vec_dot_f32(int64_t n, const float *a, const float *b) {
    float out;
    dot_f32_n(n, (const char *)a, 0, 1, b, &out);
    return out;
}

static float vec_dot_f16_f32(int64_t n, const uint16_t *a, const float *b) {
    float out;
    dot_f16_n(n, (const char *)a, 0, 1, b, &out);
    return out;
}

static void vec_axpy_f16(int64_t n, float alpha, const uint16_t *x, float *y) {
    const __m256 av = _mm256_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, load_f16(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += alpha * f16(x[i]);
}

/* Attention's weighted V sum: vec_axpy_f16 per head and row, inlined. */
SX_CPU_AXPY_ROWS_BY_ROW(vec_axpy_rows_f16, vec_axpy_f16)
SX_CPU_AXPY_ROWS_F32_BY_ROW(vec_axpy_rows_f32)

/* ------------------------------------------------- f32 <-> f16 rows */

/* vcvtps2ph with round to nearest even gives sx_fp32_to_fp16's bits for every
 * number; NaN payloads differ (the scalar code writes one quiet NaN), so a
 * group of 8 holding a NaN goes through the scalar code. Same for vcvtph2ps,
 * which quiets signalling NaNs where sx_fp16_to_fp32 keeps their bits. */
void sx_cpu_fp32_to_fp16_f16c(int64_t n, const float *x, uint16_t *y) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) {
            for (int j = 0; j < 8; j++) y[i + j] = sx_fp32_to_fp16(x[i + j]);
            continue;
        }
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; i < n; i++) y[i] = sx_fp32_to_fp16(x[i]);
}

void sx_cpu_fp16_to_fp32_f16c(int64_t n, const uint16_t *x, float *y) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) {
            for (int j = 0; j < 8; j++) y[i + j] = sx_fp16_to_fp32(x[i + j]);
            continue;
        }
        _mm256_storeu_ps(y + i, v);
    }
    for (; i < n; i++) y[i] = sx_fp16_to_fp32(x[i]);
}

/* ------------------------------------------------ activation quantisers */

SX_INLINE float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

SX_INLINE int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* 32 floats times id -> 32 int8 (nearest even, |q| <= 127 since |x| <= amax);
 * returns the four int32 vectors' lane sums in *s01 (first 16), *s23 (last 16). */
SX_INLINE void quant32(const float *x, __m256 id, int8_t *q, int *s01, int *s23) {
    const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
    const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
    const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
    const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
    /* packs work per 128-bit half: fix the dword order afterwards */
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    _mm256_storeu_si256((__m256i *)q, _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    *s01 = hsum_epi32(_mm256_add_epi32(i0, i1));
    *s23 = hsum_epi32(_mm256_add_epi32(i2, i3));
}

SX_INLINE float amax_n(const float *x, int n) {
    const __m256 abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + j), abs));
    return hmax_ps(m);
}

static void quantize_q8(const float *x, int64_t K, void *dst) {
    int8_t *qs = (int8_t *)dst;
    float *ds = (float *)((char *)dst + K);
    for (int64_t b = 0; b < K / 32; b++) {
        const float amax = amax_n(x + 32 * b, 32);
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int s0, s1;
        quant32(x + 32 * b, _mm256_set1_ps(id), qs + 32 * b, &s0, &s1);
        ds[2 * b] = amax / 127.0f;
        ds[2 * b + 1] = ds[2 * b] * (float)(s0 + s1);
    }
}

static void quantize_q8k(const float *x, int64_t K, void *dst) {
    int8_t *qs = (int8_t *)dst;
    float *d = (float *)((char *)dst + K);
    int16_t *bs = (int16_t *)(d + K / 256);
    for (int64_t b = 0; b < K / 256; b++) {
        const float amax = amax_n(x + 256 * b, 256);
        const __m256 id = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        d[b] = amax / 127.0f;
        for (int g = 0; g < 8; g++) {
            int s0, s1;
            quant32(x + 256 * b + 32 * g, id, qs + 256 * b + 32 * g, &s0, &s1);
            bs[16 * b + 2 * g] = (int16_t)s0;
            bs[16 * b + 2 * g + 1] = (int16_t)s1;
        }
    }
}

/* ------------------------------- q2_k, q3_k, iq4_xs x q8k; iq4_nl x q8 */

/* Per weight row and block, tiles of NC (1..4) activation columns share the
 * unpacked codes; every column is computed by the same instructions whatever
 * NC is (so the AVX-512 tables reuse these with tiles_exact: a column's
 * result never depends on its tile). Codes enter _mm256_maddubs_epi16
 * unsigned: q2_k 0..3, q3_k 0..7 (the -4 through the activation bsums), iq4
 * values as |v| with the sign moved onto x (|v| <= 127: pair sums <= 2 *
 * 127 * 127). Sub-block scales multiply the int16 pair sums in
 * _mm256_madd_epi16; per block 8 int32 lanes, scaled into 8 f32 lanes
 * across blocks (one horizontal sum per row and column). */

#define SX_LB_NC 4 /* columns per tile */

/* 16 int16 lanes: a in the first 8 (bytes 0..15 of a maddubs), b in the last 8 */
SX_INLINE __m256i pair16(int a, int b) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)a)), _mm_set1_epi16((short)b), 1);
}

/* the 2-bit field g (0..3) of each of 32 bytes */
SX_INLINE __m256i bits2(__m256i q, int g) {
    return _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * g)), _mm256_set1_epi8(3));
}

/* the 16 signed 6-bit scales (minus 32) of a q3_k block as int16 */
SX_INLINE __m256i q3k_scales16(const uint8_t s[12]) {
    uint32_t u[4];
    sx_cpu_q3k_scales(s, u);
    const __m128i v = _mm_sub_epi8(_mm_setr_epi32((int)u[0], (int)u[1], (int)u[2], (int)u[3]), _mm_set1_epi8(32));
    return _mm256_cvtepi8_epi16(v);
}

/* column c of a q8k tile (cpu_fast.h): qs[K], d[K/256], bsums[K/16] */
#define SX_Q8K_COL(x, xs, K, c) ((const int8_t *)((x) + (c) * (xs)))
#define SX_Q8K_D(x, xs, K, c) ((const float *)((x) + (c) * (xs) + (K)))
#define SX_Q8K_BS(x, xs, K, c) ((const int16_t *)(SX_Q8K_D(x, xs, K, c) + (K) / 256))

/* kind 0 = q2_k (x = d sc q - dmin m), 1 = q3_k (x = d sc (q - 4)): the
 * 2-bit field g of qs byte l is element 128 n + 32 g + l; q3_k ORs in bit
 * 4 n + g of hmask[l] as 4 and takes the -4 through the bsums */
SX_INLINE void k2bit_n(int64_t K, const char *W, size_t ws, int nr, const char *x, size_t xs, const int NC, float *y,
                       int64_t ldy, const int kind) {
    const size_t bsz = kind ? sizeof(sx_block_q3_k) : sizeof(sx_block_q2_k);
    for (int r = 0; r < nr; r++) {
        __m256 acc[SX_LB_NC];
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) acc[c] = _mm256_setzero_ps();
        for (int64_t b = 0; b < K / 256; b++) {
            const char *blk = W + r * ws + b * bsz;
            const sx_block_q2_k *w2 = (const sx_block_q2_k *)blk;
            const sx_block_q3_k *w3 = (const sx_block_q3_k *)blk;
            const __m128i s8 = _mm_loadu_si128((const __m128i *)w2->scales); /* q2_k: scale | min << 4 */
            const __m256i sc16 = kind ? q3k_scales16(w3->scales) : _mm256_cvtepu8_epi16(_mm_and_si128(s8, _mm_set1_epi8(0xF)));
            const __m256i hm = kind ? _mm256_loadu_si256((const __m256i *)w3->hmask) : _mm256_setzero_si256();
            int16_t sc[16];
            _mm256_storeu_si256((__m256i *)sc, sc16);
            __m256i iv[SX_LB_NC];
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) iv[c] = _mm256_setzero_si256();
            for (int n = 0; n < 2; n++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)((kind ? w3->qs : w2->qs) + 32 * n));
#pragma GCC unroll 4
                for (int g = 0; g < 4; g++) {
                    const int s = 8 * n + 2 * g;
                    __m256i u = bits2(q, g);
                    if (kind) {
                        const __m256i bit = _mm256_set1_epi8((char)(1 << (4 * n + g)));
                        u = _mm256_or_si256(u, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit), _mm256_set1_epi8(4)));
                    }
                    const __m256i sp = pair16(sc[s], sc[s + 1]);
#pragma GCC unroll 4
                    for (int c = 0; c < NC; c++) {
                        const __m256i xv = _mm256_loadu_si256((const __m256i *)(SX_Q8K_COL(x, xs, K, c) + 256 * b + 128 * n + 32 * g));
                        iv[c] = _mm256_add_epi32(iv[c], _mm256_madd_epi16(_mm256_maddubs_epi16(u, xv), sp));
                    }
                }
            }
            const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0xF)));
            const float d = kind ? f16(w3->d) : f16(w2->d);
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) { /* 8 int32 lanes per block, f32 lanes across blocks */
                const __m256i bs = _mm256_loadu_si256((const __m256i *)(SX_Q8K_BS(x, xs, K, c) + 16 * b));
                const float xd = SX_Q8K_D(x, xs, K, c)[b];
                if (kind) { /* the -4 of every code: 4 * sc[s] * bsum[s] */
                    const __m256i isum = _mm256_sub_epi32(iv[c], _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 2));
                    acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(xd * d), acc[c]);
                } else {
                    const __m256 m = _mm256_cvtepi32_ps(_mm256_madd_epi16(mins, bs));
                    acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iv[c]), _mm256_set1_ps(xd * d), acc[c]);
                    acc[c] = _mm256_fnmadd_ps(m, _mm256_set1_ps(xd * f16(w2->dmin)), acc[c]);
                }
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) y[c * ldy + r] = hsum_ps(acc[c]);
    }
}

static const int8_t k_iq4nl_tab[16] = SX_IQ4NL_VALUES;

/* iq4_xs (kind 1, x q8k: 8 sub-blocks of 32 with 6-bit scales minus 32)
 * and iq4_nl (kind 0, x q8: per block of 32, f32 lanes acc += dot * (dw *
 * dx)): nibbles through the value table (pshufb), |v| times x with v's sign */
SX_INLINE void iq4_n(int64_t K, const char *W, size_t ws, int nr, const char *x, size_t xs, const int NC, float *y,
                     int64_t ldy, const int kind) {
    const __m256i tab = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)k_iq4nl_tab));
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (int r = 0; r < nr; r++) {
        __m256 accv[SX_LB_NC];
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) accv[c] = _mm256_setzero_ps();
        const int64_t nb = kind ? K / 256 : K / 32;
        for (int64_t b = 0; b < nb; b++) {
            const int nsub = kind ? 8 : 1;
            __m256i iv[SX_LB_NC];
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) iv[c] = _mm256_setzero_si256();
            const sx_block_iq4_xs *wx = (const sx_block_iq4_xs *)(W + r * ws) + b;
            const sx_block_iq4_nl *wn = (const sx_block_iq4_nl *)(W + r * ws) + b;
#pragma GCC unroll 8
            for (int s = 0; s < nsub; s++) {
                const uint8_t *qs = kind ? wx->qs + 16 * s : wn->qs;
                const __m256i v = _mm256_shuffle_epi8(tab, unpack_nibbles_32(qs));
                const __m256i av = _mm256_abs_epi8(v);
                const __m256i sv = kind ? _mm256_set1_epi16((short)((((wx->scales_l[s / 2] >> (4 * (s % 2))) & 0xF) |
                                                                    (((wx->scales_h >> (2 * s)) & 3) << 4)) - 32))
                                        : ones16;
#pragma GCC unroll 4
                for (int c = 0; c < NC; c++) {
                    const __m256i xv = _mm256_loadu_si256((const __m256i *)(SX_Q8K_COL(x, xs, K, c) + (kind ? 256 * b + 32 * s : 32 * b)));
                    iv[c] = _mm256_add_epi32(iv[c], _mm256_madd_epi16(_mm256_maddubs_epi16(av, _mm256_sign_epi8(xv, v)), sv));
                }
            }
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) {
                /* q8k: d[b]; q8: ds pairs (d, d * sum) after the K int8 */
                const float dx = kind ? SX_Q8K_D(x, xs, K, c)[b] : SX_Q8K_D(x, xs, K, c)[2 * b];
                accv[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iv[c]), _mm256_set1_ps(dx * (kind ? f16(wx->d) : f16(wn->d))), accv[c]);
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) y[c * ldy + r] = hsum_ps(accv[c]);
    }
}

/* tile form: columns in groups of up to 4 with a constant count; exported
 * for the AVX-512 tables */
#define SX_LB_GEMM(name, body, kind)                                                                            \
    void name(int64_t K, const void *W, size_t ws, int nr, const void *x, size_t xs, int nc, float *y, int64_t ldy) { \
        const char *xc = (const char *)x;                                                                       \
        for (; nc > 0; nc -= SX_LB_NC, xc += SX_LB_NC * xs, y += SX_LB_NC * ldy) {                             \
            switch (nc < SX_LB_NC ? nc : SX_LB_NC) {                                                            \
            case 4: body(K, (const char *)W, ws, nr, xc, xs, 4, y, ldy, kind); break;                           \
            case 3: body(K, (const char *)W, ws, nr, xc, xs, 3, y, ldy, kind); break;                           \
            case 2: body(K, (const char *)W, ws, nr, xc, xs, 2, y, ldy, kind); break;                           \
            default: body(K, (const char *)W, ws, nr, xc, xs, 1, y, ldy, kind); break;                          \
            }                                                                                                   \
        }                                                                                                       \
    }
SX_LB_GEMM(sx_cpu_avx2_gemm_q2_k, k2bit_n, 0)
SX_LB_GEMM(sx_cpu_avx2_gemm_q3_k, k2bit_n, 1)
SX_LB_GEMM(sx_cpu_avx2_gemm_iq4_nl, iq4_n, 0)
SX_LB_GEMM(sx_cpu_avx2_gemm_iq4_xs, iq4_n, 1)
#undef SX_LB_GEMM

static const sx_cpu_kernels k_avx2 = {
    .tiles_exact = false, /* the 4 x 2 tiles sum in another order than one column */
    .gemm = {
        [SX_DTYPE_F32] = dot_f32,
        [SX_DTYPE_F16] = dot_f16,
        [SX_DTYPE_BF16] = dot_bf16,
        [SX_DTYPE_Q8_0] = tile_q8_0,
        [SX_DTYPE_Q4_0] = tile_q4_0,
        [SX_DTYPE_Q4_1] = tile_q4_1,
        [SX_DTYPE_Q4_K] = tile_q4_k,
        [SX_DTYPE_Q6_K] = tile_q6_k,
        [SX_DTYPE_Q5_0] = tile_q5_0,
        [SX_DTYPE_Q5_1] = tile_q5_1,
        [SX_DTYPE_Q5_K] = tile_q5_k,
        [SX_DTYPE_Q2_K] = sx_cpu_avx2_gemm_q2_k,
        [SX_DTYPE_Q3_K] = sx_cpu_avx2_gemm_q3_k,
        [SX_DTYPE_IQ4_NL] = sx_cpu_avx2_gemm_iq4_nl,
        [SX_DTYPE_IQ4_XS] = sx_cpu_avx2_gemm_iq4_xs,
    },
    .vec_dot_f32 = vec_dot_f32,
    .vec_dot_f16_f32 = vec_dot_f16_f32,
    .vec_axpy_f16 = vec_axpy_f16,
    .vec_axpy_rows_f16 = vec_axpy_rows_f16,
    .vec_axpy_rows_f32 = vec_axpy_rows_f32,
    .exp_sum = sx_cpu_exp_sum_scalar,
    .silu_mul = sx_cpu_silu_mul_scalar,
    .fp32_to_fp16 = sx_cpu_fp32_to_fp16_f16c,
    .fp16_to_fp32 = sx_cpu_fp16_to_fp32_f16c,
    .quantize_q8 = quantize_q8,
    .quantize_q8k = quantize_q8k,
};

const sx_cpu_kernels *sx_cpu_kernels_avx2(void) { return &k_avx2; }

#else /* not x86-64 */

const sx_cpu_kernels *sx_cpu_kernels_avx2(void) { return 0; }

#endif
