/* core/model_graph.c — the step graph of the llama / qwen2 / qwen3 family and
 * the KV cache it writes. One function builds prefill, decode and tree
 * verification: they differ only in the batch (positions, mask, rows out). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"

sx_status sx_kv_cache_create(const sx_hparams *hp, sx_device *dev, int n_ctx, sx_dtype dtype, sx_kv_cache **out) {
    *out = NULL;
    if (n_ctx < 1 || n_ctx > (1 << 24)) return sx_set_error(SX_ERR_INVALID_ARG, "kv cache: context size %d out of range", n_ctx);
    if (dtype != SX_DTYPE_F16 && dtype != SX_DTYPE_F32) return sx_set_error(SX_ERR_UNSUPPORTED, "kv cache: type %s (use f16 or f32)", sx_dtype_name(dtype));
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
    if (s == SX_OK) s = sx_buffer_alloc(dev, per_aligned * 2 * (size_t)hp->n_layer, &kv->buf);
    if (s != SX_OK) {
        sx_kv_cache_free(kv);
        return sx_wrap_error(s, "kv cache of %d tokens (%zu MiB)", n_ctx, (per_aligned * 2 * (size_t)hp->n_layer) >> 20);
    }
    for (int il = 0; il < hp->n_layer; il++) {
        sx_tensor *pair[2] = {&kv->k[il], &kv->v[il]};
        for (int j = 0; j < 2; j++) {
            sx_tensor *t = pair[j];
            t->dtype = dtype;
            t->ne[0] = kv->kv_dim;
            t->ne[1] = n_ctx;
            t->ne[2] = t->ne[3] = 1;
            sx_tensor_set_contiguous_strides(t);
            t->role = SX_ROLE_KV;
            t->buffer = kv->buf;
            t->offset = per_aligned * (size_t)(2 * il + j);
            t->device = t->index = t->live_from = -1;
            snprintf(t->name, sizeof t->name, "cache_%c_l%d", j ? 'v' : 'k', il);
        }
    }
    *out = kv;
    return SX_OK;
}

void sx_kv_cache_free(sx_kv_cache *kv) {
    if (!kv) return;
    sx_buffer_free(kv->buf);
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
            sx_tensor *rows = sx_graph_add_get_rows(g, caches[j], s_ids); /* f16 -> f32 -> f16 is exact */
            sx_graph_add_set_rows(g, caches[j], rows, d_ids);
        }
    }
    return sx_graph_status(g);
}

/* ---- forward ---- */
static sx_tensor *reshape2(sx_graph *g, sx_tensor *t, int64_t a, int64_t b) { return sx_graph_reshape(g, t, 2, (int64_t[]){a, b}); }
static sx_tensor *reshape3(sx_graph *g, sx_tensor *t, int64_t a, int64_t b, int64_t c) { return sx_graph_reshape(g, t, 3, (int64_t[]){a, b, c}); }

static sx_tensor *linear(sx_graph *g, sx_tensor *w, sx_tensor *b, sx_tensor *x) {
    sx_tensor *y = sx_graph_add_matmul(g, w, x);
    return b ? sx_graph_add_add(g, y, b) : y;
}

/* One transformer block; x: [n_embd, n] residual in, returns residual out. */
static sx_tensor *build_layer(const sx_model *m, sx_kv_cache *kv, sx_graph *g, int il, sx_tensor *x, sx_tensor *pos, sx_tensor *slots,
                              sx_tensor *mask, const sx_batch *b) {
    const sx_hparams *hp = &m->hp;
    const sx_layer *ly = &m->layers[il];
    const int64_t M = b->mask_width > 0 ? b->mask_width : b->n;
    const int64_t n = b->n, hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv, n_kv = b->n_past + M;

    sx_tensor *h = sx_graph_add_rms_norm(g, x, ly->attn_norm, hp->norm_eps); // [n_embd, n]
    sx_tensor *q = reshape3(g, linear(g, ly->wq, ly->bq, h), hd, nh, n);     // [hd, nh, n]
    sx_tensor *k = reshape3(g, linear(g, ly->wk, ly->bk, h), hd, nkv, n);    // [hd, nkv, n]
    sx_tensor *v = linear(g, ly->wv, ly->bv, h);                             // [hd*nkv, n]
    if (ly->q_norm) q = sx_graph_add_rms_norm(g, q, ly->q_norm, hp->norm_eps);
    if (ly->k_norm) k = sx_graph_add_rms_norm(g, k, ly->k_norm, hp->norm_eps);
    q = sx_graph_add_rope(g, q, pos, hp->rope_mode, hp->rope_dims, hp->rope_base, hp->rope_scale, m->rope_freqs);
    k = sx_graph_add_rope(g, k, pos, hp->rope_mode, hp->rope_dims, hp->rope_base, hp->rope_scale, m->rope_freqs);

    sx_tensor *kc = sx_graph_add_set_rows(g, &kv->k[il], reshape2(g, k, hd * nkv, n), slots); // cache [kv_dim, n_ctx]
    sx_tensor *vc = sx_graph_add_set_rows(g, &kv->v[il], v, slots);
    const size_t es = kc ? kc->nb[0] : 0;
    sx_tensor *kview = sx_graph_view(g, kc, 3, (int64_t[]){hd, nkv, n_kv}, (size_t[]){hd * es, hd * nkv * es}, 0); // [hd, nkv, n_kv]
    sx_tensor *vview = sx_graph_view(g, vc, 3, (int64_t[]){hd, nkv, n_kv}, (size_t[]){hd * es, hd * nkv * es}, 0);
    sx_tensor *a = sx_graph_add_attention(g, q, kview, vview, mask, 1.0f / sqrtf((float)hd), b->n_past); // [hd, nh, n]
    sx_tensor *o = sx_graph_add_matmul(g, ly->wo, reshape2(g, a, hd * nh, n));                       // [n_embd, n]
    x = sx_graph_add_add(g, x, o);

    h = sx_graph_add_rms_norm(g, x, ly->ffn_norm, hp->norm_eps);
    sx_tensor *f = sx_graph_add_silu_mul(g, sx_graph_add_matmul(g, ly->w_gate, h), sx_graph_add_matmul(g, ly->w_up, h)); // [n_ff, n]
    return sx_graph_add_add(g, x, sx_graph_add_matmul(g, ly->w_down, f));
}

