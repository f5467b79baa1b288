/* core/engine.c — engine and session objects behind core/specexit.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/chat.h"
#include "core/eagle3.h"
#include "core/engine_internal.h"

double sx_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Template family: the override by name, else detected from the file's
 * template, else ChatML (llama.cpp's fallback too). */
static sx_status select_chat(const char *override, const char *tmpl, int *out_kind, char **out_default_system) {
    sx_chat_template_kind k = SX_CHAT_UNKNOWN;
    *out_default_system = NULL;
    if (override) {
        SX_RETURN_IF_ERROR(sx_chat_kind_from_name(override, &k));
    } else if (tmpl) {
        k = sx_chat_detect(tmpl);
        if (k == SX_CHAT_UNKNOWN) SX_LOGW("unrecognised chat template in the model; using chatml");
    }
    if (k == SX_CHAT_UNKNOWN) k = SX_CHAT_CHATML;
    if (tmpl) SX_RETURN_IF_ERROR(sx_chat_default_system(tmpl, out_default_system));
    *out_kind = (int)k;
    return SX_OK;
}

/* The draft: an EAGLE-3 head (architecture "eagle3") or a small model that
 * shares the target's vocabulary, on its own device when asked. */
static sx_status load_draft(sx_engine *e, const sx_engine_options *o, const sx_device_options *dopts) {
    if (o->draft_backend && o->draft_backend[0] && strcmp(o->draft_backend, e->backend) != 0) {
        SX_RETURN_IF_ERROR(sx_device_open_by_name(o->draft_backend, dopts, &e->draft_dev));
        if (!e->cpu && !e->draft_dev->info.host_visible) SX_RETURN_IF_ERROR(sx_device_open_by_name("cpu", dopts, &e->cpu));
    }
    sx_device *ddev = e->draft_dev ? e->draft_dev : e->dev;
    sx_gguf *g;
    SX_RETURN_IF_ERROR(sx_gguf_open(o->draft_path, &g));
    char arch[32] = "";
    sx_status s = sx_gguf_get_str_copy(g, "general.architecture", arch, sizeof arch);
    if (s == SX_OK && strcmp(arch, "eagle3") == 0) {
        sx_gguf_close(g);
        return sx_eagle3_load(o->draft_path, e->model, ddev, &e->eagle);
    }
    s = sx_model_load_gguf(g, ddev, &e->draft);
    if (s != SX_OK) return sx_wrap_error(s, "loading draft model %s", o->draft_path);
    if (e->draft->hp.n_vocab != e->model->hp.n_vocab)
        return sx_set_error(SX_ERR_INVALID_ARG, "draft model %s has a vocabulary of %d tokens, the target %d: they must share one", o->draft_path,
                            e->draft->hp.n_vocab, e->model->hp.n_vocab);
    return SX_OK;
}

/* sx_kv_type's names and tensor dtypes, in its order */
static const char *const kv_names[] = {"f16", "f32", "q8_0", "q4_0"};
static const sx_dtype kv_dtypes[] = {SX_DTYPE_F16, SX_DTYPE_F32, SX_DTYPE_Q8_0, SX_DTYPE_Q4_0};
#define N_KV_TYPES (unsigned)(sizeof kv_names / sizeof kv_names[0])
static sx_dtype kv_type_dtype(sx_kv_type t) { return (unsigned)t < N_KV_TYPES ? kv_dtypes[t] : SX_DTYPE_F16; }

/* -ngl auto: what sx_model_placement needs from the engine: the device's
 * free memory (SPECEXIT_FIT_MEMORY=BYTES: exactly this much for the model,
 * as a test's small GPU) and a draft kept on the same device (its weights,
 * an embedding copy and its cache: about twice its file). */
static void fit_memory(const sx_engine *e, const sx_engine_options *o, sx_model_placement *pl) {
    const char *env = getenv("SPECEXIT_FIT_MEMORY");
    pl->exact = env && *env;
    pl->mem = 0; /* a split: all its devices' memory */
    for (int i = 0; i <= e->n_split; i++) {
        const sx_device_info *d = i < e->n_split ? &e->split[i]->info : &e->dev->info;
        pl->mem += d->memory_free ? d->memory_free : d->memory_total;
    }
    if (pl->exact) pl->mem = strtoull(env, NULL, 10);
    pl->fit_ctx = o->fit_ctx;
    pl->kv_type = kv_type_dtype(o->fit_kv_type);
    sx_gguf *dg;
    if (o->draft_path && (!o->draft_backend || !o->draft_backend[0] || !strcmp(o->draft_backend, e->backend)) && sx_gguf_open(o->draft_path, &dg) == SX_OK) {
        pl->reserve = 2 * sx_gguf_size(dg);
        sx_gguf_close(dg);
    }
}

