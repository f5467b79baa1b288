/* tests/test_vulkan_graph.c — multi-node graphs on the Vulkan backend, where
 * the hazard tracking by buffer range matters (tests/test_ops.c runs one op
 * per graph, so it never needs a barrier inside a command buffer).
 *
 *   test_vulkan_graph [BACKEND]      (default "vulkan"; exit 77 when absent)
 *
 * 1. KV cache steps: per step SET_ROWS writes new K/V rows into persistent
 *    caches and ATTENTION reads views of those caches (ordered by byte range,
 *    not by a graph edge), for several prefill/decode steps, f32 and f16.
 * 2. A dependent chain with fan-out, where the memory planner reuses bytes
 *    of dead tensors (write-after-read hazards).
 * 3. Many independent matmuls reading the same input (no barrier needed,
 *    results must still be right).
 * Every result is compared with the CPU reference backend. Run it once with
 * SPECEXIT_VK_VALIDATION=1: synchronization validation reports any missing
 * barrier as an error, which fails the compute. Seeded, deterministic. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (float)((g_rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

typedef struct side {
    sx_device *dev;
    sx_sched *sched;
    sx_graph *g;
    sx_buffer *cache_buf;
    sx_tensor kc, vc; /* persistent caches [d * nkv, n_ctx] */
} side;

static int g_fail;

static bool close_enough(const char *what, const float *a, const float *b, int64_t n, double tol) {
    for (int64_t i = 0; i < n; i++)
        if (!(fabs((double)a[i] - b[i]) <= tol * (1.0 + fabs((double)a[i])))) {
            printf("FAIL %s: element %lld: vulkan %.9g, reference %.9g\n", what, (long long)i, b[i], a[i]);
            g_fail++;
            return false;
        }
    return true;
}

static sx_status cache_init(side *s, sx_dtype dt, int64_t row, int64_t n_ctx) {
    const size_t bytes = sx_dtype_row_size(dt, row) * (size_t)n_ctx;
    SX_RETURN_IF_ERROR(sx_buffer_alloc(s->dev, 2 * bytes + 512, &s->cache_buf));
    sx_tensor *c[2] = {&s->kc, &s->vc};
    void *zero = calloc(1, bytes);
    for (int j = 0; j < 2; j++) {
        memset(c[j], 0, sizeof *c[j]);
        c[j]->dtype = dt;
        c[j]->ne[0] = row, c[j]->ne[1] = n_ctx, c[j]->ne[2] = c[j]->ne[3] = 1;
        sx_tensor_set_contiguous_strides(c[j]);
        c[j]->role = SX_ROLE_KV;
        c[j]->buffer = s->cache_buf;
        c[j]->offset = j ? bytes + 256 : 0;
        c[j]->device = c[j]->index = c[j]->live_from = -1;
        snprintf(c[j]->name, sizeof c[j]->name, "cache_%c", j ? 'v' : 'k');
        sx_status st = sx_tensor_write(c[j], zero, bytes);
        if (st != SX_OK) {
            free(zero);
            return st;
        }
    }
    free(zero);
    return SX_OK;
}

