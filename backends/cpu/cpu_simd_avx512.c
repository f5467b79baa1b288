/* backends/cpu/cpu_simd_avx512.c — AVX-512 (F, BW, VL) and AVX-512 VNNI
 * matmul kernels. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma
 * -mf16c; the VNNI set is compiled under a target("avx512vnni") pragma so the
 * plain set can never contain VNNI instructions (it runs on Skylake-SP).
 * Selected at run time by cpu_simd.c.
 *
 * The file instantiates its kernel bodies twice by including itself (once
 * with SX_VNNI 0, once with SX_VNNI 1) — a C "template".
 *
 * Layout tricks:
 *  - q4_0/q4_1/q8_0: two 32-element blocks per 512-bit register; the per-lane
 *    float scale is [d0*dx0 x8 | d1*dx1 x8]. With VNNI, q8_0 uses
 *    (w ^ 0x80) = w + 128 as the unsigned operand of vpdpbusd and subtracts
 *    128 * sum(x) per block (from the activation block sums).
 *  - q4_k: 32 bytes of nibbles = two sub-blocks = 64 consecutive activations;
 *    q6_k: 64 bytes of ql + 32 of qh give two registers of 64 values.
 *    Per-sub-block scales multiply the 16-bit pair products (vpdpwssd with VNNI).
 * Tested by tests/test_cpu_fast.c (forcing each level).
 */
#ifndef SX_AVX512_TEMPLATE

#include "backends/cpu/cpu_fast.h"

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

#define SX_ROWS_FN(name)                                                                       \
    static void SX_SFX(name)(int64_t K, const void *W, size_t ws, int nr, const void *x,       \
                             float *out) {                                                     \
        switch (nr) {                                                                          \
        case 4: SX_SFX(name##_n)(K, (const char *)W, ws, 4, x, out); break;                    \
        case 3: SX_SFX(name##_n)(K, (const char *)W, ws, 3, x, out); break;                    \
        case 2: SX_SFX(name##_n)(K, (const char *)W, ws, 2, x, out); break;                    \
        default: SX_SFX(name##_n)(K, (const char *)W, ws, 1, x, out); break;                   \
        }                                                                                      \
    }

/* ------------------------------------------------- q4_0, q4_1, q8_0 x q8 */

/* kind: 0 = q4_0, 1 = q4_1, 2 = q8_0. Two blocks per step; the weight
 * (d, m) pairs of both blocks times the activation (d, s) pairs give
 * [d0 dx0, m0 sx0, d1 dx1, m1 sx1] in one multiply: lanes 0, 2 scale the
 * int dots, lanes 1, 3 accumulate the offset terms. */
SX_INLINE void SX_SFX(dot_legacy_n)(int64_t K, const char *W, size_t ws, const int NR, const void *x,
                                    float *out, const int kind) {
    const int8_t *xq = (const int8_t *)x;
    const float *xds = (const float *)(xq + K);
    const size_t bsz = kind == 0 ? sizeof(sx_block_q4_0) : kind == 1 ? sizeof(sx_block_q4_1)
                                                                     : sizeof(sx_block_q8_0);
    const int64_t nb = K / 32;
    const __m512i idx02 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    /* offset per unit of s_x: q4_0 -8 d, q4_1 m, q8_0 (VNNI, w + 128) -128 d */
    const float off = kind == 0 ? -8.0f : kind == 1 ? 1.0f : SX_VNNI ? -128.0f : 0.0f;
    __m512 acc[4];
    __m128 corr[4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) {
        acc[r] = _mm512_setzero_ps();
        corr[r] = _mm_setzero_ps();
    }
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, nb);
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        sx_cpu_pf_step(&pf, b + 2);
        const __m512i xv = _mm512_loadu_si512((const void *)(xq + 32 * b));
        const __m128 ds = _mm_loadu_ps(xds + 2 * b); /* dx0 sx0 dx1 sx1 */
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const char *b0 = W + r * ws + b * bsz, *b1 = b0 + bsz;
            uint32_t u0, u1;
            if (kind == 1) {
                memcpy(&u0, b0, 4);
                memcpy(&u1, b1, 4);
            } else {
                uint16_t h0, h1;
                memcpy(&h0, b0, 2);
                memcpy(&h1, b1, 2);
                u0 = (uint32_t)h0 * 0x10001u, u1 = (uint32_t)h1 * 0x10001u;
            }
            const __m128 p = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)(((uint64_t)u1 << 32) | u0))), ds);
            __m512i wv, xs_v = xv;
            if (kind == 2) {
                const __m512i raw = _mm512_inserti64x4(
                    _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)((const sx_block_q8_0 *)b0)->qs)),
                    _mm256_loadu_si256((const __m256i *)((const sx_block_q8_0 *)b1)->qs), 1);
