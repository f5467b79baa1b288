/* tests/test_ops.c — op conformance: every op in ir/ops.def, every dtype it
 * accepts, on one backend, against the CPU reference backend ("cpu-ref").
 *
 *   test_ops BACKEND [--full] [--seed N] [--op NAME] [--dtype NAME] [--xfail FILE] [-v]
 *
 * Each case builds a one-op graph from seeded random inputs (odd shapes,
 * strided views, broadcasts), runs it on the reference and on BACKEND with
 * 64 guard bytes after every tensor, and compares with the tolerance stated
 * per op/dtype below. A backend that cannot run an op must list it in the
 * expected-failure file (one "OP DTYPE # reason" per line); an unexpected
 * pass fails the run too. Ids out of range for GET_ROWS / SET_ROWS must give
 * an error naming the op (check_bad_ids). Exit 77 (skip) when the backend
 * has no device.
 * One seed for everything, printed with every failure for replay. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "core/sampler.h"

typedef struct tctx {
    sx_graph *g;
    sx_rng rng;
    bool bad; /* generator could not build the case */
} tctx;

/* One case: op-specific integer parameters interpreted by its builder. */
typedef struct tcase {
    sx_op op;
    sx_dtype dt;  /* the dtype under test (weights, table, cache, source) */
    int64_t ne[4];
    int variant;  /* builder-specific: view kinds, masks, broadcast shapes */
    int param;    /* builder-specific: k, dim, n_past ... */
} tcase;

typedef sx_tensor *(*build_fn)(tctx *c, const tcase *tc);

/* ---------------- random inputs ---------------- */
static float frand(tctx *c, float lo, float hi) { return lo + (hi - lo) * (float)sx_rng_uniform(&c->rng); }

static sx_tensor *rand_tensor(tctx *c, sx_dtype dt, const int64_t ne[4], float lo, float hi) {
    int nd = 4;
    while (nd > 1 && ne[nd - 1] == 1) nd--;
    sx_tensor *t = sx_graph_input(c->g, dt, nd, ne, "in");
    if (!t) {
        c->bad = true;
        return NULL;
    }
    const int64_t n = ne[0] * ne[1] * ne[2] * ne[3];
    float *f = malloc(sizeof(float) * (size_t)n);
    const size_t bytes = sx_tensor_nbytes(t);
    void *q = malloc(bytes);
    for (int64_t i = 0; i < n; i++) f[i] = frand(c, lo, hi);
    const int64_t rows = n / ne[0];
    const size_t rs = sx_dtype_row_size(dt, ne[0]);
    for (int64_t r = 0; r < rows; r++) sx_dtype_quantize_row(dt, f + r * ne[0], (char *)q + (size_t)r * rs, ne[0]);
    if (sx_graph_set_input(c->g, t, q, bytes) != SX_OK) c->bad = true;
    free(f), free(q);
    return t;
}

static sx_tensor *rand_ids(tctx *c, int64_t n, int64_t range) {
    int32_t *v = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) v[i] = (int32_t)(sx_rng_uniform(&c->rng) * (double)range);
    sx_tensor *t = sx_graph_input_i32(c->g, v, n, "ids");
    free(v);
    return t;
}

/* distinct ids (a permutation prefix), needed where duplicate writes would race */
static sx_tensor *distinct_ids(tctx *c, int64_t n, int64_t range) {
    int32_t *v = malloc(sizeof(int32_t) * (size_t)range);
    for (int64_t i = 0; i < range; i++) v[i] = (int32_t)i;
    for (int64_t i = range - 1; i > 0; i--) {
        int64_t j = (int64_t)(sx_rng_uniform(&c->rng) * (double)(i + 1));
        int32_t tmp = v[i];
        v[i] = v[j], v[j] = tmp;
    }
    sx_tensor *t = sx_graph_input_i32(c->g, v, n, "ids");
    free(v);
    return t;
}

/* variant 1: a strided window (row stride padded, offset into the buffer);
 * variant 2: dims 1 and 2 swapped (permuted strides). Plain dtypes only. */
static sx_tensor *with_view(tctx *c, sx_dtype dt, const int64_t ne[4], int variant, float lo, float hi) {
    if (variant == 0) return rand_tensor(c, dt, ne, lo, hi);
    const size_t es = (size_t)sx_dtype_get(dt)->type_size;
    if (variant == 1) {
        const int64_t big[4] = {ne[0] + 3, ne[1] + 1, ne[2], ne[3]};
        sx_tensor *b = rand_tensor(c, dt, big, lo, hi);
        if (!b) return NULL;
        return sx_graph_view(c->g, b, 4, ne, &b->nb[1], es * (size_t)(big[0] + 1));
    }
    const int64_t sw[4] = {ne[0], ne[2], ne[1], ne[3]};
    sx_tensor *b = rand_tensor(c, dt, sw, lo, hi);
    if (!b) return NULL;
    const size_t nb[3] = {b->nb[2], b->nb[1], b->nb[3]};
    return sx_graph_view(c->g, b, 4, ne, nb, 0);
}

