/* backends/cpu/cpu_ops_fast.c — kernels of the fast CPU mode: the same ops as
 * the reference (cpu_ops_ref.c) on the thread pool with SIMD inner loops
 * (cpu_simd*.c). Layouts outside the fast paths fall back to the reference
 * kernel, so results never depend on which path ran, only their rounding.
 * Tested by tests/test_ops.c (backend "cpu" vs "cpu-ref"). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_internal.h"

static inline sx_threadpool *pool_of(sx_device *dev) { return ((sx_cpu_device *)dev)->pool; }

/* Ops with less work than this (elements touched, or multiply-adds) run on
 * the calling thread: a fork/join across the pool costs a few microseconds
 * (waking, cache lines moving between cores, a late worker), more than the
 * op itself. The split of the work never changes a result. */
#define SX_CPU_PAR_MIN_WORK 16384

static void run(sx_device *dev, sx_parallel_fn fn, void *ctx, int64_t work) {
    if (work < SX_CPU_PAR_MIN_WORK) fn(ctx, 0, 1);
    else sx_threadpool_run(pool_of(dev), fn, ctx);
}

static inline void split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    const int64_t per = (n + nth - 1) / nth;
    *lo = per * ith < n ? per * ith : n;
    *hi = *lo + per < n ? *lo + per : n;
}

/* ---- matmul: weights streamed once per row block, 8-bit activations ---- */
static sx_status fast_MATMUL(sx_device *dev, sx_tensor *node) {
    const sx_tensor *w = node->src[0], *x = node->src[1];
    if (x->nb[1] % 4 || node->nb[0] != 4) return sx_cpu_ref_MATMUL(dev, node);
    return sx_cpu_matmul(pool_of(dev), w->dtype, sx_cpu_data(w), w->nb[1], w->ne[0], w->ne[1], sx_cpu_data(x),
                         (int64_t)(x->nb[1] / 4), x->ne[1], sx_cpu_data(node), (int64_t)(node->nb[1] / 4));
}

/* ---- mixture of experts: each expert's picks gathered into one matmul ----
 * The columns routed to one expert run as one MATMUL of at most
 * SX_CPU_INVARIANT_M columns, so every column is computed exactly as alone
 * (a verification batch still reproduces decoding bit for bit). With at
 * least two of these matmuls per thread they are dealt to the threads, each
 * matmul on one thread (a decode step's 8 picks cost one fork/join, not 8);
 * else they run one after the other, each over the pool. Either way a
 * column's result is the same. */
typedef struct {
    const sx_tensor *w, *x;
    sx_tensor *node;
    const int32_t *pick;   /* pick indices p = r * k + j, grouped by expert */
    const int64_t (*chunk)[3]; /* (expert, first pick, count) */
    int64_t n_chunks, k;
    sx_threadpool *tp;     /* for one chunk at a time; NULL inside a parallel run */
    sx_status *st;         /* [threads] */
} moe_ctx;

static sx_status moe_chunk(const moe_ctx *c, const int64_t *ch, sx_threadpool *tp, float *X, float *Y) {
    const sx_tensor *w = c->w, *x = c->x;
    const int64_t K = w->ne[0], N = w->ne[1], e = ch[0], c0 = ch[1], m = ch[2];
    for (int64_t i = 0; i < m; i++) {
        const int64_t p = c->pick[c0 + i], j = p % c->k, r = p / c->k;
        memcpy(X + i * K, (const char *)sx_cpu_data(x) + (size_t)(x->ne[1] == 1 ? 0 : j) * x->nb[1] + (size_t)r * x->nb[2], sizeof(float) * (size_t)K);
    }
    SX_RETURN_IF_ERROR(sx_cpu_matmul(tp, w->dtype, (const char *)sx_cpu_data(w) + (size_t)e * w->nb[2], w->nb[1], K, N, X, K, m, Y, N));
    for (int64_t i = 0; i < m; i++) {
        const int64_t p = c->pick[c0 + i], j = p % c->k, r = p / c->k;
        memcpy((char *)sx_cpu_data(c->node) + (size_t)j * c->node->nb[1] + (size_t)r * c->node->nb[2], Y + i * N, sizeof(float) * (size_t)N);
    }
    return SX_OK;
}

static void moe_run(void *p, int ith, int nth) {
    moe_ctx *c = p;
    const int64_t K = c->w->ne[0], N = c->w->ne[1];
    float *X = malloc(sizeof(float) * (size_t)(K * SX_CPU_INVARIANT_M)), *Y = malloc(sizeof(float) * (size_t)(N * SX_CPU_INVARIANT_M));
    sx_status st = X && Y ? SX_OK : sx_set_error(SX_ERR_OUT_OF_MEMORY, "mul_mat_id: scratch");
    for (int64_t i = ith; i < c->n_chunks && st == SX_OK; i += nth) st = moe_chunk(c, c->chunk[i], c->tp, X, Y);
    c->st[ith] = st;
    free(X), free(Y);
}