/* one step: T new tokens after n_past cached ones; returns the attention output */
static sx_tensor *kv_step(side *s, const float *q, const float *k, const float *v, int64_t d, int64_t nh, int64_t nkv, int64_t T, int n_past) {
    sx_graph *g = s->g;
    sx_graph_reset(g);
    int32_t slots[64];
    for (int i = 0; i < T; i++) slots[i] = n_past + i;
    sx_tensor *qi = sx_graph_input_f32(g, q, 3, (int64_t[]){d, nh, T}, "q");
    sx_tensor *ki = sx_graph_input_f32(g, k, 2, (int64_t[]){d * nkv, T}, "k");
    sx_tensor *vi = sx_graph_input_f32(g, v, 2, (int64_t[]){d * nkv, T}, "v");
    sx_tensor *sl = sx_graph_input_i32(g, slots, T, "slots");
    /* a little work before the cache write, so the write is not the first node */
    sx_tensor *k2 = sx_graph_add_mul(g, ki, ki);
    sx_tensor *kw = sx_graph_add_set_rows(g, &s->kc, sx_graph_add_add(g, k2, ki), sl);
    sx_tensor *vw = sx_graph_add_set_rows(g, &s->vc, vi, sl);
    const size_t es = kw ? kw->nb[0] : 4;
    const int64_t n_kv = n_past + T;
    sx_tensor *kv_ = sx_graph_view(g, kw, 3, (int64_t[]){d, nkv, n_kv}, (size_t[]){d * es, d * nkv * es}, 0);
    sx_tensor *vv_ = sx_graph_view(g, vw, 3, (int64_t[]){d, nkv, n_kv}, (size_t[]){d * es, d * nkv * es}, 0);
    sx_tensor *a = sx_graph_add_attention(g, qi, kv_, vv_, NULL, 1.0f / sqrtf((float)d), n_past);
    sx_tensor *out = sx_graph_add_sigmoid(g, a);
    sx_graph_set_output(g, out);
    return out;
}

static void test_kv(side *ref, side *vk, sx_dtype dt) {
    const int64_t d = 32, nh = 4, nkv = 2, n_ctx = 64;
    if (cache_init(ref, dt, d * nkv, n_ctx) != SX_OK || cache_init(vk, dt, d * nkv, n_ctx) != SX_OK) {
        printf("FAIL kv %s: cache: %s\n", sx_dtype_name(dt), sx_last_error());
        g_fail++;
        return;
    }
    const int steps[] = {7, 1, 1, 5, 1, 1, 1, 3};
    int n_past = 0;
    for (size_t st = 0; st < sizeof steps / sizeof steps[0]; st++) {
        const int64_t T = steps[st];
        float *q = malloc(sizeof(float) * (size_t)(d * nh * T)), *k = malloc(sizeof(float) * (size_t)(d * nkv * T)),
              *v = malloc(sizeof(float) * (size_t)(d * nkv * T));
        for (int64_t i = 0; i < d * nh * T; i++) q[i] = frand();
        for (int64_t i = 0; i < d * nkv * T; i++) k[i] = frand(), v[i] = frand();
        sx_tensor *o_ref = kv_step(ref, q, k, v, d, nh, nkv, T, n_past);
        sx_tensor *o_vk = kv_step(vk, q, k, v, d, nh, nkv, T, n_past);
        const int64_t n = d * nh * T;
        float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
        char what[64];
        snprintf(what, sizeof what, "kv %s step %zu (n_past %d, T %lld)", sx_dtype_name(dt), st, n_past, (long long)T);
        if (!o_ref || !o_vk || sx_sched_compute(ref->sched, ref->g) != SX_OK || sx_sched_compute(vk->sched, vk->g) != SX_OK ||
            sx_sched_read(ref->sched, o_ref, a, sizeof(float) * (size_t)n) != SX_OK ||
            sx_sched_read(vk->sched, o_vk, b, sizeof(float) * (size_t)n) != SX_OK) {
            printf("FAIL %s: %s\n", what, sx_last_error());
            g_fail++;
        } else if (close_enough(what, a, b, n, 1e-5)) {
            printf("ok   %s\n", what);
        }
        free(q), free(k), free(v), free(a), free(b);
        n_past += (int)T;
    }
    sx_buffer_free(ref->cache_buf);
    sx_buffer_free(vk->cache_buf);
}

