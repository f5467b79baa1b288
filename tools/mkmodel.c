/* tools/mkmodel.c — writes tiny random-weight models (seeded) of the llama,
 * qwen2, qwen3 and qwen3moe architectures, with a small byte-level BPE vocabulary and
 * the ChatML special tokens. Used by the tests to exercise every model graph
 * quickly; also handy for benchmarking a shape without real weights.
 *
 *   specexit-mkmodel --arch qwen3 --type q8_0 --seed 1 -o tiny.gguf
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gguf.h"
#include "core/sampler.h"

typedef struct {
    const char *arch, *out;
    sx_dtype type;
    uint64_t seed;
    int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_ctx;
    int n_expert, n_expert_used, n_ff_exp; /* qwen3moe */
    bool tied;
    bool rope_freqs; /* write a Llama 3.1-style rope_freqs.weight */
    int extra_tokens;
    int vocab; /* total vocabulary (padded with extra tokens), 0 = the base one */
} mk_opts;

static sx_rng g_rng;

static float randn(void) {
    double u1 = sx_rng_uniform(&g_rng), u2 = sx_rng_uniform(&g_rng);
    if (u1 < 1e-12) u1 = 1e-12;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* GPT-2's byte -> printable code point table, as UTF-8 strings */
static void byte_token(int b, char out[4]) {
    int cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
        cp = b;
    } else {
        int n = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

typedef struct {
    char **items;
    int n, cap;
} strlist;

static void push(strlist *l, const char *s) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 512;
        l->items = realloc(l->items, sizeof(char *) * (size_t)l->cap);
    }
    l->items[l->n++] = strdup(s);
}

/* a [ne0, ne1, ne2] weight (ne2 > 1: a stack of experts) */
static sx_status add_weight3(sx_gguf_writer *w, const char *name, sx_dtype t, int64_t ne0, int64_t ne1, int64_t ne2, float scale, float offset) {
    const int64_t n = ne0 * ne1 * ne2;
    float *f = malloc(sizeof(float) * (size_t)n);
    const size_t rs = sx_dtype_row_size(t, ne0), bytes = rs * (size_t)(ne1 * ne2);
    void *q = malloc(bytes);
    if (!f || !q) {
        free(f), free(q);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "mkmodel: out of memory");
    }
    for (int64_t i = 0; i < n; i++) f[i] = offset + scale * randn();
    for (int64_t r = 0; r < ne1 * ne2; r++) sx_dtype_quantize_row(t, f + r * ne0, (char *)q + (size_t)r * rs, ne0);
    const int64_t ne[3] = {ne0, ne1, ne2};
    sx_status s = sx_gguf_writer_add_tensor_copy(w, name, t, ne2 > 1 ? 3 : ne1 > 1 ? 2 : 1, ne, q, bytes);
    free(f), free(q);
    return s;
}

static sx_status add_weight(sx_gguf_writer *w, const char *name, sx_dtype t, int64_t ne0, int64_t ne1, float scale, float offset) {
    return add_weight3(w, name, t, ne0, ne1, 1, scale, offset);
}

static sx_status write_model(const mk_opts *o) {
    sx_gguf_writer *w;
    SX_RETURN_IF_ERROR(sx_gguf_writer_create(&w));
    /* vocabulary: 256 bytes, merges of frequent pairs, specials */
    strlist tokens = {0}, merges = {0};
    for (int b = 0; b < 256; b++) {
        char t[4];
        byte_token(b, t);
        push(&tokens, t);
    }
    const char *pairs[][2] = {{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}, {"Ġ", "a"}, {"e", "r"}, {"o", "n"}, {"Ġ", "s"},
                              {"r", "e"}, {"a", "t"}, {"Ċ", "Ċ"}, {"Ġ", "w"}, {"o", "r"}, {"e", "n"}, {"Ġ", "i"}, {"i", "s"}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char m[32], t[32];
        snprintf(m, sizeof m, "%s %s", pairs[i][0], pairs[i][1]);
        snprintf(t, sizeof t, "%s%s", pairs[i][0], pairs[i][1]);
        push(&merges, m);
        push(&tokens, t);
    }
    const char *specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"};
    const int first_special = tokens.n;
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) push(&tokens, specials[i]);
    const int base = tokens.n + o->extra_tokens;
    const int extra = o->vocab > base ? o->vocab - tokens.n : o->extra_tokens;
    for (int i = 0; i < extra; i++) { /* a different or real-sized vocabulary (shapes of large models) */
        char t[32];
        snprintf(t, sizeof t, "<extra_%d>", i);
        push(&tokens, t);
    }
    const int n_vocab = tokens.n;
    int32_t *types = malloc(sizeof(int32_t) * (size_t)n_vocab);
    for (int i = 0; i < n_vocab; i++) types[i] = i >= first_special && i < first_special + 5 ? 3 : i >= first_special ? 4 : 1;

    char key[128];
    sx_status s = SX_OK;
