/* core/model.c — loading llama / qwen2 / qwen3 models from GGUF.
 * Every hyperparameter and tensor is checked before use; the weights stay in
 * the file's mapping on the CPU and are uploaded once to other devices. */
#include "core/model.h"
#include "core/specexit.h"
#include "core/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const g_arch_names[SX_ARCH_COUNT] = {"llama", "qwen2", "qwen3", "qwen3moe"};

const char *sx_arch_name(sx_arch a) { return (unsigned)a < SX_ARCH_COUNT ? g_arch_names[a] : "unknown"; }


static sx_status get_int(const sx_gguf *g, const char *arch, const char *suffix, int min, int max, bool required, int def, int *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    sx_status s = sx_gguf_get_i64(g, key, &v);
    if (s == SX_ERR_NOT_FOUND && !required) {
        *out = def;
        return SX_OK;
    }
    if (s == SX_ERR_NOT_FOUND) return sx_set_error(SX_ERR_FORMAT, "%s: missing key %s", sx_gguf_name(g), key);
    if (s != SX_OK) return s;
    if (v < min || v > max) return sx_set_error(SX_ERR_FORMAT, "%s: %s = %lld is out of range [%d, %d]", sx_gguf_name(g), key, (long long)v, min, max);
    *out = (int)v;
    return SX_OK;
}

static sx_status get_float(const sx_gguf *g, const char *arch, const char *suffix, float def, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    sx_status s = sx_gguf_get_f32(g, key, out);
    if (s == SX_ERR_NOT_FOUND) {
        *out = def;
        return SX_OK;
    }
    if (s == SX_OK && !(*out > 0 && *out < 1e12f)) return sx_set_error(SX_ERR_FORMAT, "%s: %s = %g is out of range", sx_gguf_name(g), key, *out);
    return s;
}

static sx_status read_hparams(const sx_gguf *g, sx_hparams *hp) {
    const char *arch_s;
    size_t arch_len;
    memset(hp, 0, sizeof *hp);
    sx_status s = sx_gguf_get_str(g, "general.architecture", &arch_s, &arch_len);
    if (s == SX_ERR_NOT_FOUND) return sx_set_error(SX_ERR_FORMAT, "%s: missing key general.architecture", sx_gguf_name(g));
    SX_RETURN_IF_ERROR(s);
    char arch[64];
    snprintf(arch, sizeof arch, "%.*s", (int)(arch_len < 63 ? arch_len : 63), arch_s);
    hp->arch = SX_ARCH_COUNT;
    for (int a = 0; a < SX_ARCH_COUNT; a++)
        if (strcmp(arch, g_arch_names[a]) == 0) hp->arch = (sx_arch)a;
    if (hp->arch == SX_ARCH_COUNT)
        return sx_set_error(SX_ERR_UNSUPPORTED, "%s: unknown architecture '%s' (supported: llama, qwen2, qwen3, qwen3moe)", sx_gguf_name(g), arch);
    const int big = 1 << 20;
    SX_RETURN_IF_ERROR(get_int(g, arch, "block_count", 1, 4096, true, 0, &hp->n_layer));
    SX_RETURN_IF_ERROR(get_int(g, arch, "embedding_length", 1, big, true, 0, &hp->n_embd));
    const bool moe = hp->arch == SX_ARCH_QWEN3MOE;
    SX_RETURN_IF_ERROR(get_int(g, arch, "feed_forward_length", 1, big, !moe, 0, &hp->n_ff));
    if (moe) {
        SX_RETURN_IF_ERROR(get_int(g, arch, "expert_count", 1, 4096, true, 0, &hp->n_expert));
        SX_RETURN_IF_ERROR(get_int(g, arch, "expert_used_count", 1, hp->n_expert, true, 0, &hp->n_expert_used));
        SX_RETURN_IF_ERROR(get_int(g, arch, "expert_feed_forward_length", 1, big, false, hp->n_ff ? hp->n_ff / hp->n_expert_used : 0, &hp->n_ff_exp));
        if (hp->n_ff_exp < 1) return sx_set_error(SX_ERR_FORMAT, "%s: missing key %s.expert_feed_forward_length", sx_gguf_name(g), arch);
        if (hp->n_expert_used > 64) return sx_set_error(SX_ERR_UNSUPPORTED, "%s: %d experts per token (at most 64)", sx_gguf_name(g), hp->n_expert_used);
    }
    SX_RETURN_IF_ERROR(get_int(g, arch, "attention.head_count", 1, 4096, true, 0, &hp->n_head));
    SX_RETURN_IF_ERROR(get_int(g, arch, "attention.head_count_kv", 1, 4096, false, hp->n_head, &hp->n_head_kv));
    SX_RETURN_IF_ERROR(get_int(g, arch, "attention.key_length", 1, 4096, false, hp->n_embd / hp->n_head, &hp->head_dim));
    SX_RETURN_IF_ERROR(get_int(g, arch, "rope.dimension_count", 2, 4096, false, hp->head_dim, &hp->rope_dims));
    SX_RETURN_IF_ERROR(get_int(g, arch, "context_length", 1, 1 << 24, false, 4096, &hp->n_ctx_train));
    SX_RETURN_IF_ERROR(get_float(g, arch, "rope.freq_base", 10000.0f, &hp->rope_base));
    SX_RETURN_IF_ERROR(get_float(g, arch, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->norm_eps));
    float factor;
    SX_RETURN_IF_ERROR(get_float(g, arch, "rope.scaling.factor", 1.0f, &factor));
    hp->rope_scale = 1.0f / factor;
    if (hp->n_head % hp->n_head_kv)
        return sx_set_error(SX_ERR_FORMAT, "%s: head_count %d is not a multiple of head_count_kv %d", sx_gguf_name(g), hp->n_head, hp->n_head_kv);
    if (hp->rope_dims > hp->head_dim || hp->rope_dims % 2)
        return sx_set_error(SX_ERR_FORMAT, "%s: rope.dimension_count %d does not fit head_dim %d", sx_gguf_name(g), hp->rope_dims, hp->head_dim);
    hp->rope_mode = hp->arch == SX_ARCH_LLAMA ? SX_ROPE_NORMAL : SX_ROPE_NEOX;
    return SX_OK;
}

