/* tests/test_cpu_fast.c — the fast CPU kernels against the scalar reference.
 *
 * For every weight dtype, every SIMD level this CPU has (forced with
 * sx_cpu_simd_force), thread counts 1/2/3 and odd shapes, sx_cpu_matmul is
 * compared with a double-precision dot of the reference-dequantised weights
 * (sx_dtype_dequantize_row) and X. Strides are padded, and guard values
 * around Y catch out-of-range writes. Also: vector helpers, argument errors,
 * and a thread-pool stress test (counter and plain-memory visibility).
 *
 *   test_cpu_fast [seed]      (or SPECEXIT_TEST_SEED=...) ; prints the seed
 *   test_cpu_fast --quick     fewer shapes
 * Exit 0 when everything passes, 1 otherwise; a failure prints the case.
 *
 * Tolerances (err = |y - ref|, S = sum_k |w_k x_k|):
 *  - quantised weights (8-bit activations): err <= 0.01 * S + 1e-4.
 *    Rounding x to a per-block int8 grid moves each x_k by at most
 *    amax_b / 254 (half a step of amax_b / 127). With X uniform in [-1, 1]
 *    the block maximum is close to 1 while E|x_k| = 0.5, so the worst case
 *    sum_k |w_k| * amax_b / 254 is about (2/254) S ~= 0.008 S; the errors
 *    have random signs, so typical errors are ~sqrt(K) times smaller. Weights
 *    themselves are exact (integer codes times f16 scales). F32 rounding of
 *    the block sums is ~1e-6 S. 1e-4 absorbs S ~ 0.
 *    Also the rigorous form of that bound, computed per case:
 *    err <= sum_b (amax_b / 254) * sum_{k in b} |w_k| * 1.001 + 1e-5 * S + 1e-6
 *    (b = activation blocks of 32, or 256 for the K types and IQ4_XS), which catches a
 *    wrong block that the 1% rule could hide.
 *  - F32/F16/BF16 weights (no activation rounding): err <= 1e-4 * S + 1e-6:
 *    F32 accumulation over K <= 2048 with several partial sums stays near
 *    sqrt(K) * 2^-24 * S ~ 3e-6 S.
 *  - every SIMD level against the scalar level on the same case:
 *    |y - y_scalar| <= 1e-5 * S + 1e-6. Both see identical int8 activations
 *    and integer block sums, so only the F32 summation order differs
 *    (<= K/32 * 2^-24 * S ~ 4e-6 S for K = 2048).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/cpu/cpu_fast.h"

/* ----------------------------------------------------------- random */

static uint64_t g_rng;
static uint64_t rnd(void) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545F4914F6CDD1DULL;
}
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)((rnd() >> 40) * (1.0 / 16777216.0)); }

static int g_fail, g_pass;
static unsigned long long g_seed;

/* ------------------------------------------------------- weight data */

/* Fills N rows (stride bytes apart) of K weights of dtype t. mode 0: random
 * floats quantised by the reference; mode 1: random code bits (every nibble,
 * every int8 incl. -128, every 6-bit scale) with sane random f16 scales. */
static void fill_weights(sx_dtype t, void *W, size_t stride, int64_t K, int64_t N, int mode, float *tmp) {
    const size_t rb = sx_dtype_row_size(t, K);
    for (int64_t n = 0; n < N; n++) {
        uint8_t *row = (uint8_t *)W + n * stride;
        if (mode == 0 || !sx_dtype_get(t)->quantized) {
            for (int64_t k = 0; k < K; k++) tmp[k] = rndf(-1.0f, 1.0f) * (k % 7 == 0 ? 3.0f : 1.0f);
            if (t == SX_DTYPE_F32) memcpy(row, tmp, rb);
            else if (t == SX_DTYPE_F16)
                for (int64_t k = 0; k < K; k++) ((uint16_t *)row)[k] = sx_fp32_to_fp16(tmp[k]);
            else if (t == SX_DTYPE_BF16)
                for (int64_t k = 0; k < K; k++) ((uint16_t *)row)[k] = sx_fp32_to_bf16(tmp[k]);
            else sx_dtype_quantize_row(t, tmp, row, K);
        } else {
            for (size_t i = 0; i < rb; i++) row[i] = (uint8_t)rnd();
            const int bs = sx_dtype_get(t)->block_size, ts = sx_dtype_get(t)->type_size;
            for (int64_t b = 0; b < K / bs; b++) {
                uint8_t *blk = row + b * ts;
                uint16_t h[2] = {sx_fp32_to_fp16(rndf(-0.1f, 0.1f)), sx_fp32_to_fp16(rndf(-0.1f, 0.1f))};
                switch (t) {
                case SX_DTYPE_Q4_0: case SX_DTYPE_Q8_0: case SX_DTYPE_Q5_0: case SX_DTYPE_IQ4_NL: case SX_DTYPE_IQ4_XS:
                    memcpy(blk, h, 2);
                    break;
                case SX_DTYPE_Q4_1: case SX_DTYPE_Q4_K: case SX_DTYPE_Q5_1: case SX_DTYPE_Q5_K: memcpy(blk, h, 4); break;
                case SX_DTYPE_Q6_K: memcpy(blk + offsetof(sx_block_q6_k, d), h, 2); break;
                case SX_DTYPE_Q3_K: memcpy(blk + offsetof(sx_block_q3_k, d), h, 2); break;
                case SX_DTYPE_Q2_K: memcpy(blk + offsetof(sx_block_q2_k, d), h, 4); break;
                default: break;
                }
            }
        }
    }
}

