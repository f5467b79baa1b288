/* tools/cmd_convert.c — `specexit convert eagle3 CHECKPOINT_DIR -o DRAFT.gguf`:
 * an AngelSlim / EAGLE-3 draft checkpoint (config.json + model.safetensors)
 * to the draft GGUF layout of core/eagle3.h.
 *
 * safetensors: u64 little-endian header length, a JSON header
 * {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"},
 * then the data; every field is checked before use.
 *
 * The draft's RoPE (--rope): the EAGLE-3 reference trainer
 * (SafeAILab/EAGLE traineagle3/cnets.py) and AngelSlim's
 * (train/models/draft/llama_eagle3.py) build the draft's rotary embedding
 * with base 10000 whatever config.json's rope_theta says, and apply only
 * rope_scaling "linear" or "dynamic"; any other type makes them fail, so a
 * draft they trained never had one. SGLang's and vLLM's llama_eagle3 take
 * rope_theta and rope_scaling from the config, as newer trainers (SpecForge)
 * do. config.json cannot tell the two apart (AngelSlim's and SpecForge's
 * drafts both say LlamaForCausalLMEagle3), so the default is the trainers'
 * (--rope angelslim) and --rope config follows the config. */
#include <cjson/cJSON.h>
#include <math.h>
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

/* The draft's RoPE as written to the GGUF. */
typedef struct {
    float base;
    const char *type; /* NULL (none), "linear" or "llama3" */
    double factor, low, high;
    int orig_ctx;
    float *freqs; /* llama3: [hd/2] divisors of the pair frequencies (rope_freqs.weight), malloc'd */
} draft_rope;

static bool cfg_num(const cJSON *o, const char *key, double *out) {
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (cJSON_IsNumber(v)) *out = v->valuedouble;
    return cJSON_IsNumber(v);
}

/* Llama 3.1's per-pair divisors (as rope_freqs.weight of a Llama 3.1 GGUF):
 * wavelengths under orig/high keep their frequency, those over orig/low are
 * divided by factor, those between blend the two. */
static void llama3_divisors(draft_rope *r, int hd) {
    const double lo_wl = r->orig_ctx / r->low, hi_wl = r->orig_ctx / r->high;
    for (int i = 0; i < hd / 2; i++) {
        const double wl = 2 * 3.14159265358979323846 / pow(r->base, -2.0 * i / hd);
        const double sm = (r->orig_ctx / wl - r->low) / (r->high - r->low);
        r->freqs[i] = wl < hi_wl ? 1.0f : wl > lo_wl ? (float)r->factor : (float)(1.0 / ((1 - sm) / r->factor + sm));
    }
}

/* Reads rope_theta and rope_scaling ("type" or "rope_type"; transformers 5's
 * rope_parameters too) as --rope asks. 0 = ok, 1 = refused (printed). */
static int read_rope(const cJSON *cfg, const char *dir, bool follow_config, float base_override, int hd, draft_rope *r) {
    memset(r, 0, sizeof *r);
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if (!cJSON_IsObject(sc)) sc = cJSON_GetObjectItemCaseSensitive(cfg, "rope_parameters");
    if (!cJSON_IsObject(sc)) sc = NULL;
    double theta = 10000;
    const bool have_theta = cfg_num(cfg, "rope_theta", &theta) || cfg_num(sc, "rope_theta", &theta);
    const cJSON *t = sc ? cJSON_GetObjectItemCaseSensitive(sc, "rope_type") : NULL;
    if (!cJSON_IsString(t) && sc) t = cJSON_GetObjectItemCaseSensitive(sc, "type");
    const char *type = cJSON_IsString(t) ? t->valuestring : NULL;
    if (sc && !type && !cJSON_GetObjectItemCaseSensitive(sc, "rope_theta"))
        return fail("%s/config.json: rope_scaling has neither \"rope_type\" nor \"type\"%s", dir, "");
    if (type && !strcmp(type, "default")) type = NULL;
    if (type && strcmp(type, "linear") != 0 && strcmp(type, "llama3") != 0)
        return fail("%s/config.json: rope_scaling type '%s' is not supported (linear and llama3 are)", dir, type);
    r->base = follow_config && have_theta ? (float)theta : 10000.0f;
    if (base_override > 0) r->base = base_override;
    if (!(r->base > 0)) return fail("%s/config.json: rope_theta must be positive%s", dir, "");
    if (!follow_config && have_theta && theta != 10000 && !(base_override > 0))
        fprintf(stderr, "[convert] rope: base 10000 as AngelSlim/EAGLE-3 training uses, not config.json's rope_theta %g (--rope config uses it)\n", theta);
    if (type && !strcmp(type, "llama3") && !follow_config) { /* these trainers refuse llama3: the draft was trained without it */
        fprintf(stderr, "[convert] rope: config.json's llama3 rope_scaling not applied, AngelSlim/EAGLE-3 training cannot use it (--rope config applies it)\n");
        type = NULL;
    }
    r->type = type;
    if (type && !cfg_num(sc, "factor", &r->factor)) return fail("%s/config.json: rope_scaling %s without a factor", dir, type);
    if (type && !(r->factor > 0)) return fail("%s/config.json: rope_scaling %s: factor must be positive", dir, type);
    if (!type || strcmp(type, "llama3") != 0) return 0;
    double orig = 0;
    if (!cfg_num(sc, "low_freq_factor", &r->low) || !cfg_num(sc, "high_freq_factor", &r->high) || !cfg_num(sc, "original_max_position_embeddings", &orig))
        return fail("%s/config.json: rope_scaling llama3 needs low_freq_factor, high_freq_factor and original_max_position_embeddings%s", dir, "");
    if (!(r->low > 0 && r->high > r->low && orig >= 1 && orig < (1 << 30)))
        return fail("%s/config.json: rope_scaling llama3 needs 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings >= 1%s", dir, "");
    r->orig_ctx = (int)orig;
    if (!(r->freqs = malloc(sizeof(float) * (size_t)(hd / 2)))) return fail("out of memory%s%s", "", "");
    llama3_divisors(r, hd);
    return 0;
}

