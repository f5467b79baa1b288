/* core/eagle3.c — loading an EAGLE-3 draft (layout in eagle3.h) and building
 * its one-layer step graph. */
#include "core/eagle3.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/weights.h"

static sx_status get_u32(const sx_gguf *g, const char *key, bool required, uint32_t def, uint32_t lo, uint32_t hi, int *out) {
    uint32_t v;
    sx_status s = sx_gguf_get_u32(g, key, &v);
    if (s == SX_ERR_NOT_FOUND && !required) v = def;
    else if (s == SX_ERR_NOT_FOUND) return sx_set_error(SX_ERR_FORMAT, "%s: missing key %s", sx_gguf_name(g), key);
    else if (s != SX_OK) return s;
    if (v < lo || v > hi) return sx_set_error(SX_ERR_FORMAT, "%s: %s = %u out of range [%u, %u]", sx_gguf_name(g), key, v, lo, hi);
    *out = (int)v;
    return SX_OK;
}

static sx_status read_hparams(const sx_gguf *g, const sx_model *t, sx_eagle3_hparams *hp) {
    char arch[32] = "";
    sx_status s = sx_gguf_get_str_copy(g, "general.architecture", arch, sizeof arch);
    if (s != SX_OK || strcmp(arch, "eagle3") != 0)
        return sx_set_error(SX_ERR_UNSUPPORTED, "%s: not an EAGLE-3 draft (general.architecture '%s', expected 'eagle3')", sx_gguf_name(g), arch);
    const uint32_t big = 1u << 20;
    SX_RETURN_IF_ERROR(get_u32(g, "eagle3.embedding_length", true, 0, 1, big, &hp->n_embd));
    SX_RETURN_IF_ERROR(get_u32(g, "eagle3.feed_forward_length", true, 0, 1, big, &hp->n_ff));
    SX_RETURN_IF_ERROR(get_u32(g, "eagle3.attention.head_count", true, 0, 1, 4096, &hp->n_head));
    SX_RETURN_IF_ERROR(get_u32(g, "eagle3.attention.head_count_kv", false, (uint32_t)hp->n_head, 1, 4096, &hp->n_head_kv));
    SX_RETURN_IF_ERROR(get_u32(g, "eagle3.attention.key_length", false, (uint32_t)(hp->n_embd / hp->n_head), 2, 4096, &hp->head_dim));
    SX_RETURN_IF_ERROR(get_u32(g, "eagle3.vocab_size", true, 0, 2, 1u << 24, &hp->n_vocab));
    SX_RETURN_IF_ERROR(get_u32(g, "eagle3.target_vocab_size", false, (uint32_t)t->hp.n_vocab, 2, 1u << 24, &hp->n_vocab_target));
    SX_RETURN_IF_ERROR(get_u32(g, "eagle3.target_hidden_size", false, (uint32_t)hp->n_embd, 1, big, &hp->n_embd_target));
    SX_RETURN_IF_ERROR(get_u32(g, "eagle3.signal_rows", false, 0, 0, SX_EAGLE3_MAX_SIGNALS, &hp->n_signals));
    hp->norm_eps = sx_gguf_get_f32_or(g, "eagle3.attention.layer_norm_rms_epsilon", 1e-6f);
    hp->exit_conf = sx_gguf_get_f32_or(g, "eagle3.exit.conf", NAN);
    hp->exit_progress = sx_gguf_get_f32_or(g, "eagle3.exit.progress", NAN);
    hp->exit_remain = sx_gguf_get_f32_or(g, "eagle3.exit.remain", NAN);
    hp->exit_alpha = sx_gguf_get_f32_or(g, "eagle3.exit.alpha", NAN);
    if (!(hp->exit_alpha > 0 && hp->exit_alpha <= 1)) hp->exit_alpha = NAN;
    hp->rope_base = sx_gguf_get_f32_or(g, "eagle3.rope.freq_base", 10000.0f);
    if (!(hp->norm_eps > 0) || !(hp->rope_base > 0)) return sx_set_error(SX_ERR_FORMAT, "%s: bad norm epsilon or rope base", sx_gguf_name(g));
    /* RoPE scaling: linear divides positions by the factor; llama3 divides
     * each pair's frequency by rope_freqs.weight (bound by the loader) */
    hp->rope_scale = 1.0f;
    hp->rope_llama3 = false;
    char scaling[32] = "";
    s = sx_gguf_get_str_copy(g, "eagle3.rope.scaling.type", scaling, sizeof scaling);
    if (s == SX_OK && !strcmp(scaling, "linear")) {
        const float factor = sx_gguf_get_f32_or(g, "eagle3.rope.scaling.factor", NAN);
        if (!(factor > 0)) return sx_set_error(SX_ERR_FORMAT, "%s: linear rope scaling needs a positive eagle3.rope.scaling.factor", sx_gguf_name(g));
        hp->rope_scale = 1.0f / factor;
    } else if (s == SX_OK && !strcmp(scaling, "llama3")) {
        hp->rope_llama3 = true;
    } else if (s == SX_OK && strcmp(scaling, "none") != 0) {
        return sx_set_error(SX_ERR_UNSUPPORTED, "%s: eagle3.rope.scaling.type '%s' is not supported (linear, llama3)", sx_gguf_name(g), scaling);
    } else if (s != SX_OK && s != SX_ERR_NOT_FOUND) {
        return sx_wrap_error(s, "%s: eagle3.rope.scaling.type", sx_gguf_name(g));
    }
    if (hp->n_signals != 0 && hp->n_signals != 3)
        return sx_set_error(SX_ERR_FORMAT, "%s: eagle3.signal_rows = %d (0 or 3)", sx_gguf_name(g), hp->n_signals);
    if (hp->n_head % hp->n_head_kv) return sx_set_error(SX_ERR_FORMAT, "%s: heads not a multiple of kv heads", sx_gguf_name(g));
    /* target layers: default 2, L/2, L-3 */
    const int L = t->hp.n_layer;
    int def[3] = {2, L / 2, L - 3};
    sx_gguf_type et;
    uint64_t n;
    const void *data;
    s = sx_gguf_get_arr(g, "eagle3.target_layers", &et, &n, &data);
    if (s == SX_OK) {
        if (et != SX_GGUF_TYPE_INT32 || n != 3) return sx_set_error(SX_ERR_FORMAT, "%s: eagle3.target_layers must be 3 int32", sx_gguf_name(g));
        memcpy(def, data, sizeof def);
    } else if (s != SX_ERR_NOT_FOUND) {
        return s;
    }
    for (int i = 0; i < 3; i++) {
        if (def[i] < 0 || def[i] >= L)
            return sx_set_error(SX_ERR_FORMAT, "%s: feature layer %d is outside the target's %d layers", sx_gguf_name(g), def[i], L);
        hp->target_layers[i] = def[i];
    }
    /* the draft must fit its target */
    if (hp->n_embd_target != t->hp.n_embd)
        return sx_set_error(SX_ERR_INVALID_ARG, "%s: draft expects target hidden size %d, the target has %d", sx_gguf_name(g), hp->n_embd_target,
                            t->hp.n_embd);
    if (hp->n_vocab_target != t->hp.n_vocab)
        return sx_set_error(SX_ERR_INVALID_ARG, "%s: draft expects a target vocabulary of %d, the target has %d", sx_gguf_name(g),
                            hp->n_vocab_target, t->hp.n_vocab);
    if (hp->n_vocab > hp->n_vocab_target)
        return sx_set_error(SX_ERR_FORMAT, "%s: draft vocabulary %d larger than the target's %d", sx_gguf_name(g), hp->n_vocab, hp->n_vocab_target);
    return SX_OK;
}