int sx_engine_devices(const sx_engine *e, sx_device **out) {
    int n = 0;
    for (int i = 0; i < e->n_split; i++) out[n++] = e->split[i];
    out[n++] = e->dev;
    if (e->draft_dev) out[n++] = e->draft_dev;
    if (e->cpu) out[n++] = e->cpu;
    return n;
}

/* `backend` as a comma-separated list of GPU devices to split the model over:
 * e->split gets all but the last, e->dev the last (it keeps the output layer). */
static sx_status open_devices(sx_engine *e, const char *backend, const sx_device_options *dopts) {
    char list[256];
    snprintf(list, sizeof list, "%s", backend);
    char *save = NULL, *names[SX_MAX_DEVICES + 1];
    int n = 0;
    for (char *t = strtok_r(list, ",/", &save); t; t = strtok_r(NULL, ",/", &save)) { /* '/' as llama-bench's -dev lists */
        if (n == SX_MAX_DEVICES) return sx_set_error(SX_ERR_INVALID_ARG, "--backend %s: at most %d devices", backend, SX_MAX_DEVICES);
        names[n++] = t;
    }
    if (n == 0) return sx_set_error(SX_ERR_INVALID_ARG, "--backend: no device given");
    for (int i = 0; i < n; i++) {
        sx_device *d = NULL;
        SX_RETURN_IF_ERROR(sx_device_open_by_name(names[i], dopts, &d));
        if (i + 1 < n) e->split[e->n_split++] = d;
        else e->dev = d;
        if (n > 1 && d->info.host_visible)
            return sx_set_error(SX_ERR_INVALID_ARG, "--backend %s: '%s' runs in host memory; a split lists GPU devices (the CPU joins with -ngl)",
                                backend, names[i]);
    }
    int at = 0;
    for (int i = 0; i < n; i++) {
        const sx_device *d = i + 1 < n ? e->split[i] : e->dev;
        at += snprintf(e->devices_desc + at, sizeof e->devices_desc - (size_t)at, "%s%s", i ? " + " : "", d->info.name);
        if (at >= (int)sizeof e->devices_desc) break;
    }
    return SX_OK;
}

void sx_engine_options_init(sx_engine_options *o) {
    memset(o, 0, sizeof *o);
    o->backend = "cpu";
    o->n_gpu_layers = -1;
}

