/* tools/cmd_convert.c — `specexit convert eagle3 CHECKPOINT_DIR -o DRAFT.gguf`:
 * an AngelSlim / EAGLE-3 draft checkpoint (config.json + model.safetensors)
 * to the draft GGUF layout of core/eagle3.h.
 *
 * safetensors: u64 little-endian header length, a JSON header
 * {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"},
 * then the data; every field is checked before use. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/gguf.h"
#include "tools/cli.h"

typedef struct {
    char *data; /* whole file */
    size_t size, body;
    cJSON *header;
    const char *path;
} safetensors;

static int fail(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "error: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    return 1;
}

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[sz] = 0, *n = (size_t)sz;
    return b;
}

static int st_open(const char *path, safetensors *st) {
    memset(st, 0, sizeof *st);
    st->path = path;
    st->data = read_all(path, &st->size);
    if (!st->data) return fail("cannot read %s%s", path, "");
    uint64_t hl;
    if (st->size < 8) return fail("%s: too small for safetensors%s", path, "");
    memcpy(&hl, st->data, 8);
    if (hl > st->size - 8 || hl > (1u << 30)) return fail("%s: header length past the end of the file%s", path, "");
    char *h = malloc(hl + 1);
    memcpy(h, st->data + 8, hl);
    h[hl] = 0;
    st->header = cJSON_Parse(h);
    free(h);
    if (!cJSON_IsObject(st->header)) return fail("%s: the header is not a JSON object%s", path, "");
    st->body = 8 + (size_t)hl;
    return 0;
}

typedef struct {
    const char *dtype;
    int n_dims;
    int64_t shape[4];
    const char *data;
    size_t bytes;
} st_tensor;

/* Finds and validates a tensor; 1 = found, 0 = absent, -1 = malformed. */
static int st_get(const safetensors *st, const char *name, st_tensor *out) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(st->header, name);
    if (!t) return 0;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype"), *sh = cJSON_GetObjectItemCaseSensitive(t, "shape"),
                *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || cJSON_GetArraySize(sh) > 4) {
        fail("%s: tensor %s has a malformed header entry", st->path, name);
        return -1;
    }
    out->dtype = dt->valuestring;
    out->n_dims = cJSON_GetArraySize(sh);
    int64_t n = 1;
    for (int i = 0; i < out->n_dims; i++) {
        const cJSON *d = cJSON_GetArrayItem(sh, i);
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 1e12) {
            fail("%s: tensor %s has a bad shape", st->path, name);
            return -1;
        }
        out->shape[i] = (int64_t)d->valuedouble;
        n *= out->shape[i];
    }
    const double b0 = cJSON_GetArrayItem(off, 0)->valuedouble, b1 = cJSON_GetArrayItem(off, 1)->valuedouble;
    int es = !strcmp(out->dtype, "F32") || !strcmp(out->dtype, "I32") ? 4 : !strcmp(out->dtype, "F16") || !strcmp(out->dtype, "BF16") ? 2
             : !strcmp(out->dtype, "I64") || !strcmp(out->dtype, "F64")                                                      ? 8
             : !strcmp(out->dtype, "BOOL") || !strcmp(out->dtype, "U8") || !strcmp(out->dtype, "I8")                           ? 1
                                                                                                                                 : 0;
    if (!es) {
        fail("%s: tensor %s has an unsupported dtype", st->path, name);
        return -1;
    }
    if (b0 < 0 || b1 < b0 || st->body + (size_t)b1 > st->size || (size_t)(b1 - b0) != (size_t)n * (size_t)es) {
        fail("%s: tensor %s has data offsets outside the file or not matching its shape", st->path, name);
        return -1;
    }
    out->data = st->data + st->body + (size_t)b0;
    out->bytes = (size_t)(b1 - b0);
    return 1;
}

/* Converts a float tensor to dtype `to` (F32 for norms and biases, else the
 * source's F16/BF16/F32 kept as is). GGUF dims are the reverse of torch's. */
