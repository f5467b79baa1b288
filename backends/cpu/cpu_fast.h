/* backends/cpu/cpu_fast.h — the fast CPU path: thread pool, topology, SIMD
 * matmul and vector helpers. Internal to backends/cpu (core/ never includes it).
 *
 * Kernels are chosen at run time from the CPU's features (AVX-512 VNNI,
 * AVX-512, AVX2+FMA+F16C, portable C); SPECEXIT_CPU_SIMD=scalar|avx2|avx512
 * forces a lower level. Tested by tests/test_cpu_fast.c against the scalar
 * reference conversions in ir/dtype.c.
 */
#ifndef SX_CPU_FAST_H
#define SX_CPU_FAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ir/dtype.h"
#include "ir/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- threads */

typedef struct sx_threadpool sx_threadpool;

/* Creates a pool of n_threads threads (0 = physical cores). The calling
 * thread of sx_threadpool_run() is thread 0, so n_threads - 1 workers are
 * spawned. With pin, worker i is bound to physical core i (i >= 1) and the
 * thread that calls sx_threadpool_run() is bound to core 0 (its affinity
 * stays changed). Pinning helps on a quiet machine and hurts when other
 * processes compete for the cores (a pinned thread cannot move to a free
 * one). Caller owns *out; free with sx_threadpool_destroy().
 * Errors: SX_ERR_INVALID_ARG (n_threads < 0 or > 1024), SX_ERR_OUT_OF_MEMORY,
 * SX_ERR_BACKEND (thread creation failed). Pinning failure is only logged. */
SX_MUST_USE sx_status sx_threadpool_create(int n_threads, bool pin, sx_threadpool **out);
/* Joins the workers and frees the pool. NULL is a no-op. */
void sx_threadpool_destroy(sx_threadpool *tp);
/* Number of threads including the caller (>= 1); 1 for NULL. */
int sx_threadpool_size(const sx_threadpool *tp);

typedef void (*sx_parallel_fn)(void *ctx, int ith, int nth);

/* Runs fn(ctx, i, n) once for each i in [0, n), n = pool size, and returns
 * when all have returned. The shares are claimed by whichever pool threads
 * (the caller included) get to them first: usually one share per thread, but
 * a late thread's share is run by another, so no two threads ever run the
 * same i at once, but one thread may run several i one after the other
 * (per-i scratch is safe; per-thread state keyed by i is not needed).
 * Everything written by the caller before the call is visible to fn, and
 * everything fn wrote is visible to the caller after it. Workers spin
 * briefly after each run, then sleep.
 * Not reentrant: one run at a time per pool, and fn must not call run on the
 * same pool. tp == NULL runs fn(ctx, 0, 1) on the caller. */
void sx_threadpool_run(sx_threadpool *tp, sx_parallel_fn fn, void *ctx);

/* Per-pool scratch memory (64-byte aligned), grown as needed and kept, so
 * steady-state calls do not allocate. Valid until the next call with a larger
 * size or the pool's destruction. tp == NULL uses a buffer of the calling
 * thread, freed when the thread exits.
 * Returns NULL on allocation failure. For use by kernels on the calling
 * thread before a run (not from inside fn). */
void *sx_threadpool_scratch(sx_threadpool *tp, size_t bytes);

/* --------------------------------------------------------------- topology */

/* Physical cores usable by this process (hwloc; falls back to sysconf). >= 1. */
int sx_cpu_physical_cores(void);
/* One line: "1 package, 2 cores, 2 PUs, L1d 48 KiB, L2 1024 KiB, L3 32768 KiB".
 * Writes into buf (truncated to n) and returns buf. */
const char *sx_cpu_topology_summary(char *buf, size_t n);
/* Binds the calling thread to physical core `core` (modulo the core count).
 * Returns false when binding is unavailable or failed. */
bool sx_cpu_pin_current_thread(int core);

/* ------------------------------------------------------------ SIMD level */

typedef enum sx_cpu_simd {
    SX_CPU_SIMD_SCALAR = 0,
    SX_CPU_SIMD_AVX2,       /* AVX2 + FMA + F16C */
    SX_CPU_SIMD_AVX512,     /* AVX-512 F + BW + VL */
    SX_CPU_SIMD_AVX512VNNI, /* ... + VNNI */
    SX_CPU_SIMD_COUNT
} sx_cpu_simd;

