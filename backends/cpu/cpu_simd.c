/* backends/cpu/cpu_simd.c — fast CPU matmul: run-time SIMD dispatch, the
 * portable scalar kernels, 8-bit activation quantisation and the threaded
 * driver.
 *
 * Computes Y[m][n] = sum_k W[n][k] * X[m][k]. For quantised weights each X
 * row is first rounded to int8 per block (32 values for Q4_0/Q4_1/Q5_0/Q5_1/
 * Q8_0/IQ4_NL, 256 for Q2_K/Q3_K/Q4_K/Q5_K/Q6_K/IQ4_XS) with an f32 scale, then every block product is an integer
 * dot product scaled once (the ggml approach). Float weights (F32/F16/BF16)
 * use X directly with F32 FMA accumulation.
 *
 * Driver: work items are chunks of weight rows handed out through an atomic
 * counter. Decode (M = 1) streams every weight row once, 4 rows per kernel
 * call with software prefetch. Prefill (M > 1) keeps a chunk of rows (~32
 * KiB) hot while tiles of 4 rows x 4 activation rows pass over it; from
 * gemm_t_min_m activation rows on (AVX-512 VNNI), activations are quantised
 * into 16-column tiles and the wide kernels do 16 columns x 4 K per
 * instruction. Tiny N with many M rows splits M instead.
 *
 * Kernels per level live in cpu_simd_avx2.c and cpu_simd_avx512.c; the
 * scalar ones of Q2_K/Q3_K/IQ4_NL/IQ4_XS in cpu_lowbit.h. Tested by
 * tests/test_cpu_fast.c (every dtype x level x threads vs ir/dtype.c).
 */
#include "backends/cpu/cpu_fast.h"
#include "backends/cpu/cpu_lowbit.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

/* ------------------------------------------------------- level dispatch */

static const char *const k_level_names[SX_CPU_SIMD_COUNT] = {
    "scalar", "avx2", "avx512", "avx512vnni",
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static sx_cpu_simd g_detected = SX_CPU_SIMD_SCALAR;
static sx_cpu_simd g_default = SX_CPU_SIMD_SCALAR; /* detected, or env-forced lower */
static _Atomic int g_active = SX_CPU_SIMD_SCALAR;

/* cpu_simd_avx2.c / cpu_simd_avx512.c are only built for x86-64. */
static const sx_cpu_kernels *table_of(sx_cpu_simd l) {
    switch (l) {
#if defined(__x86_64__)
    case SX_CPU_SIMD_AVX512VNNI: return sx_cpu_kernels_avx512vnni();
    case SX_CPU_SIMD_AVX512: return sx_cpu_kernels_avx512();
    case SX_CPU_SIMD_AVX2: return sx_cpu_kernels_avx2();
#endif
    default: return sx_cpu_kernels_scalar();
    }
}

static sx_cpu_simd detect(void) {
    sx_cpu_simd l = SX_CPU_SIMD_SCALAR;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    unsigned a = 0, b = 0, c = 0, d = 0;
    bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    /* __builtin_cpu_supports also checks that the OS saves the AVX/AVX-512
     * register state (XGETBV). */
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c &&
        sx_cpu_kernels_avx2())
        l = SX_CPU_SIMD_AVX2;
    if (l == SX_CPU_SIMD_AVX2 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        sx_cpu_kernels_avx512()) {
        l = SX_CPU_SIMD_AVX512;
        if (__builtin_cpu_supports("avx512vnni") && sx_cpu_kernels_avx512vnni())
            l = SX_CPU_SIMD_AVX512VNNI;
    }
#endif
    return l;
}

static void init_once(void) {
    g_detected = detect();
    g_default = g_detected;
    const char *env = getenv("SPECEXIT_CPU_SIMD");
    if (env && *env) {
        sx_cpu_simd want;
        if (!sx_cpu_simd_from_name(env, &want))
            SX_LOGW("SPECEXIT_CPU_SIMD=%s: unknown level (scalar|avx2|avx512|avx512vnni)", env);
        else if (want > g_detected)
            SX_LOGW("SPECEXIT_CPU_SIMD=%s: not supported by this CPU, using %s", env,
                    k_level_names[g_detected]);
        else
            g_default = want;
    }
    atomic_store(&g_active, (int)g_default);
}

static const sx_cpu_kernels *active(void) {
    pthread_once(&g_once, init_once);
    return table_of((sx_cpu_simd)atomic_load_explicit(&g_active, memory_order_relaxed));
}

bool sx_cpu_simd_from_name(const char *name, sx_cpu_simd *out) {
    for (int i = 0; i < SX_CPU_SIMD_COUNT; i++)
        if (name && strcmp(name, k_level_names[i]) == 0) {
            *out = (sx_cpu_simd)i;
            return true;
        }
    return false;
}

const char *sx_cpu_simd_level(void) {
    pthread_once(&g_once, init_once);
    return k_level_names[atomic_load(&g_active)];
}

sx_cpu_simd sx_cpu_simd_detected(void) {
    pthread_once(&g_once, init_once);
    return g_detected;
}