static sx_status fast_MUL_MAT_ID(sx_device *dev, sx_tensor *node) {
    const sx_tensor *w = node->src[0], *x = node->src[1], *ids = node->src[2];
    const int64_t E = w->ne[2], k = ids->ne[0], R = ids->ne[1], P = k * R;
    if (x->nb[1] % 4 || x->nb[2] % 4 || node->nb[0] != 4) return sx_cpu_ref_MUL_MAT_ID(dev, node);
    int32_t *pick = malloc(sizeof(int32_t) * (size_t)P);
    int64_t *start = calloc((size_t)E + 1, sizeof *start);
    int64_t (*chunk)[3] = malloc(sizeof *chunk * (size_t)(P + E));
    sx_status st = pick && start && chunk ? SX_OK : sx_set_error(SX_ERR_OUT_OF_MEMORY, "mul_mat_id: scratch");
    const char *ib = sx_cpu_data(ids);
#define ID(p) (*(const int32_t *)(ib + (size_t)((p) % k) * ids->nb[0] + (size_t)((p) / k) * ids->nb[1]))
    for (int64_t p = 0; p < P && st == SX_OK; p++) { /* counting sort by expert, picks in order within each */
        const int32_t e = ID(p);
        if (e < 0 || e >= E) st = sx_set_error(SX_ERR_INVALID_ARG, "mul_mat_id: expert %d out of range [0, %lld)", e, (long long)E);
        else start[e + 1]++;
    }
    for (int64_t e = 0; e < E && st == SX_OK; e++) start[e + 1] += start[e];
    int64_t n_chunks = 0;
    for (int64_t e = 0; e < E && st == SX_OK; e++)
        for (int64_t c0 = start[e]; c0 < start[e + 1]; c0 += SX_CPU_INVARIANT_M) {
            chunk[n_chunks][0] = e, chunk[n_chunks][1] = c0;
            chunk[n_chunks++][2] = start[e + 1] - c0 < SX_CPU_INVARIANT_M ? start[e + 1] - c0 : SX_CPU_INVARIANT_M;
        }
    for (int64_t p = 0; p < P && st == SX_OK; p++) pick[start[ID(p)]++] = (int32_t)p;
#undef ID
    if (st == SX_OK) {
        sx_threadpool *tp = pool_of(dev);
        const int nth = sx_threadpool_size(tp);
        sx_status sts[64];
        moe_ctx c = {.w = w, .x = x, .node = node, .pick = pick, .chunk = (const int64_t(*)[3])chunk, .n_chunks = n_chunks, .k = k, .st = sts};
        if (nth <= 64 && n_chunks >= 2 * nth) { /* enough experts to deal out: one matmul per thread at a time */
            sx_threadpool_run(tp, moe_run, &c);
            for (int t = 0; t < nth && st == SX_OK; t++) st = sts[t];
        } else {
            c.tp = tp;
            moe_run(&c, 0, 1);
            st = sts[0];
        }
    }
    free(pick), free(start), free(chunk);
    return st;
}

/* ---- rms_norm over contiguous rows ---- */
typedef struct { const sx_tensor *x, *w; sx_tensor *y; } norm_ctx;

static void norm_rows(void *p, int ith, int nth) {
    norm_ctx *c = p;
    const int64_t K = c->x->ne[0], rows = sx_tensor_nrows(c->x);
    const float eps = c->y->params.norm.eps, *w = sx_cpu_data(c->w);
    int64_t lo, hi;
    split(rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const int64_t i1 = r % c->x->ne[1], i2 = (r / c->x->ne[1]) % c->x->ne[2], i3 = r / (c->x->ne[1] * c->x->ne[2]);
        const float *xr = (const float *)((const char *)sx_cpu_data(c->x) + i1 * c->x->nb[1] + i2 * c->x->nb[2] + i3 * c->x->nb[3]);
        float *yr = (float *)((char *)sx_cpu_data(c->y) + i1 * c->y->nb[1] + i2 * c->y->nb[2] + i3 * c->y->nb[3]);
        const float ss = sx_cpu_vec_dot_f32(K, xr, xr);
        const float scale = 1.0f / sqrtf(ss / (float)K + eps);
        for (int64_t k = 0; k < K; k++) yr[k] = xr[k] * scale * w[k];
    }
}

static sx_status fast_RMS_NORM(sx_device *dev, sx_tensor *node) {
    norm_ctx c = {node->src[0], node->src[1], node};
    if (c.x->nb[0] != 4 || c.w->nb[0] != 4) return sx_cpu_ref_RMS_NORM(dev, node);
    run(dev, norm_rows, &c, sx_tensor_nelements(c.x));
    return SX_OK;
}

/* ---- elementwise on contiguous same-shape tensors ---- */
typedef enum { EW_ADD, EW_MUL, EW_SILU_MUL } ew_kind;
typedef struct { const float *a, *b; float *y; int64_t n; ew_kind kind; const sx_cpu_kernels *kt; } ew_ctx;

static void ew_run(void *p, int ith, int nth) {
    ew_ctx *c = p;
    int64_t lo, hi;
    split(c->n, ith, nth, &lo, &hi);
    switch (c->kind) {
    case EW_ADD: for (int64_t i = lo; i < hi; i++) c->y[i] = c->a[i] + c->b[i]; break;
    case EW_MUL: for (int64_t i = lo; i < hi; i++) c->y[i] = c->a[i] * c->b[i]; break;
    case EW_SILU_MUL: c->kt->silu_mul(hi - lo, c->a + lo, c->b + lo, c->y + lo); break;
    }
}

static bool same_contiguous(const sx_tensor *a, const sx_tensor *b) {
    for (int i = 0; i < SX_MAX_DIMS; i++)
        if (a->ne[i] != b->ne[i]) return false;
    return sx_tensor_is_contiguous(a) && sx_tensor_is_contiguous(b);
}

static sx_status ew(sx_device *dev, sx_tensor *node, ew_kind kind, sx_kernel_fn fallback) {
    if (!same_contiguous(node->src[0], node->src[1])) return fallback(dev, node);
    ew_ctx c = {sx_cpu_data(node->src[0]), sx_cpu_data(node->src[1]), sx_cpu_data(node), sx_tensor_nelements(node), kind,
                sx_cpu_kernels_active()};
    run(dev, ew_run, &c, kind == EW_SILU_MUL ? 8 * c.n : c.n); /* expf ~ 8 adds */
    return SX_OK;
}
/* ADD of same-shape tensors whose rows are contiguous but strided (views,
 * e.g. the picks of a mixture of experts being summed) */
typedef struct { const sx_tensor *a, *b; sx_tensor *y; } rowadd_ctx;

static inline const float *row_ptr(const sx_tensor *t, int64_t r) {
    const int64_t i1 = r % t->ne[1], i2 = (r / t->ne[1]) % t->ne[2], i3 = r / (t->ne[1] * t->ne[2]);
    return (const float *)((const char *)sx_cpu_data(t) + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3]);
}