sx_status sx_engine_create(const sx_engine_options *o, sx_engine **out) {
    *out = NULL;
    if (!o->model_path || !o->model_path[0]) return sx_set_error(SX_ERR_INVALID_ARG, "no model file given (-m MODEL.gguf)");
    sx_engine *e = calloc(1, sizeof *e);
    if (!e) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "engine: out of memory");
    const char *backend = o->backend && o->backend[0] ? o->backend : "cpu";
    snprintf(e->backend, sizeof e->backend, "%s", backend);
    e->cont_batching = !o->no_cont_batching;
    sx_status s = sx_engine_sync_init(e);
    if (s != SX_OK) {
        free(e);
        return s;
    }
    sx_device_options dopts;
    sx_device_options_init(&dopts);
    dopts.n_threads = o->n_threads;
    dopts.pin_threads = o->pin_threads;
    s = open_devices(e, backend, &dopts);
    if (s == SX_OK && !e->dev->info.host_visible) s = sx_device_open_by_name("cpu", &dopts, &e->cpu);
    if (s == SX_OK && o->n_gpu_layers < SX_NGL_AUTO)
        s = sx_set_error(SX_ERR_INVALID_ARG, "--n-gpu-layers %d: give a layer count >= 0, -1 for all or auto", o->n_gpu_layers);
    if (s == SX_OK && o->n_gpu_layers >= 0 && !e->cpu)
        SX_LOGW("--n-gpu-layers is ignored: the %s backend keeps every layer in host memory", e->dev->vt->name);
    sx_gguf *g = NULL;
    sx_model_placement fit = {.n_cpu_moe = o->n_cpu_moe, .extra = e->split, .n_extra = e->n_split, .share = o->tensor_split};
    if (s == SX_OK && o->n_gpu_layers == SX_NGL_AUTO && e->cpu) fit_memory(e, o, &fit);
    if (s == SX_OK) s = sx_gguf_open(o->model_path, &g);
    if (s == SX_OK) s = sx_model_load_gguf_split(g, e->dev, e->cpu, o->n_gpu_layers, &fit, &e->model);
    else sx_gguf_close(g);
    const bool split = s == SX_OK && !e->model->output_on_dev; /* some layers on the CPU */
    if (split && e->model->fit_need)
        SX_LOGW("the model and a %d-token KV cache need %.0f MiB on %s, which has %.0f MiB for them: %d of %d layers offloaded, the rest on "
                "the CPU (-ngl N chooses)",
                o->fit_ctx > 0 ? o->fit_ctx : 4096, (double)e->model->fit_need / (1 << 20), e->dev->info.name, (double)e->model->fit_budget / (1 << 20),
                e->model->n_dev_layers, e->model->hp.n_layer + 1);
    if (s == SX_OK && o->n_cpu_moe > 0 && !e->model->n_cpu_moe)
        SX_LOGW("--n-cpu-moe is ignored: %s", e->model->hp.n_expert ? "the backend keeps every layer in host memory" : "the model has no experts");
    if (split)
        SX_LOGI("offloaded %d/%d layers to %s (%.1f MiB of weights); the token embedding, the output layer and %d blocks run on the CPU",
                e->model->n_dev_layers, e->model->hp.n_layer + 1, e->dev->info.name, (double)e->model->dev_weight_bytes / (1 << 20),
                e->model->hp.n_layer - e->model->n_dev_layers);
    if (s == SX_OK && e->n_split) {
        char desc[512];
        int at = 0;
        for (int d = 0; d <= e->n_split && at < (int)sizeof desc; d++)
            at += snprintf(desc + at, sizeof desc - (size_t)at, "%s%s: %d", d ? ", " : "", d < e->n_split ? e->split[d]->info.name : e->dev->info.name,
                           e->model->split_layers[d]);
        SX_LOGI("split %d blocks over %d devices (%s), the output layer on %s", e->model->n_dev_layers, e->n_split + 1, desc, e->dev->info.name);
    }
    if (s == SX_OK) s = sx_tokenizer_from_gguf(e->model->gguf, &e->tok);
    if (s == SX_OK && sx_tokenizer_n_vocab(e->tok) > e->model->hp.n_vocab)
        s = sx_set_error(SX_ERR_FORMAT, "%s: tokenizer has %lld tokens but the embedding only %d rows", o->model_path,
                         (long long)sx_tokenizer_n_vocab(e->tok), e->model->hp.n_vocab);
    if (s == SX_OK) {
        const char *tmpl = NULL;
        size_t len = 0;
        char *tmpl_copy = NULL;
        if (sx_gguf_get_str(e->model->gguf, "tokenizer.chat_template", &tmpl, &len) == SX_OK) {
            tmpl_copy = strndup(tmpl, len);
        }
        s = select_chat(o->chat_template, tmpl_copy, &e->chat_kind, &e->default_system);
        free(tmpl_copy);
    }
    if (s == SX_OK && o->draft_path) s = load_draft(e, o, &dopts);
    if (s != SX_OK) {
        sx_engine_destroy(e);
        return s;
    }
    *out = e;
    return SX_OK;
}

void sx_engine_destroy(sx_engine *e) {
    if (!e) return;
    sx_engine_sync_free(e);
    sx_tokenizer_destroy(e->tok);
    sx_eagle3_free(e->eagle);
    sx_model_free(e->draft);
    sx_model_free(e->model);
    sx_device_close(e->draft_dev);
    sx_device_close(e->dev);
    for (int i = 0; i < e->n_split; i++) sx_device_close(e->split[i]);
    sx_device_close(e->cpu);
    free(e->default_system);
    free(e);
}

/* A reasoning model: its template family opens a <think> section. */
static bool engine_thinks(const sx_engine *e) { return e->chat_kind == SX_CHAT_CHATML_THINK || e->chat_kind == SX_CHAT_DEEPSEEK_R1; }

