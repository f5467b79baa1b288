/* ir/ops.c — op names and the shape/dtype rule of every op in ir/ops.def.
 * A rule reads dst->src[] and dst->params and fills dst->dtype and dst->ne.
 * Each op must have a rule: the prototypes are generated from ops.def, so a
 * missing one is a link error. */
#include <stdio.h>
#include <string.h>

#include "ir/tensor.h"

#define SX_OP(NAME, nsrc, nopt, params) static sx_status check_##NAME(sx_tensor *dst);
#include "ir/ops.def"
#undef SX_OP

static const struct {
    const char *name;
    int n_src, n_opt;
    sx_status (*check)(sx_tensor *);
} g_ops[SX_OP_COUNT] = {
    [SX_OP_NONE] = {"NONE", 0, 0, NULL},
#define SX_OP(NAME, nsrc, nopt, params) [SX_OP_##NAME] = {#NAME, nsrc, nopt, check_##NAME},
#include "ir/ops.def"
#undef SX_OP
};

const char *sx_op_name(sx_op op) { return (unsigned)op < SX_OP_COUNT ? g_ops[op].name : "INVALID"; }
int sx_op_n_src(sx_op op) { return (unsigned)op < SX_OP_COUNT ? g_ops[op].n_src : 0; }
int sx_op_n_src_optional(sx_op op) { return (unsigned)op < SX_OP_COUNT ? g_ops[op].n_opt : 0; }

static sx_status bad(const sx_tensor *dst, const char *what) {
    char b0[96] = "-", b1[96] = "-";
    if (dst->src[0]) sx_tensor_describe(dst->src[0], b0, sizeof b0);
    if (dst->src[1]) sx_tensor_describe(dst->src[1], b1, sizeof b1);
    return sx_set_error(SX_ERR_INVALID_ARG, "op %s: %s (src0 %s, src1 %s)", sx_op_name(dst->op), what, b0, b1);
}

sx_status sx_op_check(sx_tensor *dst) {
    if ((unsigned)dst->op >= SX_OP_COUNT || dst->op == SX_OP_NONE)
        return sx_set_error(SX_ERR_INVALID_ARG, "invalid op %d", (int)dst->op);
    const int n = g_ops[dst->op].n_src, nreq = n - g_ops[dst->op].n_opt;
    for (int i = 0; i < nreq; i++)
        if (!dst->src[i]) return bad(dst, "missing source");
    for (int i = n; i < SX_MAX_SRC; i++)
        if (dst->src[i]) return bad(dst, "too many sources");
    for (int i = 0; i < SX_MAX_DIMS; i++) dst->ne[i] = 1;
    return g_ops[dst->op].check(dst);
}

static void copy_shape(sx_tensor *dst, const sx_tensor *a) { memcpy(dst->ne, a->ne, sizeof dst->ne); }
static bool is_f32(const sx_tensor *t) { return t->dtype == SX_DTYPE_F32; }
static bool is_vec(const sx_tensor *t) { return t->ne[1] == 1 && t->ne[2] == 1 && t->ne[3] == 1; }
static bool rows_contiguous(const sx_tensor *t) { return t->nb[0] == (size_t)sx_dtype_get(t->dtype)->type_size; }

static sx_status check_GET_ROWS(sx_tensor *d) {
    const sx_tensor *tab = d->src[0], *ids = d->src[1];
    if (ids->dtype != SX_DTYPE_I32 || !is_vec(ids)) return bad(d, "ids must be a 1-D i32 tensor");
    if (tab->ne[2] != 1 || tab->ne[3] != 1) return bad(d, "table must be 2-D");
    if (!rows_contiguous(tab)) return bad(d, "table rows must be contiguous");
    d->dtype = SX_DTYPE_F32;
    d->ne[0] = tab->ne[0];
    d->ne[1] = ids->ne[0];
    return SX_OK;
}

