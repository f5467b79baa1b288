/* tools/cli.c — option parsing shared by the subcommands (llama.cpp names). */
#include "tools/cli.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

void sx_cli_init(sx_cli *c) {
    memset(c, 0, sizeof *c);
    c->backend = "cpu";
    c->n_gpu_layers = SX_NGL_AUTO;
    c->n_predict = 128;
    c->chat = true;
    sx_sampler_params_init(&c->sampling);
    sx_generate_params gp;
    sx_generate_params_init(&gp);
    c->spec = gp.spec;
    c->exit = gp.exit;
    /* unset: the draft's recommendation, else the library default */
    c->exit.conf = c->exit.progress = c->exit.remain = c->exit.alpha = NAN;
    c->bench_prompt = 512;
    c->bench_gen = 128;
    c->repetitions = 3;
    c->host = "127.0.0.1";
    c->port = 8080;
    c->n_parallel = 4;
    c->chunks = -1;
}

bool sx_cli_wants_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return true;
    return false;
}

int sx_cli_begin(sx_cli *c, int argc, char **argv, const char *cmd, int n_predict, void (*help)(void)) {
    if (sx_cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    sx_cli_init(c);
    c->n_predict = n_predict;
    if (!sx_cli_parse(c, argc, argv, cmd)) return 1;
    if (!c->model && !sx_cli_default_model(c)) {
        fprintf(stderr, "error: no model given (-m MODEL.gguf) and the embedded default (models/sumchain) is not installed\n");
        return 1;
    }
    return -1;
}

int sx_cli_kv_list(char *list, sx_kv_type kvs[4]) {
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == 4 || sx_kv_type_from_name(tok, &kvs[n]) != SX_OK) {
            fprintf(stderr, "error: -ctk: %s\n", n == 4 ? "at most 4 cache types" : sx_last_error());
            return -1;
        }
        n++;
    }
    return n;
}

void sx_cli_engine_options(const sx_cli *c, sx_engine_options *eo) {
    sx_engine_options_init(eo);
    eo->model_path = c->model;
    eo->backend = c->backend;
    eo->n_threads = c->n_threads;
    eo->pin_threads = c->pin_threads;
    eo->chat_template = c->chat_template;
    eo->draft_path = c->draft_model;
    eo->draft_backend = c->draft_backend;
    eo->no_cont_batching = c->no_cont_batching;
    eo->n_gpu_layers = c->n_gpu_layers;
    eo->n_cpu_moe = c->n_cpu_moe;
    memcpy(eo->tensor_split, c->tensor_split, sizeof eo->tensor_split);
    eo->fit_ctx = c->n_ctx ? c->n_ctx : 4096; /* the sessions' default context is at most 4096 */
    eo->fit_kv_type = (int)c->kv_type_k;
}

void sx_cli_session_options(const sx_cli *c, sx_session_options *so) {
    sx_session_options_init(so);
    so->n_ctx = c->n_ctx;
    so->n_batch = c->n_batch;
    so->kv_type = c->kv_type_k; /* sx_cli_parse checked that K and V agree */
}

static bool parse_int(const char *opt, const char *v, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "error: %s expects an integer in [%ld, %ld], got '%s'\n", opt, lo, hi, v ? v : "(nothing)");
        return false;
    }
    *out = (int)x;
    return true;
}

static bool parse_float(const char *opt, const char *v, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double x = v ? strtod(v, &end) : 0;
    if (!v || errno || *end || end == v || !(x >= lo && x <= hi)) {
        fprintf(stderr, "error: %s expects a number in [%g, %g], got '%s'\n", opt, lo, hi, v ? v : "(nothing)");
        return false;
    }
    *out = (float)x;
    return true;
}

