/* core/model_graph.c — the step graph of the llama / qwen2 / qwen3 family and
 * the KV cache it writes. One function builds prefill, decode and tree
 * verification: they differ only in the batch (positions, mask, rows out). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "core/sampler.h"

/* Each layer's K and V on layer_dev[il]: one buffer per distinct device. */
static sx_status kv_cache_create(const sx_hparams *hp, sx_device *const *layer_dev, int n_ctx, sx_dtype dtype, sx_kv_cache **out) {
    *out = NULL;
    if (n_ctx < 1 || n_ctx > (1 << 24)) return sx_set_error(SX_ERR_INVALID_ARG, "kv cache: context size %d out of range", n_ctx);
    if (dtype != SX_DTYPE_F16 && dtype != SX_DTYPE_F32 && dtype != SX_DTYPE_Q8_0 && dtype != SX_DTYPE_Q4_0)
        return sx_set_error(SX_ERR_UNSUPPORTED, "kv cache: type %s (use f16, f32, q8_0 or q4_0)", sx_dtype_name(dtype));
    sx_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "kv cache: out of memory");
    kv->n_layer = hp->n_layer;
    kv->n_ctx = n_ctx;
    kv->kv_dim = hp->n_head_kv * hp->head_dim;
    kv->dtype = dtype;
    kv->k = calloc((size_t)hp->n_layer, sizeof *kv->k);
    kv->v = calloc((size_t)hp->n_layer, sizeof *kv->v);
    const size_t per = sx_dtype_row_size(dtype, kv->kv_dim) * (size_t)n_ctx;
    const size_t per_aligned = (per + 255) & ~(size_t)255;
    sx_status s = kv->k && kv->v ? SX_OK : sx_set_error(SX_ERR_OUT_OF_MEMORY, "kv cache: out of memory");
    sx_device *devs[SX_KV_MAX_BUFS];
    int n_on[SX_KV_MAX_BUFS] = {0};
    for (int il = 0; il < hp->n_layer && s == SX_OK; il++) {
        int b = 0;
        while (b < kv->n_bufs && devs[b] != layer_dev[il]) b++;
        if (b == kv->n_bufs) {
            if (b == SX_KV_MAX_BUFS) s = sx_set_error(SX_ERR_INVALID_ARG, "kv cache: layers on more than %d devices", SX_KV_MAX_BUFS);
            else devs[kv->n_bufs++] = layer_dev[il];
        }
        if (s == SX_OK) n_on[b]++;
    }
    for (int b = 0; b < kv->n_bufs && s == SX_OK; b++) {
        s = sx_buffer_alloc(devs[b], per_aligned * 2 * (size_t)n_on[b], &kv->bufs[b]);
        if (s != SX_OK) s = sx_wrap_error(s, "kv cache of %d tokens on %s (%zu MiB)", n_ctx, devs[b]->info.name, (per_aligned * 2 * (size_t)n_on[b]) >> 20);
    }
    if (s != SX_OK) {
        sx_kv_cache_free(kv);
        return s;
    }
    /* quantized: rotate K and V by the normalized Walsh-Hadamard matrix of the head dim (a power of two) */
    const int hd = hp->head_dim;
    const char *norot = getenv("SPECEXIT_KV_NO_ROTATE");
    kv->head_dim = hd;
    kv->rotate = (dtype == SX_DTYPE_Q8_0 || dtype == SX_DTYPE_Q4_0) && hd >= 2 && hd <= 512 && (hd & (hd - 1)) == 0 && !(norot && atoi(norot) > 0);
    float *h = kv->rotate ? malloc(sizeof(float) * (size_t)hd * (size_t)hd) : NULL;
    if (kv->rotate && !h) s = sx_set_error(SX_ERR_OUT_OF_MEMORY, "kv cache: out of memory");
    for (int i = 0; h && i < hd; i++)
        for (int j = 0; j < hd; j++) h[(size_t)i * hd + j] = (__builtin_popcount((unsigned)(i & j)) & 1 ? -1.0f : 1.0f) / sqrtf((float)hd);
    for (int b = 0; b < kv->n_bufs && kv->rotate && s == SX_OK; b++) {
        sx_tensor *t = &kv->rot[b];
        t->dtype = SX_DTYPE_F32;
        t->ne[0] = t->ne[1] = hd;
        t->ne[2] = t->ne[3] = 1;
        sx_tensor_set_contiguous_strides(t);
        t->role = SX_ROLE_WEIGHT;
        t->device = t->index = t->live_from = -1;
        snprintf(t->name, sizeof t->name, "kv_rotation_%d", b);
        s = sx_buffer_alloc(devs[b], sizeof(float) * (size_t)hd * (size_t)hd, &kv->rot_bufs[b]);
        if (s == SX_OK) {
            t->buffer = kv->rot_bufs[b];
            s = sx_tensor_write(t, h, sizeof(float) * (size_t)hd * (size_t)hd);
        }
    }
    free(h);
    if (s != SX_OK) {
        sx_kv_cache_free(kv);
        return s;
    }
    int at[SX_KV_MAX_BUFS] = {0};
    for (int il = 0; il < hp->n_layer; il++) {
        int b = 0;
        while (devs[b] != layer_dev[il]) b++;
        sx_tensor *pair[2] = {&kv->k[il], &kv->v[il]};
        for (int j = 0; j < 2; j++) {
            sx_tensor *t = pair[j];
            t->dtype = dtype;
            t->ne[0] = kv->kv_dim;
            t->ne[1] = n_ctx;
            t->ne[2] = t->ne[3] = 1;
            sx_tensor_set_contiguous_strides(t);
            t->role = SX_ROLE_KV;
            t->buffer = kv->bufs[b];
            t->offset = per_aligned * (size_t)at[b]++;
            t->device = t->index = t->live_from = -1;
            snprintf(t->name, sizeof t->name, "cache_%c_l%d", j ? 'v' : 'k', il);
        }
    }
    *out = kv;
    return SX_OK;
}

