/* backends/cuda/emu/attn_invariance.c — emulation-only check that the CUDA
 * ATTENTION kernels (k_attention.cu) are batch-invariant: each row of a
 * verify batch over a draft tree (T rows, tree mask, n_past prefix) gives
 * bit for bit what the same query gives alone as plain decode does (T = 1,
 * no mask, its ancestors moved to contiguous slots after the prefix), under
 * both launch plans: one device opened with SPECEXIT_CUDA_ATTN_SPLIT=0 (one
 * block per row) and one with =all (split-K on every row of 2 chunks or
 * more), crossed both ways. Also checks each row against a double-precision
 * reference (atol 2e-5), so a consistently wrong kernel fails too.
 * K/V f16, f32, q8_0 and q4_0 (quantized KV caches): each slot's row of floats
 * is stored as SET_ROWS would (sx_dtype_quantize_row); "alone" moves the
 * same floats, so its rows get the same bytes, and the double reference
 * reads what the cache holds (the dequantized rows).
 * Sized for the CPU emulation (one OS thread per GPU thread): head dim 128,
 * 2 heads on 1 KV head, a 7-slot tree, n_past up to the thousands.
 *   SX_EMU_TEST=backends/cuda/emu/attn_invariance.c \
 *     bash backends/cuda/emu/run_emu_tests.sh [--quick] [--dtype NAME]
 * (--quick: n_past up to 300; --dtype: only that K/V dtype). Exit 0 pass,
 * 1 fail, 77 no device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/backend.h"
#include "core/sampler.h"
#include "ir/dtype.h"

enum { D = 128, NH = 2, NKV = 1, M = 7 };

typedef struct {
    sx_device *dev;
    sx_sched *s;
    sx_graph *g;
} ctx;

/* kv: [n_kv][NKV * D] rows of f32 values, stored as dt; q [T][NH * D];
 * mask [T][M] or NULL. out [T][NH * D]. */
static sx_status attention(ctx *c, sx_dtype dt, const float *kv_k, const float *kv_v, int n_kv, const float *q, int T, const float *mask,
                           int n_past, float *out) {
    sx_graph_reset(c->g);
    const size_t rs = sx_dtype_row_size(dt, NKV * D), nbytes = (size_t)n_kv * rs; /* one slot: NKV heads of D */
    char *kb = malloc(nbytes), *vb = malloc(nbytes);
    for (int j = 0; j < n_kv; j++) {
        sx_dtype_quantize_row(dt, kv_k + (size_t)j * NKV * D, kb + (size_t)j * rs, NKV * D);
        sx_dtype_quantize_row(dt, kv_v + (size_t)j * NKV * D, vb + (size_t)j * rs, NKV * D);
    }
    sx_tensor *k = sx_graph_input(c->g, dt, 3, (int64_t[]){D, NKV, n_kv}, "k");
    sx_tensor *v = sx_graph_input(c->g, dt, 3, (int64_t[]){D, NKV, n_kv}, "v");
    sx_status st = SX_OK;
    if (k && v) {
        st = sx_graph_set_input(c->g, k, kb, nbytes);
        if (st == SX_OK) st = sx_graph_set_input(c->g, v, vb, nbytes);
    }
    free(kb), free(vb);
    SX_RETURN_IF_ERROR(st);
    sx_tensor *qi = sx_graph_input_f32(c->g, q, 3, (int64_t[]){D, NH, T}, "q");
    sx_tensor *mi = mask ? sx_graph_input_f32(c->g, mask, 2, (int64_t[]){n_kv - n_past, T}, "mask") : NULL;
    sx_tensor *o = sx_graph_add_attention(c->g, qi, k, v, mi, 1.0f / sqrtf((float)D), n_past);
    SX_RETURN_IF_ERROR(sx_graph_status(c->g));
    sx_graph_set_output(c->g, o);
    SX_RETURN_IF_ERROR(sx_sched_compute(c->s, c->g));
    return sx_tensor_read(o, out, sizeof(float) * (size_t)T * NH * D);
}