static void rowadd_run(void *p, int ith, int nth) {
    rowadd_ctx *c = p;
    int64_t lo, hi;
    split(sx_tensor_nrows(c->y), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *a = row_ptr(c->a, r), *b = row_ptr(c->b, r);
        float *y = (float *)row_ptr(c->y, r);
        for (int64_t i = 0; i < c->y->ne[0]; i++) y[i] = a[i] + b[i];
    }
}

static sx_status fast_ADD(sx_device *dev, sx_tensor *node) {
    const sx_tensor *a = node->src[0], *b = node->src[1];
    bool same = a->nb[0] == 4 && b->nb[0] == 4 && node->nb[0] == 4;
    for (int i = 0; i < SX_MAX_DIMS && same; i++) same = a->ne[i] == b->ne[i] && a->ne[i] == node->ne[i];
    if (same && !same_contiguous(a, b)) {
        rowadd_ctx c = {a, b, node};
        run(dev, rowadd_run, &c, sx_tensor_nelements(node));
        return SX_OK;
    }
    return ew(dev, node, EW_ADD, sx_cpu_ref_ADD);
}
/* MUL by one value per row of a (b [1, ...], e.g. a mixture of experts'
 * pick weights): contiguous a and b, the same float product as the reference */
typedef struct { const float *a, *b; float *y; int64_t ne0, rows; } rowscale_ctx;

static void rowscale_run(void *p, int ith, int nth) {
    rowscale_ctx *c = p;
    int64_t lo, hi;
    split(c->rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++)
        for (int64_t i = 0; i < c->ne0; i++) c->y[r * c->ne0 + i] = c->a[r * c->ne0 + i] * c->b[r];
}

static sx_status fast_MUL(sx_device *dev, sx_tensor *node) {
    const sx_tensor *a = node->src[0], *b = node->src[1];
    if (b->ne[0] == 1 && a->ne[0] > 1 && b->ne[1] == a->ne[1] && b->ne[2] == a->ne[2] && b->ne[3] == a->ne[3] && sx_tensor_is_contiguous(a) &&
        sx_tensor_is_contiguous(b) && sx_tensor_is_contiguous(node)) {
        rowscale_ctx c = {sx_cpu_data(a), sx_cpu_data(b), sx_cpu_data(node), a->ne[0], sx_tensor_nrows(a)};
        run(dev, rowscale_run, &c, sx_tensor_nelements(a));
        return SX_OK;
    }
    return ew(dev, node, EW_MUL, sx_cpu_ref_MUL);
}
static sx_status fast_SILU_MUL(sx_device *dev, sx_tensor *node) { return ew(dev, node, EW_SILU_MUL, sx_cpu_ref_SILU_MUL); }

/* ---- rope: cos/sin per (position, pair) cached on the device ----
 * Every layer's q and k rope of a step share the positions, so the angles of
 * a position are computed once (the first call that meets it) and kept per
 * rope configuration; freq_base^(-2i/n_dims) is computed once per
 * configuration. theta is evaluated with the same double operations as
 * before the cache, so a cached value equals a fresh one bit for bit. */
#define SX_ROPE_CACHE_MAX_BYTES (32u << 20) /* per configuration; later positions are computed per call */

static bool rope_key_eq(const sx_cpu_rope_cache *e, const sx_params_rope *pr, const float *ff, int half) {
    return e->half == half && e->n_dims == pr->n_dims && e->freq_base == pr->freq_base && e->freq_scale == pr->freq_scale &&
           e->has_ff == (ff != NULL) && (!ff || memcmp(e->ff, ff, sizeof(float) * (size_t)half) == 0);
}

/* The cache entry for this configuration (found, or the least recently used
 * one reset for it); NULL when it cannot be allocated. */
static sx_cpu_rope_cache *rope_entry(sx_cpu_device *d, const sx_params_rope *pr, const float *ff, int half) {
    sx_cpu_rope_cache *e = NULL;
    d->rope_clock++;
    for (int i = 0; i < SX_CPU_ROPE_CACHES; i++)
        if (rope_key_eq(&d->rope[i], pr, ff, half)) {
            e = &d->rope[i];
            e->used = d->rope_clock;
            return e;
        }
    e = &d->rope[0];
    for (int i = 1; i < SX_CPU_ROPE_CACHES; i++)
        if (d->rope[i].used < e->used) e = &d->rope[i];
    e->half = 0; /* invalid until filled */
    double *inv = realloc(e->inv, sizeof(double) * (size_t)half);
    float *ffc = realloc(e->ff, sizeof(float) * (size_t)half);
    if (inv) e->inv = inv;
    if (ffc) e->ff = ffc;
    if (!inv || !ffc) return NULL;
    e->n_dims = pr->n_dims;
    e->freq_base = pr->freq_base;
    e->freq_scale = pr->freq_scale;
    e->has_ff = ff != NULL;
    if (ff) memcpy(e->ff, ff, sizeof(float) * (size_t)half);
    for (int i = 0; i < half; i++) e->inv[i] = pow((double)pr->freq_base, -2.0 * i / pr->n_dims);
    e->n_pos = 0; /* rows of another size: regrown (and cleared) on lookup */
    e->half = half;
    e->used = d->rope_clock;
    return e;
}

/* cs[2i] = cos, cs[2i + 1] = sin of pair i's angle at position p. */
static void rope_angles(const sx_cpu_rope_cache *e, int32_t p, float *cs) {
    for (int i = 0; i < e->half; i++) {
        const double theta = (double)p * e->freq_scale * e->inv[i] / (e->has_ff ? (double)e->ff[i] : 1.0);
        cs[2 * i] = (float)cos(theta);
        cs[2 * i + 1] = (float)sin(theta);
    }
}

/* Angles of position p from the cache (filled on a miss), or computed into
 * tmp past the cache's size limit. */