/* ---------------- builders, one per op ---------------- */
static sx_tensor *build_GET_ROWS(tctx *c, const tcase *tc) {
    sx_tensor *tab = rand_tensor(c, tc->dt, (int64_t[]){tc->ne[0], tc->ne[1], 1, 1}, -2, 2);
    return sx_graph_add_get_rows(c->g, tab, rand_ids(c, tc->ne[2], tc->ne[1]));
}
static sx_tensor *build_RMS_NORM(tctx *c, const tcase *tc) {
    sx_tensor *x = with_view(c, SX_DTYPE_F32, tc->ne, tc->variant, -3, 3);
    sx_tensor *w = rand_tensor(c, SX_DTYPE_F32, (int64_t[]){tc->ne[0], 1, 1, 1}, 0.5f, 1.5f);
    return sx_graph_add_rms_norm(c->g, x, w, 1e-5f);
}
/* variant bits: 1 = a is a strided view; 2 = b broadcasts (a row), 4 = b is one element per ne1 */
static sx_tensor *binary_case(tctx *c, const tcase *tc, bool mul) {
    sx_tensor *a = with_view(c, SX_DTYPE_F32, tc->ne, tc->variant & 1, -2, 2);
    int64_t nb_[4] = {tc->ne[0], tc->ne[1], tc->ne[2], tc->ne[3]};
    if (tc->variant & 2) nb_[1] = nb_[2] = nb_[3] = 1;
    if (tc->variant & 4) nb_[0] = 1;
    sx_tensor *b = rand_tensor(c, SX_DTYPE_F32, nb_, -2, 2);
    return mul ? sx_graph_add_mul(c->g, a, b) : sx_graph_add_add(c->g, a, b);
}
static sx_tensor *build_ADD(tctx *c, const tcase *tc) { return binary_case(c, tc, false); }
static sx_tensor *build_MUL(tctx *c, const tcase *tc) { return binary_case(c, tc, true); }
/* ne = {K, N, M}; variant 1: x rows strided */
static sx_tensor *build_MATMUL(tctx *c, const tcase *tc) {
    sx_tensor *w = rand_tensor(c, tc->dt, (int64_t[]){tc->ne[0], tc->ne[1], 1, 1}, -1, 1);
    sx_tensor *x = with_view(c, SX_DTYPE_F32, (int64_t[]){tc->ne[0], tc->ne[2], 1, 1}, tc->variant, -1, 1);
    return sx_graph_add_matmul(c->g, w, x);
}
/* ne = {d, heads, T}; variant bit 0 = rope mode, bit 1 = frequency factors (Llama 3.1); param = n_dims (0 = d) */
static sx_tensor *build_ROPE(tctx *c, const tcase *tc) {
    const int n_dims = tc->param ? tc->param : (int)tc->ne[0];
    sx_tensor *x = rand_tensor(c, SX_DTYPE_F32, tc->ne, -2, 2);
    sx_tensor *pos = rand_ids(c, tc->ne[2], 5000);
    sx_tensor *ff = tc->variant & 2 ? rand_tensor(c, SX_DTYPE_F32, (int64_t[]){n_dims / 2, 1, 1, 1}, 1, 8) : NULL;
    return sx_graph_add_rope(c->g, x, pos, tc->variant & 1 ? SX_ROPE_NEOX : SX_ROPE_NORMAL, n_dims, 10000.0f, 1.0f, ff);
}
/* f32 [K, n] rows of 32-element blocks built to hit the edges of the q8_0 /
 * q4_0 quantizers that uniform data misses, block b by b % 6: uniform; a
 * scale that rounds to zero in f16; one that is f16-subnormal; zeros; the
 * dequantized q4_0 of a uniform block (already on the grid, positive max);
 * exact .5 ties of q4_0's x / d (round half to even) and a tie of |x|
 * between -1 and +1. */
static void kv_edge_fill(tctx *c, float *f, int64_t n_blocks) {
    for (int64_t b = 0; b < n_blocks; b++) {
        float *x = f + b * 32;
        sx_block_q4_0 q;
        for (int j = 0; j < 32; j++) x[j] = frand(c, -1, 1);
        switch (b % 6) {
        case 1: for (int j = 0; j < 32; j++) x[j] *= 1e-8f; break;
        case 2: for (int j = 0; j < 32; j++) x[j] *= 1e-5f; break;
        case 3: memset(x, 0, 32 * sizeof(float)); break;
        case 4:
            x[(int)(frand(c, 0, 31.99f))] = 1.5f; /* the largest value positive */
            sx_dtype_quantize_row(SX_DTYPE_Q4_0, x, &q, 32);
            sx_dtype_dequantize_row(SX_DTYPE_Q4_0, &q, x, 32);
            break;
        case 5: { /* -1 and +1 (the first is q4_0's max: d = -+1/8), the rest (2m + 1) / 16: x * 8 = m + 0.5 */
            for (int j = 0; j < 32; j++) x[j] = (float)(2 * (int)frand(c, -7, 7) + 1) / 16.0f;
            const int a = (int)frand(c, 0, 31.99f);
            x[a] = -1.0f;
            x[(a + 1 + (int)frand(c, 0, 30.99f)) % 32] = 1.0f;
        } break;
        default: break;
        }
    }
}
static sx_tensor *kv_edge_rows(tctx *c, int64_t K, int64_t n) {
    sx_tensor *t = sx_graph_input(c->g, SX_DTYPE_F32, 2, (int64_t[]){K, n}, "edge_rows");
    float *f = malloc(sizeof(float) * (size_t)(K * n));
    if (f) kv_edge_fill(c, f, K * n / 32);
    if (!t || !f || sx_graph_set_input(c->g, t, f, sizeof(float) * (size_t)(K * n)) != SX_OK) c->bad = true;
    free(f);
    return t;
}

/* ne = {K, R, n}; dt = cache dtype; variant 1: the rows of kv_edge_rows */
static sx_tensor *build_SET_ROWS(tctx *c, const tcase *tc) {
    sx_tensor *dst = rand_tensor(c, tc->dt, (int64_t[]){tc->ne[0], tc->ne[1], 1, 1}, -1, 1);
    sx_tensor *src = tc->variant == 1 ? kv_edge_rows(c, tc->ne[0], tc->ne[2])
                                      : rand_tensor(c, SX_DTYPE_F32, (int64_t[]){tc->ne[0], tc->ne[2], 1, 1}, -1, 1);
    return sx_graph_add_set_rows(c->g, dst, src, distinct_ids(c, tc->ne[2], tc->ne[1]));
}
/* ne = {d, nh, T, nkv}; param = n_past; variant 1 = tree mask over the T new
 * tokens; variant 2 = mask over 5 earlier tree slots + the T new ones (a draft
 * tree level); dt = kv dtype. k/v are views of a larger cache (slot stride >
 * row), as in the model. */
