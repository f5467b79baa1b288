/* core/constraint.c — see constraint.h. */
#include "core/constraint.h"

#include <string.h>

sx_status sx_constraint_init(sx_constraint *c, const sx_grammar *g, const sx_tokenizer *tok, int32_t wait_for) {
    memset(c, 0, sizeof *c);
    c->tok = tok;
    c->wait_for = wait_for;
    c->lead_ws = wait_for >= 0;
    c->trigger = -1;
    return sx_gmatch_create(g, &c->m);
}

sx_status sx_constraint_init_lazy(sx_constraint *c, const sx_grammar *g, const sx_tokenizer *tok, int32_t trigger) {
    SX_RETURN_IF_ERROR(sx_constraint_init(c, g, tok, trigger));
    c->lead_ws = false;
    c->trigger = trigger;
    return SX_OK;
}

void sx_constraint_free(sx_constraint *c) {
    if (!c) return;
    sx_gmatch_destroy(c->m);
    c->m = NULL;
}

sx_status sx_constraint_copy(sx_constraint *dst, const sx_constraint *src) {
    SX_RETURN_IF_ERROR(sx_gmatch_copy(dst->m, src->m));
    sx_gmatch *m = dst->m; /* every other field is plain state */
    *dst = *src;
    dst->m = m;
    return SX_OK;
}

/* the token's bytes the grammar sees (leading whitespace skipped before the
 * first character where asked); NULL for tokens that are not text */
static const char *text_of(const sx_constraint *c, int32_t token, size_t *len) {
    const int type = sx_tokenizer_token_type(c->tok, token);
    if (type == SX_TOKEN_TYPE_CONTROL || type == SX_TOKEN_TYPE_UNUSED || type < 0) return NULL;
    const char *p = sx_tokenizer_piece(c->tok, token, len);
    if (!p || !*len) return NULL;
    if (c->lead_ws && !c->started)
        while (*len && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) p++, (*len)--;
    return p;
}

sx_status sx_constraint_check(const sx_constraint *c) {
    if (!c || !c->failed) return SX_OK;
    return sx_set_error(SX_ERR_UNSUPPORTED, "grammar: too ambiguous for the text so far (more than %d parse stacks, or %zu stack elements "
                                            "for one token); write it with fewer overlapping alternatives",
                        SX_GRAMMAR_MAX_STACKS, SX_GRAMMAR_MAX_WORK);
}

bool sx_constraint_allows(sx_constraint *c, int32_t token) {
    if (!sx_constraint_active(c)) return true;
    if (c->failed) return false;
    if (sx_tokenizer_is_eog(c->tok, token)) return sx_gmatch_can_end(c->m);
    size_t len;
    const char *p = text_of(c, token, &len);
    if (!p) return false;
    if (len == 0) return true;
    const bool ok = sx_gmatch_allows(c->m, p, len);
    if (!ok && sx_gmatch_failed(c->m)) c->failed = true;
    return ok;
}

bool sx_constraint_accept(sx_constraint *c, int32_t token) {
    if (!c || !c->m) return true;
    if (c->wait_for >= 0) {
        if (token == c->wait_for) c->wait_for = -1;
        return true;
    }
    if (sx_tokenizer_is_eog(c->tok, token)) return sx_gmatch_can_end(c->m);
    size_t len;
    const char *p = text_of(c, token, &len);
    if (!p) return false;
    if (len == 0) return true;
    if (!sx_gmatch_accept(c->m, p, len)) {
        if (sx_gmatch_failed(c->m)) c->failed = true;
        return false;
    }
    c->started = true;
    if (c->trigger >= 0 && sx_gmatch_must_end(c->m)) { /* lazy: the grammar's text is complete, free again until the next trigger */
        sx_gmatch_reset(c->m);
        c->wait_for = c->trigger;
        c->started = false;
    }
    return true;
}

bool sx_constraint_filter(void *ctx, int32_t token) { return sx_constraint_allows(ctx, token); }
