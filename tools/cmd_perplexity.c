/* tools/cmd_perplexity.c — `specexit perplexity`: a text file's perplexity
 * under the model, as llama.cpp's llama-perplexity computes it, for several
 * backends and KV cache types in one run (A/B: each chunk is scored under
 * every configuration in turn).
 *
 * The text is tokenized whole and cut into chunks of -c tokens (default
 * 512); a chunk's first token becomes BOS when the model adds one; each
 * chunk is evaluated from an empty context and its second half is scored
 * (every token after position c/2 given all before it in the chunk), so
 * each scored token has at least c/2 tokens of context. PPL = exp(mean
 * negative log-likelihood), with the standard error of that mean carried
 * through exp. Against the first configuration each other one also reports
 * the KL divergence of its next-token distributions from the first's at
 * every scored position (mean, median, 99th percentile, max: llama.cpp's
 * --kl-divergence, without its two runs and logits file), how often its
 * most likely token is the same ("same top 1"), the RMS difference of the
 * scored tokens' probabilities, the mean |difference| of their logprobs and
 * the ratio of the perplexities. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"

#define MAX_CFG 8

typedef struct ppl_run ppl_run;

typedef struct {
    char backend[64];
    sx_kv_type kv;
    sx_engine *e;
    sx_session *s;
    ppl_run *run;
    bool first_cfg;
    double nll, nll2, ms;
    long n;
    long same_top; /* positions whose most likely token is the first config's */
    double abs_dlp, dp2;
    double *kld;   /* [every scored position] KL(first || this) */
} ppl_cfg;

/* the chunk being scored, and the first configuration's distributions at its scored positions */
struct ppl_run {
    const int32_t *chunk;
    int n_ctx, first, V;
    bool keep;        /* several configurations: keep the first's rows */
    float *base;      /* [n_ctx - 1 - first][V] its raw logits (exact), */
    double *base_lse; /* [n_ctx - 1 - first] their log-sum-exp */
    int32_t *base_top;
};