/* A copy of the target's embedding on the draft's device (different devices). */
static sx_status copy_embedding(sx_eagle3 *d, const sx_model *t, sx_device *dev) {
    sx_tensor *e = &d->tensors[d->n_tensors++];
    *e = *t->tok_embd;
    const size_t bytes = sx_tensor_nbytes(e);
    sx_buffer *buf;
    SX_RETURN_IF_ERROR(sx_buffer_alloc(dev, bytes, &buf));
    void *host = malloc(bytes);
    sx_status s = host ? sx_tensor_read(t->tok_embd, host, bytes) : sx_set_error(SX_ERR_OUT_OF_MEMORY, "draft: embedding copy");
    if (s == SX_OK) s = dev->vt->buffer_write(buf, 0, host, bytes);
    free(host);
    e->buffer = buf;
    e->offset = 0;
    d->tok_embd = e;
    d->embd_buf = buf;
    return s;
}

sx_status sx_eagle3_load(const char *path, const sx_model *target, sx_device *dev, sx_eagle3 **out) {
    *out = NULL;
    sx_eagle3 *d = calloc(1, sizeof *d);
    if (!d) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "draft: out of memory");
    d->dev = dev;
    sx_status s = sx_gguf_open(path, &d->gguf);
    if (s == SX_OK) s = read_hparams(d->gguf, target, &d->hp);
    const sx_eagle3_hparams *hp = &d->hp;
    sx_weight_loader L = {d->gguf, path, "eagle3", d->gguf ? sx_gguf_data_offset(d->gguf) : 0, d->tensors, 0, 18, NULL};
    const int H = hp->n_embd, q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
