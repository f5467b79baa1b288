/* backends/cpu/cpu_simd_avx512.c — AVX-512 (F, BW, VL) and AVX-512 VNNI
 * matmul kernels. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma
 * -mf16c; the VNNI set is compiled under a target("avx512vnni") pragma so the
 * plain set can never contain VNNI instructions (it runs on Skylake-SP).
 * Selected at run time by cpu_simd.c.
 *
 * The file instantiates its kernel bodies twice by including itself (once
 * with SX_VNNI 0, once with SX_VNNI 1) — a C "template".
 *
 * Tiles of 4 weight rows x up to 4 activation rows (decode uses 4 x 1):
 *  - q4_0/q4_1/q5_0/q5_1/q8_0: two 32-element blocks per 512-bit register, lanes 0..7
 *    block b, 8..15 block b+1. Unsigned codes times int8 activations; the
 *    q4_0/q5_0 offsets (-8, -16) and, with VNNI, q8_0's (w ^ 0x80 = w + 128, so -128)
 *    enter the int32 accumulator as -offset * (sum of each 4 activations);
 *    q4_1's and q5_1's min as min * that sum in f32. Without VNNI q8_0 uses
 *    |w| and sign(w) x. q5 codes get their 5th bit from a byte mask made of
 *    the qh words.
 *  - q4_k / q5_k: 32 bytes of nibbles = two sub-blocks = 64 consecutive
 *    activations (q5_k: plus the qh bits through vptestmb);
 *    q6_k: 64 bytes of ql + 32 of qh give two registers of 64 values.
 *    Per-sub-block scales multiply the 16-bit pair products (vpdpwssd with
 *    VNNI); q4_k mins and the q6_k -32 go through the activation sums.
 * Wide prefill kernels (VNNI only, M >= gemm_t_min_m): see "wide" below.
 * Tested by tests/test_cpu_fast.c (forcing each level).
 */
#ifndef SX_AVX512_TEMPLATE

#include "backends/cpu/cpu_fast.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define SX_INLINE static inline __attribute__((always_inline))

SX_INLINE float f16(uint16_t h) { return _cvtsh_ss(h); }

SX_INLINE float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

SX_INLINE float hsum512(__m512 v) {
    return hsum256(_mm256_add_ps(_mm512_castps512_ps256(v),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}

/* hsum512 of four vectors at once: per vector the same additions in the same
 * tree (halves of 256, of 128, then the movehl and movehdup steps), so lane
 * k equals hsum512(v_k) bit for bit; 4 results for ~12 instructions instead
 * of ~28. */
SX_INLINE __m128 hsum512x4(__m512 v0, __m512 v1, __m512 v2, __m512 v3) {
    const __m512 a01 = _mm512_add_ps(_mm512_shuffle_f32x4(v0, v1, 0x44), _mm512_shuffle_f32x4(v0, v1, 0xEE));
    const __m512 a23 = _mm512_add_ps(_mm512_shuffle_f32x4(v2, v3, 0x44), _mm512_shuffle_f32x4(v2, v3, 0xEE));
    __m512 b = _mm512_add_ps(_mm512_shuffle_f32x4(a01, a23, 0x88), _mm512_shuffle_f32x4(a01, a23, 0xDD));
    b = _mm512_add_ps(b, _mm512_permute_ps(b, 0xEE));
    b = _mm512_add_ps(b, _mm512_movehdup_ps(b));
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), b));
}

/* Tile epilogue: y[c * ldy + r] = hsum512(acc[r][c]) (+ tail[r][c]); the 4
 * rows of a full tile reduced together. */
SX_INLINE void store_tile(__m512 acc[4][4], const float (*tail)[4], const int NR, const int NC, float *y, int64_t ldy) {
#pragma GCC unroll 4
    for (int c = 0; c < NC; c++) {
        if (NR == 4) {
            __m128 h = hsum512x4(acc[0][c], acc[1][c], acc[2][c], acc[3][c]);
            if (tail) h = _mm_add_ps(h, _mm_setr_ps(tail[0][c], tail[1][c], tail[2][c], tail[3][c]));
            _mm_storeu_ps(y + c * ldy, h);
            continue;
        }
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) y[c * ldy + r] = tail ? hsum512(acc[r][c]) + tail[r][c] : hsum512(acc[r][c]);
    }
}

/* Two blocks of 16 nibble bytes -> [lo0 hi0 lo1 hi1] as 64 unsigned bytes. */
SX_INLINE __m512i unpack_nibbles_2x32(const uint8_t *qs0, const uint8_t *qs1) {
    const __m256i raw = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)qs0)),
        _mm_loadu_si128((const __m128i *)qs1), 1);
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1);
    return _mm512_and_si512(_mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0)), _mm512_set1_epi8(0x0F));
}

SX_INLINE __m256i unpack_nibbles_32(const uint8_t *qs) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

SX_INLINE __m512i zext256(__m256i v) { return _mm512_inserti64x4(_mm512_setzero_si512(), v, 0); }

/* q5_0/q5_1: 0x10 in byte j where bit j of the qh word is set (the 5th bit
 * of code j); two blocks give the 64-byte order of unpack_nibbles_2x32. */
SX_INLINE __m512i q5_bits_2x32(const uint8_t *qh0, const uint8_t *qh1) {
    uint32_t h0, h1;
    memcpy(&h0, qh0, 4);
    memcpy(&h1, qh1, 4);
    return _mm512_maskz_mov_epi8((__mmask64)(((uint64_t)h1 << 32) | h0), _mm512_set1_epi8(0x10));
}
SX_INLINE __m256i q5_bits_32(const uint8_t *qh) {
    uint32_t h;
    memcpy(&h, qh, 4);
    return _mm256_maskz_mov_epi8((__mmask32)h, _mm256_set1_epi8(0x10));
}

/* Plain AVX-512BW (no VNNI) */
#define SX_VNNI 0
#define SX_SFX(name) name##_avx512
#define SX_AVX512_TEMPLATE
#include "cpu_simd_avx512.c"
#undef SX_AVX512_TEMPLATE
#undef SX_SFX
#undef SX_VNNI

/* AVX-512 VNNI */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512vnni")
#endif
#define SX_VNNI 1
#define SX_SFX(name) name##_avx512vnni
#define SX_AVX512_TEMPLATE
#include "cpu_simd_avx512.c"
#undef SX_AVX512_TEMPLATE
#undef SX_SFX
#undef SX_VNNI
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

const sx_cpu_kernels *sx_cpu_kernels_avx512(void) { return &k_table_avx512; }
const sx_cpu_kernels *sx_cpu_kernels_avx512vnni(void) { return &k_table_avx512vnni; }

#else /* not x86-64 */

const sx_cpu_kernels *sx_cpu_kernels_avx512(void) { return 0; }
const sx_cpu_kernels *sx_cpu_kernels_avx512vnni(void) { return 0; }

#endif

#else /* ======================= template body: SX_VNNI, SX_SFX ======================= */

/* sum of 4 u8*s8 products per int32 lane, added to acc */
SX_INLINE __m512i SX_SFX(dp_u8s8)(__m512i acc, __m512i u, __m512i s) {
#if SX_VNNI
    return _mm512_dpbusd_epi32(acc, u, s);
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
#endif
}

/* sum of 2 s16*s16 products per int32 lane, added to acc */
SX_INLINE __m512i SX_SFX(dp_s16)(__m512i acc, __m512i a, __m512i b) {
#if SX_VNNI
    return _mm512_dpwssd_epi32(acc, a, b);
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
#endif
}

/* Tile dispatch: NR in {4, 1} (a short last row group runs row by row) and
 * NC in {4, 2, 1} (3 = 2 + 1), all compile-time constants so the tile loops
 * unroll into registers. */
