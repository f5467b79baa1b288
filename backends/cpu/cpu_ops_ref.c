/* backends/cpu/cpu_ops_ref.c — the reference kernels: plain scalar C, double
 * accumulation, any strides. This is the oracle every backend is tested
 * against, so clarity beats speed here. One function per op in ir/ops.def. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_internal.h"

/* element address of t at (i0, i1, i2, i3) for plain (non-block) dtypes */
#define AT(T, t, i0, i1, i2, i3) \
    ((T *)((char *)sx_cpu_data(t) + (size_t)(i0) * (t)->nb[0] + (size_t)(i1) * (t)->nb[1] + (size_t)(i2) * (t)->nb[2] + (size_t)(i3) * (t)->nb[3]))

static float load_f(const sx_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    switch (t->dtype) {
    case SX_DTYPE_F32: return *AT(const float, t, i0, i1, i2, i3);
    case SX_DTYPE_F16: return sx_fp16_to_fp32(*AT(const uint16_t, t, i0, i1, i2, i3));
    case SX_DTYPE_BF16: return sx_bf16_to_fp32(*AT(const uint16_t, t, i0, i1, i2, i3));
    case SX_DTYPE_I32: return (float)*AT(const int32_t, t, i0, i1, i2, i3);
    case SX_DTYPE_Q8_0: { /* nb[0] steps blocks of SX_QK elements (a q8_0 KV cache) */
        const sx_block_q8_0 *b = AT(const sx_block_q8_0, t, i0 / SX_QK, i1, i2, i3);
        return sx_fp16_to_fp32(b->d) * (float)b->qs[i0 % SX_QK];
    }
    case SX_DTYPE_Q4_0: { /* as q8_0 (a q4_0 KV cache); element j < 16 in the low nibble of qs[j], else the high one of qs[j - 16] */
        const sx_block_q4_0 *b = AT(const sx_block_q4_0, t, i0 / SX_QK, i1, i2, i3);
        const int j = (int)(i0 % SX_QK), nib = j < SX_QK / 2 ? b->qs[j] & 0xF : b->qs[j - SX_QK / 2] >> 4;
        return sx_fp16_to_fp32(b->d) * (float)(nib - 8);
    }
    default: return NAN;
    }
}

static void store_f(sx_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3, float v) {
    switch (t->dtype) {
    case SX_DTYPE_F32: *AT(float, t, i0, i1, i2, i3) = v; break;
    case SX_DTYPE_F16: *AT(uint16_t, t, i0, i1, i2, i3) = sx_fp32_to_fp16(v); break;
    case SX_DTYPE_BF16: *AT(uint16_t, t, i0, i1, i2, i3) = sx_fp32_to_bf16(v); break;
    default: break;
    }
}

#define FOR_ROWS(t) \
    for (int64_t i3 = 0; i3 < (t)->ne[3]; i3++) \
        for (int64_t i2 = 0; i2 < (t)->ne[2]; i2++) \
            for (int64_t i1 = 0; i1 < (t)->ne[1]; i1++)

/* a row of a 2-D tensor (any dtype, contiguous row) as floats */
static void load_row(const sx_tensor *t, int64_t row, float *out) {
    const char *p = (const char *)sx_cpu_data(t) + (size_t)row * t->nb[1];
    sx_dtype_dequantize_row(t->dtype, p, out, t->ne[0]);
}

sx_status sx_cpu_ref_GET_ROWS(sx_device *dev, sx_tensor *node) {
    (void)dev;
    const sx_tensor *tab = node->src[0], *ids = node->src[1];
    for (int64_t i = 0; i < ids->ne[0]; i++) {
        const int32_t id = *AT(const int32_t, ids, i, 0, 0, 0);
        if (id < 0 || id >= tab->ne[1])
            return sx_set_error(SX_ERR_INVALID_ARG, "get_rows: id %d out of range [0, %lld)", id, (long long)tab->ne[1]);
        load_row(tab, id, AT(float, node, 0, i, 0, 0));
    }
    return SX_OK;
}

sx_status sx_cpu_ref_RMS_NORM(sx_device *dev, sx_tensor *node) {
    (void)dev;
    const sx_tensor *x = node->src[0], *w = node->src[1];
    const float eps = node->params.norm.eps;
    FOR_ROWS(x) {
        double ss = 0;
        for (int64_t i0 = 0; i0 < x->ne[0]; i0++) {
            double v = load_f(x, i0, i1, i2, i3);
            ss += v * v;
        }
        const double scale = 1.0 / sqrt(ss / (double)x->ne[0] + eps);
        for (int64_t i0 = 0; i0 < x->ne[0]; i0++)
            *AT(float, node, i0, i1, i2, i3) = (float)(load_f(x, i0, i1, i2, i3) * scale * load_f(w, i0, 0, 0, 0));
    }
    return SX_OK;
}