static sx_tensor *build_ATTENTION(tctx *c, const tcase *tc) {
    const int64_t d = tc->ne[0], nh = tc->ne[1], T = tc->ne[2], nkv = tc->ne[3];
    const int64_t extra = tc->variant == 2 ? 5 : 0, M = T + extra, n_kv = tc->param + M;
    sx_tensor *q = rand_tensor(c, SX_DTYPE_F32, (int64_t[]){d, nh, T, 1}, -1, 1);
    sx_tensor *kc = rand_tensor(c, tc->dt, (int64_t[]){d * nkv, n_kv + 5, 1, 1}, -1, 1);
    sx_tensor *vc = rand_tensor(c, tc->dt, (int64_t[]){d * nkv, n_kv + 5, 1, 1}, -1, 1);
    if (!kc || !vc) return NULL;
    const size_t rh = sx_dtype_row_size(tc->dt, d); /* one head's row: whole blocks for q8_0 */
    sx_tensor *k = sx_graph_view(c->g, kc, 3, (int64_t[]){d, nkv, n_kv}, (size_t[]){rh, rh * (size_t)nkv}, 0);
    sx_tensor *v = sx_graph_view(c->g, vc, 3, (int64_t[]){d, nkv, n_kv}, (size_t[]){rh, rh * (size_t)nkv}, 0);
    sx_tensor *mask = NULL;
    if (tc->variant >= 1) { /* random tree over M slots: parent of i is some j < i; visible = ancestors and self */
        float *m = malloc(sizeof(float) * (size_t)(M * T));
        int *parent = malloc(sizeof(int) * (size_t)M);
        for (int64_t i = 0; i < M; i++) parent[i] = i ? (int)(sx_rng_uniform(&c->rng) * (double)i) : -1;
        for (int64_t t = 0; t < T; t++) {
            for (int64_t j = 0; j < M; j++) m[t * M + j] = -INFINITY;
            for (int64_t a = extra + t; a >= 0; a = parent[a]) m[t * M + a] = 0;
        }
        mask = sx_graph_input_f32(c->g, m, 2, (int64_t[]){M, T}, "mask");
        free(m), free(parent);
    }
    return sx_graph_add_attention(c->g, q, k, v, mask, 1.0f / sqrtf((float)d), tc->param);
}
static sx_tensor *build_SILU_MUL(tctx *c, const tcase *tc) {
    return sx_graph_add_silu_mul(c->g, rand_tensor(c, SX_DTYPE_F32, tc->ne, -6, 6), rand_tensor(c, SX_DTYPE_F32, tc->ne, -2, 2));
}
static sx_tensor *build_SOFTMAX(tctx *c, const tcase *tc) { return sx_graph_add_softmax(c->g, with_view(c, SX_DTYPE_F32, tc->ne, tc->variant, -8, 8)); }
static sx_tensor *build_ARGMAX(tctx *c, const tcase *tc) { return sx_graph_add_argmax(c->g, rand_tensor(c, SX_DTYPE_F32, tc->ne, -5, 5)); }
/* variant 1: values on a coarse grid, so many ties (ordered by lower index);
 * 2: every value equal; 3: ascending rows (the best at the end) */
static sx_tensor *build_TOP_K(tctx *c, const tcase *tc) {
    if (tc->variant == 0) return sx_graph_add_top_k(c->g, rand_tensor(c, SX_DTYPE_F32, tc->ne, -5, 5), tc->param);
    const int64_t n = tc->ne[0] * tc->ne[1];
    float *v = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        v[i] = tc->variant == 1 ? (float)(int)(sx_rng_uniform(&c->rng) * 12.0) * 0.5f : tc->variant == 2 ? 1.0f : (float)(i % tc->ne[0]) * 1e-3f;
    sx_tensor *x = sx_graph_input_f32(c->g, v, 2, (int64_t[]){tc->ne[0], tc->ne[1]}, "x");
    free(v);
    return sx_graph_add_top_k(c->g, x, tc->param);
}
/* param = dim; b's size along dim is variant + 1 */
static sx_tensor *build_CONCAT(tctx *c, const tcase *tc) {
    int64_t nb_[4] = {tc->ne[0], tc->ne[1], tc->ne[2], tc->ne[3]};
    nb_[tc->param] = tc->variant + 1;
    return sx_graph_add_concat(c->g, rand_tensor(c, SX_DTYPE_F32, tc->ne, -2, 2), rand_tensor(c, SX_DTYPE_F32, nb_, -2, 2), tc->param);
}
/* dt = source dtype; param = destination dtype; variant = view kind */
static sx_tensor *build_COPY(tctx *c, const tcase *tc) {
    return sx_graph_add_copy(c->g, with_view(c, tc->dt, tc->ne, tc->variant, -100, 100), (sx_dtype)tc->param);
}
static sx_tensor *build_SIGMOID(tctx *c, const tcase *tc) { return sx_graph_add_sigmoid(c->g, with_view(c, SX_DTYPE_F32, tc->ne, tc->variant, -10, 10)); }
static sx_tensor *build_EXP(tctx *c, const tcase *tc) { return sx_graph_add_exp(c->g, with_view(c, SX_DTYPE_F32, tc->ne, tc->variant, -10, 5)); }

/* ne = {K, R}, param = k: values picked by random ids (repeats allowed) */
static sx_tensor *build_GATHER(tctx *c, const tcase *tc) {
    sx_tensor *x = rand_tensor(c, SX_DTYPE_F32, (int64_t[]){tc->ne[0], tc->ne[1], 1, 1}, -5, 5);
    const int64_t n = (int64_t)tc->param * tc->ne[1];
    int32_t *v = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) v[i] = (int32_t)(sx_rng_uniform(&c->rng) * (double)tc->ne[0]);
    sx_tensor *ids = sx_graph_input(c->g, SX_DTYPE_I32, 2, (int64_t[]){tc->param, tc->ne[1]}, "ids");
    if (!ids || sx_graph_set_input(c->g, ids, v, sizeof(int32_t) * (size_t)n) != SX_OK) c->bad = true;
    free(v);
    return sx_graph_add_gather(c->g, x, ids);
}
/* ne = {K, N, E experts, R rows}, param = k picks per row (distinct experts,
 * as a router's top-k); variant 0: one input column per row, 1: k columns */
static sx_tensor *build_MUL_MAT_ID(tctx *c, const tcase *tc) {
    const int64_t K = tc->ne[0], N = tc->ne[1], E = tc->ne[2], R = tc->ne[3], k = tc->param;
    sx_tensor *w = rand_tensor(c, tc->dt, (int64_t[]){K, N, E, 1}, -1, 1);
    sx_tensor *x = rand_tensor(c, SX_DTYPE_F32, (int64_t[]){K, tc->variant ? k : 1, R, 1}, -1, 1);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(k * R)), *perm = malloc(sizeof(int32_t) * (size_t)E);
    for (int64_t r = 0; r < R; r++) {
        for (int64_t e = 0; e < E; e++) perm[e] = (int32_t)e;
        for (int64_t j = 0; j < k; j++) { /* a random prefix of a permutation */
            const int64_t t = j + (int64_t)(sx_rng_uniform(&c->rng) * (double)(E - j));
            const int32_t tmp = perm[j];
            perm[j] = perm[t], perm[t] = tmp;
            v[r * k + j] = perm[j];
        }
    }
    sx_tensor *ids = sx_graph_input(c->g, SX_DTYPE_I32, 2, (int64_t[]){k, R}, "ids");
    if (!ids || sx_graph_set_input(c->g, ids, v, sizeof(int32_t) * (size_t)(k * R)) != SX_OK) c->bad = true;
    free(v), free(perm);
    return sx_graph_add_mul_mat_id(c->g, w, x, ids);
}