/* x -> 40 dependent ops with fan-out; dead intermediates are reused by the planner */
static sx_tensor *chain(side *s, const float *x0, int64_t n) {
    sx_graph *g = s->g;
    sx_graph_reset(g);
    sx_tensor *x = sx_graph_input_f32(g, x0, 2, (int64_t[]){n, 3}, "x");
    sx_tensor *w = sx_graph_input_f32(g, x0, 1, (int64_t[]){n}, "w");
    sx_tensor *a = x, *b = x;
    for (int i = 0; i < 40; i++) {
        sx_tensor *c = (i % 3 == 0) ? sx_graph_add_rms_norm(g, a, w, 1e-5f) : (i % 3 == 1) ? sx_graph_add_silu_mul(g, a, b) : sx_graph_add_add(g, a, b);
        b = a;
        a = c;
    }
    sx_tensor *out = sx_graph_add_softmax(g, a);
    sx_graph_set_output(g, out);
    return out;
}

static void test_chain(side *ref, side *vk) {
    const int64_t n = 300;
    float *x = malloc(sizeof(float) * (size_t)n * 3), *a = malloc(sizeof(float) * (size_t)n * 3), *b = malloc(sizeof(float) * (size_t)n * 3);
    for (int64_t i = 0; i < n * 3; i++) x[i] = frand();
    sx_tensor *o_ref = chain(ref, x, n), *o_vk = chain(vk, x, n);
    if (!o_ref || !o_vk || sx_sched_compute(ref->sched, ref->g) != SX_OK || sx_sched_compute(vk->sched, vk->g) != SX_OK ||
        sx_sched_read(ref->sched, o_ref, a, sizeof(float) * (size_t)n * 3) != SX_OK ||
        sx_sched_read(vk->sched, o_vk, b, sizeof(float) * (size_t)n * 3) != SX_OK) {
        printf("FAIL chain: %s\n", sx_last_error());
        g_fail++;
    } else if (close_enough("chain of 40 ops", a, b, n * 3, 1e-4)) {
        printf("ok   chain of 40 ops with buffer reuse\n");
    }
    free(x), free(a), free(b);
}

/* 12 independent matmuls of one input, summed pairwise */
static sx_tensor *fan(side *s, const float *w, const float *x, int64_t K, int64_t N) {
    sx_graph *g = s->g;
    sx_graph_reset(g);
    sx_tensor *xi = sx_graph_input_f32(g, x, 2, (int64_t[]){K, 1}, "x");
    sx_tensor *acc = NULL;
    for (int i = 0; i < 12; i++) {
        sx_tensor *wi = sx_graph_input_f32(g, w + i * K * N, 2, (int64_t[]){K, N}, "w");
        sx_tensor *y = sx_graph_add_matmul(g, wi, xi);
        acc = acc ? sx_graph_add_add(g, acc, y) : y;
    }
    sx_graph_set_output(g, acc);
    return acc;
}

static void test_fan(side *ref, side *vk) {
    const int64_t K = 64, N = 48;
    float *w = malloc(sizeof(float) * (size_t)(12 * K * N)), *x = malloc(sizeof(float) * (size_t)K), a[48], b[48];
    for (int64_t i = 0; i < 12 * K * N; i++) w[i] = frand();
    for (int64_t i = 0; i < K; i++) x[i] = frand();
    sx_tensor *o_ref = fan(ref, w, x, K, N), *o_vk = fan(vk, w, x, K, N);
    if (!o_ref || !o_vk || sx_sched_compute(ref->sched, ref->g) != SX_OK || sx_sched_compute(vk->sched, vk->g) != SX_OK ||
        sx_sched_read(ref->sched, o_ref, a, sizeof a) != SX_OK || sx_sched_read(vk->sched, o_vk, b, sizeof b) != SX_OK) {
        printf("FAIL fan-out: %s\n", sx_last_error());
        g_fail++;
    } else if (close_enough("12 independent matmuls", a, b, N, 1e-4)) {
        printf("ok   12 independent matmuls\n");
    }
    free(w), free(x);
}

/* Two devices: a tensor made on the CPU, read there by an early node, then
 * by a node on BACKEND after several CPU nodes that could reuse its bytes.
 * The cross-device copy happens when BACKEND's segment starts, so the
 * planner must keep the tensor until then (it once reused it: wrong input). */