void sx_engine_get_info(const sx_engine *e, sx_engine_info *out) {
    const sx_model *m = e->model;
    memset(out, 0, sizeof *out);
    out->model_name = m->name;
    out->arch = sx_arch_name(m->hp.arch);
    out->quant = m->file_type;
    out->n_params = m->n_params;
    out->weight_bytes = m->weight_bytes;
    out->active_weight_bytes = m->active_weight_bytes;
    out->n_expert = m->hp.n_expert;
    out->n_expert_used = m->hp.n_expert_used;
    out->n_layer = m->hp.n_layer;
    out->n_embd = m->hp.n_embd;
    out->n_head = m->hp.n_head;
    out->n_head_kv = m->hp.n_head_kv;
    out->n_vocab = m->hp.n_vocab;
    out->n_ctx_train = m->hp.n_ctx_train;
    out->backend = e->dev->vt->name;
    out->device = e->n_split ? e->devices_desc : e->dev->info.name;
    out->n_devices = e->n_split + 1;
    for (int d = 0; d <= m->n_split_devs && d < SX_MAX_DEVICES; d++) out->device_layers[d] = m->split_layers[d];
    out->n_gpu_layers = m->n_dev_layers;
    out->n_cpu_moe = m->n_cpu_moe;
    out->output_on_device = m->output_on_dev;
    out->device_weight_bytes = m->dev_weight_bytes;
    out->chat_template = sx_chat_kind_name(e->chat_kind);
    out->draft = e->eagle ? "eagle3" : e->draft ? "draft" : "none";
    out->draft_signals = e->eagle && e->eagle->hp.n_signals == 3;
    out->draft_exit[0] = e->eagle ? e->eagle->hp.exit_conf : NAN;
    out->draft_exit[1] = e->eagle ? e->eagle->hp.exit_progress : NAN;
    out->draft_exit[2] = e->eagle ? e->eagle->hp.exit_remain : NAN;
    out->draft_exit[3] = e->eagle ? e->eagle->hp.exit_alpha : NAN;
    out->draft_device = e->draft_dev ? e->draft_dev->info.name : e->dev->info.name;
    out->thinking = engine_thinks(e);
}

/* ---- text ---- */
sx_status sx_tokenize(const sx_engine *e, const char *text, bool add_special, bool parse_special, int32_t **out_ids, int *out_n) {
    int64_t n = 0;
    *out_ids = NULL;
    *out_n = 0;
    SX_RETURN_IF_ERROR(sx_tokenizer_encode(e->tok, text, strlen(text), add_special, parse_special, out_ids, &n));
    if (n > INT32_MAX) {
        free(*out_ids);
        *out_ids = NULL;
        return sx_set_error(SX_ERR_INVALID_ARG, "text too long");
    }
    *out_n = (int)n;
    return SX_OK;
}

sx_status sx_token_to_piece(const sx_engine *e, int32_t token, char *buf, size_t cap, size_t *out_len) {
    return sx_tokenizer_token_to_piece(e->tok, token, buf, cap, out_len);
}

sx_status sx_detokenize(const sx_engine *e, const int32_t *ids, int n, char **out_text) {
    size_t len;
    return sx_tokenizer_decode(e->tok, ids, n, false, out_text, &len);
}

bool sx_token_is_eog(const sx_engine *e, int32_t token) { return sx_tokenizer_is_eog(e->tok, token); }
bool sx_token_is_control(const sx_engine *e, int32_t token) { return sx_tokenizer_token_type(e->tok, token) == SX_TOKEN_TYPE_CONTROL; }

sx_status sx_chat_apply(const sx_engine *e, const sx_chat_message *msgs, int n, bool add_generation_prompt, bool think, char **out_text) {
    return sx_chat_format(e->chat_kind, msgs, n, add_generation_prompt, think && engine_thinks(e), e->default_system, out_text);
}

sx_status sx_chat_apply_tools(const sx_engine *e, const sx_chat_message *msgs, int n, const char *tools_json, bool add_generation_prompt, bool think,
                              char **out_text) {
    return sx_chat_format_tools(e->chat_kind, msgs, n, tools_json, add_generation_prompt, think && engine_thinks(e), e->default_system, out_text);
}

sx_status sx_chat_prompt(const sx_engine *e, const char *system, const char *user, bool think, char **out_text) {
    sx_chat_message msgs[2];
    int n = 0;
    if (system) msgs[n++] = (sx_chat_message){"system", system};
    msgs[n++] = (sx_chat_message){"user", user};
    return sx_chat_apply(e, msgs, n, true, think, out_text);
}