static const build_fn g_builders[SX_OP_COUNT] = {
#define SX_OP(NAME, nsrc, nopt, params) [SX_OP_##NAME] = build_##NAME,
#include "ir/ops.def"
#undef SX_OP
};

/* ---------------- the case matrix ---------------- */
typedef struct {
    tcase *v;
    int n, cap;
} caselist;

static void add(caselist *l, sx_op op, sx_dtype dt, int64_t a, int64_t b, int64_t c, int64_t d, int variant, int param) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = realloc(l->v, sizeof(tcase) * (size_t)l->cap);
    }
    l->v[l->n++] = (tcase){op, dt, {a, b, c, d}, variant, param};
}

static const sx_dtype g_weight_types[] = {SX_DTYPE_F32, SX_DTYPE_F16, SX_DTYPE_BF16, SX_DTYPE_Q8_0, SX_DTYPE_Q4_0, SX_DTYPE_Q4_1,
                                          SX_DTYPE_Q5_0, SX_DTYPE_Q5_1, SX_DTYPE_Q4_K, SX_DTYPE_Q5_K, SX_DTYPE_Q6_K,
                                          SX_DTYPE_Q2_K, SX_DTYPE_Q3_K, SX_DTYPE_IQ4_NL, SX_DTYPE_IQ4_XS};
#define N_WT (int)(sizeof g_weight_types / sizeof g_weight_types[0])

static void make_cases(caselist *l, bool full) {
    for (int i = 0; i < N_WT; i++) {
        const sx_dtype t = g_weight_types[i];
        const int64_t K = sx_dtype_get(t)->block_size == 256 ? 256 : 96;
        add(l, SX_OP_GET_ROWS, t, K, 13, 5, 1, 0, 0);
        add(l, SX_OP_MATMUL, t, K, 7, 1, 1, 0, 0);   /* decode shape */
        add(l, SX_OP_MATMUL, t, K, 33, 5, 1, 1, 0);  /* strided x */
        add(l, SX_OP_MATMUL, t, K * 2, 17, 19, 1, 0, 0);
        add(l, SX_OP_MATMUL, t, K, 37, 3, 1, 0, 0);      /* small batches (tree verify): GPU matvec paths for M <= 8 */
        add(l, SX_OP_MATMUL, t, K * 2, 37, 8, 1, 0, 0);
        if (full) add(l, SX_OP_MATMUL, t, K * 4, 130, 67, 1, 0, 0);
        add(l, SX_OP_MUL_MAT_ID, t, K, 19, 6, 1, 0, 2);   /* mixture of experts, decode: 2 of 6 experts, shared input */
        add(l, SX_OP_MUL_MAT_ID, t, K, 21, 8, 5, 1, 3);   /* a verify batch, each pick its own input (down projection) */
        if (full) add(l, SX_OP_MUL_MAT_ID, t, K * 2, 70, 16, 37, 0, 8);
    }
    for (int v = 0; v < 3; v++) {
        add(l, SX_OP_RMS_NORM, SX_DTYPE_F32, 37, 5, 3, 1, v, 0);
        add(l, SX_OP_SOFTMAX, SX_DTYPE_F32, 33, 4, 3, 1, v, 0);
        add(l, SX_OP_SIGMOID, SX_DTYPE_F32, 11, 3, 2, 2, v, 0);
        add(l, SX_OP_EXP, SX_DTYPE_F32, 11, 3, 2, 2, v, 0);
    }
    add(l, SX_OP_RMS_NORM, SX_DTYPE_F32, 576, 9, 1, 1, 0, 0);
    for (int v = 0; v < 8; v++) {
        if (v & 1 && v & 4) continue;
        add(l, SX_OP_ADD, SX_DTYPE_F32, 5, 7, 11, 3, v, 0);
        add(l, SX_OP_MUL, SX_DTYPE_F32, 5, 7, 11, 3, v, 0);
    }
    add(l, SX_OP_ADD, SX_DTYPE_F32, 1000, 3, 1, 1, 0, 0);
    for (int mode = 0; mode < 2; mode++) {
        add(l, SX_OP_ROPE, SX_DTYPE_F32, 16, 3, 5, 1, mode, 0);
        add(l, SX_OP_ROPE, SX_DTYPE_F32, 64, 2, 3, 1, mode, 32); /* partial rotary */
        add(l, SX_OP_ROPE, SX_DTYPE_F32, 128, 2, 2, 1, mode, 0);
        add(l, SX_OP_ROPE, SX_DTYPE_F32, 64, 3, 4, 1, mode | 2, 0);  /* Llama 3.1 frequency factors */
        add(l, SX_OP_ROPE, SX_DTYPE_F32, 64, 2, 3, 1, mode | 2, 32); /* factors with partial rotary */
    }
    for (int t = 0; t < 2; t++) {
        const sx_dtype dt = t ? SX_DTYPE_F16 : SX_DTYPE_F32;
        add(l, SX_OP_SET_ROWS, dt, 48, 20, 7, 1, 0, 0);
        add(l, SX_OP_ATTENTION, dt, 16, 4, 1, 2, 0, 9);   /* decode, GQA 2 */
        add(l, SX_OP_ATTENTION, dt, 16, 6, 7, 3, 0, 0);   /* prefill from empty */
        add(l, SX_OP_ATTENTION, dt, 64, 4, 5, 1, 0, 11);  /* MQA */
        add(l, SX_OP_ATTENTION, dt, 32, 4, 9, 2, 1, 13);  /* tree mask */
        add(l, SX_OP_ATTENTION, dt, 32, 4, 6, 2, 2, 7);   /* draft tree level: mask covers earlier levels too */
        add(l, SX_OP_ATTENTION, dt, 64, 4, 3, 2, 2, 600); /* long context: several split-K chunks on the GPUs */
        if (full) add(l, SX_OP_ATTENTION, dt, 128, 8, 33, 2, 1, 300);
    }
    /* a quantized KV cache (-ctk q8_0 / q4_0): rows of whole 32-element blocks, head dims 32..128 */
    for (int t = 0; t < 2; t++) {
        const sx_dtype dt = t ? SX_DTYPE_Q4_0 : SX_DTYPE_Q8_0;
        add(l, SX_OP_SET_ROWS, dt, 64, 20, 7, 1, 0, 0);
        add(l, SX_OP_SET_ROWS, dt, 256, 9, 3, 1, 0, 0);
        if (t) add(l, SX_OP_SET_ROWS, dt, 192, 9, 5, 1, 1, 0); /* the quantizer's edges */
        add(l, SX_OP_ATTENTION, dt, 64, 4, 1, 2, 0, 9);   /* decode, GQA 2 */
        add(l, SX_OP_ATTENTION, dt, 32, 6, 7, 3, 0, 0);   /* prefill from empty */
        add(l, SX_OP_ATTENTION, dt, 32, 4, 9, 2, 1, 13);  /* tree mask */
        add(l, SX_OP_ATTENTION, dt, 64, 4, 6, 2, 2, 7);   /* draft tree level */
        add(l, SX_OP_ATTENTION, dt, 128, 4, 3, 2, 2, 600); /* long context: split-K chunks on the GPUs */
        if (full) add(l, SX_OP_ATTENTION, dt, 128, 8, 33, 2, 1, 300);
    }
    add(l, SX_OP_SILU_MUL, SX_DTYPE_F32, 37, 5, 3, 1, 0, 0);
    add(l, SX_OP_ARGMAX, SX_DTYPE_F32, 101, 7, 1, 1, 0, 0);
    add(l, SX_OP_ARGMAX, SX_DTYPE_F32, 5000, 2, 1, 1, 0, 0);
    add(l, SX_OP_TOP_K, SX_DTYPE_F32, 101, 7, 1, 1, 0, 10);
    add(l, SX_OP_TOP_K, SX_DTYPE_F32, 3000, 2, 1, 1, 0, 1);
    add(l, SX_OP_TOP_K, SX_DTYPE_F32, 9, 3, 1, 1, 0, 9);
    add(l, SX_OP_TOP_K, SX_DTYPE_F32, 50000, 3, 1, 1, 0, 64); /* sampling from the top 64 of a vocabulary (verify rows) */
    add(l, SX_OP_TOP_K, SX_DTYPE_F32, 7000, 5, 1, 1, 1, 64);  /* with many ties */
    add(l, SX_OP_TOP_K, SX_DTYPE_F32, 300, 4, 1, 1, 1, 20);
    add(l, SX_OP_TOP_K, SX_DTYPE_F32, 10000, 2, 1, 1, 0, 256); /* the largest k, rows longer than a GPU chunk */
    add(l, SX_OP_TOP_K, SX_DTYPE_F32, 9000, 2, 1, 1, 2, 64);   /* every value equal */
    add(l, SX_OP_TOP_K, SX_DTYPE_F32, 20000, 2, 1, 1, 3, 64);  /* ascending */
    if (full) add(l, SX_OP_TOP_K, SX_DTYPE_F32, 151936, 17, 1, 1, 0, 64);
    add(l, SX_OP_GATHER, SX_DTYPE_F32, 64, 5, 1, 1, 0, 8);
    add(l, SX_OP_GATHER, SX_DTYPE_F32, 7, 1, 1, 1, 0, 7);
    for (int dim = 0; dim < 4; dim++) add(l, SX_OP_CONCAT, SX_DTYPE_F32, 4, 3, 2, 2, dim, dim);
    const sx_dtype ft[] = {SX_DTYPE_F32, SX_DTYPE_F16, SX_DTYPE_BF16};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (int v = 0; v < 3; v++) add(l, SX_OP_COPY, ft[a], 9, 4, 3, 1, v, ft[b]);
}