/* --------------------------------------------------------- matmul case */

typedef struct shape { int64_t K, N, M; } shape;

typedef struct ref_set {
    sx_dtype t;
    int64_t K, N, M, ldx, ldy;
    size_t ws;
    void *W;
    float *X;
    double *ref; /* [M][N] */
    double *S;   /* [M][N] sum |w x| */
    double *B;   /* [M][N] activation-rounding bound (quantised weights) */
} ref_set;

static void ref_build(ref_set *r, sx_dtype t, shape s, int mode) {
    memset(r, 0, sizeof *r);
    r->t = t;
    r->K = s.K, r->N = s.N, r->M = s.M;
    r->ws = sx_dtype_row_size(t, s.K) + (s.N % 2 ? 0 : 64); /* padded stride on even N */
    r->ldx = s.K + (s.M % 2 ? 0 : 5);
    r->ldy = s.N + 3;
    r->W = malloc(r->ws * (size_t)s.N);
    r->X = malloc(sizeof(float) * (size_t)(r->ldx * s.M));
    float *wf = malloc(sizeof(float) * (size_t)s.K * (size_t)s.N);
    float *tmp = malloc(sizeof(float) * (size_t)s.K);
    memset(r->W, 0xA5, r->ws * (size_t)s.N);
    fill_weights(t, r->W, r->ws, s.K, s.N, mode, tmp);
    for (int64_t i = 0; i < r->ldx * s.M; i++) r->X[i] = rndf(-1.0f, 1.0f);
    for (int64_t n = 0; n < s.N; n++) sx_dtype_dequantize_row(t, (char *)r->W + n * r->ws, wf + n * s.K, s.K);
    r->ref = malloc(sizeof(double) * (size_t)(s.M * s.N));
    r->S = malloc(sizeof(double) * (size_t)(s.M * s.N));
    r->B = malloc(sizeof(double) * (size_t)(s.M * s.N));
    const int64_t ab = sx_dtype_get(t)->block_size == 256 ? 256 : 32; /* activation block */
    double *amax = malloc(sizeof(double) * (size_t)(s.K / ab));
    for (int64_t m = 0; m < s.M; m++) {
        const float *x = r->X + m * r->ldx;
        for (int64_t b = 0; b < s.K / ab; b++) {
            amax[b] = 0;
            for (int64_t k = b * ab; k < (b + 1) * ab; k++) amax[b] = fmax(amax[b], fabs(x[k]));
        }
        for (int64_t n = 0; n < s.N; n++) {
            double acc = 0, sa = 0, bound = 0;
            const float *w = wf + n * s.K;
            for (int64_t k = 0; k < s.K; k++) {
                acc += (double)w[k] * x[k];
                sa += fabs((double)w[k] * x[k]);
                bound += fabs((double)w[k]) * amax[k / ab] / 254.0;
            }
            r->ref[m * s.N + n] = acc;
            r->S[m * s.N + n] = sa;
            r->B[m * s.N + n] = bound;
        }
    }
    free(amax);
    free(wf);
    free(tmp);
}

static void ref_free(ref_set *r) {
    free(r->W);
    free(r->X);
    free(r->ref);
    free(r->S);
    free(r->B);
}

#define GUARD_VAL -12345.678f

/* Runs one case; returns the worst err/tol ratio (> 1 = fail) or -1 on an
 * error status or a guard overwrite. */