static sx_status check_RMS_NORM(sx_tensor *d) {
    const sx_tensor *x = d->src[0], *w = d->src[1];
    if (!is_f32(x) || !is_f32(w)) return bad(d, "x and w must be f32");
    if (!is_vec(w) || w->ne[0] != x->ne[0]) return bad(d, "w must be [ne0 of x]");
    if (!(d->params.norm.eps > 0)) return bad(d, "eps must be > 0");
    d->dtype = SX_DTYPE_F32;
    copy_shape(d, x);
    return SX_OK;
}

static sx_status check_binary(sx_tensor *d) {
    const sx_tensor *a = d->src[0], *b = d->src[1];
    if (!is_f32(a) || !is_f32(b)) return bad(d, "sources must be f32");
    for (int i = 0; i < SX_MAX_DIMS; i++)
        if (b->ne[i] <= 0 || a->ne[i] % b->ne[i] != 0) return bad(d, "b does not broadcast to a");
    d->dtype = SX_DTYPE_F32;
    copy_shape(d, a);
    return SX_OK;
}
static sx_status check_ADD(sx_tensor *d) { return check_binary(d); }
static sx_status check_MUL(sx_tensor *d) { return check_binary(d); }

static sx_status check_MATMUL(sx_tensor *d) {
    const sx_tensor *w = d->src[0], *x = d->src[1];
    if (!is_f32(x)) return bad(d, "x must be f32");
    if (w->dtype == SX_DTYPE_I32) return bad(d, "w cannot be i32");
    if (w->ne[2] != 1 || w->ne[3] != 1 || x->ne[2] != 1 || x->ne[3] != 1) return bad(d, "matmul is 2-D");
    if (w->ne[0] != x->ne[0]) return bad(d, "inner dimensions differ");
    if (!rows_contiguous(w) || x->nb[0] != 4) return bad(d, "rows must be contiguous");
    if (w->ne[0] % sx_dtype_get(w->dtype)->block_size) return bad(d, "K not a multiple of the block size");
    d->dtype = SX_DTYPE_F32;
    d->ne[0] = w->ne[1];
    d->ne[1] = x->ne[1];
    return SX_OK;
}

static sx_status check_ROPE(sx_tensor *d) {
    const sx_tensor *x = d->src[0], *pos = d->src[1];
    const sx_params_rope *p = &d->params.rope;
    if (!is_f32(x)) return bad(d, "x must be f32");
    if (pos->dtype != SX_DTYPE_I32 || !is_vec(pos) || pos->ne[0] != x->ne[2]) return bad(d, "pos must be i32 [ne2 of x]");
    if (p->mode != SX_ROPE_NORMAL && p->mode != SX_ROPE_NEOX) return bad(d, "unknown rope mode");
    if (p->n_dims <= 0 || p->n_dims > x->ne[0] || p->n_dims % 2) return bad(d, "bad n_dims");
    if (!(p->freq_base > 0) || !(p->freq_scale > 0)) return bad(d, "bad frequency base/scale");
    const sx_tensor *ff = d->src[2];
    if (ff && (!is_f32(ff) || !is_vec(ff) || ff->ne[0] != p->n_dims / 2 || ff->nb[0] != sizeof(float)))
        return bad(d, "freq_factors must be contiguous f32 [n_dims/2]");
    d->dtype = SX_DTYPE_F32;
    copy_shape(d, x);
    return SX_OK;
}

/* the quantized KV cache types: SET_ROWS writes them, ATTENTION reads them */
static bool kv_quant(sx_dtype t) { return t == SX_DTYPE_Q8_0 || t == SX_DTYPE_Q4_0; }