void sx_cli_print_common_help(FILE *f) {
    fprintf(f,
            "  -m, --model FILE          GGUF model (default: the embedded sumchain model and its draft)\n"
            "  -p, --prompt TEXT         prompt\n"
            "  -f, --file FILE           read the prompt from a file\n"
            "  -sys, --system TEXT       system prompt (chat mode)\n"
            "  -n, --n-predict N         tokens to generate (default 128, -1 = until end)\n"
            "      --chat | --raw        apply the model's chat template (default) or send the prompt as is\n"
            "      --chat-template NAME  chatml | llama3 | deepseek-r1 (default: from the model)\n"
            "      --no-think            do not open a <think> section for thinking models\n"
            "      --temp T              temperature (default 0.8; 0 = greedy)\n"
            "      --top-k K             (default 40; 0 = off)\n"
            "      --top-p P             (default 0.95; 1 = off)\n"
            "      --min-p P             (default 0.05; 0 = off)\n"
            "      --repeat-penalty X    (default 1.0 = off)\n"
            "      --repeat-last-n N     (default 64)\n"
            "  -s, --seed S              RNG seed (default: random)\n"
            "  -l, --logit-bias ID(+/-)B add B to token ID's logit (15043+1, 15043-inf bans it); repeatable\n"
            "      --ignore-eos          keep generating past end-of-generation tokens\n"
            "      --backend NAME[:N]    cpu (default), cpu-ref, vulkan, cuda, hip; see `specexit devices`\n"
            "                            a list (cuda:0,cuda:1 or cuda:0/vulkan:0) splits the blocks over those GPUs\n"
            "  -ts, --tensor-split A,B,...  each listed GPU's share of the blocks (default: by free memory)\n"
            "  -sm, --split-mode layer|none  split by blocks (default) or use the list's first GPU only\n"
            "  -ngl, --n-gpu-layers N    with a GPU backend: put the last N blocks (and their KV cache) on the GPU,\n"
            "                            the rest on the CPU; N > the block count adds the output layer; all:\n"
            "                            the whole model; auto (default): the whole model when it fits the GPU's\n"
            "                            free memory with its KV cache, else the most blocks that do\n"
            "                            (ignored by the cpu backends)\n"
            "  -cmoe, --cpu-moe          mixture-of-experts models: keep every expert weight in host memory and\n"
            "                            run the experts on the CPU (attention and the router on the GPU)\n"
            "  -ncmoe, --n-cpu-moe N     the same for the experts of the first N blocks only\n"
            "  -t, --threads N           CPU threads (default: physical cores)\n"
            "      --pin-threads         bind CPU threads to physical cores (hwloc); best on an otherwise idle machine\n"
            "  -c, --ctx-size N          context size (default: min(model, 4096))\n"
            "  -b, --batch-size N        prompt tokens per forward pass (default 512)\n"
            "  -ctk, --cache-type-k T    KV cache type: f16 (default), f32, q8_0 (about half of f16's memory), q4_0 (about 28%%)\n"
            "  -ctv, --cache-type-v T    the same for V (specexit keeps K and V in one type: one flag sets both)\n"
            "      --json                print one JSON object on stdout\n"
            "constrained output (a reasoning model thinks freely; the grammar starts after </think>):\n"
            "      --grammar GBNF        a grammar in llama.cpp's GBNF notation (start rule: root)\n"
            "      --grammar-file FILE   the same, from a file\n"
            "  -j, --json-schema SCHEMA  a JSON Schema the output must follow ('{}': any JSON value)\n"
            "  -jf, --json-schema-file FILE  the same, from a file\n"
            "speculative decoding:\n"
            "  -md, --model-draft FILE   draft: an EAGLE-3 draft GGUF or a small model sharing the vocabulary\n"
            "      --spec eagle3|draft|ngram|none  (default: eagle3 or draft from the draft file, none without one;\n"
            "                            ngram: prompt lookup, no draft model needed)\n"
            "      --prompt-lookup-min N, --prompt-lookup-max N  ngram: the context suffix lengths looked up (default 2, 4)\n"
            "      --draft-lookup        eagle3/draft: add prompt lookup's continuations to the draft's tree\n"
            "      --draft-max D         draft depth (default 5)\n"
            "      --draft-topk K        children per expanded node (default 4; 1 = chain)\n"
            "      --draft-nodes T       tree nodes verified per step (default 16, at most 63)\n"
            "      --draft-p-min P       verify only nodes the draft gives a path probability >= P\n"
            "                            (default 0.3 when the target runs on the CPU, wholly or in part with -ngl, else 0)\n"
            "      --draft-backend B     device of the draft (default: the target's)\n"
            "ending the thinking section:\n"
            "      --exit specexit|budget|first-answer|none   (default: specexit with an EAGLE-3 draft that has signals, else none)\n"
            "      --exit-conf X         confidence threshold (default: the draft's eagle3.exit.conf, else 0.8)\n"
            "      --exit-progress X     progress threshold (default: the draft's, else 0.3)\n"
            "      --exit-remain N       remaining-tokens threshold (default: the draft's, else 200)\n"
            "      --exit-alpha A        EWMA weight of the newest step (default: the draft's, else 0.1)\n"
            "      --reasoning-budget N  max thinking tokens (-1 = unlimited, default; 0 = no thinking)\n");
}