sx_status sx_model_build_forward(const sx_model *m, sx_kv_cache *kv, sx_graph *g, const sx_batch *b, sx_forward_out *out) {
    memset(out, 0, sizeof *out);
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
    for (int i = 0; i < b->n_out; i++)
        if (b->out_rows && (b->out_rows[i] < 0 || b->out_rows[i] >= b->n)) return sx_set_error(SX_ERR_INVALID_ARG, "forward: output row out of range");

    int32_t *tmp = malloc(sizeof(int32_t) * (size_t)b->n * 2);
    if (!tmp) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "forward: out of memory");
    int32_t *pos_v = tmp, *slot_v = tmp + b->n;
    for (int i = 0; i < b->n; i++) {
        pos_v[i] = b->pos ? b->pos[i] : b->n_past + i;
        slot_v[i] = b->n_past + (M - b->n) + i;
    }
    if (b->n_moves > 0) SX_RETURN_IF_ERROR(sx_kv_cache_build_move(kv, g, b->move_src, b->move_dst, b->n_moves));
    sx_tensor *tokens = sx_graph_input_i32(g, b->tokens, b->n, "tokens");
    sx_tensor *pos = sx_graph_input_i32(g, pos_v, b->n, "pos");
    sx_tensor *slots = sx_graph_input_i32(g, slot_v, b->n, "slots");
    free(tmp);
    sx_tensor *mask = b->mask ? sx_graph_input_f32(g, b->mask, 2, (int64_t[]){M, b->n}, "mask") : NULL;

    sx_tensor *x = sx_graph_add_get_rows(g, m->tok_embd, tokens); // [n_embd, n]
    for (int il = 0; il < hp->n_layer; il++) {
        for (int f = 0; f < b->n_feature_layers; f++)
            if (b->feature_layers[f] == il) {
                out->features[f] = x;
                sx_graph_set_output(g, x);
            }
        x = build_layer(m, kv, g, il, x, pos, slots, mask, b);
    }
    if (b->feature_buf && b->n_feature_layers > 0) { /* [n_embd * n_features, n] -> rows 0..n-1 */
        sx_tensor *cat = out->features[0];
        for (int f = 1; f < b->n_feature_layers; f++) cat = sx_graph_add_concat(g, cat, out->features[f], 0);
        int32_t *rows = malloc(sizeof(int32_t) * (size_t)b->n);
        if (!rows) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "forward: out of memory");
        for (int i = 0; i < b->n; i++) rows[i] = i;
        sx_graph_add_set_rows(g, b->feature_buf, cat, sx_graph_input_i32(g, rows, b->n, "feature_rows"));
        free(rows);
    }
    if (b->out_rows) x = sx_graph_add_get_rows(g, x, sx_graph_input_i32(g, b->out_rows, b->n_out, "out_rows")); // [n_embd, n_out]
    x = sx_graph_add_rms_norm(g, x, m->out_norm, hp->norm_eps);
    out->logits = sx_graph_add_matmul(g, m->output, x); // [n_vocab, n_out]
    out->argmax = sx_graph_add_argmax(g, out->logits);  // [1, n_out]
    sx_graph_set_output(g, out->logits);
    sx_graph_set_output(g, out->argmax);
    return sx_graph_status(g);
}
