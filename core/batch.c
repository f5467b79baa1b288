/* core/batch.c — continuous batching: sessions generating at the same time
 * on one engine share their forward passes (target and EAGLE-3 draft).
 *
 * Each generating session runs its own loop in its own thread (the server's
 * slots, or any program with several sessions). Every device call of a
 * session holds the engine's device lock (recursive), so the sessions are
 * safe to use concurrently. A session in its decode phase sends its target
 * pass (one token, or a speculative tree to verify) to the batcher instead:
 * the pass waits until every session in its decode phase has sent one (or a
 * short deadline passes, so a session stalled in its own host work delays
 * nobody for long), then the first thread that sees the batch complete runs
 * all of them as one forward pass (sx_model_build_forward_multi): the
 * weights are read once for every sequence instead of once per sequence,
 * which is what a memory-bound decode step costs. EAGLE-3 draft passes are
 * combined the same way (sx_eagle3_build_multi), among passes of the same
 * shape (all from target features or all from parent rows, same top-k);
 * draft passes go before target passes, so sessions that drift out of
 * step draft until they all reach their verification, then verify together.
 *
 * Exactness: a pass takes at most SX_BATCH_MAX_ROWS rows in all, the range
 * in which every backend computes a matmul row bit for bit as alone (tests/
 * test_batch_invariance.c), and attention runs per sequence on its own cache,
 * so every session gets exactly the tokens it would get alone. A combined
 * pass that fails is retried one sequence at a time, so one bad request
 * cannot fail the others. Tested by tests/test_cont_batching.c and by the
 * server's concurrent-clients test.
 *
 * Prompts: a session's prefill runs in chunks of its batch size (-b), as it
 * would alone (the chunking decides the bits of its KV cache, so it must
 * not depend on who else is running). Between two chunks it waits until the
 * decoding sessions have completed a target pass (sx_batch_prefill_turn), so
 * a long prompt arriving stalls a streaming session for one chunk, not for
 * the whole prompt (the device lock is not fair: a prefilling thread that
 * unlocks and relocks at once would otherwise keep it). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/eagle3.h"
#include "core/engine_internal.h"
#include "core/spec.h"

#define SX_BATCH_MAX_ROWS SX_SPEC_MAX_VERIFY
#define SX_BATCH_WAIT_MS 50 /* the longest a ready pass waits for the other sessions */
#define SX_PREFILL_TURN_MS 100 /* the longest a prefill chunk waits for the decoding sessions' next pass */

typedef struct breq {
    sx_session *s;
    /* a target pass */
    const sx_batch *b;
    float *logits;   /* [n_out][n_vocab] or NULL */
    int32_t *argmax; /* [n_out] or NULL */
    /* or a draft pass (draft != NULL) */
    const sx_eagle3 *draft;
    sx_draft_seq seq;
    float *probs;    /* [n_out][top_k] or NULL */
    int32_t *tops;   /* [n_out][top_k] or NULL */
    float *sig;      /* [3n]: sigmoid(confidence, progress) pairs, then exp(remain); or NULL */
    int rows;
    bool done;
    sx_status st;
    char err[256];
    struct breq *next;
} breq;

typedef struct sx_batcher {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    breq *head, *tail;
    int n_pending;
    int n_decoding; /* sessions in their decode phase: each will send passes */
    bool running;
    sx_sched *sched; /* the combined passes' own */
    sx_graph *graph;
    int graph_seqs;  /* sequences the graph has room for */
    uint64_t n_passes, n_seqs;
    uint64_t decode_epoch; /* target passes of decoding sessions so far (alone or combined) */
} sx_batcher;

static struct timespec deadline_after(double ms);

static _Thread_local int tl_lock_depth;
static _Thread_local int tl_decoding; /* this thread's session is in its decode phase */

sx_status sx_engine_sync_init(sx_engine *e) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    const int rc = pthread_mutex_init(&e->dev_mu, &a);
    pthread_mutexattr_destroy(&a);
    if (rc) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "engine: cannot create its lock");
    sx_batcher *B = calloc(1, sizeof *B);
    if (!B) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "engine: out of memory");
    pthread_mutex_init(&B->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&B->cv, &ca);
    pthread_condattr_destroy(&ca);
    e->batcher = B;
    e->sync_ready = true;
    return SX_OK;
}

void sx_engine_sync_free(sx_engine *e) {
    if (!e->sync_ready) return;
    sx_batcher *B = e->batcher;
    sx_graph_destroy(B->graph);
    sx_sched_destroy(B->sched);
    pthread_cond_destroy(&B->cv);
    pthread_mutex_destroy(&B->mu);
    free(B);
    pthread_mutex_destroy(&e->dev_mu);
    e->sync_ready = false;
}