static sx_status bind_layer(sx_weight_loader *L, const sx_hparams *hp, int il, sx_layer *ly) {
    const int q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    char n[96];
#define B(field, suffix, ne0, ne1, opt, f32)                              \
    snprintf(n, sizeof n, "blk.%d.%s", il, suffix);                        \
    SX_RETURN_IF_ERROR(sx_weights_bind(L, n, ne0, ne1, opt, f32, &ly->field));
    B(attn_norm, "attn_norm.weight", hp->n_embd, 0, false, true);
    B(wq, "attn_q.weight", hp->n_embd, q_dim, false, false);
    B(wk, "attn_k.weight", hp->n_embd, kv_dim, false, false);
    B(wv, "attn_v.weight", hp->n_embd, kv_dim, false, false);
    B(wo, "attn_output.weight", q_dim, hp->n_embd, false, false);
    const bool qwen2 = hp->arch == SX_ARCH_QWEN2, qwen3 = hp->arch == SX_ARCH_QWEN3 || hp->arch == SX_ARCH_QWEN3MOE;
    B(bq, "attn_q.bias", q_dim, 0, !qwen2, true);
    B(bk, "attn_k.bias", kv_dim, 0, !qwen2, true);
    B(bv, "attn_v.bias", kv_dim, 0, !qwen2, true);
    B(q_norm, "attn_q_norm.weight", hp->head_dim, 0, !qwen3, true);
    B(k_norm, "attn_k_norm.weight", hp->head_dim, 0, !qwen3, true);
    B(ffn_norm, "ffn_norm.weight", hp->n_embd, 0, false, true);
    if (hp->n_expert) { /* routed experts: the router, then the expert stacks */
        B(gate_inp, "ffn_gate_inp.weight", hp->n_embd, hp->n_expert, false, false);
#define B3(field, suffix, ne0, ne1)                                         \
        snprintf(n, sizeof n, "blk.%d.%s", il, suffix);                     \
        SX_RETURN_IF_ERROR(sx_weights_bind3(L, n, ne0, ne1, hp->n_expert, &ly->field));
        B3(gate_exps, "ffn_gate_exps.weight", hp->n_embd, hp->n_ff_exp);
        B3(up_exps, "ffn_up_exps.weight", hp->n_embd, hp->n_ff_exp);
        B3(down_exps, "ffn_down_exps.weight", hp->n_ff_exp, hp->n_embd);
#undef B3
        return SX_OK;
    }
    B(w_gate, "ffn_gate.weight", hp->n_embd, hp->n_ff, false, false);
    B(w_up, "ffn_up.weight", hp->n_embd, hp->n_ff, false, false);
    B(w_down, "ffn_down.weight", hp->n_ff, hp->n_embd, false, false);
#undef B
    return SX_OK;
}

