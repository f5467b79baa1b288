/* core/exit.c — see exit.h. */
#include "core/exit.h"

#include <stdlib.h>
#include <string.h>

static const char *const g_delim_strings[] = {"\n\n", "\n\n\n", ".\n\n", ".\n\n\n", " \n\n", " \n\n\n"};

bool sx_exit_is_delim(const sx_exit_state *st, int32_t token) {
    for (int i = 0; i < st->n_delims; i++)
        if (st->delims[i] == token) return true;
    return false;
}

void sx_exit_scan(sx_exit_state *st, const int32_t *toks, int n) {
    for (int i = 0; i < n; i++) {
        if (toks[i] == st->think_open && st->think_open >= 0) st->thinking = true;
        if (toks[i] == st->think_close && st->think_close >= 0) st->thinking = false;
    }
}

sx_status sx_exit_init(sx_exit_state *st, const sx_exit_params *p, const sx_tokenizer *tok, const int32_t *prompt, int n_prompt) {
    memset(st, 0, sizeof *st);
    st->p = *p;
    st->tok = tok;
    st->reason = "none";
    st->think_open = sx_tokenizer_find(tok, "<think>");
    st->think_close = sx_tokenizer_find(tok, "</think>");
    /* delimiters: the strings the tokenizer encodes as one token */
    for (size_t i = 0; i < sizeof g_delim_strings / sizeof g_delim_strings[0]; i++) {
        int32_t *ids = NULL;
        int64_t n = 0;
        if (sx_tokenizer_encode(tok, g_delim_strings[i], strlen(g_delim_strings[i]), false, false, &ids, &n) == SX_OK && n == 1 &&
            st->n_delims < SX_EXIT_MAX_DELIMS && !sx_exit_is_delim(st, ids[0]))
            st->delims[st->n_delims++] = ids[0];
        free(ids);
    }
    sx_exit_scan(st, prompt, n_prompt);
    if (p->kind != SX_EXIT_NONE && st->think_close < 0)
        return sx_set_error(SX_ERR_UNSUPPORTED, "--exit %s: the model's vocabulary has no </think> token", sx_exit_kind_name(p->kind));
    if (p->kind == SX_EXIT_SPECEXIT && st->n_delims == 0)
        return sx_set_error(SX_ERR_UNSUPPORTED, "--exit specexit: no paragraph delimiter (\"\\n\\n\") is a single token in this vocabulary");
    if (p->alpha <= 0 || p->alpha > 1) return sx_set_error(SX_ERR_INVALID_ARG, "--exit-alpha must be in (0, 1]");
    return SX_OK;
}

void sx_exit_observe(sx_exit_state *st, const float raw[3]) {
    if (!st->thinking) return; /* only updated while thinking */
    memcpy(st->last_raw, raw, sizeof st->last_raw);
    for (int j = 0; j < 3; j++) st->ewma[j] = st->have_ewma ? st->p.alpha * raw[j] + (1 - st->p.alpha) * st->ewma[j] : raw[j];
    st->have_ewma = true;
}

static bool signals_say_done(const sx_exit_state *st) {
    return st->have_ewma && st->ewma[0] > st->p.conf && st->ewma[1] > st->p.progress && st->ewma[2] < st->p.remain;
}

/* cut after toks[j]; the bonus slot becomes </think> (or the next token, when j is the bonus) */
static int cut_after(sx_exit_state *st, int32_t *toks, int n, int j, const char *why) {
    st->reason = why;
    st->exited = true;
    if (j + 1 < n) {
        toks[j + 1] = st->think_close;
        return j + 2;
    }
    st->force_end_next = true;
    return n;
}

int sx_exit_apply(sx_exit_state *st, int32_t *toks, int n, bool speculative) {
    if (!st->thinking || (st->p.kind == SX_EXIT_NONE && st->p.reasoning_budget < 0)) return n;
    if (st->force_end_next) {
        st->force_end_next = false;
        toks[0] = st->think_close;
        return 1;
    }
    /* a natural end of thinking in the step wins */
    for (int i = 0; i < n; i++)
        if (toks[i] == st->think_close) return n;
    /* hard budget: toks[j] is the last thinking token allowed */
    if (st->p.reasoning_budget >= 0) {
        const int j = st->p.reasoning_budget - st->thinking_tokens - 1;
        if (j < 0) {
            st->reason = "budget";
            st->exited = true;
            toks[0] = st->think_close;
            return 1;
        }
        if (j < n) return cut_after(st, toks, n, j, "budget");
    }
    const int n_acc = speculative ? n - 1 : n; /* tokens eligible for a cut */
    if (st->p.kind == SX_EXIT_SPECEXIT && signals_say_done(st)) {
        for (int i = 0; i < n_acc; i++)
            if (sx_exit_is_delim(st, toks[i])) return cut_after(st, toks, n, i, "signals");
    }
    if (st->p.kind == SX_EXIT_FIRST_ANSWER) {
        /* exit at the first delimiter after the thinking text says "answer is" */
        bool seen = st->answer_seen;
        char buf[sizeof st->text + 512];
        int len = st->text_len;
        memcpy(buf, st->text, (size_t)len);
        for (int i = 0; i < n; i++) {
            if (seen && sx_exit_is_delim(st, toks[i])) return cut_after(st, toks, n, i, "first-answer");
            size_t pl = 0;
            const char *piece = sx_tokenizer_piece(st->tok, toks[i], &pl);
            if (piece && pl < 256 && len + (int)pl < (int)sizeof buf) {
                memcpy(buf + len, piece, pl);
                len += (int)pl;
                buf[len] = 0;
                if (strstr(buf, "answer is")) seen = true;
            }
        }
    }
    return n;
}

void sx_exit_account(sx_exit_state *st, int32_t token) {
    if (token == st->think_open && st->think_open >= 0) {
        st->thinking = true;
        return;
    }
    if (token == st->think_close && st->think_close >= 0) {
        if (st->thinking && !st->exited) st->reason = "natural";
        st->thinking = false;
        return;
    }
    if (!st->thinking) return;
    st->thinking_tokens++;
    size_t pl = 0;
    const char *piece = sx_tokenizer_piece(st->tok, token, &pl);
    if (!piece) return;
    /* keep the tail of the thinking text for the first-answer baseline */
    for (size_t i = 0; i < pl; i++) {
        if (st->text_len == (int)sizeof st->text - 1) {
            memmove(st->text, st->text + 128, sizeof st->text - 1 - 128);
            st->text_len -= 128;
        }
        st->text[st->text_len++] = piece[i];
    }
    st->text[st->text_len] = 0;
    if (strstr(st->text, "answer is")) st->answer_seen = true;
}