static sx_status binary(sx_tensor *node, bool mul) {
    const sx_tensor *a = node->src[0], *b = node->src[1];
    FOR_ROWS(a) {
        for (int64_t i0 = 0; i0 < a->ne[0]; i0++) {
            const float x = load_f(a, i0, i1, i2, i3);
            const float y = load_f(b, i0 % b->ne[0], i1 % b->ne[1], i2 % b->ne[2], i3 % b->ne[3]);
            *AT(float, node, i0, i1, i2, i3) = mul ? x * y : x + y;
        }
    }
    return SX_OK;
}
sx_status sx_cpu_ref_ADD(sx_device *dev, sx_tensor *node) { (void)dev; return binary(node, false); }
sx_status sx_cpu_ref_MUL(sx_device *dev, sx_tensor *node) { (void)dev; return binary(node, true); }

sx_status sx_cpu_ref_MATMUL(sx_device *dev, sx_tensor *node) {
    const sx_tensor *w = node->src[0], *x = node->src[1];
    const int64_t K = w->ne[0], N = w->ne[1], M = x->ne[1];
    float *row = sx_cpu_scratch((sx_cpu_device *)dev, (size_t)K);
    if (!row) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "matmul: scratch");
    for (int64_t n = 0; n < N; n++) {
        load_row(w, n, row);
        for (int64_t m = 0; m < M; m++) {
            const float *xc = AT(const float, x, 0, m, 0, 0);
            double acc = 0;
            for (int64_t k = 0; k < K; k++) acc += (double)row[k] * xc[k];
            *AT(float, node, n, m, 0, 0) = (float)acc;
        }
    }
    return SX_OK;
}

sx_status sx_cpu_ref_ROPE(sx_device *dev, sx_tensor *node) {
    (void)dev;
    const sx_tensor *x = node->src[0], *pos = node->src[1], *ff = node->src[2];
    const sx_params_rope *p = &node->params.rope;
    const int half = p->n_dims / 2;
    for (int64_t t = 0; t < x->ne[2]; t++) {
        const double position = (double)*AT(const int32_t, pos, t, 0, 0, 0);
        for (int64_t i3 = 0; i3 < x->ne[3]; i3++)
            for (int64_t h = 0; h < x->ne[1]; h++) {
                for (int64_t i0 = p->n_dims; i0 < x->ne[0]; i0++)
                    *AT(float, node, i0, h, t, i3) = load_f(x, i0, h, t, i3);
                for (int i = 0; i < half; i++) {
                    const double factor = ff ? (double)*AT(const float, ff, i, 0, 0, 0) : 1.0;
                    const double theta = position * p->freq_scale * pow((double)p->freq_base, -2.0 * i / p->n_dims) / factor;
                    const double c = cos(theta), s = sin(theta);
                    const int64_t a = p->mode == SX_ROPE_NEOX ? i : 2 * i;
                    const int64_t b = p->mode == SX_ROPE_NEOX ? i + half : 2 * i + 1;
                    const double x0 = load_f(x, a, h, t, i3), x1 = load_f(x, b, h, t, i3);
                    *AT(float, node, a, h, t, i3) = (float)(x0 * c - x1 * s);
                    *AT(float, node, b, h, t, i3) = (float)(x0 * s + x1 * c);
                }
            }
    }
    return SX_OK;
}

sx_status sx_cpu_ref_SET_ROWS(sx_device *dev, sx_tensor *node) {
    (void)dev;
    const sx_tensor *src = node->src[1], *ids = node->src[2];
    for (int64_t i = 0; i < ids->ne[0]; i++) {
        const int32_t id = *AT(const int32_t, ids, i, 0, 0, 0);
        if (id < 0 || id >= node->ne[1])
            return sx_set_error(SX_ERR_INVALID_ARG, "set_rows: slot %d out of range [0, %lld)", id, (long long)node->ne[1]);
        if (sx_dtype_get(node->dtype)->quantized) { /* a q8_0 / q4_0 cache: the row quantized as a whole, as ir/dtype.c does */
            float *row = malloc(sizeof(float) * (size_t)src->ne[0]);
            if (!row) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "set_rows: scratch");
            for (int64_t i0 = 0; i0 < src->ne[0]; i0++) row[i0] = load_f(src, i0, i, 0, 0);
            sx_dtype_quantize_row(node->dtype, row, AT(char, node, 0, id, 0, 0), src->ne[0]);
            free(row);
            continue;
        }
        for (int64_t i0 = 0; i0 < src->ne[0]; i0++) store_f(node, i0, id, 0, 0, load_f(src, i0, i, 0, 0));
    }
    return SX_OK;
}