static const float *rope_lookup(sx_cpu_rope_cache *e, int32_t p, float *tmp) {
    const size_t row = sizeof(float) * 2 * (size_t)e->half;
    if (p >= 0 && p >= e->n_pos && (size_t)p < SX_ROPE_CACHE_MAX_BYTES / row) {
        int64_t n = e->n_pos ? e->n_pos : 256;
        while (n <= p) n *= 2;
        if ((size_t)n > SX_ROPE_CACHE_MAX_BYTES / row) n = (int64_t)(SX_ROPE_CACHE_MAX_BYTES / row);
        float *cs = realloc(e->cs, row * (size_t)n);
        if (cs) e->cs = cs;
        uint8_t *ready = cs ? realloc(e->ready, (size_t)n) : NULL;
        if (ready) {
            e->ready = ready;
            memset(ready + e->n_pos, 0, (size_t)(n - e->n_pos));
            e->n_pos = n;
        }
    }
    if (p < 0 || p >= e->n_pos) {
        rope_angles(e, p, tmp);
        return tmp;
    }
    float *cs = e->cs + (size_t)p * 2 * (size_t)e->half;
    if (!e->ready[p]) {
        rope_angles(e, p, cs);
        e->ready[p] = 1;
    }
    return cs;
}

typedef struct { const sx_tensor *x; sx_tensor *y; const float *cs; /* [T][half][2] */ } rope_ctx;

static void rope_run(void *p, int ith, int nth) {
    rope_ctx *c = p;
    const sx_tensor *x = c->x;
    const sx_params_rope *pr = &c->y->params.rope;
    const int half = pr->n_dims / 2;
    const bool neox = pr->mode == SX_ROPE_NEOX;
    const int64_t nh = x->ne[1], n_rows = x->ne[2] * x->ne[3] * nh;
    int64_t lo, hi;
    split(n_rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const int64_t h = r % nh, t = (r / nh) % x->ne[2], i3 = r / (nh * x->ne[2]);
        const float *cs = c->cs + (size_t)t * 2 * (size_t)half;
        const float *xr = (const float *)((const char *)sx_cpu_data(x) + h * x->nb[1] + t * x->nb[2] + i3 * x->nb[3]);
        float *yr = (float *)((char *)sx_cpu_data(c->y) + h * c->y->nb[1] + t * c->y->nb[2] + i3 * c->y->nb[3]);
        for (int64_t i0 = pr->n_dims; i0 < x->ne[0]; i0++) yr[i0] = xr[i0];
        if (neox) {
            for (int i = 0; i < half; i++) {
                const float x0 = xr[i], x1 = xr[i + half];
                yr[i] = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
                yr[i + half] = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
            }
        } else {
            for (int i = 0; i < half; i++) {
                const float x0 = xr[2 * i], x1 = xr[2 * i + 1];
                yr[2 * i] = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
                yr[2 * i + 1] = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
            }
        }
    }
}

static sx_status fast_ROPE(sx_device *dev, sx_tensor *node) {
    sx_cpu_device *d = (sx_cpu_device *)dev;
    const sx_tensor *x = node->src[0], *pos = node->src[1], *ff = node->src[2];
    const sx_params_rope *pr = &node->params.rope;
    const int half = pr->n_dims / 2;
    if (x->nb[0] != 4 || pos->nb[0] != 4 || (ff && ff->nb[0] != 4) || half < 1) return sx_cpu_ref_ROPE(dev, node);
    const int64_t T = x->ne[2];
    float *tab = sx_cpu_scratch(d, (size_t)(T + 1) * 2 * (size_t)half);
    sx_cpu_rope_cache *e = tab ? rope_entry(d, pr, ff ? sx_cpu_data(ff) : NULL, half) : NULL;
    if (!e) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "rope: angle tables");
    const int32_t *p = sx_cpu_data(pos);
    float *tmp = tab + (size_t)T * 2 * (size_t)half;
    for (int64_t t = 0; t < T; t++) memcpy(tab + (size_t)t * 2 * (size_t)half, rope_lookup(e, p[t], tmp), sizeof(float) * 2 * (size_t)half);
    rope_ctx c = {x, node, tab};
    run(dev, rope_run, &c, sx_tensor_nelements(x));
    return SX_OK;
}

/* ---- attention: one (token, kv head) per task, online over the kv slots ----
 * f16 K: the dots of the query heads sharing a kv head go through the f16
 * matmul tile (4 keys x up to 4 heads per call, each K row converted once
 * for the group); per (key, head) the same bits whatever the batch, since
 * the group is fixed by the model and the keys are always blocked from slot
 * 0. Hidden keys are computed too, then overwritten. K/V are read at
 * kdata/vdata with strides k_nb1/k_nb2 (kv head, slot): the tensors' own,
 * or f32 copies of q8_0 / q4_0 ones (below), then with kdt F32. */
typedef struct {
    const sx_tensor *q, *k, *v, *mask;
    sx_tensor *y;
    float *scratch;
    int64_t stride;
    const sx_cpu_kernels *kt;
    const char *kdata, *vdata;
    size_t k_nb1, k_nb2, v_nb1, v_nb2;
    sx_dtype kdt;
} attn_ctx;

/* q8_0 or q4_0 K/V (a quantized KV cache): with few queries (decode) rows are
 * dequantized ATTN_QTILE keys at a time into the task's scratch (L1); with
 * many (prefill, verify trees) the views are dequantized once per call into
 * f32 ([nkv][n_kv][d] each, in parallel) and the f32 path runs on them.
 * Either way each key's values and each dot are the same float operations,
 * so a row's bits do not depend on the batch. */
#define ATTN_QTILE 64
#define ATTN_Q8_WHOLE_T 4 /* from this many queries on, dequantize the whole views */
static inline void deq_q8_0_row(const sx_block_q8_0 *b, int64_t d, float *y) {
    for (int64_t ib = 0; ib < d / SX_QK; ib++) { /* as sx_dtype_dequantize_row, in a loop the compiler vectorizes */
        const float s = sx_fp16_to_fp32(b[ib].d);
        for (int i = 0; i < SX_QK; i++) y[ib * SX_QK + i] = s * (float)b[ib].qs[i];
    }
}