static char *g_grammar; /* what c->grammar points to, freed at exit */

static void free_grammar(void) {
    free(g_grammar);
    g_grammar = NULL;
}

/* --grammar / --grammar-file / -j / -jf: checked now, so a bad grammar fails before the model loads */
static bool set_grammar(sx_cli *c, const char *flag, const char *v) {
    const bool file = strstr(flag, "file") || !strcmp(flag, "-jf"), schema = strstr(flag, "json") || !strncmp(flag, "-j", 2);
    if (c->grammar) {
        fprintf(stderr, "error: give one of --grammar, --grammar-file, --json-schema, --json-schema-file\n");
        return false;
    }
    char *text = file ? sx_cli_read_file(v) : strdup(v);
    if (!text) {
        fprintf(stderr, file ? "error: %s: cannot read '%s'\n" : "error: %s: out of memory\n", flag, v);
        return false;
    }
    sx_status st = SX_OK;
    if (schema) {
        char *gbnf = NULL;
        st = sx_json_schema_to_grammar(text, &gbnf);
        free(text);
        text = gbnf;
    } else {
        st = sx_grammar_validate(text);
    }
    if (st != SX_OK) {
        fprintf(stderr, "error: %s: %s\n", flag, sx_last_error());
        free(text);
        return false;
    }
    if (!g_grammar) atexit(free_grammar);
    free(g_grammar);
    c->grammar = g_grammar = text;
    return true;
}