sx_status sx_cpu_ref_ATTENTION(sx_device *dev, sx_tensor *node) {
    const sx_tensor *q = node->src[0], *k = node->src[1], *v = node->src[2], *mask = node->src[3];
    const int64_t d = q->ne[0], nh = q->ne[1], T = q->ne[2], nkv = k->ne[1], n_kv = k->ne[2];
    const int64_t n_past = node->params.attn.n_past, group = nh / nkv;
    const double scale = node->params.attn.scale;
    double *sc = malloc(sizeof(double) * (size_t)n_kv);
    if (!sc) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "attention: scratch");
    (void)dev;
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < nh; h++) {
            const int64_t kh = h / group;
            double mx = -INFINITY;
            for (int64_t j = 0; j < n_kv; j++) {
                bool visible = j < n_past;
                if (!visible) {
                    const int64_t i = j - n_past;
                    visible = mask ? *AT(const float, mask, i, t, 0, 0) == 0.0f : i <= t; /* mask [n_kv - n_past, T] */
                }
                if (!visible) {
                    sc[j] = -INFINITY;
                    continue;
                }
                double acc = 0;
                for (int64_t c = 0; c < d; c++) acc += (double)load_f(q, c, h, t, 0) * load_f(k, c, kh, j, 0);
                sc[j] = acc * scale;
                if (sc[j] > mx) mx = sc[j];
            }
            double sum = 0;
            for (int64_t j = 0; j < n_kv; j++) {
                sc[j] = sc[j] == -INFINITY ? 0 : exp(sc[j] - mx);
                sum += sc[j];
            }
            for (int64_t c = 0; c < d; c++) {
                double acc = 0;
                for (int64_t j = 0; j < n_kv; j++)
                    if (sc[j] != 0) acc += sc[j] * load_f(v, c, kh, j, 0);
                *AT(float, node, c, h, t, 0) = sum > 0 ? (float)(acc / sum) : 0.0f;
            }
        }
    free(sc);
    return SX_OK;
}

sx_status sx_cpu_ref_SILU_MUL(sx_device *dev, sx_tensor *node) {
    (void)dev;
    const sx_tensor *a = node->src[0], *b = node->src[1];
    FOR_ROWS(a) {
        for (int64_t i0 = 0; i0 < a->ne[0]; i0++) {
            const double g = load_f(a, i0, i1, i2, i3);
            *AT(float, node, i0, i1, i2, i3) = (float)(g / (1.0 + exp(-g)) * load_f(b, i0, i1, i2, i3));
        }
    }
    return SX_OK;
}

sx_status sx_cpu_ref_SOFTMAX(sx_device *dev, sx_tensor *node) {
    (void)dev;
    const sx_tensor *x = node->src[0];
    FOR_ROWS(x) {
        double mx = -INFINITY, sum = 0;
        for (int64_t i0 = 0; i0 < x->ne[0]; i0++) mx = fmax(mx, load_f(x, i0, i1, i2, i3));
        for (int64_t i0 = 0; i0 < x->ne[0]; i0++) sum += exp(load_f(x, i0, i1, i2, i3) - mx);
        for (int64_t i0 = 0; i0 < x->ne[0]; i0++)
            *AT(float, node, i0, i1, i2, i3) = (float)(exp(load_f(x, i0, i1, i2, i3) - mx) / sum);
    }
    return SX_OK;
}

sx_status sx_cpu_ref_ARGMAX(sx_device *dev, sx_tensor *node) {
    (void)dev;
    const sx_tensor *x = node->src[0];
    for (int64_t r = 0; r < x->ne[1]; r++) {
        int32_t best = 0;
        float bv = load_f(x, 0, r, 0, 0);
        for (int64_t i = 1; i < x->ne[0]; i++) {
            const float v = load_f(x, i, r, 0, 0);
            if (v > bv) bv = v, best = (int32_t)i;
        }
        *AT(int32_t, node, 0, r, 0, 0) = best;
    }
    return SX_OK;
}