/* double-precision attention of one query over the rows listed in slots */
static double ref_err(const float *q, const float *kk, const float *vv, const int *slots, int n, const float *out) {
    double worst = 0;
    for (int h = 0; h < NH; h++) {
        const int kh = h / (NH / NKV);
        double *s = malloc(sizeof(double) * (size_t)(n ? n : 1)), mx = -INFINITY, sum = 0;
        for (int i = 0; i < n; i++) {
            double a = 0;
            for (int c = 0; c < D; c++) a += (double)q[h * D + c] * kk[((size_t)slots[i] * NKV + kh) * D + c];
            s[i] = a / sqrt((double)D);
            if (s[i] > mx) mx = s[i];
        }
        for (int i = 0; i < n; i++) sum += (s[i] = exp(s[i] - mx));
        for (int c = 0; c < D; c++) {
            double a = 0;
            for (int i = 0; i < n; i++) a += s[i] * vv[((size_t)slots[i] * NKV + kh) * D + c];
            const double e = fabs((n ? a / sum : 0) - out[h * D + c]);
            if (e > worst) worst = e;
        }
        free(s);
    }
    return worst;
}

static sx_status open_ctx(const char *backend, const char *split, ctx *c) {
    setenv("SPECEXIT_CUDA_ATTN_SPLIT", split, 1);
    sx_device_options o;
    sx_device_options_init(&o);
    SX_RETURN_IF_ERROR(sx_device_open_by_name(backend, &o, &c->dev));
    SX_RETURN_IF_ERROR(sx_sched_create(&c->dev, 1, &c->s));
    return sx_graph_create(16, &c->g);
}

static float rnd(sx_rng *r) { return (float)sx_rng_uniform(r) * 2.0f - 1.0f; }