static sx_status add_float(sx_gguf_writer *w, const char *name, const st_tensor *t, bool force_f32) {
    int64_t ne[4];
    for (int i = 0; i < t->n_dims; i++) ne[i] = t->shape[t->n_dims - 1 - i];
    sx_dtype src = !strcmp(t->dtype, "F32") ? SX_DTYPE_F32 : !strcmp(t->dtype, "F16") ? SX_DTYPE_F16 : !strcmp(t->dtype, "BF16") ? SX_DTYPE_BF16 : SX_DTYPE_COUNT;
    if (src == SX_DTYPE_COUNT) return sx_set_error(SX_ERR_UNSUPPORTED, "tensor %s: dtype %s is not a float type", name, t->dtype);
    if (!force_f32 || src == SX_DTYPE_F32) return sx_gguf_writer_add_tensor_copy(w, name, src, t->n_dims, ne, t->data, t->bytes);
    const size_t n = t->bytes / 2;
    float *f = malloc(n * sizeof(float));
    if (!f) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "convert: out of memory");
    sx_dtype_dequantize_row(src, t->data, f, (int64_t)n);
    sx_status s = sx_gguf_writer_add_tensor_copy(w, name, SX_DTYPE_F32, t->n_dims, ne, f, n * sizeof(float));
    free(f);
    return s;
}

static int cfg_int(const cJSON *cfg, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : def;
}

int sx_cmd_convert(int argc, char **argv) {
    const char *kind = argc > 0 ? argv[0] : NULL, *dir = argc > 1 ? argv[1] : NULL, *out = NULL, *target = NULL;
    float rope_base = 10000.0f;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--target") && i + 1 < argc) target = argv[++i];
        else if (!strcmp(argv[i], "--rope-base") && i + 1 < argc) rope_base = (float)atof(argv[++i]);
        else return fail("unknown option '%s' for 'specexit convert'%s", argv[i], "");
    }
    if (!kind || strcmp(kind, "eagle3") != 0 || !dir || !out) {
        fprintf(stderr, "usage: specexit convert eagle3 CHECKPOINT_DIR -o DRAFT.gguf [--target TARGET.gguf] [--rope-base 10000]\n"
                        "  CHECKPOINT_DIR holds config.json and model.safetensors (AngelSlim / EAGLE-3 layout).\n"
                        "  --target fills in what the checkpoint lacks: the embedding and the feature layers.\n");
        return 1;
    }
    char path[4096];
    size_t n;
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *cfg_text = read_all(path, &n);
    if (!cfg_text) return fail("cannot read %s%s", path, "");
    cJSON *cfg = cJSON_Parse(cfg_text);
    free(cfg_text);
    if (!cJSON_IsObject(cfg)) return fail("%s is not a JSON object%s", path, "");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    safetensors st;
    if (st_open(path, &st)) {
        cJSON_Delete(cfg);
        return 1;
    }
    const int H = cfg_int(cfg, "hidden_size", 0), I = cfg_int(cfg, "intermediate_size", 0), nh = cfg_int(cfg, "num_attention_heads", 0);
    const int nkv = cfg_int(cfg, "num_key_value_heads", nh), hd = cfg_int(cfg, "head_dim", nh ? H / nh : 0);
    const int V = cfg_int(cfg, "vocab_size", 0), Vd = cfg_int(cfg, "draft_vocab_size", V), Ht = cfg_int(cfg, "target_hidden_size", H);
    const cJSON *eps_j = cJSON_GetObjectItemCaseSensitive(cfg, "rms_norm_eps");
    const float eps = cJSON_IsNumber(eps_j) ? (float)eps_j->valuedouble : 1e-6f;
    int rc = 0;
    if (H <= 0 || I <= 0 || nh <= 0 || nkv <= 0 || hd <= 0 || V <= 0 || Vd <= 0 || Ht <= 0)
        rc = fail("%s/config.json: hidden_size, intermediate_size, num_attention_heads and vocab_size must be positive%s", dir, "");
    st_tensor fc = {0};
    int got = rc ? -1 : st_get(&st, "fc.weight", &fc);
    if (got == 0) rc = fail("%s: missing tensor fc.weight%s", path, "");
    if (got == 1 && (fc.n_dims != 2 || fc.shape[1] != 3 * (int64_t)Ht || fc.shape[0] < H || fc.shape[0] > H + 3))
        rc = fail("%s: fc.weight must be [hidden (+3 signal rows), 3 * target hidden]%s", path, "");
    const int k_sig = got == 1 ? (int)(fc.shape[0] - H) : 0;
    if (got == 1 && k_sig != 0 && k_sig != 3) rc = fail("%s: fc.weight has %s extra rows (0 or 3 expected)", path, k_sig == 1 ? "1" : "2");
    /* target facts: layers and embedding */
    int L = cfg_int(cfg, "target_num_hidden_layers", 0);
    sx_gguf *tg = NULL;
    if (!rc && target) {
        if (sx_gguf_open(target, &tg) != SX_OK) rc = fail("%s: %s", target, sx_last_error());
        char arch[32] = "", key[96];
        if (!rc && sx_gguf_get_str_copy(tg, "general.architecture", arch, sizeof arch) == SX_OK) {
            snprintf(key, sizeof key, "%s.block_count", arch);
            uint32_t bc;
            if (sx_gguf_get_u32(tg, key, &bc) == SX_OK) L = (int)bc;
        }
    }
    sx_gguf_writer *w = NULL;
    if (!rc && sx_gguf_writer_create(&w) != SX_OK) rc = fail("%s%s", sx_last_error(), "");
    sx_status s = SX_OK;