sx_status sx_cpu_simd_force(sx_cpu_simd level) {
    pthread_once(&g_once, init_once);
    if ((int)level < 0 || level >= SX_CPU_SIMD_COUNT)
        return sx_set_error(SX_ERR_INVALID_ARG, "cpu simd level %d out of range", (int)level);
    if (level > g_detected)
        return sx_set_error(SX_ERR_UNSUPPORTED, "cpu simd level %s not supported (have %s)",
                            k_level_names[level], k_level_names[g_detected]);
    atomic_store(&g_active, (int)level);
    return SX_OK;
}

void sx_cpu_simd_reset(void) {
    pthread_once(&g_once, init_once);
    atomic_store(&g_active, (int)g_default);
}

/* ------------------------------------------------- activation quantising */

/* Nearest integer, ties to even (the rounding of SIMD float->int
 * conversion, so every level quantises identically), clamped to +-127;
 * NaN -> 0. (v + 1.5 * 2^23) - 1.5 * 2^23 rounds exactly for |v| < 2^22
 * in IEEE single precision with the default rounding mode. */
static inline int round_q(float v) {
    v = v > 127.0f ? 127.0f : v;
    v = v < -127.0f ? -127.0f : v;
    v = v == v ? v : 0.0f;
    return (int)((v + 12582912.0f) - 12582912.0f);
}

/* One row of K floats -> q8 layout (see cpu_fast.h). */
static void quantize_row_q8_scalar(const float *x, int64_t K, void *dst) {
    int8_t *qs = (int8_t *)dst;
    float *ds = (float *)((char *)dst + K);
    for (int64_t b = 0; b < K / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            float a = fabsf(xb[j]);
            amax = a > amax ? a : amax;
        }
        float db = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            int q = round_q(xb[j] * id);
            qs[b * 32 + j] = (int8_t)q;
            sum += q;
        }
        ds[2 * b] = db;
        ds[2 * b + 1] = db * (float)sum;
    }
}

/* One row of K floats -> q8k layout (see cpu_fast.h). */
static void quantize_row_q8k_scalar(const float *x, int64_t K, void *dst) {
    int8_t *qs = (int8_t *)dst;
    float *d = (float *)((char *)dst + K);
    int16_t *bs = (int16_t *)(d + K / 256);
    for (int64_t b = 0; b < K / 256; b++) {
        const float *xb = x + b * 256;
        float amax = 0.0f;
        for (int j = 0; j < 256; j++) {
            float a = fabsf(xb[j]);
            amax = a > amax ? a : amax;
        }
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        d[b] = amax / 127.0f;
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int j = g * 16; j < g * 16 + 16; j++) {
                int q = round_q(xb[j] * id);
                qs[b * 256 + j] = (int8_t)q;
                sum += q;
            }
            bs[b * 16 + g] = (int16_t)sum;
        }
    }
}

/* ---------------------------------------------------- scalar dot kernels */

typedef struct q8_view { const int8_t *qs; const float *ds; } q8_view; /* ds: (d, s) pairs */
typedef struct q8k_view { const int8_t *qs; const float *d; const int16_t *bs; } q8k_view;

static inline q8_view q8_at(const void *x, int64_t K) {
    q8_view v;
    v.qs = (const int8_t *)x;
    v.ds = (const float *)((const char *)x + K);
    return v;
}
static inline q8k_view q8k_at(const void *x, int64_t K) {
    q8k_view v;
    v.qs = (const int8_t *)x;
    v.d = (const float *)((const char *)x + K);
    v.bs = (const int16_t *)(v.d + K / 256);
    return v;
}

static void dot_q4_0_scalar(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    q8_view v = q8_at(x, K);
    for (int r = 0; r < nr; r++) {
        const sx_block_q4_0 *w = (const sx_block_q4_0 *)((const char *)W + r * ws);
        float acc = 0.0f;
        for (int64_t b = 0; b < K / 32; b++) {
            const int8_t *xq = v.qs + b * 32;
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += (w[b].qs[j] & 15) * xq[j] + (w[b].qs[j] >> 4) * xq[j + 16];
            float dw = sx_fp16_to_fp32(w[b].d);
            acc += dw * (v.ds[2 * b] * (float)sum - 8.0f * v.ds[2 * b + 1]);
        }
        out[r] = acc;
    }
}

static void dot_q4_1_scalar(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    q8_view v = q8_at(x, K);
    for (int r = 0; r < nr; r++) {
        const sx_block_q4_1 *w = (const sx_block_q4_1 *)((const char *)W + r * ws);
        float acc = 0.0f;
        for (int64_t b = 0; b < K / 32; b++) {
            const int8_t *xq = v.qs + b * 32;
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += (w[b].qs[j] & 15) * xq[j] + (w[b].qs[j] >> 4) * xq[j + 16];
            acc += sx_fp16_to_fp32(w[b].d) * v.ds[2 * b] * (float)sum + sx_fp16_to_fp32(w[b].m) * v.ds[2 * b + 1];
        }
        out[r] = acc;
    }
}