/* ---- sessions ---- */
void sx_session_options_init(sx_session_options *o) {
    memset(o, 0, sizeof *o);
}

sx_status sx_kv_type_from_name(const char *name, sx_kv_type *out) {
    for (unsigned i = 0; i < N_KV_TYPES; i++)
        if (name && !strcmp(name, kv_names[i])) {
            *out = (sx_kv_type)i;
            return SX_OK;
        }
    return sx_set_error(SX_ERR_INVALID_ARG, "unknown KV cache type '%s' (f16, f32, q8_0 or q4_0)", name ? name : "(null)");
}

const char *sx_kv_type_name(sx_kv_type t) { return (unsigned)t < N_KV_TYPES ? kv_names[t] : "f16"; }

/* A KV cache type the model and the target's device can use: q8_0 and q4_0
 * need whole 32-element blocks per head, and a device that writes and reads
 * it (asked with the two nodes a layer adds; else every layer's attention
 * would fall back to another device with a copy of the cache). */
static sx_status kv_type_check(sx_engine *e, sx_dtype t) {
    if (!sx_dtype_get(t)->quantized) return SX_OK;
    const sx_hparams *hp = &e->model->hp;
    const char *tn = sx_dtype_name(t);
    if (hp->head_dim % 32)
        return sx_set_error(SX_ERR_UNSUPPORTED, "a %s KV cache needs a head dim multiple of 32 (this model's is %d): use --cache-type-k f16",
                            tn, hp->head_dim);
    sx_graph *g;
    SX_RETURN_IF_ERROR(sx_graph_create(16, &g));
    const int64_t hd = hp->head_dim, nkv = hp->n_head_kv;
    sx_tensor *cache = sx_graph_input(g, t, 2, (int64_t[]){hd * nkv, 2}, "kv_probe");
    sx_tensor *x = sx_graph_input(g, SX_DTYPE_F32, 2, (int64_t[]){hd * nkv, 1}, "x_probe");
    sx_tensor *ids = sx_graph_input(g, SX_DTYPE_I32, 1, (int64_t[]){1}, "ids_probe");
    sx_tensor *set = sx_graph_add_set_rows(g, cache, x, ids);
    const size_t rh = sx_dtype_row_size(t, hd);
    sx_tensor *kv = set ? sx_graph_view(g, set, 3, (int64_t[]){hd, nkv, 1}, (size_t[]){rh, rh * (size_t)nkv}, 0) : NULL;
    sx_tensor *q = sx_graph_input(g, SX_DTYPE_F32, 3, (int64_t[]){hd, hp->n_head, 1}, "q_probe");
    sx_tensor *att = kv && q ? sx_graph_add_attention(g, q, kv, kv, NULL, 1.0f, 0) : NULL;
    sx_status st = sx_graph_status(g);
    for (int i = 0; i <= e->n_split && st == SX_OK; i++) { /* every device holding blocks */
        sx_device *d = i < e->n_split ? e->split[i] : e->dev;
        if (!d->vt->supports_op(d, set) || !d->vt->supports_op(d, att))
            st = sx_set_error(SX_ERR_UNSUPPORTED, "the %s backend cannot keep a %s KV cache (writing or attending to it): use --cache-type-k f16",
                              d->vt->name, tn);
    }
    sx_graph_destroy(g);
    return st;
}

sx_status sx_session_create(sx_engine *e, const sx_session_options *o, sx_session **out) {
    *out = NULL;
    sx_session_options def;
    sx_session_options_init(&def);
    if (!o) o = &def;
    if (o->n_ctx < 0 || o->n_batch < 0) return sx_set_error(SX_ERR_INVALID_ARG, "session: negative context or batch size");
    if ((unsigned)o->kv_type >= N_KV_TYPES) return sx_set_error(SX_ERR_INVALID_ARG, "session: unknown KV cache type %d", (int)o->kv_type);
    sx_session *s = calloc(1, sizeof *s);
    if (!s) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "session: out of memory");
    s->e = e;
    const int n_ctx = o->n_ctx ? o->n_ctx : (e->model->hp.n_ctx_train < 4096 ? e->model->hp.n_ctx_train : 4096);
    s->n_batch = o->n_batch ? o->n_batch : 512;
    sx_device *devs[SX_MAX_DEVICES + 2];
    const int n_devs = sx_engine_devices(e, devs);
    sx_engine_lock(e);
    const sx_dtype kvt = kv_type_dtype(o->kv_type);
    sx_status st = kv_type_check(e, kvt);
    if (st == SX_OK) st = sx_kv_cache_create_for_model(e->model, n_ctx, kvt, &s->kv);
    if (st == SX_OK) st = sx_sched_create(devs, n_devs, &s->sched);
    sx_engine_unlock(e);
    if (st == SX_OK) st = sx_graph_create(sx_model_graph_size(e->model) + 8 * e->model->hp.n_layer + 256, &s->graph);
    if (st == SX_OK && !(s->history = malloc(sizeof(int32_t) * (size_t)n_ctx))) st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "session: out of memory");
    if (st != SX_OK) {
        sx_session_destroy(s);
        return st;
    }
    *out = s;
    return SX_OK;
}