sx_status sx_kv_cache_create(const sx_hparams *hp, sx_device *dev, int n_ctx, sx_dtype dtype, sx_kv_cache **out) {
    *out = NULL;
    sx_device **devs = malloc(sizeof *devs * (size_t)(hp->n_layer > 0 ? hp->n_layer : 1));
    if (!devs) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "kv cache: out of memory");
    for (int il = 0; il < hp->n_layer; il++) devs[il] = dev;
    const sx_status s = kv_cache_create(hp, devs, n_ctx, dtype, out);
    free(devs);
    return s;
}

sx_status sx_kv_cache_create_for_model(const sx_model *m, int n_ctx, sx_dtype dtype, sx_kv_cache **out) {
    *out = NULL;
    sx_device **devs = malloc(sizeof *devs * (size_t)m->hp.n_layer);
    if (!devs) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "kv cache: out of memory");
    for (int il = 0; il < m->hp.n_layer; il++) devs[il] = m->layers[il].dev;
    const sx_status s = kv_cache_create(&m->hp, devs, n_ctx, dtype, out);
    free(devs);
    return s;
}

size_t sx_kv_cache_bytes(const sx_kv_cache *kv) {
    size_t n = 0;
    for (int b = 0; kv && b < kv->n_bufs; b++) n += kv->bufs[b]->size;
    return n;
}

sx_tensor *sx_kv_cache_rotation(sx_kv_cache *kv, int il) {
    if (!kv->rotate) return NULL;
    for (int b = 0; b < kv->n_bufs; b++)
        if (kv->bufs[b] == kv->k[il].buffer) return &kv->rot[b];
    return NULL;
}

void sx_kv_cache_free(sx_kv_cache *kv) {
    if (!kv) return;
    for (int b = 0; b < kv->n_bufs; b++) sx_buffer_free(kv->bufs[b]), sx_buffer_free(kv->rot_bufs[b]);
    free(kv->k);
    free(kv->v);
    free(kv);
}

sx_status sx_kv_cache_build_move(sx_kv_cache *kv, sx_graph *g, const int32_t *src, const int32_t *dst, int n) {
    for (int i = 0; i < n; i++)
        if (src[i] < 0 || src[i] >= kv->n_ctx || dst[i] < 0 || dst[i] >= kv->n_ctx)
            return sx_set_error(SX_ERR_INVALID_ARG, "kv move: slot out of range");
    sx_tensor *s_ids = sx_graph_input_i32(g, src, n, "kv_move_src");
    sx_tensor *d_ids = sx_graph_input_i32(g, dst, n, "kv_move_dst");
    for (int il = 0; il < kv->n_layer; il++) {
        sx_tensor *caches[2] = {&kv->k[il], &kv->v[il]};
        for (int j = 0; j < 2; j++) {
            sx_tensor *rows = sx_graph_add_get_rows(g, caches[j], s_ids); /* f16, q8_0 or q4_0 -> f32 -> back is exact (ir/dtype.c) */
            sx_graph_add_set_rows(g, caches[j], rows, d_ids);
        }
    }
    return sx_graph_status(g);
}