static inline void deq_q4_0_row(const sx_block_q4_0 *b, int64_t d, float *y) {
    for (int64_t ib = 0; ib < d / SX_QK; ib++) { /* as sx_dtype_dequantize_row: low nibbles are elements 0..15 */
        const float s = sx_fp16_to_fp32(b[ib].d);
        float *o = y + ib * SX_QK;
        for (int i = 0; i < SX_QK / 2; i++) o[i] = s * (float)((b[ib].qs[i] & 0xF) - 8); /* two loops of contiguous stores vectorize */
        for (int i = 0; i < SX_QK / 2; i++) o[i + SX_QK / 2] = s * (float)((b[ib].qs[i] >> 4) - 8);
    }
}

/* rows j0..j0+n of a q8_0 or q4_0 head (row j at base + j * stride) as floats, [n][d] */
static void deq_kv_rows(sx_dtype dt, const char *base, size_t stride, int64_t j0, int64_t n, int64_t d, float *out) {
    for (int64_t j = 0; j < n; j++) {
        const char *row = base + (size_t)(j0 + j) * stride;
        if (dt == SX_DTYPE_Q8_0) deq_q8_0_row((const sx_block_q8_0 *)row, d, out + j * d);
        else deq_q4_0_row((const sx_block_q4_0 *)row, d, out + j * d);
    }
}

/* keys [0, lim) are the ones query t may see (a causal row sees none past
 * its own slot; with a mask, any): the quantized tiles stop there */
static inline int64_t attn_key_lim(const attn_ctx *c, int64_t t, int64_t n_kv) {
    const int64_t n_past = c->y->params.attn.n_past;
    return !c->mask && n_past + t + 1 < n_kv ? n_past + t + 1 : n_kv;
}

typedef struct { const sx_tensor *src; float *dst; } attn_deq_ctx;
static void attn_deq_run(void *p, int ith, int nth) {
    const attn_deq_ctx *c = p;
    const sx_tensor *t = c->src;
    const int64_t d = t->ne[0], nkv = t->ne[1], n_kv = t->ne[2];
    int64_t lo, hi;
    split(nkv * n_kv, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++)
        deq_kv_rows(t->dtype, (const char *)sx_cpu_data(t) + (r / n_kv) * t->nb[1], t->nb[2], r % n_kv, 1, d, c->dst + r * d);
}

/* scores of n key rows of type dt (f16 or f32; row j at keys + j * ks bytes)
 * against the group's query heads, into sc[g * ld + j]: the tile kernel (4
 * keys x up to 4 heads per call, each K row converted once for the group,
 * blocked from the first key), else (f32 without one) a dot per pair.
 * Callers pass tiles that start at multiples of 4 keys, so a key's score
 * does not depend on how the keys were cut. */
static void attn_dots_tiles(const attn_ctx *c, sx_dtype dt, const char *q0, int64_t h0, int64_t group, const char *keys, size_t ks, int64_t n,
                            float *sc, int64_t ld) {
    const sx_tensor *q = c->q;
    const int64_t d = q->ne[0];
    const sx_cpu_gemm_fn gemm = c->kt->gemm[dt];
    for (int64_t g = 0; g < group; g += SX_CPU_TILE_M) {
        const int nc = group - g < SX_CPU_TILE_M ? (int)(group - g) : SX_CPU_TILE_M;
        for (int64_t j = 0; j < n; j += SX_CPU_TILE_N) {
            const int nr = n - j < SX_CPU_TILE_N ? (int)(n - j) : SX_CPU_TILE_N;
            if (gemm) {
                gemm(d, keys + j * ks, ks, nr, q0 + (h0 + g) * q->nb[1], q->nb[1], nc, sc + g * ld + j, ld);
                continue;
            }
            for (int gg = 0; gg < nc; gg++)
                for (int r = 0; r < nr; r++)
                    sc[(g + gg) * ld + j + r] =
                        c->kt->vec_dot_f32(d, (const float *)(keys + (j + r) * ks), (const float *)(q0 + (h0 + g + gg) * q->nb[1]));
        }
    }
}

static void attn_dots(const attn_ctx *c, int64_t t, int64_t h0, int64_t group, const char *kb, float *sc, float *qbuf) {
    const sx_tensor *q = c->q, *k = c->k;
    const int64_t d = q->ne[0], n_kv = k->ne[2];
    const char *q0 = (const char *)sx_cpu_data(q) + t * q->nb[2];
    if (sx_dtype_get(c->kdt)->quantized) { /* keys a causal row cannot see are left out (their scores are overwritten) */
        const int64_t lim = attn_key_lim(c, t, n_kv);
        for (int64_t j0 = 0; j0 < lim; j0 += ATTN_QTILE) {
            const int64_t n = lim - j0 < ATTN_QTILE ? lim - j0 : ATTN_QTILE;
            deq_kv_rows(c->kdt, kb, c->k_nb2, j0, n, d, qbuf);
            attn_dots_tiles(c, SX_DTYPE_F32, q0, h0, group, (const char *)qbuf, sizeof(float) * (size_t)d, n, sc + j0, n_kv); /* as whole views */
        }
        return;
    }
    attn_dots_tiles(c, c->kdt, q0, h0, group, kb, c->k_nb2, n_kv, sc, n_kv); /* f16 (which has a tile kernel, or the reference ran) or f32 */
}