#if SX_VNNI
                wv = _mm512_xor_si512(raw, _mm512_set1_epi8((char)0x80)); /* w + 128 */
#else
                wv = _mm512_abs_epi8(raw);
                xs_v = _mm512_mask_sub_epi8(xv, _mm512_movepi8_mask(raw), _mm512_setzero_si512(), xv);
#endif
            } else {
                wv = kind == 1 ? unpack_nibbles_2x32(((const sx_block_q4_1 *)b0)->qs, ((const sx_block_q4_1 *)b1)->qs)
                               : unpack_nibbles_2x32(((const sx_block_q4_0 *)b0)->qs, ((const sx_block_q4_0 *)b1)->qs);
            }
            const __m512i dot = SX_SFX(dp_u8s8)(_mm512_setzero_si512(), wv, xs_v);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(idx02, _mm512_castps128_ps512(p)),
                                     acc[r]);
            if (off != 0.0f) corr[r] = _mm_add_ps(corr[r], p);
        }
    }
    float tail[4] = {0, 0, 0, 0};
    if (b < nb) { /* odd block count: one 256-bit block (q8_0 by |w|, sign(w) x: no offset) */
        const __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + 32 * b));
        const float dx = xds[2 * b], sx = xds[2 * b + 1];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const char *b0 = W + r * ws + b * bsz;
            __m256i wv, xs_v = xv;
            float d, o;
            if (kind == 0) {
                const sx_block_q4_0 *w = (const sx_block_q4_0 *)b0;
                wv = unpack_nibbles_32(w->qs);
                d = f16(w->d), o = -8.0f * d;
            } else if (kind == 1) {
                const sx_block_q4_1 *w = (const sx_block_q4_1 *)b0;
                wv = unpack_nibbles_32(w->qs);
                d = f16(w->d), o = f16(w->m);
            } else {
                const sx_block_q8_0 *w = (const sx_block_q8_0 *)b0;
                const __m256i raw = _mm256_loadu_si256((const __m256i *)w->qs);
                wv = _mm256_sign_epi8(raw, raw);
                xs_v = _mm256_sign_epi8(xv, raw);
                d = f16(w->d), o = 0.0f;
            }
            const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xs_v), _mm256_set1_epi16(1));
            tail[r] = hsum256(_mm256_cvtepi32_ps(p)) * (d * dx) + o * sx;
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) {
        const __m128 c = _mm_movehdup_ps(corr[r]); /* lanes 1, 3 -> 0, 2 */
        out[r] = hsum512(acc[r]) + off * _mm_cvtss_f32(_mm_add_ss(c, _mm_movehl_ps(c, c))) + tail[r];
    }
}

