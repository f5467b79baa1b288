/* core/exit.h — ending the thinking section: SpecExit's signal policy, a hard
 * thinking budget, and the "first stated answer" baseline.
 *
 * The decode loop hands each step's new tokens to sx_exit_apply before it
 * commits them: toks[0..n-1] where, with speculation, the last one is the
 * bonus token and the others were accepted from the draft. The policy may
 * cut them after a paragraph delimiter and put the end-of-thinking token in
 * the bonus's place. Signals observed with sx_exit_observe come from the
 * tokens committed by earlier steps (the one-step lag of SPECEXIT.md). */
#ifndef SX_EXIT_H
#define SX_EXIT_H

#include "core/specexit.h"
#include "core/tokenizer.h"

#define SX_EXIT_MAX_DELIMS 8

typedef struct sx_exit_state {
    sx_exit_params p;
    bool thinking;
    int32_t think_open, think_close; /* <think>, </think> ids (-1 when absent) */
    int32_t delims[SX_EXIT_MAX_DELIMS];
    int n_delims;
    float ewma[3];
    bool have_ewma;
    float last_raw[3];
    int thinking_tokens;
    bool force_end_next;   /* a cut point was the bonus token: end at the next token */
    bool exited;
    const char *reason;    /* why the thinking ended */
    /* first-answer baseline: recent thinking text */
    char text[256];
    int text_len;
    bool answer_seen;
    const sx_tokenizer *tok;
} sx_exit_state;

/* Finds the delimiter and think tokens; thinking starts true when the prompt
 * leaves a <think> section open. */
SX_MUST_USE sx_status sx_exit_init(sx_exit_state *st, const sx_exit_params *p, const sx_tokenizer *tok, const int32_t *prompt, int n_prompt);
/* Follows <think> / </think> in more context tokens (in order after the ones
 * seen so far) to know whether a thinking section is open. */
void sx_exit_scan(sx_exit_state *st, const int32_t *toks, int n);
/* Signals (confidence, progress, remain) of the tokens committed last step. */
void sx_exit_observe(sx_exit_state *st, const float raw[3]);
/* Applies the policy to the step's tokens (last = bonus; `speculative`: the
 * others were accepted draft tokens). Returns the new count; toks may be cut
 * and its last entry replaced by </think>. */
int sx_exit_apply(sx_exit_state *st, int32_t *toks, int n, bool speculative);
/* Tracks thinking state and text for one emitted token. */
void sx_exit_account(sx_exit_state *st, int32_t token);
bool sx_exit_is_delim(const sx_exit_state *st, int32_t token);

#endif
