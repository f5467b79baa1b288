/* tools/cmd_bench_parallel.c — `specexit bench -np N`: N sessions generating
 * at the same time on one engine, with continuous batching (their target
 * passes combined, core/batch.c) against without (they take turns on the
 * device), repetitions interleaved. Reports aggregate tokens per second of
 * each, the ratio, the mean number of sequences per combined pass, and
 * whether both modes gave every session the same tokens (they must: the
 * combined passes are batch-invariant). */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/sampler.h"
#include "tools/cli.h"

typedef struct worker {
    sx_engine *e;
    sx_session *s;
    const int32_t *prompt;
    int n_prompt;
    sx_generate_params gp;
    pthread_barrier_t *start;
    int32_t *toks;
    int n_toks, cap;
    sx_status st;
    char err[256];
    double accept_len;
} worker;

static bool collect(int32_t tok, const char *piece, size_t len, void *user) {
    (void)piece, (void)len;
    worker *w = user;
    if (w->n_toks < w->cap) w->toks[w->n_toks++] = tok;
    return true;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    pthread_barrier_wait(w->start);
    sx_generate_stats gs;
    w->n_toks = 0;
    w->st = sx_generate(w->s, w->prompt, w->n_prompt, &w->gp, collect, w, &gs);
    if (w->st == SX_OK) {
        w->accept_len = gs.accept_len_mean;
        sx_generate_stats_free(&gs);
    } else {
        snprintf(w->err, sizeof w->err, "%s", sx_last_error());
    }
    return NULL;
}