#define SX_TILE_FN(name)                                                                          \
    static void SX_SFX(name)(int64_t K, const void *W, size_t ws, int nr, const void *x, size_t xs, \
                             int nc, float *y, int64_t ldy) {                                     \
        const char *w = (const char *)W, *xc = (const char *)x;                                   \
        while (nc > 0) {                                                                          \
            const int c = nc >= 4 ? 4 : nc >= 2 ? 2 : 1;                                          \
            if (nr == 4) {                                                                        \
                if (c == 4) SX_SFX(name##_n)(K, w, ws, 4, xc, xs, 4, y, ldy);                     \
                else if (c == 2) SX_SFX(name##_n)(K, w, ws, 4, xc, xs, 2, y, ldy);                \
                else SX_SFX(name##_n)(K, w, ws, 4, xc, xs, 1, y, ldy);                            \
            } else {                                                                              \
                for (int r = 0; r < nr; r++) {                                                    \
                    if (c == 4) SX_SFX(name##_n)(K, w + r * ws, ws, 1, xc, xs, 4, y + r, ldy);    \
                    else if (c == 2) SX_SFX(name##_n)(K, w + r * ws, ws, 1, xc, xs, 2, y + r, ldy); \
                    else SX_SFX(name##_n)(K, w + r * ws, ws, 1, xc, xs, 1, y + r, ldy);           \
                }                                                                                 \
            }                                                                                     \
            xc += c * xs, y += c * ldy, nc -= c;                                                  \
        }                                                                                         \
    }

/* ------------------------------------------------- q4_0, q4_1, q8_0 x q8 */

/* sum of each 4 consecutive int8 values, as int32 lanes */
SX_INLINE __m512i SX_SFX(sum4)(__m512i x) {
    return SX_SFX(dp_u8s8)(_mm512_setzero_si512(), _mm512_set1_epi8(1), x);
}

/* kind: 0 = q4_0, 1 = q4_1, 2 = q8_0, 3 = q5_0, 4 = q5_1 (q5: the q4 nibbles
 * with 0x10 added where the block's qh bit is set, a byte mask straight from
 * the two qh words). Two blocks per 512-bit step; lanes 0..7
 * belong to block b, 8..15 to block b+1. Per tile element:
 *   dot  = base + sum over 4 codes of (unsigned code) * x          (int32 lanes)
 *   part = dot * dw (+ min * sum4(x) for q4_1)                    (f32 lanes)
 *   acc += part * dx
 * where base = -8 sum4(x) for q4_0, -16 sum4(x) for q5_0 and -128 sum4(x) for
 * q8_0 with VNNI (the code there is w + 128); without VNNI q8_0 uses |w| and
 * sign(w) x; q5_1's min enters like q4_1's. The
 * per-activation terms (x, dx, base) are computed once per column and step,
 * the per-weight terms (codes, dw, min) once per row and step. */
SX_INLINE void SX_SFX(gemm_legacy_n)(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                                     const int NC, float *y, int64_t ldy, const int kind) {
    const size_t bsz = kind == 0 ? sizeof(sx_block_q4_0) : kind == 1 ? sizeof(sx_block_q4_1)
                     : kind == 2 ? sizeof(sx_block_q8_0) : kind == 3 ? sizeof(sx_block_q5_0) : sizeof(sx_block_q5_1);
    const int64_t nb = K / 32;
    const bool has_m = kind == 1 || kind == 4;
    const bool use_base = kind == 0 || kind == 3 || (kind == 2 && SX_VNNI);
    const int base_shift = kind == 0 ? 3 : kind == 3 ? 4 : 7;
    const bool sign_x = kind == 2 && !SX_VNNI;
    const __m512i idx02 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    const __m512i idx13 = _mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m512i idx01 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) acc[r][c] = _mm512_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, nb);
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        sx_cpu_pf_step(&pf, b + 2);
        __m512i wv[4];
        __m512 dw[4], mw[4];
        __mmask64 neg[4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const char *b0 = W + r * ws + b * bsz, *b1 = b0 + bsz;
            if (has_m) {
                uint32_t u0, u1; /* (d, m) halves */
                memcpy(&u0, b0, 4);
                memcpy(&u1, b1, 4);
                const __m512 dm = _mm512_castps128_ps512(
                    _mm_cvtph_ps(_mm_cvtsi64_si128((long long)(((uint64_t)u1 << 32) | u0))));
                dw[r] = _mm512_permutexvar_ps(idx02, dm);
                mw[r] = _mm512_permutexvar_ps(idx13, dm);
                if (kind == 4)
                    wv[r] = _mm512_or_si512(unpack_nibbles_2x32(((const sx_block_q5_1 *)b0)->qs, ((const sx_block_q5_1 *)b1)->qs),
                                            q5_bits_2x32(((const sx_block_q5_1 *)b0)->qh, ((const sx_block_q5_1 *)b1)->qh));
                else
                    wv[r] = unpack_nibbles_2x32(((const sx_block_q4_1 *)b0)->qs, ((const sx_block_q4_1 *)b1)->qs);
            } else {
                uint16_t h0, h1;
                memcpy(&h0, b0, 2);
                memcpy(&h1, b1, 2);
                dw[r] = _mm512_permutexvar_ps(
                    idx01, _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)h1 << 16 | h0)))));
                if (kind == 0) {
                    wv[r] = unpack_nibbles_2x32(((const sx_block_q4_0 *)b0)->qs, ((const sx_block_q4_0 *)b1)->qs);
                } else if (kind == 3) {
                    wv[r] = _mm512_or_si512(unpack_nibbles_2x32(((const sx_block_q5_0 *)b0)->qs, ((const sx_block_q5_0 *)b1)->qs),
                                            q5_bits_2x32(((const sx_block_q5_0 *)b0)->qh, ((const sx_block_q5_0 *)b1)->qh));
                } else {
                    const __m512i raw = _mm512_inserti64x4(
                        _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)((const sx_block_q8_0 *)b0)->qs)),
                        _mm256_loadu_si256((const __m256i *)((const sx_block_q8_0 *)b1)->qs), 1);
                    if (sign_x) {
                        neg[r] = _mm512_movepi8_mask(raw);
                        wv[r] = _mm512_abs_epi8(raw);
                    } else {
                        wv[r] = _mm512_xor_si512(raw, _mm512_set1_epi8((char)0x80)); /* w + 128 */
                    }
                }
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) {
            const int8_t *xq = (const int8_t *)(x + c * xs);
            const float *xds = (const float *)(xq + K);
            const __m512i xv = _mm512_loadu_si512((const void *)(xq + 32 * b));
            const __m512 dx = _mm512_permutexvar_ps(idx02, _mm512_castps128_ps512(_mm_loadu_ps(xds + 2 * b)));
            __m512i base = _mm512_setzero_si512();
            __m512 s4f = _mm512_setzero_ps();
            if (use_base)
                base = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(SX_SFX(sum4)(xv), base_shift));
            if (has_m) s4f = _mm512_cvtepi32_ps(SX_SFX(sum4)(xv));
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) {
                const __m512i xs_v = sign_x ? _mm512_mask_sub_epi8(xv, neg[r], _mm512_setzero_si512(), xv) : xv;
                const __m512 dot = _mm512_cvtepi32_ps(SX_SFX(dp_u8s8)(base, wv[r], xs_v));
                const __m512 part = has_m ? _mm512_fmadd_ps(dot, dw[r], _mm512_mul_ps(s4f, mw[r]))
                                          : _mm512_mul_ps(dot, dw[r]);
                acc[r][c] = _mm512_fmadd_ps(part, dx, acc[r][c]);
            }
        }
    }
    float tail[4][4] = {{0}};
    if (b < nb) { /* odd block count: the last block with 256-bit maddubs */
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const char *b0 = W + r * ws + b * bsz;
            __m256i wv;
            float d, o; /* offset per unit of s_x */
            if (kind == 0) {
                const sx_block_q4_0 *w = (const sx_block_q4_0 *)b0;
                wv = unpack_nibbles_32(w->qs);
                d = f16(w->d), o = -8.0f * d;
            } else if (kind == 1) {
                const sx_block_q4_1 *w = (const sx_block_q4_1 *)b0;
                wv = unpack_nibbles_32(w->qs);
                d = f16(w->d), o = f16(w->m);
            } else if (kind == 3) {
                const sx_block_q5_0 *w = (const sx_block_q5_0 *)b0;
                wv = _mm256_or_si256(unpack_nibbles_32(w->qs), q5_bits_32(w->qh));
                d = f16(w->d), o = -16.0f * d;
            } else if (kind == 4) {
                const sx_block_q5_1 *w = (const sx_block_q5_1 *)b0;
                wv = _mm256_or_si256(unpack_nibbles_32(w->qs), q5_bits_32(w->qh));
                d = f16(w->d), o = f16(w->m);
            } else {
                const sx_block_q8_0 *w = (const sx_block_q8_0 *)b0;
                wv = _mm256_loadu_si256((const __m256i *)w->qs);
                d = f16(w->d), o = 0.0f;
            }
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) {
                const int8_t *xq = (const int8_t *)(x + c * xs);
                const float *xds = (const float *)(xq + K);
                __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + 32 * b)), uw = wv;
                if (kind == 2) xv = _mm256_sign_epi8(xv, wv), uw = _mm256_sign_epi8(wv, wv);
                const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(uw, xv), _mm256_set1_epi16(1));
                tail[r][c] = hsum256(_mm256_cvtepi32_ps(p)) * (d * xds[2 * b]) + o * xds[2 * b + 1];
            }
        }
    }
    store_tile(acc, (const float (*)[4])tail, NR, NC, y, ldy);
}