/* Name of the active level: "avx512vnni", "avx512", "avx2" or "scalar". */
const char *sx_cpu_simd_level(void);
/* Highest level this CPU (and this build) supports. */
sx_cpu_simd sx_cpu_simd_detected(void);
/* Parses a level name; false when unknown. */
bool sx_cpu_simd_from_name(const char *name, sx_cpu_simd *out);
/* Forces the active level (tests, benchmarks). SX_ERR_UNSUPPORTED when the
 * CPU lacks it. Not thread-safe against concurrent matmuls. */
SX_MUST_USE sx_status sx_cpu_simd_force(sx_cpu_simd level);
/* Returns to the detected level (or the SPECEXIT_CPU_SIMD one). */
void sx_cpu_simd_reset(void);

/* ----------------------------------------------------------------- matmul */

/* Batch invariance: for M <= SX_CPU_INVARIANT_M every output row is computed
 * exactly as a call with M = 1 would compute it, so a speculative
 * verification batch reproduces plain decoding bit for bit (greedy
 * speculative == plain greedy even at near ties). Larger M (prefill chunks)
 * may use faster kernels with another summation order. */
#define SX_CPU_INVARIANT_M 64

/* Y[m][n] = sum_k W[n][k] * X[m][k] for m < M, n < N.
 * W: N rows of K elements of dtype wtype (F32, F16, BF16, Q8_0, Q4_0, Q4_1,
 *    Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, Q2_K, Q3_K, IQ4_NL, IQ4_XS); row n starts at (const char *)W + n * w_row_stride bytes.
 * X: M rows of K floats, row m at X + m * ldx.  Y: row m at Y + m * ldy.
 * K must be a multiple of the dtype's block size. Quantised weights use
 * 8-bit activations (X rounded per block of 32 or 256 to int8 with an f32
 * scale): relative error ~1/254 of the block maximum per element.
 * Parallel over tp (NULL = calling thread only). Y must not alias X or W.
 * Errors: SX_ERR_INVALID_ARG, SX_ERR_UNSUPPORTED (dtype), SX_ERR_OUT_OF_MEMORY. */
SX_MUST_USE sx_status sx_cpu_matmul(sx_threadpool *tp, sx_dtype wtype, const void *W,
                                    size_t w_row_stride, int64_t K, int64_t N,
                                    const float *X, int64_t ldx, int64_t M,
                                    float *Y, int64_t ldy);

/* ------------------------------------------------------ vector helpers */

/* sum_i a[i] * b[i], F32 accumulation. */
float sx_cpu_vec_dot_f32(int64_t n, const float *a, const float *b);
/* sum_i f16(a[i]) * b[i] (a: IEEE half bits, e.g. a K cache row). */
float sx_cpu_vec_dot_f16_f32(int64_t n, const uint16_t *a, const float *b);
/* y[i] += alpha * f16(x[i]) (e.g. accumulating V rows in attention). */
void sx_cpu_vec_axpy_f16(int64_t n, float alpha, const uint16_t *x, float *y);
/* y[i] = f16(x[i]) / f32(x[i]): the same bits as sx_fp32_to_fp16 /
 * sx_fp16_to_fp32 (ir/dtype.c) on every level (round to nearest even, NaN
 * handled by the scalar code), F16C where the level has it. */
void sx_cpu_fp32_to_fp16_row(int64_t n, const float *x, uint16_t *y);
void sx_cpu_fp16_to_fp32_row(int64_t n, const uint16_t *x, float *y);

/* =================================================================
 * Internal: kernel tables shared by cpu_simd*.c. Not for other files.
 * ================================================================= */

/* 8-bit activations for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/IQ4_NL weights. One row of K values is laid
 * out as qs[K] int8, then ds[2 * K/32] f32 pairs: ds[2b] = d (scale of block
 * b), ds[2b+1] = d * sum(qs of block b). x[k] ~= d[k/32] * qs[k].
 * The int8 values are contiguous so SIMD loads 64 activations at once; the
 * (d, s) pair multiplies a weight block's (d, m) pair in one vector op. */
/* 8-bit activations for Q2_K/Q3_K/Q4_K/Q5_K/Q6_K/IQ4_XS weights: qs[K] int8, d[K/256] f32,
 * bsums[K/16] int16 (sum of each 16 qs). */
static inline size_t sx_cpu_q8_row_bytes(int64_t K) {
    size_t b = (size_t)K + (size_t)(K / 32) * 8;
    return (b + 63) & ~(size_t)63;
}
static inline size_t sx_cpu_q8k_row_bytes(int64_t K) {
    size_t b = (size_t)K + (size_t)(K / 256) * 4 + (size_t)(K / 16) * 2;
    return (b + 63) & ~(size_t)63;
}