#define B(field, name, a, b, opt, f32) if (s == SX_OK) s = sx_weights_bind(&L, name, a, b, opt, f32, &d->field)
    B(fc, "fc.weight", 3 * hp->n_embd_target, H + hp->n_signals, false, false);
    B(fc_b, "fc.bias", H + hp->n_signals, 0, true, true);
    B(hidden_norm, "hidden_norm.weight", H, 0, false, true);
    B(input_norm, "input_norm.weight", H, 0, false, true);
    B(wq, "attn_q.weight", 2 * H, q_dim, false, false);
    B(wk, "attn_k.weight", 2 * H, kv_dim, false, false);
    B(wv, "attn_v.weight", 2 * H, kv_dim, false, false);
    B(wo, "attn_output.weight", q_dim, H, false, false);
    B(ffn_norm, "ffn_norm.weight", H, 0, false, true);
    B(w_gate, "ffn_gate.weight", H, hp->n_ff, false, false);
    B(w_up, "ffn_up.weight", H, hp->n_ff, false, false);
    B(w_down, "ffn_down.weight", hp->n_ff, H, false, false);
    B(out_norm, "output_norm.weight", H, 0, false, true);
    B(output, "output.weight", H, hp->n_vocab, false, false);
    B(tok_embd, "token_embd.weight", H, hp->n_vocab_target, true, false);
    if (s == SX_OK) { /* llama3 RoPE scaling: f32 [head_dim/2] divisors, as a Llama 3.1 target's */
        const int64_t i = sx_gguf_find_tensor(d->gguf, "rope_freqs.weight");
        sx_gguf_tensor_info ti;
        if (i >= 0 && (s = sx_gguf_tensor(d->gguf, i, &ti)) == SX_OK && (ti.dtype != SX_DTYPE_F32 || ti.n_dims != 1 || ti.ne[0] != hp->head_dim / 2))
            s = sx_set_error(SX_ERR_FORMAT, "%s: rope_freqs.weight must be f32 [head_dim/2 = %d], not %s [%lld%s]", path, hp->head_dim / 2,
                             sx_dtype_name(ti.dtype), (long long)ti.ne[0], ti.n_dims > 1 ? ", ..." : "");
        if (s == SX_OK && i < 0 && hp->rope_llama3)
            s = sx_set_error(SX_ERR_FORMAT, "%s: llama3 rope scaling (eagle3.rope.scaling.type) but no rope_freqs.weight", path);
    }
    B(rope_freqs, "rope_freqs.weight", hp->head_dim / 2, 0, true, true);
#undef B
    if (s == SX_OK) { /* d2t: i32 offsets, checked */
        const int64_t i = sx_gguf_find_tensor(d->gguf, "d2t");
        if (i >= 0) {
            sx_gguf_tensor_info ti;
            s = sx_gguf_tensor(d->gguf, i, &ti);
            if (s == SX_OK && (ti.dtype != SX_DTYPE_I32 || ti.n_dims != 1 || ti.ne[0] != hp->n_vocab))
                s = sx_set_error(SX_ERR_FORMAT, "%s: d2t must be i32 [%d]", path, hp->n_vocab);
            if (s == SX_OK && !(d->d2t_host = malloc(sizeof(int32_t) * (size_t)hp->n_vocab))) s = sx_set_error(SX_ERR_OUT_OF_MEMORY, "draft: d2t");
            if (s == SX_OK) memcpy(d->d2t_host, ti.data, sizeof(int32_t) * (size_t)hp->n_vocab);
            for (int v = 0; s == SX_OK && v < hp->n_vocab; v++) {
                const int64_t tid = (int64_t)v + d->d2t_host[v];
                if (tid < 0 || tid >= hp->n_vocab_target)
                    s = sx_set_error(SX_ERR_FORMAT, "%s: d2t maps draft id %d to %lld, outside the target vocabulary", path, v, (long long)tid);
            }
        } else if (s == SX_OK && hp->n_vocab != hp->n_vocab_target) {
            s = sx_set_error(SX_ERR_FORMAT, "%s: draft vocabulary %d differs from the target's %d but there is no d2t", path, hp->n_vocab,
                             hp->n_vocab_target);
        }
    }
    if (s == SX_OK) s = sx_weights_place(&L, dev, &d->weights);
    d->n_tensors = L.n_tensors;
    if (s == SX_OK && !d->tok_embd) {
        if (target->hp.n_embd != H)
            s = sx_set_error(SX_ERR_FORMAT, "%s: no token_embd.weight and the target's embedding width %d differs from the draft's %d", path,
                             target->hp.n_embd, H);
        else if (target->tok_embd->buffer->dev == dev)
            d->tok_embd = target->tok_embd;
        else
            s = copy_embedding(d, target, dev);
    }
    if (s != SX_OK) {
        sx_eagle3_free(d);
        return sx_wrap_error(s, "loading draft %s", path);
    }
    *out = d;
    return SX_OK;
}