SX_INLINE void SX_SFX(gemm_q4_0_n)(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                                   const int NC, float *y, int64_t ldy) {
    SX_SFX(gemm_legacy_n)(K, W, ws, NR, x, xs, NC, y, ldy, 0);
}
SX_INLINE void SX_SFX(gemm_q4_1_n)(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                                   const int NC, float *y, int64_t ldy) {
    SX_SFX(gemm_legacy_n)(K, W, ws, NR, x, xs, NC, y, ldy, 1);
}
SX_INLINE void SX_SFX(gemm_q8_0_n)(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                                   const int NC, float *y, int64_t ldy) {
    SX_SFX(gemm_legacy_n)(K, W, ws, NR, x, xs, NC, y, ldy, 2);
}
SX_INLINE void SX_SFX(gemm_q5_0_n)(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                                   const int NC, float *y, int64_t ldy) {
    SX_SFX(gemm_legacy_n)(K, W, ws, NR, x, xs, NC, y, ldy, 3);
}
SX_INLINE void SX_SFX(gemm_q5_1_n)(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                                   const int NC, float *y, int64_t ldy) {
    SX_SFX(gemm_legacy_n)(K, W, ws, NR, x, xs, NC, y, ldy, 4);
}
SX_TILE_FN(gemm_q4_0)
SX_TILE_FN(gemm_q4_1)
SX_TILE_FN(gemm_q8_0)
SX_TILE_FN(gemm_q5_0)
SX_TILE_FN(gemm_q5_1)

/* --------------------------------------------------------- q4_k x q8k */

/* Rows outer: per row and super-block the int sums of the NC columns live
 * in registers, then fold into the f32 tile accumulators. */
SX_INLINE void SX_SFX(gemm_q4_k_n)(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                                   const int NC, float *y, int64_t ldy) {
    const int64_t nb = K / 256;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    /* vpermw indices: chunk k takes scale 2k for lanes 0..15 and 2k+1 for 16..31 */
    __m512i sel[4];
    for (int k = 0; k < 4; k++)
        sel[k] = _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16((short)(2 * k)),
                                         _mm512_set1_epi16((short)(2 * k + 1)));
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) acc[r][c] = _mm512_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, nb);
    for (int64_t b = 0; b < nb; b++) {
        sx_cpu_pf_step(&pf, b + 1);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const sx_block_q4_k *w = (const sx_block_q4_k *)(W + r * ws) + b;
            uint32_t u[4];
            sx_cpu_q4k_scales(w->scales, u);
            const __m128i sm8 = _mm_setr_epi32((int)u[0], (int)u[1], (int)u[2], (int)u[3]); /* sc0..7 m0..7 */
            const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(sm8));
            const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_srli_si128(sm8, 8), dup));
            const float d = f16(w->d), dmin = f16(w->dmin);
            __m512i isum[4];
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) isum[c] = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i raw = _mm256_loadu_si256((const __m256i *)(w->qs + 32 * k));
                const __m512i q = _mm512_and_si512(
                    _mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1), m4);
                const __m512i scv = _mm512_permutexvar_epi16(sel[k], sc16);
#pragma GCC unroll 4
                for (int c = 0; c < NC; c++) {
                    const int8_t *xb = (const int8_t *)(x + c * xs) + 256 * b;
                    const __m512i p = _mm512_maddubs_epi16(q, _mm512_loadu_si512((const void *)(xb + 64 * k)));
                    isum[c] = SX_SFX(dp_s16)(isum[c], p, scv);
                }
            }
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) {
                const int8_t *xq = (const int8_t *)(x + c * xs);
                const float *xd = (const float *)(xq + K);
                const int16_t *xbs = (const int16_t *)(xd + nb);
                const __m256i msum = _mm256_madd_epi16(mins16, _mm256_loadu_si256((const __m256i *)(xbs + 16 * b)));
                const float dx = xd[b];
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_set1_ps(d * dx), acc[r][c]);
                acc[r][c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(zext256(msum)), _mm512_set1_ps(dmin * dx), acc[r][c]);
            }
        }
    }
    store_tile(acc, NULL, NR, NC, y, ldy);
}
SX_TILE_FN(gemm_q4_k)

/* --------------------------------------------------------- q5_k x q8k */

/* gemm_q4_k with the 5th bit: chunk k's 64 codes (32 low nibbles, then 32
 * high) take bit 2k resp. 2k+1 of qh[l]; vptestmb against a per-half bit
 * pattern gives the byte mask that adds 0x10. Codes <= 31, scales <= 63. */
SX_INLINE void SX_SFX(gemm_q5_k_n)(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                                   const int NC, float *y, int64_t ldy) {
    const int64_t nb = K / 256;
    const __m512i m4 = _mm512_set1_epi8(0x0F), b4 = _mm512_set1_epi8(0x10);
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    __m512i sel[4], hbit[4];
    for (int k = 0; k < 4; k++) {
        sel[k] = _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16((short)(2 * k)),
                                         _mm512_set1_epi16((short)(2 * k + 1)));
        hbit[k] = _mm512_mask_blend_epi8(0xFFFFFFFF00000000ull, _mm512_set1_epi8((char)(1 << (2 * k))),
                                         _mm512_set1_epi8((char)(1 << (2 * k + 1))));
    }
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) acc[r][c] = _mm512_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, nb);
    for (int64_t b = 0; b < nb; b++) {
        sx_cpu_pf_step(&pf, b + 1);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const sx_block_q5_k *w = (const sx_block_q5_k *)(W + r * ws) + b;
            uint32_t u[4];
            sx_cpu_q4k_scales(w->scales, u);
            const __m128i sm8 = _mm_setr_epi32((int)u[0], (int)u[1], (int)u[2], (int)u[3]); /* sc0..7 m0..7 */
            const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(sm8));
            const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_srli_si128(sm8, 8), dup));
            const __m512i H = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)w->qh));
            const float d = f16(w->d), dmin = f16(w->dmin);
            __m512i isum[4];
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) isum[c] = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i raw = _mm256_loadu_si256((const __m256i *)(w->qs + 32 * k));
                __m512i q = _mm512_and_si512(
                    _mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1), m4);
                q = _mm512_or_si512(q, _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(H, hbit[k]), b4));
                const __m512i scv = _mm512_permutexvar_epi16(sel[k], sc16);
#pragma GCC unroll 4
                for (int c = 0; c < NC; c++) {
                    const int8_t *xb = (const int8_t *)(x + c * xs) + 256 * b;
                    const __m512i p = _mm512_maddubs_epi16(q, _mm512_loadu_si512((const void *)(xb + 64 * k)));
                    isum[c] = SX_SFX(dp_s16)(isum[c], p, scv);
                }
            }
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) {
                const int8_t *xq = (const int8_t *)(x + c * xs);
                const float *xd = (const float *)(xq + K);
                const int16_t *xbs = (const int16_t *)(xd + nb);
                const __m256i msum = _mm256_madd_epi16(mins16, _mm256_loadu_si256((const __m256i *)(xbs + 16 * b)));
                const float dx = xd[b];
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_set1_ps(d * dx), acc[r][c]);
                acc[r][c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(zext256(msum)), _mm512_set1_ps(dmin * dx), acc[r][c]);
            }
        }
    }
    store_tile(acc, NULL, NR, NC, y, ldy);
}
SX_TILE_FN(gemm_q5_k)

/* --------------------------------------------------------- q6_k x q8k */

SX_INLINE void SX_SFX(gemm_q6_k_n)(int64_t K, const char *W, size_t ws, const int NR, const char *x, size_t xs,
                                   const int NC, float *y, int64_t ldy) {
    const int64_t nb = K / 256;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    /* qh bits for [g0 | g1]: (qh << 4) and (qh << 2); for [g2 | g3]: qh and (qh >> 2) */
    const __m512i shl = _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16(4), _mm512_set1_epi16(2));
    const __m512i shr = _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16(0), _mm512_set1_epi16(2));
    /* register j (0..3) of a super-block: 4 scales, each for 8 int16 lanes */
    __m512i sel[4];
    for (int j = 0; j < 4; j++) {
        short idx[32];
        for (int l = 0; l < 32; l++) idx[l] = (short)(4 * j + l / 8);
        sel[j] = _mm512_loadu_si512((const void *)idx);
    }
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) acc[r][c] = _mm512_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, nb);
    for (int64_t b = 0; b < nb; b++) {
        sx_cpu_pf_step(&pf, b + 1);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const sx_block_q6_k *w = (const sx_block_q6_k *)(W + r * ws) + b;
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w->scales));
            const __m512i sc = _mm512_castsi256_si512(sc16);
            const float d = f16(w->d);
            __m512i isum[4];
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) { /* -32 offset through the activation sums */
                const int8_t *xq = (const int8_t *)(x + c * xs);
                const int16_t *xbs = (const int16_t *)((const float *)(xq + K) + nb);
                const __m256i o = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)(xbs + 16 * b)));
                isum[c] = zext256(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(o, 5)));
            }
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const __m512i L = _mm512_loadu_si512((const void *)(w->ql + 64 * h));
                const __m512i H = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w->qh + 32 * h)));
                const __m512i A = _mm512_or_si512(_mm512_and_si512(L, m4),
                                                  _mm512_and_si512(_mm512_sllv_epi16(H, shl), m30));
                const __m512i B = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m4),
                                                  _mm512_and_si512(_mm512_srlv_epi16(H, shr), m30));
                const __m512i scA = _mm512_permutexvar_epi16(sel[2 * h], sc);
                const __m512i scB = _mm512_permutexvar_epi16(sel[2 * h + 1], sc);