/* ---------------- tolerances ----------------
 * Error bound per element: |got - ref| <= atol + rtol * scale, where scale is
 * |ref| for pointwise ops and sum_k |w_k x_k| for matmul (computed from the
 * same inputs), so the bound follows the accumulation's magnitude.
 *  - pointwise f32 ops: rtol 1e-5 (float vs double evaluation of exp etc.)
 *  - rope: atol 2e-5 (float sin/cos of angles up to 5000 rad, from double)
 *  - attention: atol 2e-5 (weights sum to 1, |v| <= 1; float accumulation)
 *  - matmul f32/f16/bf16 weights: rtol 2e-5 of sum|w x| (float accumulation)
 *  - matmul quantised weights: 1/127 of sum|w x| — fast paths round the
 *    activations to 8 bits per block (max relative error 1/254 per element
 *    of the block max; bound doubled for the block max vs element ratio)
 *  - copy/set_rows into f16/bf16: one unit in the last place of the format;
 *    set_rows into q8_0 / q4_0 (a quantized KV cache): exact
 *  - argmax, top_k, get_rows of plain types, concat: exact. */
typedef struct { double atol, rtol; bool matmul_scale; } tol;

static tol tolerance(const tcase *tc) {
    switch (tc->op) {
    case SX_OP_MATMUL: case SX_OP_MUL_MAT_ID:
        return sx_dtype_get(tc->dt)->quantized ? (tol){1e-5, 1.0 / 127, true} : (tol){1e-6, 2e-5, true};
    case SX_OP_ROPE: return (tol){2e-5, 1e-5, false};
    case SX_OP_ATTENTION: return (tol){2e-5, 1e-5, false};
    case SX_OP_COPY:
        return tc->param == SX_DTYPE_BF16 ? (tol){1e-30, 1.0 / 128, false} : tc->param == SX_DTYPE_F16 ? (tol){1e-7, 1.0 / 1024, false} : (tol){0, 0, false};
    case SX_OP_SET_ROWS: /* q8_0 / q4_0: exact, every backend quantizes as ir/dtype.c (IEEE 1/d, round half to even) */
        return tc->dt == SX_DTYPE_F16 ? (tol){1e-7, 1.0 / 1024, false} : (tol){0, 0, false};
    case SX_OP_ARGMAX: case SX_OP_TOP_K: case SX_OP_CONCAT: case SX_OP_GATHER: return (tol){0, 0, false};
    case SX_OP_GET_ROWS: return sx_dtype_get(tc->dt)->quantized ? (tol){1e-6, 1e-6, false} : (tol){0, 0, false};
    default: return (tol){1e-6, 1e-5, false};
    }
}

/* ---------------- running ---------------- */
typedef struct {
    const char *op, *dtype;
} xfail_entry;

static char g_desc[256];
static const char *describe(const tcase *tc) {
    snprintf(g_desc, sizeof g_desc, "%s %s ne=[%lld,%lld,%lld,%lld] variant=%d param=%d", sx_op_name(tc->op), sx_dtype_name(tc->dt),
             (long long)tc->ne[0], (long long)tc->ne[1], (long long)tc->ne[2], (long long)tc->ne[3], tc->variant, tc->param);
    return g_desc;
}

/* Runs one case on a device; out: the result as floats (ints converted);
 * out_raw (optional): its bytes, for the caller to free. */