static sx_status check_SET_ROWS(sx_tensor *d) {
    const sx_tensor *dst = d->src[0], *src = d->src[1], *ids = d->src[2];
    if (dst->dtype != SX_DTYPE_F32 && dst->dtype != SX_DTYPE_F16 && !kv_quant(dst->dtype)) return bad(d, "dst must be f32, f16, q8_0 or q4_0");
    if (kv_quant(dst->dtype) && dst->ne[0] % SX_QK) return bad(d, "a q8_0 / q4_0 dst needs rows of a multiple of 32");
    if (!is_f32(src) || ids->dtype != SX_DTYPE_I32 || !is_vec(ids)) return bad(d, "src f32, ids 1-D i32");
    if (src->ne[0] != dst->ne[0] || src->ne[1] != ids->ne[0] || src->ne[2] != 1 || dst->ne[2] != 1)
        return bad(d, "src must be [K, n] with dst [K, R]");
    if (!rows_contiguous(dst)) return bad(d, "dst rows must be contiguous");
    d->dtype = dst->dtype;
    copy_shape(d, dst);
    return SX_OK;
}

static sx_status check_ATTENTION(sx_tensor *d) {
    const sx_tensor *q = d->src[0], *k = d->src[1], *v = d->src[2], *m = d->src[3];
    const int n_past = d->params.attn.n_past;
    if (!is_f32(q)) return bad(d, "q must be f32");
    if ((k->dtype != SX_DTYPE_F32 && k->dtype != SX_DTYPE_F16 && !kv_quant(k->dtype)) || v->dtype != k->dtype)
        return bad(d, "k/v must be f32, f16, q8_0 or q4_0, same dtype");
    if (kv_quant(k->dtype) && q->ne[0] % SX_QK) return bad(d, "q8_0 / q4_0 k/v need a head dim multiple of 32");
    if (k->ne[0] != q->ne[0] || v->ne[0] != q->ne[0]) return bad(d, "head dims differ");
    if (k->ne[1] != v->ne[1] || k->ne[1] <= 0 || q->ne[1] % k->ne[1]) return bad(d, "heads must be a multiple of kv heads");
    const int64_t span = m ? m->ne[0] : q->ne[2]; /* slots after n_past */
    if (k->ne[2] != v->ne[2] || n_past < 0 || k->ne[2] != n_past + span) return bad(d, "n_kv must equal n_past + mask width (T without a mask)");
    if (k->nb[0] != (size_t)sx_dtype_get(k->dtype)->type_size || v->nb[0] != k->nb[0]) return bad(d, "k/v rows must be contiguous");
    if (m && (!is_f32(m) || m->ne[0] < q->ne[2] || m->ne[1] != q->ne[2] || m->ne[2] != 1 || m->nb[0] != 4))
        return bad(d, "mask must be f32 [M >= T, T] with contiguous rows");
    if (!(d->params.attn.scale > 0)) return bad(d, "scale must be > 0");
    d->dtype = SX_DTYPE_F32;
    copy_shape(d, q);
    return SX_OK;
}

static sx_status check_SILU_MUL(sx_tensor *d) {
    const sx_tensor *a = d->src[0], *b = d->src[1];
    if (!is_f32(a) || !is_f32(b)) return bad(d, "sources must be f32");
    for (int i = 0; i < SX_MAX_DIMS; i++)
        if (a->ne[i] != b->ne[i]) return bad(d, "shapes differ");
    d->dtype = SX_DTYPE_F32;
    copy_shape(d, a);
    return SX_OK;
}

static sx_status check_unary(sx_tensor *d) {
    if (!is_f32(d->src[0])) return bad(d, "x must be f32");
    d->dtype = SX_DTYPE_F32;
    copy_shape(d, d->src[0]);
    return SX_OK;
}
static sx_status check_SOFTMAX(sx_tensor *d) { return check_unary(d); }
static sx_status check_SIGMOID(sx_tensor *d) { return check_unary(d); }
static sx_status check_EXP(sx_tensor *d) { return check_unary(d); }

static sx_status check_ARGMAX(sx_tensor *d) {
    const sx_tensor *x = d->src[0];
    if (!is_f32(x) || x->ne[2] != 1 || x->ne[3] != 1) return bad(d, "x must be 2-D f32");
    d->dtype = SX_DTYPE_I32;
    d->ne[0] = 1;
    d->ne[1] = x->ne[1];
    return SX_OK;
}