void sx_engine_lock(sx_engine *e) {
    pthread_mutex_lock(&e->dev_mu);
    tl_lock_depth++;
}

void sx_engine_unlock(sx_engine *e) {
    tl_lock_depth--;
    pthread_mutex_unlock(&e->dev_mu);
}

void sx_batch_enter(sx_engine *e) {
    sx_batcher *B = e->batcher;
    pthread_mutex_lock(&B->mu);
    B->n_decoding++;
    pthread_mutex_unlock(&B->mu);
    tl_decoding++;
}

void sx_batch_leave(sx_engine *e) {
    sx_batcher *B = e->batcher;
    pthread_mutex_lock(&B->mu);
    B->n_decoding--;
    pthread_cond_broadcast(&B->cv); /* the passes waiting for this session wait no more */
    pthread_mutex_unlock(&B->mu);
    tl_decoding--;
}

void sx_batch_prefill_turn(sx_engine *e, uint64_t *seen) {
    if (tl_lock_depth > 0 || tl_decoding > 0) return; /* waiting would hold up the very passes it waits for */
    sx_batcher *B = e->batcher;
    pthread_mutex_lock(&B->mu);
    if (*seen != SX_PREFILL_FIRST && e->cont_batching) {
        const struct timespec deadline = deadline_after(SX_PREFILL_TURN_MS);
        while (B->n_decoding > 0 && B->decode_epoch == *seen)
            if (pthread_cond_timedwait(&B->cv, &B->mu, &deadline) == ETIMEDOUT) break;
    }
    *seen = B->decode_epoch;
    pthread_mutex_unlock(&B->mu);
}

void sx_engine_batch_stats(const sx_engine *e, uint64_t *passes, uint64_t *seqs) {
    sx_batcher *B = e->batcher;
    pthread_mutex_lock(&B->mu);
    *passes = B->n_passes;
    *seqs = B->n_seqs;
    pthread_mutex_unlock(&B->mu);
}

void sx_engine_set_cont_batching(sx_engine *e, bool on) {
    sx_batcher *B = e->batcher;
    pthread_mutex_lock(&B->mu);
    e->cont_batching = on;
    pthread_mutex_unlock(&B->mu);
}

static void req_fail(breq *r, sx_status st) {
    r->st = st;
    snprintf(r->err, sizeof r->err, "%s", sx_last_error());
}

/* Reads rows row0.. (n_out of them, row_bytes each) of a shared output into
 * dst: from all, when the whole output was read back at once, else from the
 * device. */
static sx_status read_rows(const sx_tensor *t, const void *all, size_t row_bytes, int row0, int n_out, void *dst) {
    if (all) {
        memcpy(dst, (const char *)all + (size_t)row0 * row_bytes, row_bytes * (size_t)n_out);
        return SX_OK;
    }
    return sx_tensor_read_at(t, (size_t)row0 * row_bytes, dst, row_bytes * (size_t)n_out);
}

/* Reads a draft pass's outputs (row0.. of the shared ones) into its request;
 * all_probs / all_tops: the whole shared outputs when read back at once. */
static sx_status read_draft(const breq *r, const sx_draft_out *o, const float *all_probs, const int32_t *all_tops) {
    const int n = r->seq.b->n;
    if (r->probs && o->probs) SX_RETURN_IF_ERROR(read_rows(o->probs, all_probs, sizeof(float) * (size_t)o->probs->ne[0], o->row0, o->n_out, r->probs));
    if (r->tops && o->top) SX_RETURN_IF_ERROR(read_rows(o->top, all_tops, sizeof(int32_t) * (size_t)o->top->ne[0], o->row0, o->n_out, r->tops));
    if (r->sig && o->sig_01) {
        SX_RETURN_IF_ERROR(sx_tensor_read(o->sig_01, r->sig, sizeof(float) * 2 * (size_t)n));
        SX_RETURN_IF_ERROR(sx_tensor_read(o->sig_2, r->sig + 2 * n, sizeof(float) * (size_t)n));
    }
    return SX_OK;
}

/* A draft pass alone, on the session's own graph. */
static sx_status draft_alone(breq *r) {
    sx_session *s = r->s;
    sx_engine_lock(s->e);
    sx_draft_out o;
    sx_graph_reset(s->graph);
    sx_status st = sx_eagle3_build_multi(r->draft, 1, &r->seq, s->graph, &o);
    if (st == SX_OK) st = sx_sched_compute(s->sched, s->graph);
    if (st == SX_OK) st = read_draft(r, &o, NULL, NULL);
    sx_engine_unlock(s->e);
    return st;
}