/* x[n] replaced by what a dt cache holds for it (n a multiple of 32 for q8_0 / q4_0) */
static void round_to(sx_dtype dt, float *x, int64_t n) {
    void *tmp = malloc(sx_dtype_row_size(dt, n));
    sx_dtype_quantize_row(dt, x, tmp, n);
    sx_dtype_dequantize_row(dt, tmp, x, n);
    free(tmp);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    bool quick = false;
    const char *only = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = true;
        else if (strcmp(argv[i], "--dtype") == 0 && i + 1 < argc) only = argv[++i];
    }
    ctx cx[2] = {{0}, {0}}; /* [0] one block per row, [1] split-K everywhere */
    if (open_ctx(argv[1], "0", &cx[0]) != SX_OK || open_ctx(argv[1], "all", &cx[1]) != SX_OK) {
        printf("SKIP: %s\n", sx_last_error());
        return 77;
    }
    const int n_pasts[] = {0, 3, 253, 300, 700, 2900};
    const int n_cases = quick ? 4 : (int)(sizeof n_pasts / sizeof n_pasts[0]);
    const sx_dtype dts[] = {SX_DTYPE_F16, SX_DTYPE_F32, SX_DTYPE_Q8_0, SX_DTYPE_Q4_0};
    sx_rng rng;
    int failed = 0, passed = 0;
    for (int di = 0; di < (int)(sizeof dts / sizeof dts[0]); di++)
        for (int ci = 0; ci < n_cases; ci++) {
            const sx_dtype dt = dts[di];
            if (only && strcmp(only, sx_dtype_name(dt)) != 0) continue;
            sx_rng_seed(&rng, 4242 + 100 * (uint64_t)di + (uint64_t)ci); /* a case's data does not depend on --dtype */
            const int n_past = n_pasts[ci], n_kv = n_past + M, T = M;
            const clock_t t0 = clock();
            /* verify layout: prefix, then the tree's M slots */
            float *kk = malloc(sizeof(float) * (size_t)n_kv * NKV * D), *vv = malloc(sizeof(float) * (size_t)n_kv * NKV * D);
            for (size_t i = 0; i < (size_t)n_kv * NKV * D; i++) {
                kk[i] = rnd(&rng);
                vv[i] = rnd(&rng);
            }
            /* kr, vr: what the cache holds, for the double reference */
            float *kr = malloc(sizeof(float) * (size_t)n_kv * NKV * D), *vr = malloc(sizeof(float) * (size_t)n_kv * NKV * D);
            memcpy(kr, kk, sizeof(float) * (size_t)n_kv * NKV * D);
            memcpy(vr, vv, sizeof(float) * (size_t)n_kv * NKV * D);
            for (int j = 0; j < n_kv; j++) {
                round_to(dt, kr + (size_t)j * NKV * D, NKV * D);
                round_to(dt, vr + (size_t)j * NKV * D, NKV * D);
            }
            float q[M * NH * D], mask[M * M], vout[2][M * NH * D], aout[2][NH * D];
            for (int i = 0; i < M * NH * D; i++) q[i] = rnd(&rng) * 2.0f;
            int parent[M];
            for (int i = 0; i < M; i++) parent[i] = i ? (int)(sx_rng_uniform(&rng) * i) : -1;
            for (int t = 0; t < T; t++) {
                for (int j = 0; j < M; j++) mask[t * M + j] = -INFINITY;
                for (int a = t; a >= 0; a = parent[a]) mask[t * M + a] = 0;
            }
            const char *why = NULL;
            sx_status st = SX_OK;
            for (int p = 0; p < 2 && st == SX_OK; p++) st = attention(&cx[p], dt, kk, vv, n_kv, q, T, mask, n_past, vout[p]);
            if (st == SX_OK && memcmp(vout[0], vout[1], sizeof vout[0]) != 0) why = "the verify batch differs between the two plans";
            double worst = 0;
            for (int t = 0; t < T && st == SX_OK && !why; t++) {
                /* the same query alone: its visible slots packed after the prefix */
                int *slots = malloc(sizeof(int) * (size_t)n_kv), n = 0;
                for (int j = 0; j < n_kv; j++)
                    if (j < n_past || mask[t * M + (j - n_past)] == 0) slots[n++] = j;
                float *ak = malloc(sizeof(float) * (size_t)n * NKV * D), *av = malloc(sizeof(float) * (size_t)n * NKV * D);
                for (int i = 0; i < n; i++) {
                    memcpy(ak + (size_t)i * NKV * D, kk + (size_t)slots[i] * NKV * D, sizeof(float) * NKV * D);
                    memcpy(av + (size_t)i * NKV * D, vv + (size_t)slots[i] * NKV * D, sizeof(float) * NKV * D);
                }
                for (int p = 0; p < 2 && st == SX_OK && !why; p++) {
                    st = attention(&cx[p], dt, ak, av, n, q + t * NH * D, 1, NULL, n - 1, aout[p]);
                    if (st == SX_OK && memcmp(aout[p], vout[0] + t * NH * D, sizeof aout[p]) != 0)
                        why = p ? "a verify row differs from the same query alone (alone split-K)" : "a verify row differs from the same query alone";
                }
                if (st == SX_OK && !why) {
                    const double e = ref_err(q + t * NH * D, kr, vr, slots, n, vout[0] + t * NH * D);
                    if (e > worst) worst = e;
                    if (e > 2e-5) why = "a row is off the double-precision reference by more than 2e-5";
                }
                free(slots), free(ak), free(av);
            }
            if (st != SX_OK) why = sx_last_error();
            printf("%s %s n_past=%d T=%d: max err %.2g (%.1f s cpu)%s%s\n", why ? "FAIL" : "ok  ", sx_dtype_name(dt), n_past, T, worst,
                   (double)(clock() - t0) / CLOCKS_PER_SEC, why ? ": " : "", why ? why : "");
            fflush(stdout);
            why ? failed++ : passed++;
            free(kk), free(vv), free(kr), free(vr);
        }
    printf("%s: ATTENTION batch invariance (verify row == alone, both plans): %d passed, %d failed\n", argv[1], passed, failed);
    for (int p = 0; p < 2; p++) {
        sx_graph_destroy(cx[p].g);
        sx_sched_destroy(cx[p].s);
        sx_device_close(cx[p].dev);
    }
    return failed ? 1 : 0;
}