static void dot_q8_0_scalar(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    q8_view v = q8_at(x, K);
    for (int r = 0; r < nr; r++) {
        const sx_block_q8_0 *w = (const sx_block_q8_0 *)((const char *)W + r * ws);
        float acc = 0.0f;
        for (int64_t b = 0; b < K / 32; b++) {
            const int8_t *xq = v.qs + b * 32;
            int sum = 0;
            for (int j = 0; j < 32; j++) sum += w[b].qs[j] * xq[j];
            acc += sx_fp16_to_fp32(w[b].d) * v.ds[2 * b] * (float)sum;
        }
        out[r] = acc;
    }
}

static void dot_q4_k_scalar(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    q8k_view v = q8k_at(x, K);
    for (int r = 0; r < nr; r++) {
        const sx_block_q4_k *w = (const sx_block_q4_k *)((const char *)W + r * ws);
        float acc = 0.0f;
        for (int64_t b = 0; b < K / 256; b++) {
            uint32_t u[4];
            sx_cpu_q4k_scales(w[b].scales, u);
            uint8_t sc[8], mn[8];
            for (int j = 0; j < 8; j++) {
                sc[j] = (uint8_t)(u[j / 4] >> (8 * (j % 4)));
                mn[j] = (uint8_t)(u[2 + j / 4] >> (8 * (j % 4)));
            }
            const int8_t *xq = v.qs + b * 256;
            const int16_t *bs = v.bs + b * 16;
            int isum = 0, msum = 0;
            for (int c = 0; c < 4; c++) { /* 32 bytes of qs: sub-blocks 2c (low), 2c+1 (high) */
                const uint8_t *q = w[b].qs + 32 * c;
                int lo = 0, hi = 0;
                for (int l = 0; l < 32; l++) {
                    lo += (q[l] & 15) * xq[64 * c + l];
                    hi += (q[l] >> 4) * xq[64 * c + 32 + l];
                }
                isum += sc[2 * c] * lo + sc[2 * c + 1] * hi;
            }
            for (int j = 0; j < 8; j++) msum += mn[j] * (bs[2 * j] + bs[2 * j + 1]);
            acc += v.d[b] * (sx_fp16_to_fp32(w[b].d) * (float)isum -
                             sx_fp16_to_fp32(w[b].dmin) * (float)msum);
        }
        out[r] = acc;
    }
}

/* 5-bit code j of a q5_0/q5_1 block (ir/quant_blocks.h) */
static inline int q5_code(const uint8_t qh[4], const uint8_t qs[16], int j) {
    uint32_t h;
    memcpy(&h, qh, 4);
    return (int)((j < 16 ? qs[j] & 15 : qs[j - 16] >> 4) | (((h >> j) & 1) << 4));
}

/* q5_0: codes 0..31, offset -16 through the block sum (as q4_0's -8) */
static void dot_q5_0_scalar(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    q8_view v = q8_at(x, K);
    for (int r = 0; r < nr; r++) {
        const sx_block_q5_0 *w = (const sx_block_q5_0 *)((const char *)W + r * ws);
        float acc = 0.0f;
        for (int64_t b = 0; b < K / 32; b++) {
            const int8_t *xq = v.qs + b * 32;
            int sum = 0;
            for (int j = 0; j < 32; j++) sum += q5_code(w[b].qh, w[b].qs, j) * xq[j];
            float dw = sx_fp16_to_fp32(w[b].d);
            acc += dw * (v.ds[2 * b] * (float)sum - 16.0f * v.ds[2 * b + 1]);
        }
        out[r] = acc;
    }
}

static void dot_q5_1_scalar(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    q8_view v = q8_at(x, K);
    for (int r = 0; r < nr; r++) {
        const sx_block_q5_1 *w = (const sx_block_q5_1 *)((const char *)W + r * ws);
        float acc = 0.0f;
        for (int64_t b = 0; b < K / 32; b++) {
            const int8_t *xq = v.qs + b * 32;
            int sum = 0;
            for (int j = 0; j < 32; j++) sum += q5_code(w[b].qh, w[b].qs, j) * xq[j];
            acc += sx_fp16_to_fp32(w[b].d) * v.ds[2 * b] * (float)sum + sx_fp16_to_fp32(w[b].m) * v.ds[2 * b + 1];
        }
        out[r] = acc;
    }
}