/* ---- forward ---- */
static sx_tensor *reshape2(sx_graph *g, sx_tensor *t, int64_t a, int64_t b) { return sx_graph_reshape(g, t, 2, (int64_t[]){a, b}); }
static sx_tensor *reshape3(sx_graph *g, sx_tensor *t, int64_t a, int64_t b, int64_t c) { return sx_graph_reshape(g, t, 3, (int64_t[]){a, b, c}); }

/* t [hd, ...] (contiguous) times the rotation r [hd, hd], per head: the shape kept */
static sx_tensor *rotate_heads(sx_graph *g, sx_tensor *r, sx_tensor *t, int64_t hd) {
    const int64_t n = sx_tensor_nelements(t) / hd;
    sx_tensor *y = sx_graph_add_matmul(g, r, sx_graph_reshape(g, t, 2, (int64_t[]){hd, n}));
    int64_t ne[4];
    memcpy(ne, t->ne, sizeof ne);
    return sx_graph_reshape(g, y, t->ne[3] > 1 ? 4 : t->ne[2] > 1 ? 3 : 2, ne);
}

static sx_tensor *linear(sx_graph *g, sx_tensor *w, sx_tensor *b, sx_tensor *x) {
    sx_tensor *y = sx_graph_add_matmul(g, w, x);
    return b ? sx_graph_add_add(g, y, b) : y;
}

/* The routed-experts FFN (qwen3moe, as Hugging Face's Qwen3MoeSparseMoeBlock):
 * the router's top k experts per row, weighted by the softmax of their router
 * logits (the softmax over all experts renormalised over the picks), each a
 * SwiGLU FFN; the weighted outputs summed in pick order. Every op works row
 * by row, so a row's result does not depend on the other rows. */
static sx_tensor *moe_ffn(const sx_model *m, sx_graph *g, const sx_layer *ly, sx_tensor *h, int64_t rows) {
    const sx_hparams *hp = &m->hp;
    const int64_t k = hp->n_expert_used, E = hp->n_embd;
    sx_tensor *logits = sx_graph_add_matmul(g, ly->gate_inp, h);                              // [n_expert, rows]
    sx_tensor *ids = sx_graph_add_top_k(g, logits, (int)k);                                    // [k, rows]
    sx_tensor *w = sx_graph_add_softmax(g, sx_graph_add_gather(g, logits, ids));               // [k, rows]
    sx_tensor *h3 = sx_graph_reshape(g, h, 3, (int64_t[]){E, 1, rows});                        // [n_embd, 1, rows]
    sx_tensor *a = sx_graph_add_silu_mul(g, sx_graph_add_mul_mat_id(g, ly->gate_exps, h3, ids),
                                         sx_graph_add_mul_mat_id(g, ly->up_exps, h3, ids));    // [n_ff_exp, k, rows]
    sx_tensor *y = sx_graph_add_mul_mat_id(g, ly->down_exps, a, ids);                          // [n_embd, k, rows]
    y = sx_graph_add_mul(g, y, sx_graph_reshape(g, w, 3, (int64_t[]){1, k, rows}));            // each pick times its weight
    sx_tensor *sum = NULL;
    for (int64_t j = 0; j < k; j++) {
        sx_tensor *yj = sx_graph_view(g, y, 2, (int64_t[]){E, rows}, (size_t[]){y ? y->nb[2] : 0}, (size_t)j * (y ? y->nb[1] : 0));
        sum = sum ? sx_graph_add_add(g, sum, yj) : yj;
    }
    return sum;                                                                                // [n_embd, rows]
}

/* One sequence of a (possibly combined) forward pass: its batch, its cache
 * and where its rows start in the combined rows. */
typedef struct seq_in {
    sx_kv_cache *kv;
    const sx_batch *b;
    int64_t r0;
    sx_tensor *slots, *mask;
} seq_in;

/* One transformer block over all rows; x: [n_embd, rows] residual in,
 * returns residual out. Everything but attention (and the cache writes it
 * reads) is row-wise, so it runs once over the rows of every sequence;
 * attention runs per sequence on its own cache. */