void sx_eagle3_free(sx_eagle3 *d) {
    if (!d) return;
    sx_buffer_free(d->embd_buf);
    sx_buffer_free(d->weights);
    free(d->d2t_host);
    sx_gguf_close(d->gguf);
    free(d);
}

sx_status sx_eagle3_kv_create(const sx_eagle3 *d, sx_device *dev, int n_ctx, sx_kv_cache **out) {
    sx_hparams hp = {.n_layer = 1, .n_head = d->hp.n_head, .n_head_kv = d->hp.n_head_kv, .head_dim = d->hp.head_dim};
    return sx_kv_cache_create(&hp, dev, n_ctx, SX_DTYPE_F16, out);
}

static sx_tensor *reshape2(sx_graph *g, sx_tensor *t, int64_t a, int64_t b) { return sx_graph_reshape(g, t, 2, (int64_t[]){a, b}); }
static sx_tensor *reshape3(sx_graph *g, sx_tensor *t, int64_t a, int64_t b, int64_t c) { return sx_graph_reshape(g, t, 3, (int64_t[]){a, b, c}); }

static sx_status check_draft_batch(const sx_eagle3 *d, const sx_kv_cache *kv, const sx_draft_batch *b) {
    const int64_t n = b->n, n_kv = (int64_t)b->slot0 + n;
    if (n < 1 || b->n_past < 0 || b->slot0 < b->n_past || n_kv > kv->n_ctx)
        return sx_set_error(SX_ERR_CONTEXT_FULL, "draft: rows %lld at slot %d exceed the draft context of %d", (long long)n, b->slot0, kv->n_ctx);
    if (!b->mask && b->slot0 != b->n_past) return sx_set_error(SX_ERR_INVALID_ARG, "draft: a causal batch must start at n_past");
    if (!b->feat_rows == !b->parent_rows) return sx_set_error(SX_ERR_INVALID_ARG, "draft: rows need features or parents (one of them)");
    if (b->signals && (!b->feat_rows || d->hp.n_signals == 0)) return sx_set_error(SX_ERR_INVALID_ARG, "draft: no signals here");
    return SX_OK;
}

bool sx_eagle3_batches_compatible(const sx_draft_batch *a, const sx_draft_batch *b) {
    return !a->feat_rows == !b->feat_rows && (a->n_out > 0) == (b->n_out > 0) && (a->n_out == 0 || a->top_k == b->top_k);
}

