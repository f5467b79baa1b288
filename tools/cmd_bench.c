/* tools/cmd_bench.c — `specexit bench`: prefill and decode speed, A/B.
 *
 * `--backend cpu,vulkan` (or any comma-separated list) benchmarks several
 * configurations in one run, interleaving their repetitions so drifting
 * machine load hits all of them alike, and reports ratios to the first. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/sampler.h"
#include "tools/cli.h"

#define MAX_CONFIGS 8

typedef struct {
    char backend[64];
    sx_kv_type kv;
    int ngl;         /* -ngl of its engine */
    char label[160];
    int spec;        /* 0: --spec none, 1: the draft's speculation */
    int gram;        /* 1: under the --grammar / --json-schema given (A/B against none) */
    bool shared;     /* engine owned by the previous config */
    sx_engine *e;
    size_t kv_bytes; /* the session's KV cache */
    double *pp, *tg, *al, *ng; /* [repetitions] tok/s, tok/s, tokens per pass, tokens generated */
} bench_cfg;

static void help(void) {
    printf("usage: specexit bench -m MODEL.gguf [--backend B[,B2...]] [-p 512] [-n 128] [-r 3] [--json]\n"
           "       specexit bench -m MODEL.gguf [-md DRAFT.gguf] -np 4 [-p 32] [-n 128] [-r 3] [--json]\n"
           "       specexit bench -m MODEL.gguf -md DRAFT.gguf --problems FILE.jsonl [--modes plain,eagle3,budget,first-answer,specexit]\n\n"
           "Speed: prefill (-p tokens) and decode (-n tokens, greedy unless --temp is given) per backend, repetitions\n"
           "interleaved, mean/stddev and ratios to the first backend; with -md and --spec, the\n"
           "speculative decode is measured against --spec none in the same run.\n"
           "Problems: each mode on each problem (JSON lines {\"prompt\", \"answer\"}), greedy unless\n"
           "--temp is given; accuracy, mean generated and thinking tokens, acceptance length and time\n"
           "per mode, ratios to eagle3, as JSON on stdout and a Markdown table on stderr.\n"
           "Parallel (-np N): N sessions generating at the same time (-n tokens each after a\n"
           "-p token prompt, default 32), sharing target passes (continuous batching) against\n"
           "taking turns, repetitions interleaved: aggregate tok/s, the ratio, the mean batch,\n"
           "and whether both gave every session the same tokens.\n"
           "Progress goes to stderr.\n\n");
    sx_cli_print_common_help(stdout);
}

static const char *DEFAULT_SPEC_PROMPT = "Write a detailed story about a robot who learns to paint.";

