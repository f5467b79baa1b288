/* tests/test_batch_invariance.c — a backend computes every row of a batch bit
 * for bit as it computes that row alone. Speculative verification relies on
 * it: otherwise greedy speculation can differ from plain greedy decoding at
 * near ties (a batch summing in another order rounds differently).
 *  - MATMUL: every row of up to SX_SPEC_MAX_VERIFY (64) rows, every weight type;
 *    and the KV cache rotation's small f32 MATMUL at any batch (prefill).
 *  - MUL_MAT_ID: every column equals MATMUL of its expert with its input
 *    column alone (M = 1), every weight type, decode and verify batches.
 *  - ATTENTION: every row of a draft tree's verify batch (tree mask) and of a
 *    causal prefill batch equals the same query decoded alone, its visible
 *    keys at other (contiguous) slots; K/V f32/f16, head dims 64/128, GQA,
 *    short and long contexts (split-K chunks on the GPU backends).
 *   test_batch_invariance BACKEND      (exit 77 without a device) */
#include <math.h>
#include <stdbool.h>
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

static void test_matmul(sx_sched *s, sx_graph *g, int *passed_out, int *failed_out) {
    const sx_dtype types[] = {SX_DTYPE_F32, SX_DTYPE_F16, SX_DTYPE_BF16, SX_DTYPE_Q8_0, SX_DTYPE_Q4_0, SX_DTYPE_Q4_1,
                              SX_DTYPE_Q5_0, SX_DTYPE_Q5_1, SX_DTYPE_Q4_K, SX_DTYPE_Q5_K, SX_DTYPE_Q6_K,
                              SX_DTYPE_Q2_K, SX_DTYPE_Q3_K, SX_DTYPE_IQ4_NL, SX_DTYPE_IQ4_XS};
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
    free(w), free(x), free(y), free(y1);
    *passed_out += passed, *failed_out += failed;
}

/* The KV cache rotation: an f32 [hd, hd] MATMUL whose columns are heads x
 * tokens, so a prefill's batch is far past 64 columns. It must rotate every
 * column exactly as decode does (M = heads), at any batch: a quantized cache
 * stores codes, and a last-bit difference can flip one. */
static void test_rotation(sx_sched *s, sx_graph *g, int *passed_out, int *failed_out) {
    const int64_t hds[] = {64, 128}, Ms[] = {4, 100, 256, 1030};
    sx_rng rng;
    sx_rng_seed(&rng, 5);
    for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++) {
        const int64_t hd = hds[hi], Mmax = 1030;
        float *w = malloc(sizeof(float) * (size_t)(hd * hd)), *x = malloc(sizeof(float) * (size_t)(hd * Mmax));
        float *y = malloc(sizeof(float) * (size_t)(hd * Mmax)), *y1 = malloc(sizeof(float) * (size_t)hd);
        for (int64_t i = 0; i < hd * hd; i++) w[i] = ((float)sx_rng_uniform(&rng) < 0.5f ? -1.0f : 1.0f) / sqrtf((float)hd);
        for (int64_t i = 0; i < hd * Mmax; i++) x[i] = ((float)sx_rng_uniform(&rng) - 0.5f) * 4.0f;
        for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
            const int64_t M = Ms[mi];
            sx_status st = matmul(s, g, SX_DTYPE_F32, w, hd, hd, x, M, y);
            int bad = -1;
            for (int64_t m = 0; m < M && st == SX_OK && bad < 0; m += m < 70 ? 1 : 37) {
                st = matmul(s, g, SX_DTYPE_F32, w, hd, hd, x + m * hd, 1, y1);
                if (st == SX_OK && memcmp(y1, y + m * hd, sizeof(float) * (size_t)hd) != 0) bad = (int)m;
            }
            if (st != SX_OK || bad >= 0) {
                printf("FAIL rotation hd=%lld M=%lld: %s\n", (long long)hd, (long long)M,
                       st != SX_OK ? sx_last_error() : "a column differs from the same column rotated alone");
                (*failed_out)++;
            } else {
                (*passed_out)++;
            }
        }
        free(w), free(x), free(y), free(y1);
    }
}