static sx_status run_case(sx_sched *s, sx_graph *g, const tcase *tc, uint64_t seed, float **out, int64_t *out_n, sx_tensor **out_node,
                          void **out_raw) {
    tctx c = {.g = g};
    sx_graph_reset(g);
    sx_rng_seed(&c.rng, seed);
    sx_tensor *node = g_builders[tc->op](&c, tc);
    if (!node || c.bad) return sx_graph_status(g) != SX_OK ? sx_graph_status(g) : sx_set_error(SX_ERR_INVALID_ARG, "case could not be built");
    sx_graph_set_output(g, node);
    SX_RETURN_IF_ERROR(sx_sched_compute(s, g));
    const int64_t n = sx_tensor_nelements(node);
    const size_t bytes = sx_tensor_nbytes(node);
    void *raw = malloc(bytes);
    float *f = malloc(sizeof(float) * (size_t)n);
    sx_status st = sx_tensor_read(node, raw, bytes);
    if (st == SX_OK) {
        const int64_t rows = n / node->ne[0];
        for (int64_t r = 0; r < rows; r++)
            sx_dtype_dequantize_row(node->dtype, (char *)raw + (size_t)r * node->nb[1], f + r * node->ne[0], node->ne[0]);
    }
    if (out_raw) *out_raw = raw;
    else free(raw);
    *out = f;
    *out_n = n;
    *out_node = node;
    return st;
}

/* ---------------- ids out of range ----------------
 * GET_ROWS with an id outside [0, rows) and SET_ROWS with a slot outside
 * [0, rows) must fail, never leave the row silently unwritten: a non-OK
 * status, SX_ERR_INVALID_ARG as on the reference, whose message names the op
 * ("get_rows" / "set_rows"), from the compute or from the read after it (a
 * GPU kernel cannot fail its launch; it raises an error word the host
 * reports when it waits). The same graph with valid ids must then run
 * cleanly: the error was reported once and cleared, not left for the next
 * read. Table / cache: K x 9 rows; ids {2, bad, 0}. */
static sx_tensor *build_bad_ids(tctx *c, sx_op op, sx_dtype dt, int32_t bad) {
    const int64_t K = sx_dtype_get(dt)->block_size == 256 ? 256 : 64, R = 9;
    const int32_t v[3] = {2, bad, 0};
    sx_tensor *ids = sx_graph_input_i32(c->g, v, 3, "ids");
    if (op == SX_OP_GET_ROWS) return sx_graph_add_get_rows(c->g, rand_tensor(c, dt, (int64_t[]){K, R, 1, 1}, -2, 2), ids);
    sx_tensor *dst = rand_tensor(c, dt, (int64_t[]){K, R, 1, 1}, -1, 1);
    sx_tensor *src = rand_tensor(c, SX_DTYPE_F32, (int64_t[]){K, 3, 1, 1}, -1, 1);
    return sx_graph_add_set_rows(c->g, dst, src, ids);
}

/* ---------------- KV moves ----------------
 * KV compaction (core/model_graph.c, sx_kv_cache_build_move) moves cache
 * rows by GET_ROWS to f32 then SET_ROWS back: for a q4_0 cache the moved
 * rows must keep their bytes. Cache [K = 192, 12] of kv_edge_rows quantized;
 * rows 0..5 moved to 6..11 on the device, compared byte for byte. */
static int check_kv_move(sx_sched *s, sx_graph *g, const char *only, const char *only_dt, uint64_t seed, bool verbose, int *passed) {
    if ((only && strcmp(only, "SET_ROWS") && strcmp(only, "GET_ROWS")) || (only_dt && strcmp(only_dt, "q4_0"))) return 0;
    const int64_t K = 192, R = 12;
    tctx c = {.g = g};
    sx_graph_reset(g);
    sx_rng_seed(&c.rng, seed);
    const size_t rs = sx_dtype_row_size(SX_DTYPE_Q4_0, K);
    char *q = malloc(rs * (size_t)R), *got = malloc(rs * (size_t)R);
    float *f = malloc(sizeof(float) * (size_t)(K * R));
    sx_tensor *cache = sx_graph_input(g, SX_DTYPE_Q4_0, 2, (int64_t[]){K, R}, "cache");
    sx_status st = cache && q && got && f ? SX_OK : sx_set_error(SX_ERR_OUT_OF_MEMORY, "kv move: setup");
    if (st == SX_OK) {
        kv_edge_fill(&c, f, K * R / 32);
        for (int64_t r = 0; r < R; r++) sx_dtype_quantize_row(SX_DTYPE_Q4_0, f + r * K, q + (size_t)r * rs, K);
        st = sx_graph_set_input(g, cache, q, rs * (size_t)R);
    }
    if (st == SX_OK) {
        const int32_t from[6] = {0, 1, 2, 3, 4, 5}, to[6] = {6, 7, 8, 9, 10, 11};
        sx_tensor *moved = sx_graph_add_get_rows(g, cache, sx_graph_input_i32(g, from, 6, "from"));
        sx_tensor *node = sx_graph_add_set_rows(g, cache, moved, sx_graph_input_i32(g, to, 6, "to"));
        st = sx_graph_status(g);
        if (st == SX_OK) sx_graph_set_output(g, node), st = sx_sched_compute(s, g);
        if (st == SX_OK) st = sx_tensor_read(node, got, rs * (size_t)R);
    }
    int failed = 0;
    if (st != SX_OK) {
        printf("FAIL kv move q4_0: %s (seed %llu)\n", sx_last_error(), (unsigned long long)seed);
        failed = 1;
    } else if (memcmp(got, q, rs * 6) || memcmp(got + rs * 6, q, rs * 6)) {
        printf("FAIL kv move q4_0: a moved row's bytes changed (GET_ROWS then SET_ROWS) (seed %llu)\n", (unsigned long long)seed);
        failed = 1;
    } else {
        (*passed)++;
        if (verbose) printf("ok   kv move q4_0: 6 rows of 192 (edge blocks) keep their bytes\n");
    }
    free(q), free(got), free(f);
    return failed;
}

/* compute, then read the output: the first non-OK status */
static sx_status run_bad_ids(sx_sched *s, sx_graph *g, sx_op op, sx_dtype dt, int32_t bad, uint64_t seed) {
    tctx c = {.g = g};
    sx_graph_reset(g);
    sx_rng_seed(&c.rng, seed);
    sx_tensor *node = build_bad_ids(&c, op, dt, bad);
    if (!node || c.bad) return sx_graph_status(g) != SX_OK ? sx_graph_status(g) : sx_set_error(SX_ERR_INVALID_ARG, "case could not be built");
    sx_graph_set_output(g, node);
    SX_RETURN_IF_ERROR(sx_sched_compute(s, g));
    const size_t bytes = sx_tensor_nbytes(node);
    void *raw = malloc(bytes);
    const sx_status st = raw ? sx_tensor_read(node, raw, bytes) : sx_set_error(SX_ERR_OUT_OF_MEMORY, "out of memory");
    free(raw);
    return st;
}