#define KV(call) do { if (!rc && s == SX_OK) s = (call); } while (0)
    KV(sx_gguf_writer_set_str(w, "general.architecture", "eagle3"));
    KV(sx_gguf_writer_set_str(w, "general.name", "EAGLE-3 draft (converted)"));
    KV(sx_gguf_writer_set_u32(w, "eagle3.embedding_length", (uint32_t)H));
    KV(sx_gguf_writer_set_u32(w, "eagle3.feed_forward_length", (uint32_t)I));
    KV(sx_gguf_writer_set_u32(w, "eagle3.attention.head_count", (uint32_t)nh));
    KV(sx_gguf_writer_set_u32(w, "eagle3.attention.head_count_kv", (uint32_t)nkv));
    KV(sx_gguf_writer_set_u32(w, "eagle3.attention.key_length", (uint32_t)hd));
    KV(sx_gguf_writer_set_f32(w, "eagle3.attention.layer_norm_rms_epsilon", eps));
    KV(sx_gguf_writer_set_f32(w, "eagle3.rope.freq_base", rope_base)); /* AngelSlim trains with 10000 whatever rope_theta says */
    KV(sx_gguf_writer_set_u32(w, "eagle3.vocab_size", (uint32_t)Vd));
    KV(sx_gguf_writer_set_u32(w, "eagle3.target_vocab_size", (uint32_t)V));
    KV(sx_gguf_writer_set_u32(w, "eagle3.target_hidden_size", (uint32_t)Ht));
    KV(sx_gguf_writer_set_u32(w, "eagle3.signal_rows", (uint32_t)k_sig));
    if (L > 0) {
        int32_t layers[3] = {2, L / 2, L - 3}; /* clamped for toy targets of fewer than 4 layers */
        for (int i = 0; i < 3; i++) layers[i] = layers[i] < 0 ? 0 : layers[i] >= L ? L - 1 : layers[i];
        KV(sx_gguf_writer_set_arr_i32(w, "eagle3.target_layers", layers, 3));
    }
    static const char *const map[][3] = {
        /* checkpoint name, GGUF name, "n" = keep dtype / "f" = f32 */
        {"fc.weight", "fc.weight", "n"},
        {"fc.bias", "fc.bias", "f"},
        {"midlayer.hidden_norm.weight", "hidden_norm.weight", "f"},
        {"midlayer.input_layernorm.weight", "input_norm.weight", "f"},
        {"midlayer.self_attn.q_proj.weight", "attn_q.weight", "n"},
        {"midlayer.self_attn.k_proj.weight", "attn_k.weight", "n"},
        {"midlayer.self_attn.v_proj.weight", "attn_v.weight", "n"},
        {"midlayer.self_attn.o_proj.weight", "attn_output.weight", "n"},
        {"midlayer.post_attention_layernorm.weight", "ffn_norm.weight", "f"},
        {"midlayer.mlp.gate_proj.weight", "ffn_gate.weight", "n"},
        {"midlayer.mlp.up_proj.weight", "ffn_up.weight", "n"},
        {"midlayer.mlp.down_proj.weight", "ffn_down.weight", "n"},
        {"norm.weight", "output_norm.weight", "f"},
        {"lm_head.weight", "output.weight", "n"},
        {"embed_tokens.weight", "token_embd.weight", "n"},
    };
    bool have_embd = false;
    for (size_t i = 0; !rc && s == SX_OK && i < sizeof map / sizeof map[0]; i++) {
        st_tensor t;
        got = st_get(&st, map[i][0], &t);
        const bool optional = !strcmp(map[i][0], "fc.bias") || !strcmp(map[i][0], "embed_tokens.weight");
        if (got < 0) rc = 1;
        else if (got == 0 && !optional) rc = fail("%s: missing tensor %s", path, map[i][0]);
        else if (got == 1) {
            s = add_float(w, map[i][1], &t, map[i][2][0] == 'f');
            have_embd |= !strcmp(map[i][0], "embed_tokens.weight");
        }
    }
    st_tensor d2t;
    got = rc ? 0 : st_get(&st, "d2t", &d2t);
    if (got < 0) rc = 1;
    if (!rc && s == SX_OK && got == 1) { /* int64 offsets -> int32 */
        if (strcmp(d2t.dtype, "I64") != 0 || d2t.n_dims != 1 || d2t.shape[0] != Vd) {
            rc = fail("%s: d2t must be int64 [draft_vocab_size]%s", path, "");
        } else {
            int32_t *v = malloc(sizeof(int32_t) * (size_t)Vd);
            for (int i = 0; i < Vd; i++) {
                int64_t x;
                memcpy(&x, d2t.data + 8 * (size_t)i, 8);
                if (i + x < 0 || i + x >= V) rc = fail("%s: d2t maps a draft id outside the target vocabulary%s", path, "");
                v[i] = (int32_t)x;
            }
            const int64_t ne = Vd;
            if (!rc) s = sx_gguf_writer_add_tensor_copy(w, "d2t", SX_DTYPE_I32, 1, &ne, v, sizeof(int32_t) * (size_t)Vd);
            free(v);
        }
    } else if (!rc && got == 0 && Vd != V) {
        rc = fail("%s: draft_vocab_size differs from vocab_size but there is no d2t%s", path, "");
    }
    if (!rc && s == SX_OK && !have_embd && tg) { /* the target's embedding, so the draft stands alone */
        const int64_t ti = sx_gguf_find_tensor(tg, "token_embd.weight");
        sx_gguf_tensor_info info;
        if (ti >= 0 && sx_gguf_tensor(tg, ti, &info) == SX_OK && info.ne[0] == H)
            s = sx_gguf_writer_add_tensor_copy(w, "token_embd.weight", info.dtype, info.n_dims, info.ne, info.data, info.size);
    }
    if (!rc && s == SX_OK) s = sx_gguf_writer_write(w, out);
#undef KV
    if (!rc && s != SX_OK) rc = sx_cli_fail("convert", s);
    if (!rc) fprintf(stderr, "[convert] wrote %s: hidden %d, %d heads (%d kv), ffn %d, draft vocab %d of %d, %d signal rows%s\n", out, H, nh, nkv, I, Vd, V,
                     k_sig, have_embd ? ", own embedding" : tg ? ", embedding from the target" : "");
    sx_gguf_writer_destroy(w);
    sx_gguf_close(tg);
    cJSON_Delete(st.header);
    free(st.data);
    cJSON_Delete(cfg);
    return rc;
}
