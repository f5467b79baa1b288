/* core/constraint.h — a grammar over tokens: which token may come next in
 * constrained generation, and following the tokens that did.
 *
 * A token is allowed when its bytes continue the grammar's text; an
 * end-of-generation token when the text is a whole sentence; other control
 * tokens never. For a reasoning model the constraint waits for the end of
 * the thinking section: every token is allowed until `</think>`, then the
 * grammar starts, and whitespace before its first character is allowed
 * (the model's "\n\n" after `</think>`). */
#ifndef SX_CONSTRAINT_H
#define SX_CONSTRAINT_H

#include "core/grammar.h"
#include "core/tokenizer.h"

typedef struct sx_constraint {
    sx_gmatch *m;
    const sx_tokenizer *tok;
    int32_t wait_for; /* the grammar starts after this token; -1: it has started */
    bool lead_ws;     /* whitespace before the grammar's first character is skipped */
    bool started;     /* the grammar has taken a character */
    bool failed;      /* the grammar ran out of room (sx_gmatch_failed): every token is refused from then on */
    int32_t trigger;  /* a lazy grammar: it starts after each of these tokens and, once its text is complete,
                         lets the text go free until the next one (-1: not lazy) */
} sx_constraint;

/* A constraint at the start of g (owned by the caller, outliving c).
 * wait_for: the token after which the grammar starts (</think> while a
 * thinking section is open), or -1. */
SX_MUST_USE sx_status sx_constraint_init(sx_constraint *c, const sx_grammar *g, const sx_tokenizer *tok, int32_t wait_for);
/* A lazy constraint: free text, the grammar after each `trigger` token until its text is complete (llama.cpp's
 * lazy grammars; a tool call's body after <tool_call>). */
SX_MUST_USE sx_status sx_constraint_init_lazy(sx_constraint *c, const sx_grammar *g, const sx_tokenizer *tok, int32_t trigger);
void sx_constraint_free(sx_constraint *c);
SX_MUST_USE sx_status sx_constraint_copy(sx_constraint *dst, const sx_constraint *src);
/* Whether the grammar applies to the next token (false while it waits). */
static inline bool sx_constraint_active(const sx_constraint *c) { return c && c->m && c->wait_for < 0; }
bool sx_constraint_allows(sx_constraint *c, int32_t token);
/* Follows one generated token; false if the grammar refuses it. */
bool sx_constraint_accept(sx_constraint *c, int32_t token);
/* SX_ERR_UNSUPPORTED with a message when the grammar ran out of room, else SX_OK. */
SX_MUST_USE sx_status sx_constraint_check(const sx_constraint *c);
/* sx_token_filter for the sampler (ctx = the constraint) */
bool sx_constraint_filter(void *ctx, int32_t token);

#endif