/* ---- MUL_MAT_ID ----
 * A mixture-of-experts layer: every output column (pick j of row r) must
 * equal MATMUL of that expert's [K, N] matrix with that input column alone
 * (M = 1, the decode path), bit for bit, for decode (R = 1), a shared input
 * per row (X = 1) and one input per pick (X = k, a verify batch). */
static sx_status mul_mat_id(sx_sched *s, sx_graph *g, sx_dtype t, const void *wq, int64_t K, int64_t N, int64_t E, const float *x, int64_t X,
                            const int32_t *ids, int64_t k, int64_t R, float *y) {
    sx_graph_reset(g);
    sx_tensor *w = sx_graph_input(g, t, 3, (int64_t[]){K, N, E}, "w");
    if (w) SX_RETURN_IF_ERROR(sx_graph_set_input(g, w, wq, sx_dtype_row_size(t, K) * (size_t)(N * E)));
    sx_tensor *xi = sx_graph_input_f32(g, x, 3, (int64_t[]){K, X, R}, "x");
    sx_tensor *ii = sx_graph_input(g, SX_DTYPE_I32, 2, (int64_t[]){k, R}, "ids");
    if (ii) SX_RETURN_IF_ERROR(sx_graph_set_input(g, ii, ids, sizeof(int32_t) * (size_t)(k * R)));
    sx_tensor *o = sx_graph_add_mul_mat_id(g, w, xi, ii);
    SX_RETURN_IF_ERROR(sx_graph_status(g));
    sx_graph_set_output(g, o);
    SX_RETURN_IF_ERROR(sx_sched_compute(s, g));
    return sx_tensor_read(o, y, sizeof(float) * (size_t)(N * k * R));
}

static void test_mul_mat_id(sx_sched *s, sx_graph *g, int *passed_out, int *failed_out) {
    const sx_dtype types[] = {SX_DTYPE_F32, SX_DTYPE_F16, SX_DTYPE_BF16, SX_DTYPE_Q8_0, SX_DTYPE_Q4_0, SX_DTYPE_Q4_1,
                              SX_DTYPE_Q5_0, SX_DTYPE_Q5_1, SX_DTYPE_Q4_K, SX_DTYPE_Q5_K, SX_DTYPE_Q6_K,
                              SX_DTYPE_Q2_K, SX_DTYPE_Q3_K, SX_DTYPE_IQ4_NL, SX_DTYPE_IQ4_XS};
    static const struct { int64_t k, R, X; } cases[] = {{2, 1, 1}, {2, 5, 1}, {3, 9, 3}}; /* decode; shared input; input per pick */
    const int64_t K = 512, N = 67, E = 5, maxc = 27;
    sx_rng rng;
    sx_rng_seed(&rng, 77);
    float *w = malloc(sizeof(float) * (size_t)(K * N * E)), *x = malloc(sizeof(float) * (size_t)(K * maxc));
    float *y = malloc(sizeof(float) * (size_t)(N * maxc)), *y1 = malloc(sizeof(float) * (size_t)N);
    int32_t ids[27];
    for (int64_t i = 0; i < K * N * E; i++) w[i] = (float)sx_rng_uniform(&rng) - 0.5f;
    for (int64_t i = 0; i < K * maxc; i++) x[i] = ((float)sx_rng_uniform(&rng) - 0.5f) * (i % 13 == 0 ? 8.0f : 1.0f);
    int failed = 0, passed = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const sx_dtype t = types[ti];
        const size_t rs = sx_dtype_row_size(t, K);
        char *wq = malloc(rs * (size_t)(N * E));
        for (int64_t n = 0; n < N * E; n++) sx_dtype_quantize_row(t, w + n * K, wq + (size_t)n * rs, K);
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            const int64_t k = cases[ci].k, R = cases[ci].R, X = cases[ci].X;
            for (int64_t r = 0; r < R; r++) /* k distinct experts per row, as a router's top-k */
                for (int64_t j = 0; j < k; j++) {
                    int32_t e;
                    bool dup;
                    do {
                        e = (int32_t)(sx_rng_uniform(&rng) * (double)E);
                        dup = false;
                        for (int64_t i = 0; i < j; i++) dup = dup || ids[r * k + i] == e;
                    } while (dup);
                    ids[r * k + j] = e;
                }
            sx_status st = mul_mat_id(s, g, t, wq, K, N, E, x, X, ids, k, R, y);
            int bad = -1;
            for (int64_t p = 0; p < k * R && st == SX_OK && bad < 0; p++) {
                const int64_t j = p % k, r = p / k;
                st = matmul(s, g, t, wq + (size_t)ids[p] * (size_t)N * rs, K, N, x + (r * X + (X == 1 ? 0 : j)) * K, 1, y1);
                if (st == SX_OK && memcmp(y1, y + p * N, sizeof(float) * (size_t)N) != 0) bad = (int)p;
            }
            if (st != SX_OK) {
                printf("FAIL MUL_MAT_ID %s k=%lld R=%lld X=%lld: %s\n", sx_dtype_name(t), (long long)k, (long long)R, (long long)X, sx_last_error());
                failed++;
            } else if (bad >= 0) {
                printf("FAIL MUL_MAT_ID %s k=%lld R=%lld X=%lld: pick %d (expert %d) differs from MATMUL of its expert alone (M = 1)\n",
                       sx_dtype_name(t), (long long)k, (long long)R, (long long)X, bad, ids[bad]);
                failed++;
            } else {
                passed++;
            }
        }
        free(wq);
    }
    free(w), free(x), free(y), free(y1);
    *passed_out += passed, *failed_out += failed;
}

