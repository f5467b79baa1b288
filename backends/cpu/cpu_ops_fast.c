/* backends/cpu/cpu_ops_fast.c — kernels of the fast CPU mode: the same ops as
 * the reference (cpu_ops_ref.c) on the thread pool with SIMD inner loops
 * (cpu_simd*.c). Layouts outside the fast paths fall back to the reference
 * kernel, so results never depend on which path ran, only their rounding.
 * Tested by tests/test_ops.c (backend "cpu" vs "cpu-ref"). */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu_internal.h"

static inline sx_threadpool *pool_of(sx_device *dev) { return ((sx_cpu_device *)dev)->pool; }

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
    sx_threadpool_run(pool_of(dev), norm_rows, &c);
    return SX_OK;
}

/* ---- elementwise on contiguous same-shape tensors ---- */
typedef enum { EW_ADD, EW_MUL, EW_SILU_MUL } ew_kind;
typedef struct { const float *a, *b; float *y; int64_t n; ew_kind kind; } ew_ctx;

static void ew_run(void *p, int ith, int nth) {
    ew_ctx *c = p;
    int64_t lo, hi;
    split(c->n, ith, nth, &lo, &hi);
    switch (c->kind) {
    case EW_ADD: for (int64_t i = lo; i < hi; i++) c->y[i] = c->a[i] + c->b[i]; break;
    case EW_MUL: for (int64_t i = lo; i < hi; i++) c->y[i] = c->a[i] * c->b[i]; break;
    case EW_SILU_MUL:
        for (int64_t i = lo; i < hi; i++) c->y[i] = c->a[i] / (1.0f + expf(-c->a[i])) * c->b[i];
        break;
    }
}

static bool same_contiguous(const sx_tensor *a, const sx_tensor *b) {
    for (int i = 0; i < SX_MAX_DIMS; i++)
        if (a->ne[i] != b->ne[i]) return false;
    return sx_tensor_is_contiguous(a) && sx_tensor_is_contiguous(b);
}

static sx_status ew(sx_device *dev, sx_tensor *node, ew_kind kind, sx_kernel_fn fallback) {
    if (!same_contiguous(node->src[0], node->src[1])) return fallback(dev, node);
    ew_ctx c = {sx_cpu_data(node->src[0]), sx_cpu_data(node->src[1]), sx_cpu_data(node), sx_tensor_nelements(node), kind};
    sx_threadpool_run(pool_of(dev), ew_run, &c);
    return SX_OK;
}
static sx_status fast_ADD(sx_device *dev, sx_tensor *node) { return ew(dev, node, EW_ADD, sx_cpu_ref_ADD); }
static sx_status fast_MUL(sx_device *dev, sx_tensor *node) { return ew(dev, node, EW_MUL, sx_cpu_ref_MUL); }
static sx_status fast_SILU_MUL(sx_device *dev, sx_tensor *node) { return ew(dev, node, EW_SILU_MUL, sx_cpu_ref_SILU_MUL); }

/* ---- rope: cos/sin per (token, pair) computed once, shared by heads ---- */
typedef struct { const sx_tensor *x, *pos, *ff; sx_tensor *y; } rope_ctx;

static void rope_run(void *p, int ith, int nth) {
    rope_ctx *c = p;
    const sx_tensor *x = c->x;
    const sx_params_rope *pr = &c->y->params.rope;
    const int half = pr->n_dims / 2;
    const int32_t *pos = sx_cpu_data(c->pos);
    const float *ff = c->ff ? sx_cpu_data(c->ff) : NULL;
    int64_t lo, hi;
    split(x->ne[2], ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        float cs[512], sn[512];
        for (int i = 0; i < half && i < 512; i++) {
            const double theta = (double)pos[t] * pr->freq_scale * pow((double)pr->freq_base, -2.0 * i / pr->n_dims) / (ff ? (double)ff[i] : 1.0);
            cs[i] = (float)cos(theta);
            sn[i] = (float)sin(theta);
        }
        for (int64_t i3 = 0; i3 < x->ne[3]; i3++)
            for (int64_t h = 0; h < x->ne[1]; h++) {
                const float *xr = (const float *)((const char *)sx_cpu_data(x) + h * x->nb[1] + t * x->nb[2] + i3 * x->nb[3]);
                float *yr = (float *)((char *)sx_cpu_data(c->y) + h * c->y->nb[1] + t * c->y->nb[2] + i3 * c->y->nb[3]);
                for (int64_t i0 = pr->n_dims; i0 < x->ne[0]; i0++) yr[i0] = xr[i0];
                for (int i = 0; i < half; i++) {
                    const int64_t a = pr->mode == SX_ROPE_NEOX ? i : 2 * i, b = pr->mode == SX_ROPE_NEOX ? i + half : 2 * i + 1;
                    const float x0 = xr[a], x1 = xr[b];
                    yr[a] = x0 * cs[i] - x1 * sn[i];
                    yr[b] = x0 * sn[i] + x1 * cs[i];
                }
            }
    }
}

