/* core/generate.c — the decode loop: prompt prefill, then one token per step.
 * Greedy decoding without penalties reads back only the argmax (4 bytes per
 * step) instead of the whole logit row. */
#include <stdlib.h>
#include <string.h>

#include "core/engine_internal.h"

void sx_generate_params_init(sx_generate_params *p) {
    memset(p, 0, sizeof *p);
    p->n_predict = 128;
    sx_sampler_params_init(&p->sampling);
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

static bool emit(sx_session *s, int32_t tok, sx_token_callback cb, void *user) {
    if (!cb) return true;
    size_t len = 0;
    /* control tokens (<|im_end|>, <|eot_id|>) are not text; user-defined ones (<think>) are */
    const char *piece = sx_tokenizer_token_type(s->e->tok, tok) == SX_TOKEN_TYPE_CONTROL ? NULL : sx_tokenizer_piece(s->e->tok, tok, &len);
    return cb(tok, piece ? piece : "", piece ? len : 0, user);
}

sx_status sx_generate(sx_session *s, const int32_t *prompt, int n_prompt, const sx_generate_params *p, sx_token_callback cb, void *user,
                      sx_generate_stats *st) {
    memset(st, 0, sizeof *st);
    const int V = s->e->model->hp.n_vocab;
    if (n_prompt < 1) return sx_set_error(SX_ERR_INVALID_ARG, "generate: empty prompt");
    if ((int64_t)s->n_past + n_prompt > s->kv->n_ctx)
        return sx_set_error(SX_ERR_CONTEXT_FULL, "the prompt has %d tokens but only %d of the %d context slots are free (raise --ctx-size)",
                            n_prompt, s->kv->n_ctx - s->n_past, s->kv->n_ctx);
    const bool greedy_fast = p->sampling.temp <= 0 && p->sampling.repeat_penalty == 1.0f;
    float *logits = malloc(sizeof(float) * (size_t)V);
    sx_sampler *smp = NULL;
    sx_status rc = logits ? sx_sampler_create(&p->sampling, V, &smp) : sx_set_error(SX_ERR_OUT_OF_MEMORY, "generate: out of memory");
    if (rc != SX_OK) {
        free(logits);
        return rc;
    }
    st->n_prompt_tokens = n_prompt;
    double t0 = sx_now_ms();
    rc = sx_session_eval(s, prompt, n_prompt, logits);
    st->prefill_ms = sx_now_ms() - t0;
    int32_t tok = 0;
    if (rc == SX_OK) rc = sx_sampler_sample(smp, logits, s->history, s->n_past, &tok);
    t0 = sx_now_ms();
    st->stop_reason = SX_STOP_LENGTH;
    while (rc == SX_OK) {
        if (p->n_predict >= 0 && st->n_generated_tokens >= p->n_predict) break;
        st->n_generated_tokens++;
        const bool eog = sx_tokenizer_is_eog(s->e->tok, tok) && !p->ignore_eos;
        if (!emit(s, tok, cb, user)) {
            st->stop_reason = SX_STOP_CALLBACK;
            break;
        }
        if (eog) {
            st->stop_reason = SX_STOP_EOG;
            break;
        }
        if (p->n_predict >= 0 && st->n_generated_tokens >= p->n_predict) break;
        if (s->n_past >= s->kv->n_ctx) {
            st->stop_reason = SX_STOP_CONTEXT;
            break;
        }
        /* one decode step: append tok, get the next */
        sx_batch b = {.tokens = &tok, .n = 1, .n_past = s->n_past};
        int32_t next;
        rc = sx_session_forward(s, &b, greedy_fast ? NULL : logits, greedy_fast ? &next : NULL);
        if (rc != SX_OK) break;
        s->history[s->n_past++] = tok;
        st->n_steps++;
        if (!greedy_fast) rc = sx_sampler_sample(smp, logits, s->history, s->n_past, &next);
        tok = next;
    }
    st->decode_ms = sx_now_ms() - t0;
    st->prefill_tok_s = st->prefill_ms > 0 ? n_prompt / (st->prefill_ms / 1e3) : 0;
    st->decode_tok_s = st->decode_ms > 0 && st->n_steps ? st->n_steps / (st->decode_ms / 1e3) : 0;
    st->accept_len_mean = st->n_steps ? 1.0 : 0.0;
    sx_sampler_destroy(smp);
    free(logits);
    return rc;
}