/* ---- ATTENTION ----
 * A verify batch of a draft tree: T = 16 rows after n_past prefix slots,
 * node i at slot n_past + i, row i sees the prefix plus its ancestors and
 * itself (tree mask [T, T]). The same query decoded alone sees the prefix
 * plus the same ancestors copied to contiguous slots n_past..P, T = 1, no
 * mask, n_past = P: the visible keys and their order are the same, only the
 * slots differ. Depth up to 5, several branches. */
#define TREE_N 16
static const int tree_parent[TREE_N] = {-1, 0, 0, 0, 1, 1, 2, 4, 4, 5, 7, 3, 6, 10, 8, 11};

typedef struct attn_case {
    sx_dtype kv;
    int64_t d, nh, nkv, n_past;
    bool tree; /* false: a causal prefill batch of TREE_N rows (no mask) */
} attn_case;

/* K/V data of `cap` slots (f32 values, converted to kv's dtype), a cache
 * viewed as [d, nkv, n_kv]; q [d, nh, T]; out [d, nh, T]. */
static sx_status attention(sx_sched *s, sx_graph *g, const attn_case *c, const float *kf, const float *vf, int64_t cap, int64_t n_kv,
                           const float *q, int64_t T, const float *mask, int64_t n_past, float *out) {
    const int64_t row = c->d * c->nkv;
    const size_t bytes = sx_dtype_row_size(c->kv, row * cap);
    char *kb = malloc(bytes), *vb = malloc(bytes);
    if (!kb || !vb) {
        free(kb), free(vb);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "test: out of memory");
    }
    sx_dtype_quantize_row(c->kv, kf, kb, row * cap);
    sx_dtype_quantize_row(c->kv, vf, vb, row * cap);
    sx_graph_reset(g);
    sx_tensor *kc = sx_graph_input(g, c->kv, 2, (int64_t[]){row, cap}, "k_cache");
    sx_tensor *vc = sx_graph_input(g, c->kv, 2, (int64_t[]){row, cap}, "v_cache");
    sx_status st = kc && vc ? sx_graph_set_input(g, kc, kb, bytes) : sx_graph_status(g);
    if (st == SX_OK) st = sx_graph_set_input(g, vc, vb, bytes);
    free(kb), free(vb);
    SX_RETURN_IF_ERROR(st);
    const size_t nb[2] = {sx_dtype_row_size(c->kv, c->d), sx_dtype_row_size(c->kv, row)}; /* q8_0 / q4_0: whole blocks per head */
    sx_tensor *k = sx_graph_view(g, kc, 3, (int64_t[]){c->d, c->nkv, n_kv}, nb, 0);
    sx_tensor *v = sx_graph_view(g, vc, 3, (int64_t[]){c->d, c->nkv, n_kv}, nb, 0);
    sx_tensor *qi = sx_graph_input_f32(g, q, 3, (int64_t[]){c->d, c->nh, T}, "q");
    sx_tensor *mi = mask ? sx_graph_input_f32(g, mask, 2, (int64_t[]){n_kv - n_past, T}, "mask") : NULL;
    sx_tensor *o = sx_graph_add_attention(g, qi, k, v, mi, 1.0f / sqrtf((float)c->d), (int)n_past);
    SX_RETURN_IF_ERROR(sx_graph_status(g));
    sx_graph_set_output(g, o);
    SX_RETURN_IF_ERROR(sx_sched_compute(s, g));
    return sx_tensor_read(o, out, sizeof(float) * (size_t)(c->d * c->nh * T));
}