sx_status sx_cpu_ref_TOP_K(sx_device *dev, sx_tensor *node) {
    (void)dev;
    const sx_tensor *x = node->src[0];
    const int k = node->params.top_k.k;
    for (int64_t r = 0; r < x->ne[1]; r++) {
        int32_t *out = AT(int32_t, node, 0, r, 0, 0);
        int n = 0; /* insertion into a sorted list of k: value desc, index asc */
        for (int64_t i = 0; i < x->ne[0]; i++) {
            const float v = load_f(x, i, r, 0, 0);
            int p = n;
            while (p > 0 && load_f(x, out[p - 1], r, 0, 0) < v) p--;
            if (p >= k) continue;
            const int last = n < k ? n : k - 1;
            memmove(&out[p + 1], &out[p], sizeof(int32_t) * (size_t)(last - p));
            out[p] = (int32_t)i;
            if (n < k) n++;
        }
    }
    return SX_OK;
}

sx_status sx_cpu_ref_GATHER(sx_device *dev, sx_tensor *node) {
    (void)dev;
    const sx_tensor *x = node->src[0], *ids = node->src[1];
    for (int64_t r = 0; r < x->ne[1]; r++)
        for (int64_t j = 0; j < ids->ne[0]; j++) {
            const int32_t id = *AT(const int32_t, ids, j, r, 0, 0);
            if (id < 0 || id >= x->ne[0]) return sx_set_error(SX_ERR_INVALID_ARG, "gather: id %d out of range [0, %lld)", id, (long long)x->ne[0]);
            *AT(float, node, j, r, 0, 0) = load_f(x, id, r, 0, 0);
        }
    return SX_OK;
}

sx_status sx_cpu_ref_MUL_MAT_ID(sx_device *dev, sx_tensor *node) {
    const sx_tensor *w = node->src[0], *x = node->src[1], *ids = node->src[2];
    const int64_t K = w->ne[0], N = w->ne[1], E = w->ne[2], k = ids->ne[0], R = ids->ne[1];
    float *row = sx_cpu_scratch((sx_cpu_device *)dev, (size_t)K);
    if (!row) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "mul_mat_id: scratch");
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < k; j++) {
            const int32_t e = *AT(const int32_t, ids, j, r, 0, 0);
            if (e < 0 || e >= E) return sx_set_error(SX_ERR_INVALID_ARG, "mul_mat_id: expert %d out of range [0, %lld)", e, (long long)E);
            const float *xc = AT(const float, x, 0, x->ne[1] == 1 ? 0 : j, r, 0);
            for (int64_t n = 0; n < N; n++) {
                sx_dtype_dequantize_row(w->dtype, (const char *)sx_cpu_data(w) + (size_t)n * w->nb[1] + (size_t)e * w->nb[2], row, K);
                double acc = 0;
                for (int64_t i = 0; i < K; i++) acc += (double)row[i] * xc[i];
                *AT(float, node, n, j, r, 0) = (float)acc;
            }
        }
    return SX_OK;
}

sx_status sx_cpu_ref_CONCAT(sx_device *dev, sx_tensor *node) {
    (void)dev;
    const sx_tensor *a = node->src[0], *b = node->src[1];
    const int dim = node->params.concat.dim;
    FOR_ROWS(node) {
        for (int64_t i0 = 0; i0 < node->ne[0]; i0++) {
            int64_t i[4] = {i0, i1, i2, i3};
            const bool from_a = i[dim] < a->ne[dim];
            if (!from_a) i[dim] -= a->ne[dim];
            *AT(float, node, i0, i1, i2, i3) = load_f(from_a ? a : b, i[0], i[1], i[2], i[3]);
        }
    }
    return SX_OK;
}

sx_status sx_cpu_ref_COPY(sx_device *dev, sx_tensor *node) {
    (void)dev;
    const sx_tensor *x = node->src[0];
    FOR_ROWS(x) {
        for (int64_t i0 = 0; i0 < x->ne[0]; i0++) store_f(node, i0, i1, i2, i3, load_f(x, i0, i1, i2, i3));
    }
    return SX_OK;
}

static sx_status unary(sx_tensor *node, double (*f)(double)) {
    const sx_tensor *x = node->src[0];
    FOR_ROWS(x) {
        for (int64_t i0 = 0; i0 < x->ne[0]; i0++) *AT(float, node, i0, i1, i2, i3) = (float)f(load_f(x, i0, i1, i2, i3));
    }
    return SX_OK;
}
static double sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }
sx_status sx_cpu_ref_SIGMOID(sx_device *dev, sx_tensor *node) { (void)dev; return unary(node, sigmoid); }
sx_status sx_cpu_ref_EXP(sx_device *dev, sx_tensor *node) { (void)dev; return unary(node, exp); }

const sx_kernel_fn sx_cpu_ref_kernels[SX_OP_COUNT] = {
#define SX_OP(NAME, nsrc, nopt, params) [SX_OP_##NAME] = sx_cpu_ref_##NAME,
#include "ir/ops.def"
#undef SX_OP
};
