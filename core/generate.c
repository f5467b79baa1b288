/* core/generate.c — the decode loop, one for every mode.
 *
 * Each step proposes new tokens (plain: one sampled token; speculative: the
 * accepted draft tokens plus a bonus token), the exit policy may cut them and
 * put </think> in the bonus's place, then they are committed and emitted.
 * Greedy plain decoding reads back only the argmax (4 bytes per step). */
#include <stdlib.h>
#include <string.h>

#include "core/constraint.h"
#include "core/eagle3.h"
#include "core/engine_internal.h"
#include "core/exit.h"
#include "core/spec.h"

void sx_generate_params_init(sx_generate_params *p) {
    memset(p, 0, sizeof *p);
    p->n_predict = 128;
    sx_sampler_params_init(&p->sampling);
    p->spec.kind = SX_SPEC_NONE;
    p->spec.draft_max = 5;
    p->spec.draft_topk = 4;
    p->spec.draft_nodes = 16;
    p->spec.p_min = -1.0f;
    p->spec.ngram_min = 2;
    p->spec.ngram_max = 4;
    p->exit.kind = SX_EXIT_NONE;
    p->exit.conf = 0.8f;
    p->exit.progress = 0.3f;
    p->exit.remain = 200.0f;
    p->exit.alpha = 0.1f;
    p->exit.reasoning_budget = -1;
}

void sx_generate_stats_free(sx_generate_stats *st) {
    if (!st) return;
    free(st->trace);
    st->trace = NULL;
    st->n_trace = 0;
}

const char *sx_stop_reason_str(sx_stop_reason r) {
    switch (r) {
    case SX_STOP_EOG: return "eog";
    case SX_STOP_LENGTH: return "length";
    case SX_STOP_CONTEXT: return "context";
    case SX_STOP_CALLBACK: return "callback";
    }
    return "unknown";
}

static const char *const g_spec_names[] = {"none", "eagle3", "draft", "ngram"};
static const char *const g_exit_names[] = {"none", "specexit", "budget", "first-answer"};

const char *sx_spec_kind_name(sx_spec_kind k) { return (unsigned)k < 4 ? g_spec_names[k] : "unknown"; }
const char *sx_exit_kind_name(sx_exit_kind k) { return (unsigned)k < 4 ? g_exit_names[k] : "unknown"; }

sx_status sx_spec_kind_from_name(const char *name, sx_spec_kind *out) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, g_spec_names[i])) return *out = (sx_spec_kind)i, SX_OK;
    return sx_set_error(SX_ERR_INVALID_ARG, "unknown --spec '%s' (eagle3, draft, ngram, none)", name);
}

sx_status sx_exit_kind_from_name(const char *name, sx_exit_kind *out) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, g_exit_names[i])) return *out = (sx_exit_kind)i, SX_OK;
    return sx_set_error(SX_ERR_INVALID_ARG, "unknown --exit '%s' (specexit, budget, first-answer, none)", name);
}

typedef struct loop_state {
    sx_session *s;
    const sx_generate_params *p;
    sx_token_callback cb;
    void *user;
    sx_generate_stats *st;
    sx_exit_state ex;
    bool done;
} loop_state;

/* Emits one token; false when generation ends here. */
static bool emit(loop_state *L, int32_t tok) {
    sx_generate_stats *st = L->st;
    if (L->p->n_predict >= 0 && st->n_generated_tokens >= L->p->n_predict) {
        st->stop_reason = SX_STOP_LENGTH;
        return false;
    }
    if (L->ex.exited && st->exit_token_index < 0 && tok == L->ex.think_close) st->exit_token_index = st->n_generated_tokens;
    st->n_generated_tokens++;
    sx_exit_account(&L->ex, tok);
    const sx_tokenizer *tk = L->s->e->tok;
    if (L->cb) {
        size_t len = 0;
        /* control tokens (<|im_end|>, <|eot_id|>) are not text; user-defined ones (<think>) are */
        const char *piece = sx_tokenizer_token_type(tk, tok) == SX_TOKEN_TYPE_CONTROL ? NULL : sx_tokenizer_piece(tk, tok, &len);
        if (!L->cb(tok, piece ? piece : "", piece ? len : 0, L->user)) {
            st->stop_reason = SX_STOP_CALLBACK;
            return false;
        }
    }
    if (sx_tokenizer_is_eog(tk, tok) && !L->p->ignore_eos) {
        st->stop_reason = SX_STOP_EOG;
        return false;
    }
    return true;
}

static void trace(loop_state *L, const float raw[3]) {
    if (!L->p->trace_signals || !L->ex.thinking) return;
    sx_generate_stats *st = L->st;
    if ((st->n_trace & (st->n_trace - 1)) == 0) { /* grow at powers of two */
        void *p = realloc(st->trace, sizeof *st->trace * (size_t)(st->n_trace ? 2 * st->n_trace : 16));
        if (!p) return;
        st->trace = p;
    }
    struct sx_signal_step *e = &st->trace[st->n_trace++];
    e->token_index = st->n_generated_tokens;
    memcpy(e->raw, raw, sizeof e->raw);
    memcpy(e->smooth, L->ex.ewma, sizeof e->smooth);
}