/* -1 when every row equals the same query computed alone, else the first
 * row that differs; errors in *st. */
static int attention_case(sx_sched *s, sx_graph *g, const attn_case *c, sx_rng *rng, sx_status *st) {
    const int64_t T = TREE_N, row = c->d * c->nkv, qn = c->d * c->nh, n_kv = c->n_past + T, cap = n_kv + 8;
    float *kf = malloc(sizeof(float) * (size_t)(row * cap)), *vf = malloc(sizeof(float) * (size_t)(row * cap));
    float *ka = malloc(sizeof(float) * (size_t)(row * cap)), *va = malloc(sizeof(float) * (size_t)(row * cap));
    float *q = malloc(sizeof(float) * (size_t)(qn * T)), *mask = malloc(sizeof(float) * (size_t)(T * T));
    float *y = malloc(sizeof(float) * (size_t)(qn * T)), *y1 = malloc(sizeof(float) * (size_t)qn);
    int bad = -1;
    *st = kf && vf && ka && va && q && mask && y && y1 ? SX_OK : sx_set_error(SX_ERR_OUT_OF_MEMORY, "test: out of memory");
    if (*st == SX_OK) {
        for (int64_t i = 0; i < row * cap; i++) kf[i] = (float)sx_rng_uniform(rng) * 2.0f - 1.0f, vf[i] = (float)sx_rng_uniform(rng) * 2.0f - 1.0f;
        for (int64_t i = 0; i < qn * T; i++) q[i] = ((float)sx_rng_uniform(rng) * 2.0f - 1.0f) * 3.0f; /* peaky softmax */
        for (int64_t t = 0; t < T; t++) {
            for (int64_t i = 0; i < T; i++) mask[t * T + i] = -INFINITY;
            for (int a = (int)t; a >= 0; a = tree_parent[a]) mask[t * T + a] = 0.0f;
        }
        *st = attention(s, g, c, kf, vf, cap, n_kv, q, T, c->tree ? mask : NULL, c->n_past, y);
    }
    memcpy(ka, kf, sizeof(float) * (size_t)(row * cap)); /* prefix and unused slots as in the batch */
    memcpy(va, vf, sizeof(float) * (size_t)(row * cap));
    for (int64_t t = 0; t < T && *st == SX_OK && bad < 0; t++) {
        int64_t P = c->n_past + t; /* prefill: row t sits at its own slot already */
        if (c->tree) {
            int chain[TREE_N], depth = 0;
            for (int a = (int)t; a >= 0; a = tree_parent[a]) chain[depth++] = a;
            P = c->n_past + depth - 1;
            for (int i = 0; i < depth; i++) { /* ancestors root first at n_past.. */
                const int64_t from = c->n_past + chain[depth - 1 - i], to = c->n_past + i;
                memcpy(ka + to * row, kf + from * row, sizeof(float) * (size_t)row);
                memcpy(va + to * row, vf + from * row, sizeof(float) * (size_t)row);
            }
        }
        *st = attention(s, g, c, ka, va, cap, P + 1, q + t * qn, 1, NULL, P, y1);
        if (*st == SX_OK && memcmp(y1, y + t * qn, sizeof(float) * (size_t)qn) != 0) bad = (int)t;
    }
    free(kf), free(vf), free(ka), free(va), free(q), free(mask), free(y), free(y1);
    return bad;
}

