/* tests/test_cont_batching.c — continuous batching (core/batch.c): sessions
 * generating at the same time in different threads share their target
 * passes, and each still gets exactly the tokens it gets alone.
 *
 *   test_cont_batching BACKEND TARGET.gguf [DRAFT.gguf [DRAFT_BACKEND]] [--ngl N]
 * (--ngl N: the target's last N blocks on BACKEND, the others on the CPU)
 *
 * Jobs (plain and speculative, greedy and seeded sampling, different prompt
 * lengths and draft shapes) run one after the other on fresh sessions, then
 * all at once, one thread each, several rounds; every job's tokens must be
 * identical, and the engine must have combined passes (more sequences than
 * passes). Exit 77 when BACKEND has no device. */
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "core/specexit.h"
#include "tests/check.h"

#define N_PREDICT 40
#define MAX_JOBS 6

typedef struct job {
    const char *name;
    const char *prompt;
    sx_generate_params p;
    int32_t toks[N_PREDICT + 8];
    int n;
    sx_status st;
    char err[256];
    sx_session *s;
    sx_engine *e;
    pthread_barrier_t *start;
    pthread_barrier_t *first; /* concurrent rounds: met at the first token, when every job is in its decode phase */
} job;

static bool collect(int32_t tok, const char *piece, size_t len, void *user) {
    (void)piece, (void)len;
    job *j = user;
    if (j->n < N_PREDICT + 8) j->toks[j->n++] = tok;
    /* a tiny model's job takes a few milliseconds: on a loaded machine the threads could run one after the
     * other and never meet the batcher together, so they meet here before decoding on */
    if (j->first && j->n == 1) pthread_barrier_wait(j->first);
    return true;
}

static void run_job(job *j) {
    int32_t *ids = NULL;
    int n_ids = 0;
    j->n = 0;
    j->st = sx_tokenize(j->e, j->prompt, true, true, &ids, &n_ids);
    sx_generate_stats gs;
    if (j->st == SX_OK) j->st = sx_generate(j->s, ids, n_ids, &j->p, collect, j, &gs);
    if (j->st == SX_OK) sx_generate_stats_free(&gs);
    else snprintf(j->err, sizeof j->err, "%s", sx_last_error());
    free(ids);
}

/* ---- a long prompt arriving while a session streams ---- */
typedef struct streamer {
    sx_session *s;
    const int32_t *prompt;
    int n_prompt;
    volatile int n_tokens; /* emitted so far */
    volatile int stop;
    sx_status st;
} streamer;

static bool stream_cb(int32_t tok, const char *piece, size_t len, void *user) {
    (void)tok, (void)piece, (void)len;
    streamer *t = user;
    __atomic_add_fetch(&t->n_tokens, 1, __ATOMIC_SEQ_CST);
    return !__atomic_load_n(&t->stop, __ATOMIC_SEQ_CST);
}

static void *stream_main(void *arg) {
    streamer *t = arg;
    sx_generate_params p;
    sx_generate_params_init(&p);
    p.n_predict = 400;
    p.ignore_eos = true;
    p.sampling.temp = 0;
    p.exit.kind = SX_EXIT_NONE;
    sx_generate_stats gs;
    t->st = sx_generate(t->s, t->prompt, t->n_prompt, &p, stream_cb, t, &gs);
    if (t->st == SX_OK) sx_generate_stats_free(&gs);
    return NULL;
}

/* While one session decodes, another evaluates a prompt in many chunks: the
 * decoding session must get target passes between the chunks (core/batch.c,
 * sx_batch_prefill_turn), not wait for the whole prompt. */