bool sx_cli_parse(sx_cli *c, int argc, char **argv, const char *cmd) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define IS(x) (strcmp(a, x) == 0)
#define NEED() do { if (!v) { fprintf(stderr, "error: %s needs a value\n", a); return false; } i++; } while (0)
        if (IS("-m") || IS("--model")) { NEED(); c->model = v; }
        else if (IS("-p") || IS("--prompt")) { NEED(); c->prompt = v; }
        else if (IS("-f") || IS("--file")) { NEED(); c->prompt_file = v; }
        else if (IS("-sys") || IS("--system")) { NEED(); c->system = v; }
        else if (IS("-n") || IS("--n-predict")) { NEED(); if (!parse_int(a, v, -1, 1 << 24, &c->n_predict)) return false; }
        else if (IS("--chat")) { c->chat = true; c->raw = false; }
        else if (IS("--raw")) { c->raw = true; c->chat = false; }
        else if (IS("--chat-template")) { NEED(); c->chat_template = v; }
        else if (IS("--no-think")) c->no_think = true;
        else if (IS("--temp")) { NEED(); if (!parse_float(a, v, 0, 100, &c->sampling.temp)) return false; c->sampling_set = true; }
        else if (IS("--top-k")) { NEED(); if (!parse_int(a, v, 0, 1 << 24, &c->sampling.top_k)) return false; }
        else if (IS("--top-p")) { NEED(); if (!parse_float(a, v, 1e-6, 1, &c->sampling.top_p)) return false; }
        else if (IS("--min-p")) { NEED(); if (!parse_float(a, v, 0, 1, &c->sampling.min_p)) return false; }
        else if (IS("--repeat-penalty")) { NEED(); if (!parse_float(a, v, 1e-3, 100, &c->sampling.repeat_penalty)) return false; }
        else if (IS("--repeat-last-n")) { NEED(); if (!parse_int(a, v, 0, 1 << 24, &c->sampling.repeat_last_n)) return false; }
        else if (IS("-s") || IS("--seed")) {
            NEED();
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || *end || end == v) { fprintf(stderr, "error: %s expects a non-negative integer, got '%s'\n", a, v); return false; }
            c->sampling.seed = s;
        }
        else if (IS("--ignore-eos")) c->ignore_eos = true;
        else if (IS("-l") || IS("--logit-bias")) { /* llama.cpp's TOKEN_ID(+/-)BIAS, e.g. 15043+1 or 15043-inf */
            NEED();
            char *end;
            errno = 0;
            const long id = strtol(v, &end, 10);
            const double bias = (*end == '+' || *end == '-') ? strtod(end, &end) : NAN;
            if (errno || end == v || *end || id < 0 || id > INT32_MAX || isnan(bias) || bias == INFINITY || c->n_logit_bias == 256) {
                fprintf(stderr, "error: %s expects TOKEN_ID+BIAS or TOKEN_ID-BIAS (e.g. 15043+1, 15043-inf; at most 256), got '%s'\n", a, v);
                return false;
            }
            c->bias_ids[c->n_logit_bias] = (int32_t)id;
            c->bias_vals[c->n_logit_bias++] = (float)bias;
        }
        else if (IS("--backend") || IS("-dev") || IS("--device")) { NEED(); c->backend = v; }
        else if (IS("-ngl") || IS("--gpu-layers") || IS("--n-gpu-layers")) {
            NEED();
            if (!strcmp(v, "all")) c->n_gpu_layers = -1;
            else if (!strcmp(v, "auto")) c->n_gpu_layers = SX_NGL_AUTO;
            else if (!parse_int(a, v, -1, 1 << 20, &c->n_gpu_layers)) return false;
        }
        else if (IS("-ts") || IS("--tensor-split")) {
            NEED();
            memset(c->tensor_split, 0, sizeof c->tensor_split);
            char buf[256], *save = NULL;
            snprintf(buf, sizeof buf, "%s", v);
            int n = 0;
            for (char *t = strtok_r(buf, ",/", &save); t; t = strtok_r(NULL, ",/", &save)) {
                char *end;
                const double x = strtod(t, &end);
                if (*end || end == t || !(x >= 0) || x > 1e6 || n == SX_MAX_DEVICES) {
                    fprintf(stderr, "error: %s expects up to %d non-negative shares separated by ',' (e.g. 3,1), got '%s'\n", a, SX_MAX_DEVICES, v);
                    return false;
                }
                c->tensor_split[n++] = (float)x;
            }
        }
        else if (IS("-sm") || IS("--split-mode")) {
            NEED();
            if (!strcmp(v, "none")) c->backend_first[0] = 1; /* one device: the first of the list (after the loop) */
            else if (strcmp(v, "layer") != 0) {
                fprintf(stderr, "error: %s %s: specexit splits by layer (layer, the default) or not at all (none)\n", a, v);
                return false;
            }
        }
        else if (IS("-cmoe") || IS("--cpu-moe")) c->n_cpu_moe = INT_MAX;
        else if (IS("-ncmoe") || IS("--n-cpu-moe")) { NEED(); if (!parse_int(a, v, 0, 1 << 20, &c->n_cpu_moe)) return false; }
        else if (IS("--pin-threads")) c->pin_threads = true;
        else if (IS("-t") || IS("--threads")) { NEED(); if (!parse_int(a, v, 0, 1024, &c->n_threads)) return false; }
        else if (IS("-c") || IS("--ctx-size")) { NEED(); if (!parse_int(a, v, 0, 1 << 24, &c->n_ctx)) return false; }
        else if (IS("-b") || IS("--batch-size")) { NEED(); if (!parse_int(a, v, 0, 1 << 16, &c->n_batch)) return false; }
        else if (IS("--kv-f32")) c->kv_type_k = c->kv_type_v = SX_KV_F32;
        else if (IS("-ctk") || IS("--cache-type-k") || IS("-ctv") || IS("--cache-type-v")) {
            NEED();
            sx_kv_type t;
            if (sx_kv_type_from_name(v, &t) != SX_OK) { fprintf(stderr, "error: %s: %s\n", a, sx_last_error()); return false; }
            if (IS("-ctk") || IS("--cache-type-k")) c->kv_type_k = t, c->kv_k_set = true;
            else c->kv_type_v = t, c->kv_v_set = true;
        }
        else if (IS("--json")) c->json = true;
        else if (IS("-md") || IS("--model-draft")) { NEED(); c->draft_model = v; }
        else if (IS("--spec")) {
            NEED();
            if (sx_spec_kind_from_name(v, &c->spec.kind) != SX_OK) { fprintf(stderr, "error: %s\n", sx_last_error()); return false; }
            c->spec_set = true;
        }
        else if (IS("--draft-max") || IS("--draft")) { NEED(); if (!parse_int(a, v, 1, 32, &c->spec.draft_max)) return false; }
        else if (IS("--draft-topk")) { NEED(); if (!parse_int(a, v, 1, 32, &c->spec.draft_topk)) return false; }
        else if (IS("--draft-nodes")) { NEED(); if (!parse_int(a, v, 1, 63, &c->spec.draft_nodes)) return false; }
        else if (IS("--draft-p-min")) { NEED(); if (!parse_float(a, v, 0, 1, &c->spec.p_min)) return false; }
        else if (IS("--draft-backend") || IS("-devd") || IS("--device-draft")) { NEED(); c->draft_backend = v; }
        else if (IS("--draft-lookup")) c->spec.lookup = true;
        else if (IS("--prompt-lookup-min")) { NEED(); if (!parse_int(a, v, 1, 64, &c->spec.ngram_min)) return false; }
        else if (IS("--prompt-lookup-max")) { NEED(); if (!parse_int(a, v, 1, 64, &c->spec.ngram_max)) return false; }
        else if (IS("--exit")) {
            NEED();
            if (sx_exit_kind_from_name(v, &c->exit.kind) != SX_OK) { fprintf(stderr, "error: %s\n", sx_last_error()); return false; }
            c->exit_set = true;
        }
        else if (IS("--exit-conf")) { NEED(); if (!parse_float(a, v, 0, 1, &c->exit.conf)) return false; }
        else if (IS("--exit-progress")) { NEED(); if (!parse_float(a, v, 0, 1, &c->exit.progress)) return false; }
        else if (IS("--exit-remain")) { NEED(); if (!parse_float(a, v, 0, 1e9, &c->exit.remain)) return false; }
        else if (IS("--exit-alpha")) { NEED(); if (!parse_float(a, v, 1e-6, 1, &c->exit.alpha)) return false; }
        else if (IS("--reasoning-budget")) { NEED(); if (!parse_int(a, v, -1, 1 << 24, &c->exit.reasoning_budget)) return false; }
        else if (IS("--trace")) c->trace = true;
        else if (IS("--grammar") || IS("--grammar-file") || IS("-j") || IS("--json-schema") || IS("-jf") || IS("--json-schema-file")) {
            NEED();
            if (!set_grammar(c, a, v)) return false;
        }
        else if (!strcmp(cmd, "run") && IS("--compare")) c->compare = true;
        else if (!strcmp(cmd, "serve") && IS("--host")) { NEED(); c->host = v; }
        else if (!strcmp(cmd, "serve") && IS("--port")) { NEED(); if (!parse_int(a, v, 0, 65535, &c->port)) return false; }
        else if ((!strcmp(cmd, "serve") || !strcmp(cmd, "bench")) && (IS("-np") || IS("--parallel"))) {
            NEED();
            if (!parse_int(a, v, 1, 256, &c->n_parallel)) return false;
            c->parallel_set = true;
        }
        else if (!strcmp(cmd, "serve") && (IS("-cb") || IS("--cont-batching"))) c->no_cont_batching = false;
        else if (!strcmp(cmd, "serve") && (IS("-nocb") || IS("--no-cont-batching"))) c->no_cont_batching = true;
        else if (!strcmp(cmd, "serve") && IS("--api-key")) { NEED(); c->api_key = v; }
        else if (!strcmp(cmd, "serve") && IS("--alias")) { NEED(); c->alias = v; }
        else if (!strcmp(cmd, "perplexity") && IS("--chunks")) { NEED(); if (!parse_int(a, v, -1, 1 << 24, &c->chunks)) return false; }
        else if (!strcmp(cmd, "bench") && IS("--problems")) { NEED(); c->problems = v; }
        else if (!strcmp(cmd, "bench") && IS("--modes")) { NEED(); c->modes = v; }
        else if (IS("-r") || IS("--repetitions")) { NEED(); if (!parse_int(a, v, 1, 1000, &c->repetitions)) return false; }
        else if (!strcmp(cmd, "bench") && IS("-pp")) { NEED(); if (!parse_int(a, v, 0, 1 << 20, &c->bench_prompt)) return false; }
        else if (!strcmp(cmd, "bench") && IS("-tg")) { NEED(); if (!parse_int(a, v, 0, 1 << 20, &c->bench_gen)) return false; }
        else {
            fprintf(stderr, "error: unknown option '%s' for 'specexit %s' (see specexit %s --help)\n", a, cmd, cmd);
            return false;
        }