int sx_cmd_convert(int argc, char **argv) {
    const char *kind = argc > 0 ? argv[0] : NULL, *dir = argc > 1 ? argv[1] : NULL, *out = NULL, *target = NULL;
    float rope_base = 0; /* 0: from --rope */
    bool rope_config = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--target") && i + 1 < argc) target = argv[++i];
        else if (!strcmp(argv[i], "--rope-base") && i + 1 < argc) {
            char *end;
            rope_base = strtof(argv[++i], &end);
            if (*end || !(rope_base > 0)) return fail("--rope-base '%s' is not a positive number%s", argv[i], "");
        } else if (!strcmp(argv[i], "--rope") && i + 1 < argc) {
            rope_config = !strcmp(argv[++i], "config");
            if (!rope_config && strcmp(argv[i], "angelslim") != 0) return fail("--rope '%s': angelslim or config%s", argv[i], "");
        } else return fail("unknown option '%s' for 'specexit convert'%s", argv[i], "");
    }
    if (!kind || strcmp(kind, "eagle3") != 0 || !dir || !out) {
        fprintf(stderr, "usage: specexit convert eagle3 CHECKPOINT_DIR -o DRAFT.gguf [--target TARGET.gguf] [--rope angelslim|config] [--rope-base B]\n"
                        "  CHECKPOINT_DIR holds config.json and model.safetensors (AngelSlim / EAGLE-3 layout).\n"
                        "  --target fills in what the checkpoint lacks: the embedding and the feature layers.\n"
                        "  --rope angelslim (default): base 10000 and linear rope_scaling only, as AngelSlim and the EAGLE-3\n"
                        "    reference trainer train drafts; config: config.json's rope_theta and rope_scaling (linear, llama3),\n"
                        "    as SGLang and vLLM run drafts. --rope-base B overrides the base either way.\n");
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
    draft_rope rope = {0};
    if (!rc) rc = read_rope(cfg, dir, rope_config, rope_base, hd, &rope);
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
    KV(sx_gguf_writer_set_f32(w, "eagle3.rope.freq_base", rope.base));
    if (rope.type) {
        KV(sx_gguf_writer_set_str(w, "eagle3.rope.scaling.type", rope.type));
        KV(sx_gguf_writer_set_f32(w, "eagle3.rope.scaling.factor", (float)rope.factor));
    }
    if (rope.freqs) { /* llama3: the scaling as keys, the divisors as Llama 3.1's rope_freqs.weight */
        const int64_t ne = hd / 2;
        KV(sx_gguf_writer_set_u32(w, "eagle3.rope.scaling.original_context_length", (uint32_t)rope.orig_ctx));
        KV(sx_gguf_writer_set_f32(w, "eagle3.rope.scaling.low_freq_factor", (float)rope.low));
        KV(sx_gguf_writer_set_f32(w, "eagle3.rope.scaling.high_freq_factor", (float)rope.high));
        KV(sx_gguf_writer_add_tensor_copy(w, "rope_freqs.weight", SX_DTYPE_F32, 1, &ne, rope.freqs, sizeof(float) * (size_t)ne));
    }
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
    if (!rc) fprintf(stderr, "[convert] wrote %s: hidden %d, %d heads (%d kv), ffn %d, draft vocab %d of %d, %d signal rows%s; rope base %g%s%s\n", out, H, nh,
                     nkv, I, Vd, V, k_sig, have_embd ? ", own embedding" : tg ? ", embedding from the target" : "", rope.base,
                     rope.type ? ", scaling " : "", rope.type ? rope.type : "");
    free(rope.freqs);
    sx_gguf_writer_destroy(w);
    sx_gguf_close(tg);
    cJSON_Delete(st.header);
    free(st.data);
    cJSON_Delete(cfg);
    return rc;
}
