/* core/specexit.h — the public C API of libspecexit.
 *
 * Objects: an engine holds one model on one device (weights, tokenizer, chat
 * template); a session holds one conversation's KV cache and sampler state.
 * Several sessions may share an engine, each used from one thread at a time.
 *
 * Ownership: *_create => caller owns, free with the matching *_destroy
 * (destroy(NULL) is a no-op). Getters return borrowed pointers valid while
 * the object lives. Arrays returned through out_* pointers are malloc'ed and
 * freed by the caller with free().
 *
 * Errors: every fallible call returns sx_status (ir/status.h) and records a
 * readable message, retrieved with sx_last_error() on the same thread.
 */
#ifndef SPECEXIT_H
#define SPECEXIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SPECEXIT_VERSION "0.1.0"

typedef struct sx_engine sx_engine;
typedef struct sx_session sx_session;

/* ---- engine ---- */
typedef struct sx_engine_options {
    const char *model_path;    /* GGUF file (required) */
    const char *backend;       /* "cpu" (default), "cpu-ref", "vulkan", "vulkan:1", "cuda:0", "hip" */
    int n_threads;             /* CPU threads; 0 = physical cores */
    const char *chat_template; /* "chatml", "llama3", "deepseek-r1"; NULL = detect from the file */
} sx_engine_options;

void sx_engine_options_init(sx_engine_options *o);
/* Loads the model onto the backend's device. Errors: SX_ERR_IO (cannot open),
 * SX_ERR_FORMAT (corrupt file, missing tensor or key), SX_ERR_UNSUPPORTED
 * (architecture, quant type, backend not compiled in), SX_ERR_NO_DEVICE. */
SX_MUST_USE sx_status sx_engine_create(const sx_engine_options *o, sx_engine **out_engine);
void sx_engine_destroy(sx_engine *e);

typedef struct sx_engine_info {
    const char *model_name; /* general.name */
    const char *arch;       /* "llama", "qwen2", "qwen3" */
    const char *quant;      /* most common weight type, "q4_1" */
    uint64_t n_params;
    uint64_t weight_bytes;
    int n_layer, n_embd, n_head, n_head_kv, n_vocab, n_ctx_train;
    const char *backend;    /* "cpu", "vulkan", ... */
    const char *device;     /* device name */
    const char *chat_template; /* detected template family */
} sx_engine_info;
void sx_engine_get_info(const sx_engine *e, sx_engine_info *out_info);

/* ---- text ---- */
/* Tokenizes text. add_special: prepend BOS when the model wants it;
 * parse_special: recognise control tokens such as <|im_start|> in text. */
SX_MUST_USE sx_status sx_tokenize(const sx_engine *e, const char *text, bool add_special, bool parse_special, int32_t **out_ids, int *out_n);
/* Raw bytes of one token (may be a partial UTF-8 sequence). */
SX_MUST_USE sx_status sx_token_to_piece(const sx_engine *e, int32_t token, char *buf, size_t cap, size_t *out_len);
/* Detokenizes a whole sequence into a NUL-terminated string. */
SX_MUST_USE sx_status sx_detokenize(const sx_engine *e, const int32_t *ids, int n, char **out_text);
/* Formats one user turn with the model's chat template, ending with the
 * opening of the assistant turn (plus "<think>\n" when think is set).
 * system may be NULL (the template's default system prompt applies). */
SX_MUST_USE sx_status sx_chat_prompt(const sx_engine *e, const char *system, const char *user, bool think, char **out_text);
bool sx_token_is_eog(const sx_engine *e, int32_t token);

/* ---- sessions ---- */
typedef struct sx_session_options {
    int n_ctx;       /* context size in tokens; 0 = min(training context, 4096) */
    int n_batch;     /* prompt tokens per forward pass; 0 = 512 */
    bool kv_f32;     /* KV cache in f32 instead of f16 */
} sx_session_options;

void sx_session_options_init(sx_session_options *o);
SX_MUST_USE sx_status sx_session_create(sx_engine *e, const sx_session_options *o, sx_session **out_session);
void sx_session_destroy(sx_session *s);
/* Forgets all tokens (keeps the memory). */
void sx_session_reset(sx_session *s);
int sx_session_n_past(const sx_session *s);
int sx_session_n_ctx(const sx_session *s);

/* Appends tokens to the context and runs them through the model (in chunks of
 * n_batch). out_logits, if not NULL, receives the last token's logits
 * [n_vocab]. SX_ERR_CONTEXT_FULL when they do not fit (nothing is appended). */
SX_MUST_USE sx_status sx_session_eval(sx_session *s, const int32_t *tokens, int n, float *out_logits);

/* ---- generation ---- */
typedef struct sx_sampler_params {
    float temp;           /* 0 = greedy; default 0.8 */
    int top_k;            /* <= 0: off; default 40 */
    float top_p;          /* >= 1: off; default 0.95 */
    float min_p;          /* <= 0: off; default 0.05 */
    float repeat_penalty; /* 1 = off; default 1.0 */
    int repeat_last_n;    /* tokens of history penalised; default 64 */
    uint64_t seed;        /* default SX_SEED_RANDOM: from the clock */
} sx_sampler_params;
#define SX_SEED_RANDOM 0xFFFFFFFFu
void sx_sampler_params_init(sx_sampler_params *p);

typedef struct sx_generate_params {
    int n_predict;       /* max new tokens; default 128; -1 = until end or context full */
    sx_sampler_params sampling;
    bool ignore_eos;     /* keep going past end-of-generation tokens */
} sx_generate_params;
void sx_generate_params_init(sx_generate_params *p);

typedef enum sx_stop_reason {
    SX_STOP_EOG = 0,      /* end-of-generation token */
    SX_STOP_LENGTH,       /* n_predict reached */
    SX_STOP_CONTEXT,      /* context full */
    SX_STOP_CALLBACK,     /* the callback asked to stop */
} sx_stop_reason;
const char *sx_stop_reason_str(sx_stop_reason r);

typedef struct sx_generate_stats {
    int n_prompt_tokens;
    int n_generated_tokens; /* tokens produced, including a final end token */
    double prefill_ms, decode_ms;
    double prefill_tok_s, decode_tok_s;
    sx_stop_reason stop_reason;
    int n_steps;            /* decode forward passes */
    double accept_len_mean; /* tokens committed per decode step (1 without speculation) */
} sx_generate_stats;

/* Called for every generated token with its raw bytes; return false to stop. */
typedef bool (*sx_token_callback)(int32_t token, const char *piece, size_t len, void *user);

/* Evaluates the prompt (appended to the session's context) and generates.
 * The end token, when reached, is reported to the callback and counted but
 * not appended to the context. */
SX_MUST_USE sx_status sx_generate(sx_session *s, const int32_t *prompt, int n_prompt, const sx_generate_params *p, sx_token_callback cb,
                                  void *user, sx_generate_stats *out_stats);

#ifdef __cplusplus
}
#endif
#endif