#undef IS
#undef NEED
    }
    if (c->backend_first[0] == 1) { /* -sm none */
        snprintf(c->backend_first, sizeof c->backend_first, "%.*s", (int)strcspn(c->backend, ",/"), c->backend);
        c->backend = c->backend_first;
    }
    if (c->kv_k_set != c->kv_v_set) { /* one given: the other follows (one type for both) */
        if (c->kv_k_set) c->kv_type_v = c->kv_type_k;
        else c->kv_type_k = c->kv_type_v;
    }
    if (c->kv_type_k != c->kv_type_v) {
        fprintf(stderr, "error: specexit keeps K and V in one type: give the same --cache-type-k and --cache-type-v (got %s and %s)\n",
                sx_kv_type_name(c->kv_type_k), sx_kv_type_name(c->kv_type_v));
        return false;
    }
    return true;
}

int sx_cli_fail(const char *what, sx_status s) {
    const char *msg = sx_last_error();
    fprintf(stderr, "error: %s: %s%s%s\n", what, sx_status_str(s), msg[0] ? ": " : "", msg);
    return 1;
}

char *sx_cli_read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t r; buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += r;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[n] = 0;
    return buf;
}

void sx_cli_mean_std(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = n ? s / n : 0;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

cJSON *sx_cli_stat_json(const double *v, int n) {
    double m, sd;
    sx_cli_mean_std(v, n, &m, &sd);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "mean", m);
    cJSON_AddNumberToObject(o, "stddev", sd);
    cJSON_AddItemToObject(o, "samples", cJSON_CreateDoubleArray(v, n));
    return o;
}