#pragma GCC unroll 4
                for (int c = 0; c < NC; c++) {
                    const int8_t *xb = (const int8_t *)(x + c * xs) + 256 * b + 128 * h;
                    const __m512i pA = _mm512_maddubs_epi16(A, _mm512_loadu_si512((const void *)xb));
                    const __m512i pB = _mm512_maddubs_epi16(B, _mm512_loadu_si512((const void *)(xb + 64)));
                    isum[c] = SX_SFX(dp_s16)(SX_SFX(dp_s16)(isum[c], pA, scA), pB, scB);
                }
            }
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) {
                const float dx = ((const float *)(x + c * xs + K))[b];
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_set1_ps(d * dx), acc[r][c]);
            }
        }
    }
    store_tile(acc, NULL, NR, NC, y, ldy);
}
SX_TILE_FN(gemm_q6_k)

/* ------------------------------------------- wide prefill kernels (VNNI) */
/* wide */
#if SX_VNNI
/* Column tiles (cpu_fast.h): one 64-byte load holds 4 consecutive K values
 * of 16 activation columns; the 4 matching weight codes of a row, broadcast
 * to all lanes, make one vpdpbusd compute 16 columns x 4 K. Weight codes are
 * unpacked per row and block into a small L1 buffer (natural order, unsigned:
 * q2/q3/q4/q5 codes, q6 codes, q8 codes and iq4 values + 128) and read back
 * as 4-byte broadcasts. Offsets (q4_0 -8, q5_0 -16, q8_0/iq4 -128, q6_k -32,
 * q3_k -4) and q2_k/q4_1/q5_1/q4_k/q5_k mins go through the
 * activation block sums, per block in f32 (legacy, q4_k, q5_k) or int (q6_k). */

#define SX_T_FN(name)                                                                         \
    static void name(int64_t K, const void *W, size_t ws, int nr, const void *xt, int ncols,  \
                     float *y, int64_t ldy) {                                                 \
        switch (nr) {                                                                         \
        case 4: name##_n(K, (const char *)W, ws, 4, (const char *)xt, ncols, y, ldy); break;  \
        case 3: name##_n(K, (const char *)W, ws, 3, (const char *)xt, ncols, y, ldy); break;  \
        case 2: name##_n(K, (const char *)W, ws, 2, (const char *)xt, ncols, y, ldy); break;  \
        default: name##_n(K, (const char *)W, ws, 1, (const char *)xt, ncols, y, ldy); break; \
        }                                                                                     \
    }

/* the 16 iq4 values + 128 (unsigned), in both 128-bit lanes */
SX_INLINE __m256i iq4_table_u8(void) {
    static const int8_t v[16] = SX_IQ4NL_VALUES;
    return _mm256_xor_si256(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)v)), _mm256_set1_epi8((char)0x80));
}

SX_INLINE __m512i bcast4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* column c of v -> y[c * ldy] for c < ncols */
SX_INLINE void store_cols(__m512 v, int ncols, float *y, int64_t ldy) {
    _Alignas(64) float tmp[16];
    _mm512_store_ps(tmp, v);
    for (int c = 0; c < ncols; c++) y[c * ldy] = tmp[c];
}

SX_INLINE void gemm_t_legacy_n(int64_t K, const char *W, size_t ws, const int NR, const char *xt, int ncols,
                               float *y, int64_t ldy, const int kind) {
    const int64_t nb = K / 32;
    const float *xdx = (const float *)(xt + K * SX_CPU_TCOLS), *xsx = xdx + nb * SX_CPU_TCOLS;
    const size_t bsz = kind == 0 ? sizeof(sx_block_q4_0) : kind == 1 ? sizeof(sx_block_q4_1)
                     : kind == 2 ? sizeof(sx_block_q8_0) : kind == 3 ? sizeof(sx_block_q5_0)
                     : kind == 4 ? sizeof(sx_block_q5_1) : sizeof(sx_block_iq4_nl);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m256i tab = iq4_table_u8();
    _Alignas(64) uint8_t wb[4][32];
    __m512 acc[4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, nb);
    for (int64_t b = 0; b < nb; b++) {
        sx_cpu_pf_step(&pf, b + 1);
        float dw[4], ow[4]; /* scale, offset per unit of s_x */
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const char *blk = W + r * ws + b * bsz;
            if (kind == 5) { /* iq4_nl: table values + 128, offset -128 d */
                const sx_block_iq4_nl *w = (const sx_block_iq4_nl *)blk;
                dw[r] = f16(w->d), ow[r] = -128.0f * dw[r];
                _mm256_store_si256((__m256i *)wb[r], _mm256_shuffle_epi8(tab, unpack_nibbles_32(w->qs)));
            } else if (kind == 2) {
                const sx_block_q8_0 *w = (const sx_block_q8_0 *)blk;
                dw[r] = f16(w->d), ow[r] = -128.0f * dw[r];
                _mm256_store_si256((__m256i *)wb[r], _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)w->qs),
                                                                      _mm256_set1_epi8((char)0x80)));
            } else if (kind >= 3) { /* q5_0 (offset -16 d), q5_1 (min m) */
                const uint8_t *qs, *qh;
                if (kind == 4) {
                    const sx_block_q5_1 *w = (const sx_block_q5_1 *)blk;
                    dw[r] = f16(w->d), ow[r] = f16(w->m), qs = w->qs, qh = w->qh;
                } else {
                    const sx_block_q5_0 *w = (const sx_block_q5_0 *)blk;
                    dw[r] = f16(w->d), ow[r] = -16.0f * dw[r], qs = w->qs, qh = w->qh;
                }
                _mm256_store_si256((__m256i *)wb[r], _mm256_or_si256(unpack_nibbles_32(qs), q5_bits_32(qh)));
            } else {
                const uint8_t *qs;
                if (kind == 1) {
                    const sx_block_q4_1 *w = (const sx_block_q4_1 *)blk;
                    dw[r] = f16(w->d), ow[r] = f16(w->m), qs = w->qs;
                } else {
                    const sx_block_q4_0 *w = (const sx_block_q4_0 *)blk;
                    dw[r] = f16(w->d), ow[r] = -8.0f * dw[r], qs = w->qs;
                }
                const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
                _mm_store_si128((__m128i *)wb[r], _mm_and_si128(raw, m4));
                _mm_store_si128((__m128i *)(wb[r] + 16), _mm_and_si128(_mm_srli_epi16(raw, 4), m4));
            }
        }
        __m512i isum[4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) isum[r] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            const __m512i xv = _mm512_loadu_si512((const void *)(xt + (8 * b + g) * 64));
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) isum[r] = _mm512_dpbusd_epi32(isum[r], bcast4(wb[r] + 4 * g), xv);
        }
        const __m512 dx = _mm512_loadu_ps(xdx + b * SX_CPU_TCOLS), sx = _mm512_loadu_ps(xsx + b * SX_CPU_TCOLS);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(isum[r]), dx), _mm512_set1_ps(dw[r]), acc[r]);
            acc[r] = _mm512_fmadd_ps(sx, _mm512_set1_ps(ow[r]), acc[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) store_cols(acc[r], ncols, y + r, ldy);
}

