/* tests/test_batch_invariance.c — a backend computes every row of a matmul
 * batch of up to SX_SPEC_MAX_VERIFY (64) rows bit for bit as it computes a
 * single row, for every weight type. Speculative verification relies on it:
 * otherwise greedy speculation can differ from plain greedy decoding at near
 * ties (a batch summing in another order rounds differently).
 *   test_batch_invariance BACKEND      (exit 77 without a device) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "core/sampler.h"

static sx_status matmul(sx_sched *s, sx_graph *g, sx_dtype t, const void *wq, int64_t K, int64_t N, const float *x, int64_t M, float *y) {
    sx_graph_reset(g);
    sx_tensor *w = sx_graph_input(g, t, 2, (int64_t[]){K, N}, "w");
    if (w) SX_RETURN_IF_ERROR(sx_graph_set_input(g, w, wq, sx_dtype_row_size(t, K) * (size_t)N));
    sx_tensor *xi = sx_graph_input_f32(g, x, 2, (int64_t[]){K, M}, "x");
    sx_tensor *o = sx_graph_add_matmul(g, w, xi);
    sx_graph_set_output(g, o);
    SX_RETURN_IF_ERROR(sx_sched_compute(s, g));
    return sx_tensor_read(o, y, sizeof(float) * (size_t)(N * M));
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    sx_device_options o;
    sx_device_options_init(&o);
    sx_device *dev;
    if (sx_device_open_by_name(argv[1], &o, &dev) != SX_OK) {
        printf("SKIP: %s\n", sx_last_error());
        return 77;
    }
    sx_sched *s;
    sx_graph *g;
    if (sx_sched_create(&dev, 1, &s) != SX_OK || sx_graph_create(16, &g) != SX_OK) return 1;
    const sx_dtype types[] = {SX_DTYPE_F32, SX_DTYPE_F16, SX_DTYPE_BF16, SX_DTYPE_Q8_0, SX_DTYPE_Q4_0, SX_DTYPE_Q4_1,
                              SX_DTYPE_Q5_0, SX_DTYPE_Q5_1, SX_DTYPE_Q4_K, SX_DTYPE_Q5_K, SX_DTYPE_Q6_K};
    const int64_t K = 512, N = 67, Ms[] = {2, 5, 17, 64};
    sx_rng rng;
    sx_rng_seed(&rng, 99);
    float *w = malloc(sizeof(float) * (size_t)(K * N)), *x = malloc(sizeof(float) * (size_t)(K * 64));
    float *y = malloc(sizeof(float) * (size_t)(N * 64)), *y1 = malloc(sizeof(float) * (size_t)N);
    for (int64_t i = 0; i < K * N; i++) w[i] = (float)sx_rng_uniform(&rng) - 0.5f;
    for (int64_t i = 0; i < K * 64; i++) x[i] = ((float)sx_rng_uniform(&rng) - 0.5f) * (i % 13 == 0 ? 8.0f : 1.0f);
    int failed = 0, passed = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const sx_dtype t = types[ti];
        const size_t rs = sx_dtype_row_size(t, K);
        char *wq = malloc(rs * (size_t)N);
        for (int64_t n = 0; n < N; n++) sx_dtype_quantize_row(t, w + n * K, wq + (size_t)n * rs, K);
        for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
            const int64_t M = Ms[mi];
            sx_status st = matmul(s, g, t, wq, K, N, x, M, y);
            int bad = -1;
            for (int64_t m = 0; m < M && st == SX_OK && bad < 0; m++) {
                st = matmul(s, g, t, wq, K, N, x + m * K, 1, y1);
                if (st == SX_OK && memcmp(y1, y + m * N, sizeof(float) * (size_t)N) != 0) bad = (int)m;
            }
            if (st != SX_OK) {
                printf("FAIL %s M=%lld: %s\n", sx_dtype_name(t), (long long)M, sx_last_error());
                failed++;
            } else if (bad >= 0) {
                printf("FAIL %s M=%lld: row %d differs from the same row computed alone\n", sx_dtype_name(t), (long long)M, bad);
                failed++;
            } else {
                passed++;
            }
        }
        free(wq);
    }
    printf("%s: batch invariance of MATMUL up to 64 rows: %d passed, %d failed\n", argv[1], passed, failed);
    free(w), free(x), free(y), free(y1);
    sx_graph_destroy(g);
    sx_sched_destroy(s);
    sx_device_close(dev);
    return failed ? 1 : 0;
}