const sx_token_logprob *sx_generate_logprob(const sx_session *s) { return s->lp; }

sx_status sx_generate(sx_session *s, const int32_t *prompt, int n_prompt, const sx_generate_params *p, sx_token_callback cb, void *user,
                      sx_generate_stats *st) {
    memset(st, 0, sizeof *st);
    st->exit_token_index = -1;
    const int V = s->e->model->hp.n_vocab;
    if (n_prompt < 1) return sx_set_error(SX_ERR_INVALID_ARG, "generate: empty prompt");
    if ((int64_t)s->n_past + n_prompt > s->kv->n_ctx)
        return sx_set_error(SX_ERR_CONTEXT_FULL, "the prompt has %d tokens but only %d of the %d context slots are free (raise --ctx-size)",
                            n_prompt, s->kv->n_ctx - s->n_past, s->kv->n_ctx);
    if (p->logprobs && (p->top_logprobs < 0 || p->top_logprobs > SX_MAX_TOP_LOGPROBS))
        return sx_set_error(SX_ERR_INVALID_ARG, "top_logprobs must be in [0, %d], got %d", SX_MAX_TOP_LOGPROBS, p->top_logprobs);
    if (p->exit.kind == SX_EXIT_SPECEXIT && p->spec.kind != SX_SPEC_EAGLE3)
        return sx_set_error(SX_ERR_INVALID_ARG, "--exit specexit needs --spec eagle3 (the signals come from the EAGLE-3 draft)");
    if (p->exit.kind == SX_EXIT_SPECEXIT && s->e->eagle && s->e->eagle->hp.n_signals != 3)
        return sx_set_error(SX_ERR_INVALID_ARG, "--exit specexit: the draft has no signal rows (eagle3.signal_rows = 0)");
    const int n_past0 = s->n_past;
    const bool greedy = p->sampling.temp <= 0;
    const bool argmax_only = greedy && p->sampling.repeat_penalty == 1.0f && !p->sampling.n_logit_bias; /* sx_sampler_argmax_only */
    loop_state L = {.s = s, .p = p, .cb = cb, .user = user, .st = st};
    float *logits = malloc(sizeof(float) * (size_t)V);
    sx_sampler *smp = NULL;
    sx_spec *spec = NULL;
    sx_status rc = logits ? sx_sampler_create(&p->sampling, V, &smp) : sx_set_error(SX_ERR_OUT_OF_MEMORY, "generate: out of memory");
    /* the context so far, then the prompt: a <think> opened in an earlier turn counts */
    if (rc == SX_OK) rc = sx_exit_init(&L.ex, &p->exit, s->e->tok, s->history, s->n_past);
    if (rc == SX_OK) sx_exit_scan(&L.ex, prompt, n_prompt);
    if (rc == SX_OK && p->spec.kind != SX_SPEC_NONE) rc = sx_spec_create(s, &p->spec, &spec);
    if (spec) sx_spec_read_rows(spec, p->logprobs);
    sx_token_logprob lp;
    /* a grammar: from the start, or after </think> when the prompt leaves a thinking section open */
    sx_grammar *gram = NULL;
    sx_constraint con = {0}, *C = NULL;
    if (rc == SX_OK && p->grammar) rc = sx_grammar_parse(p->grammar, &gram);
    if (rc == SX_OK && gram && p->grammar_trigger) {
        const int32_t trig = sx_tokenizer_find(s->e->tok, p->grammar_trigger);
        rc = trig < 0 ? sx_set_error(SX_ERR_INVALID_ARG, "grammar trigger '%s' is not one token of the vocabulary", p->grammar_trigger)
                      : sx_constraint_init_lazy(&con, gram, s->e->tok, trig);
    } else if (rc == SX_OK && gram) {
        rc = sx_constraint_init(&con, gram, s->e->tok, L.ex.thinking ? L.ex.think_close : -1);
    }
    if (rc == SX_OK && gram) C = &con;
    st->n_prompt_tokens = n_prompt;

    /* prefill, then the first token */
    double t0 = sx_now_ms();
    if (rc == SX_OK) rc = spec ? sx_spec_prefill(spec, prompt, n_prompt, logits) : sx_session_eval(s, prompt, n_prompt, logits);
    st->prefill_ms = sx_now_ms() - t0;
    int32_t toks[SX_SPEC_MAX_DEPTH + 2];
    int n = 1;
    if (rc == SX_OK)
        rc = sx_constraint_active(C) ? sx_sampler_sample_filtered(smp, logits, s->history, s->n_past, sx_constraint_filter, C, &toks[0])
                                     : sx_sampler_sample(smp, logits, s->history, s->n_past, &toks[0]);
    if (rc != SX_OK && C && C->failed) rc = sx_constraint_check(C); /* "no token may come next" because the grammar gave up */
    t0 = sx_now_ms();
    st->stop_reason = SX_STOP_LENGTH;
    /* decoding: the target passes may be shared with other sessions' (core/batch.c) */
    const bool decoding = rc == SX_OK;
    if (decoding) sx_batch_enter(s->e);
    int n_committed_tokens = 0; /* by target passes after the first token */
    while (rc == SX_OK) {
        /* the policy may cut the step's tokens; then commit and emit them */
        n = sx_exit_apply(&L.ex, toks, n, spec != NULL && st->n_steps > 0);
        if (spec && st->n_steps > 0) sx_spec_commit(spec, n - 1, toks[n - 1]);
        bool go = true;
        for (int i = 0; i < n && go; i++) {
            if (C && !sx_constraint_accept(C, toks[i])) {
                rc = C->failed ? sx_constraint_check(C)
                               : sx_set_error(SX_ERR_INVALID_ARG, "grammar: the generated token %d does not follow the grammar", toks[i]);
                break;
            }
            /* the row that chose this token: the prefill's or the plain step's, else the verified one */
            const float *row = !p->logprobs ? NULL : spec && st->n_steps > 0 ? sx_spec_row(spec, i) : logits;
            if (row) sx_logprob_row(row, V, toks[i], p->top_logprobs, &lp);
            s->lp = row ? &lp : NULL;
            go = emit(&L, toks[i]);
            s->lp = NULL;
        }
        if (!go || rc != SX_OK) break;
        if (p->n_predict >= 0 && st->n_generated_tokens >= p->n_predict) break;
        const int32_t last = toks[n - 1];
        /* the next step */
        if (spec) {
            if (s->n_past + 1 >= s->kv->n_ctx) {
                st->stop_reason = SX_STOP_CONTEXT;
                break;
            }
            sx_spec_proposal prop;
            rc = sx_spec_step(spec, last, argmax_only && !C ? NULL : smp, greedy, C, &prop);
            if (rc != SX_OK) break;
            if (prop.have_signals) {
                sx_exit_observe(&L.ex, prop.signals);
                trace(&L, prop.signals);
            }
            st->n_drafted += prop.n_drafted;
            st->n_accepted += prop.n - 1;
            memcpy(toks, prop.tokens, sizeof(int32_t) * (size_t)prop.n);
            n = prop.n;
        } else {
            if (s->n_past >= s->kv->n_ctx) {
                st->stop_reason = SX_STOP_CONTEXT;
                break;
            }
            /* sampling on a GPU: the row's largest logits when they decide the distribution (K values cross the bus, not the vocabulary);
             * under a grammar the whole row (the allowed tokens may lie anywhere in it) */
            const bool constrained = sx_constraint_active(C);
            const bool amax = argmax_only && !constrained && !p->logprobs;
            const bool top = !argmax_only && !constrained && !p->logprobs && sx_session_samples_top(s, smp);
            int32_t top_ids[SX_SAMPLER_TOP_MAX];
            float top_vals[SX_SAMPLER_TOP_MAX];
            sx_batch b = {.tokens = &last, .n = 1, .n_past = s->n_past, .top_ids = top ? top_ids : NULL, .top_vals = top ? top_vals : NULL};
            int32_t next;
            rc = sx_session_forward_shared(s, &b, amax || top ? NULL : logits, amax ? &next : NULL);
            if (rc != SX_OK) break;
            s->history[s->n_past++] = last;
            if (top) rc = sx_sampler_sample_top(smp, top_ids, top_vals, SX_SAMPLER_TOP_MAX, &next);
            else if (constrained) rc = sx_sampler_sample_filtered(smp, logits, s->history, s->n_past, sx_constraint_filter, C, &next);
            else if (!amax) rc = sx_sampler_sample(smp, logits, s->history, s->n_past, &next);
            if (C && C->failed) rc = sx_constraint_check(C);
            toks[0] = next;
            n = 1;
        }
        st->n_steps++;
        n_committed_tokens += n;
    }
    if (decoding) sx_batch_leave(s->e);
    st->decode_ms = sx_now_ms() - t0;
    st->prefill_tok_s = st->prefill_ms > 0 ? n_prompt / (st->prefill_ms / 1e3) : 0;
    st->decode_tok_s = st->decode_ms > 0 && st->n_steps ? (st->n_generated_tokens - 1) / (st->decode_ms / 1e3) : 0;
    st->accept_len_mean = st->n_steps ? (double)n_committed_tokens / st->n_steps : 0.0;
    st->thinking_tokens = L.ex.thinking_tokens;
    st->exited_early = L.ex.exited;
    st->exit_reason = L.ex.reason;
    if (spec) sx_spec_timing(spec, &st->draft_ms, &st->verify_ms);
    if (spec && rc == SX_OK) rc = sx_spec_finish(spec); /* the context stays usable for the next turn */
    /* the context ends with the emitted tokens but the last (as plain decoding leaves it): a step
     * may have committed accepted tokens that were never emitted (length, stop, end token) */
    const int keep = n_past0 + n_prompt + (st->n_generated_tokens > 0 ? st->n_generated_tokens - 1 : 0);
    if (rc == SX_OK && s->n_past > keep) s->n_past = keep;
    sx_spec_destroy(spec);
    sx_constraint_free(&con);
    sx_grammar_destroy(gram);
    sx_sampler_destroy(smp);
    free(logits);
    if (rc != SX_OK) sx_generate_stats_free(st);
    return rc;
}