static sx_tensor *build_layer(const sx_model *m, sx_graph *g, int il, sx_tensor *x, sx_tensor *pos, const seq_in *seqs, int n_seq,
                              int64_t rows, sx_tensor **parts) {
    const sx_hparams *hp = &m->hp;
    const sx_layer *ly = &m->layers[il];
    const int64_t hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv;

    sx_tensor *h = sx_graph_add_rms_norm(g, x, ly->attn_norm, hp->norm_eps);   // [n_embd, rows]
    sx_tensor *q = reshape3(g, linear(g, ly->wq, ly->bq, h), hd, nh, rows);    // [hd, nh, rows]
    sx_tensor *k = reshape3(g, linear(g, ly->wk, ly->bk, h), hd, nkv, rows);   // [hd, nkv, rows]
    sx_tensor *v = linear(g, ly->wv, ly->bv, h);                               // [hd*nkv, rows]
    if (ly->q_norm) q = sx_graph_add_rms_norm(g, q, ly->q_norm, hp->norm_eps);
    if (ly->k_norm) k = sx_graph_add_rms_norm(g, k, ly->k_norm, hp->norm_eps);
    q = sx_graph_add_rope(g, q, pos, hp->rope_mode, hp->rope_dims, hp->rope_base, hp->rope_scale, ly->rope_freqs);
    k = sx_graph_add_rope(g, k, pos, hp->rope_mode, hp->rope_dims, hp->rope_base, hp->rope_scale, ly->rope_freqs);

    sx_tensor *k2 = reshape2(g, k, hd * nkv, rows); // [hd*nkv, rows]
    for (int i = 0; i < n_seq; i++) {
        const sx_batch *b = seqs[i].b;
        sx_kv_cache *kv = seqs[i].kv;
        const int64_t n = b->n, r0 = seqs[i].r0, n_kv = b->n_past + (b->mask_width > 0 ? b->mask_width : b->n);
        sx_tensor *rot = sx_kv_cache_rotation(kv, il); /* a quantized cache holds rotated K and V: q and the output follow */
        sx_tensor *kin = sx_graph_slice(g, k2, 1, r0, n), *vin = sx_graph_slice(g, v, 1, r0, n);
        if (rot) kin = rotate_heads(g, rot, kin, hd), vin = rotate_heads(g, rot, vin, hd);
        sx_tensor *kc = sx_graph_add_set_rows(g, &kv->k[il], kin, seqs[i].slots); // cache [kv_dim, n_ctx]
        sx_tensor *vc = sx_graph_add_set_rows(g, &kv->v[il], vin, seqs[i].slots);
        const size_t rh = sx_dtype_row_size(kv->dtype, hd); /* one head's row: whole blocks for q8_0 */
        sx_tensor *kview = sx_graph_view(g, kc, 3, (int64_t[]){hd, nkv, n_kv}, (size_t[]){rh, rh * (size_t)nkv}, 0); // [hd, nkv, n_kv]
        sx_tensor *vview = sx_graph_view(g, vc, 3, (int64_t[]){hd, nkv, n_kv}, (size_t[]){rh, rh * (size_t)nkv}, 0);
        sx_tensor *qi = n_seq == 1 ? q : sx_graph_slice(g, q, 2, r0, n);
        if (rot) qi = rotate_heads(g, rot, qi, hd);
        parts[i] = sx_graph_add_attention(g, qi, kview, vview, seqs[i].mask, 1.0f / sqrtf((float)hd), b->n_past); // [hd, nh, n]
        if (rot) parts[i] = rotate_heads(g, rot, parts[i], hd); /* the Hadamard matrix is its own inverse */
    }
    sx_tensor *a = sx_graph_add_concat_n(g, parts, n_seq, 2);                                  // [hd, nh, rows]
    sx_tensor *o = sx_graph_add_matmul(g, ly->wo, reshape2(g, a, hd * nh, rows)); // [n_embd, rows]
    x = sx_graph_add_add(g, o, x); /* the layer's own output first: the scheduler places an op by its first computed source,
                                      so the residual stream moves to the layer's device where layers are split (-ngl) */

    h = sx_graph_add_rms_norm(g, x, ly->ffn_norm, hp->norm_eps);
    if (ly->gate_inp) return sx_graph_add_add(g, moe_ffn(m, g, ly, h, rows), x);
    sx_tensor *f = sx_graph_add_silu_mul(g, sx_graph_add_matmul(g, ly->w_gate, h), sx_graph_add_matmul(g, ly->w_up, h)); // [n_ff, rows]
    return sx_graph_add_add(g, sx_graph_add_matmul(g, ly->w_down, f), x);
}

