/* tools/server_logprobs.h — log-probabilities in the server's answers:
 * OpenAI's chat form ({"content": [{"token", "logprob", "bytes",
 * "top_logprobs": [...]}]}) and the completions' form ({"tokens",
 * "token_logprobs", "top_logprobs", "text_offset"}, with the echoed prompt's
 * tokens first). A token's text is its vocabulary entry (control tokens
 * such as <|im_end|> included) as valid UTF-8, or "token_id:ID" with as_ids
 * (vLLM's return_tokens_as_token_ids); its "bytes" the raw ones. */
#ifndef SX_SERVER_LOGPROBS_H
#define SX_SERVER_LOGPROBS_H

#include <stdbool.h>

#include "core/specexit.h"

struct cJSON;

/* the generated tokens' logprobs, each with its byte offset in the answer's text */
typedef struct sx_lp_list {
    sx_token_logprob *v;
    int *offset;
    int n, cap;
} sx_lp_list;

bool sx_lp_push(sx_lp_list *l, const sx_token_logprob *lp, int offset);
/* A prompt given as token ids as echoed text: its text tokens detokenized (control tokens such as BOS
 * are not text); malloc'ed, NULL on failure. */
char *sx_lp_prompt_text(const sx_engine *e, const int32_t *ids, int n);

void sx_lp_free(sx_lp_list *l);
/* chat: {"content": [v[from..to)]} */
struct cJSON *sx_lp_chat_json(const sx_engine *e, bool as_ids, const sx_lp_list *l, int from, int to);
/* completions: v[from..to) (l may be NULL: none), after the echoed prompt's
 * tokens when prompt is not NULL: prompt[k]'s logprob is plp[k - 1] (the
 * first token's is null, as OpenAI gives it), their text offsets into
 * prompt_text (the echoed text) */
struct cJSON *sx_lp_completion_json(const sx_engine *e, bool as_ids, const int32_t *prompt, int n_prompt, const char *prompt_text,
                                    const sx_token_logprob *plp,
                                    const sx_lp_list *l, int from, int to);

#endif
