/* tools/cli.h — shared option parsing for the specexit subcommands. */
#ifndef SX_CLI_H
#define SX_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/specexit.h"

typedef struct sx_cli {
    const char *model;
    const char *prompt;
    const char *prompt_file;
    const char *system;
    const char *backend;
    int n_gpu_layers; /* -ngl (-1 = all, SX_NGL_AUTO = fit the device's memory) */
    int n_cpu_moe;    /* --n-cpu-moe / --cpu-moe (INT_MAX) */
    float tensor_split[SX_MAX_DEVICES]; /* -ts */
    char backend_first[64]; /* -sm none: the first device of a --backend list */
    const char *chat_template;
    int n_predict;
    int n_threads;
    bool pin_threads;
    int n_ctx;
    int n_batch;
    bool chat;     /* apply the chat template (default when the model has one) */
    bool raw;
    bool json;
    bool ignore_eos;
    bool no_think;
    sx_kv_type kv_type_k, kv_type_v;
    bool kv_k_set, kv_v_set;
    sx_sampler_params sampling;
    const char *draft_model;
    const char *draft_backend;
    sx_spec_params spec;
    sx_exit_params exit;
    bool spec_set;   /* --spec given explicitly */
    bool exit_set;   /* --exit given explicitly */
    bool sampling_set; /* --temp given */
    bool trace;      /* --json: include the signal trace */
    const char *grammar; /* GBNF from --grammar, --grammar-file, --json-schema or --json-schema-file */
    int n_logit_bias;    /* -l TOKEN_ID(+/-)BIAS */
    int32_t bias_ids[256];
    float bias_vals[256];
    /* bench */
    int bench_prompt;
    int bench_gen;
    int repetitions;
    const char *problems;
    const char *modes;
    bool compare;    /* run: also generate with full thinking and report the savings */
    int chunks;      /* perplexity: chunks scored (-1 = all) */
    /* serve */
    const char *host;
    int port;
    int n_parallel;
    bool parallel_set;      /* -np given (bench: the parallel A/B) */
    bool no_cont_batching;  /* serve -nocb: slots take turns instead of sharing passes */
    const char *api_key;
    const char *alias;
} sx_cli;

void sx_cli_init(sx_cli *c);
/* true when argv asks for help (-h, --help) */
bool sx_cli_wants_help(int argc, char **argv);
/* The start of a model command: help (prints it, returns 0), the defaults
 * (n_predict), parsing, the embedded model when -m is absent. Returns -1
 * when the command goes on, else its exit status. */
int sx_cli_begin(sx_cli *c, int argc, char **argv, const char *cmd, int n_predict, void (*help)(void));
/* Engine options from the parsed flags (model, backend, threads, template, draft). */
void sx_cli_engine_options(const sx_cli *c, sx_engine_options *eo);
/* Session options from the parsed flags (context, batch, KV type). */
void sx_cli_session_options(const sx_cli *c, sx_session_options *so);
/* Points -m (and -md) at the embedded sumchain model; false when not found. */
bool sx_cli_default_model(sx_cli *c);
/* Parses argv; prints a clear message and returns false on bad input. */
bool sx_cli_parse(sx_cli *c, int argc, char **argv, const char *cmd);
void sx_cli_print_common_help(FILE *f);
/* "error: <msg>" to stderr with the last library message; returns 1. */
int sx_cli_fail(const char *what, sx_status s);
/* Reads a whole file into a malloc'ed NUL-terminated string. */
char *sx_cli_read_file(const char *path);
/* Monotonic clock in milliseconds. */
double sx_cli_now_ms(void);
/* Peak resident set size of this process in bytes. */
unsigned long long sx_cli_peak_rss(void);

/* A comma-separated list of KV cache types (-ctk f16,q8_0,q4_0: bench and perplexity compare them in one
 * run) into kvs[0..4); the list is cut up (strtok). Returns the count, or -1 after printing the error. */
int sx_cli_kv_list(char *list, sx_kv_type kvs[4]);

/* Generation parameters from the options, with defaults that depend on the
 * loaded draft (speculation and exit on when the draft supports them). */
void sx_cli_generate_params(const sx_cli *c, const sx_engine_info *info, sx_generate_params *gp);
struct cJSON;
/* Adds the speculation/exit fields of a generation to a JSON object. */
void sx_cli_add_spec_json(struct cJSON *j, const sx_generate_params *gp, const sx_generate_stats *gs);
/* Mean and sample standard deviation of v[0..n). */
void sx_cli_mean_std(const double *v, int n, double *mean, double *sd);
/* {"mean", "stddev", "samples"} of v[0..n) (benchmark repetitions). */
struct cJSON *sx_cli_stat_json(const double *v, int n);

int sx_cmd_run(int argc, char **argv);
int sx_cmd_bench(int argc, char **argv);
int sx_cmd_bench_problems(sx_cli *c);
int sx_cmd_bench_parallel(sx_cli *c);
int sx_cmd_devices(int argc, char **argv);
int sx_cmd_convert(int argc, char **argv);
int sx_cmd_serve(int argc, char **argv);
int sx_cmd_chat(int argc, char **argv);
int sx_cmd_perplexity(int argc, char **argv);

#endif