size_t sx_session_kv_bytes(const sx_session *s) { return s ? sx_kv_cache_bytes(s->kv) : 0; }

void sx_session_destroy(sx_session *s) {
    if (!s) return;
    sx_engine_lock(s->e);
    sx_graph_destroy(s->graph);
    sx_sched_destroy(s->sched);
    sx_kv_cache_free(s->kv);
    sx_engine_unlock(s->e);
    free(s->history);
    free(s);
}

void sx_session_reset(sx_session *s) { s->n_past = 0; }
int sx_session_n_past(const sx_session *s) { return s->n_past; }
int sx_session_n_ctx(const sx_session *s) { return s->kv->n_ctx; }
const int32_t *sx_session_tokens(const sx_session *s) { return s->history; }
int sx_session_common_prefix(const sx_session *s, const int32_t *ids, int n) {
    int i = 0;
    while (i < n && i < s->n_past && s->history[i] == ids[i]) i++;
    return i;
}
void sx_session_truncate(sx_session *s, int n) {
    if (n < 0) n = 0;
    if (n < s->n_past) s->n_past = n; /* slots past n_past are overwritten by the next pass */
}

static sx_status forward_locked(sx_session *s, const sx_batch *b, float *out_logits, int32_t *out_argmax) {
    sx_forward_out fo;
    sx_graph_reset(s->graph);
    SX_RETURN_IF_ERROR(sx_model_build_forward(s->e->model, s->kv, s->graph, b, &fo));
    SX_RETURN_IF_ERROR(sx_sched_compute(s->sched, s->graph));
    const int n_out = b->out_rows ? b->n_out : b->n;
    if (out_logits) SX_RETURN_IF_ERROR(sx_sched_read(s->sched, fo.logits, out_logits, sizeof(float) * (size_t)n_out * (size_t)s->e->model->hp.n_vocab));
    if (out_argmax) SX_RETURN_IF_ERROR(sx_sched_read(s->sched, fo.argmax, out_argmax, sizeof(int32_t) * (size_t)n_out));
    return sx_forward_read_top(&fo, b);
}

bool sx_session_samples_top(const sx_session *s, const sx_sampler *smp) {
    const sx_model *m = s->e->model;
    const char *force = getenv("SPECEXIT_SAMPLE_TOP");
    const bool gpu_logits = !m->dev->info.host_visible && m->output_on_dev;
    return smp && m->hp.n_vocab > SX_SAMPLER_TOP_MAX && (gpu_logits || (force && atoi(force) > 0)) && sx_sampler_takes_top(smp, SX_SAMPLER_TOP_MAX);
}

sx_status sx_forward_read_top(const sx_forward_out *fo, const sx_batch *b) {
    if (!b->top_ids) return SX_OK;
    if (!fo->top_ids || !b->top_vals) return sx_set_error(SX_ERR_INVALID_ARG, "forward: top logits asked for a vocabulary of at most %d", SX_SAMPLER_TOP_MAX);
    const size_t K = SX_SAMPLER_TOP_MAX, at = (size_t)fo->row0 * K, n = (size_t)fo->n_out * K;
    SX_RETURN_IF_ERROR(sx_tensor_read_at(fo->top_ids, at * sizeof(int32_t), b->top_ids, n * sizeof(int32_t)));
    return sx_tensor_read_at(fo->top_vals, at * sizeof(float), b->top_vals, n * sizeof(float));
}

sx_status sx_session_forward(sx_session *s, const sx_batch *b, float *out_logits, int32_t *out_argmax) {
    sx_engine_lock(s->e);
    const sx_status st = forward_locked(s, b, out_logits, out_argmax);
    sx_engine_unlock(s->e);
    return st;
}