SX_INLINE void gemm_t_q4_0_n(int64_t K, const char *W, size_t ws, const int NR, const char *xt, int ncols,
                             float *y, int64_t ldy) {
    gemm_t_legacy_n(K, W, ws, NR, xt, ncols, y, ldy, 0);
}
SX_INLINE void gemm_t_q4_1_n(int64_t K, const char *W, size_t ws, const int NR, const char *xt, int ncols,
                             float *y, int64_t ldy) {
    gemm_t_legacy_n(K, W, ws, NR, xt, ncols, y, ldy, 1);
}
SX_INLINE void gemm_t_q8_0_n(int64_t K, const char *W, size_t ws, const int NR, const char *xt, int ncols,
                             float *y, int64_t ldy) {
    gemm_t_legacy_n(K, W, ws, NR, xt, ncols, y, ldy, 2);
}
SX_INLINE void gemm_t_q5_0_n(int64_t K, const char *W, size_t ws, const int NR, const char *xt, int ncols,
                             float *y, int64_t ldy) {
    gemm_t_legacy_n(K, W, ws, NR, xt, ncols, y, ldy, 3);
}
SX_INLINE void gemm_t_q5_1_n(int64_t K, const char *W, size_t ws, const int NR, const char *xt, int ncols,
                             float *y, int64_t ldy) {
    gemm_t_legacy_n(K, W, ws, NR, xt, ncols, y, ldy, 4);
}
SX_INLINE void gemm_t_iq4_nl_n(int64_t K, const char *W, size_t ws, const int NR, const char *xt, int ncols,
                               float *y, int64_t ldy) {
    gemm_t_legacy_n(K, W, ws, NR, xt, ncols, y, ldy, 5);
}
SX_T_FN(gemm_t_iq4_nl)
SX_T_FN(gemm_t_q4_0)
SX_T_FN(gemm_t_q4_1)
SX_T_FN(gemm_t_q8_0)
SX_T_FN(gemm_t_q5_0)
SX_T_FN(gemm_t_q5_1)

/* q4_k and (q5 = true) q5_k: the same but for the 5th bits added to the codes
 * (bit 2k / 2k+1 of qh[l] for chunk k's low / high nibbles). */
SX_INLINE void gemm_t_kmin_n(int64_t K, const char *W, size_t ws, const int NR, const char *xt, int ncols,
                             float *y, int64_t ldy, const bool q5) {
    const int64_t nb = K / 256;
    const float *xdx = (const float *)(xt + K * SX_CPU_TCOLS), *xb32 = xdx + nb * SX_CPU_TCOLS;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m1 = _mm256_set1_epi8(0x01);
    _Alignas(64) uint8_t wb[4][256];
    _Alignas(32) float scf[4][8], mnf[4][8];
    __m512 acc[4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, nb);
    for (int64_t b = 0; b < nb; b++) {
        sx_cpu_pf_step(&pf, b + 1);
        float d[4], dmin[4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const sx_block_q4_k *w4 = (const sx_block_q4_k *)(W + r * ws) + b;
            const sx_block_q5_k *w5 = (const sx_block_q5_k *)(W + r * ws) + b;
            const uint8_t *qs = q5 ? w5->qs : w4->qs;
            const __m256i qh = q5 ? _mm256_loadu_si256((const __m256i *)w5->qh) : _mm256_setzero_si256();
            uint32_t u[4];
            sx_cpu_q4k_scales(q5 ? w5->scales : w4->scales, u);
            const __m128i sm8 = _mm_setr_epi32((int)u[0], (int)u[1], (int)u[2], (int)u[3]);
            _mm256_store_ps(scf[r], _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm8)));
            _mm256_store_ps(mnf[r], _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm8, 8))));
            d[r] = f16(q5 ? w5->d : w4->d), dmin[r] = f16(q5 ? w5->dmin : w4->dmin);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * k));
                __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
                if (q5) {
                    lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), m1), 4));
                    hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * k + 1), m1), 4));
                }
                _mm256_store_si256((__m256i *)(wb[r] + 64 * k), lo);
                _mm256_store_si256((__m256i *)(wb[r] + 64 * k + 32), hi);
            }
        }
        __m512 fsb[4], msum[4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) fsb[r] = msum[r] = _mm512_setzero_ps();
        for (int j = 0; j < 8; j++) { /* sub-blocks of 32 */
            __m512i isum[4];
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) isum[r] = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) {
                const __m512i xv = _mm512_loadu_si512((const void *)(xt + (64 * b + 8 * j + g) * 64));
#pragma GCC unroll 4
                for (int r = 0; r < NR; r++)
                    isum[r] = _mm512_dpbusd_epi32(isum[r], bcast4(wb[r] + 32 * j + 4 * g), xv);
            }
            const __m512 bs = _mm512_loadu_ps(xb32 + (8 * b + j) * SX_CPU_TCOLS);
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) {
                fsb[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), _mm512_set1_ps(scf[r][j]), fsb[r]);
                msum[r] = _mm512_fmadd_ps(bs, _mm512_set1_ps(mnf[r][j]), msum[r]);
            }
        }
        const __m512 dx = _mm512_loadu_ps(xdx + b * SX_CPU_TCOLS);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const __m512 t = _mm512_fnmadd_ps(msum[r], _mm512_set1_ps(dmin[r]),
                                              _mm512_mul_ps(fsb[r], _mm512_set1_ps(d[r])));
            acc[r] = _mm512_fmadd_ps(t, dx, acc[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) store_cols(acc[r], ncols, y + r, ldy);
}
SX_INLINE void gemm_t_q4_k_n(int64_t K, const char *W, size_t ws, const int NR, const char *xt, int ncols,
                             float *y, int64_t ldy) {
    gemm_t_kmin_n(K, W, ws, NR, xt, ncols, y, ldy, false);
}
SX_INLINE void gemm_t_q5_k_n(int64_t K, const char *W, size_t ws, const int NR, const char *xt, int ncols,
                             float *y, int64_t ldy) {
    gemm_t_kmin_n(K, W, ws, NR, xt, ncols, y, ldy, true);
}
SX_T_FN(gemm_t_q4_k)
SX_T_FN(gemm_t_q5_k)

/* One sub-block of the wide K-quant kernels: NG groups of 4 K values (tile
 * groups q0..q0+NG-1, codes at wb + r * 256 + w0) for NR rows:
 * fsb[r] += scf[r * scf_stride] * (init + sum codes * x) */
SX_INLINE void t_subblock(const char *xt, int64_t q0, const int NG, const int NR, const uint8_t *wb, int w0, __m512i init,
                          const float *scf, int scf_stride, __m512 *fsb) {
    __m512i isum[4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) isum[r] = init;
#pragma GCC unroll 8
    for (int g = 0; g < NG; g++) {
        const __m512i xv = _mm512_loadu_si512((const void *)(xt + (q0 + g) * 64));
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) isum[r] = _mm512_dpbusd_epi32(isum[r], bcast4(wb + 256 * r + w0 + 4 * g), xv);
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) fsb[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), _mm512_set1_ps(scf[r * scf_stride]), fsb[r]);
}

SX_INLINE void gemm_t_q6_k_n(int64_t K, const char *W, size_t ws, const int NR, const char *xt, int ncols,
                             float *y, int64_t ldy) {
    const int64_t nb = K / 256;
    const float *xdx = (const float *)(xt + K * SX_CPU_TCOLS);
    const int32_t *xb16 = (const int32_t *)(xdx + nb * SX_CPU_TCOLS + (K / 32) * SX_CPU_TCOLS);
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    _Alignas(64) uint8_t wb[4][256];
    _Alignas(64) float scf[4][16];
    __m512 acc[4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, nb);
    for (int64_t b = 0; b < nb; b++) {
        sx_cpu_pf_step(&pf, b + 1);
        float d[4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const sx_block_q6_k *w = (const sx_block_q6_k *)(W + r * ws) + b;
            _mm512_store_ps(scf[r], _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)w->scales))));
            d[r] = f16(w->d);
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h));
                const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h + 32));
                const __m256i qh = _mm256_loadu_si256((const __m256i *)(w->qh + 32 * h));
                uint8_t *o = wb[r] + 128 * h;
                _mm256_store_si256((__m256i *)o, _mm256_or_si256(_mm256_and_si256(ql0, m4),
                                                                 _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)));
                _mm256_store_si256((__m256i *)(o + 32), _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                                                        _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)));
                _mm256_store_si256((__m256i *)(o + 64), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                                                        _mm256_and_si256(qh, m30)));
                _mm256_store_si256((__m256i *)(o + 96), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                                                        _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30)));
            }
        }
        __m512 fsb[4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) fsb[r] = _mm512_setzero_ps();
        for (int i = 0; i < 16; i++) { /* sub-blocks of 16; -32 offset via 32 * bsum16 */
            const __m512i init = _mm512_sub_epi32(_mm512_setzero_si512(),
                                                  _mm512_loadu_si512((const void *)(xb16 + (16 * b + i) * SX_CPU_TCOLS)));
            t_subblock(xt, 64 * b + 4 * i, 4, NR, wb[0], 16 * i, init, &scf[0][i], 16, fsb);
        }
        const __m512 dx = _mm512_loadu_ps(xdx + b * SX_CPU_TCOLS);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) acc[r] = _mm512_fmadd_ps(fsb[r], _mm512_mul_ps(dx, _mm512_set1_ps(d[r])), acc[r]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) store_cols(acc[r], ncols, y + r, ldy);
}
SX_T_FN(gemm_t_q6_k)
/* q2_k (kind 0) and q3_k (kind 1): sub-blocks of 16 as q6_k. Codes
 * unsigned: q2_k 0..3 (mins through bsum16 in f32), q3_k 0..7 with the -4
 * through 4 * bsum16 (the tile holds 32 * bsum16: >> 3, exact). */