#define KV(call) do { if (s == SX_OK) s = (call); } while (0)
#define AK(suffix) (snprintf(key, sizeof key, "%s.%s", o->arch, suffix), key)
    KV(sx_gguf_writer_set_str(w, "general.architecture", o->arch));
    KV(sx_gguf_writer_set_str(w, "general.name", "specexit tiny random model"));
    KV(sx_gguf_writer_set_u32(w, AK("block_count"), (uint32_t)o->n_layer));
    KV(sx_gguf_writer_set_u32(w, AK("embedding_length"), (uint32_t)o->n_embd));
    KV(sx_gguf_writer_set_u32(w, AK("feed_forward_length"), (uint32_t)o->n_ff));
    const bool moe = !strcmp(o->arch, "qwen3moe");
    if (moe) {
        KV(sx_gguf_writer_set_u32(w, AK("expert_count"), (uint32_t)o->n_expert));
        KV(sx_gguf_writer_set_u32(w, AK("expert_used_count"), (uint32_t)o->n_expert_used));
        KV(sx_gguf_writer_set_u32(w, AK("expert_feed_forward_length"), (uint32_t)o->n_ff_exp));
    }
    KV(sx_gguf_writer_set_u32(w, AK("attention.head_count"), (uint32_t)o->n_head));
    KV(sx_gguf_writer_set_u32(w, AK("attention.head_count_kv"), (uint32_t)o->n_head_kv));
    KV(sx_gguf_writer_set_u32(w, AK("attention.key_length"), (uint32_t)o->head_dim));
    KV(sx_gguf_writer_set_u32(w, AK("attention.value_length"), (uint32_t)o->head_dim));
    KV(sx_gguf_writer_set_u32(w, AK("context_length"), (uint32_t)o->n_ctx));
    KV(sx_gguf_writer_set_f32(w, AK("rope.freq_base"), 10000.0f));
    KV(sx_gguf_writer_set_f32(w, AK("attention.layer_norm_rms_epsilon"), 1e-6f));
    KV(sx_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"));
    KV(sx_gguf_writer_set_str(w, "tokenizer.ggml.pre", strcmp(o->arch, "llama") ? "qwen2" : "smollm"));
    KV(sx_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens.items, (uint64_t)tokens.n));
    KV(sx_gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)n_vocab));
    KV(sx_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges.items, (uint64_t)merges.n));
    KV(sx_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)first_special));
    KV(sx_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)first_special + 2));
    KV(sx_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false));
    KV(sx_gguf_writer_set_str(w, "tokenizer.chat_template", "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}"));

    const int q_dim = o->n_head * o->head_dim, kv_dim = o->n_head_kv * o->head_dim;
    const float emb = 1.0f, lin = 1.0f / sqrtf((float)o->n_embd), ffs = 1.0f / sqrtf((float)o->n_ff), qs = 1.0f / sqrtf((float)q_dim);
    KV(add_weight(w, "token_embd.weight", o->type, o->n_embd, n_vocab, emb, 0));
    KV(add_weight(w, "output_norm.weight", SX_DTYPE_F32, o->n_embd, 1, 0.1f, 1.0f));
    if (!o->tied) KV(add_weight(w, "output.weight", o->type, o->n_embd, n_vocab, lin, 0));
    if (o->rope_freqs && s == SX_OK) { /* divisors from 1 (fast pairs) to 8 (slow pairs), as Llama 3.1's shape */
        const int half = o->head_dim / 2;
        float *ff = malloc(sizeof(float) * (size_t)half);
        if (!ff) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "mkmodel: out of memory");
        for (int i = 0; i < half; i++) ff[i] = half > 1 ? 1.0f + 7.0f * (float)i / (float)(half - 1) : 1.0f;
        const int64_t ne = half;
        s = sx_gguf_writer_add_tensor_copy(w, "rope_freqs.weight", SX_DTYPE_F32, 1, &ne, ff, sizeof(float) * (size_t)half);
        free(ff);
    }
    for (int il = 0; il < o->n_layer && s == SX_OK; il++) {
        char n[96];
#define W(suffix, t, a, b, sc, off) do { snprintf(n, sizeof n, "blk.%d.%s", il, suffix); KV(add_weight(w, n, t, a, b, sc, off)); } while (0)
        W("attn_norm.weight", SX_DTYPE_F32, o->n_embd, 1, 0.1f, 1.0f);
        W("attn_q.weight", o->type, o->n_embd, q_dim, lin, 0);
        W("attn_k.weight", o->type, o->n_embd, kv_dim, lin, 0);
        W("attn_v.weight", o->type, o->n_embd, kv_dim, lin, 0);
        W("attn_output.weight", o->type, q_dim, o->n_embd, qs, 0);
        if (!strcmp(o->arch, "qwen2")) {
            W("attn_q.bias", SX_DTYPE_F32, q_dim, 1, 0.1f, 0);
            W("attn_k.bias", SX_DTYPE_F32, kv_dim, 1, 0.1f, 0);
            W("attn_v.bias", SX_DTYPE_F32, kv_dim, 1, 0.1f, 0);
        }
        if (!strcmp(o->arch, "qwen3") || moe) {
            W("attn_q_norm.weight", SX_DTYPE_F32, o->head_dim, 1, 0.1f, 1.0f);
            W("attn_k_norm.weight", SX_DTYPE_F32, o->head_dim, 1, 0.1f, 1.0f);
        }
        W("ffn_norm.weight", SX_DTYPE_F32, o->n_embd, 1, 0.1f, 1.0f);
        if (moe) { /* the router (f32, as converted checkpoints have it) and the expert stacks */
            W("ffn_gate_inp.weight", SX_DTYPE_F32, o->n_embd, o->n_expert, 4.0f * lin, 0);
            const float fe = 1.0f / sqrtf((float)o->n_ff_exp);
#define W3(suffix, a, b, sc) do { snprintf(n, sizeof n, "blk.%d.%s", il, suffix); KV(add_weight3(w, n, o->type, a, b, o->n_expert, sc, 0)); } while (0)
            W3("ffn_gate_exps.weight", o->n_embd, o->n_ff_exp, lin);
            W3("ffn_up_exps.weight", o->n_embd, o->n_ff_exp, lin);
            W3("ffn_down_exps.weight", o->n_ff_exp, o->n_embd, fe);
#undef W3
            continue;
        }
        W("ffn_gate.weight", o->type, o->n_embd, o->n_ff, lin, 0);
        W("ffn_up.weight", o->type, o->n_embd, o->n_ff, lin, 0);
        W("ffn_down.weight", o->type, o->n_ff, o->n_embd, ffs, 0);
#undef W
    }
    KV(sx_gguf_writer_write(w, o->out));