int sx_cmd_bench(int argc, char **argv) {
    if (sx_cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    sx_cli c;
    sx_cli_init(&c);
    /* llama-bench spelling: -p / -n mean prompt and generation lengths here,
     * and -ctk takes a list of cache types to compare (f16,q8_0,q4_0) */
    char kv_list[64] = "", ngl_list[64] = "";
    for (int i = 0; i + 1 < argc; i++) {
        if ((!strcmp(argv[i], "-ngl") || !strcmp(argv[i], "--gpu-layers") || !strcmp(argv[i], "--n-gpu-layers")) && strchr(argv[i + 1], ',')) {
            snprintf(ngl_list, sizeof ngl_list, "%s", argv[i + 1]);
            *strchr(argv[i + 1], ',') = 0; /* as -ctk: the first is checked by the parser, the list expanded below */
        }
        if (!strcmp(argv[i], "-p")) argv[i] = "-pp";
        else if (!strcmp(argv[i], "-n")) argv[i] = "-tg";
        else if (!strcmp(argv[i], "-ctk") || !strcmp(argv[i], "--cache-type-k") || !strcmp(argv[i], "-ctv") || !strcmp(argv[i], "--cache-type-v")) {
            if (strchr(argv[i + 1], ',')) {
                snprintf(kv_list, sizeof kv_list, "%s", argv[i + 1]);
                *strchr(argv[i + 1], ',') = 0; /* the parser checks the first; the list is expanded below */
            }
        }
    }
    if (!sx_cli_parse(&c, argc, argv, "bench")) return 1;
    if (!c.model && !sx_cli_default_model(&c)) {
        fprintf(stderr, "error: no model given (-m MODEL.gguf) and the embedded default (models/sumchain) is not installed\n");
        return 1;
    }
    if ((kv_list[0] || ngl_list[0]) && (c.problems || c.parallel_set)) {
        fprintf(stderr, "error: a list of %s (%s %s) compares them in the speed bench only; give one with %s\n",
                kv_list[0] ? "cache types" : "layer counts", kv_list[0] ? "-ctk" : "-ngl", kv_list[0] ? kv_list : ngl_list,
                c.problems ? "--problems" : "-np");
        return 1;
    }
    char *file_prompt = NULL; /* -f FILE: the speculation bench's prompt (a document to edit or summarise suits prompt lookup) */
    if (c.prompt_file && !(file_prompt = sx_cli_read_file(c.prompt_file))) {
        fprintf(stderr, "error: cannot read prompt file '%s'\n", c.prompt_file);
        return 1;
    }
    if (file_prompt) c.prompt = file_prompt;
    if (c.problems) {
        if (!c.sampling_set) c.sampling.temp = 0; /* greedy unless asked */
        if (c.n_predict == 128) c.n_predict = 1024;
        const int r = sx_cmd_bench_problems(&c);
        free(file_prompt);
        return r;
    }
    if (c.parallel_set) {
        const int r = sx_cmd_bench_parallel(&c);
        free(file_prompt);
        return r;
    }
    if (c.bench_prompt < 1 || c.bench_gen < 2) {
        fprintf(stderr, "error: bench needs -p >= 1 and -n >= 2\n");
        free(file_prompt);
        return 1;
    }
    /* configurations: every backend, each without and (with a draft) with speculation */
    bench_cfg cfg[MAX_CONFIGS];
    int n_cfg = 0, rc = 0;
    memset(cfg, 0, sizeof cfg);
    char list[256];
    snprintf(list, sizeof list, "%s", c.backend);
    sx_kv_type kvs[4] = {c.kv_type_k};
    int n_kv = 1;
    if (kv_list[0] && (n_kv = sx_cli_kv_list(kv_list, kvs)) < 0) return 1;
    int ngls[MAX_CONFIGS] = {c.n_gpu_layers}, n_ngl = 1;
    if (ngl_list[0]) {
        n_ngl = 0;
        for (char *save = NULL, *tok = strtok_r(ngl_list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            char *end;
            const long v = !strcmp(tok, "auto") ? SX_NGL_AUTO : !strcmp(tok, "all") ? -1 : strtol(tok, &end, 10);
            if (strcmp(tok, "auto") && strcmp(tok, "all") && (*end || end == tok)) end = NULL;
            if (n_ngl == MAX_CONFIGS || !end || v < SX_NGL_AUTO || v > (1 << 20)) {
                fprintf(stderr, "error: -ngl: %s\n", n_ngl == MAX_CONFIGS ? "too many layer counts" : "a comma-separated list of layer counts, all or auto");
                return 1;
            }
            ngls[n_ngl++] = (int)v;
        }
    }
    /* speculation against --spec none in the same run: with a draft, or prompt lookup (--spec ngram, no draft) */
    const bool spec_ab = c.draft_model || (c.spec_set && c.spec.kind == SX_SPEC_NGRAM);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        const bool host = !strncmp(tok, "cpu", 3); /* the CPU backends keep every layer in host memory: one -ngl is enough */
        for (int in = 0; in < (host ? 1 : n_ngl); in++)
            for (int ik = 0; ik < n_kv; ik++)
                for (int cf = 0; cf < (spec_ab ? 2 : 1) * (c.grammar ? 2 : 1); cf++) {
                    const int sp = c.grammar ? cf / 2 : cf;
                    if (n_cfg == MAX_CONFIGS) {
                        fprintf(stderr, "error: at most %d configurations\n", MAX_CONFIGS);
                        return 1;
                    }
                    snprintf(cfg[n_cfg].backend, sizeof cfg[0].backend, "%s", tok);
                    cfg[n_cfg].spec = sp;
                    cfg[n_cfg].gram = c.grammar ? cf % 2 : 0;
                    cfg[n_cfg].kv = kvs[ik];
                    cfg[n_cfg].ngl = host ? -1 : ngls[in];
                    n_cfg++;
                }
    }
    const int R = c.repetitions;
    for (int k = 0; k < n_cfg && rc == 0; k++) {
        int same = -1; /* an earlier configuration on the same backend and -ngl: its engine (cache type and speculation are per session) */
        for (int j = 0; j < k && same < 0; j++)
            if (!strcmp(cfg[k].backend, cfg[j].backend) && cfg[k].ngl == cfg[j].ngl) same = j;
        if (same >= 0) {
            cfg[k].e = cfg[same].e;
            cfg[k].shared = true;
        } else {
            sx_engine_options eo;
            sx_cli_engine_options(&c, &eo);
            eo.backend = cfg[k].backend;
            eo.n_gpu_layers = cfg[k].ngl;
            sx_status st = sx_engine_create(&eo, &cfg[k].e);
            if (st != SX_OK) rc = sx_cli_fail(cfg[k].backend, st);
        }
        cfg[k].pp = calloc((size_t)R, sizeof(double));
        cfg[k].tg = calloc((size_t)R, sizeof(double));
        cfg[k].al = calloc((size_t)R, sizeof(double));
        cfg[k].ng = calloc((size_t)R, sizeof(double));
    }
    sx_engine_info info;
    int32_t *prompt = NULL;
    int n_prompt = 0;
    if (rc == 0) {
        sx_engine_get_info(cfg[0].e, &info);
        if (spec_ab || c.grammar) { /* speculation and grammars need real text to be meaningful */
            char *formatted = NULL;
            sx_status st = sx_chat_prompt(cfg[0].e, c.system, c.prompt ? c.prompt : DEFAULT_SPEC_PROMPT, !c.no_think, &formatted);
            if (st == SX_OK) st = sx_tokenize(cfg[0].e, formatted, true, true, &prompt, &n_prompt);
            free(formatted);
            if (st != SX_OK) rc = sx_cli_fail("prompt", st);
        } else {
            n_prompt = c.bench_prompt;
            prompt = malloc(sizeof(int32_t) * (size_t)n_prompt);
            sx_rng rng;
            sx_rng_seed(&rng, 1234);
            for (int i = 0; i < n_prompt && prompt; i++) prompt[i] = (int32_t)(sx_rng_uniform(&rng) * (info.n_vocab - 1));
        }
    }
    for (int r = 0; r < R && rc == 0; r++) {
        for (int k = 0; k < n_cfg && rc == 0; k++) {
            sx_session_options so;
            sx_cli_session_options(&c, &so);
            if (!so.n_ctx) so.n_ctx = n_prompt + c.bench_gen + 300;
            so.kv_type = cfg[k].kv;
            sx_session *s = NULL;
            sx_status st = sx_session_create(cfg[k].e, &so, &s);
            sx_engine_info ki;
            sx_engine_get_info(cfg[k].e, &ki);
            sx_cli gc = c;
            gc.spec_set = gc.exit_set = true;
            gc.spec.kind = !cfg[k].spec ? SX_SPEC_NONE : c.spec_set ? c.spec.kind : !strcmp(ki.draft, "eagle3") ? SX_SPEC_EAGLE3 : SX_SPEC_DRAFT;
            gc.exit.kind = SX_EXIT_NONE;
            gc.n_predict = c.bench_gen;
            gc.ignore_eos = !c.grammar; /* under a grammar the answer ends where the grammar does (then only an end token may follow) */
            gc.grammar = cfg[k].gram ? c.grammar : NULL;
            if (!c.sampling_set) gc.sampling.temp = 0; /* greedy unless --temp is given */
            if (gc.sampling.seed == SX_SEED_RANDOM) gc.sampling.seed = 1234 + (uint64_t)r; /* the same draws for every configuration */
            sx_generate_params gp;
            sx_cli_generate_params(&gc, &ki, &gp);
            char ngl_label[24] = "";
            if ((n_ngl > 1 || cfg[k].ngl >= 0) && strncmp(cfg[k].backend, "cpu", 3)) snprintf(ngl_label, sizeof ngl_label, " ngl=%d", ki.n_gpu_layers + ki.output_on_device);
            snprintf(cfg[k].label, sizeof cfg[k].label, "%.63s%s%.15s%s%s%s%s", cfg[k].backend, cfg[k].spec ? "+" : "",
                     cfg[k].spec ? sx_spec_kind_name(gp.spec.kind) : "", n_kv > 1 || cfg[k].kv ? " kv=" : "",
                     n_kv > 1 || cfg[k].kv ? sx_kv_type_name(cfg[k].kv) : "", ngl_label, cfg[k].gram ? " grammar" : "");
            if (st == SX_OK) cfg[k].kv_bytes = sx_session_kv_bytes(s);
            sx_generate_stats gs;
            if (st == SX_OK) st = sx_generate(s, prompt, n_prompt, &gp, NULL, NULL, &gs);
            sx_session_destroy(s);
            if (st != SX_OK) {
                rc = sx_cli_fail(cfg[k].label, st);
                break;
            }
            cfg[k].pp[r] = gs.prefill_tok_s;
            cfg[k].tg[r] = gs.decode_tok_s;
            cfg[k].al[r] = gs.accept_len_mean;
            cfg[k].ng[r] = gs.n_generated_tokens;
            fprintf(stderr, "[bench] rep %d/%d %-16s prefill %8.1f tok/s  decode %7.1f tok/s  (%.2f tokens per target pass)\n", r + 1, R,
                    cfg[k].label, gs.prefill_tok_s, gs.decode_tok_s, gs.accept_len_mean);
            sx_generate_stats_free(&gs);
        }
    }
    if (rc == 0) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", info.model_name);
        cJSON_AddStringToObject(j, "arch", info.arch);
        cJSON_AddStringToObject(j, "quant", info.quant);
        cJSON_AddNumberToObject(j, "n_params", (double)info.n_params);
        cJSON_AddNumberToObject(j, "weight_bytes", (double)info.weight_bytes);
        cJSON_AddNumberToObject(j, "active_weight_bytes", (double)info.active_weight_bytes); /* read per token (MoE: the picked experts) */
        if (info.n_expert) cJSON_AddNumberToObject(j, "n_expert", info.n_expert), cJSON_AddNumberToObject(j, "n_expert_used", info.n_expert_used);
        cJSON_AddNumberToObject(j, "n_prompt", n_prompt);
        cJSON_AddNumberToObject(j, "n_gen", c.bench_gen);
        cJSON_AddNumberToObject(j, "repetitions", R);
        cJSON_AddNumberToObject(j, "temp", c.sampling_set ? c.sampling.temp : 0);
        if (c.draft_model) cJSON_AddStringToObject(j, "draft", c.draft_model);
        cJSON *arr = cJSON_AddArrayToObject(j, "configs");
        double base_pp = 0, base_tg = 0, sd;
        for (int k = 0; k < n_cfg; k++) {
            sx_engine_info ki;
            sx_engine_get_info(cfg[k].e, &ki);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "config", cfg[k].label);
            cJSON_AddStringToObject(o, "backend", cfg[k].backend);
            cJSON_AddStringToObject(o, "device", ki.device);
            cJSON_AddStringToObject(o, "driver", ki.backend);
            cJSON_AddStringToObject(o, "kv_type", sx_kv_type_name(cfg[k].kv));
            cJSON_AddNumberToObject(o, "n_gpu_layers", ki.n_gpu_layers + ki.output_on_device); /* llama.cpp's count: blocks + the output layer */
            cJSON_AddNumberToObject(o, "device_weight_bytes", (double)ki.device_weight_bytes);
            cJSON_AddNumberToObject(o, "kv_cache_bytes", (double)cfg[k].kv_bytes);
            cJSON_AddItemToObject(o, "prefill_tok_s", sx_cli_stat_json(cfg[k].pp, R));
            cJSON_AddItemToObject(o, "decode_tok_s", sx_cli_stat_json(cfg[k].tg, R));
            double mpp, mtg, mal;
            sx_cli_mean_std(cfg[k].pp, R, &mpp, &sd);
            sx_cli_mean_std(cfg[k].tg, R, &mtg, &sd);
            sx_cli_mean_std(cfg[k].al, R, &mal, &sd);
            if (k == 0) base_pp = mpp, base_tg = mtg;
            cJSON_AddNumberToObject(o, "accept_len_mean", mal);
            cJSON_AddNumberToObject(o, "prefill_ratio", base_pp > 0 ? mpp / base_pp : 0);
            cJSON_AddNumberToObject(o, "decode_ratio", base_tg > 0 ? mtg / base_tg : 0);
            if (cfg[k].spec && k > 0 && !cfg[k].gram) {
                double m0, s0;
                sx_cli_mean_std(cfg[k - (c.grammar ? 2 : 1)].tg, R, &m0, &s0);
                cJSON_AddNumberToObject(o, "speedup_vs_spec_none", m0 > 0 ? mtg / m0 : 0);
            }
            if (c.grammar) { /* the same configuration without the grammar is the one before */
                double mng, m0, s0;
                sx_cli_mean_std(cfg[k].ng, R, &mng, &sd);
                cJSON_AddBoolToObject(o, "grammar", cfg[k].gram);
                cJSON_AddNumberToObject(o, "generated_tokens", mng);
                if (cfg[k].gram) {
                    sx_cli_mean_std(cfg[k - 1].tg, R, &m0, &s0);
                    cJSON_AddNumberToObject(o, "decode_ratio_vs_unconstrained", m0 > 0 ? mtg / m0 : 0);
                }
            }
            cJSON_AddItemToArray(arr, o);
            if (!c.json)
                printf("%-18s %-36s prefill %8.1f tok/s (x%.2f)  decode %7.1f tok/s (x%.2f)  %.2f tok/pass\n", cfg[k].label, ki.device, mpp,
                       base_pp > 0 ? mpp / base_pp : 0, mtg, base_tg > 0 ? mtg / base_tg : 0, mal);
        }
        cJSON_AddNumberToObject(j, "peak_rss_bytes", (double)sx_cli_peak_rss());
        if (c.json) {
            char *str = cJSON_Print(j);
            printf("%s\n", str);
            free(str);
        }
        cJSON_Delete(j);
    }
    for (int k = 0; k < n_cfg; k++) {
        if (!cfg[k].shared) sx_engine_destroy(cfg[k].e);
        free(cfg[k].pp);
        free(cfg[k].tg);
        free(cfg[k].al);
        free(cfg[k].ng);
    }
    free(prompt);
    free(file_prompt);
    return rc;
}