double sx_cli_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

unsigned long long sx_cli_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (unsigned long long)ru.ru_maxrss * 1024ull;
}

void sx_cli_generate_params(const sx_cli *c, const sx_engine_info *info, sx_generate_params *gp) {
    sx_generate_params_init(gp);
    gp->n_predict = c->n_predict;
    gp->sampling = c->sampling;
    gp->ignore_eos = c->ignore_eos;
    gp->spec = c->spec;
    const sx_exit_params lib = gp->exit;
    gp->exit = c->exit;
    float *f[4] = {&gp->exit.conf, &gp->exit.progress, &gp->exit.remain, &gp->exit.alpha};
    const float lib_v[4] = {lib.conf, lib.progress, lib.remain, lib.alpha};
    for (int i = 0; i < 4; i++)
        if (isnan(*f[i])) *f[i] = isnan(info->draft_exit[i]) ? lib_v[i] : info->draft_exit[i];
    gp->trace_signals = c->trace;
    gp->grammar = c->grammar;
    gp->sampling.n_logit_bias = c->n_logit_bias;
    gp->sampling.bias_ids = c->bias_ids;
    gp->sampling.bias_vals = c->bias_vals;
    if (!c->spec_set) gp->spec.kind = !strcmp(info->draft, "eagle3") ? SX_SPEC_EAGLE3 : !strcmp(info->draft, "draft") ? SX_SPEC_DRAFT : SX_SPEC_NONE;
    if (!c->exit_set) gp->exit.kind = gp->spec.kind == SX_SPEC_EAGLE3 && info->draft_signals ? SX_EXIT_SPECEXIT
                                      : gp->exit.reasoning_budget >= 0                      ? SX_EXIT_BUDGET
                                                                                            : SX_EXIT_NONE;
}