/* Column-tile activations for the wide prefill kernels (gemm_t): 16
 * activation rows ("columns" of the product) quantised as above and stored
 * interleaved in groups of 4 values, so one 64-byte load holds 4 consecutive
 * K values of all 16 columns (the vpdpbusd operand layout):
 *   qs[K/4][16][4] int8 (zero for padding columns), then per block of 32:
 *   legacy (Q4_0/Q4_1/Q8_0): dx[K/32][16] f32, s[K/32][16] f32 (s = dx * sum qs)
 *   K-quants (Q4_K/Q6_K):    dx[K/256][16] f32, bsum32[K/32][16] f32,
 *                            bsum16x32[K/16][16] int32 (32 * sum of 16 qs) */
#define SX_CPU_TCOLS 16
static inline size_t sx_cpu_q8t_group_bytes(int64_t K, bool kquant) {
    size_t b = (size_t)K * SX_CPU_TCOLS;
    if (kquant)
        b += (size_t)(K / 256 + K / 32 + K / 16) * SX_CPU_TCOLS * 4;
    else
        b += (size_t)(K / 32) * 2 * SX_CPU_TCOLS * 4;
    return (b + 63) & ~(size_t)63;
}

/* Wide tile: nr (1..4) weight rows times one column tile xt (ncols <= 16
 * valid columns): y[c * ldy + r] = dot(W row r, column c). */
typedef void (*sx_cpu_gemm_t_fn)(int64_t K, const void *W, size_t w_stride, int nr, const void *xt,
                                 int ncols, float *y, int64_t ldy);

/* Tile of dot products: nr (1..4) consecutive weight rows times nc (1..4)
 * activation rows: y[c * ldy + r] = dot(W row r, x row c), with W row r at
 * W + r * w_stride bytes and x row c at x + c * x_stride bytes. x rows are
 * floats for F32/F16/BF16 weights and q8 / q8k activation rows (layouts
 * above) for the quantised types. Kernels unpack each weight block once per
 * tile, so prefill (M > 1) does ~nc times less unpacking per product. */
typedef void (*sx_cpu_gemm_fn)(int64_t K, const void *W, size_t w_stride, int nr, const void *x,
                               size_t x_stride, int nc, float *y, int64_t ldy);

#define SX_CPU_TILE_N 4 /* max nr */
#define SX_CPU_TILE_M 4 /* max nc */

typedef struct sx_cpu_kernels {
    sx_cpu_gemm_fn gemm[SX_DTYPE_COUNT];     /* NULL where unsupported */
    sx_cpu_gemm_t_fn gemm_t[SX_DTYPE_COUNT]; /* wide prefill kernels, NULL where absent */
    int gemm_t_min_m;                        /* use gemm_t from this M on */
    bool tiles_exact;                        /* gemm over nc columns == nc calls with one column, bit for bit */
    float (*vec_dot_f32)(int64_t n, const float *a, const float *b);
    float (*vec_dot_f16_f32)(int64_t n, const uint16_t *a, const float *b);
    void (*vec_axpy_f16)(int64_t n, float alpha, const uint16_t *x, float *y);
    /* attention's weighted sum of f16 V rows (row j at byte offset
     * j * v_stride) for nw (1..4) heads sharing them: acc_g += w_g[j] * V_j
     * for j < n in order of j, skipping w_g[j] == 0, with w_g = w + g *
     * w_stride and acc_g = acc + g * acc_stride; per head and lane the same
     * operations as vec_axpy_f16 row after row (so a head's result does not
     * depend on the other heads of the call) */
    void (*vec_axpy_rows_f16)(int64_t d, int64_t n, int nw, const float *w, int64_t w_stride, const uint16_t *V,
                              size_t v_stride, float *acc, int64_t acc_stride);
    /* the same for f32 V rows (an f32 cache, or q8_0 rows dequantized):
     * per head and lane a fixed sequence acc += w * v, row after row */
    void (*vec_axpy_rows_f32)(int64_t d, int64_t n, int nw, const float *w, int64_t w_stride, const float *V,
                              size_t v_stride, float *acc, int64_t acc_stride);
    /* softmax numerators in place: x[j] = exp(x[j] - mx), 0 where x[j] is
     * -inf; returns their sum. The sum depends only on the sequence of
     * nonzero numerators, not on where the zeros (hidden keys) stand, so an
     * attention row gives the same bits whatever other slots its batch
     * holds. tmp: scratch of n + 16 floats. Scalar: expf, sum in order;
     * AVX-512: a polynomial exp (relative error ~2e-7), the nonzero values
     * compressed into tmp and summed in 16 lanes. */
    float (*exp_sum)(int64_t n, float *x, float mx, float *tmp);
    /* y[i] = a[i] / (1 + exp(-a[i])) * b[i] (SwiGLU); scalar: expf */
    void (*silu_mul)(int64_t n, const float *a, const float *b, float *y);
    void (*fp32_to_fp16)(int64_t n, const float *x, uint16_t *y); /* see sx_cpu_fp32_to_fp16_row */
    void (*fp16_to_fp32)(int64_t n, const uint16_t *x, float *y);
    /* one activation row of K floats -> q8 / q8k layout; identical results
     * on every level (same float ops, round to nearest even) */
    void (*quantize_q8)(const float *x, int64_t K, void *dst);
    void (*quantize_q8k)(const float *x, int64_t K, void *dst);
} sx_cpu_kernels;