static double run_case(const ref_set *r, sx_threadpool *tp, const char *level, int mode,
                       const float *y_base, float *y_out) {
    const int64_t rows = r->M + 2; /* one guard row before and after */
    float *ybuf = malloc(sizeof(float) * (size_t)(rows * r->ldy));
    for (int64_t i = 0; i < rows * r->ldy; i++) ybuf[i] = GUARD_VAL;
    float *Y = ybuf + r->ldy;
    sx_status st = sx_cpu_matmul(tp, r->t, r->W, r->ws, r->K, r->N, r->X, r->ldx, r->M, Y, r->ldy);
    const bool quant = sx_dtype_get(r->t)->quantized;
    const double rel = quant ? 0.01 : 1e-4, abs_tol = quant ? 1e-4 : 1e-6;
    double worst = 0;
    const char *what = NULL;
    int64_t bad_m = -1, bad_n = -1;
    if (st != SX_OK) what = "error status";
    for (int64_t i = 0; !what && i < rows * r->ldy; i++) {
        const int64_t m = i / r->ldy - 1, n = i % r->ldy;
        if (m < 0 || m >= r->M || n >= r->N) {
            if (ybuf[i] != GUARD_VAL) what = "guard overwritten", bad_m = m, bad_n = n;
            continue;
        }
        const double y = Y[m * r->ldy + n], S = r->S[m * r->N + n];
        const double err = fabs(y - r->ref[m * r->N + n]);
        double ratio = err / (rel * S + abs_tol);
        if (quant) ratio = fmax(ratio, err / (r->B[m * r->N + n] * 1.001 + 1e-5 * S + 1e-6));
        if (y_base) ratio = fmax(ratio, fabs(y - y_base[m * r->N + n]) / (1e-5 * S + 1e-6));
        if (y_out) y_out[m * r->N + n] = (float)y;
        if (!isfinite(ratio)) ratio = 1e30;
        if (ratio > worst) {
            worst = ratio;
            bad_m = m, bad_n = n;
        }
    }
    if (what || worst > 1.0) {
        g_fail++;
        if (g_fail <= 20) {
            printf("FAIL seed=%llu dtype=%s level=%s threads=%d mode=%d K=%lld N=%lld M=%lld: ", g_seed,
                   sx_dtype_name(r->t), level, sx_threadpool_size(tp), mode, (long long)r->K,
                   (long long)r->N, (long long)r->M);
            if (what)
                printf("%s (%s) at m=%lld n=%lld\n", what, st != SX_OK ? sx_last_error() : "",
                       (long long)bad_m, (long long)bad_n);
            else
                printf("y[%lld][%lld]=%.9g ref=%.9g scalar=%.9g S=%.6g bound=%.6g err/tol=%.3g\n",
                       (long long)bad_m, (long long)bad_n, Y[bad_m * r->ldy + bad_n],
                       r->ref[bad_m * r->N + bad_n], y_base ? y_base[bad_m * r->N + bad_n] : NAN,
                       r->S[bad_m * r->N + bad_n], r->B[bad_m * r->N + bad_n], worst);
        }
        worst = what ? -1 : worst;
    } else {
        g_pass++;
    }
    free(ybuf);
    return worst;
}

static const sx_dtype k_types[] = {SX_DTYPE_F32, SX_DTYPE_F16, SX_DTYPE_BF16, SX_DTYPE_Q8_0,
                                   SX_DTYPE_Q4_0, SX_DTYPE_Q4_1, SX_DTYPE_Q5_0, SX_DTYPE_Q5_1,
                                   SX_DTYPE_Q4_K, SX_DTYPE_Q5_K, SX_DTYPE_Q6_K, SX_DTYPE_Q2_K,
                                   SX_DTYPE_Q3_K, SX_DTYPE_IQ4_NL, SX_DTYPE_IQ4_XS};