/* Chunks of at most SX_LOGPROB_CHUNK rows: the range in which every backend computes a row bit for bit
 * as a decoded token, and a bounded logits read-back ([64][n_vocab]) */
#define SX_LOGPROB_CHUNK 64

sx_status sx_session_eval_rows(sx_session *s, const int32_t *tokens, int n, int max_rows, sx_row_callback cb, void *user) {
    if (n < 1) return sx_set_error(SX_ERR_INVALID_ARG, "eval: no tokens");
    const int V = s->e->model->hp.n_vocab;
    if ((int64_t)s->n_past + n > s->kv->n_ctx)
        return sx_set_error(SX_ERR_CONTEXT_FULL, "%d tokens do not fit: %d of %d context slots are used (raise --ctx-size)", n, s->n_past,
                            s->kv->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V) return sx_set_error(SX_ERR_INVALID_ARG, "eval: token %d is not in the vocabulary (%d)", tokens[i], V);
    const int lim = max_rows > 0 ? max_rows : SX_LOGPROB_CHUNK;
    const int chunk = s->n_batch < lim ? s->n_batch : lim;
    float *rows = malloc(sizeof(float) * (size_t)V * (size_t)chunk);
    if (!rows) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "eval: out of memory for %d logit rows", chunk);
    uint64_t turn = SX_PREFILL_FIRST;
    sx_status st = SX_OK;
    for (int done = 0; done < n && st == SX_OK;) {
        const int m = n - done < chunk ? n - done : chunk;
        sx_batch_prefill_turn(s->e, &turn);
        sx_batch b = {.tokens = tokens + done, .n = m, .n_past = s->n_past}; /* every row's logits */
        st = sx_session_forward(s, &b, rows, NULL);
        if (st != SX_OK) break;
        memcpy(s->history + s->n_past, tokens + done, sizeof(int32_t) * (size_t)m);
        s->n_past += m;
        for (int i = 0; i < m; i++) cb(done + i, rows + (size_t)i * V, V, user);
        done += m;
    }
    free(rows);
    return st;
}

typedef struct {
    const int32_t *tokens;
    int n, n_top;
    int32_t next;
    sx_token_logprob *out;
} lp_ctx;

static void lp_row(int at, const float *row, int V, void *user) {
    const lp_ctx *c = user;
    const int32_t follow = at + 1 < c->n ? c->tokens[at + 1] : c->next;
    if (follow >= 0) sx_logprob_row(row, V, follow, c->n_top, &c->out[at]);
}

sx_status sx_session_eval_logprobs(sx_session *s, const int32_t *tokens, int n, int32_t next, int n_top, sx_token_logprob *out) {
    const int V = s->e->model->hp.n_vocab;
    if (next >= V) return sx_set_error(SX_ERR_INVALID_ARG, "eval: token %d is not in the vocabulary (%d)", next, V);
    lp_ctx c = {tokens, n, n_top, next, out};
    return sx_session_eval_rows(s, tokens, n, SX_LOGPROB_CHUNK, lp_row, &c);
}

sx_status sx_session_eval(sx_session *s, const int32_t *tokens, int n, float *out_logits) {
    if (n < 1) return sx_set_error(SX_ERR_INVALID_ARG, "eval: no tokens");
    if ((int64_t)s->n_past + n > s->kv->n_ctx)
        return sx_set_error(SX_ERR_CONTEXT_FULL, "%d tokens do not fit: %d of %d context slots are used (raise --ctx-size)", n, s->n_past,
                            s->kv->n_ctx);
    uint64_t turn = SX_PREFILL_FIRST;
    for (int done = 0; done < n;) {
        const int m = n - done < s->n_batch ? n - done : s->n_batch;
        const bool last = done + m == n;
        const int32_t last_row = m - 1;
        sx_batch_prefill_turn(s->e, &turn);
        sx_batch b = {.tokens = tokens + done, .n = m, .n_past = s->n_past, .out_rows = &last_row, .n_out = 1};
        sx_status st = sx_session_forward(s, &b, last ? out_logits : NULL, NULL);
        if (st != SX_OK) return st;
        memcpy(s->history + s->n_past, tokens + done, sizeof(int32_t) * (size_t)m);
        s->n_past += m;
        done += m;
    }
    return SX_OK;
}