static void test_attention(sx_sched *s, sx_graph *g, int *passed, int *failed) {
    /* n_past: a short prefix; rows crossing key 256 (a split-K chunk of the
     * GPU kernels); a long context of several chunks */
    const int64_t n_pasts[] = {3, 252, 2100};
    const sx_dtype kvs[] = {SX_DTYPE_F32, SX_DTYPE_F16, SX_DTYPE_Q8_0, SX_DTYPE_Q4_0}; /* quantized KV caches (-ctk q8_0 / q4_0) */
    const int64_t ds[] = {64, 128};
    sx_rng rng;
    sx_rng_seed(&rng, 1234);
    for (int tree = 1; tree >= 0; tree--)
        for (size_t pi = 0; pi < sizeof n_pasts / sizeof n_pasts[0]; pi++)
            for (size_t ki = 0; ki < sizeof kvs / sizeof kvs[0]; ki++)
                for (size_t di = 0; di < 2; di++) {
                    if (!tree && di) continue; /* prefill: one head size is enough */
                    const attn_case c = {kvs[ki], ds[di], 8, 2, n_pasts[pi], tree != 0};
                    sx_status st;
                    const int bad = attention_case(s, g, &c, &rng, &st);
                    if (st == SX_OK && bad < 0) {
                        (*passed)++;
                        continue;
                    }
                    (*failed)++;
                    printf("FAIL ATTENTION %s kv=%s d=%lld nh=%lld nkv=%lld n_past=%lld (seed 1234): ", tree ? "tree" : "prefill",
                           sx_dtype_name(c.kv), (long long)c.d, (long long)c.nh, (long long)c.nkv, (long long)c.n_past);
                    if (st != SX_OK)
                        printf("%s\n", sx_last_error());
                    else
                        printf("row %d differs from the same query computed alone\n", bad);
                }
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
    if (sx_sched_create(&dev, 1, &s) != SX_OK || sx_graph_create(32, &g) != SX_OK) return 1;
    int failed = 0, passed = 0;
    test_matmul(s, g, &passed, &failed);
    printf("%s: batch invariance of MATMUL up to 64 rows: %d passed, %d failed\n", argv[1], passed, failed);
    int rpassed = 0, rfailed = 0;
    test_rotation(s, g, &rpassed, &rfailed);
    printf("%s: KV rotation (f32 head_dim^2 MATMUL) at any batch == alone: %d passed, %d failed\n", argv[1], rpassed, rfailed);
    failed += rfailed;
    int mpassed = 0, mfailed = 0;
    test_mul_mat_id(s, g, &mpassed, &mfailed);
    printf("%s: MUL_MAT_ID columns vs MATMUL of the expert alone (M = 1): %d passed, %d failed\n", argv[1], mpassed, mfailed);
    failed += mfailed;
    int apassed = 0, afailed = 0;
    test_attention(s, g, &apassed, &afailed);
    printf("%s: batch invariance of ATTENTION (tree verify and prefill rows vs alone): %d passed, %d failed\n", argv[1], apassed, afailed);
    failed += afailed;
    sx_graph_destroy(g);
    sx_sched_destroy(s);
    sx_device_close(dev);
    return failed ? 1 : 0;
}