sx_status sx_eagle3_build_multi(const sx_eagle3 *d, int n_seq, const sx_draft_seq *seqs, sx_graph *g, sx_draft_out *outs) {
    const sx_eagle3_hparams *hp = &d->hp;
    const int64_t H = hp->n_embd, hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv;
    if (n_seq < 1) return sx_set_error(SX_ERR_INVALID_ARG, "draft: no sequences");
    int64_t rows = 0, n_out = 0;
    for (int i = 0; i < n_seq; i++) {
        memset(&outs[i], 0, sizeof outs[i]);
        SX_RETURN_IF_ERROR(check_draft_batch(d, seqs[i].kv, seqs[i].b));
        if (i > 0 && !sx_eagle3_batches_compatible(seqs[0].b, seqs[i].b))
            return sx_set_error(SX_ERR_INVALID_ARG, "draft: incompatible batches in one pass");
        rows += seqs[i].b->n;
        n_out += seqs[i].b->n_out;
    }
    const sx_draft_batch *b0 = seqs[0].b;
    sx_tensor **parts = calloc((size_t)n_seq, sizeof *parts);
    int32_t *iv = malloc(sizeof(int32_t) * (size_t)(3 * rows + n_out + 1));
    if (!parts || !iv) {
        free(parts), free(iv);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "draft: out of memory");
    }
    int32_t *tok_v = iv, *pos_v = iv + rows, *tmp = iv + 2 * rows, *out_v = iv + 3 * rows;
    for (int i = 0, r = 0, o = 0; i < n_seq; i++) {
        const sx_draft_batch *b = seqs[i].b;
        memcpy(tok_v + r, b->tokens, sizeof(int32_t) * (size_t)b->n);
        memcpy(pos_v + r, b->pos, sizeof(int32_t) * (size_t)b->n);
        for (int j = 0; j < b->n_out; j++) out_v[o + j] = r + b->out_rows[j];
        r += b->n;
        o += b->n_out;
    }
    sx_tensor *tok = sx_graph_input_i32(g, tok_v, rows, "draft_tokens");
    sx_tensor *pos = sx_graph_input_i32(g, pos_v, rows, "draft_pos");

    /* h: fused target features, or the parents' hidden */
    sx_tensor *h, *fused = NULL;
    for (int i = 0; i < n_seq; i++) {
        const sx_draft_batch *b = seqs[i].b;
        parts[i] = b->feat_rows ? sx_graph_add_get_rows(g, seqs[i].featbuf, sx_graph_input_i32(g, b->feat_rows, b->n, "feat_rows")) // [3Ht, n]
                                : sx_graph_add_get_rows(g, seqs[i].hbuf, sx_graph_input_i32(g, b->parent_rows, b->n, "parent_rows")); // [H, n]
    }
    h = sx_graph_add_concat_n(g, parts, n_seq, 1);
    if (b0->feat_rows) {
        fused = sx_graph_add_matmul(g, d->fc, h); // [H + k_sig, rows]
        if (d->fc_b) fused = sx_graph_add_add(g, fused, d->fc_b);
        const size_t rs = fused ? fused->nb[1] : 0;
        h = sx_graph_add_copy(g, sx_graph_view(g, fused, 2, (int64_t[]){H, rows}, (size_t[]){rs}, 0), SX_DTYPE_F32); // [H, rows]
    }
    sx_tensor *e = sx_graph_add_get_rows(g, d->tok_embd, tok);                                                     // [H, rows]
    sx_tensor *x = sx_graph_add_concat(g, sx_graph_add_rms_norm(g, e, d->input_norm, hp->norm_eps),
                                       sx_graph_add_rms_norm(g, h, d->hidden_norm, hp->norm_eps), 0);            // [2H, rows]
    sx_tensor *q = reshape3(g, sx_graph_add_matmul(g, d->wq, x), hd, nh, rows);
    sx_tensor *k = reshape3(g, sx_graph_add_matmul(g, d->wk, x), hd, nkv, rows);
    sx_tensor *v = sx_graph_add_matmul(g, d->wv, x);
    q = sx_graph_add_rope(g, q, pos, SX_ROPE_NEOX, (int)hd, hp->rope_base, hp->rope_scale, d->rope_freqs);
    k = sx_graph_add_rope(g, k, pos, SX_ROPE_NEOX, (int)hd, hp->rope_base, hp->rope_scale, d->rope_freqs);
    sx_tensor *k2 = reshape2(g, k, hd * nkv, rows);
    for (int i = 0, r = 0; i < n_seq; i++) {
        const sx_draft_batch *b = seqs[i].b;
        sx_kv_cache *kv = seqs[i].kv;
        const int64_t n = b->n, M = (int64_t)b->slot0 + n - b->n_past, n_kv = (int64_t)b->slot0 + n;
        for (int64_t j = 0; j < n; j++) tmp[r + j] = b->slot0 + (int32_t)j;
        sx_tensor *slot = sx_graph_input_i32(g, tmp + r, n, "draft_slots");
        sx_tensor *mask = b->mask ? sx_graph_input_f32(g, b->mask, 2, (int64_t[]){M, n}, "draft_mask") : NULL;
        sx_tensor *kc = sx_graph_add_set_rows(g, &kv->k[0], n_seq == 1 ? k2 : sx_graph_slice(g, k2, 1, r, n), slot);
        sx_tensor *vc = sx_graph_add_set_rows(g, &kv->v[0], n_seq == 1 ? v : sx_graph_slice(g, v, 1, r, n), slot);
        const size_t es = kc ? kc->nb[0] : 0;
        sx_tensor *kview = sx_graph_view(g, kc, 3, (int64_t[]){hd, nkv, n_kv}, (size_t[]){hd * es, hd * nkv * es}, 0);
        sx_tensor *vview = sx_graph_view(g, vc, 3, (int64_t[]){hd, nkv, n_kv}, (size_t[]){hd * es, hd * nkv * es}, 0);
        sx_tensor *qi = n_seq == 1 ? q : sx_graph_slice(g, q, 2, r, n);
        parts[i] = sx_graph_add_attention(g, qi, kview, vview, mask, 1.0f / sqrtf((float)hd), b->n_past); // [hd, nh, n]
        r += (int)n;
    }
    sx_tensor *a = sx_graph_add_concat_n(g, parts, n_seq, 2); // [hd, nh, rows]
    sx_tensor *res = sx_graph_add_add(g, h, sx_graph_add_matmul(g, d->wo, reshape2(g, a, hd * nh, rows)));        // [H, rows]
    sx_tensor *hn = sx_graph_add_rms_norm(g, res, d->ffn_norm, hp->norm_eps);
    sx_tensor *ff = sx_graph_add_silu_mul(g, sx_graph_add_matmul(g, d->w_gate, hn), sx_graph_add_matmul(g, d->w_up, hn));
    sx_tensor *hout = sx_graph_add_add(g, res, sx_graph_add_matmul(g, d->w_down, ff));                           // h' [H, rows]
    for (int i = 0, r = 0; i < n_seq; i++) {
        const sx_draft_batch *b = seqs[i].b;
        if (b->signals) {
            const size_t rs = fused ? fused->nb[1] : 0;
            outs[i].sig_01 = sx_graph_add_sigmoid(g, sx_graph_view(g, fused, 2, (int64_t[]){2, b->n}, (size_t[]){rs}, (size_t)r * rs + (size_t)H * 4)); // [2, n]
            outs[i].sig_2 = sx_graph_add_exp(g, sx_graph_view(g, fused, 2, (int64_t[]){1, b->n}, (size_t[]){rs}, (size_t)r * rs + (size_t)(H + 2) * 4)); // [1, n]
            sx_graph_set_output(g, outs[i].sig_01);
            sx_graph_set_output(g, outs[i].sig_2);
        }
        if (b->n_hout > 0) {
            sx_tensor *mine = n_seq == 1 ? hout : sx_graph_slice(g, hout, 1, r, b->n);
            sx_tensor *src = b->n_hout == b->n && !b->hout_src ? mine : sx_graph_add_get_rows(g, mine, sx_graph_input_i32(g, b->hout_src, b->n_hout, "hout_src"));
            sx_graph_add_set_rows(g, seqs[i].hbuf, src, sx_graph_input_i32(g, b->hout_rows, b->n_hout, "hout_rows"));
        }
        r += b->n;
    }
    if (n_out > 0) {
        sx_tensor *sel = sx_graph_add_get_rows(g, hout, sx_graph_input_i32(g, out_v, n_out, "draft_out_rows"));
        sx_tensor *logits = sx_graph_add_matmul(g, d->output, sx_graph_add_rms_norm(g, sel, d->out_norm, hp->norm_eps)); // [Vd, n_out]
        sx_tensor *top = sx_graph_add_top_k(g, logits, b0->top_k < hp->n_vocab ? b0->top_k : hp->n_vocab);
        sx_tensor *probs = sx_graph_add_gather(g, sx_graph_add_softmax(g, logits), top); /* only the tree's candidates are read back */
        sx_graph_set_output(g, probs);
        sx_graph_set_output(g, top);
        for (int i = 0, o = 0; i < n_seq; i++) {
            outs[i].probs = probs;
            outs[i].top = top;
            outs[i].row0 = o;
            outs[i].n_out = seqs[i].b->n_out;
            o += seqs[i].b->n_out;
        }
    }
    free(parts), free(iv);
    return sx_graph_status(g);
}

sx_status sx_eagle3_build(const sx_eagle3 *d, sx_kv_cache *kv, sx_graph *g, sx_tensor *featbuf, sx_tensor *hbuf, const sx_draft_batch *b,
                          sx_draft_out *out) {
    const sx_draft_seq seq = {.kv = kv, .featbuf = featbuf, .hbuf = hbuf, .b = b};
    return sx_eagle3_build_multi(d, 1, &seq, g, out);
}