static void test_matmul(sx_threadpool *pools[], int npools, bool quick) {
    static const int64_t Ks[] = {32, 64, 256, 512, 576, 1536, 2048};
    static const int64_t Ns[] = {1, 3, 7, 33, 577};
    static const int64_t Ms[] = {1, 2, 5, 17, 64, 80}; /* 80: the wide (gemm_t) kernels */
    const int nlev = (int)sx_cpu_simd_detected() + 1;
    for (size_t ti = 0; ti < sizeof k_types / sizeof k_types[0]; ti++) {
        const sx_dtype t = k_types[ti];
        const int bs = sx_dtype_get(t)->block_size;
        double worst[SX_CPU_SIMD_COUNT][4] = {{0}};
        int cases[SX_CPU_SIMD_COUNT][4] = {{0}};
        int fail_before = g_fail;
        int ci = 0;
        for (size_t a = 0; a < sizeof Ks / sizeof Ks[0]; a++)
            for (size_t b = 0; b < sizeof Ns / sizeof Ns[0]; b++)
                for (size_t c = 0; c < sizeof Ms / sizeof Ms[0]; c++) {
                    shape s = {Ks[a], Ns[b], Ms[c]};
                    if (s.K % bs) continue;
                    /* bound the work: the biggest K x N only with a few M */
                    if (s.K * s.N * s.M > (quick ? 2000000 : 40000000)) continue;
                    if (quick && (ci++ % 3)) continue;
                    const int mode = (int)((a + b + c) % 2);
                    ref_set r;
                    ref_build(&r, t, s, mode);
                    float *ys = malloc(sizeof(float) * (size_t)(s.M * s.N)); /* scalar, 1 thread */
                    for (int l = 0; l < nlev; l++) {
                        if (sx_cpu_simd_force((sx_cpu_simd)l) != SX_OK) continue;
                        for (int p = 0; p < npools; p++) {
                            const bool first = l == 0 && p == 0;
                            double w = run_case(&r, pools[p], sx_cpu_simd_level(), mode,
                                                first ? NULL : ys, first ? ys : NULL);
                            if (w < 0) w = 1e30;
                            if (w > worst[l][p]) worst[l][p] = w;
                            cases[l][p]++;
                        }
                    }
                    free(ys);
                    ref_free(&r);
                }
        for (int l = 0; l < nlev; l++)
            for (int p = 0; p < npools; p++) {
                if (sx_cpu_simd_force((sx_cpu_simd)l) != SX_OK) continue;
                printf("matmul %-5s %-10s threads=%d: %4d cases, worst err/tol %.3g %s\n", sx_dtype_name(t),
                       sx_cpu_simd_level(), sx_threadpool_size(pools[p]), cases[l][p], worst[l][p],
                       worst[l][p] <= 1.0 ? "ok" : "FAIL");
            }
        if (g_fail > fail_before) printf("matmul %s: %d failures\n", sx_dtype_name(t), g_fail - fail_before);
    }
    sx_cpu_simd_reset();
}

/* ------------------------------------------------------ vector helpers */

static void check(bool ok, const char *fmt, const char *a, long long b, double c, double d) {
    if (ok) {
        g_pass++;
        return;
    }
    g_fail++;
    printf("FAIL seed=%llu ", g_seed);
    printf(fmt, a, b, c, d);
    printf("\n");
}