static sx_status run_alone(breq *r) {
    return r->draft ? draft_alone(r) : sx_session_forward(r->s, r->b, r->logits, r->argmax);
}

/* Runs reqs[0..n) (all draft or all target passes) as one pass; the device lock is held. */
static sx_status run_combined(sx_engine *e, breq **reqs, int n) {
    sx_batcher *B = e->batcher;
    if (!B->sched) {
        sx_device *devs[SX_MAX_DEVICES + 2];
        SX_RETURN_IF_ERROR(sx_sched_create(devs, sx_engine_devices(e, devs), &B->sched));
    }
    if (B->graph_seqs < n) {
        sx_graph_destroy(B->graph);
        B->graph = NULL;
        B->graph_seqs = 0;
        const int L = e->model->hp.n_layer;
        SX_RETURN_IF_ERROR(sx_graph_create(sx_model_graph_size(e->model) + (16 * L + 48) * SX_BATCH_MAX_ROWS + 256, &B->graph));
        B->graph_seqs = SX_BATCH_MAX_ROWS;
    }
    sx_graph_reset(B->graph);
    if (reqs[0]->draft) {
        sx_draft_seq seqs[SX_BATCH_MAX_ROWS];
        sx_draft_out dout[SX_BATCH_MAX_ROWS];
        for (int i = 0; i < n; i++) seqs[i] = reqs[i]->seq;
        SX_RETURN_IF_ERROR(sx_eagle3_build_multi(reqs[0]->draft, n, seqs, B->graph, dout));
        SX_RETURN_IF_ERROR(sx_sched_compute(B->sched, B->graph));
        /* one readback of each shared output rather than one per sequence (each can be a device sync) */
        float *probs = NULL;
        int32_t *tops = NULL;
        sx_status st = SX_OK;
        if (dout[0].probs) {
            probs = malloc(sx_tensor_nbytes(dout[0].probs));
            tops = malloc(sx_tensor_nbytes(dout[0].top));
            if (!probs || !tops) st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "batch: out of memory");
            if (st == SX_OK) st = sx_tensor_read(dout[0].probs, probs, sx_tensor_nbytes(dout[0].probs));
            if (st == SX_OK) st = sx_tensor_read(dout[0].top, tops, sx_tensor_nbytes(dout[0].top));
        }
        for (int i = 0; i < n && st == SX_OK; i++) st = read_draft(reqs[i], &dout[i], probs, tops);
        free(probs), free(tops);
        return st;
    }
    sx_kv_cache *kvs[SX_BATCH_MAX_ROWS];
    sx_batch bs[SX_BATCH_MAX_ROWS];
    sx_forward_out fo[SX_BATCH_MAX_ROWS];
    for (int i = 0; i < n; i++) kvs[i] = reqs[i]->s->kv, bs[i] = *reqs[i]->b;
    SX_RETURN_IF_ERROR(sx_model_build_forward_multi(e->model, n, kvs, bs, B->graph, fo));
    SX_RETURN_IF_ERROR(sx_sched_compute(B->sched, B->graph));
    const size_t V = (size_t)e->model->hp.n_vocab;
    int32_t argmax[SX_BATCH_MAX_ROWS]; /* every row's, in one readback */
    if (sx_tensor_nbytes(fo[0].argmax) > sizeof argmax) return sx_set_error(SX_ERR_INVALID_ARG, "batch: more than %d output rows", SX_BATCH_MAX_ROWS);
    SX_RETURN_IF_ERROR(sx_tensor_read(fo[0].argmax, argmax, sx_tensor_nbytes(fo[0].argmax)));
    for (int i = 0; i < n; i++) {
        if (reqs[i]->argmax) memcpy(reqs[i]->argmax, argmax + fo[i].row0, sizeof(int32_t) * (size_t)fo[i].n_out);
        if (reqs[i]->logits) /* only what sampling sessions need: the rows are large */
            SX_RETURN_IF_ERROR(sx_tensor_read_at(fo[i].logits, (size_t)fo[i].row0 * V * sizeof(float), reqs[i]->logits, sizeof(float) * V * (size_t)fo[i].n_out));
        SX_RETURN_IF_ERROR(sx_forward_read_top(&fo[i], &bs[i]));
    }
    return SX_OK;
}

static bool compatible(const breq *a, const breq *b) {
    if (!a->draft != !b->draft) return false;
    return !a->draft || (a->draft == b->draft && sx_eagle3_batches_compatible(a->seq.b, b->seq.b));
}

