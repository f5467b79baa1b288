/* core/spec.h — speculative decoding for one session: EAGLE-3 tree drafting
 * (EAGLE-2 dynamic tree) or a classic draft model (chain), verification of
 * the whole tree in one target pass with a tree mask, lossless acceptance
 * (greedy and sampling) and KV compaction on the device.
 *
 * Both draft kinds build the same EAGLE-2 dynamic tree (a chain when K = 1).
 * Per step: sx_spec_step(root) drafts a tree after `root` (the last token
 * decided, not yet in the target's cache), verifies it and proposes the
 * accepted tokens plus a bonus token; the caller may shorten the proposal
 * (exit policy) and then calls sx_spec_commit. Only token ids, a few
 * probabilities and the three exit signals cross to the host. */
#ifndef SX_SPEC_H
#define SX_SPEC_H

#include "core/constraint.h"
#include "core/engine_internal.h"

#define SX_SPEC_MAX_NODES 256
#define SX_SPEC_MAX_DEPTH 32
/* Rows of a verification pass (root + nodes). Backends compute batches up to
 * this size exactly as single tokens, so greedy speculation reproduces plain
 * greedy decoding bit for bit. */
#define SX_SPEC_MAX_VERIFY 64

typedef struct sx_spec sx_spec;

SX_MUST_USE sx_status sx_spec_create(sx_session *s, const sx_spec_params *p, sx_spec **out);
void sx_spec_destroy(sx_spec *sp);
/* Applies the KV moves of the last commit now (they normally run at the start
 * of the next verify pass), so the session's context holds its committed
 * tokens in order when generation ends. */
SX_MUST_USE sx_status sx_spec_finish(sx_spec *sp);

/* Evaluates the prompt through the target (and the draft); fills the last
 * token's logits [n_vocab]. */
SX_MUST_USE sx_status sx_spec_prefill(sx_spec *sp, const int32_t *prompt, int n, float *out_logits);

typedef struct sx_spec_proposal {
    int32_t tokens[SX_SPEC_MAX_DEPTH + 1]; /* accepted draft tokens, then the bonus */
    int n;                                 /* accepted + 1 */
    bool have_signals;                     /* signals of the tokens committed by the previous step */
    float signals[3];                      /* confidence, progress, remain (mean over those tokens) */
    int n_drafted;
} sx_spec_proposal;

/* One step after `root`. smp == NULL, or greedy with an argmax-only sampler:
 * greedy acceptance on the device's argmax; else the exact sampling
 * acceptance with the sampler's distribution (greedy with a repetition
 * penalty: its one token). history: the
 * committed tokens (for repetition penalties). con (may be NULL): a grammar
 * after the committed tokens and root. Active, each row's choice is the
 * filtered one (sx_sampler_distribution_filtered, greedy or sampled) along
 * the path, and whole logit rows are read. Waiting for its start token
 * (</think>), the accepted path ends there: that token becomes the bonus, so
 * the tokens after it are chosen under the grammar in the next step. Either
 * way the output is what plain decoding under the grammar gives. */
SX_MUST_USE sx_status sx_spec_step(sx_spec *sp, int32_t root, sx_sampler *smp, bool greedy, sx_constraint *con, sx_spec_proposal *out);
/* Commits the first n_accepted proposed tokens and `bonus` as the next root
 * (n_accepted <= the proposal's accepted count; bonus may differ from the
 * proposal's, e.g. a forced end-of-thinking token). */
void sx_spec_commit(sx_spec *sp, int n_accepted, int32_t bonus);

/* Logprobs: every verification reads whole logit rows (set before the first step). */
void sx_spec_read_rows(sx_spec *sp, bool on);
/* With whole rows read: the target row [n_vocab] that chose token i of the
 * last proposal (the root's row for i = 0, else the row of accepted token
 * i - 1: also the row of a token the caller put in the place of proposal
 * token i, e.g. a forced </think>); NULL otherwise. Valid until the next step. */
const float *sx_spec_row(const sx_spec *sp, int i);

void sx_spec_timing(const sx_spec *sp, double *draft_ms, double *verify_ms);

#endif