SX_INLINE void gemm_t_k2bit_n(int64_t K, const char *W, size_t ws, const int NR, const char *xt, int ncols,
                              float *y, int64_t ldy, const int kind) {
    const int64_t nb = K / 256;
    const size_t bsz = kind ? sizeof(sx_block_q3_k) : sizeof(sx_block_q2_k);
    const float *xdx = (const float *)(xt + K * SX_CPU_TCOLS);
    const int32_t *xb16 = (const int32_t *)(xdx + nb * SX_CPU_TCOLS + (K / 32) * SX_CPU_TCOLS);
    const __m256i m3 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(4);
    _Alignas(64) uint8_t wb[4][256];
    _Alignas(64) float scf[4][16], mnf[4][16];
    __m512 acc[4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, nb);
    for (int64_t b = 0; b < nb; b++) {
        sx_cpu_pf_step(&pf, b + 1);
        float d[4], dmin[4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const char *blk = W + r * ws + b * bsz;
            const sx_block_q2_k *w2 = (const sx_block_q2_k *)blk;
            const sx_block_q3_k *w3 = (const sx_block_q3_k *)blk;
            if (kind) {
                uint32_t u[4];
                sx_cpu_q3k_scales(w3->scales, u);
                const __m128i s8 = _mm_sub_epi8(_mm_setr_epi32((int)u[0], (int)u[1], (int)u[2], (int)u[3]), _mm_set1_epi8(32));
                _mm512_store_ps(scf[r], _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(s8)));
                d[r] = f16(w3->d), dmin[r] = 0.0f;
            } else {
                const __m128i s8 = _mm_loadu_si128((const __m128i *)w2->scales);
                _mm512_store_ps(scf[r], _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(s8, _mm_set1_epi8(0x0F)))));
                _mm512_store_ps(mnf[r], _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0x0F)))));
                d[r] = f16(w2->d), dmin[r] = f16(w2->dmin);
            }
            const __m256i hm = kind ? _mm256_loadu_si256((const __m256i *)w3->hmask) : _mm256_setzero_si256();
#pragma GCC unroll 2
            for (int n = 0; n < 2; n++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)((kind ? w3->qs : w2->qs) + 32 * n));
#pragma GCC unroll 4
                for (int g = 0; g < 4; g++) { /* element 128 n + 32 g + l: 2-bit field g of qs[32 n + l] */
                    __m256i u = _mm256_and_si256(_mm256_srli_epi16(q, 2 * g), m3);
                    if (kind)
                        u = _mm256_or_si256(u, _mm256_maskz_mov_epi8(_mm256_test_epi8_mask(hm, _mm256_set1_epi8((char)(1 << (4 * n + g)))), m4));
                    _mm256_store_si256((__m256i *)(wb[r] + 128 * n + 32 * g), u);
                }
            }
        }
        __m512 fsb[4], msum[4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) fsb[r] = msum[r] = _mm512_setzero_ps();
        for (int i = 0; i < 16; i++) { /* sub-blocks of 16 */
            const __m512i b16 = _mm512_loadu_si512((const void *)(xb16 + (16 * b + i) * SX_CPU_TCOLS));
            const __m512i init = kind ? _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_srai_epi32(b16, 3)) : _mm512_setzero_si512();
            t_subblock(xt, 64 * b + 4 * i, 4, NR, wb[0], 16 * i, init, &scf[0][i], 16, fsb);
            if (!kind) {
                const __m512 bsf = _mm512_cvtepi32_ps(_mm512_srai_epi32(b16, 5)); /* bsum16 */
#pragma GCC unroll 4
                for (int r = 0; r < NR; r++) msum[r] = _mm512_fmadd_ps(bsf, _mm512_set1_ps(mnf[r][i]), msum[r]);
            }
        }
        const __m512 dx = _mm512_loadu_ps(xdx + b * SX_CPU_TCOLS);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const __m512 t = kind ? _mm512_mul_ps(fsb[r], _mm512_set1_ps(d[r]))
                                  : _mm512_fnmadd_ps(msum[r], _mm512_set1_ps(dmin[r]), _mm512_mul_ps(fsb[r], _mm512_set1_ps(d[r])));
            acc[r] = _mm512_fmadd_ps(t, dx, acc[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) store_cols(acc[r], ncols, y + r, ldy);
}
SX_INLINE void gemm_t_q2_k_n(int64_t K, const char *W, size_t ws, const int NR, const char *xt, int ncols,
                             float *y, int64_t ldy) {
    gemm_t_k2bit_n(K, W, ws, NR, xt, ncols, y, ldy, 0);
}
SX_INLINE void gemm_t_q3_k_n(int64_t K, const char *W, size_t ws, const int NR, const char *xt, int ncols,
                             float *y, int64_t ldy) {
    gemm_t_k2bit_n(K, W, ws, NR, xt, ncols, y, ldy, 1);
}
SX_T_FN(gemm_t_q2_k)
SX_T_FN(gemm_t_q3_k)

/* iq4_xs: sub-blocks of 32 with 6-bit scales (minus 32); values + 128, the
 * -128 through 128 * bsum32 = 4 * (two entries of the tile's 32 * bsum16) */
SX_INLINE void gemm_t_iq4_xs_n(int64_t K, const char *W, size_t ws, const int NR, const char *xt, int ncols,
                               float *y, int64_t ldy) {
    const int64_t nb = K / 256;
    const float *xdx = (const float *)(xt + K * SX_CPU_TCOLS);
    const int32_t *xb16 = (const int32_t *)(xdx + nb * SX_CPU_TCOLS + (K / 32) * SX_CPU_TCOLS);
    const __m256i tab = iq4_table_u8();
    _Alignas(64) uint8_t wb[4][256];
    float scf[4][8];
    __m512 acc[4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, nb);
    for (int64_t b = 0; b < nb; b++) {
        sx_cpu_pf_step(&pf, b + 1);
        float d[4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const sx_block_iq4_xs *w = (const sx_block_iq4_xs *)(W + r * ws) + b;
            d[r] = f16(w->d);
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                scf[r][j] = (float)((((w->scales_l[j / 2] >> (4 * (j % 2))) & 0xF) | (((w->scales_h >> (2 * j)) & 3) << 4)) - 32);
                _mm256_store_si256((__m256i *)(wb[r] + 32 * j), _mm256_shuffle_epi8(tab, unpack_nibbles_32(w->qs + 16 * j)));
            }
        }
        __m512 fsb[4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) fsb[r] = _mm512_setzero_ps();
        for (int j = 0; j < 8; j++) { /* sub-blocks of 32 */
            const __m512i b32 = _mm512_add_epi32(_mm512_loadu_si512((const void *)(xb16 + (16 * b + 2 * j) * SX_CPU_TCOLS)),
                                                 _mm512_loadu_si512((const void *)(xb16 + (16 * b + 2 * j + 1) * SX_CPU_TCOLS)));
            const __m512i init = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(b32, 2));
            t_subblock(xt, 64 * b + 8 * j, 8, NR, wb[0], 32 * j, init, &scf[0][j], 8, fsb);
        }
        const __m512 dx = _mm512_loadu_ps(xdx + b * SX_CPU_TCOLS);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) acc[r] = _mm512_fmadd_ps(fsb[r], _mm512_mul_ps(dx, _mm512_set1_ps(d[r])), acc[r]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) store_cols(acc[r], ncols, y + r, ldy);
}
SX_T_FN(gemm_t_iq4_xs)
#undef SX_T_FN
#endif /* SX_VNNI */

/* ------------------------------------------------- float weights x f32 */

#if !SX_VNNI /* float kernels do not depend on VNNI: defined once */