/* Takes a group of compatible passes from the queue (the oldest draft pass
 * and the draft passes that fit with it, else the oldest target passes; at
 * most SX_BATCH_MAX_ROWS rows) and runs them; called and returns with B->mu
 * held. */
static void run_round(sx_engine *e) {
    sx_batcher *B = e->batcher;
    breq *reqs[SX_BATCH_MAX_ROWS];
    int n = 0, rows = 0;
    breq *first = B->head;
    for (breq *r = B->head; r; r = r->next)
        if (r->draft) {
            first = r;
            break;
        }
    for (breq **pp = &B->head, *prev = NULL; *pp && n < SX_BATCH_MAX_ROWS;) {
        breq *r = *pp;
        if (compatible(first, r) && (n == 0 || rows + r->rows <= SX_BATCH_MAX_ROWS)) {
            *pp = r->next;
            if (B->tail == r) B->tail = prev;
            B->n_pending--;
            rows += r->rows;
            reqs[n++] = r;
        } else {
            prev = r;
            pp = &r->next;
        }
    }
    B->running = true;
    pthread_mutex_unlock(&B->mu);

    sx_engine_lock(e);
    sx_status st = run_combined(e, reqs, n);
    if (st != SX_OK && n == 1) req_fail(reqs[0], st);
    if (st != SX_OK && n > 1) /* one sequence at a time: only the ones that fail alone fail */
        for (int i = 0; i < n; i++) {
            sx_status si = run_alone(reqs[i]);
            if (si != SX_OK) req_fail(reqs[i], si);
        }
    sx_engine_unlock(e);

    pthread_mutex_lock(&B->mu);
    if (st == SX_OK) {
        B->n_passes++;
        B->n_seqs += (uint64_t)n;
    }
    if (!reqs[0]->draft) B->decode_epoch++;
    for (int i = 0; i < n; i++) reqs[i]->done = true;
    B->running = false;
    pthread_cond_broadcast(&B->cv);
}

static struct timespec deadline_after(double ms) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    const long long ns = (long long)t.tv_nsec + (long long)(ms * 1e6);
    t.tv_sec += ns / 1000000000LL;
    t.tv_nsec = ns % 1000000000LL;
    return t;
}

/* Queues r and waits until a round has run it; the device lock must not be held. */
static sx_status submit(sx_engine *e, breq *r) {
    sx_batcher *B = e->batcher;
    pthread_mutex_lock(&B->mu);
    if (!e->cont_batching || (B->n_decoding < 2 && !B->head && !B->running)) { /* nobody to share with */
        pthread_mutex_unlock(&B->mu);
        const sx_status st = run_alone(r);
        if (!r->draft) {
            pthread_mutex_lock(&B->mu);
            B->decode_epoch++;
            pthread_cond_broadcast(&B->cv); /* a prefill waiting for its turn goes on */
            pthread_mutex_unlock(&B->mu);
        }
        return st;
    }
    if (B->tail) B->tail->next = r;
    else B->head = r;
    B->tail = r;
    B->n_pending++;
    const struct timespec deadline = deadline_after(SX_BATCH_WAIT_MS);
    bool late = false;
    while (!r->done) {
        if (!B->running && B->head && (late || B->n_pending >= B->n_decoding)) {
            run_round(e);
            continue;
        }
        if (late || B->running) pthread_cond_wait(&B->cv, &B->mu); /* a round ends with a broadcast */
        else if (pthread_cond_timedwait(&B->cv, &B->mu, &deadline) == ETIMEDOUT) late = true;
    }
    pthread_mutex_unlock(&B->mu);
    if (r->st != SX_OK) return sx_set_error(r->st, "%s", r->err);
    return SX_OK;
}

sx_status sx_session_forward_shared(sx_session *s, const sx_batch *b, float *out_logits, int32_t *out_argmax) {
    if (tl_lock_depth > 0) return sx_session_forward(s, b, out_logits, out_argmax);
    SX_RETURN_IF_ERROR(sx_model_check_batch(s->e->model, s->kv, b)); /* a bad pass fails alone, before it joins others */
    breq r = {.s = s, .b = b, .logits = out_logits, .argmax = out_argmax, .rows = b->n};
    return submit(s->e, &r);
}

sx_status sx_draft_forward_shared(sx_session *s, const sx_eagle3 *d, const sx_draft_seq *seq, float *probs, int32_t *tops, float *sig) {
    breq r = {.s = s, .draft = d, .seq = *seq, .probs = probs, .tops = tops, .sig = sig, .rows = seq->b->n};
    if (tl_lock_depth > 0) return draft_alone(&r);
    return submit(s->e, &r);
}