/* q5_k: q4_k with bit 4 of each code from qh (bit 2c / 2c+1 for 64-chunk c) */
static void dot_q5_k_scalar(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    q8k_view v = q8k_at(x, K);
    for (int r = 0; r < nr; r++) {
        const sx_block_q5_k *w = (const sx_block_q5_k *)((const char *)W + r * ws);
        float acc = 0.0f;
        for (int64_t b = 0; b < K / 256; b++) {
            uint32_t u[4];
            sx_cpu_q4k_scales(w[b].scales, u);
            uint8_t sc[8], mn[8];
            for (int j = 0; j < 8; j++) {
                sc[j] = (uint8_t)(u[j / 4] >> (8 * (j % 4)));
                mn[j] = (uint8_t)(u[2 + j / 4] >> (8 * (j % 4)));
            }
            const int8_t *xq = v.qs + b * 256;
            const int16_t *bs = v.bs + b * 16;
            const uint8_t *qh = w[b].qh;
            int isum = 0, msum = 0;
            for (int c = 0; c < 4; c++) {
                const uint8_t *q = w[b].qs + 32 * c;
                int lo = 0, hi = 0;
                for (int l = 0; l < 32; l++) {
                    lo += ((q[l] & 15) | (((qh[l] >> (2 * c)) & 1) << 4)) * xq[64 * c + l];
                    hi += ((q[l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4)) * xq[64 * c + 32 + l];
                }
                isum += sc[2 * c] * lo + sc[2 * c + 1] * hi;
            }
            for (int j = 0; j < 8; j++) msum += mn[j] * (bs[2 * j] + bs[2 * j + 1]);
            acc += v.d[b] * (sx_fp16_to_fp32(w[b].d) * (float)isum -
                             sx_fp16_to_fp32(w[b].dmin) * (float)msum);
        }
        out[r] = acc;
    }
}

static void dot_q6_k_scalar(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    q8k_view v = q8k_at(x, K);
    for (int r = 0; r < nr; r++) {
        const sx_block_q6_k *w = (const sx_block_q6_k *)((const char *)W + r * ws);
        float acc = 0.0f;
        for (int64_t b = 0; b < K / 256; b++) {
            const int8_t *xq = v.qs + b * 256;
            const int16_t *bs = v.bs + b * 16;
            const int8_t *sc = w[b].scales;
            int isum = 0, osum = 0;
            for (int h = 0; h < 2; h++) { /* halves of 128 */
                const uint8_t *qh = w[b].qh + 32 * h;
                for (int quarter = 0; quarter < 4; quarter++) { /* 32 values each */
                    const uint8_t *ql = w[b].ql + 64 * h + 32 * (quarter & 1);
                    const int8_t *xs = xq + 128 * h + 32 * quarter;
                    const int lsh = 4 * (quarter >> 1), hsh = 2 * quarter;
                    for (int half = 0; half < 2; half++) { /* sub-blocks of 16 */
                        int sum = 0;
                        for (int l = 16 * half; l < 16 * half + 16; l++)
                            sum += (((ql[l] >> lsh) & 15) | (((qh[l] >> hsh) & 3) << 4)) * xs[l];
                        isum += sc[8 * h + 2 * quarter + half] * sum;
                    }
                }
            }
            for (int i = 0; i < 16; i++) osum += sc[i] * bs[i];
            acc += v.d[b] * sx_fp16_to_fp32(w[b].d) * (float)(isum - 32 * osum);
        }
        out[r] = acc;
    }
}

/* IEEE half -> float without a call, vectorisable: the 15 magnitude bits
 * shifted into a float and scaled by 2^112 rebias the exponent (exact for
 * normals and subnormals); Inf/NaN get the float exponent. */
static inline float h2f(uint16_t h) {
    const uint32_t em = h & 0x7FFFu;
    uint32_t u = em << 13;
    float f;
    memcpy(&f, &u, 4);
    f *= 0x1p112f;
    memcpy(&u, &f, 4);
    const uint32_t special = 0u - (uint32_t)(em >= 0x7C00u); /* all ones for Inf/NaN */
    u = (u & ~special) | ((0x7F800000u | (em << 13)) & special);
    u |= (uint32_t)(h & 0x8000u) << 16;
    memcpy(&f, &u, 4);
    return f;
}

static inline float bf16_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* sum_k w[k] x[k] over n <= 256 floats with 8 partial sums (a fixed order
 * the compiler can map to vector lanes without reassociation flags). */
static inline float dot8(const float *w, const float *x, int64_t n) {
    float a[8] = {0};
    const int64_t n8 = n / 8;
    for (int64_t i = 0; i < n8; i++)
        for (int j = 0; j < 8; j++) a[j] += w[8 * i + j] * x[8 * i + j];
    for (int64_t k = 8 * n8; k < n; k++) a[0] += w[k] * x[k];
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

static void dot_f32_scalar(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) {
    for (int r = 0; r < nr; r++) out[r] = dot8((const float *)((const char *)W + r * ws), (const float *)x, K);
}

/* Half and bfloat16 rows: converted 256 at a time into an L1 buffer (a
 * plain loop that vectorises), then dot8. */
#define SX_DOT_CONVERTED(name, conv)                                                           \
    static void name(int64_t K, const void *W, size_t ws, int nr, const void *x, float *out) { \
        const float *xf = (const float *)x;                                                    \
        float buf[256];                                                                        \
        for (int r = 0; r < nr; r++) {                                                         \
            const uint16_t *w = (const uint16_t *)((const char *)W + r * ws);                  \
            float acc = 0.0f;                                                                  \
            int64_t k0 = 0;                                                                    \
            for (; k0 + 256 <= K; k0 += 256) { /* constant trip count: vectorised at -O2 */    \
                for (int k = 0; k < 256; k++) buf[k] = conv(w[k0 + k]);                        \
                acc += dot8(buf, xf + k0, 256);                                                \
            }                                                                                  \
            const int rem = (int)((K - k0) & 255); /* < 256, and the compiler can see it */    \
            for (int k = 0; k < rem; k++) buf[k] = conv(w[k0 + k]);                            \
            acc += dot8(buf, xf + k0, rem);                                                    \
            out[r] = acc;                                                                      \
        }                                                                                      \
    }
SX_DOT_CONVERTED(dot_f16_scalar, h2f)
SX_DOT_CONVERTED(dot_bf16_scalar, bf16_f32)

static float vec_dot_f32_scalar(int64_t n, const float *a, const float *b) {
    float out;
    dot_f32_scalar(n, a, 0, 1, b, &out);
    return out;
}

static float vec_dot_f16_f32_scalar(int64_t n, const uint16_t *a, const float *b) {
    float out;
    dot_f16_scalar(n, a, 0, 1, b, &out);
    return out;
}

static void vec_axpy_f16_scalar(int64_t n, float alpha, const uint16_t *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * h2f(x[i]);
}

SX_CPU_AXPY_ROWS_BY_ROW(vec_axpy_rows_f16_scalar, vec_axpy_f16_scalar)
SX_CPU_AXPY_ROWS_F32_BY_ROW(vec_axpy_rows_f32_scalar)

float sx_cpu_exp_sum_scalar(int64_t n, float *x, float mx, float *tmp) {
    (void)tmp;
    float sum = 0;
    for (int64_t j = 0; j < n; j++) {
        x[j] = x[j] == -INFINITY ? 0.0f : expf(x[j] - mx);
        sum += x[j];
    }
    return sum;
}

void sx_cpu_silu_mul_scalar(int64_t n, const float *a, const float *b, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
}

static void fp32_to_fp16_scalar(int64_t n, const float *x, uint16_t *y) {
    for (int64_t i = 0; i < n; i++) y[i] = sx_fp32_to_fp16(x[i]);
}
static void fp16_to_fp32_scalar(int64_t n, const uint16_t *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = sx_fp16_to_fp32(x[i]);
}

/* One activation row at a time. */
#define SX_GEMM_BY_COLUMN(name)                                                                  \
    static void name##_gemm(int64_t K, const void *W, size_t ws, int nr, const void *x, size_t xs, \
                            int nc, float *y, int64_t ldy) {                                     \
        for (int c = 0; c < nc; c++) name(K, W, ws, nr, (const char *)x + c * xs, y + c * ldy);  \
    }
SX_GEMM_BY_COLUMN(dot_f32_scalar)
SX_GEMM_BY_COLUMN(dot_f16_scalar)
SX_GEMM_BY_COLUMN(dot_bf16_scalar)
SX_GEMM_BY_COLUMN(dot_q8_0_scalar)
SX_GEMM_BY_COLUMN(dot_q4_0_scalar)
SX_GEMM_BY_COLUMN(dot_q4_1_scalar)
SX_GEMM_BY_COLUMN(dot_q4_k_scalar)
SX_GEMM_BY_COLUMN(dot_q6_k_scalar)
SX_GEMM_BY_COLUMN(dot_q5_0_scalar)
SX_GEMM_BY_COLUMN(dot_q5_1_scalar)
SX_GEMM_BY_COLUMN(dot_q5_k_scalar)

static const sx_cpu_kernels k_scalar = {
    .tiles_exact = true,
    .gemm = {
        [SX_DTYPE_F32] = dot_f32_scalar_gemm,
        [SX_DTYPE_F16] = dot_f16_scalar_gemm,
        [SX_DTYPE_BF16] = dot_bf16_scalar_gemm,
        [SX_DTYPE_Q8_0] = dot_q8_0_scalar_gemm,
        [SX_DTYPE_Q4_0] = dot_q4_0_scalar_gemm,
        [SX_DTYPE_Q4_1] = dot_q4_1_scalar_gemm,
        [SX_DTYPE_Q4_K] = dot_q4_k_scalar_gemm,
        [SX_DTYPE_Q6_K] = dot_q6_k_scalar_gemm,
        [SX_DTYPE_Q5_0] = dot_q5_0_scalar_gemm,
        [SX_DTYPE_Q5_1] = dot_q5_1_scalar_gemm,
        [SX_DTYPE_Q5_K] = dot_q5_k_scalar_gemm,
        SX_CPU_LOWBIT_GEMMS,
    },
    .vec_dot_f32 = vec_dot_f32_scalar,
    .vec_dot_f16_f32 = vec_dot_f16_f32_scalar,
    .vec_axpy_f16 = vec_axpy_f16_scalar,
    .vec_axpy_rows_f16 = vec_axpy_rows_f16_scalar,
    .vec_axpy_rows_f32 = vec_axpy_rows_f32_scalar,
    .exp_sum = sx_cpu_exp_sum_scalar,
    .silu_mul = sx_cpu_silu_mul_scalar,
    .fp32_to_fp16 = fp32_to_fp16_scalar,
    .fp16_to_fp32 = fp16_to_fp32_scalar,
    .quantize_q8 = quantize_row_q8_scalar,
    .quantize_q8k = quantize_row_q8k_scalar,
};

const sx_cpu_kernels *sx_cpu_kernels_scalar(void) { return &k_scalar; }

/* ------------------------------------------------------- vector helpers */

float sx_cpu_vec_dot_f32(int64_t n, const float *a, const float *b) {
    return active()->vec_dot_f32(n, a, b);
}
float sx_cpu_vec_dot_f16_f32(int64_t n, const uint16_t *a, const float *b) {
    return active()->vec_dot_f16_f32(n, a, b);
}
void sx_cpu_vec_axpy_f16(int64_t n, float alpha, const uint16_t *x, float *y) {
    active()->vec_axpy_f16(n, alpha, x, y);
}
void sx_cpu_fp32_to_fp16_row(int64_t n, const float *x, uint16_t *y) { active()->fp32_to_fp16(n, x, y); }
void sx_cpu_fp16_to_fp32_row(int64_t n, const uint16_t *x, float *y) { active()->fp16_to_fp32(n, x, y); }
const sx_cpu_kernels *sx_cpu_kernels_active(void) { return active(); }

/* ------------------------------------------------------------- driver */

enum { ACT_F32, ACT_Q8, ACT_Q8K };

typedef struct mm_ctx {
    sx_cpu_gemm_fn gemm;
    const char *W;
    size_t ws, w_row_bytes;
    int64_t K, N, M;
    const float *X;
    int64_t ldx;
    const char *xa; /* activation rows (X itself for float weights) */
    size_t xa_stride;
    float *Y;
    int64_t ldy;
    int act;
    void (*quant)(const float *x, int64_t K, void *dst); /* activation row quantiser */
    bool split_m;      /* work items are ranges of M (N too small to share) */
    int64_t chunk;     /* rows of N (or M) per work item */
    int64_t n_chunks;
    _Atomic int64_t next_chunk;
    /* wide prefill path (gemm_t): activations in column tiles of 16 */
    sx_cpu_gemm_t_fn gemm_t;
    char *xt;          /* [n_groups] tiles (layout in cpu_fast.h) */
    size_t xt_stride;
    int64_t n_groups;
    bool one_column; /* one activation column per kernel call (kernels whose tiles are not exact) */
} mm_ctx;

/* Below this many multiply-adds a matmul runs on the calling thread: it
 * takes about a microsecond, no more than a fork/join and moving the output
 * lines between cores (every matmul of a one-token decode of a hidden-128
 * model). The result does not depend on the split. */
#define SX_MM_PAR_MIN_MACS 65536

/* Rows of W kept hot while a tile of activation rows passes over them. */
#define SX_MM_W_TILE_BYTES (32 * 1024)
/* Activation rows per tile (bounded so they stay in L2). */
#define SX_MM_X_TILE_BYTES (256 * 1024)

static void mm_quantize(void *p, int ith, int nth) {
    mm_ctx *c = (mm_ctx *)p;
    for (int64_t m = ith; m < c->M; m += nth) c->quant(c->X + m * c->ldx, c->K, (void *)(c->xa + m * c->xa_stride));
}

/* Quantises the 16 rows of column tile g and interleaves them (layout in
 * cpu_fast.h); padding columns are zero. */
static void build_tile(const mm_ctx *c, int64_t g) {
    const int64_t K = c->K, m0 = g * SX_CPU_TCOLS;
    const int nc = c->M - m0 < SX_CPU_TCOLS ? (int)(c->M - m0) : SX_CPU_TCOLS;
    char *t = c->xt + g * c->xt_stride;
    if (nc < SX_CPU_TCOLS) memset(t, 0, c->xt_stride);
    for (int j = 0; j < nc; j++) {
        char *row = (char *)c->xa + (m0 + j) * c->xa_stride;
        const float *x = c->X + (m0 + j) * c->ldx;
        c->quant(x, K, row);
        for (int64_t q = 0; q < K / 4; q++) {
            uint32_t v;
            memcpy(&v, row + 4 * q, 4);
            memcpy(t + q * 64 + 4 * j, &v, 4);
        }
        float *meta = (float *)(t + K * SX_CPU_TCOLS);
        if (c->act == ACT_Q8) {
            const float *ds = (const float *)(row + K);
            float *dx = meta, *sx = meta + (K / 32) * SX_CPU_TCOLS;
            for (int64_t b = 0; b < K / 32; b++) {
                dx[b * SX_CPU_TCOLS + j] = ds[2 * b];
                sx[b * SX_CPU_TCOLS + j] = ds[2 * b + 1];
            }
        } else {
            const float *d = (const float *)(row + K);
            const int16_t *bs = (const int16_t *)(d + K / 256);
            float *dx = meta, *b32 = meta + (K / 256) * SX_CPU_TCOLS;
            int32_t *b16 = (int32_t *)(b32 + (K / 32) * SX_CPU_TCOLS);
            for (int64_t b = 0; b < K / 256; b++) dx[b * SX_CPU_TCOLS + j] = d[b];
            for (int64_t i = 0; i < K / 32; i++) b32[i * SX_CPU_TCOLS + j] = (float)(bs[2 * i] + bs[2 * i + 1]);
            for (int64_t i = 0; i < K / 16; i++) b16[i * SX_CPU_TCOLS + j] = 32 * bs[i];
        }
    }
}

static void mm_quantize_t(void *p, int ith, int nth) {
    mm_ctx *c = (mm_ctx *)p;
    for (int64_t g = ith; g < c->n_groups; g += nth) build_tile(c, g);
}

/* Wide path: rows [n0, n1) against every column tile; the rows (one weight
 * tile) stay in L1/L2 while the tiles pass. */
static void mm_block_t(const mm_ctx *c, int64_t n0, int64_t n1) {
    for (int64_t g = 0; g < c->n_groups; g++) {
        const int64_t m0 = g * SX_CPU_TCOLS;
        const int nc = c->M - m0 < SX_CPU_TCOLS ? (int)(c->M - m0) : SX_CPU_TCOLS;
        const char *xt = c->xt + g * c->xt_stride;
        for (int64_t n = n0; n < n1; n += SX_CPU_TILE_N) {
            const int nr = n1 - n < SX_CPU_TILE_N ? (int)(n1 - n) : SX_CPU_TILE_N;
            c->gemm_t(c->K, c->W + n * c->ws, c->ws, nr, xt, nc, c->Y + m0 * c->ldy + n, c->ldy);
        }
    }
}

static void mm_block(const mm_ctx *c, int64_t n0, int64_t n1, int64_t m0, int64_t m1) {
    if (n0 >= n1 || m0 >= m1) return;
    int64_t nt = (int64_t)(SX_MM_W_TILE_BYTES / (c->w_row_bytes ? c->w_row_bytes : 1));
    nt = nt < 4 ? 4 : nt & ~(int64_t)3;
    int64_t mt = (int64_t)(SX_MM_X_TILE_BYTES / c->xa_stride);
    if (mt < 1) mt = 1;
    if (m1 - m0 == 1) nt = n1 - n0; /* decode: one pass over the rows */
    for (int64_t mb = m0; mb < m1; mb += mt) {
        int64_t me = mb + mt < m1 ? mb + mt : m1;
        for (int64_t nb = n0; nb < n1; nb += nt) {
            int64_t ne = nb + nt < n1 ? nb + nt : n1;
            const int tile_m = c->one_column ? 1 : SX_CPU_TILE_M;
            for (int64_t m = mb; m < me; m += tile_m) {
                const int nc = me - m < tile_m ? (int)(me - m) : tile_m;
                const char *xa = c->xa + m * c->xa_stride;
                float *y = c->Y + m * c->ldy;
                for (int64_t n = nb; n < ne; n += SX_CPU_TILE_N) {
                    const int nr = ne - n < SX_CPU_TILE_N ? (int)(ne - n) : SX_CPU_TILE_N;
                    c->gemm(c->K, c->W + n * c->ws, c->ws, nr, xa, c->xa_stride, nc, y + n, c->ldy);
                }
            }
        }
    }
}

/* Work items are chunks of rows taken from a shared counter, so a thread that
 * starts late (descheduled on a shared or busy core) finds the work done by
 * the others instead of holding them up. */
static void mm_worker(void *p, int ith, int nth) {
    mm_ctx *c = (mm_ctx *)p;
    (void)ith, (void)nth;
    for (int64_t i = atomic_fetch_add_explicit(&c->next_chunk, 1, memory_order_relaxed); i < c->n_chunks;
         i = atomic_fetch_add_explicit(&c->next_chunk, 1, memory_order_relaxed)) {
        const int64_t lo = i * c->chunk;
        if (c->gemm_t) {
            mm_block_t(c, lo, lo + c->chunk < c->N ? lo + c->chunk : c->N);
        } else if (c->split_m) {
            const int64_t hi = lo + c->chunk < c->M ? lo + c->chunk : c->M;
            mm_block(c, 0, c->N, lo, hi);
        } else {
            const int64_t hi = lo + c->chunk < c->N ? lo + c->chunk : c->N;
            mm_block(c, lo, hi, 0, c->M);
        }
    }
}

sx_status sx_cpu_matmul(sx_threadpool *tp, sx_dtype wtype, const void *W, size_t w_row_stride,
                        int64_t K, int64_t N, const float *X, int64_t ldx, int64_t M,
                        float *Y, int64_t ldy) {
    const sx_dtype_info *info = sx_dtype_get(wtype);
    if (!info)
        return sx_set_error(SX_ERR_INVALID_ARG, "cpu matmul: bad dtype %d", (int)wtype);
    const sx_cpu_kernels *kt = active();
    sx_cpu_gemm_fn gemm = kt->gemm[wtype];
    if (!gemm)
        return sx_set_error(SX_ERR_UNSUPPORTED, "cpu matmul: weights of type %s", info->name);
    if (K < 0 || N < 0 || M < 0 || K % info->block_size != 0)
        return sx_set_error(SX_ERR_INVALID_ARG,
                            "cpu matmul: K=%lld N=%lld M=%lld (K must be a multiple of %d)",
                            (long long)K, (long long)N, (long long)M, info->block_size);
    if (M == 0 || N == 0) return SX_OK;
    size_t row_bytes = sx_dtype_row_size(wtype, K);
    if (!W || !X || !Y || (M > 1 && (ldx < K || ldy < N)) || (N > 1 && w_row_stride < row_bytes))
        return sx_set_error(SX_ERR_INVALID_ARG,
                            "cpu matmul: null pointer or stride too small (ldx=%lld ldy=%lld "
                            "w_row_stride=%zu, row=%zu bytes)",
                            (long long)ldx, (long long)ldy, w_row_stride, row_bytes);
    if (K == 0) {
        for (int64_t m = 0; m < M; m++) memset(Y + m * ldy, 0, (size_t)N * sizeof(float));
        return SX_OK;
    }

    mm_ctx c = {
        .gemm = gemm, .W = (const char *)W, .ws = w_row_stride, .w_row_bytes = row_bytes,
        .K = K, .N = N, .M = M, .X = X, .ldx = ldx, .Y = Y, .ldy = ldy,
        .one_column = !kt->tiles_exact && M <= SX_CPU_INVARIANT_M, /* batch invariance (cpu_fast.h) */
    };
    int nth = sx_threadpool_size(tp);
    switch (wtype) {
    case SX_DTYPE_Q4_0: case SX_DTYPE_Q4_1: case SX_DTYPE_Q8_0: case SX_DTYPE_Q5_0: case SX_DTYPE_Q5_1:
    case SX_DTYPE_IQ4_NL: c.act = ACT_Q8; break;
    case SX_DTYPE_Q4_K: case SX_DTYPE_Q6_K: case SX_DTYPE_Q5_K: case SX_DTYPE_Q2_K: case SX_DTYPE_Q3_K:
    case SX_DTYPE_IQ4_XS: c.act = ACT_Q8K; break;
    default: c.act = ACT_F32; break;
    }
    if (c.act == ACT_F32) {
        c.xa = (const char *)X;
        c.xa_stride = (size_t)ldx * sizeof(float);
    } else {
        c.xa_stride = c.act == ACT_Q8 ? sx_cpu_q8_row_bytes(K) : sx_cpu_q8k_row_bytes(K);
        c.quant = c.act == ACT_Q8 ? kt->quantize_q8 : kt->quantize_q8k;
        const bool wide = kt->gemm_t[wtype] && kt->gemm_t_min_m > 0 && M >= kt->gemm_t_min_m && M > SX_CPU_INVARIANT_M;
        if (wide) {
            c.gemm_t = kt->gemm_t[wtype];
            c.n_groups = (M + SX_CPU_TCOLS - 1) / SX_CPU_TCOLS;
            c.xt_stride = sx_cpu_q8t_group_bytes(K, c.act == ACT_Q8K);
        }
        if ((uint64_t)M > SIZE_MAX / 2 / (c.xa_stride + c.xt_stride))
            return sx_set_error(SX_ERR_OUT_OF_MEMORY, "cpu matmul: M=%lld too large", (long long)M);
        const size_t bytes = (size_t)M * c.xa_stride + (size_t)c.n_groups * c.xt_stride;
        char *scratch = sx_threadpool_scratch(tp, bytes);
        if (!scratch)
            return sx_set_error(SX_ERR_OUT_OF_MEMORY, "cpu matmul: %zu bytes of activation scratch", bytes);
        c.xa = scratch;
        c.xt = scratch + (size_t)M * c.xa_stride;
        sx_parallel_fn q = wide ? mm_quantize_t : mm_quantize;
        if (nth > 1 && M > 1 && M * K >= 16384)
            sx_threadpool_run(tp, q, &c);
        else
            q(&c, 0, 1);
    }
    if (c.xa_stride == 0) c.xa_stride = 1; /* M == 1 with ldx == 0 */

    /* Work items: ~4 per thread for decode (load balance), one weight tile
     * (SX_MM_W_TILE_BYTES) for prefill (each tile streamed once per M tile). */
    c.split_m = !c.gemm_t && nth > 1 && M >= nth && N < 4 * (int64_t)nth;
    const int64_t items = c.split_m ? M : N;
    if (c.split_m) {
        c.chunk = (M + 2 * nth - 1) / (2 * nth);
    } else if (M == 1) {
        c.chunk = (N + 4 * nth - 1) / (4 * nth);
        c.chunk = c.chunk < 16 ? 16 : c.chunk;
    } else {
        int64_t nt = (int64_t)(SX_MM_W_TILE_BYTES / row_bytes);
        int64_t even = (N + nth - 1) / nth;
        c.chunk = nt < even ? nt : even;
    }
    if (!c.split_m) c.chunk = (c.chunk + 3) & ~(int64_t)3;
    if (c.chunk < 1) c.chunk = 1;
    c.n_chunks = (items + c.chunk - 1) / c.chunk;
    atomic_init(&c.next_chunk, 0);
    if (nth > 1 && c.n_chunks > 1 && K * N * M >= SX_MM_PAR_MIN_MACS)
        sx_threadpool_run(tp, mm_worker, &c);
    else
        mm_worker(&c, 0, 1);
    return SX_OK;
}