static void test_vec(void) {
    static const int64_t ns[] = {0, 1, 7, 8, 15, 16, 17, 31, 64, 100, 1000, 4099};
    const int nlev = (int)sx_cpu_simd_detected() + 1;
    float *a = malloc(sizeof(float) * 4099), *b = malloc(sizeof(float) * 4099);
    float *y = malloc(sizeof(float) * 4100), *y0 = malloc(sizeof(float) * 4100);
    uint16_t *h = malloc(sizeof(uint16_t) * 4099);
    for (int l = 0; l < nlev; l++) {
        if (sx_cpu_simd_force((sx_cpu_simd)l) != SX_OK) continue;
        const char *lv = sx_cpu_simd_level();
        int f0 = g_fail;
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
            const int64_t n = ns[i];
            double ref = 0, refh = 0, S = 0, Sh = 0;
            for (int64_t k = 0; k < n; k++) {
                a[k] = rndf(-1, 1), b[k] = rndf(-1, 1);
                h[k] = sx_fp32_to_fp16(rndf(-2, 2));
                ref += (double)a[k] * b[k], S += fabs((double)a[k] * b[k]);
                refh += (double)sx_fp16_to_fp32(h[k]) * b[k], Sh += fabs((double)sx_fp16_to_fp32(h[k]) * b[k]);
            }
            const double e1 = fabs(sx_cpu_vec_dot_f32(n, a, b) - ref);
            check(e1 <= 1e-5 * S + 1e-6, "vec_dot_f32 level=%s n=%lld err=%g S=%g", lv, (long long)n, e1, S);
            const double e2 = fabs(sx_cpu_vec_dot_f16_f32(n, h, b) - refh);
            check(e2 <= 1e-5 * Sh + 1e-6, "vec_dot_f16_f32 level=%s n=%lld err=%g S=%g", lv, (long long)n, e2, Sh);
            for (int64_t k = 0; k <= n; k++) y[k] = y0[k] = rndf(-1, 1);
            const float alpha = rndf(-2, 2);
            sx_cpu_vec_axpy_f16(n, alpha, h, y);
            double e3 = 0;
            for (int64_t k = 0; k < n; k++) {
                double e = fabs(y[k] - (y0[k] + (double)alpha * sx_fp16_to_fp32(h[k])));
                e3 = e > e3 ? e : e3;
            }
            check(e3 <= 1e-6 * 5 && y[n] == y0[n], "vec_axpy_f16 level=%s n=%lld err=%g guard=%g", lv,
                  (long long)n, e3, (double)(y[n] - y0[n]));
        }
        /* attention's weighted V sum: the same bits as vec_axpy_f16 row by
         * row, for 1..4 heads sharing the rows */
        const sx_cpu_kernels *kt = sx_cpu_kernels_active();
        static const int64_t ds[] = {1, 16, 40, 64, 100, 128};
        for (size_t di = 0; di < sizeof ds / sizeof ds[0]; di++)
            for (int nw = 1; nw <= 4; nw++) {
                const int64_t d = ds[di], nr = 13, st = d + 3; /* row stride in halves */
                uint16_t *kv = malloc(sizeof(uint16_t) * (size_t)(nr * st));
                float w[4][13], acc1[4][129], acc2[4][129];
                for (int64_t k = 0; k < nr * st; k++) kv[k] = sx_fp32_to_fp16(rndf(-2, 2));
                for (int g = 0; g < nw; g++) {
                    for (int64_t k = 0; k <= d; k++) acc1[g][k] = acc2[g][k] = rndf(-1, 1);
                    for (int j = 0; j < nr; j++) w[g][j] = (j + g) % 5 == 2 ? 0.0f : rndf(0, 1);
                }
                kt->vec_axpy_rows_f16(d, nr, nw, &w[0][0], 13, kv, sizeof(uint16_t) * (size_t)st, &acc1[0][0], 129);
                int bad = 0;
                for (int g = 0; g < nw; g++) {
                    for (int j = 0; j < nr; j++)
                        if (w[g][j] != 0.0f) sx_cpu_vec_axpy_f16(d, w[g][j], kv + j * st, acc2[g]);
                    bad |= memcmp(acc1[g], acc2[g], sizeof(float) * (size_t)(d + 1)) != 0; /* [d]: guard */
                }
                check(!bad, "vec_axpy_rows_f16 level=%s d=%lld heads=%g differs from vec_axpy_f16 row by row%g", lv, (long long)d,
                      (double)nw, 0.0);
                free(kv);
                /* f32 V rows: each head as alone (nw = 1), the rows in two
                 * calls as in one (attention's q8_0 tiles), within 1e-5 of double */
                float *vf = malloc(sizeof(float) * (size_t)(nr * st));
                float acc3[4][129];
                double ref[129], worst = 0;
                for (int64_t k = 0; k < nr * st; k++) vf[k] = rndf(-2, 2);
                for (int g = 0; g < nw; g++)
                    for (int64_t k = 0; k <= d; k++) acc1[g][k] = acc2[g][k] = acc3[g][k] = rndf(-1, 1);
                kt->vec_axpy_rows_f32(d, nr, nw, &w[0][0], 13, vf, sizeof(float) * (size_t)st, &acc1[0][0], 129);
                bad = 0;
                for (int g = 0; g < nw; g++) {
                    for (int64_t k = 0; k < d; k++) ref[k] = acc2[g][k];
                    kt->vec_axpy_rows_f32(d, nr, 1, w[g], 13, vf, sizeof(float) * (size_t)st, acc2[g], 129);
                    kt->vec_axpy_rows_f32(d, 5, 1, w[g], 13, vf, sizeof(float) * (size_t)st, acc3[g], 129);
                    kt->vec_axpy_rows_f32(d, nr - 5, 1, w[g] + 5, 13, vf + 5 * st, sizeof(float) * (size_t)st, acc3[g], 129);
                    bad |= memcmp(acc1[g], acc2[g], sizeof(float) * (size_t)(d + 1)) != 0 || memcmp(acc2[g], acc3[g], sizeof(float) * (size_t)(d + 1)) != 0;
                    for (int64_t k = 0; k < d; k++) {
                        for (int j = 0; j < nr; j++) ref[k] += (double)w[g][j] * vf[j * st + k];
                        const double e = fabs(ref[k] - acc1[g][k]);
                        worst = e > worst ? e : worst;
                    }
                }
                check(!bad && worst <= 1e-5, bad ? "vec_axpy_rows_f32 level=%s d=%lld heads=%g: heads or row splits change the bits%g"
                                                 : "vec_axpy_rows_f32 level=%s d=%lld heads=%g: error %g vs double",
                      lv, (long long)d, (double)nw, worst);
                free(vf);
            }
        /* exp_sum: exp within 1e-6 relative of double exp, down to
         * underflow; the sum does not move when -inf entries are inserted */
        {
            enum { M = 300 };
            float x[2 * M], x2[2 * M], tmp[2 * M + 16];
            double worst = 0;
            for (int j = 0; j < M; j++) x[j] = j < 20 ? -0.5f * (float)j * (float)j : rndf(-30, 0);
            x[M - 1] = -INFINITY;
            int n2 = 0;
            for (int j = 0; j < M; j++) {
                if (j % 7 == 3) x2[n2++] = -INFINITY;
                x2[n2++] = x[j];
            }
            const float s1 = kt->exp_sum(M, x, 0.0f, tmp), s2 = kt->exp_sum(n2, x2, 0.0f, tmp);
            for (int j = 0; j < 20; j++) {
                const double r = exp(-0.5 * j * j), e = r > 1e-37 ? fabs(x[j] - r) / r : fabs(x[j]);
                worst = e > worst ? e : worst;
            }
            check(worst < 1e-6 && x[M - 1] == 0.0f && memcmp(&s1, &s2, 4) == 0,
                  "exp_sum level=%s (%lld): rel err %g, sums differ by %g", lv, 0LL, worst, (double)(s1 - s2));
        }
        /* silu_mul against double, large |a| included (exp overflow/underflow) */
        {
            enum { M = 203 };
            float sa[M], sb[M], sy[M + 1];
            for (int j = 0; j < M; j++) sa[j] = j < 8 ? (float)(j - 4) * 30.0f : rndf(-12, 12), sb[j] = rndf(-2, 2);
            sy[M] = 5.0f;
            kt->silu_mul(M, sa, sb, sy);
            double worst = 0;
            for (int j = 0; j < M; j++) {
                const double r = (double)sa[j] / (1.0 + exp(-(double)sa[j])) * sb[j];
                const double e = fabs(sy[j] - r) / (fabs(r) + 1e-30);
                worst = e > worst ? e : worst;
            }
            check(worst < 1e-6 && sy[M] == 5.0f, "silu_mul level=%s (%lld): rel err %g guard %g", lv, 0LL, worst, (double)sy[M]);
        }
        printf("vec helpers %-10s: %s\n", lv, g_fail == f0 ? "ok" : "FAIL");
    }
    sx_cpu_simd_reset();
    free(a), free(b), free(y), free(y0), free(h);
}