static void attn_run(void *p, int ith, int nth) {
    attn_ctx *c = p;
    const sx_tensor *q = c->q, *k = c->k;
    const int64_t d = q->ne[0], nh = q->ne[1], T = q->ne[2], n_kv = k->ne[2], nkv = k->ne[1];
    const int64_t group = nh / nkv, n_past = c->y->params.attn.n_past;
    const float scale = c->y->params.attn.scale;
    float *sc0 = c->scratch + (size_t)ith * (size_t)c->stride; /* [group][n_kv] scores, then weights */
    float *acc0 = sc0 + group * n_kv;                         /* [group][d] */
    float *sums = acc0 + group * d;                           /* [group] */
    float *tmp = sums + group;                                /* [n_kv + 16] for exp_sum */
    float *qbuf = tmp + n_kv + 16;                            /* [ATTN_QTILE][d] q8_0 / q4_0 rows (tile mode) */
    int64_t lo, hi;
    split(T * nkv, ith, nth, &lo, &hi);
    for (int64_t job = lo; job < hi; job++) {
        const int64_t t = job / nkv, kh = job % nkv;
        const char *kb = c->kdata + kh * c->k_nb1;
        const char *vb = c->vdata + kh * c->v_nb1;
        attn_dots(c, t, kh * group, group, kb, sc0, qbuf);
        const float *mrow = c->mask ? (const float *)((const char *)sx_cpu_data(c->mask) + t * c->mask->nb[1]) : NULL;
        const int64_t n_vis = n_past < n_kv ? n_past : n_kv;
        for (int64_t g = 0; g < group; g++) {
            float *sc = sc0 + g * n_kv;
            /* scale and hide: slots before n_past are visible to every query;
             * no calls in these loops, so mx stays in a register */
            float mx = -INFINITY;
            for (int64_t j = 0; j < n_vis; j++) {
                sc[j] = scale * sc[j];
                mx = sc[j] > mx ? sc[j] : mx;
            }
            for (int64_t j = n_vis; j < n_kv; j++) {
                const int64_t i = j - n_past;
                if (mrow ? mrow[i] == 0.0f : i <= t) {
                    sc[j] = scale * sc[j];
                    mx = sc[j] > mx ? sc[j] : mx;
                } else {
                    sc[j] = -INFINITY;
                }
            }
            sums[g] = c->kt->exp_sum(n_kv, sc, mx, tmp);
        }
        memset(acc0, 0, sizeof(float) * (size_t)(group * d));
        if (c->kdt == SX_DTYPE_F16) {
            for (int64_t g = 0; g < group; g += 4) /* each V row converted once for up to 4 heads */
                c->kt->vec_axpy_rows_f16(d, n_kv, group - g < 4 ? (int)(group - g) : 4, sc0 + g * n_kv, n_kv, (const uint16_t *)vb,
                                         c->v_nb2, acc0 + g * d, d);
        } else if (sx_dtype_get(c->kdt)->quantized) {
            const int64_t lim = attn_key_lim(c, t, n_kv); /* as in attn_dots */
            for (int64_t j0 = 0; j0 < lim; j0 += ATTN_QTILE) {
                const int64_t n = lim - j0 < ATTN_QTILE ? lim - j0 : ATTN_QTILE;
                deq_kv_rows(c->kdt, vb, c->v_nb2, j0, n, d, qbuf);
                for (int64_t g = 0; g < group; g += 4) /* as f32 V below: tiles of whole rows keep each head's sequence */
                    c->kt->vec_axpy_rows_f32(d, n, group - g < 4 ? (int)(group - g) : 4, sc0 + g * n_kv + j0, n_kv, qbuf,
                                             sizeof(float) * (size_t)d, acc0 + g * d, d);
            }
        } else {
            for (int64_t g = 0; g < group; g += 4)
                c->kt->vec_axpy_rows_f32(d, n_kv, group - g < 4 ? (int)(group - g) : 4, sc0 + g * n_kv, n_kv, (const float *)vb, c->v_nb2,
                                         acc0 + g * d, d);
        }
        for (int64_t g = 0; g < group; g++) {
            const int64_t h = kh * group + g;
            float *yr = (float *)((char *)sx_cpu_data(c->y) + h * c->y->nb[1] + t * c->y->nb[2]);
            const float inv = sums[g] > 0 ? 1.0f / sums[g] : 0.0f;
            for (int64_t cc = 0; cc < d; cc++) yr[cc] = acc0[g * d + cc] * inv;
        }
    }
}

static sx_status fast_ATTENTION(sx_device *dev, sx_tensor *node) {
    attn_ctx c = {.q = node->src[0], .k = node->src[1], .v = node->src[2], .mask = node->src[3], .y = node, .kt = sx_cpu_kernels_active()};
    if (c.q->nb[0] != 4 || c.k->nb[0] != (size_t)sx_dtype_get(c.k->dtype)->type_size || c.q->ne[1] % c.k->ne[1] ||
        (c.k->dtype == SX_DTYPE_F16 && !c.kt->gemm[SX_DTYPE_F16]))
        return sx_cpu_ref_ATTENTION(dev, node);
    const int nth = sx_threadpool_size(pool_of(dev));
    const int64_t d = c.q->ne[0], n_kv = c.k->ne[2], nkv = c.k->ne[1], group = c.q->ne[1] / nkv;
    const bool qkv = sx_dtype_get(c.k->dtype)->quantized, whole = qkv && c.q->ne[2] >= ATTN_Q8_WHOLE_T;
    const int64_t deq = whole ? 2 * nkv * n_kv * d : 0; /* f32 copies of q8_0 / q4_0 K and V */
    c.stride = ((group + 1) * n_kv + group * (d + 1) + 16 + (qkv && !whole ? ATTN_QTILE * d : 0) + 15) &
               ~(int64_t)15; /* scores, acc, sums, exp_sum's tmp, quantized tile */
    float *mem = sx_cpu_scratch((sx_cpu_device *)dev, (size_t)deq + (size_t)c.stride * (size_t)nth);
    if (!mem) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "attention: scratch");
    c.scratch = mem + deq;
    c.kdt = c.k->dtype;
    c.kdata = sx_cpu_data(c.k), c.vdata = sx_cpu_data(c.v);
    c.k_nb1 = c.k->nb[1], c.k_nb2 = c.k->nb[2], c.v_nb1 = c.v->nb[1], c.v_nb2 = c.v->nb[2];
    if (whole) {
        attn_deq_ctx dk = {c.k, mem}, dv = {c.v, mem + deq / 2};
        run(dev, attn_deq_run, &dk, nkv * n_kv * d);
        run(dev, attn_deq_run, &dv, nkv * n_kv * d);
        c.kdt = SX_DTYPE_F32;
        c.kdata = (const char *)mem, c.vdata = (const char *)(mem + deq / 2);
        c.k_nb1 = c.v_nb1 = sizeof(float) * (size_t)(n_kv * d);
        c.k_nb2 = c.v_nb2 = sizeof(float) * (size_t)d;
    }
    run(dev, attn_run, &c, c.q->ne[2] * c.q->ne[1] * n_kv * d);
    return SX_OK;
}