/* Q2_K / Q3_K / IQ4_NL / IQ4_XS (cpu_simd_avx2.c, x86-64 only): AVX2 code
 * that the AVX-512 tables use too, one activation row per call (exact
 * tiles, see tiles_exact). */
void sx_cpu_avx2_gemm_q2_k(int64_t K, const void *W, size_t w_stride, int nr, const void *x, size_t x_stride, int nc,
                           float *y, int64_t ldy);
void sx_cpu_avx2_gemm_q3_k(int64_t K, const void *W, size_t w_stride, int nr, const void *x, size_t x_stride, int nc,
                           float *y, int64_t ldy);
void sx_cpu_avx2_gemm_iq4_nl(int64_t K, const void *W, size_t w_stride, int nr, const void *x, size_t x_stride, int nc,
                             float *y, int64_t ldy);
void sx_cpu_avx2_gemm_iq4_xs(int64_t K, const void *W, size_t w_stride, int nr, const void *x, size_t x_stride, int nc,
                             float *y, int64_t ldy);

/* Per-level tables; return NULL when that level is not compiled in. */
const sx_cpu_kernels *sx_cpu_kernels_scalar(void);
const sx_cpu_kernels *sx_cpu_kernels_avx2(void);
const sx_cpu_kernels *sx_cpu_kernels_avx512(void);
const sx_cpu_kernels *sx_cpu_kernels_avx512vnni(void);
/* The active level's table: kernels that call the vector helpers in an inner
 * loop fetch it once (the sx_cpu_vec_* wrappers look it up on every call). */
const sx_cpu_kernels *sx_cpu_kernels_active(void);
/* vec_axpy_rows_f16 from a level's one-row vec_axpy_f16, head by head and
 * row by row (the scalar and AVX2 tables). */
#define SX_CPU_AXPY_ROWS_BY_ROW(name, axpy)                                                                    \
    static void name(int64_t d, int64_t n, int nw, const float *w, int64_t w_stride, const uint16_t *V,        \
                     size_t v_stride, float *acc, int64_t acc_stride) {                                        \
        for (int g = 0; g < nw; g++)                                                                           \
            for (int64_t j = 0; j < n; j++)                                                                    \
                if (w[g * w_stride + j] != 0.0f)                                                               \
                    axpy(d, w[g * w_stride + j], (const uint16_t *)((const char *)V + j * v_stride), acc + g * acc_stride); \
    }

/* vec_axpy_rows_f32 as plain loops (the scalar and AVX2 levels; the
 * compiler vectorizes the inner loop with the file's instruction set). */
#define SX_CPU_AXPY_ROWS_F32_BY_ROW(name)                                                                      \
    static void name(int64_t d, int64_t n, int nw, const float *w, int64_t w_stride, const float *V,           \
                     size_t v_stride, float *acc, int64_t acc_stride) {                                        \
        for (int g = 0; g < nw; g++)                                                                           \
            for (int64_t j = 0; j < n; j++) {                                                                  \
                const float wj = w[g * w_stride + j];                                                          \
                if (wj == 0.0f) continue;                                                                      \
                const float *v = (const float *)((const char *)V + j * v_stride);                              \
                float *a = acc + g * acc_stride;                                                               \
                for (int64_t c = 0; c < d; c++) a[c] += wj * v[c];                                             \
            }                                                                                                  \
    }