/* f32 <-> f16 rows: the same bits as ir/dtype.c on every level, for all
 * 65536 halves and for floats at rounding ties, the overflow and subnormal
 * edges, NaNs with payloads and random bit patterns; unaligned starts and
 * odd lengths; one guard element after the row. */
static void test_cvt(void) {
    enum { N = 65536 };
    float *f = malloc(sizeof(float) * (N + 1)), *g = malloc(sizeof(float) * (N + 1));
    uint16_t *h = malloc(sizeof(uint16_t) * (N + 1)), *k = malloc(sizeof(uint16_t) * (N + 1));
    const int nlev = (int)sx_cpu_simd_detected() + 1;
    for (int l = 0; l < nlev; l++) {
        if (sx_cpu_simd_force((sx_cpu_simd)l) != SX_OK) continue;
        const char *lv = sx_cpu_simd_level();
        const int f0 = g_fail;
        for (uint32_t i = 0; i < N; i++) h[i] = (uint16_t)i;
        g[N] = 7.0f;
        sx_cpu_fp16_to_fp32_row(N, h, g);
        int bad = -1;
        for (uint32_t i = 0; i < N && bad < 0; i++) {
            const float r = sx_fp16_to_fp32(h[i]);
            if (memcmp(&r, &g[i], 4) != 0) bad = (int)i;
        }
        check(bad < 0 && g[N] == 7.0f, "fp16_to_fp32_row level=%s first bad half 0x%llx (%g, guard %g)", lv, bad,
              bad < 0 ? 0.0 : (double)g[bad], (double)g[N]);
        for (uint32_t i = 0; i < N; i++) {
            uint32_t u;
            switch (i % 4) {
            case 0: u = ((uint32_t)(i >> 2) << 13) | 0x1000u; break;                       /* halfway between halves */
            case 1: u = (uint32_t)(rnd() >> 32); break;                                      /* any bits, NaNs included */
            case 2: u = 0x33000000u + (uint32_t)(rnd() % 0x14800000u); break;                /* subnormal .. overflow range */
            default: u = (rnd() & 1 ? 0x80000000u : 0) | (0x477fe000u + (uint32_t)(rnd() % 0x4000u)); break; /* near 65504 */
            }
            memcpy(&f[i], &u, 4);
        }
        static const int64_t offs[] = {0, 1, 3}, lens[] = {N - 3, 17, 7, 0};
        for (int o = 0; o < 3; o++)
            for (int li = 0; li < 4; li++) {
                const int64_t off = offs[o], n = lens[li];
                k[off + n] = 0xABCD;
                sx_cpu_fp32_to_fp16_row(n, f + off, k + off);
                int64_t b = -1;
                for (int64_t i = 0; i < n && b < 0; i++)
                    if (k[off + i] != sx_fp32_to_fp16(f[off + i])) b = i;
                check(b < 0 && k[off + n] == 0xABCD, "fp32_to_fp16_row level=%s n=%lld off=%g bad=%g", lv, (long long)n,
                      (double)off, (double)b);
            }
        printf("f16 rows    %-10s: %s\n", lv, g_fail == f0 ? "ok" : "FAIL");
    }
    sx_cpu_simd_reset();
    free(f), free(g), free(h), free(k);
}

