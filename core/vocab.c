/* core/vocab.c — the tokenizer described by a GGUF file's tokenizer.ggml.* keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gguf.h"
#include "core/tokenizer.h"

sx_status sx_tokenizer_from_gguf(const sx_gguf *g, sx_tokenizer **out);

static int32_t opt_id(const sx_gguf *g, const char *key) {
    int64_t v;
    return sx_gguf_get_i64(g, key, &v) == SX_OK && v >= 0 && v < INT32_MAX ? (int32_t)v : -1;
}

/* Reads a string array into parallel pointer/length arrays (borrowed strings). */
static sx_status str_array(const sx_gguf *g, const char *key, bool required, int64_t *out_n, const char ***out_s, size_t **out_len) {
    *out_n = 0;
    *out_s = NULL;
    *out_len = NULL;
    const int64_t kv = sx_gguf_find_key(g, key);
    if (kv < 0) return required ? sx_set_error(SX_ERR_FORMAT, "%s: missing key %s", sx_gguf_name(g), key) : SX_OK;
    if (sx_gguf_kv_type(g, kv) != SX_GGUF_TYPE_ARRAY || sx_gguf_arr_type(g, kv) != SX_GGUF_TYPE_STRING)
        return sx_set_error(SX_ERR_FORMAT, "%s: %s is not an array of strings", sx_gguf_name(g), key);
    const uint64_t n = sx_gguf_arr_len(g, kv);
    if (n > INT32_MAX) return sx_set_error(SX_ERR_FORMAT, "%s: %s has %llu entries", sx_gguf_name(g), key, (unsigned long long)n);
    const char **s = malloc(sizeof(char *) * (n ? n : 1));
    size_t *len = malloc(sizeof(size_t) * (n ? n : 1));
    if (!s || !len) {
        free(s), free(len);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    }
    for (uint64_t i = 0; i < n; i++) {
        sx_status st = sx_gguf_arr_str(g, kv, i, &s[i], &len[i]);
        if (st != SX_OK) {
            free(s), free(len);
            return st;
        }
    }
    *out_n = (int64_t)n;
    *out_s = s;
    *out_len = len;
    return SX_OK;
}

static sx_status num_array(const sx_gguf *g, const char *key, sx_gguf_type want, int64_t n, const void **out) {
    *out = NULL;
    sx_gguf_type t;
    uint64_t len;
    const void *data;
    sx_status s = sx_gguf_get_arr(g, key, &t, &len, &data);
    if (s == SX_ERR_NOT_FOUND) return SX_OK;
    SX_RETURN_IF_ERROR(s);
    if (t != want || len != (uint64_t)n)
        return sx_set_error(SX_ERR_FORMAT, "%s: %s must be %lld values of type %s", sx_gguf_name(g), key, (long long)n, sx_gguf_type_name(want));
    *out = data;
    return SX_OK;
}

sx_status sx_tokenizer_from_gguf(const sx_gguf *g, sx_tokenizer **out) {
    *out = NULL;
    char model[32] = "", pre[64] = "default";
    sx_status s = sx_gguf_get_str_copy(g, "tokenizer.ggml.model", model, sizeof model);
    if (s == SX_ERR_NOT_FOUND) return sx_set_error(SX_ERR_FORMAT, "%s: no tokenizer (missing tokenizer.ggml.model)", sx_gguf_name(g));
    SX_RETURN_IF_ERROR(s);
    s = sx_gguf_get_str_copy(g, "tokenizer.ggml.pre", pre, sizeof pre);
    if (s != SX_OK && s != SX_ERR_NOT_FOUND) return s;

    sx_tokenizer_desc d;
    sx_tokenizer_desc_init(&d);
    if (strcmp(model, "gpt2") == 0) d.kind = SX_TOKENIZER_BPE;
    else if (strcmp(model, "llama") == 0) d.kind = SX_TOKENIZER_SPM;
    else return sx_set_error(SX_ERR_UNSUPPORTED, "%s: tokenizer model '%s' is not supported (gpt2, llama)", sx_gguf_name(g), model);
    d.pre = pre;

    const char **tokens = NULL, **merges = NULL;
    size_t *token_lens = NULL, *merge_lens = NULL;
    int64_t n_tokens = 0, n_merges = 0;
    s = str_array(g, "tokenizer.ggml.tokens", true, &n_tokens, &tokens, &token_lens);
    if (s == SX_OK && d.kind == SX_TOKENIZER_BPE) s = str_array(g, "tokenizer.ggml.merges", true, &n_merges, &merges, &merge_lens);
    const void *types = NULL, *scores = NULL;
    if (s == SX_OK) s = num_array(g, "tokenizer.ggml.token_type", SX_GGUF_TYPE_INT32, n_tokens, &types);
    if (s == SX_OK) s = num_array(g, "tokenizer.ggml.scores", SX_GGUF_TYPE_FLOAT32, n_tokens, &scores);
    if (s == SX_OK) {
        d.n_tokens = n_tokens;
        d.tokens = tokens;
        d.token_lens = token_lens;
        d.token_types = types;
        d.scores = scores;
        d.n_merges = n_merges;
        d.merges = merges;
        d.merge_lens = merge_lens;
        d.bos_id = opt_id(g, "tokenizer.ggml.bos_token_id");
        d.eos_id = opt_id(g, "tokenizer.ggml.eos_token_id");
        d.eot_id = opt_id(g, "tokenizer.ggml.eot_token_id");
        d.pad_id = opt_id(g, "tokenizer.ggml.padding_token_id");
        d.unk_id = opt_id(g, "tokenizer.ggml.unknown_token_id");
        d.add_bos = sx_gguf_get_bool_or(g, "tokenizer.ggml.add_bos_token", d.kind == SX_TOKENIZER_SPM);
        d.add_space_prefix = sx_gguf_get_bool_or(g, "tokenizer.ggml.add_space_prefix", d.kind == SX_TOKENIZER_SPM);
        s = sx_tokenizer_create(&d, out);
        if (s != SX_OK) sx_wrap_error(s, "%s: tokenizer", sx_gguf_name(g));
    }
    free(tokens), free(token_lens), free(merges), free(merge_lens);
    return s;
}
