/* core/sampler.h — token sampling from logits (llama.cpp's order):
 * repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw.
 * temp <= 0 is greedy (argmax, lowest id on ties). */
#ifndef SX_SAMPLER_H
#define SX_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/specexit.h"



typedef struct sx_rng { uint64_t s[2]; } sx_rng;
void sx_rng_seed(sx_rng *r, uint64_t seed);
/* Uniform in [0, 1). */
double sx_rng_uniform(sx_rng *r);

typedef struct sx_sampler sx_sampler;
SX_MUST_USE sx_status sx_sampler_create(const sx_sampler_params *p, int n_vocab, sx_sampler **out);
void sx_sampler_destroy(sx_sampler *s);

/* Turns logits into the sampling distribution after penalties, truncation and
 * temperature: out_ids[0..*out_n) with probabilities out_p (sum 1, sorted by
 * probability desc, ties by id). Greedy gives one id with p = 1. The arrays
 * are owned by the sampler and valid until the next call. history: recent
 * tokens for the repetition penalty. */
SX_MUST_USE sx_status sx_sampler_distribution(sx_sampler *s, const float *logits, const int32_t *history, int n_history,
                                              const int32_t **out_ids, const float **out_p, int *out_n);
/* The distribution from a row's k largest logits alone (ids by logit
 * descending, ties by lower id, as TOP_K gives them; vals their logits):
 * exactly what sx_sampler_distribution gives for the whole row, when
 * sx_sampler_takes_top(s, k): sampling (temp > 0) with 0 < top_k <= k and
 * no repetition penalty (SPECEXIT_SAMPLE_FULL=1 turns this path off). A GPU
 * then sends k values per row instead of the vocabulary (the engine takes
 * this path where the logits are made on a GPU: sx_session_samples_top). */
#define SX_SAMPLER_TOP_MAX 64
bool sx_sampler_takes_top(const sx_sampler *s, int k);
SX_MUST_USE sx_status sx_sampler_distribution_top(sx_sampler *s, const int32_t *ids, const float *vals, int k, const int32_t **out_ids,
                                                  const float **out_p, int *out_n);
SX_MUST_USE sx_status sx_sampler_sample_top(sx_sampler *s, const int32_t *ids, const float *vals, int k, int32_t *out_token);
/* Draws one token (distribution, then an inverse-CDF draw with the seeded RNG). */
SX_MUST_USE sx_status sx_sampler_sample(sx_sampler *s, const float *logits, const int32_t *history, int n_history, int32_t *out_token);
/* Constrained generation (a grammar): the distribution sx_sampler_distribution
 * gives when every token allow() refuses has logit -inf, i.e. the filter
 * comes first, then penalty, top-k, top-p, min-p, temperature. Greedy checks
 * the argmax first; otherwise candidates are tried in logit order until
 * top-k are allowed (the whole vocabulary without top-k), so the cost
 * follows the tokens refused, not the vocabulary. SX_ERR_INVALID_ARG when no
 * token is allowed. */
typedef bool (*sx_token_filter)(void *ctx, int32_t token);
SX_MUST_USE sx_status sx_sampler_distribution_filtered(sx_sampler *s, const float *logits, const int32_t *history, int n_history,
                                                       sx_token_filter allow, void *ctx, const int32_t **out_ids, const float **out_p,
                                                       int *out_n);
SX_MUST_USE sx_status sx_sampler_sample_filtered(sx_sampler *s, const float *logits, const int32_t *history, int n_history,
                                                 sx_token_filter allow, void *ctx, int32_t *out_token);
sx_rng *sx_sampler_rng(sx_sampler *s);
/* Greedy with nothing that changes the logits first (no repetition penalty,
 * no logit bias): the row's argmax is the token, so a device may send just it. */
bool sx_sampler_argmax_only(const sx_sampler *s);
int32_t sx_argmax(const float *x, int n);
/* token's log-probability in a row of V raw logits and the row's n_top
 * (<= SX_MAX_TOP_LOGPROBS) most likely tokens' (log-softmax, the sum in
 * double; ties by lower id) */
void sx_logprob_row(const float *row, int V, int32_t token, int n_top, sx_token_logprob *out);

#endif