/* Returns the number of failures, printed one per line; counts passes. */
static int check_bad_ids(sx_sched *s, sx_graph *g, const char *only, uint64_t seed, bool verbose, int *passed) {
    static const struct {
        sx_op op;
        sx_dtype dt;
    } ops[] = {{SX_OP_GET_ROWS, SX_DTYPE_F32}, {SX_OP_GET_ROWS, SX_DTYPE_Q4_K}, {SX_OP_SET_ROWS, SX_DTYPE_F32}, {SX_OP_SET_ROWS, SX_DTYPE_F16}};
    static const int32_t bads[] = {9, 1000, -1}; /* rows, far past, negative */
    int failed = 0;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        const char *name = ops[i].op == SX_OP_GET_ROWS ? "get_rows" : "set_rows";
        if (only && strcmp(only, sx_op_name(ops[i].op))) continue;
        for (size_t b = 0; b < sizeof bads / sizeof bads[0]; b++) {
            char what[96];
            snprintf(what, sizeof what, "%s %s with id %d of 9 rows", sx_op_name(ops[i].op), sx_dtype_name(ops[i].dt), bads[b]);
            sx_status st = run_bad_ids(s, g, ops[i].op, ops[i].dt, bads[b], seed);
            if (st == SX_OK) {
                printf("FAIL %s: returned OK (rows silently skipped) (seed %llu)\n", what, (unsigned long long)seed);
                failed++;
                continue;
            }
            if (st != SX_ERR_INVALID_ARG || !strstr(sx_last_error(), name)) {
                printf("FAIL %s: want SX_ERR_INVALID_ARG naming %s, got status %d: %s\n", what, name, (int)st, sx_last_error());
                failed++;
                continue;
            }
            if (verbose) printf("ok   %s: %s\n", what, sx_last_error());
            st = run_bad_ids(s, g, ops[i].op, ops[i].dt, 5, seed); /* the error must not stick */
            if (st != SX_OK) {
                printf("FAIL %s: the next valid graph failed: %s\n", what, sx_last_error());
                failed++;
                continue;
            }
            (*passed)++;
        }
    }
    return failed;
}

/* MUL_MAT_ID: the same per output [N, k, R] (inputs contiguous, as built) */
static double *matmul_id_scale(sx_tensor *node) {
    const sx_tensor *w = node->src[0], *x = node->src[1], *ids = node->src[2];
    const int64_t K = w->ne[0], N = w->ne[1], k = ids->ne[0], R = ids->ne[1];
    double *sc = calloc((size_t)(N * k * R), sizeof(double));
    float *wr = malloc(sizeof(float) * (size_t)K), *xf = malloc(sx_tensor_nbytes(x));
    void *wraw = malloc(sx_tensor_nbytes(w));
    int32_t *iv = malloc(sx_tensor_nbytes(ids));
    if (sx_tensor_read(w, wraw, sx_tensor_nbytes(w)) == SX_OK && sx_tensor_read(x, xf, sx_tensor_nbytes(x)) == SX_OK &&
        sx_tensor_read(ids, iv, sx_tensor_nbytes(ids)) == SX_OK)
        for (int64_t r = 0; r < R; r++)
            for (int64_t j = 0; j < k; j++) {
                const float *xc = xf + (r * x->ne[1] + (x->ne[1] == 1 ? 0 : j)) * K;
                for (int64_t n = 0; n < N; n++) {
                    sx_dtype_dequantize_row(w->dtype, (char *)wraw + (size_t)n * w->nb[1] + (size_t)iv[r * k + j] * w->nb[2], wr, K);
                    double acc = 0;
                    for (int64_t i = 0; i < K; i++) acc += fabs((double)wr[i] * xc[i]);
                    sc[(r * k + j) * N + n] = acc;
                }
            }
    free(wr), free(xf), free(wraw), free(iv);
    return sc;
}

/* sum_k |w_k x_k| per matmul output, from the reference graph's inputs */
static double *matmul_scale(sx_tensor *node) {
    if (node->op == SX_OP_MUL_MAT_ID) return matmul_id_scale(node);
    const sx_tensor *w = node->src[0], *x = node->src[1];
    const int64_t K = w->ne[0], N = w->ne[1], M = x->ne[1];
    double *sc = calloc((size_t)(N * M), sizeof(double));
    float *wr = malloc(sizeof(float) * (size_t)K), *xr = malloc(sizeof(float) * (size_t)K);
    void *raw = malloc(sx_tensor_nbytes(w) + sx_tensor_nbytes(x));
    for (int64_t n = 0; n < N; n++) {
        if (sx_tensor_read(w, raw, sx_tensor_nbytes(w)) != SX_OK) break;
        sx_dtype_dequantize_row(w->dtype, (char *)raw + (size_t)n * w->nb[1], wr, K);
        for (int64_t m = 0; m < M; m++) {
            /* x may be a strided view: read its root and index */
            const sx_tensor *xr_root = x->view_src ? x->view_src : x;
            if (sx_tensor_read(xr_root, raw, sx_tensor_nbytes(xr_root)) != SX_OK) break;
            memcpy(xr, (char *)raw + (x->view_src ? x->view_offs : 0) + (size_t)m * x->nb[1], sizeof(float) * (size_t)K);
            double acc = 0;
            for (int64_t k = 0; k < K; k++) acc += fabs((double)wr[k] * xr[k]);
            sc[m * N + n] = acc;
        }
    }
    free(wr), free(xr), free(raw);
    return sc;
}

static bool in_xfail(const xfail_entry *xf, int n_xf, const tcase *tc) {
    for (int i = 0; i < n_xf; i++)
        if (!strcmp(xf[i].op, sx_op_name(tc->op)) && (!strcmp(xf[i].dtype, "*") || !strcmp(xf[i].dtype, sx_dtype_name(tc->dt)))) return true;
    return false;
}