static void summarize(sx_model *m) {
    int count[SX_DTYPE_COUNT] = {0};
    bool seen_embd = false, seen_freqs = false;
    for (int i = 0; i < m->n_tensors; i++) {
        const sx_tensor *t = &m->tensors[i];
        /* with -ngl a tied output matrix and rope_freqs are bound once per device: count the file's bytes once */
        bool *seen = !strcmp(t->name, "token_embd.weight") ? &seen_embd : !strcmp(t->name, "rope_freqs.weight") ? &seen_freqs : NULL;
        if (seen && *seen) continue;
        if (seen) *seen = true;
        m->n_params += (uint64_t)sx_tensor_nelements(t);
        m->weight_bytes += sx_tensor_nbytes(t);
        m->active_weight_bytes += t->ne[2] > 1 && m->hp.n_expert ? sx_tensor_nbytes(t) / (size_t)m->hp.n_expert * (size_t)m->hp.n_expert_used
                                                                 : sx_tensor_nbytes(t);
        if (t->ne[1] > 1) count[t->dtype]++;
    }
    int best = 0;
    for (int d = 1; d < SX_DTYPE_COUNT; d++)
        if (count[d] > count[best]) best = d;
    snprintf(m->file_type, sizeof m->file_type, "%s", sx_dtype_name((sx_dtype)best));
    const char *name;
    size_t len;
    if (sx_gguf_get_str(m->gguf, "general.name", &name, &len) == SX_OK)
        snprintf(m->name, sizeof m->name, "%.*s", (int)(len < 127 ? len : 127), name);
    else
        snprintf(m->name, sizeof m->name, "%s", sx_arch_name(m->hp.arch));
}

/* Devices of the bound slots under -ngl: slots [first, last) of layer il. */
static void assign(sx_device **tdev, int first, int last, sx_device *d) {
    for (int i = first; i < last; i++) tdev[i] = d;
}

/* SX_NGL_AUTO: the number of blocks to put on the device (-1: all, the
 * output layer and embedding too), from the file's tensor sizes and the
 * placement's memory (sx_model_placement). */