SX_INLINE void SX_SFX(dot_q4_0_n)(int64_t K, const char *W, size_t ws, const int NR, const void *x, float *out) {
    SX_SFX(dot_legacy_n)(K, W, ws, NR, x, out, 0);
}
SX_INLINE void SX_SFX(dot_q4_1_n)(int64_t K, const char *W, size_t ws, const int NR, const void *x, float *out) {
    SX_SFX(dot_legacy_n)(K, W, ws, NR, x, out, 1);
}
SX_INLINE void SX_SFX(dot_q8_0_n)(int64_t K, const char *W, size_t ws, const int NR, const void *x, float *out) {
    SX_SFX(dot_legacy_n)(K, W, ws, NR, x, out, 2);
}
SX_ROWS_FN(dot_q4_0)
SX_ROWS_FN(dot_q4_1)
SX_ROWS_FN(dot_q8_0)

/* --------------------------------------------------------- q4_k x q8k */

SX_INLINE void SX_SFX(dot_q4_k_n)(int64_t K, const char *W, size_t ws, const int NR, const void *x, float *out) {
    const int8_t *xq = (const int8_t *)x;
    const float *xd = (const float *)(xq + K);
    const int16_t *xbs = (const int16_t *)(xd + K / 256);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    /* vpermw indices: chunk c takes scale 2c for lanes 0..15 and 2c+1 for 16..31 */
    __m512i sel[4];
    for (int c = 0; c < 4; c++)
        sel[c] = _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16((short)(2 * c)),
                                         _mm512_set1_epi16((short)(2 * c + 1)));
    __m512 acc[4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, K / 256);
    for (int64_t b = 0; b < K / 256; b++) {
        sx_cpu_pf_step(&pf, b + 1);
        const int8_t *xb = xq + 256 * b;
        const __m256i bs = _mm256_loadu_si256((const __m256i *)(xbs + 16 * b));
        const float dx = xd[b];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const sx_block_q4_k *w = (const sx_block_q4_k *)(W + r * ws) + b;
            uint32_t u[4];
            sx_cpu_q4k_scales(w->scales, u);
            const __m128i sm8 = _mm_setr_epi32((int)u[0], (int)u[1], (int)u[2], (int)u[3]); /* sc0..7 m0..7 */
            const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(sm8));
            __m512i isum = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                const __m256i raw = _mm256_loadu_si256((const __m256i *)(w->qs + 32 * c));
                const __m512i q = _mm512_and_si512(
                    _mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1), m4);
                const __m512i p = _mm512_maddubs_epi16(q, _mm512_loadu_si512((const void *)(xb + 64 * c)));
                isum = SX_SFX(dp_s16)(isum, p, _mm512_permutexvar_epi16(sel[c], sc16));
            }
            const __m128i mins8 = _mm_shuffle_epi8(_mm_srli_si128(sm8, 8), dup);
            const __m256i msum = _mm256_madd_epi16(_mm256_cvtepu8_epi16(mins8), bs);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(f16(w->d) * dx), acc[r]);
            acc[r] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(zext256(msum)), _mm512_set1_ps(f16(w->dmin) * dx), acc[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) out[r] = hsum512(acc[r]);
}
SX_ROWS_FN(dot_q4_k)

/* --------------------------------------------------------- q6_k x q8k */