SX_INLINE __m512 load16_f32(const char *p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
SX_INLINE __m512 load16_f16(const char *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
SX_INLINE __m512 load16_bf16(const char *p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

/* out[r] = hsum512(a0[r] + a1[r]); a full tile of 4 rows reduced together. */
SX_INLINE void sum_rows(const __m512 a0[4], const __m512 a1[4], const int NR, float *out) {
    if (NR == 4) {
        _mm_storeu_ps(out, hsum512x4(_mm512_add_ps(a0[0], a1[0]), _mm512_add_ps(a0[1], a1[1]), _mm512_add_ps(a0[2], a1[2]),
                                     _mm512_add_ps(a0[3], a1[3])));
        return;
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) out[r] = hsum512(_mm512_add_ps(a0[r], a1[r]));
}

/* Two accumulators per row (32 elements per step); the tail uses masked loads. */
#define SX_FLOAT_KERNEL(T, ESZ)                                                                   \
    SX_INLINE void dot_##T##_n(int64_t K, const char *W, size_t ws, const int NR, const void *x,   \
                               float *out) {                                                      \
        const float *xf = (const float *)x;                                                       \
        __m512 a0[4], a1[4];                                                                      \
        _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) a0[r] = a1[r] = _mm512_setzero_ps(); \
        int64_t k = 0;                                                                            \
        for (; k + 32 <= K; k += 32) {                                                            \
            const __m512 x0 = _mm512_loadu_ps(xf + k), x1 = _mm512_loadu_ps(xf + k + 16);        \
            _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) {                                \
                const char *w = W + r * ws + k * ESZ;                                             \
                a0[r] = _mm512_fmadd_ps(load16_##T(w, 0xFFFF), x0, a0[r]);                        \
                a1[r] = _mm512_fmadd_ps(load16_##T(w + 16 * ESZ, 0xFFFF), x1, a1[r]);             \
            }                                                                                     \
        }                                                                                         \
        for (; k < K; k += 16) {                                                                  \
            const __mmask16 m = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1); \
            const __m512 x0 = _mm512_maskz_loadu_ps(m, xf + k);                                   \
            _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++)                                  \
                a0[r] = _mm512_fmadd_ps(load16_##T(W + r * ws + k * ESZ, m), x0, a0[r]);          \
        }                                                                                         \
        sum_rows(a0, a1, NR, out);                                                                \
    }

/* Two activation rows at once: each weight vector is loaded (converted) once
 * for both; per (row, column) the same operations in the same order as
 * dot_T_n, so the tile equals two one-column calls bit for bit. */
#define SX_FLOAT_KERNEL2(T, ESZ)                                                                  \
    SX_INLINE void dot_##T##_n2(int64_t K, const char *W, size_t ws, const int NR, const float *xa, \
                                const float *xb, float *oa, float *ob) {                          \
        __m512 a0[4], a1[4], b0[4], b1[4];                                                        \
        _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) a0[r] = a1[r] = b0[r] = b1[r] = _mm512_setzero_ps(); \
        int64_t k = 0;                                                                            \
        for (; k + 32 <= K; k += 32) {                                                            \
            const __m512 x0 = _mm512_loadu_ps(xa + k), x1 = _mm512_loadu_ps(xa + k + 16);        \
            const __m512 y0 = _mm512_loadu_ps(xb + k), y1 = _mm512_loadu_ps(xb + k + 16);        \
            _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) {                                \
                const char *w = W + r * ws + k * ESZ;                                             \
                const __m512 w0 = load16_##T(w, 0xFFFF), w1 = load16_##T(w + 16 * ESZ, 0xFFFF);  \
                a0[r] = _mm512_fmadd_ps(w0, x0, a0[r]);                                           \
                a1[r] = _mm512_fmadd_ps(w1, x1, a1[r]);                                           \
                b0[r] = _mm512_fmadd_ps(w0, y0, b0[r]);                                           \
                b1[r] = _mm512_fmadd_ps(w1, y1, b1[r]);                                           \
            }                                                                                     \
        }                                                                                         \
        for (; k < K; k += 16) {                                                                  \
            const __mmask16 m = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1); \
            const __m512 x0 = _mm512_maskz_loadu_ps(m, xa + k), y0 = _mm512_maskz_loadu_ps(m, xb + k); \
            _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) {                                \
                const __m512 w0 = load16_##T(W + r * ws + k * ESZ, m);                            \
                a0[r] = _mm512_fmadd_ps(w0, x0, a0[r]);                                           \
                b0[r] = _mm512_fmadd_ps(w0, y0, b0[r]);                                           \
            }                                                                                     \
        }                                                                                         \
        sum_rows(a0, a1, NR, oa);                                                                 \
        sum_rows(b0, b1, NR, ob);                                                                 \
    }

SX_FLOAT_KERNEL(f32, 4)
SX_FLOAT_KERNEL(f16, 2)
SX_FLOAT_KERNEL(bf16, 2)
SX_FLOAT_KERNEL2(f32, 4)
SX_FLOAT_KERNEL2(f16, 2)
SX_FLOAT_KERNEL2(bf16, 2)
#undef SX_FLOAT_KERNEL
#undef SX_FLOAT_KERNEL2

#define SX_ROWS_FN_PLAIN(name)                                                                   \
    static void name(int64_t K, const void *W, size_t ws, int nr, const void *x, size_t xs, int nc, \
                     float *y, int64_t ldy) {                                                     \
        int c = 0;                                                                               \
        for (; c + 2 <= nc; c += 2) {                                                            \
            const float *xa = (const float *)((const char *)x + c * xs);                         \
            const float *xb = (const float *)((const char *)x + (c + 1) * xs);                   \
            float *oa = y + c * ldy, *ob = y + (c + 1) * ldy;                                    \
            switch (nr) {                                                                        \
            case 4: name##_n2(K, (const char *)W, ws, 4, xa, xb, oa, ob); break;                 \
            case 3: name##_n2(K, (const char *)W, ws, 3, xa, xb, oa, ob); break;                 \
            case 2: name##_n2(K, (const char *)W, ws, 2, xa, xb, oa, ob); break;                 \
            default: name##_n2(K, (const char *)W, ws, 1, xa, xb, oa, ob); break;                \
            }                                                                                    \
        }                                                                                        \
        for (; c < nc; c++) {                                                                    \
            const void *xc = (const char *)x + c * xs;                                           \
            float *out = y + c * ldy;                                                            \
            switch (nr) {                                                                        \
            case 4: name##_n(K, (const char *)W, ws, 4, xc, out); break;                         \
            case 3: name##_n(K, (const char *)W, ws, 3, xc, out); break;                         \
            case 2: name##_n(K, (const char *)W, ws, 2, xc, out); break;                         \
            default: name##_n(K, (const char *)W, ws, 1, xc, out); break;                        \
            }                                                                                    \
        }                                                                                        \
    }
SX_ROWS_FN_PLAIN(dot_f32)
SX_ROWS_FN_PLAIN(dot_f16)
SX_ROWS_FN_PLAIN(dot_bf16)
#undef SX_ROWS_FN_PLAIN

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
    const __m512 av = _mm512_set1_ps(alpha);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 yv = _mm512_maskz_loadu_ps(m, y + i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, load16_f16((const char *)(x + i), m), yv));
    }
}

/* Attention's weighted V sum: up to 64 lanes of the nw heads' accumulators
 * stay in registers while the V rows pass, each row converted once for all
 * heads; per head and lane the same fmadd(w, v, acc) sequence as
 * vec_axpy_f16 row after row. F32: V rows of floats instead of f16. */
SX_INLINE void axpy_rows_n(int64_t d, int64_t n, const int NW, const float *w, int64_t w_stride, const char *V, size_t v_stride, float *acc,
                           int64_t acc_stride, const bool F32) {
    for (int64_t c = 0; c < d; c += 64) {
        __mmask16 m[4];
        __m512 a[4][4];
        for (int i = 0; i < 4; i++) {
            const int64_t rem = d - c - 16 * i;
            m[i] = rem >= 16 ? (__mmask16)0xFFFF : rem > 0 ? (__mmask16)((1u << rem) - 1) : (__mmask16)0;
            _Pragma("GCC unroll 4") for (int g = 0; g < NW; g++) a[g][i] = _mm512_maskz_loadu_ps(m[i], acc + g * acc_stride + c + 16 * i);
        }
        for (int64_t j = 0; j < n; j++) {
            __m512 v[4];
            bool loaded = false;
            _Pragma("GCC unroll 4") for (int g = 0; g < NW; g++) {
                const float wj = w[g * w_stride + j];
                if (wj == 0.0f) continue;
                if (!loaded) {
                    for (int i = 0; i < 4; i++)
                        v[i] = F32 ? _mm512_maskz_loadu_ps(m[i], V + j * v_stride + c * 4 + 64 * i) : load16_f16(V + j * v_stride + c * 2 + 32 * i, m[i]);
                    loaded = true;
                }
                const __m512 wv = _mm512_set1_ps(wj);
                for (int i = 0; i < 4; i++) a[g][i] = _mm512_fmadd_ps(wv, v[i], a[g][i]);
            }
        }
        for (int i = 0; i < 4; i++)
            _Pragma("GCC unroll 4") for (int g = 0; g < NW; g++) _mm512_mask_storeu_ps(acc + g * acc_stride + c + 16 * i, m[i], a[g][i]);
    }
}