sx_status sx_model_check_batch(const sx_model *m, const sx_kv_cache *kv, const sx_batch *b) {
    const sx_hparams *hp = &m->hp;
    if (b->n < 1) return sx_set_error(SX_ERR_INVALID_ARG, "forward: empty batch");
    const int M = b->mask_width > 0 ? b->mask_width : b->n;
    if (b->mask_width && (!b->mask || b->mask_width < b->n)) return sx_set_error(SX_ERR_INVALID_ARG, "forward: mask width needs a mask of at least n");
    if (b->n_past < 0 || (int64_t)b->n_past + M > kv->n_ctx)
        return sx_set_error(SX_ERR_CONTEXT_FULL, "forward: %d cached + %d new tokens exceed the context of %d", b->n_past, M, kv->n_ctx);
    if (b->n_feature_layers < 0 || b->n_feature_layers > SX_MAX_FEATURE_LAYERS)
        return sx_set_error(SX_ERR_INVALID_ARG, "forward: at most %d feature layers", SX_MAX_FEATURE_LAYERS);
    for (int i = 0; i < b->n; i++)
        if (b->tokens[i] < 0 || b->tokens[i] >= hp->n_vocab)
            return sx_set_error(SX_ERR_INVALID_ARG, "forward: token id %d out of range [0, %d)", b->tokens[i], hp->n_vocab);
    if (b->out_rows && b->n_out < 1) return sx_set_error(SX_ERR_INVALID_ARG, "forward: no output rows");
    for (int i = 0; i < b->n_out; i++)
        if (b->out_rows && (b->out_rows[i] < 0 || b->out_rows[i] >= b->n)) return sx_set_error(SX_ERR_INVALID_ARG, "forward: output row out of range");
    for (int i = 0; i < b->n_moves; i++)
        if (b->move_src[i] < 0 || b->move_src[i] >= kv->n_ctx || b->move_dst[i] < 0 || b->move_dst[i] >= kv->n_ctx)
            return sx_set_error(SX_ERR_INVALID_ARG, "kv move: slot out of range");
    return SX_OK;
}