int sx_cmd_bench_parallel(sx_cli *c) {
    const int N = c->n_parallel, R = c->repetitions, G = c->bench_gen;
    const int P = c->bench_prompt == 512 ? 32 : c->bench_prompt; /* 512 is the speed bench's default: short prompts here */
    if (N < 2) {
        fprintf(stderr, "error: bench -np needs at least 2 sessions\n");
        return 1;
    }
    sx_engine_options eo;
    sx_cli_engine_options(c, &eo);
    sx_engine *e = NULL;
    sx_status st = sx_engine_create(&eo, &e);
    if (st != SX_OK) return sx_cli_fail(c->model, st);
    sx_engine_info info;
    sx_engine_get_info(e, &info);
    sx_cli gc = *c;
    gc.exit_set = true;
    gc.exit.kind = SX_EXIT_NONE;
    gc.n_predict = G;
    gc.ignore_eos = true;
    gc.sampling.temp = 0;
    worker *w = calloc((size_t)N, sizeof *w);
    int32_t *prompts = malloc(sizeof(int32_t) * (size_t)N * (size_t)P);
    int32_t *ref = malloc(sizeof(int32_t) * (size_t)N * (size_t)(G + 1));
    double *tps[2] = {calloc((size_t)R, sizeof(double)), calloc((size_t)R, sizeof(double))};
    if (!w || !prompts || !ref || !tps[0] || !tps[1]) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    sx_rng rng;
    sx_rng_seed(&rng, 4321);
    for (int i = 0; i < N * P; i++) prompts[i] = (int32_t)(sx_rng_uniform(&rng) * (info.n_vocab - 1));
    for (int i = 0; i < N; i++) {
        w[i].e = e;
        w[i].prompt = prompts + (size_t)i * P;
        w[i].n_prompt = P;
        sx_cli_generate_params(&gc, &info, &w[i].gp);
        w[i].cap = G + 1;
        w[i].toks = malloc(sizeof(int32_t) * (size_t)(G + 1));
        if (!w[i].toks) return fprintf(stderr, "error: out of memory\n"), 1;
    }
    bool identical = true, have_ref = false;
    double accept = 0;
    uint64_t passes = 0, seqs = 0;
    int rc = 0;
    fprintf(stderr, "[bench] %d sessions x (%d prompt + %d generated tokens), %s, %d repetitions\n", N, P, G,
            sx_spec_kind_name(w[0].gp.spec.kind), R);
    for (int r = 0; r < R && rc == 0; r++) {
        for (int mode = 0; mode < 2 && rc == 0; mode++) { /* 0: take turns, 1: continuous batching */
            sx_engine_set_cont_batching(e, mode == 1);
            pthread_barrier_t start;
            pthread_barrier_init(&start, NULL, (unsigned)N + 1);
            pthread_t *th = calloc((size_t)N, sizeof *th);
            for (int i = 0; i < N && rc == 0; i++) {
                sx_session_options so;
                sx_cli_session_options(c, &so);
                if (!so.n_ctx) so.n_ctx = P + G + 300;
                if ((st = sx_session_create(e, &so, &w[i].s)) != SX_OK) rc = sx_cli_fail("session", st);
                w[i].start = &start;
            }
            if (rc) break;
            uint64_t p0, s0, p1, s1;
            sx_engine_batch_stats(e, &p0, &s0);
            for (int i = 0; i < N; i++) pthread_create(&th[i], NULL, worker_main, &w[i]);
            pthread_barrier_wait(&start);
            const double t0 = sx_cli_now_ms();
            for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
            const double ms = sx_cli_now_ms() - t0;
            sx_engine_batch_stats(e, &p1, &s1);
            if (mode == 1) passes += p1 - p0, seqs += s1 - s0;
            free(th);
            pthread_barrier_destroy(&start);
            long total = 0;
            for (int i = 0; i < N; i++) {
                sx_session_destroy(w[i].s);
                if (w[i].st != SX_OK) {
                    fprintf(stderr, "error: session %d: %s\n", i, w[i].err);
                    rc = 1;
                    continue;
                }
                total += w[i].n_toks;
                if (!have_ref) memcpy(ref + (size_t)i * (G + 1), w[i].toks, sizeof(int32_t) * (size_t)w[i].n_toks);
                else if (memcmp(ref + (size_t)i * (G + 1), w[i].toks, sizeof(int32_t) * (size_t)w[i].n_toks) != 0) identical = false;
                accept += w[i].accept_len / (2.0 * N * R);
            }
            have_ref = true;
            tps[mode][r] = ms > 0 ? (double)total / (ms / 1e3) : 0;
            fprintf(stderr, "[bench] rep %d/%d %-14s %8.1f tok/s aggregate (%.0f ms)\n", r + 1, R, mode ? "cont-batching" : "take-turns",
                    tps[mode][r], ms);
        }
    }
    if (rc == 0) {
        double m[2], sd[2];
        for (int k = 0; k < 2; k++) sx_cli_mean_std(tps[k], R, &m[k], &sd[k]);
        const double ratio = m[0] > 0 ? m[1] / m[0] : 0, batch = passes ? (double)seqs / (double)passes : 0;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", info.model_name);
        cJSON_AddStringToObject(j, "quant", info.quant);
        cJSON_AddStringToObject(j, "backend", info.backend);
        cJSON_AddStringToObject(j, "device", info.device);
        cJSON_AddStringToObject(j, "spec", sx_spec_kind_name(w[0].gp.spec.kind));
        cJSON_AddNumberToObject(j, "n_parallel", N);
        cJSON_AddNumberToObject(j, "n_prompt", P);
        cJSON_AddNumberToObject(j, "n_gen", G);
        cJSON_AddNumberToObject(j, "repetitions", R);
        const char *names[2] = {"take_turns", "cont_batching"};
        for (int k = 0; k < 2; k++) {
            cJSON_AddItemToObject(cJSON_AddObjectToObject(j, names[k]), "aggregate_tok_s", sx_cli_stat_json(tps[k], R));
        }
        cJSON_AddNumberToObject(j, "throughput_ratio", ratio);
        cJSON_AddNumberToObject(j, "mean_sequences_per_pass", batch);
        cJSON_AddNumberToObject(j, "accept_len_mean", accept);
        cJSON_AddBoolToObject(j, "outputs_identical", identical);
        cJSON_AddNumberToObject(j, "peak_rss_bytes", (double)sx_cli_peak_rss());
        if (c->json) {
            char *str = cJSON_Print(j);
            printf("%s\n", str);
            free(str);
        } else {
            printf("%d sessions on %s: take turns %.1f tok/s, continuous batching %.1f tok/s (x%.2f), %.2f sequences per pass, outputs %s\n",
                   N, info.device, m[0], m[1], ratio, batch, identical ? "identical" : "DIFFER");
        }
        cJSON_Delete(j);
        if (!identical) {
            fprintf(stderr, "error: continuous batching changed the generated tokens\n");
            rc = 1;
        }
    }
    for (int i = 0; i < N; i++) free(w[i].toks);
    free(w), free(prompts), free(ref), free(tps[0]), free(tps[1]);
    sx_engine_destroy(e);
    return rc;
}