static void test_cross_device(side *ref, side *vk) {
    const int64_t n = 1024;
    float *x = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n), *got = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = frand();
    sx_device *devs[2] = {vk->dev, ref->dev};
    sx_sched *two = NULL;
    sx_graph *g = NULL;
    sx_status st = sx_sched_create(devs, 2, &two); /* no guard bytes: they turn off the reuse under test */
    if (st == SX_OK) st = sx_graph_create(64, &g);
    for (int pass = 0; pass < 2 && st == SX_OK; pass++) { /* pass 0: all on the CPU (the expectation); 1: the last node on BACKEND */
        sx_graph_reset(g);
        sx_tensor *xi = sx_graph_input_f32(g, x, 1, (int64_t[]){n}, "x");
        sx_tensor *a = sx_graph_add_mul(g, xi, xi);
        sx_tensor *t = sx_graph_add_add(g, a, xi); /* a's last reader on the CPU */
        for (int i = 0; i < 6; i++) t = sx_graph_add_mul(g, t, sx_graph_add_sigmoid(g, t)); /* CPU nodes that may reuse a's bytes */
        sx_tensor *y = sx_graph_add_add(g, a, t);
        sx_graph_set_output(g, y);
        st = sx_graph_status(g);
        for (int k = 0; k < sx_graph_n_nodes(g) && st == SX_OK; k++) sx_graph_node(g, k)->device = 1;
        if (st == SX_OK && pass == 1) y->device = 0;
        if (st == SX_OK) st = sx_sched_compute(two, g);
        if (st == SX_OK) st = sx_sched_read(two, y, pass ? got : want, sizeof(float) * (size_t)n);
    }
    if (st != SX_OK) {
        printf("FAIL cross-device: %s\n", sx_last_error());
        g_fail++;
    } else if (close_enough("a CPU tensor read on the device after later CPU nodes", want, got, n, 1e-5)) {
        printf("ok   a CPU tensor read on the device after later CPU nodes\n");
    }
    sx_graph_destroy(g);
    sx_sched_destroy(two);
    free(x), free(want), free(got);
}

static int open_side(const char *name, side *s) {
    sx_device_options o;
    sx_device_options_init(&o);
    memset(s, 0, sizeof *s);
    if (sx_device_open_by_name(name, &o, &s->dev) != SX_OK) return -1;
    if (sx_sched_create(&s->dev, 1, &s->sched) != SX_OK || sx_graph_create(512, &s->g) != SX_OK) return -2;
    sx_sched_set_guard(s->sched, 64);
    return 0;
}

static void close_side(side *s) {
    sx_graph_destroy(s->g);
    sx_sched_destroy(s->sched);
    sx_device_close(s->dev);
}

int main(int argc, char **argv) {
    const char *backend = argc > 1 ? argv[1] : "vulkan";
    side ref, vk;
    if (open_side("cpu-ref", &ref) != 0) {
        fprintf(stderr, "cannot open the reference: %s\n", sx_last_error());
        return 1;
    }
    const int r = open_side(backend, &vk);
    if (r == -1) {
        printf("SKIP: backend %s unavailable: %s\n", backend, sx_last_error());
        close_side(&ref);
        return 77;
    }
    if (r != 0) {
        fprintf(stderr, "setup failed: %s\n", sx_last_error());
        return 1;
    }
    printf("graph tests: %s (%s) vs cpu-ref\n", backend, vk.dev->info.name);
    test_kv(&ref, &vk, SX_DTYPE_F32);
    test_kv(&ref, &vk, SX_DTYPE_F16);
    test_chain(&ref, &vk);
    test_fan(&ref, &vk);
    test_cross_device(&ref, &vk);
    close_side(&vk);
    close_side(&ref);
    printf("%s: %s\n", backend, g_fail ? "FAILED" : "all graph tests passed");
    return g_fail ? 1 : 0;
}