#undef KV
#undef AK
    for (int i = 0; i < tokens.n; i++) free(tokens.items[i]);
    for (int i = 0; i < merges.n; i++) free(merges.items[i]);
    free(tokens.items), free(merges.items), free(types);
    sx_gguf_writer_destroy(w);
    return s;
}

/* A random EAGLE-3 draft (layout in core/eagle3.h) for an existing target. */
static sx_status write_eagle3(const mk_opts *o, const char *target_path, int draft_vocab, bool own_embd) {
    sx_gguf *tg;
    SX_RETURN_IF_ERROR(sx_gguf_open(target_path, &tg));
    char arch[32] = "", key[128];
    sx_status s = sx_gguf_get_str_copy(tg, "general.architecture", arch, sizeof arch);
    uint32_t Ht = 0, L = 0;
    snprintf(key, sizeof key, "%s.embedding_length", arch);
    if (s == SX_OK) s = sx_gguf_get_u32(tg, key, &Ht);
    snprintf(key, sizeof key, "%s.block_count", arch);
    if (s == SX_OK) s = sx_gguf_get_u32(tg, key, &L);
    sx_gguf_tensor_info ti;
    const int64_t ei = sx_gguf_find_tensor(tg, "token_embd.weight");
    if (s == SX_OK && ei < 0) s = sx_set_error(SX_ERR_FORMAT, "%s: no token_embd.weight", target_path);
    if (s == SX_OK) s = sx_gguf_tensor(tg, ei, &ti);
    if (s != SX_OK) {
        sx_gguf_close(tg);
        return s;
    }
    const int V = (int)ti.ne[1], H = (int)Ht, Vd = draft_vocab > 0 && draft_vocab < V ? draft_vocab : V;
    const int q_dim = o->n_head * o->head_dim, kv_dim = o->n_head_kv * o->head_dim;
    sx_gguf_writer *w;
    s = sx_gguf_writer_create(&w);
#define KV(call) do { if (s == SX_OK) s = (call); } while (0)
    const int32_t layers[3] = {L > 2 ? 2 : 0, (int32_t)L / 2, L >= 3 ? (int32_t)L - 3 : 0};
    KV(sx_gguf_writer_set_str(w, "general.architecture", "eagle3"));
    KV(sx_gguf_writer_set_str(w, "general.name", "specexit random eagle3 draft"));
    KV(sx_gguf_writer_set_u32(w, "eagle3.embedding_length", (uint32_t)H));
    KV(sx_gguf_writer_set_u32(w, "eagle3.feed_forward_length", (uint32_t)o->n_ff));
    KV(sx_gguf_writer_set_u32(w, "eagle3.attention.head_count", (uint32_t)o->n_head));
    KV(sx_gguf_writer_set_u32(w, "eagle3.attention.head_count_kv", (uint32_t)o->n_head_kv));
    KV(sx_gguf_writer_set_u32(w, "eagle3.attention.key_length", (uint32_t)o->head_dim));
    KV(sx_gguf_writer_set_f32(w, "eagle3.attention.layer_norm_rms_epsilon", 1e-6f));
    KV(sx_gguf_writer_set_f32(w, "eagle3.rope.freq_base", 10000.0f));
    KV(sx_gguf_writer_set_u32(w, "eagle3.vocab_size", (uint32_t)Vd));
    KV(sx_gguf_writer_set_u32(w, "eagle3.target_vocab_size", (uint32_t)V));
    KV(sx_gguf_writer_set_u32(w, "eagle3.target_hidden_size", (uint32_t)H));
    KV(sx_gguf_writer_set_arr_i32(w, "eagle3.target_layers", layers, 3));
    KV(sx_gguf_writer_set_u32(w, "eagle3.signal_rows", 3));
    const float lin = 1.0f / sqrtf((float)H);
    KV(add_weight(w, "fc.weight", o->type, 3 * H, H + 3, 1.0f / sqrtf(3.0f * H), 0));
    KV(add_weight(w, "hidden_norm.weight", SX_DTYPE_F32, H, 1, 0.1f, 1.0f));
    KV(add_weight(w, "input_norm.weight", SX_DTYPE_F32, H, 1, 0.1f, 1.0f));
    KV(add_weight(w, "attn_q.weight", o->type, 2 * H, q_dim, lin, 0));
    KV(add_weight(w, "attn_k.weight", o->type, 2 * H, kv_dim, lin, 0));
    KV(add_weight(w, "attn_v.weight", o->type, 2 * H, kv_dim, lin, 0));
    KV(add_weight(w, "attn_output.weight", o->type, q_dim, H, 1.0f / sqrtf((float)q_dim), 0));
    KV(add_weight(w, "ffn_norm.weight", SX_DTYPE_F32, H, 1, 0.1f, 1.0f));
    KV(add_weight(w, "ffn_gate.weight", o->type, H, o->n_ff, lin, 0));
    KV(add_weight(w, "ffn_up.weight", o->type, H, o->n_ff, lin, 0));
    KV(add_weight(w, "ffn_down.weight", o->type, o->n_ff, H, 1.0f / sqrtf((float)o->n_ff), 0));
    KV(add_weight(w, "output_norm.weight", SX_DTYPE_F32, H, 1, 0.1f, 1.0f));
    KV(add_weight(w, "output.weight", o->type, H, Vd, 4.0f * lin, 0));
    if (own_embd) KV(add_weight(w, "token_embd.weight", o->type, H, V, 1.0f, 0));
    int32_t *d2t = NULL;
    if (Vd < V) { /* draft id i -> target id i * V / Vd (sorted, distinct), stored as offsets */
        d2t = malloc(sizeof(int32_t) * (size_t)Vd);
        for (int i = 0; i < Vd; i++) d2t[i] = (int32_t)((int64_t)i * V / Vd) - i;
        const int64_t ne = Vd;
        KV(sx_gguf_writer_add_tensor_copy(w, "d2t", SX_DTYPE_I32, 1, &ne, d2t, sizeof(int32_t) * (size_t)Vd));
    }
    KV(sx_gguf_writer_write(w, o->out));
#undef KV
    free(d2t);
    sx_gguf_writer_destroy(w);
    sx_gguf_close(tg);
    return s;
}