/* ---- data movement: rows copied whole, f32 <-> f16 through F16C ---- */

/* One contiguous row of n values from one dtype to another; false when the
 * pair has no fast path (the caller falls back to the reference kernel). */
static bool cvt_ok(sx_dtype from, sx_dtype to) {
    return (from == to && (from == SX_DTYPE_F32 || from == SX_DTYPE_F16 || from == SX_DTYPE_BF16 || from == SX_DTYPE_I32)) ||
           (from == SX_DTYPE_F32 && to == SX_DTYPE_F16) || (from == SX_DTYPE_F16 && to == SX_DTYPE_F32);
}
static void cvt_row(const sx_cpu_kernels *kt, sx_dtype from, sx_dtype to, int64_t n, const void *src, void *dst) {
    if (from == to) memcpy(dst, src, (size_t)n * sx_dtype_get(from)->type_size);
    else if (to == SX_DTYPE_F16) kt->fp32_to_fp16(n, src, dst);
    else kt->fp16_to_fp32(n, src, dst);
}
static inline bool row_dense(const sx_tensor *t) { return t->nb[0] == (size_t)sx_dtype_get(t->dtype)->type_size; }

static sx_status fast_GET_ROWS(sx_device *dev, sx_tensor *node) {
    const sx_tensor *tab = node->src[0], *ids = node->src[1];
    if (node->nb[0] != 4 || ids->nb[0] != 4) return sx_cpu_ref_GET_ROWS(dev, node);
    const sx_cpu_kernels *kt = sx_cpu_kernels_active();
    const int32_t *id = sx_cpu_data(ids);
    const bool quick = cvt_ok(tab->dtype, SX_DTYPE_F32) && row_dense(tab);
    for (int64_t i = 0; i < ids->ne[0]; i++) {
        if (id[i] < 0 || id[i] >= tab->ne[1])
            return sx_set_error(SX_ERR_INVALID_ARG, "get_rows: id %d out of range [0, %lld)", id[i], (long long)tab->ne[1]);
        const char *src = (const char *)sx_cpu_data(tab) + (size_t)id[i] * tab->nb[1];
        float *dst = (float *)((char *)sx_cpu_data(node) + (size_t)i * node->nb[1]);
        if (quick) cvt_row(kt, tab->dtype, SX_DTYPE_F32, tab->ne[0], src, dst);
        else sx_dtype_dequantize_row(tab->dtype, src, dst, tab->ne[0]); /* as the reference's load_row */
    }
    return SX_OK;
}

static sx_status fast_SET_ROWS(sx_device *dev, sx_tensor *node) {
    const sx_tensor *src = node->src[1], *ids = node->src[2];
    const bool qkv = sx_dtype_get(node->dtype)->quantized; /* a q8_0 / q4_0 KV cache: each row quantized as ir/dtype.c does */
    if (src->dtype != SX_DTYPE_F32 || !row_dense(src) || !row_dense(node) || ids->nb[0] != 4 || !(qkv || cvt_ok(SX_DTYPE_F32, node->dtype)))
        return sx_cpu_ref_SET_ROWS(dev, node);
    const sx_cpu_kernels *kt = sx_cpu_kernels_active();
    const int32_t *id = sx_cpu_data(ids);
    for (int64_t i = 0; i < ids->ne[0]; i++) {
        if (id[i] < 0 || id[i] >= node->ne[1])
            return sx_set_error(SX_ERR_INVALID_ARG, "set_rows: slot %d out of range [0, %lld)", id[i], (long long)node->ne[1]);
        const char *from = (const char *)sx_cpu_data(src) + (size_t)i * src->nb[1];
        char *to = (char *)sx_cpu_data(node) + (size_t)id[i] * node->nb[1];
        if (qkv) sx_dtype_quantize_row(node->dtype, (const float *)from, to, src->ne[0]);
        else cvt_row(kt, SX_DTYPE_F32, node->dtype, src->ne[0], from, to);
    }
    return SX_OK;
}

/* Rows of n contiguous values of t: row r at the (i1, i2, i3) of r. */
static inline const void *row_at(const sx_tensor *t, int64_t r) {
    const int64_t i1 = r % t->ne[1], i2 = (r / t->ne[1]) % t->ne[2], i3 = r / (t->ne[1] * t->ne[2]);
    return (const char *)sx_cpu_data(t) + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
}

static sx_status fast_COPY(sx_device *dev, sx_tensor *node) {
    const sx_tensor *x = node->src[0];
    if (!row_dense(x) || !sx_tensor_is_contiguous(node) || !cvt_ok(x->dtype, node->dtype)) return sx_cpu_ref_COPY(dev, node);
    const sx_cpu_kernels *kt = sx_cpu_kernels_active();
    const int64_t n = x->ne[0], rows = sx_tensor_nrows(x);
    const size_t out_row = (size_t)n * sx_dtype_get(node->dtype)->type_size;
    if (sx_tensor_is_contiguous(x)) {
        cvt_row(kt, x->dtype, node->dtype, n * rows, sx_cpu_data(x), sx_cpu_data(node));
        return SX_OK;
    }
    for (int64_t r = 0; r < rows; r++) cvt_row(kt, x->dtype, node->dtype, n, row_at(x, r), (char *)sx_cpu_data(node) + (size_t)r * out_row);
    return SX_OK;
}