/* one position's row: log-softmax; the scored token's NLL; against the first configuration, KL and the top token */
static void score_row(int i, const float *row, int V, void *user) {
    ppl_cfg *g = user;
    ppl_run *r = g->run;
    if (i < r->first || i >= r->n_ctx - 1) return;
    /* in double throughout: a float log-sum-exp would shift every log-probability by up to half an ulp
     * (~1e-6), which KL picks up directly */
    float m = -INFINITY;
    int32_t top = 0;
    for (int v = 0; v < V; v++)
        if (row[v] > m) m = row[v], top = v;
    double sum = 0;
    for (int v = 0; v < V; v++) sum += exp((double)row[v] - m);
    const double lse = (double)m + log(sum);
    const int32_t tok = r->chunk[i + 1];
    const double lp_tok = (double)row[tok] - lse, nll = -lp_tok;
    g->nll += nll, g->nll2 += nll * nll;
    const size_t at = (size_t)(i - r->first);
    if (g->first_cfg) {
        if (r->keep) {
            memcpy(r->base + at * V, row, sizeof(float) * (size_t)V);
            r->base_lse[at] = lse;
            r->base_top[at] = top;
        }
    } else {
        const float *b = r->base + at * V;
        const double blse = r->base_lse[at];
        double kld = 0;
        for (int v = 0; v < V; v++) {
            const double lb = (double)b[v] - blse;
            kld += exp(lb) * (lb - ((double)row[v] - lse));
        }
        g->kld[g->n] = kld > 0 ? kld : 0; /* rounding can leave a tiny negative */
        g->same_top += top == r->base_top[at];
        const double lb_tok = (double)b[tok] - blse;
        g->abs_dlp += fabs(lp_tok - lb_tok);
        const double dp = exp(lp_tok) - exp(lb_tok);
        g->dp2 += dp * dp;
    }
    g->n++;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void help(void) {
    printf("usage: specexit perplexity -m MODEL.gguf -f TEXT_FILE [-c 512] [--chunks N] [--backend A,B] [-ctk f16,q8_0] [--json]\n\n"
           "Perplexity of a text under the model, as llama-perplexity computes it: chunks of -c tokens, each\n"
           "evaluated from an empty context, the second half of each scored. Several backends (--backend cpu,vulkan)\n"
           "and KV cache types (-ctk f16,q8_0,q4_0) are compared in one run, chunk by chunk: each reports its\n"
           "perplexity, and against the first how often the most likely token is the same and the mean |difference|\n"
           "of the logprobs. Progress goes to stderr; the result to stdout (--json: one object).\n\n"
           "  -f, --file FILE           the text (required)\n"
           "  -c, --ctx-size N          tokens per chunk (default 512)\n"
           "      --chunks N            score the first N chunks only (default: all)\n\n");
    sx_cli_print_common_help(stdout);
}

/* -ctk A,B,...: the parser checks the first; the list is kept here (argv's entry is cut at the first comma) */
static int take_kv_list(int argc, char **argv, sx_kv_type *kvs) {
    for (int i = 0; i + 1 < argc; i++) {
        if (strcmp(argv[i], "-ctk") && strcmp(argv[i], "--cache-type-k") && strcmp(argv[i], "-ctv") && strcmp(argv[i], "--cache-type-v")) continue;
        if (!strchr(argv[i + 1], ',')) return 0;
        char list[128];
        snprintf(list, sizeof list, "%s", argv[i + 1]);
        *strchr(argv[i + 1], ',') = 0;
        return sx_cli_kv_list(list, kvs);
    }
    return 0;
}

static cJSON *result_json(const ppl_cfg *g, const ppl_cfg *first) {
    cJSON *o = cJSON_CreateObject();
    const double mean = g->nll / (double)g->n, var = g->n > 1 ? fmax(0.0, (g->nll2 / (double)g->n - mean * mean) * g->n / (g->n - 1)) : 0;
    const double ppl = exp(mean), se = sqrt(var / (double)g->n);
    cJSON_AddStringToObject(o, "backend", g->backend);
    cJSON_AddStringToObject(o, "cache_type", sx_kv_type_name(g->kv));
    cJSON_AddNumberToObject(o, "ppl", ppl);
    cJSON_AddNumberToObject(o, "ppl_stderr", ppl * se);
    cJSON_AddNumberToObject(o, "mean_nll", mean);
    cJSON_AddNumberToObject(o, "tokens_scored", (double)g->n);
    cJSON_AddNumberToObject(o, "seconds", g->ms / 1e3);
    cJSON_AddNumberToObject(o, "kv_cache_bytes", (double)sx_session_kv_bytes(g->s));
    if (g != first) {
        double kmean = 0;
        for (long i = 0; i < g->n; i++) kmean += g->kld[i];
        qsort(g->kld, (size_t)g->n, sizeof *g->kld, cmp_double);
        cJSON_AddNumberToObject(o, "ppl_ratio", exp(mean - first->nll / (double)first->n));
        cJSON_AddNumberToObject(o, "mean_kld", kmean / (double)g->n);
        cJSON_AddNumberToObject(o, "median_kld", g->kld[g->n / 2]);
        cJSON_AddNumberToObject(o, "p99_kld", g->kld[(long)(0.99 * (double)(g->n - 1))]);
        cJSON_AddNumberToObject(o, "max_kld", g->kld[g->n - 1]);
        cJSON_AddNumberToObject(o, "same_top1", (double)g->same_top / (double)g->n);
        cJSON_AddNumberToObject(o, "rms_dp", sqrt(g->dp2 / (double)g->n));
        cJSON_AddNumberToObject(o, "mean_abs_dlogprob", g->abs_dlp / (double)g->n);
    }
    return o;
}

int sx_cmd_perplexity(int argc, char **argv) {
    if (sx_cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    sx_kv_type kvs[4];
    const int n_kv_list = take_kv_list(argc, argv, kvs);
    if (n_kv_list < 0) return 1;
    sx_cli c;
    const int begun = sx_cli_begin(&c, argc, argv, "perplexity", 0, help);
    if (begun >= 0) return begun;
    if (!c.prompt_file) {
        fprintf(stderr, "error: perplexity needs a text file (-f FILE)\n");
        return 1;
    }
    const int n_kv = n_kv_list ? n_kv_list : 1;
    if (!n_kv_list) kvs[0] = c.kv_type_k;
    const int n_ctx = c.n_ctx ? c.n_ctx : 512;
    if (n_ctx < 8) {
        fprintf(stderr, "error: -c %d: a chunk needs at least 8 tokens\n", n_ctx);
        return 1;
    }
    char *text = sx_cli_read_file(c.prompt_file);
    if (!text) {
        fprintf(stderr, "error: cannot read '%s'\n", c.prompt_file);
        return 1;
    }
    ppl_cfg cfg[MAX_CFG];
    memset(cfg, 0, sizeof cfg);
    ppl_run run = {.n_ctx = n_ctx, .first = n_ctx / 2};
    int n_cfg = 0, rc = 0, n_ids = 0, n_chunks = 0;
    int32_t *ids = NULL, *chunk = NULL;
    sx_status st = SX_OK;
    /* the configurations: each backend (',' separates them, '/' splits one model over devices) with each cache type */
    char list[256];
    snprintf(list, sizeof list, "%s", c.backend);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        sx_engine_options eo;
        sx_cli_engine_options(&c, &eo);
        eo.backend = tok;
        eo.fit_ctx = n_ctx;
        sx_engine *e = NULL;
        if ((st = sx_engine_create(&eo, &e)) != SX_OK) {
            fprintf(stderr, "error: loading the model on %s: %s\n", tok, sx_last_error());
            rc = 1;
            goto done;
        }
        for (int k = 0; k < n_kv; k++) {
            if (n_cfg == MAX_CFG) {
                fprintf(stderr, "error: at most %d configurations (backends x cache types)\n", MAX_CFG);
                if (k == 0) sx_engine_destroy(e); /* else a configuration owns it */
                rc = 1;
                goto done;
            }
            ppl_cfg *g = &cfg[n_cfg++];
            snprintf(g->backend, sizeof g->backend, "%s", tok);
            g->kv = kvs[k];
            g->e = k == 0 ? e : NULL; /* the first of a backend's configs owns its engine */
            sx_session_options so;
            sx_cli_session_options(&c, &so);
            so.n_ctx = n_ctx;
            so.kv_type = kvs[k];
            g->run = &run;
            g->first_cfg = n_cfg == 1;
            if ((st = sx_session_create(e, &so, &g->s)) != SX_OK) {
                fprintf(stderr, "error: a %d-token session with a %s cache on %s: %s\n", n_ctx, sx_kv_type_name(kvs[k]), tok, sx_last_error());
                rc = 1;
                goto done;
            }
        }
    }
    sx_engine *e0 = cfg[0].e;
    if ((st = sx_tokenize(e0, text, false, false, &ids, &n_ids)) != SX_OK) {
        rc = sx_cli_fail("tokenizing the text", st);
        goto done;
    }
    int32_t bos = -1; /* the model's BOS, when it adds one: each chunk starts with it, as llama-perplexity does */
    {
        int32_t *b = NULL;
        int nb = 0;
        if (sx_tokenize(e0, "", true, false, &b, &nb) == SX_OK && nb == 1) bos = b[0];
        free(b);
    }
    n_chunks = n_ids / n_ctx;
    if (c.chunks >= 0 && c.chunks < n_chunks) n_chunks = c.chunks;
    if (n_chunks < 1) {
        fprintf(stderr, "error: the text has %d tokens; a chunk takes %d (-c): give a longer text or a smaller -c\n", n_ids, n_ctx);
        rc = 1;
        goto done;
    }
    const int n_scored = n_ctx - 1 - n_ctx / 2;
    sx_engine_info info;
    sx_engine_get_info(e0, &info);
    run.V = info.n_vocab;
    run.keep = n_cfg > 1;
    if (run.keep) {
        run.base = malloc(sizeof(float) * (size_t)run.V * (size_t)n_scored);
        run.base_lse = malloc(sizeof(double) * (size_t)n_scored);
        run.base_top = malloc(sizeof(int32_t) * (size_t)n_scored);
    }
    bool oom = run.keep && (!run.base || !run.base_lse || !run.base_top);
    for (int k = 1; k < n_cfg; k++) oom |= !(cfg[k].kld = malloc(sizeof(double) * (size_t)n_chunks * (size_t)n_scored));
    if (oom || !(chunk = malloc(sizeof(int32_t) * (size_t)n_ctx))) {
        fprintf(stderr, "error: out of memory\n");
        rc = 1;
        goto done;
    }
    fprintf(stderr, "[perplexity] %d tokens, %d chunks of %d, scoring the last %d of each, %d configuration%s\n", n_ids, n_chunks, n_ctx,
            n_ctx - 1 - n_ctx / 2, n_cfg, n_cfg > 1 ? "s" : "");
    run.chunk = chunk;
    for (int ch = 0; ch < n_chunks; ch++) {
        memcpy(chunk, ids + (size_t)ch * n_ctx, sizeof(int32_t) * (size_t)n_ctx);
        if (bos >= 0) chunk[0] = bos;
        for (int k = 0; k < n_cfg; k++) {
            ppl_cfg *g = &cfg[k];
            sx_session_reset(g->s);
            const double t0 = sx_cli_now_ms();
            if ((st = sx_session_eval_rows(g->s, chunk, n_ctx, c.n_batch ? c.n_batch : 512, score_row, g)) != SX_OK) {
                fprintf(stderr, "error: chunk %d on %s (%s cache): %s\n", ch + 1, g->backend, sx_kv_type_name(g->kv), sx_last_error());
                rc = 1;
                goto done;
            }
            g->ms += sx_cli_now_ms() - t0;
        }
        fprintf(stderr, "[perplexity] chunk %d/%d:", ch + 1, n_chunks);
        for (int k = 0; k < n_cfg; k++) fprintf(stderr, " %s %s %.4f", cfg[k].backend, sx_kv_type_name(cfg[k].kv), exp(cfg[k].nll / (double)cfg[k].n));
        fprintf(stderr, "\n");
    }
    cJSON *j = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(j, "configs");
    cJSON_AddStringToObject(j, "model", info.model_name);
    cJSON_AddStringToObject(j, "quant", info.quant);
    cJSON_AddStringToObject(j, "file", c.prompt_file);
    cJSON_AddNumberToObject(j, "n_tokens", n_ids);
    cJSON_AddNumberToObject(j, "n_ctx", n_ctx);
    cJSON_AddNumberToObject(j, "n_chunks", n_chunks);
    for (int k = 0; k < n_cfg; k++) cJSON_AddItemToArray(arr, result_json(&cfg[k], &cfg[0]));
    if (c.json) {
        char *s = cJSON_Print(j);
        if (s) printf("%s\n", s);
        free(s);
    } else {
        printf("%-16s %-6s %10s %9s %8s %10s %10s %10s %9s\n", "backend", "cache", "PPL", "+/-", "ratio", "mean KLD", "99% KLD", "same top1",
               "tok/s");
        const cJSON *r;
        cJSON_ArrayForEach(r, arr) {
            const cJSON *same = cJSON_GetObjectItem(r, "same_top1");
            printf("%-16s %-6s %10.4f %9.4f", cJSON_GetObjectItem(r, "backend")->valuestring, cJSON_GetObjectItem(r, "cache_type")->valuestring,
                   cJSON_GetObjectItem(r, "ppl")->valuedouble, cJSON_GetObjectItem(r, "ppl_stderr")->valuedouble);
            if (same)
                printf(" %8.4f %10.6f %10.6f %9.2f%%", cJSON_GetObjectItem(r, "ppl_ratio")->valuedouble, cJSON_GetObjectItem(r, "mean_kld")->valuedouble,
                       cJSON_GetObjectItem(r, "p99_kld")->valuedouble, 100 * same->valuedouble);
            else printf(" %8s %10s %10s %10s", "-", "-", "-", "-");
            printf(" %9.1f\n", (double)n_chunks * n_ctx / cJSON_GetObjectItem(r, "seconds")->valuedouble);
        }
        printf("Final estimate: PPL = %.4f +/- %.5f\n", cJSON_GetObjectItem(arr->child, "ppl")->valuedouble,
               cJSON_GetObjectItem(arr->child, "ppl_stderr")->valuedouble);
    }
    cJSON_Delete(j);
done:
    for (int k = 0; k < n_cfg; k++) {
        sx_session_destroy(cfg[k].s);
        free(cfg[k].kld);
    }
    free(run.base), free(run.base_lse), free(run.base_top);
    for (int k = 0; k < n_cfg; k++) sx_engine_destroy(cfg[k].e);
    free(chunk);
    free(ids);
    free(text);
    return rc;
}