/* exp_sum of the scalar table (also the AVX2 level's). */
float sx_cpu_exp_sum_scalar(int64_t n, float *x, float mx, float *tmp);
void sx_cpu_silu_mul_scalar(int64_t n, const float *a, const float *b, float *y);
/* F16C row conversions of the AVX2 level, shared by the AVX-512 tables. */
void sx_cpu_fp32_to_fp16_f16c(int64_t n, const float *x, uint16_t *y);
void sx_cpu_fp16_to_fp32_f16c(int64_t n, const uint16_t *x, float *y);

/* Software prefetch of the weight stream. The nr rows of one kernel call are
 * one region [W, W + nr * ws) read front to back in nb steps; before step b
 * the kernel requests the lines up to SX_CPU_PF_DIST bytes past the
 * proportional position, a few lines per step. Hardware prefetchers lose
 * track of 4 interleaved short row streams; this keeps DRAM busy. */
#ifndef SX_CPU_PF_DIST
#define SX_CPU_PF_DIST 8192
#endif
/* Addresses are integers: they may point past the weights (prefetches never
 * fault, and integer arithmetic avoids out-of-object pointers). */
typedef struct sx_cpu_pf { uintptr_t next, base; size_t per_step; } sx_cpu_pf;

static inline sx_cpu_pf sx_cpu_pf_init(const void *W, size_t ws, int nr, int64_t nsteps) {
    sx_cpu_pf p;
    p.base = (uintptr_t)W + SX_CPU_PF_DIST;
    p.next = p.base & ~(uintptr_t)63;
    p.per_step = nsteps > 0 ? ((size_t)nr * ws + (size_t)nsteps - 1) / (size_t)nsteps : 0;
    return p;
}
/* Requests the lines needed before step `step_end` (exclusive) begins. */
static inline void sx_cpu_pf_step(sx_cpu_pf *p, int64_t step_end) {
    const uintptr_t hi = p->base + (uintptr_t)step_end * p->per_step;
    for (; p->next < hi; p->next += 64) __builtin_prefetch((const void *)p->next, 0, 2);
}

/* Q4_K: unpacks the 12 packed bytes into 8 6-bit scales and 8 6-bit mins as
 * four little-endian words (little-endian hosts, like GGUF itself): bytes sc0..sc3, sc4..sc7, m0..m3, m4..m7.
 * (j < 4: sc = s[j] & 63, m = s[j+4] & 63; j >= 4: the low 4 bits come from
 * s[j+4], the high 2 bits from the top of s[j-4] (sc) or s[j] (m).)
 * Word arithmetic keeps the result in registers (no byte stores that a
 * following vector load would have to wait for). */
static inline void sx_cpu_q4k_scales(const uint8_t s[12], uint32_t out[4]) {
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    out[0] = u0 & 0x3F3F3F3Fu;
    out[1] = (u2 & 0x0F0F0F0Fu) | (((u0 >> 6) & 0x03030303u) << 4);
    out[2] = u1 & 0x3F3F3F3Fu;
    out[3] = ((u2 >> 4) & 0x0F0F0F0Fu) | (((u1 >> 6) & 0x03030303u) << 4);
}

/* Q3_K: the 16 6-bit scales (0..63, before the -32) as four little-endian
 * words of bytes s0..s3, s4..s7, s8..s11, s12..s15 (scale j: low 4 bits from
 * s[j % 8] >> 4 * (j / 8), high 2 bits from s[8 + j % 4] >> 2 * (j / 4)). */
static inline void sx_cpu_q3k_scales(const uint8_t s[12], uint32_t out[4]) {
    uint32_t a0, a1, a2;
    memcpy(&a0, s, 4);
    memcpy(&a1, s + 4, 4);
    memcpy(&a2, s + 8, 4);
    out[0] = (a0 & 0x0F0F0F0Fu) | ((a2 & 0x03030303u) << 4);
    out[1] = (a1 & 0x0F0F0F0Fu) | (((a2 >> 2) & 0x03030303u) << 4);
    out[2] = ((a0 >> 4) & 0x0F0F0F0Fu) | (((a2 >> 4) & 0x03030303u) << 4);
    out[3] = ((a1 >> 4) & 0x0F0F0F0Fu) | (((a2 >> 6) & 0x03030303u) << 4);
}

#ifdef __cplusplus
}
#endif
#endif
