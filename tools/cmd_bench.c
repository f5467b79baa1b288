/* tools/cmd_bench.c — `specexit bench`: prefill and decode speed, A/B.
 *
 * `--backend cpu,vulkan` (or any comma-separated list) benchmarks several
 * configurations in one run, interleaving their repetitions so drifting
 * machine load hits all of them alike, and reports ratios to the first. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/sampler.h"
#include "tools/cli.h"

#define MAX_CONFIGS 8

typedef struct {
    char backend[64];
    sx_engine *e;
    double *pp, *tg; /* [repetitions] tok/s */
} bench_cfg;

static void help(void) {
    printf("usage: specexit bench -m MODEL.gguf [--backend B[,B2...]] [-pp 512] [-tg 128] [-r 3] [--json]\n\n"
           "Measures prefill (-pp tokens) and decode (-tg tokens, greedy) speed per backend,\n"
           "interleaving repetitions, and reports mean/stddev and ratios to the first backend.\n"
           "Progress goes to stderr.\n\n");
    sx_cli_print_common_help(stdout);
}

static void mean_std(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = n ? s / n : 0;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

static cJSON *stat_json(const double *v, int n) {
    double m, sd;
    mean_std(v, n, &m, &sd);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "mean", m);
    cJSON_AddNumberToObject(o, "stddev", sd);
    cJSON_AddItemToObject(o, "samples", cJSON_CreateDoubleArray(v, n));
    return o;
}

int sx_cmd_bench(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            help();
            return 0;
        }
    sx_cli c;
    sx_cli_init(&c);
    /* llama-bench spelling: -p / -n mean prompt and generation lengths here */
    for (int i = 0; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "-p")) argv[i] = "-pp";
        else if (!strcmp(argv[i], "-n")) argv[i] = "-tg";
    }
    if (!sx_cli_parse(&c, argc, argv, "bench")) return 1;
    if (!c.model) {
        fprintf(stderr, "error: no model given (-m MODEL.gguf)\n");
        return 1;
    }
    if (c.bench_prompt < 1 || c.bench_gen < 2) {
        fprintf(stderr, "error: bench needs -p >= 1 and -n >= 2\n");
        return 1;
    }
    bench_cfg cfg[MAX_CONFIGS];
    int n_cfg = 0, rc = 0;
    memset(cfg, 0, sizeof cfg);
    char list[256];
    snprintf(list, sizeof list, "%s", c.backend);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n_cfg == MAX_CONFIGS) {
            fprintf(stderr, "error: at most %d backends\n", MAX_CONFIGS);
            return 1;
        }
        snprintf(cfg[n_cfg++].backend, sizeof cfg[0].backend, "%s", tok);
    }
    const int R = c.repetitions;
    for (int k = 0; k < n_cfg && rc == 0; k++) {
        sx_engine_options eo;
        sx_engine_options_init(&eo);
        eo.model_path = c.model;
        eo.backend = cfg[k].backend;
        eo.n_threads = c.n_threads;
        sx_status st = sx_engine_create(&eo, &cfg[k].e);
        if (st != SX_OK) rc = sx_cli_fail(cfg[k].backend, st);
        cfg[k].pp = calloc((size_t)R, sizeof(double));
        cfg[k].tg = calloc((size_t)R, sizeof(double));
    }
    int n_vocab = 0;
    if (rc == 0) {
        sx_engine_info info;
        sx_engine_get_info(cfg[0].e, &info);
        n_vocab = info.n_vocab;
    }
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)(c.bench_prompt > 0 ? c.bench_prompt : 1));
    sx_rng rng;
    sx_rng_seed(&rng, 1234);
    for (int i = 0; i < c.bench_prompt && prompt; i++) prompt[i] = (int32_t)(sx_rng_uniform(&rng) * (n_vocab - 1));
    for (int r = 0; r < R && rc == 0; r++) {
        for (int k = 0; k < n_cfg && rc == 0; k++) {
            sx_session_options so;
            sx_session_options_init(&so);
            so.n_ctx = c.n_ctx ? c.n_ctx : c.bench_prompt + c.bench_gen + 8;
            so.n_batch = c.n_batch;
            so.kv_f32 = c.kv_f32;
            sx_session *s = NULL;
            sx_status st = sx_session_create(cfg[k].e, &so, &s);
            sx_generate_params gp;
            sx_generate_params_init(&gp);
            gp.n_predict = c.bench_gen;
            gp.ignore_eos = true;
            gp.sampling.temp = 0;
            sx_generate_stats gs;
            if (st == SX_OK) st = sx_generate(s, prompt, c.bench_prompt, &gp, NULL, NULL, &gs);
            sx_session_destroy(s);
            if (st != SX_OK) {
                rc = sx_cli_fail(cfg[k].backend, st);
                break;
            }
            cfg[k].pp[r] = gs.prefill_tok_s;
            cfg[k].tg[r] = gs.decode_tok_s;
            fprintf(stderr, "[bench] rep %d/%d %-10s prefill %8.1f tok/s  decode %7.1f tok/s\n", r + 1, R, cfg[k].backend, gs.prefill_tok_s,
                    gs.decode_tok_s);
        }
    }
    if (rc == 0) {
        sx_engine_info info;
        sx_engine_get_info(cfg[0].e, &info);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", info.model_name);
        cJSON_AddStringToObject(j, "arch", info.arch);
        cJSON_AddStringToObject(j, "quant", info.quant);
        cJSON_AddNumberToObject(j, "n_params", (double)info.n_params);
        cJSON_AddNumberToObject(j, "weight_bytes", (double)info.weight_bytes);
        cJSON_AddNumberToObject(j, "n_prompt", c.bench_prompt);
        cJSON_AddNumberToObject(j, "n_gen", c.bench_gen);
        cJSON_AddNumberToObject(j, "repetitions", R);
        cJSON *arr = cJSON_AddArrayToObject(j, "configs");
        double base_pp = 0, base_tg = 0, sd;
        for (int k = 0; k < n_cfg; k++) {
            sx_engine_info ki;
            sx_engine_get_info(cfg[k].e, &ki);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "backend", cfg[k].backend);
            cJSON_AddStringToObject(o, "device", ki.device);
            cJSON_AddItemToObject(o, "prefill_tok_s", stat_json(cfg[k].pp, R));
            cJSON_AddItemToObject(o, "decode_tok_s", stat_json(cfg[k].tg, R));
            double mpp, mtg;
            mean_std(cfg[k].pp, R, &mpp, &sd);
            mean_std(cfg[k].tg, R, &mtg, &sd);
            if (k == 0) base_pp = mpp, base_tg = mtg;
            cJSON_AddNumberToObject(o, "prefill_ratio", base_pp > 0 ? mpp / base_pp : 0);
            cJSON_AddNumberToObject(o, "decode_ratio", base_tg > 0 ? mtg / base_tg : 0);
            cJSON_AddItemToArray(arr, o);
            if (!c.json)
                printf("%-12s %-40s prefill %8.1f tok/s (x%.2f)  decode %7.1f tok/s (x%.2f)\n", cfg[k].backend, ki.device, mpp,
                       base_pp > 0 ? mpp / base_pp : 0, mtg, base_tg > 0 ? mtg / base_tg : 0);
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
        sx_engine_destroy(cfg[k].e);
        free(cfg[k].pp);
        free(cfg[k].tg);
    }
    free(prompt);
    return rc;
}