/* ---------------------------------------------------------- arguments */

static void test_args(sx_threadpool *tp) {
    float x[64] = {0}, y[4];
    sx_block_q4_0 w[2] = {{0}};
    int f0 = g_fail;
    check(sx_cpu_matmul(tp, SX_DTYPE_Q4_0, w, sizeof w, 48, 1, x, 48, 1, y, 1) == SX_ERR_INVALID_ARG,
          "K not a multiple of the block %s %lld %g %g", "", 0, 0, 0);
    check(sx_cpu_matmul(tp, SX_DTYPE_I32, w, sizeof w, 32, 1, x, 32, 1, y, 1) == SX_ERR_UNSUPPORTED,
          "I32 weights must be unsupported %s %lld %g %g", "", 0, 0, 0);
    check(sx_cpu_matmul(tp, SX_DTYPE_COUNT, w, sizeof w, 32, 1, x, 32, 1, y, 1) == SX_ERR_INVALID_ARG,
          "bad dtype %s %lld %g %g", "", 0, 0, 0);
    check(sx_cpu_matmul(tp, SX_DTYPE_Q4_0, w, 1, 32, 2, x, 32, 1, y, 2) == SX_ERR_INVALID_ARG,
          "short weight stride %s %lld %g %g", "", 0, 0, 0);
    check(sx_cpu_matmul(tp, SX_DTYPE_Q4_0, NULL, 18, 32, 1, x, 32, 1, y, 1) == SX_ERR_INVALID_ARG,
          "NULL W %s %lld %g %g", "", 0, 0, 0);
    check(sx_cpu_matmul(tp, SX_DTYPE_Q4_0, w, 18, 32, 0, x, 32, 1, y, 1) == SX_OK, "N=0 %s %lld %g %g", "", 0, 0, 0);
    check(sx_cpu_simd_force(SX_CPU_SIMD_COUNT) == SX_ERR_INVALID_ARG, "force(COUNT) %s %lld %g %g", "", 0, 0, 0);
    sx_threadpool *bad = NULL;
    check(sx_threadpool_create(-1, false, &bad) == SX_ERR_INVALID_ARG && !bad, "pool(-1) %s %lld %g %g", "", 0, 0, 0);
    sx_threadpool_destroy(NULL);
    printf("argument checks: %s\n", g_fail == f0 ? "ok" : "FAIL");
}

/* -------------------------------------------------- thread-pool stress */

typedef struct stress_ctx {
    _Atomic long long counter;
    int run;
    int data[64]; /* plain writes, checked by the caller after each run */
    int bad;      /* worker saw a stale run id */
} stress_ctx;