static int load_xfail(const char *path, xfail_entry **out) {
    *out = NULL;
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) return 0;
    int n = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char op[64], dt[32];
        if (sscanf(line, "%63s %31s", op, dt) != 2) continue;
        *out = realloc(*out, sizeof(xfail_entry) * (size_t)(n + 1));
        (*out)[n].op = strdup(op);
        (*out)[n].dtype = strdup(dt);
        n++;
    }
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_ops BACKEND [--full] [--seed N] [--op NAME] [--dtype NAME] [--xfail FILE] [-v]\n");
        return 2;
    }
    const char *backend = argv[1], *only = NULL, *xfail_path = NULL, *only_dt = NULL;
    bool full = getenv("SPECEXIT_TEST_FULL") != NULL, verbose = false;
    uint64_t seed = 20261128;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--full")) full = true;
        else if (!strcmp(argv[i], "-v")) verbose = true;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--op") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) only_dt = argv[++i]; /* cases of that dtype only (e.g. the slow CUDA emulation) */
        else if (!strcmp(argv[i], "--xfail") && i + 1 < argc) xfail_path = argv[++i];
        else {
            fprintf(stderr, "unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    sx_device *ref = NULL, *dev = NULL;
    sx_device_options o;
    sx_device_options_init(&o);
    o.n_threads = 2;
    sx_status st = sx_device_open_by_name("cpu-ref", &o, &ref);
    if (st != SX_OK) {
        fprintf(stderr, "cannot open the reference: %s\n", sx_last_error());
        return 1;
    }
    st = sx_device_open_by_name(backend, &o, &dev);
    if (st != SX_OK) {
        printf("SKIP: backend %s unavailable: %s\n", backend, sx_last_error());
        sx_device_close(ref);
        return 77;
    }
    printf("op conformance: %s (%s) vs cpu-ref, seed %llu, %s matrix\n", backend, dev->info.name, (unsigned long long)seed, full ? "full" : "quick");
    xfail_entry *xf;
    const int n_xf = load_xfail(xfail_path, &xf);
    sx_sched *s_ref, *s_dev;
    sx_graph *g_ref, *g_dev;
    if (sx_sched_create(&ref, 1, &s_ref) != SX_OK || sx_sched_create(&dev, 1, &s_dev) != SX_OK || sx_graph_create(64, &g_ref) != SX_OK ||
        sx_graph_create(64, &g_dev) != SX_OK) {
        fprintf(stderr, "setup failed: %s\n", sx_last_error());
        return 1;
    }
    sx_sched_set_guard(s_ref, 64);
    sx_sched_set_guard(s_dev, 64);

    caselist cases = {0};
    make_cases(&cases, full);
    bool covered[SX_OP_COUNT] = {false};
    int passed = 0, failed = 0, xfailed = 0;
    for (int i = 0; i < cases.n; i++) {
        const tcase *tc = &cases.v[i];
        if ((only && strcmp(only, sx_op_name(tc->op))) || (only_dt && strcmp(only_dt, sx_dtype_name(tc->dt)))) continue;
        covered[tc->op] = true;
        const uint64_t case_seed = seed * 1000003u + (uint64_t)i;
        float *a = NULL, *b = NULL;
        int64_t na = 0, nb_ = 0;
        sx_tensor *node_ref, *node_dev;
        /* a quantized cache's bytes too: values hide the codes of a zero-scale block */
        const bool bytes = tc->op == SX_OP_SET_ROWS && sx_dtype_get(tc->dt)->quantized;
        void *raw_a = NULL, *raw_b = NULL;
        st = run_case(s_ref, g_ref, tc, case_seed, &a, &na, &node_ref, bytes ? &raw_a : NULL);
        if (st != SX_OK) {
            printf("FAIL %s: reference failed: %s (seed %llu, case %d)\n", describe(tc), sx_last_error(), (unsigned long long)seed, i);
            failed++;
            free(a);
            continue;
        }
        const bool expect_fail = in_xfail(xf, n_xf, tc);
        st = run_case(s_dev, g_dev, tc, case_seed, &b, &nb_, &node_dev, bytes ? &raw_b : NULL);
        bool ok = st == SX_OK && na == nb_;
        const bool bytes_differ = ok && bytes && memcmp(raw_a, raw_b, sx_tensor_nbytes(node_ref));
        free(raw_a), free(raw_b);
        int64_t worst = -1;
        double worst_err = 0;
        if (ok) {
            const tol t = tolerance(tc);
            double *scale = t.matmul_scale ? matmul_scale(node_ref) : NULL;
            for (int64_t k = 0; k < na; k++) {
                const double ref_v = a[k], got = b[k];
                const double sc = scale ? scale[k] : fabs(ref_v);
                const double err = fabs(got - ref_v);
                const bool same_nonfinite = !isfinite(ref_v) && ref_v == got;
                if ((isnan(got) || err > t.atol + t.rtol * sc) && !same_nonfinite) {
                    if (worst < 0 || err > worst_err) worst = k, worst_err = err;
                }
            }
            free(scale);
            ok = worst < 0 && !bytes_differ;
        }
        if (ok && expect_fail) {
            printf("FAIL %s: passes but is listed as an expected failure (remove it from %s)\n", describe(tc), xfail_path);
            failed++;
        } else if (ok) {
            passed++;
            if (verbose) printf("ok   %s\n", describe(tc));
        } else if (expect_fail) {
            xfailed++;
            if (verbose) printf("xfail %s\n", describe(tc));
        } else {
            failed++;
            if (st != SX_OK) printf("FAIL %s: %s (seed %llu, case %d)\n", describe(tc), sx_last_error(), (unsigned long long)seed, i);
            else if (worst < 0) printf("FAIL %s: the values agree, the bytes differ (seed %llu, case %d)\n", describe(tc), (unsigned long long)seed, i);
            else
                printf("FAIL %s: element %lld: got %.9g want %.9g (|err| %.3g) (seed %llu, case %d)\n", describe(tc), (long long)worst,
                       b[worst], a[worst], worst_err, (unsigned long long)seed, i);
        }
        free(a), free(b);
    }
    failed += check_bad_ids(s_dev, g_dev, only, seed, verbose, &passed);
    failed += check_kv_move(s_dev, g_dev, only, only_dt, seed, verbose, &passed);
    for (int op = 1; op < SX_OP_COUNT; op++)
        if (!covered[op] && !only && !only_dt) {
            printf("FAIL op %s has no conformance case\n", sx_op_name((sx_op)op));
            failed++;
        }
    printf("%s: %d passed, %d failed, %d expected failures\n", backend, passed, failed, xfailed);
    free(cases.v);
    sx_graph_destroy(g_ref), sx_graph_destroy(g_dev);
    sx_sched_destroy(s_ref), sx_sched_destroy(s_dev);
    sx_device_close(ref), sx_device_close(dev);
    return failed ? 1 : 0;
}