/* a and b joined along dim: for every index above dim, a's slab of
 * a->ne[0..dim] elements, then b's. */
static sx_status fast_CONCAT(sx_device *dev, sx_tensor *node) {
    const sx_tensor *a = node->src[0], *b = node->src[1];
    const int dim = node->params.concat.dim;
    if (a->dtype != SX_DTYPE_F32 || b->dtype != SX_DTYPE_F32 || node->dtype != SX_DTYPE_F32 || !sx_tensor_is_contiguous(a) ||
        !sx_tensor_is_contiguous(b) || !sx_tensor_is_contiguous(node) || dim < 0 || dim >= SX_MAX_DIMS)
        return sx_cpu_ref_CONCAT(dev, node);
    size_t sa = 4, sb = 4;
    int64_t outer = 1;
    for (int i = 0; i <= dim; i++) sa *= (size_t)a->ne[i], sb *= (size_t)b->ne[i];
    for (int i = dim + 1; i < SX_MAX_DIMS; i++) outer *= node->ne[i];
    const char *pa = sx_cpu_data(a), *pb = sx_cpu_data(b);
    char *out = sx_cpu_data(node);
    for (int64_t o = 0; o < outer; o++) {
        memcpy(out, pa + (size_t)o * sa, sa);
        memcpy(out + sa, pb + (size_t)o * sb, sb);
        out += sa + sb;
    }
    return SX_OK;
}

/* ---- row reductions: softmax, argmax, top-k over contiguous f32 rows ---- */
typedef struct { const sx_tensor *x; sx_tensor *y; const sx_cpu_kernels *kt; float *tmp; /* [nth][ne0 + 16] */ } rows_ctx;

static void softmax_rows(void *p, int ith, int nth) {
    rows_ctx *c = p;
    const int64_t n = c->x->ne[0];
    int64_t lo, hi;
    split(sx_tensor_nrows(c->x), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *x = row_at(c->x, r);
        float *y = (float *)row_at(c->y, r);
        float mx = -INFINITY;
        for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
        if (y != x) memmove(y, x, sizeof(float) * (size_t)n);
        const float inv = 1.0f / c->kt->exp_sum(n, y, mx, c->tmp + (size_t)ith * (size_t)(n + 16));
        for (int64_t i = 0; i < n; i++) y[i] *= inv;
    }
}

static sx_status fast_SOFTMAX(sx_device *dev, sx_tensor *node) {
    rows_ctx c = {node->src[0], node, sx_cpu_kernels_active(), NULL};
    if (c.x->nb[0] != 4 || node->nb[0] != 4) return sx_cpu_ref_SOFTMAX(dev, node);
    c.tmp = sx_cpu_scratch((sx_cpu_device *)dev, (size_t)sx_threadpool_size(pool_of(dev)) * (size_t)(c.x->ne[0] + 16));
    if (!c.tmp) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "softmax: scratch");
    run(dev, softmax_rows, &c, 8 * sx_tensor_nelements(c.x)); /* expf ~ 8 adds */
    return SX_OK;
}

/* Same comparisons as the reference: the first maximum wins, NaN never does. */
static sx_status fast_ARGMAX(sx_device *dev, sx_tensor *node) {
    const sx_tensor *x = node->src[0];
    if (x->nb[0] != 4 || x->dtype != SX_DTYPE_F32) return sx_cpu_ref_ARGMAX(dev, node);
    for (int64_t r = 0; r < x->ne[1]; r++) {
        const float *v = (const float *)((const char *)sx_cpu_data(x) + (size_t)r * x->nb[1]);
        int32_t best = 0;
        float bv = v[0];
        for (int64_t i = 1; i < x->ne[0]; i++)
            if (v[i] > bv) bv = v[i], best = (int32_t)i;
        *(int32_t *)((char *)sx_cpu_data(node) + (size_t)r * node->nb[1]) = best;
    }
    return SX_OK;
}

/* The reference's insertion into a sorted list of k (value descending, index
 * ascending), with the values of the list kept beside it and a quick reject
 * of values below a full list's last. */
static sx_status fast_TOP_K(sx_device *dev, sx_tensor *node) {
    const sx_tensor *x = node->src[0];
    const int k = node->params.top_k.k;
    if (x->nb[0] != 4 || x->dtype != SX_DTYPE_F32 || node->nb[0] != 4 || k < 1) return sx_cpu_ref_TOP_K(dev, node);
    float *val = sx_cpu_scratch((sx_cpu_device *)dev, (size_t)k + 1);
    if (!val) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "top_k: scratch");
    for (int64_t r = 0; r < x->ne[1]; r++) {
        const float *v = (const float *)((const char *)sx_cpu_data(x) + (size_t)r * x->nb[1]);
        int32_t *out = (int32_t *)((char *)sx_cpu_data(node) + (size_t)r * node->nb[1]);
        int n = 0;
        for (int64_t i = 0; i < x->ne[0]; i++) {
            const float vi = v[i];
            if (n == k && !(val[k - 1] < vi)) continue; /* would land at p >= k */
            int p = n;
            while (p > 0 && val[p - 1] < vi) p--;
            if (p >= k) continue;
            const int last = n < k ? n : k - 1;
            memmove(&out[p + 1], &out[p], sizeof(int32_t) * (size_t)(last - p));
            memmove(&val[p + 1], &val[p], sizeof(float) * (size_t)(last - p));
            out[p] = (int32_t)i;
            val[p] = vi;
            if (n < k) n++;
        }
    }
    return SX_OK;
}

/* Rare in the model graphs (a few elements per step). */
#define fast_SIGMOID sx_cpu_ref_SIGMOID
#define fast_GATHER sx_cpu_ref_GATHER
#define fast_EXP sx_cpu_ref_EXP

const sx_kernel_fn sx_cpu_fast_kernels[SX_OP_COUNT] = {
#define SX_OP(NAME, nsrc, nopt, params) [SX_OP_##NAME] = fast_##NAME,
#include "ir/ops.def"
#undef SX_OP
};