static void usage(void) {
    fprintf(stderr, "usage: specexit-mkmodel --arch llama|qwen2|qwen3|qwen3moe -o OUT.gguf [--type f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|iq4_nl|q2_k|q3_k|q4_k|q5_k|q6_k|iq4_xs]\n"
                    "       [--seed S] [--layers N] [--embd N] [--heads N] [--kv-heads N] [--head-dim N] [--ff N] [--ctx N] [--tied] [--rope-freqs]\n"
                    "       [--vocab N (pad the vocabulary to N tokens)] [--extra-tokens N]\n"
                    "       [--experts E] [--experts-used K] [--ff-exp N]   (qwen3moe; defaults 8, 2, --ff / 2)\n"
                    "       specexit-mkmodel --arch eagle3 --target TARGET.gguf -o DRAFT.gguf [--draft-vocab N] [--own-embd]\n"
                    "       [--type T] [--seed S] [--heads N] [--kv-heads N] [--head-dim N] [--ff N]   (a random EAGLE-3 draft)\n");
}

int main(int argc, char **argv) {
    mk_opts o = {.arch = "llama", .type = SX_DTYPE_Q8_0, .seed = 1, .n_layer = 2, .n_embd = 64, .n_head = 4, .n_head_kv = 2,
                 .head_dim = 16, .n_ff = 128, .n_ctx = 512};
    const char *target = NULL;
    int draft_vocab = 0;
    bool own_embd = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = strcmp(a, "--tied") != 0 && strcmp(a, "--own-embd") != 0 && strcmp(a, "--rope-freqs") != 0;
        if (takes && !v) { usage(); return 1; }
        if (!strcmp(a, "--arch")) o.arch = v;
        else if (!strcmp(a, "-o")) o.out = v;
        else if (!strcmp(a, "--type")) { if (!sx_dtype_from_name(v, &o.type)) { fprintf(stderr, "error: unknown type '%s'\n", v); return 1; } }
        else if (!strcmp(a, "--seed")) o.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--layers")) o.n_layer = atoi(v);
        else if (!strcmp(a, "--embd")) o.n_embd = atoi(v);
        else if (!strcmp(a, "--heads")) o.n_head = atoi(v);
        else if (!strcmp(a, "--kv-heads")) o.n_head_kv = atoi(v);
        else if (!strcmp(a, "--head-dim")) o.head_dim = atoi(v);
        else if (!strcmp(a, "--ff")) o.n_ff = atoi(v);
        else if (!strcmp(a, "--ctx")) o.n_ctx = atoi(v);
        else if (!strcmp(a, "--tied")) o.tied = true;
        else if (!strcmp(a, "--rope-freqs")) o.rope_freqs = true;
        else if (!strcmp(a, "--own-embd")) own_embd = true;
        else if (!strcmp(a, "--target")) target = v;
        else if (!strcmp(a, "--draft-vocab")) draft_vocab = atoi(v);
        else if (!strcmp(a, "--extra-tokens")) o.extra_tokens = atoi(v);
        else if (!strcmp(a, "--vocab")) o.vocab = atoi(v);
        else if (!strcmp(a, "--experts")) o.n_expert = atoi(v);
        else if (!strcmp(a, "--experts-used")) o.n_expert_used = atoi(v);
        else if (!strcmp(a, "--ff-exp")) o.n_ff_exp = atoi(v);
        else { usage(); return 1; }
        if (takes) i++;
    }
    if (o.out && !strcmp(o.arch, "eagle3")) {
        if (!target) {
            usage();
            return 1;
        }
        sx_rng_seed(&g_rng, o.seed);
        sx_status s = write_eagle3(&o, target, draft_vocab, own_embd);
        if (s != SX_OK) {
            fprintf(stderr, "error: %s: %s\n", sx_status_str(s), sx_last_error());
            return 1;
        }
        return 0;
    }
    if (!o.out || (strcmp(o.arch, "llama") && strcmp(o.arch, "qwen2") && strcmp(o.arch, "qwen3") && strcmp(o.arch, "qwen3moe"))) {
        usage();
        return 1;
    }
    const int bs = sx_dtype_get(o.type)->block_size;
    if (!o.n_expert) o.n_expert = 8;
    if (!o.n_expert_used) o.n_expert_used = 2;
    if (!o.n_ff_exp) o.n_ff_exp = o.n_ff / 2;
    if (!strcmp(o.arch, "qwen3moe") && (o.n_expert_used > o.n_expert || o.n_ff_exp % bs)) {
        fprintf(stderr, "error: --experts-used must be <= --experts and --ff-exp a multiple of the block size\n");
        return 1;
    }
    if (o.n_layer < 1 || o.n_embd % bs || o.n_ff % bs || o.n_head * o.head_dim % bs || o.n_head % o.n_head_kv) {
        fprintf(stderr, "error: dimensions must be multiples of the %s block size (%d) and heads a multiple of kv heads\n", sx_dtype_name(o.type), bs);
        return 1;
    }
    sx_rng_seed(&g_rng, o.seed);
    sx_status s = write_model(&o);
    if (s != SX_OK) {
        fprintf(stderr, "error: %s: %s\n", sx_status_str(s), sx_last_error());
        return 1;
    }
    return 0;
}