SX_INLINE void axpy_rows(int64_t d, int64_t n, int nw, const float *w, int64_t w_stride, const char *v, size_t v_stride, float *acc,
                        int64_t acc_stride, bool f32) {
    switch (nw) { /* NW a constant in each: the heads' accumulators stay in registers */
    case 4: axpy_rows_n(d, n, 4, w, w_stride, v, v_stride, acc, acc_stride, f32); break;
    case 3: axpy_rows_n(d, n, 3, w, w_stride, v, v_stride, acc, acc_stride, f32); break;
    case 2: axpy_rows_n(d, n, 2, w, w_stride, v, v_stride, acc, acc_stride, f32); break;
    default: axpy_rows_n(d, n, 1, w, w_stride, v, v_stride, acc, acc_stride, f32); break;
    }
}
static void vec_axpy_rows_f16(int64_t d, int64_t n, int nw, const float *w, int64_t w_stride, const uint16_t *V, size_t v_stride, float *acc,
                              int64_t acc_stride) {
    axpy_rows(d, n, nw, w, w_stride, (const char *)V, v_stride, acc, acc_stride, false);
}
static void vec_axpy_rows_f32(int64_t d, int64_t n, int nw, const float *w, int64_t w_stride, const float *V, size_t v_stride, float *acc,
                              int64_t acc_stride) {
    axpy_rows(d, n, nw, w, w_stride, (const char *)V, v_stride, acc, acc_stride, true);
}

/* exp(x): x = n ln2 + r, |r| <= ln2/2, exp(r) by the Cephes expf
 * polynomial, times 2^n (vscalefps: +inf past the float range). Relative
 * error ~2e-7; below -87.3 (float underflow) it returns 0, NaN stays NaN. */
SX_INLINE __m512 exp512(__m512 x) {
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    const __m512 y = _mm512_scalef_ps(p, n);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_NLT_UQ), _mm512_setzero_ps(), y);
}

static float exp_sum(int64_t n, float *x, float mx, float *tmp) {
    const __m512 m = _mm512_set1_ps(mx), ninf = _mm512_set1_ps(-INFINITY), zero = _mm512_setzero_ps();
    int64_t nz = 0;
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(k, x + j);
        const __mmask16 live = k & _mm512_cmp_ps_mask(v, ninf, _CMP_NEQ_UQ);
        const __m512 e = _mm512_maskz_mov_ps(live, exp512(_mm512_sub_ps(v, m)));
        _mm512_mask_storeu_ps(x + j, k, e);
        const __mmask16 keep = _mm512_cmp_ps_mask(e, zero, _CMP_NEQ_UQ);
        _mm512_storeu_ps(tmp + nz, _mm512_maskz_compress_ps(keep, e));
        nz += __builtin_popcount((unsigned)keep);
    }
    __m512 s = zero;
    for (int64_t j = 0; j < nz; j += 16) {
        const __mmask16 k = nz - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (nz - j)) - 1);
        s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(k, tmp + j));
    }
    return hsum512(s);
}

static void silu_mul(int64_t n, const float *a, const float *b, float *y) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 av = _mm512_maskz_loadu_ps(k, a + i);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), av));
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(_mm512_div_ps(av, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(k, b + i)));
    }
}

/* activation quantisers: same float ops as the scalar ones (cpu_simd.c) */
static void quantize_q8(const float *x, int64_t K, void *dst) {
    int8_t *qs = (int8_t *)dst;
    float *ds = (float *)((char *)dst + K);
    for (int64_t b = 0; b < K / 32; b++) {
        const __m512 a = _mm512_loadu_ps(x + 32 * b), c = _mm512_loadu_ps(x + 32 * b + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(c)));
        const __m512 id = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        const __m512i ia = _mm512_cvtps_epi32(_mm512_mul_ps(a, id)), ic = _mm512_cvtps_epi32(_mm512_mul_ps(c, id));
        _mm_storeu_si128((__m128i *)(qs + 32 * b), _mm512_cvtsepi32_epi8(ia));
        _mm_storeu_si128((__m128i *)(qs + 32 * b + 16), _mm512_cvtsepi32_epi8(ic));
        ds[2 * b] = amax / 127.0f;
        ds[2 * b + 1] = ds[2 * b] * (float)_mm512_reduce_add_epi32(_mm512_add_epi32(ia, ic));
    }
}

static void quantize_q8k(const float *x, int64_t K, void *dst) {
    int8_t *qs = (int8_t *)dst;
    float *d = (float *)((char *)dst + K);
    int16_t *bs = (int16_t *)(d + K / 256);
    for (int64_t b = 0; b < K / 256; b++) {
        const float *xb = x + 256 * b;
        __m512 m = _mm512_setzero_ps();
        for (int g = 0; g < 16; g++) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(xb + 16 * g)));
        const float amax = _mm512_reduce_max_ps(m);
        const __m512 id = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        d[b] = amax / 127.0f;
        for (int g = 0; g < 16; g++) {
            const __m512i i = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + 16 * g), id));
            _mm_storeu_si128((__m128i *)(qs + 256 * b + 16 * g), _mm512_cvtsepi32_epi8(i));
            bs[16 * b + g] = (int16_t)_mm512_reduce_add_epi32(i);
        }
    }
}

#endif /* !SX_VNNI */

static const sx_cpu_kernels SX_SFX(k_table) = {
    .tiles_exact = true, /* measured: rows of M <= 64 batches equal M = 1 bit for bit */
    .gemm = {
        [SX_DTYPE_F32] = dot_f32,
        [SX_DTYPE_F16] = dot_f16,
        [SX_DTYPE_BF16] = dot_bf16,
        [SX_DTYPE_Q8_0] = SX_SFX(gemm_q8_0),
        [SX_DTYPE_Q4_0] = SX_SFX(gemm_q4_0),
        [SX_DTYPE_Q4_1] = SX_SFX(gemm_q4_1),
        [SX_DTYPE_Q4_K] = SX_SFX(gemm_q4_k),
        [SX_DTYPE_Q6_K] = SX_SFX(gemm_q6_k),
        [SX_DTYPE_Q5_0] = SX_SFX(gemm_q5_0),
        [SX_DTYPE_Q5_1] = SX_SFX(gemm_q5_1),
        [SX_DTYPE_Q5_K] = SX_SFX(gemm_q5_k),
        [SX_DTYPE_Q2_K] = sx_cpu_avx2_gemm_q2_k, /* AVX2, one column per call (exact tiles) */
        [SX_DTYPE_Q3_K] = sx_cpu_avx2_gemm_q3_k,
        [SX_DTYPE_IQ4_NL] = sx_cpu_avx2_gemm_iq4_nl,
        [SX_DTYPE_IQ4_XS] = sx_cpu_avx2_gemm_iq4_xs,
    },
#if SX_VNNI
    .gemm_t = {
        [SX_DTYPE_Q8_0] = gemm_t_q8_0,
        [SX_DTYPE_Q4_0] = gemm_t_q4_0,
        [SX_DTYPE_Q4_1] = gemm_t_q4_1,
        [SX_DTYPE_Q4_K] = gemm_t_q4_k,
        [SX_DTYPE_Q6_K] = gemm_t_q6_k,
        [SX_DTYPE_Q5_0] = gemm_t_q5_0,
        [SX_DTYPE_Q5_1] = gemm_t_q5_1,
        [SX_DTYPE_Q5_K] = gemm_t_q5_k,
        [SX_DTYPE_Q2_K] = gemm_t_q2_k,
        [SX_DTYPE_Q3_K] = gemm_t_q3_k,
        [SX_DTYPE_IQ4_NL] = gemm_t_iq4_nl,
        [SX_DTYPE_IQ4_XS] = gemm_t_iq4_xs,
    },
    .gemm_t_min_m = 12, /* measured crossover vs the 4 x 4 tiles (Zen 4/5) */
#endif
    .vec_dot_f32 = vec_dot_f32,
    .vec_dot_f16_f32 = vec_dot_f16_f32,
    .vec_axpy_f16 = vec_axpy_f16,
    .vec_axpy_rows_f16 = vec_axpy_rows_f16,
    .vec_axpy_rows_f32 = vec_axpy_rows_f32,
    .exp_sum = exp_sum,
    .silu_mul = silu_mul,
    .fp32_to_fp16 = sx_cpu_fp32_to_fp16_f16c, /* 8 lanes are enough for KV rows */
    .fp16_to_fp32 = sx_cpu_fp16_to_fp32_f16c,
    .quantize_q8 = quantize_q8,
    .quantize_q8k = quantize_q8k,
};

#undef SX_TILE_FN

#endif /* SX_AVX512_TEMPLATE */
