/* tools/server_logprobs.c — see server_logprobs.h. */
#include "tools/server_logprobs.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/server_text.h"

/* the prompt's text tokens (no control tokens) */
static int text_ids(const sx_engine *e, const int32_t *ids, int n, int32_t **out) {
    int m = 0;
    if (!(*out = malloc(sizeof(int32_t) * (size_t)(n ? n : 1)))) return -1;
    for (int i = 0; i < n; i++)
        if (!sx_token_is_control(e, ids[i])) (*out)[m++] = ids[i];
    return m;
}

char *sx_lp_prompt_text(const sx_engine *e, const int32_t *ids, int n) {
    int32_t *t = NULL;
    char *s = NULL;
    const int m = text_ids(e, ids, n, &t);
    if (m >= 0 && sx_detokenize(e, t, m, &s) != SX_OK) s = NULL;
    free(t);
    return s;
}

bool sx_lp_push(sx_lp_list *l, const sx_token_logprob *lp, int offset) {
    if (l->n == l->cap) {
        const int cap = l->cap ? 2 * l->cap : 64;
        sx_token_logprob *v = realloc(l->v, sizeof *v * (size_t)cap);
        if (v) l->v = v;
        int *o = realloc(l->offset, sizeof *o * (size_t)cap);
        if (o) l->offset = o;
        if (!v || !o) return false;
        l->cap = cap;
    }
    l->v[l->n] = *lp;
    l->offset[l->n++] = offset;
    return true;
}

void sx_lp_free(sx_lp_list *l) {
    free(l->v);
    free(l->offset);
    memset(l, 0, sizeof *l);
}

/* JSON has no -inf: vLLM's stand-in */
static double json_lp(float x) { return isfinite(x) ? (double)x : -9999.0; }

/* the token's raw bytes (its vocabulary entry) and them as valid UTF-8, or "token_id:ID" (as_ids) */
static size_t token_text(const sx_engine *e, int32_t tok, bool as_ids, char *raw, size_t cap, sx_sbuf *utf8) {
    size_t len = 0;
    if (sx_token_to_piece(e, tok, raw, cap, &len) != SX_OK || len > cap) len = 0;
    sx_sbuf_clear(utf8);
    if (as_ids) {
        char id[32];
        snprintf(id, sizeof id, "token_id:%d", tok);
        sx_sbuf_adds(utf8, id);
    } else {
        sx_utf8_sanitize_into(utf8, raw, len);
    }
    return len;
}

static cJSON *chat_entry(const sx_engine *e, bool as_ids, int32_t tok, float logprob, sx_sbuf *tmp) {
    char raw[256];
    const size_t len = token_text(e, tok, as_ids, raw, sizeof raw, tmp);
    cJSON *o = cJSON_CreateObject(), *b = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "token", tmp->s ? tmp->s : "");
    cJSON_AddNumberToObject(o, "logprob", json_lp(logprob));
    for (size_t i = 0; i < len; i++) cJSON_AddItemToArray(b, cJSON_CreateNumber((unsigned char)raw[i]));
    cJSON_AddItemToObject(o, "bytes", b);
    return o;
}

cJSON *sx_lp_chat_json(const sx_engine *e, bool as_ids, const sx_lp_list *l, int from, int to) {
    cJSON *o = cJSON_CreateObject(), *content = cJSON_AddArrayToObject(o, "content");
    sx_sbuf tmp = {0};
    for (int i = from; i < to; i++) {
        const sx_token_logprob *lp = &l->v[i];
        cJSON *c = chat_entry(e, as_ids, lp->token, lp->logprob, &tmp), *top = cJSON_AddArrayToObject(c, "top_logprobs");
        for (int k = 0; k < lp->n_top; k++) cJSON_AddItemToArray(top, chat_entry(e, as_ids, lp->top_ids[k], lp->top_logprobs[k], &tmp));
        cJSON_AddItemToArray(content, c);
    }
    sx_sbuf_free(&tmp);
    return o;
}

typedef struct {
    cJSON *tokens, *lps, *tops, *offs;
} legacy;

/* one token of the completions' form; lp NULL: the prompt's first (null logprobs) */
static void legacy_add(const sx_engine *e, bool as_ids, legacy *L, int32_t tok, const sx_token_logprob *lp, int offset, sx_sbuf *tmp) {
    char raw[256];
    token_text(e, tok, as_ids, raw, sizeof raw, tmp);
    cJSON_AddItemToArray(L->tokens, cJSON_CreateString(tmp->s ? tmp->s : ""));
    cJSON_AddItemToArray(L->offs, cJSON_CreateNumber(offset));
    if (!lp) {
        cJSON_AddItemToArray(L->lps, cJSON_CreateNull());
        cJSON_AddItemToArray(L->tops, cJSON_CreateNull());
        return;
    }
    cJSON_AddItemToArray(L->lps, cJSON_CreateNumber(json_lp(lp->logprob)));
    /* the N most likely and, as OpenAI, always the token itself (up to N + 1 entries); texts that two ids share keep the larger */
    cJSON *top = cJSON_CreateObject();
    for (int k = 0; k <= lp->n_top; k++) {
        const int32_t id = k < lp->n_top ? lp->top_ids[k] : lp->token;
        const float v = k < lp->n_top ? lp->top_logprobs[k] : lp->logprob;
        token_text(e, id, as_ids, raw, sizeof raw, tmp);
        const char *key = tmp->s ? tmp->s : "";
        cJSON *have = cJSON_GetObjectItemCaseSensitive(top, key);
        if (!have) cJSON_AddNumberToObject(top, key, json_lp(v));
        else if (json_lp(v) > have->valuedouble) cJSON_SetNumberValue(have, json_lp(v));
    }
    cJSON_AddItemToArray(L->tops, top);
}

cJSON *sx_lp_completion_json(const sx_engine *e, bool as_ids, const int32_t *prompt, int n_prompt, const char *prompt_text, const sx_token_logprob *plp, const sx_lp_list *l,
                             int from, int to) {
    cJSON *o = cJSON_CreateObject();
    legacy L = {cJSON_AddArrayToObject(o, "tokens"), cJSON_AddArrayToObject(o, "token_logprobs"), cJSON_AddArrayToObject(o, "top_logprobs"),
                cJSON_AddArrayToObject(o, "text_offset")};
    sx_sbuf tmp = {0};
    char raw[256];
    /* a prompt token's offset in the echoed text: each piece is found where the text goes on, or takes no
     * bytes (a BOS the tokenizer added, a control token of an id prompt); a SentencePiece piece's leading
     * space may be missing at the start */
    size_t off = 0;
    const size_t tlen = prompt_text ? strlen(prompt_text) : 0;
    for (int k = 0; prompt && k < n_prompt; k++) {
        legacy_add(e, as_ids, &L, prompt[k], k ? &plp[k - 1] : NULL, (int)off, &tmp);
        size_t len = 0;
        if (sx_token_to_piece(e, prompt[k], raw, sizeof raw, &len) != SX_OK || len > sizeof raw) len = 0;
        if (len && off + len <= tlen && !memcmp(prompt_text + off, raw, len)) off += len;
        else if (len > 1 && raw[0] == ' ' && off + len - 1 <= tlen && !memcmp(prompt_text + off, raw + 1, len - 1)) off += len - 1;
    }
    for (int i = from; l && i < to; i++) legacy_add(e, as_ids, &L, l->v[i].token, &l->v[i], l->offset[i], &tmp);
    sx_sbuf_free(&tmp);
    return o;
}