static sx_status check_TOP_K(sx_tensor *d) {
    const sx_tensor *x = d->src[0];
    const int k = d->params.top_k.k;
    if (!is_f32(x) || x->ne[2] != 1 || x->ne[3] != 1) return bad(d, "x must be 2-D f32");
    if (k < 1 || k > x->ne[0]) return bad(d, "k must be in [1, ne0]");
    d->dtype = SX_DTYPE_I32;
    d->ne[0] = k;
    d->ne[1] = x->ne[1];
    return SX_OK;
}

static sx_status check_GATHER(sx_tensor *d) {
    const sx_tensor *x = d->src[0], *ids = d->src[1];
    if (!is_f32(x) || x->ne[2] != 1 || x->ne[3] != 1) return bad(d, "x must be 2-D f32");
    if (ids->dtype != SX_DTYPE_I32 || ids->ne[1] != x->ne[1] || ids->ne[2] != 1 || ids->ne[3] != 1) return bad(d, "ids must be i32 [k, R of x]");
    d->dtype = SX_DTYPE_F32;
    d->ne[0] = ids->ne[0];
    d->ne[1] = x->ne[1];
    return SX_OK;
}

static sx_status check_MUL_MAT_ID(sx_tensor *d) {
    const sx_tensor *w = d->src[0], *x = d->src[1], *ids = d->src[2];
    if (!is_f32(x)) return bad(d, "x must be f32");
    if (w->dtype == SX_DTYPE_I32) return bad(d, "w cannot be i32");
    if (ids->dtype != SX_DTYPE_I32 || ids->ne[2] != 1 || ids->ne[3] != 1) return bad(d, "ids must be 2-D i32");
    if (w->ne[3] != 1 || x->ne[3] != 1) return bad(d, "w and x are at most 3-D");
    if (w->ne[0] != x->ne[0]) return bad(d, "inner dimensions differ");
    if (x->ne[1] != 1 && x->ne[1] != ids->ne[0]) return bad(d, "x must have 1 or k columns per row");
    if (x->ne[2] != ids->ne[1]) return bad(d, "x and ids must have the same rows");
    if (!rows_contiguous(w) || x->nb[0] != 4) return bad(d, "rows must be contiguous");
    if (w->ne[0] % sx_dtype_get(w->dtype)->block_size) return bad(d, "K not a multiple of the block size");
    d->dtype = SX_DTYPE_F32;
    d->ne[0] = w->ne[1];
    d->ne[1] = ids->ne[0];
    d->ne[2] = ids->ne[1];
    return SX_OK;
}

static sx_status check_CONCAT(sx_tensor *d) {
    const sx_tensor *a = d->src[0], *b = d->src[1];
    const int dim = d->params.concat.dim;
    if (!is_f32(a) || !is_f32(b)) return bad(d, "sources must be f32");
    if (dim < 0 || dim >= SX_MAX_DIMS) return bad(d, "bad dim");
    for (int i = 0; i < SX_MAX_DIMS; i++)
        if (i != dim && a->ne[i] != b->ne[i]) return bad(d, "shapes differ outside dim");
    d->dtype = SX_DTYPE_F32;
    copy_shape(d, a);
    d->ne[dim] = a->ne[dim] + b->ne[dim];
    return SX_OK;
}

static sx_status check_COPY(sx_tensor *d) {
    const sx_tensor *x = d->src[0];
    const int t = d->params.copy.dtype;
    const bool ok_src = x->dtype == SX_DTYPE_F32 || x->dtype == SX_DTYPE_F16 || x->dtype == SX_DTYPE_BF16;
    const bool ok_dst = t == SX_DTYPE_F32 || t == SX_DTYPE_F16 || t == SX_DTYPE_BF16;
    if (!ok_src || !ok_dst) return bad(d, "copy converts between f32, f16 and bf16");
    d->dtype = (sx_dtype)t;
    copy_shape(d, x);
    return SX_OK;
}