static void stress_fn(void *p, int ith, int nth) {
    stress_ctx *c = (stress_ctx *)p;
    if (nth > 64 || ith >= nth) {
        c->bad = 1;
        return;
    }
    atomic_fetch_add_explicit(&c->counter, ith + 1, memory_order_relaxed);
    c->data[ith] = c->run; /* reads c->run written by the caller before the run */
}

static void test_pool_stress(void) {
    static const int sizes[] = {1, 2, 3, 4};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        sx_threadpool *tp = NULL;
        if (sx_threadpool_create(sizes[si], si == 1, &tp) != SX_OK) {
            g_fail++;
            printf("FAIL threadpool_create(%d): %s\n", sizes[si], sx_last_error());
            continue;
        }
        const int n = sx_threadpool_size(tp), runs = 10000;
        stress_ctx *c = calloc(1, sizeof *c);
        int stale = 0;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 1; i <= runs; i++) {
            c->run = i;
            sx_threadpool_run(tp, stress_fn, c);
            for (int j = 0; j < n; j++) stale += c->data[j] != i;
            if (i % 2500 == 0) { /* let workers fall asleep, then wake them (not timed) */
                struct timespec s0, s1;
                clock_gettime(CLOCK_MONOTONIC, &s0);
                nanosleep(&(struct timespec){0, 2000000}, NULL);
                clock_gettime(CLOCK_MONOTONIC, &s1);
                t0.tv_sec += s1.tv_sec - s0.tv_sec;
                t0.tv_nsec += s1.tv_nsec - s0.tv_nsec;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        const long long want = (long long)runs * n * (n + 1) / 2;
        const long long got = atomic_load(&c->counter);
        const double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / runs;
        const bool ok = got == want && stale == 0 && !c->bad;
        printf("threadpool stress n=%d: %d runs, counter %lld (want %lld), stale %d, %.2f us/run: %s\n", n, runs,
               got, want, stale, us, ok ? "ok" : "FAIL");
        if (ok) g_pass++;
        else {
            g_fail++;
            printf("FAIL seed=%llu threadpool stress n=%d\n", g_seed, n);
        }
        free(c);
        sx_threadpool_destroy(tp);
    }
    /* create/destroy churn, including a pool that never ran */
    for (int i = 0; i < 50; i++) {
        sx_threadpool *tp = NULL;
        if (sx_threadpool_create(1 + i % 4, false, &tp) != SX_OK) {
            g_fail++;
            break;
        }
        if (i % 2) {
            stress_ctx c = {0};
            c.run = 1;
            sx_threadpool_run(tp, stress_fn, &c);
        }
        sx_threadpool_destroy(tp);
    }
}

int main(int argc, char **argv) {
    bool quick = false;
    const char *seed_s = getenv("SPECEXIT_TEST_SEED");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = true;
        else seed_s = argv[i];
    }
    g_seed = seed_s ? strtoull(seed_s, NULL, 0) : (unsigned long long)time(NULL);
    g_rng = g_seed * 0x9E3779B97F4A7C15ULL + 1;
    char topo[256];
    printf("seed %llu; simd detected %s (active %s); %s\n", g_seed,
           (const char *[]){"scalar", "avx2", "avx512", "avx512vnni"}[sx_cpu_simd_detected()],
           sx_cpu_simd_level(), sx_cpu_topology_summary(topo, sizeof topo));

    test_pool_stress();

    sx_threadpool *pools[4] = {NULL};
    int np = 0;
    for (int n = 1; n <= 3; n++) {
        if (sx_threadpool_create(n, false, &pools[np]) != SX_OK) {
            printf("FAIL threadpool_create(%d): %s\n", n, sx_last_error());
            return 1;
        }
        np++;
    }
    test_args(pools[1]);
    test_vec();
    test_cvt();
    test_matmul(pools, np, quick);
    /* no pool at all: caller-only path with thread-local scratch */
    {
        ref_set r;
        ref_build(&r, SX_DTYPE_Q4_K, (shape){512, 9, 3}, 1);
        run_case(&r, NULL, sx_cpu_simd_level(), 1, NULL, NULL);
        ref_free(&r);
    }
    for (int i = 0; i < np; i++) sx_threadpool_destroy(pools[i]);

    printf("%d passed, %d failed (seed %llu)\n", g_pass, g_fail, g_seed);
    return g_fail ? 1 : 0;
}