static int fit_layers(const sx_gguf *g, const sx_hparams *hp, const sx_model_placement *fit, uint64_t *out_need, uint64_t *out_budget) {
    if (!fit->mem && !fit->exact) return -1;
    const uint64_t ctx = (uint64_t)(fit->fit_ctx > 0 ? fit->fit_ctx : 4096);
    const uint64_t kv_per_layer = 2 * ctx * sx_dtype_row_size(fit->kv_type, (int64_t)hp->n_head_kv * hp->head_dim);
    const int64_t ff = hp->n_ff > (int64_t)hp->n_expert_used * hp->n_ff_exp ? hp->n_ff : (int64_t)hp->n_expert_used * hp->n_ff_exp;
    /* work space: the activations of a 512-token chunk, the logits of a 64-row verify batch, attention scratch */
    const uint64_t work = 512ull * (uint64_t)(8 * (int64_t)hp->n_embd + 3 * ff) * 4 + 64ull * (uint64_t)hp->n_vocab * 4 + (64ull << 20);
    const uint64_t margin = fit->mem / 20 > (256ull << 20) ? fit->mem / 20 : (256ull << 20);
    const uint64_t take = fit->exact ? 0 : margin + work + fit->reserve;
    const uint64_t budget = fit->mem > take ? fit->mem - take : 0;
    *out_budget = budget;
    const int cpu_moe = fit->n_cpu_moe < hp->n_layer ? fit->n_cpu_moe : hp->n_layer;
    uint64_t *layer = calloc((size_t)hp->n_layer, sizeof *layer), all = 0, freqs = 0;
    if (!layer) return 0;
    for (int64_t i = 0; i < sx_gguf_n_tensors(g); i++) {
        sx_gguf_tensor_info ti;
        if (sx_gguf_tensor(g, i, &ti) != SX_OK) continue;
        int il = -1, len = 0;
        const bool hosted = sscanf(ti.name, "blk.%d.%n", &il, &len) == 1 && il >= 0 && il < cpu_moe && strstr(ti.name, "_exps.");
        if (hosted) continue; /* --n-cpu-moe: these experts never go to the device */
        all += ti.size;
        if (len > 0 && il >= 0 && il < hp->n_layer) layer[il] += ti.size;
        else if (!strcmp(ti.name, "rope_freqs.weight")) freqs = ti.size;
    }
    *out_need = all + kv_per_layer * (uint64_t)hp->n_layer;
    int n = -1;
    if (*out_need > budget) { /* blocks from the last one down, with rope_freqs' copy */
        uint64_t used = freqs;
        n = 0;
        while (n < hp->n_layer && used + layer[hp->n_layer - 1 - n] + kv_per_layer <= budget) used += layer[hp->n_layer - 1 - n++] + kv_per_layer;
    }
    free(layer);
    return n;
}

/* The devices of blocks [first, n_layer): the placement's extra devices, then
 * dev, each a consecutive run sized by the shares (llama.cpp's -ts) or, with
 * none given, by the devices' memory (equal when unknown). nd = 0 when no
 * block is offloaded. */
static sx_status split_layers(const sx_model_placement *pl, sx_device *dev, int first, int n_layer, sx_device **ldev, int *bound, int *nd) {
    const int n_extra = pl ? pl->n_extra : 0;
    if (n_extra < 0 || n_extra >= SX_MAX_DEVICES) return sx_set_error(SX_ERR_INVALID_ARG, "model: a split over %d devices (at most %d)", n_extra + 1, SX_MAX_DEVICES);
    *nd = n_extra + 1;
    double w[SX_MAX_DEVICES], total = 0;
    for (int d = 0; d < *nd; d++) {
        ldev[d] = d < n_extra ? pl->extra[d] : dev;
        w[d] = pl && pl->share ? pl->share[d] : 0;
        if (!(w[d] >= 0)) return sx_set_error(SX_ERR_INVALID_ARG, "--tensor-split: shares must be >= 0");
        total += w[d];
    }
    if (total <= 0) { /* by memory: free, else total, else equal */
        for (int d = 0; d < *nd; d++) {
            const sx_device_info *i = &ldev[d]->info;
            total += w[d] = (double)(i->memory_free ? i->memory_free : i->memory_total);
        }
        if (total <= 0)
            for (int d = 0; d < *nd; d++) total += w[d] = 1;
    }
    const int n = n_layer - first;
    double cum = 0;
    bound[0] = first;
    for (int d = 0; d < *nd; d++) {
        cum += w[d];
        bound[d + 1] = d + 1 == *nd ? n_layer : first + (int)(n * cum / total + 0.5);
    }
    return SX_OK;
}