SX_INLINE void SX_SFX(dot_q6_k_n)(int64_t K, const char *W, size_t ws, const int NR, const void *x, float *out) {
    const int8_t *xq = (const int8_t *)x;
    const float *xd = (const float *)(xq + K);
    const int16_t *xbs = (const int16_t *)(xd + K / 256);
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    /* qh bits for [g0 | g1]: (qh << 4) and (qh << 2); for [g2 | g3]: qh and (qh >> 2) */
    const __m512i shl = _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16(4), _mm512_set1_epi16(2));
    const __m512i shr = _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16(0), _mm512_set1_epi16(2));
    /* register j (0..3) of the 16 scales: 4 scales, each for 8 int16 lanes */
    __m512i sel[4];
    for (int j = 0; j < 4; j++) {
        short idx[32];
        for (int l = 0; l < 32; l++) idx[l] = (short)(4 * j + l / 8);
        sel[j] = _mm512_loadu_si512((const void *)idx);
    }
    __m512 acc[4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps();
    sx_cpu_pf pf = sx_cpu_pf_init(W, ws, NR, K / 256);
    for (int64_t b = 0; b < K / 256; b++) {
        sx_cpu_pf_step(&pf, b + 1);
        const int8_t *xb = xq + 256 * b;
        const __m256i bs = _mm256_loadu_si256((const __m256i *)(xbs + 16 * b));
        const float dx = xd[b];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const sx_block_q6_k *w = (const sx_block_q6_k *)(W + r * ws) + b;
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w->scales));
            const __m512i sc = _mm512_castsi256_si512(sc16);
            /* -32 offset through the activation sums */
            __m512i isum = zext256(_mm256_sub_epi32(_mm256_setzero_si256(),
                                                    _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5)));
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const __m512i L = _mm512_loadu_si512((const void *)(w->ql + 64 * h));
                const __m512i H = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w->qh + 32 * h)));
                const __m512i A = _mm512_or_si512(_mm512_and_si512(L, m4),
                                                  _mm512_and_si512(_mm512_sllv_epi16(H, shl), m30));
                const __m512i B = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m4),
                                                  _mm512_and_si512(_mm512_srlv_epi16(H, shr), m30));
                const __m512i pA = _mm512_maddubs_epi16(A, _mm512_loadu_si512((const void *)(xb + 128 * h)));
                const __m512i pB = _mm512_maddubs_epi16(B, _mm512_loadu_si512((const void *)(xb + 128 * h + 64)));
                isum = SX_SFX(dp_s16)(isum, pA, _mm512_permutexvar_epi16(sel[2 * h], sc));
                isum = SX_SFX(dp_s16)(isum, pB, _mm512_permutexvar_epi16(sel[2 * h + 1], sc));
            }
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(f16(w->d) * dx), acc[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) out[r] = hsum512(acc[r]);
}
SX_ROWS_FN(dot_q6_k)

/* ------------------------------------------------- float weights x f32 */

#if !SX_VNNI /* float kernels do not depend on VNNI: defined once */

SX_INLINE __m512 load16_f32(const char *p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
SX_INLINE __m512 load16_f16(const char *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
SX_INLINE __m512 load16_bf16(const char *p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
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
        _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) out[r] = hsum512(_mm512_add_ps(a0[r], a1[r])); \
    }

SX_FLOAT_KERNEL(f32, 4)
SX_FLOAT_KERNEL(f16, 2)
SX_FLOAT_KERNEL(bf16, 2)
#undef SX_FLOAT_KERNEL

#define SX_ROWS_FN_PLAIN(name)                                                                 \
    static void name(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) { \
        switch (nr) {                                                                          \
        case 4: name##_n(K, (const char *)W, ws, 4, x, out); break;                            \
        case 3: name##_n(K, (const char *)W, ws, 3, x, out); break;                            \
        case 2: name##_n(K, (const char *)W, ws, 2, x, out); break;                            \
        default: name##_n(K, (const char *)W, ws, 1, x, out); break;                           \
        }                                                                                      \
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

#endif /* !SX_VNNI */

static const sx_cpu_kernels SX_SFX(k_table) = {
    .dot = {
        [SX_DTYPE_F32] = dot_f32,
        [SX_DTYPE_F16] = dot_f16,
        [SX_DTYPE_BF16] = dot_bf16,
        [SX_DTYPE_Q8_0] = SX_SFX(dot_q8_0),
        [SX_DTYPE_Q4_0] = SX_SFX(dot_q4_0),
        [SX_DTYPE_Q4_1] = SX_SFX(dot_q4_1),
        [SX_DTYPE_Q4_K] = SX_SFX(dot_q4_k),
        [SX_DTYPE_Q6_K] = SX_SFX(dot_q6_k),
    },
    .vec_dot_f32 = vec_dot_f32,
    .vec_dot_f16_f32 = vec_dot_f16_f32,
    .vec_axpy_f16 = vec_axpy_f16,
};

#undef SX_ROWS_FN

#endif /* SX_AVX512_TEMPLATE */