static void prefill_takes_turns(sx_engine *e) {
    enum { CHUNK = 4, N_LONG = 160 };
    sx_session_options so;
    sx_session_options_init(&so);
    so.n_ctx = 512;
    sx_session *sa = NULL, *sb = NULL;
    so.n_batch = CHUNK;
    if (sx_session_create(e, &so, &sa) != SX_OK || sx_session_create(e, &so, &sb) != SX_OK) {
        CHECK(false, "sessions: %s", sx_last_error());
        return;
    }
    sx_engine_info info;
    sx_engine_get_info(e, &info);
    int32_t a_prompt[3] = {1, 2, 3}, b_prompt[N_LONG];
    for (int i = 0; i < N_LONG; i++) b_prompt[i] = (int32_t)(7 + (i * 13) % (info.n_vocab - 8));
    streamer t = {.s = sa, .prompt = a_prompt, .n_prompt = 3};
    pthread_t th;
    pthread_create(&th, NULL, stream_main, &t);
    while (__atomic_load_n(&t.n_tokens, __ATOMIC_SEQ_CST) < 3 && t.st == SX_OK) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    const int before = __atomic_load_n(&t.n_tokens, __ATOMIC_SEQ_CST);
    const sx_status st = sx_session_eval(sb, b_prompt, N_LONG, NULL);
    const int during = __atomic_load_n(&t.n_tokens, __ATOMIC_SEQ_CST) - before;
    __atomic_store_n(&t.stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(th, NULL);
    const int chunks = N_LONG / CHUNK;
    CHECK(st == SX_OK, "prompt of %d tokens: %s", N_LONG, sx_last_error());
    CHECK(t.st == SX_OK, "streaming session: %s", sx_status_str(t.st));
    /* one pass between every two chunks, unless a wait timed out (100 ms): at least half */
    CHECK(during >= (chunks - 1) / 2 && during < 400, "the streaming session decoded %d tokens during a prompt of %d chunks (want >= %d)", during,
          chunks, (chunks - 1) / 2);
    printf("prefill takes turns: %d tokens streamed during a %d-chunk prompt\n", during, chunks);
    sx_session_destroy(sa);
    sx_session_destroy(sb);
}

static void *thread_main(void *arg) {
    job *j = arg;
    pthread_barrier_wait(j->start);
    run_job(j);
    return NULL;
}

int main(int argc, char **argv) {
    int ngl = -1;
    if (argc >= 5 && !strcmp(argv[argc - 2], "--ngl")) {
        ngl = atoi(argv[argc - 1]);
        argc -= 2;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: test_cont_batching BACKEND TARGET.gguf [DRAFT.gguf [DRAFT_BACKEND]] [--ngl N]\n");
        return 2;
    }
    const char *backend = argv[1], *draft = argc > 3 ? argv[3] : NULL;
    sx_engine_options eo;
    sx_engine_options_init(&eo);
    eo.n_gpu_layers = ngl;
    eo.model_path = argv[2];
    eo.backend = backend;
    eo.n_threads = 2;
    eo.draft_path = draft;
    eo.draft_backend = argc > 4 ? argv[4] : NULL;
    sx_engine *e = NULL;
    if (sx_engine_create(&eo, &e) != SX_OK) {
        const char *msg = sx_last_error();
        printf("%s: %s\n", strstr(msg, "no ") || strstr(msg, "not compiled") ? "SKIP" : "FAIL", msg);
        return strstr(msg, "no ") || strstr(msg, "not compiled") ? 77 : 1;
    }
    const char *prompts[MAX_JOBS] = {"The quick brown fox", "What is 17+5+38+9+64+23?", "Count: one two three four five six seven",
                                      "Hello", "Tell me a story about a robot who learns to paint the sea at night", "12+7+30="};
    job jobs[MAX_JOBS];
    int n_jobs = 0;
    for (int i = 0; i < MAX_JOBS; i++) {
        job *j = &jobs[n_jobs];
        memset(j, 0, sizeof *j);
        j->e = e;
        j->prompt = prompts[i];
        sx_generate_params_init(&j->p);
        j->p.n_predict = N_PREDICT;
        j->p.ignore_eos = true;
        j->p.sampling.temp = 0;
        j->p.exit.kind = SX_EXIT_NONE;
        switch (i) {
        case 0: j->name = "plain greedy"; break;
        case 1: j->name = "plain sampled"; j->p.sampling.temp = 0.9f; j->p.sampling.seed = 5; break;
        case 2: j->name = "eagle3 greedy"; j->p.spec.kind = SX_SPEC_EAGLE3; break;
        case 3: j->name = "eagle3 sampled"; j->p.spec.kind = SX_SPEC_EAGLE3; j->p.sampling.temp = 0.8f; j->p.sampling.seed = 7; break;
        case 4: j->name = "eagle3 chain greedy"; j->p.spec.kind = SX_SPEC_EAGLE3; j->p.spec.draft_topk = 1; j->p.spec.draft_max = 3; break;
        case 5: j->name = "plain greedy 2"; break;
        }
        if (j->p.spec.kind == SX_SPEC_EAGLE3 && !draft) continue;
        n_jobs++;
    }
    /* alone, one after the other */
    job ref[MAX_JOBS];
    for (int i = 0; i < n_jobs; i++) {
        ref[i] = jobs[i];
        sx_session_options so;
        sx_session_options_init(&so);
        so.n_ctx = 512;
        if (sx_session_create(e, &so, &ref[i].s) != SX_OK) return printf("FAIL: session: %s\n", sx_last_error()), 1;
        run_job(&ref[i]);
        CHECK(ref[i].st == SX_OK && ref[i].n == N_PREDICT, "%s alone: %s (%d tokens)", ref[i].name, ref[i].err, ref[i].n);
        sx_session_destroy(ref[i].s);
    }
    /* all at once, a few rounds (the threads meet the batcher in different orders) */
    uint64_t passes0, seqs0, passes1, seqs1;
    sx_engine_batch_stats(e, &passes0, &seqs0);
    for (int round = 0; round < 3; round++) {
        pthread_barrier_t start, first;
        pthread_barrier_init(&start, NULL, (unsigned)n_jobs);
        pthread_barrier_init(&first, NULL, (unsigned)n_jobs);
        pthread_t th[MAX_JOBS];
        for (int i = 0; i < n_jobs; i++) {
            sx_session_options so;
            sx_session_options_init(&so);
            so.n_ctx = 512;
            if (sx_session_create(e, &so, &jobs[i].s) != SX_OK) return printf("FAIL: session: %s\n", sx_last_error()), 1;
            jobs[i].start = &start;
            jobs[i].first = &first;
        }
        for (int i = 0; i < n_jobs; i++) pthread_create(&th[i], NULL, thread_main, &jobs[i]);
        for (int i = 0; i < n_jobs; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < n_jobs; i++) {
            CHECK(jobs[i].st == SX_OK, "round %d %s: %s", round, jobs[i].name, jobs[i].err);
            int first_diff = -1;
            for (int k = 0; k < N_PREDICT && first_diff < 0; k++)
                if (k >= jobs[i].n || jobs[i].toks[k] != ref[i].toks[k]) first_diff = k;
            CHECK(first_diff < 0 && jobs[i].n == ref[i].n, "round %d %s: concurrent tokens differ from alone at %d", round, jobs[i].name, first_diff);
            sx_session_destroy(jobs[i].s);
        }
        pthread_barrier_destroy(&start);
        pthread_barrier_destroy(&first);
    }
    sx_engine_batch_stats(e, &passes1, &seqs1);
    const uint64_t passes = passes1 - passes0, seqs = seqs1 - seqs0;
    printf("combined passes: %llu carrying %llu sequences (%.2f per pass)\n", (unsigned long long)passes, (unsigned long long)seqs,
           passes ? (double)seqs / (double)passes : 0.0);
    /* how many sequences a pass carries depends on thread timing (1.5-2.1 on an idle machine, 1.21 seen under a loaded CI run);
     * without batching it is exactly 1, so ask for clearly more than that */
    CHECK(passes > 0 && seqs > passes + passes / 20, "the concurrent sessions were not batched (%llu passes, %llu sequences)",
          (unsigned long long)passes, (unsigned long long)seqs);
    prefill_takes_turns(e);
    sx_engine_destroy(e);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