static sx_status fast_ROPE(sx_device *dev, sx_tensor *node) {
    rope_ctx c = {node->src[0], node->src[1], node->src[2], node};
    if (c.x->nb[0] != 4 || node->params.rope.n_dims > 1024) return sx_cpu_ref_ROPE(dev, node);
    sx_threadpool_run(pool_of(dev), rope_run, &c);
    return SX_OK;
}

/* ---- attention: one (token, head) pair per task, online over the kv slots ---- */
typedef struct { const sx_tensor *q, *k, *v, *mask; sx_tensor *y; float *scratch; int64_t stride; } attn_ctx;

static void attn_run(void *p, int ith, int nth) {
    attn_ctx *c = p;
    const sx_tensor *q = c->q, *k = c->k, *v = c->v;
    const int64_t d = q->ne[0], nh = q->ne[1], T = q->ne[2], n_kv = k->ne[2];
    const int64_t group = nh / k->ne[1], n_past = c->y->params.attn.n_past;
    const float scale = c->y->params.attn.scale;
    const bool f16 = k->dtype == SX_DTYPE_F16;
    float *sc = c->scratch + (size_t)ith * (size_t)c->stride;
    float *acc = sc + n_kv;
    int64_t lo, hi;
    split(T * nh, ith, nth, &lo, &hi);
    for (int64_t job = lo; job < hi; job++) {
        const int64_t t = job / nh, h = job % nh, kh = h / group;
        const float *qr = (const float *)((const char *)sx_cpu_data(q) + h * q->nb[1] + t * q->nb[2]);
        const char *kb = (const char *)sx_cpu_data(k) + kh * k->nb[1];
        const char *vb = (const char *)sx_cpu_data(v) + kh * v->nb[1];
        float mx = -INFINITY;
        for (int64_t j = 0; j < n_kv; j++) {
            bool visible = j < n_past;
            if (!visible) {
                const int64_t i = j - n_past;
                visible = c->mask ? *(const float *)((const char *)sx_cpu_data(c->mask) + i * 4 + t * c->mask->nb[1]) == 0.0f : i <= t;
            }
            if (!visible) {
                sc[j] = -INFINITY;
                continue;
            }
            const void *kr = kb + j * k->nb[2];
            sc[j] = scale * (f16 ? sx_cpu_vec_dot_f16_f32(d, kr, qr) : sx_cpu_vec_dot_f32(d, kr, qr));
            if (sc[j] > mx) mx = sc[j];
        }
        float sum = 0;
        for (int64_t j = 0; j < n_kv; j++) {
            sc[j] = sc[j] == -INFINITY ? 0.0f : expf(sc[j] - mx);
            sum += sc[j];
        }
        memset(acc, 0, sizeof(float) * (size_t)d);
        for (int64_t j = 0; j < n_kv; j++) {
            if (sc[j] == 0.0f) continue;
            const void *vr = vb + j * v->nb[2];
            if (f16) {
                sx_cpu_vec_axpy_f16(d, sc[j], vr, acc);
            } else {
                const float *vf = vr;
                for (int64_t cc = 0; cc < d; cc++) acc[cc] += sc[j] * vf[cc];
            }
        }
        float *yr = (float *)((char *)sx_cpu_data(c->y) + h * c->y->nb[1] + t * c->y->nb[2]);
        const float inv = sum > 0 ? 1.0f / sum : 0.0f;
        for (int64_t cc = 0; cc < d; cc++) yr[cc] = acc[cc] * inv;
    }
}

static sx_status fast_ATTENTION(sx_device *dev, sx_tensor *node) {
    attn_ctx c = {node->src[0], node->src[1], node->src[2], node->src[3], node, NULL, 0};
    if (c.q->nb[0] != 4) return sx_cpu_ref_ATTENTION(dev, node);
    const int nth = sx_threadpool_size(pool_of(dev));
    c.stride = (c.k->ne[2] + c.q->ne[0] + 15) & ~(int64_t)15;
    c.scratch = sx_cpu_scratch((sx_cpu_device *)dev, (size_t)c.stride * (size_t)nth);
    if (!c.scratch) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "attention: scratch");
    sx_threadpool_run(pool_of(dev), attn_run, &c);
    return SX_OK;
}

/* Ops cheap enough to run through the reference kernels in fast mode. */
#define fast_GET_ROWS sx_cpu_ref_GET_ROWS
#define fast_SET_ROWS sx_cpu_ref_SET_ROWS
#define fast_SOFTMAX sx_cpu_ref_SOFTMAX
#define fast_ARGMAX sx_cpu_ref_ARGMAX
#define fast_TOP_K sx_cpu_ref_TOP_K
#define fast_CONCAT sx_cpu_ref_CONCAT
#define fast_COPY sx_cpu_ref_COPY
#define fast_SIGMOID sx_cpu_ref_SIGMOID
#define fast_EXP sx_cpu_ref_EXP

const sx_kernel_fn sx_cpu_fast_kernels[SX_OP_COUNT] = {
#define SX_OP(NAME, nsrc, nopt, params) [SX_OP_##NAME] = fast_##NAME,
#include "ir/ops.def"
#undef SX_OP
};