sx_status sx_model_load_gguf_split(sx_gguf *g, sx_device *dev, sx_device *host, int n_dev_layers, const sx_model_placement *pl, sx_model **out) {
    *out = NULL;
    sx_model *m = calloc(1, sizeof *m);
    if (!m) {
        sx_gguf_close(g);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "model: out of memory");
    }
    m->gguf = g;
    m->dev = dev;
    sx_weight_loader L = {g, sx_gguf_name(g), "", sx_gguf_data_offset(g), NULL, 0, 0, NULL};
    sx_status s = read_hparams(g, &m->hp);
    if (s == SX_OK) {
        L.arch = sx_arch_name(m->hp.arch);
        L.cap = 6 + 14 * m->hp.n_layer;
        m->tensors = L.tensors = calloc((size_t)L.cap, sizeof *m->tensors);
        m->layers = calloc((size_t)m->hp.n_layer, sizeof *m->layers);
        L.tensor_dev = calloc((size_t)L.cap, sizeof *L.tensor_dev);
        if (!m->tensors || !m->layers || !L.tensor_dev) s = sx_set_error(SX_ERR_OUT_OF_MEMORY, "model: out of memory");
    }
    if (s == SX_OK) {
        const int64_t i = sx_gguf_find_tensor(g, "token_embd.weight");
        sx_gguf_tensor_info ti;
        if (i < 0) s = sx_set_error(SX_ERR_FORMAT, "%s: missing tensor 'token_embd.weight'", L.path);
        else if ((s = sx_gguf_tensor(g, i, &ti)) == SX_OK) {
            if (ti.ne[1] < 2 || ti.ne[1] > (1 << 24)) s = sx_set_error(SX_ERR_FORMAT, "%s: vocabulary size %lld is out of range", L.path, (long long)ti.ne[1]);
            m->hp.n_vocab = (int)ti.ne[1];
        }
    }
    const bool two = host && host != dev;
    if (s == SX_OK && n_dev_layers == SX_NGL_AUTO) n_dev_layers = two && pl ? fit_layers(g, &m->hp, pl, &m->fit_need, &m->fit_budget) : -1;
    /* split only when some layers stay on the host; all of them on dev keeps
     * the embedding there too (no copy of the residual at the first layer) */
    const bool split = s == SX_OK && two && n_dev_layers >= 0 && n_dev_layers <= m->hp.n_layer;
    m->n_cpu_moe = s == SX_OK && two && pl && m->hp.n_expert ? (pl->n_cpu_moe < m->hp.n_layer ? pl->n_cpu_moe : m->hp.n_layer) : 0;
    if (m->n_cpu_moe < 0) m->n_cpu_moe = 0;
    const bool hosted = split || m->n_cpu_moe > 0; /* weights on the host too */
    m->n_dev_layers = split ? n_dev_layers : m->hp.n_layer;
    m->output_on_dev = !split;
    m->host = hosted ? host : NULL;
    const int first_dev_layer = m->hp.n_layer - m->n_dev_layers;
    /* the devices of the offloaded blocks: a split's extra ones, then dev; layers [bound[d], bound[d+1]) on ldev[d] */
    sx_device *ldev[SX_MAX_DEVICES];
    int bound[SX_MAX_DEVICES + 1], nd = 0;
    if (s == SX_OK) s = split_layers(pl, dev, first_dev_layer, m->hp.n_layer, ldev, bound, &nd);
    for (int d = 0; d + 1 < nd; d++) m->split_devs[d] = ldev[d], m->split_layers[d] = bound[d + 1] - bound[d];
    m->n_split_devs = nd > 0 ? nd - 1 : 0;
    if (nd > 0) m->split_layers[nd - 1] = bound[nd] - bound[nd - 1];
    int first_d = 0; /* the first device with blocks gets the embedding (the residual starts there) ... */
    while (first_d + 1 < nd && bound[first_d + 1] == bound[first_d]) first_d++;
    /* ... unless the output shares it (tied embeddings): one copy on the output's device costs one residual hop, two copies a vocabulary's rows */
    const bool tied = s == SX_OK && sx_gguf_find_tensor(g, "output.weight") < 0;
    sx_device *out_dev = m->output_on_dev ? dev : host, *embd_dev = split ? host : tied ? out_dev : nd ? ldev[first_d] : dev;
    if (s == SX_OK) s = sx_weights_bind(&L, "token_embd.weight", m->hp.n_embd, m->hp.n_vocab, false, false, &m->tok_embd);
    if (s == SX_OK) s = sx_weights_bind(&L, "output_norm.weight", m->hp.n_embd, 0, false, true, &m->out_norm);
    if (s == SX_OK) s = sx_weights_bind(&L, "output.weight", m->hp.n_embd, m->hp.n_vocab, true, false, &m->output);
    if (s == SX_OK) {
        assign(L.tensor_dev, 0, 1, embd_dev);
        assign(L.tensor_dev, 1, L.n_tensors, out_dev);
    }
    if (s == SX_OK && !m->output) { /* tied embeddings: the same bytes, bound again where the output runs */
        if (out_dev == embd_dev) m->output = m->tok_embd;
        else if ((s = sx_weights_bind(&L, "token_embd.weight", m->hp.n_embd, m->hp.n_vocab, false, false, &m->output)) == SX_OK)
            assign(L.tensor_dev, L.n_tensors - 1, L.n_tensors, out_dev);
    }
    /* Llama 3.1/3.2 (and the DeepSeek-R1 Llama distills): per-pair RoPE frequency divisors, one binding per device with layers */
    sx_tensor *freqs[SX_MAX_DEVICES + 1] = {NULL}; /* [d] on ldev[d], [nd] on host */
    for (int k = 0; k <= nd && s == SX_OK; k++) {
        if (k < nd ? bound[k + 1] == bound[k] : first_dev_layer == 0) continue; /* no blocks there */
        s = sx_weights_bind(&L, "rope_freqs.weight", m->hp.rope_dims / 2, 0, true, true, &freqs[k]);
        if (s == SX_OK && freqs[k]) assign(L.tensor_dev, L.n_tensors - 1, L.n_tensors, k < nd ? ldev[k] : host);
        if (!m->rope_freqs) m->rope_freqs = freqs[k];
    }
    for (int il = 0; il < m->hp.n_layer && s == SX_OK; il++) {
        const int first = L.n_tensors;
        sx_layer *ly = &m->layers[il];
        s = bind_layer(&L, &m->hp, il, ly);
        int d = il < first_dev_layer ? nd : 0; /* nd: the host's (-ngl) */
        while (d < nd && il >= bound[d + 1]) d++;
        ly->dev = d < nd ? ldev[d] : host;
        ly->rope_freqs = freqs[d];
        assign(L.tensor_dev, first, L.n_tensors, ly->dev);
        if (s == SX_OK && ly->down_exps && il < m->n_cpu_moe) /* the three expert stacks, bound last */
            assign(L.tensor_dev, L.n_tensors - 3, L.n_tensors, host);
    }
    m->n_tensors = L.n_tensors;
    const bool multi = hosted || m->n_split_devs > 0; /* weights on several devices */
    if (s == SX_OK && !multi) s = sx_weights_place(&L, dev, &m->weights);
    if (s == SX_OK && multi) s = sx_weights_place_some(&L, dev, &m->weights, &m->dev_weight_bytes);
    for (int d = 0; d < m->n_split_devs && s == SX_OK; d++) {
        size_t bytes = 0;
        s = sx_weights_place_some(&L, m->split_devs[d], &m->split_weights[d], &bytes);
        m->dev_weight_bytes += bytes;
    }
    size_t host_bytes = 0;
    if (s == SX_OK && hosted) s = sx_weights_place_some(&L, host, &m->host_weights, &host_bytes);
    free(L.tensor_dev);
    if (s != SX_OK) {
        sx_model_free(m);
        return s;
    }
    summarize(m);
    if (!multi) m->dev_weight_bytes = m->weight_bytes;
    *out = m;
    return SX_OK;
}

sx_status sx_model_load_gguf(sx_gguf *g, sx_device *dev, sx_model **out) { return sx_model_load_gguf_split(g, dev, NULL, -1, NULL, out); }

sx_status sx_model_load(const char *path, sx_device *dev, sx_model **out) {
    *out = NULL;
    sx_gguf *g;
    SX_RETURN_IF_ERROR(sx_gguf_open(path, &g));
    return sx_model_load_gguf(g, dev, out);
}

void sx_model_free(sx_model *m) {
    if (!m) return;
    for (int d = 0; d < m->n_split_devs; d++) sx_buffer_free(m->split_weights[d]);
    sx_buffer_free(m->weights);
    sx_buffer_free(m->host_weights);
    free(m->tensors);
    free(m->layers);
    sx_gguf_close(m->gguf);
    free(m);
}

int sx_model_graph_size(const sx_model *m) { return 64 + (48 + (m->hp.n_expert ? 16 + 2 * m->hp.n_expert_used : 0)) * m->hp.n_layer; }
