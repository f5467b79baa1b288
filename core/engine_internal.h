/* core/engine_internal.h — engine and session internals shared by the core/ sources. */
#ifndef SX_ENGINE_INTERNAL_H
#define SX_ENGINE_INTERNAL_H

#include <pthread.h>

#include "backends/backend.h"
#include "core/model.h"
#include "core/sampler.h"
#include "core/specexit.h"
#include "core/tokenizer.h"

struct sx_eagle3;
struct sx_draft_seq;

struct sx_engine {
    sx_device *dev;            /* the target's device (a split's last one: the output layer) */
    sx_device *split[SX_MAX_DEVICES]; /* a split's other devices, in list order */
    int n_split;
    char devices_desc[256];    /* "A + B" for a split */
    sx_device *draft_dev;      /* NULL: the draft shares dev */
    struct sx_eagle3 *eagle;   /* EAGLE-3 draft or NULL */
    sx_model *draft;           /* classic draft model or NULL */
    sx_device *cpu; /* fallback for ops the device lacks (NULL when dev is the CPU) */
    sx_model *model;
    sx_tokenizer *tok;
    int chat_kind;
    char backend[128];
    char *default_system;
    /* concurrency (core/batch.c) */
    pthread_mutex_t dev_mu;   /* recursive: held for every device call of a session */
    struct sx_batcher *batcher;
    bool sync_ready;
    bool cont_batching;
};

struct sx_session {
    sx_engine *e;
    sx_kv_cache *kv;
    sx_sched *sched;
    sx_graph *graph;
    int n_past;
    int n_batch;
    int32_t *history; /* [n_ctx] tokens in the context */
    const sx_token_logprob *lp; /* the token being reported to a generation's callback (logprobs), else NULL */
};

/* Every device a session's scheduler works with: the target's (a split's too),
 * the draft's, the CPU fallback. Returns the count (<= SX_MAX_DEVICES + 2). */
int sx_engine_devices(const sx_engine *e, sx_device **out);
sx_status sx_tokenizer_from_gguf(const sx_gguf *g, sx_tokenizer **out);
double sx_now_ms(void);

/* One forward pass over b (b->n_past must equal s->n_past); reads back the
 * logits of the requested rows ([n_out][n_vocab], may be NULL) and/or their
 * argmax (may be NULL). Does not advance n_past. */
SX_MUST_USE sx_status sx_session_forward(sx_session *s, const sx_batch *b, float *out_logits, int32_t *out_argmax);
/* Sampling from s's logits can read each row's SX_SAMPLER_TOP_MAX largest
 * instead of the row (sx_sampler_takes_top): worth it where the logits are
 * made on a GPU (the row would cross the bus). On the CPU there is no bus
 * to save and no measurable difference (SmolLM2 sampled decode, 3 runs
 * alternated on an idle machine: 272-292 tok/s either way), so the CPU
 * keeps whole rows. SPECEXIT_SAMPLE_TOP=1 forces it (tests). */
bool sx_session_samples_top(const sx_session *s, const struct sx_sampler *smp);
/* When b asked for them (b->top_ids), reads its rows' largest logits. */
SX_MUST_USE sx_status sx_forward_read_top(const sx_forward_out *fo, const sx_batch *b);

/* ---- concurrency (core/batch.c) ---- */
SX_MUST_USE sx_status sx_engine_sync_init(sx_engine *e);
void sx_engine_sync_free(sx_engine *e);
/* The device lock, recursive; every device call of a session holds it. */
void sx_engine_lock(sx_engine *e);
void sx_engine_unlock(sx_engine *e);
/* A generation enters / leaves its decode phase: the batcher waits for the
 * passes of the sessions in it. */
void sx_batch_enter(sx_engine *e);
void sx_batch_leave(sx_engine *e);
/* Before each prompt chunk (not holding the device lock): from the second
 * chunk on, waits (up to 100 ms) until the sessions in their decode phase
 * have completed a target pass since the previous chunk, so that a long
 * prompt does not hold them up for all its chunks. *seen: SX_PREFILL_FIRST
 * before the first chunk; the function keeps it. No wait in a thread whose
 * own session decodes, or under the device lock. */
#define SX_PREFILL_FIRST UINT64_MAX
void sx_batch_prefill_turn(sx_engine *e, uint64_t *seen);
/* As sx_session_forward (without the device lock held), but combined with
 * the passes other sessions of the engine send at the same time. */
SX_MUST_USE sx_status sx_session_forward_shared(sx_session *s, const sx_batch *b, float *out_logits, int32_t *out_argmax);
/* One EAGLE-3 draft pass of s, combined likewise with other sessions'
 * compatible draft passes; reads the wanted rows' top candidates (tops
 * [n_out][top_k]) with their draft probabilities (probs [n_out][top_k]) and
 * the signals (sig [3n]); each may be NULL. */
SX_MUST_USE sx_status sx_draft_forward_shared(sx_session *s, const struct sx_eagle3 *d, const struct sx_draft_seq *seq, float *probs,
                                              int32_t *tops, float *sig);

#endif