sx_status sx_model_build_forward_multi(const sx_model *m, int n_seq, sx_kv_cache *const *kvs, const sx_batch *bs, sx_graph *g,
                                       sx_forward_out *outs) {
    const sx_hparams *hp = &m->hp;
    if (n_seq < 1) return sx_set_error(SX_ERR_INVALID_ARG, "forward: no sequences");
    int64_t rows = 0, n_out = 0;
    for (int i = 0; i < n_seq; i++) {
        memset(&outs[i], 0, sizeof outs[i]);
        SX_RETURN_IF_ERROR(sx_model_check_batch(m, kvs[i], &bs[i]));
        rows += bs[i].n;
        n_out += bs[i].out_rows ? bs[i].n_out : bs[i].n;
    }
    seq_in *seqs = calloc((size_t)n_seq, sizeof *seqs);
    sx_tensor **parts = calloc((size_t)n_seq, sizeof *parts);
    sx_tensor **layer_in = calloc((size_t)hp->n_layer, sizeof *layer_in);
    int32_t *tok_v = malloc(sizeof(int32_t) * (size_t)(3 * rows + n_out));
    if (!seqs || !parts || !layer_in || !tok_v) {
        free(seqs), free(parts), free(layer_in), free(tok_v);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "forward: out of memory");
    }
    int32_t *pos_v = tok_v + rows, *slot_v = pos_v + rows, *out_v = slot_v + rows;
    bool all_rows_out = true;
    for (int i = 0, r = 0, o = 0; i < n_seq; i++) {
        const sx_batch *b = &bs[i];
        const int M = b->mask_width > 0 ? b->mask_width : b->n;
        seqs[i].kv = kvs[i];
        seqs[i].b = b;
        seqs[i].r0 = r;
        for (int j = 0; j < b->n; j++) {
            tok_v[r + j] = b->tokens[j];
            pos_v[r + j] = b->pos ? b->pos[j] : b->n_past + j;
            slot_v[r + j] = b->n_past + (M - b->n) + j;
        }
        if (b->out_rows) all_rows_out = false;
        const int no = b->out_rows ? b->n_out : b->n;
        for (int j = 0; j < no; j++) out_v[o + j] = r + (b->out_rows ? b->out_rows[j] : j);
        r += b->n;
        o += no;
    }
    sx_status st = SX_OK;
    for (int i = 0; i < n_seq && st == SX_OK; i++)
        if (bs[i].n_moves > 0) st = sx_kv_cache_build_move(kvs[i], g, bs[i].move_src, bs[i].move_dst, bs[i].n_moves);
    if (st != SX_OK) {
        free(seqs), free(parts), free(layer_in), free(tok_v);
        return st;
    }
    sx_tensor *tokens = sx_graph_input_i32(g, tok_v, rows, "tokens");
    sx_tensor *pos = sx_graph_input_i32(g, pos_v, rows, "pos");
    for (int i = 0; i < n_seq; i++) {
        const sx_batch *b = &bs[i];
        seqs[i].slots = sx_graph_input_i32(g, slot_v + seqs[i].r0, b->n, "slots");
        seqs[i].mask = b->mask ? sx_graph_input_f32(g, b->mask, 2, (int64_t[]){b->mask_width > 0 ? b->mask_width : b->n, b->n}, "mask") : NULL;
    }

    sx_tensor *x = sx_graph_add_get_rows(g, m->tok_embd, tokens); // [n_embd, rows]
    for (int il = 0; il < hp->n_layer; il++) {
        layer_in[il] = x;
        for (int i = 0; i < n_seq; i++)
            for (int f = 0; f < bs[i].n_feature_layers; f++)
                if (bs[i].feature_layers[f] == il) {
                    if (n_seq == 1) outs[0].features[f] = x;
                    sx_graph_set_output(g, x);
                }
        x = build_layer(m, g, il, x, pos, seqs, n_seq, rows, parts);
    }
    /* the features of each sequence, concatenated [n_embd * n_features, n] -> rows 0..n-1 of its buffer */
    for (int i = 0; i < n_seq && sx_graph_status(g) == SX_OK; i++) {
        const sx_batch *b = &bs[i];
        if (!b->feature_buf || b->n_feature_layers < 1) continue;
        sx_tensor *cat = NULL;
        for (int f = 0; f < b->n_feature_layers; f++) {
            const int il = b->feature_layers[f];
            if (il < 0 || il >= hp->n_layer) {
                sx_set_error(SX_ERR_INVALID_ARG, "forward: feature layer %d out of range", il);
                free(seqs), free(parts), free(layer_in), free(tok_v);
                return SX_ERR_INVALID_ARG;
            }
            sx_tensor *part = n_seq == 1 ? layer_in[il] : sx_graph_slice(g, layer_in[il], 1, seqs[i].r0, b->n);
            cat = cat ? sx_graph_add_concat(g, cat, part, 0) : part;
        }
        for (int j = 0; j < b->n; j++) slot_v[j] = j;
        sx_graph_add_set_rows(g, b->feature_buf, cat, sx_graph_input_i32(g, slot_v, b->n, "feature_rows"));
    }
    if (!all_rows_out) x = sx_graph_add_get_rows(g, x, sx_graph_input_i32(g, out_v, n_out, "out_rows")); // [n_embd, n_out]
    x = sx_graph_add_rms_norm(g, x, m->out_norm, hp->norm_eps);
    sx_tensor *logits = sx_graph_add_matmul(g, m->output, x); // [n_vocab, n_out]
    sx_tensor *argmax = sx_graph_add_argmax(g, logits);       // [1, n_out]
    sx_graph_set_output(g, logits);
    sx_graph_set_output(g, argmax);
    sx_tensor *top_ids = NULL, *top_vals = NULL; /* sampling sessions: each row's largest logits, a few hundred bytes instead of the row */
    for (int i = 0; i < n_seq && !top_ids; i++)
        if (bs[i].top_ids && SX_SAMPLER_TOP_MAX < hp->n_vocab) {
            top_ids = sx_graph_add_top_k(g, logits, SX_SAMPLER_TOP_MAX); // [K, n_out]
            top_vals = sx_graph_add_gather(g, logits, top_ids);         // [K, n_out]
            sx_graph_set_output(g, top_ids);
            sx_graph_set_output(g, top_vals);
        }
    for (int i = 0, o = 0; i < n_seq; i++) {
        const int no = bs[i].out_rows ? bs[i].n_out : bs[i].n;
        outs[i].logits = logits;
        outs[i].argmax = argmax;
        outs[i].top_ids = top_ids;
        outs[i].top_vals = top_vals;
        outs[i].row0 = o;
        outs[i].n_out = no;
        o += no;
    }
    free(seqs), free(parts), free(layer_in), free(tok_v);
    return sx_graph_status(g);
}

sx_status sx_model_build_forward(const sx_model *m, sx_kv_cache *kv, sx_graph *g, const sx_batch *b, sx_forward_out *out) {
    return sx_model_build_forward_multi(m, 1, &kv, b, g, out);
}