void sx_cli_add_spec_json(cJSON *j, const sx_generate_params *gp, const sx_generate_stats *gs) {
    cJSON_AddStringToObject(j, "spec", sx_spec_kind_name(gp->spec.kind));
    cJSON_AddNumberToObject(j, "n_steps", gs->n_steps);
    cJSON_AddNumberToObject(j, "accept_len_mean", gs->accept_len_mean);
    cJSON_AddNumberToObject(j, "n_drafted", gs->n_drafted);
    cJSON_AddNumberToObject(j, "n_accepted", gs->n_accepted);
    cJSON_AddNumberToObject(j, "draft_ms", gs->draft_ms);
    cJSON_AddNumberToObject(j, "verify_ms", gs->verify_ms);
    cJSON_AddStringToObject(j, "exit", sx_exit_kind_name(gp->exit.kind));
    cJSON_AddNumberToObject(j, "thinking_tokens", gs->thinking_tokens);
    cJSON_AddBoolToObject(j, "exited_early", gs->exited_early);
    cJSON_AddNumberToObject(j, "exit_token_index", gs->exit_token_index);
    cJSON_AddStringToObject(j, "exit_reason", gs->exit_reason ? gs->exit_reason : "none");
    if (gs->n_trace > 0) {
        cJSON *tr = cJSON_AddArrayToObject(j, "signal_trace");
        for (int i = 0; i < gs->n_trace; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "token_index", gs->trace[i].token_index);
            const float *r = gs->trace[i].raw, *m = gs->trace[i].smooth;
            cJSON_AddItemToObject(e, "raw", cJSON_CreateFloatArray(r, 3));
            cJSON_AddItemToObject(e, "smoothed", cJSON_CreateFloatArray(m, 3));
            cJSON_AddItemToArray(tr, e);
        }
    }
}

/* The embedded default: models/sumchain/{target,draft}.gguf, looked up in
 * $SPECEXIT_MODEL_DIR, the installed data directory, then the source tree. */
bool sx_cli_default_model(sx_cli *c) {
    static char target[4096], draft[4096];
    const char *env = getenv("SPECEXIT_MODEL_DIR");
    const char *dirs[3] = {env, SX_DATA_DIR "/sumchain", SX_SOURCE_DIR "/models/sumchain"};
    for (int i = 0; i < 3; i++) {
        if (!dirs[i]) continue;
        snprintf(target, sizeof target, "%s/target.gguf", dirs[i]);
        snprintf(draft, sizeof draft, "%s/draft.gguf", dirs[i]);
        FILE *f = fopen(target, "rb");
        if (!f) continue;
        fclose(f);
        c->model = target;
        if (!c->draft_model && (f = fopen(draft, "rb")) != NULL) {
            fclose(f);
            c->draft_model = draft;
        }
        return true;
    }
    return false;
}
