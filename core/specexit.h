/* core/specexit.h — the public C API of libspecexit.
 *
 * Objects: an engine holds one model on one device (weights, tokenizer, chat
 * template); a session holds one conversation's KV cache and sampler state.
 * Several sessions may share an engine, each used from one thread at a time;
 * different sessions may run in different threads at once (continuous
 * batching: their target passes are combined into one forward pass).
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
#define SX_MAX_DEVICES 8 /* devices one model can be split over */

typedef struct sx_engine_options {
    const char *model_path;    /* GGUF file (required) */
    const char *backend;       /* "cpu" (default), "cpu-ref", "vulkan", "vulkan:1", "cuda:0", "hip"; or a
                                  list of GPU devices separated by ',' or '/' ("cuda:0,cuda:1",
                                  "cuda:0/vulkan:0")
                                  to split the model's blocks over (llama.cpp's -dev with -sm layer):
                                  consecutive blocks per device in list order, the output layer on the
                                  last one */
    float tensor_split[SX_MAX_DEVICES]; /* llama.cpp's -ts: the share of the offloaded blocks of each
                                  device in `backend`'s list; all 0 (default): by the devices' free
                                  memory (equal shares when unknown) */
    int n_threads;             /* CPU threads; 0 = physical cores */
    bool pin_threads;          /* bind CPU threads to physical cores (hwloc) */
    const char *chat_template; /* "chatml", "llama3", "deepseek-r1"; NULL = detect from the file */
    const char *draft_path;    /* optional draft: an EAGLE-3 draft GGUF (architecture "eagle3")
                                  or a small model sharing the target's vocabulary */
    const char *draft_backend; /* device of the draft; NULL = the target's */
    bool no_cont_batching;     /* sessions generating at the same time take turns instead of
                                  sharing target passes (default false: they share them) */
    int n_gpu_layers;          /* llama.cpp's -ngl: with a GPU backend, the last n_gpu_layers
                                  blocks (and their KV cache) go to the GPU, the others and the
                                  token embedding stay in host memory and run on the CPU; the
                                  output layer goes too when n_gpu_layers > the block count.
                                  -1 (default): the whole model on the GPU. SX_NGL_AUTO: the
                                  whole model when it fits the device's memory (weights, a
                                  fit_ctx-token KV cache, work space), else as many blocks as
                                  fit. Ignored by the CPU backends. */
    int fit_ctx;               /* SX_NGL_AUTO: KV cache tokens the sessions will hold in all
                                  (0 = 4096) */
    int fit_kv_type;           /* SX_NGL_AUTO: their cache type (an sx_kv_type; 0 = f16) */
    int n_cpu_moe;             /* mixture-of-experts models with a GPU backend: the expert
                                  weights of the first n_cpu_moe blocks stay in host memory and
                                  run on the CPU, attention and the router on the GPU
                                  (llama.cpp's --n-cpu-moe; INT_MAX = --cpu-moe, all; 0 = none) */
} sx_engine_options;
#define SX_NGL_AUTO (-2)

void sx_engine_options_init(sx_engine_options *o);
/* Loads the model onto the backend's device. Errors: SX_ERR_IO (cannot open),
 * SX_ERR_FORMAT (corrupt file, missing tensor or key), SX_ERR_UNSUPPORTED
 * (architecture, quant type, backend not compiled in), SX_ERR_NO_DEVICE. */
SX_MUST_USE sx_status sx_engine_create(const sx_engine_options *o, sx_engine **out_engine);
void sx_engine_destroy(sx_engine *e);
/* Continuous batching so far: target passes that combined sessions running
 * at the same time, and the sequences they carried (seqs / passes = the
 * mean batch). */
void sx_engine_batch_stats(const sx_engine *e, uint64_t *passes, uint64_t *seqs);
/* Turns continuous batching on or off for the passes sent from now on. */
void sx_engine_set_cont_batching(sx_engine *e, bool on);

typedef struct sx_engine_info {
    const char *model_name; /* general.name */
    const char *arch;       /* "llama", "qwen2", "qwen3", "qwen3moe" */
    const char *quant;      /* most common weight type, "q4_1" */
    uint64_t n_params;
    uint64_t weight_bytes;
    uint64_t active_weight_bytes; /* weights read per token: mixture-of-experts models read only the picked experts */
    int n_expert, n_expert_used;  /* mixture of experts, else 0 */
    int n_layer, n_embd, n_head, n_head_kv, n_vocab, n_ctx_train;
    const char *backend;    /* "cpu", "vulkan", ... */
    const char *device;     /* device name ("A + B" when the model is split over several) */
    int n_devices;          /* devices holding blocks (without the CPU of -ngl) */
    int device_layers[SX_MAX_DEVICES]; /* blocks on each, in `backend`'s list order */
    int n_gpu_layers;       /* blocks on the device(s) (n_layer unless -ngl left some on the CPU) */
    bool output_on_device;  /* the output layer runs on the device */
    int n_cpu_moe;          /* blocks whose experts run on the CPU (--n-cpu-moe) */
    uint64_t device_weight_bytes; /* weights on the device (the rest are read in place on the CPU) */
    const char *chat_template; /* detected template family */
    const char *draft;      /* "eagle3", "draft" or "none" */
    bool draft_signals;     /* the EAGLE-3 draft predicts the exit signals */
    float draft_exit[4];    /* the draft's recommended conf, progress, remain, alpha (NAN: none) */
    const char *draft_device;
    bool thinking;          /* a reasoning model: its template opens a <think> section (chatml-think, deepseek-r1) */
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
 * opening of the assistant turn (plus "<think>\n" when think is set and the
 * model is a reasoning model, sx_engine_info.thinking; other models ignore it).
 * system may be NULL (the template's default system prompt applies). */
SX_MUST_USE sx_status sx_chat_prompt(const sx_engine *e, const char *system, const char *user, bool think, char **out_text);

/* One message of a conversation. role: "system", "user", "assistant", "tool"
 * ([A-Za-z0-9_-]+); content: UTF-8. An assistant message of a reasoning model
 * may hold its reasoning as "<think>...</think>answer" (the template keeps or
 * drops it as the model family does). */
typedef struct sx_chat_message {
    const char *role;
    const char *content;
} sx_chat_message;

/* Formats a whole conversation with the model's chat template; with
 * add_generation_prompt it ends with the opening of the assistant turn (and
 * "<think>\n" as for sx_chat_prompt). Encode the result with
 * sx_tokenize(e, text, true, true, ...). SX_ERR_INVALID_ARG for a role the
 * template has no place for or a NULL field. */
SX_MUST_USE sx_status sx_chat_apply(const sx_engine *e, const sx_chat_message *msgs, int n, bool add_generation_prompt, bool think,
                                    char **out_text);
/* sx_chat_apply with function calling (ChatML-family models: Qwen2.5, Qwen3,
 * Hermes, SmolLM2): tools_json is OpenAI's "tools" array as JSON text, written
 * into the system turn as those models' templates do; assistant tool calls go
 * into the content as <tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>,
 * results as "tool" messages. SX_ERR_UNSUPPORTED for other template families. */
SX_MUST_USE sx_status sx_chat_apply_tools(const sx_engine *e, const sx_chat_message *msgs, int n, const char *tools_json,
                                          bool add_generation_prompt, bool think, char **out_text);
/* A grammar for tool calls in that format: one call, or several separated by
 * a line break when parallel, of any tool or only the one named `only`, each
 * call's arguments following its tool's "parameters" schema (as
 * sx_json_schema_to_grammar). *out_gbnf malloc'ed; SX_ERR_INVALID_ARG for a
 * malformed tools array or an unknown `only`. */
SX_MUST_USE sx_status sx_tools_grammar(const char *tools_json, const char *only, bool parallel, char **out_gbnf);
/* The body of one call after its <tool_call> token (any tool): with
 * grammar_trigger "<tool_call>", a lazy grammar that lets the model choose
 * to call and makes every call it starts well-formed. */
SX_MUST_USE sx_status sx_tools_call_grammar(const char *tools_json, char **out_gbnf);
bool sx_token_is_eog(const sx_engine *e, int32_t token);
/* A control token (BOS, <|im_end|>, ...): not text, generation reports it with an empty piece. */
bool sx_token_is_control(const sx_engine *e, int32_t token);

/* ---- sessions ---- */
/* The KV cache's element type (llama.cpp's --cache-type-k/-v): f16 (the
 * default), f32, q8_0 (blocks of 32 int8 with an f16 scale: 8.5 bits per
 * value, about half of f16) or q4_0 (blocks of 32 4-bit codes with an f16
 * scale: 4.5 bits per value, about 28% of f16). The quantized types need a
 * head dim multiple of 32. */
typedef enum { SX_KV_F16 = 0, SX_KV_F32, SX_KV_Q8_0, SX_KV_Q4_0 } sx_kv_type;
/* "f16", "f32", "q8_0", "q4_0" -> *out; SX_ERR_INVALID_ARG for anything else. */
SX_MUST_USE sx_status sx_kv_type_from_name(const char *name, sx_kv_type *out);
const char *sx_kv_type_name(sx_kv_type t);

typedef struct sx_session_options {
    int n_ctx;          /* context size in tokens; 0 = min(training context, 4096) */
    int n_batch;        /* prompt tokens per forward pass; 0 = 512 */
    sx_kv_type kv_type; /* the target's KV cache (drafts keep theirs in f16) */
} sx_session_options;

void sx_session_options_init(sx_session_options *o);
/* Bytes of the session's KV cache (all layers, K and V). */
size_t sx_session_kv_bytes(const sx_session *s);
SX_MUST_USE sx_status sx_session_create(sx_engine *e, const sx_session_options *o, sx_session **out_session);
void sx_session_destroy(sx_session *s);
/* Forgets all tokens (keeps the memory). */
void sx_session_reset(sx_session *s);
int sx_session_n_past(const sx_session *s);
int sx_session_n_ctx(const sx_session *s);
/* The tokens in the context, [sx_session_n_past]; borrowed, valid until the
 * session is next used. */
const int32_t *sx_session_tokens(const sx_session *s);
/* How many leading tokens of ids[0..n) the context already holds. */
int sx_session_common_prefix(const sx_session *s, const int32_t *ids, int n);
/* Keeps the first n tokens of the context and forgets the rest (n >= n_past:
 * no change). Reusing a cached prefix: keep = min(common prefix, n_ids - 1),
 * truncate to keep, then generate from ids + keep (at least one token is
 * evaluated: its logits start the generation). */
void sx_session_truncate(sx_session *s, int n);

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
    int n_logit_bias;     /* OpenAI's / llama.cpp's logit bias: bias_vals[i] is added to token
                             bias_ids[i]'s logit before everything else (-INFINITY bans it); */
    const int32_t *bias_ids; /* borrowed, valid while sx_generate runs (default none) */
    const float *bias_vals;
} sx_sampler_params;
#define SX_SEED_RANDOM 0xFFFFFFFFu
void sx_sampler_params_init(sx_sampler_params *p);

/* ---- speculative decoding ---- */
typedef enum sx_spec_kind {
    SX_SPEC_NONE = 0, /* one token per target pass */
    SX_SPEC_EAGLE3,   /* EAGLE-3 draft reading the target's hidden states, tree verification */
    SX_SPEC_DRAFT,    /* a separate small model with the same vocabulary (chain) */
    SX_SPEC_NGRAM,    /* no draft model: prompt lookup, the continuations of earlier occurrences of the
                         context's last n tokens (vLLM's "ngram" method) */
} sx_spec_kind;

typedef struct sx_spec_params {
    sx_spec_kind kind;
    int draft_max;   /* depth D: draft tokens on the longest path (default 5) */
    int draft_topk;  /* K: children tried per expanded node (default 4; 1 = chain) */
    int draft_nodes; /* T: tree nodes verified per step (default 16) */
    float p_min;     /* verify only nodes whose draft path probability is >= p_min; default -1:
                        0.3 when the target runs on the CPU (a verify row costs about what a
                        decoded token does there), else 0 (all T nodes) */
    int ngram_min, ngram_max; /* SX_SPEC_NGRAM: the lengths of the context's suffix looked up,
                                 longest first (default 2 and 4, vLLM's prompt_lookup_min/max) */
    bool lookup;              /* EAGLE-3 / draft: also add prompt lookup's continuations to the
                                 draft's tree (path probability 0.5 of their parent's) */
} sx_spec_params;

/* ---- ending the thinking section ---- */
typedef enum sx_exit_kind {
    SX_EXIT_NONE = 0,     /* think until the model stops */
    SX_EXIT_SPECEXIT,     /* the draft's signals decide (SpecExit) */
    SX_EXIT_BUDGET,       /* hard thinking budget only */
    SX_EXIT_FIRST_ANSWER, /* baseline: stop at the first paragraph that states "answer is" */
} sx_exit_kind;

typedef struct sx_exit_params {
    sx_exit_kind kind;
    float conf;           /* exit when smoothed confidence > conf (default 0.8) */
    float progress;       /* ... and progress > progress (default 0.3) */
    float remain;         /* ... and remaining tokens < remain (default 200) */
    float alpha;          /* EWMA weight of the newest step (default 0.1) */
    int reasoning_budget; /* max thinking tokens, -1 = unlimited (default), 0 = no thinking */
} sx_exit_params;

typedef struct sx_generate_params {
    int n_predict;       /* max new tokens; default 128; -1 = until end or context full */
    sx_sampler_params sampling;
    bool ignore_eos;     /* keep going past end-of-generation tokens */
    sx_spec_params spec;
    sx_exit_params exit;
    bool trace_signals;  /* record the per-step signal trace in the stats */
    const char *grammar; /* GBNF text (llama.cpp's notation, rule `root`) the generated text must
                            follow, or NULL. A reasoning model thinks freely: the grammar starts
                            after `</think>` (whitespace before it allowed). End tokens are allowed
                            only where the text is a whole sentence of the grammar. Works with
                            speculation and the exit; greedy output equals plain greedy decoding
                            under the same grammar. */
    bool logprobs;       /* OpenAI's logprobs: each generated token's log-probability under the model,
                            read with sx_generate_logprob() inside the token callback */
    int top_logprobs;    /* with logprobs: also the top_logprobs (0..SX_MAX_TOP_LOGPROBS) most likely
                            tokens of each position. Rows are then read whole (as under a grammar) */
    const char *grammar_trigger; /* with a grammar: lazy, as llama.cpp's lazy grammars: the text is free,
                            and the grammar applies after each occurrence of this token (its exact
                            text, one token of the vocabulary, e.g. "<tool_call>") until the
                            grammar's text is complete. NULL: the grammar applies throughout. */
} sx_generate_params;
void sx_generate_params_init(sx_generate_params *p);
/* Reads "eagle3" / "draft" / "ngram" / "none" and "specexit" / "budget" / "first-answer" / "none". */
SX_MUST_USE sx_status sx_spec_kind_from_name(const char *name, sx_spec_kind *out);
SX_MUST_USE sx_status sx_exit_kind_from_name(const char *name, sx_exit_kind *out);
const char *sx_spec_kind_name(sx_spec_kind k);
const char *sx_exit_kind_name(sx_exit_kind k);

/* ---- grammars ---- */
/* Checks GBNF text (SX_ERR_INVALID_ARG with "grammar: line L col C: ..."). */
SX_MUST_USE sx_status sx_grammar_validate(const char *gbnf);
/* A grammar for any JSON object (response_format {"type": "json_object"}). */
const char *sx_grammar_json(void);
/* JSON Schema (a JSON text) -> GBNF; *out_gbnf is malloc'ed, caller frees.
 * The supported keywords are listed in core/grammar.h; one it cannot enforce
 * is SX_ERR_UNSUPPORTED, never dropped silently. */
SX_MUST_USE sx_status sx_json_schema_to_grammar(const char *schema_json, char **out_gbnf);

/* ---- log-probabilities ---- */
/* A token's log-probability and the most likely alternatives at its position,
 * from the target's raw logits (vLLM's default "raw_logprobs": before the
 * repetition penalty, logit bias, grammar, temperature and truncation), in
 * the natural log. Alternatives: most likely first, ties by lower id. With
 * speculation, each token's row is the verified target row that chose it, so
 * greedy speculative decoding reports plain decoding's values. */
#define SX_MAX_TOP_LOGPROBS 20
typedef struct sx_token_logprob {
    int32_t token;
    float logprob;
    int n_top;
    int32_t top_ids[SX_MAX_TOP_LOGPROBS];
    float top_logprobs[SX_MAX_TOP_LOGPROBS];
} sx_token_logprob;
/* Inside the token callback of a generation with logprobs: the reported
 * token's; NULL otherwise. Borrowed, valid until the callback returns. */
const sx_token_logprob *sx_generate_logprob(const sx_session *s);
/* Scores a text (OpenAI's echo with logprobs, lm-eval's loglikelihood):
 * appends tokens[0..n) to the context as sx_session_eval does (in chunks of
 * at most 64 rows, computed as decoding computes them) and writes out[i],
 * the log-probability of the token after tokens[i] given everything before
 * it: tokens[i + 1] for i < n - 1, `next` for i = n - 1 (next < 0: out[n - 1]
 * is left alone), with n_top alternatives. SX_ERR_CONTEXT_FULL when they do
 * not fit (nothing is appended). */
SX_MUST_USE sx_status sx_session_eval_logprobs(sx_session *s, const int32_t *tokens, int n, int32_t next, int n_top, sx_token_logprob *out);

/* The general form: appends tokens[0..n) to the context in passes of at most
 * max_rows tokens (and the session's n_batch; max_rows <= 0: 64, computed as
 * decoding computes them; more is faster, but only up to 64 rows does every
 * backend promise decoding's bits) and calls cb(i, row, n_vocab, user) with
 * each position's raw logits (the distribution of the token after
 * tokens[i]) in order, each row valid during its call (a perplexity or
 * KL-divergence tool). Holds max_rows x n_vocab floats. */
typedef void (*sx_row_callback)(int index, const float *row, int n_vocab, void *user);
SX_MUST_USE sx_status sx_session_eval_rows(sx_session *s, const int32_t *tokens, int n, int max_rows, sx_row_callback cb, void *user);

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
    int n_steps;            /* target decode passes */
    double accept_len_mean; /* tokens committed per target pass (1 without speculation) */
    double draft_ms, verify_ms;
    int n_drafted;          /* tree nodes proposed */
    int n_accepted;         /* draft tokens accepted */
    int thinking_tokens;    /* generated tokens inside the thinking section */
    bool exited_early;      /* the thinking was ended by the exit policy */
    int exit_token_index;   /* index (in generated tokens) of the forced end-of-thinking token, -1 */
    const char *exit_reason;/* "signals", "budget", "first-answer", "natural", "none" */
    int n_trace;            /* signal trace (when trace_signals): one entry per step while thinking */
    struct sx_signal_step {
        int token_index;    /* generated tokens before this step's commit */
        float raw[3];       /* confidence, progress, remain (mean over the step's tokens) */
        float smooth[3];    /* EWMA */
    } *trace;               /* malloc'ed; free with sx_generate_stats_free */
} sx_generate_stats;

void sx_generate_stats_free(sx_generate_stats *st);

/* Called for every generated token with its raw bytes; return false to stop. */
typedef bool (*sx_token_callback)(int32_t token, const char *piece, size_t len, void *user);

/* Evaluates the prompt (appended to the session's context) and generates.
 * The end token, when reached, is reported to the callback and counted but
 * not appended to the context. Every other generated token but the last is in
 * the context afterwards (the last one was sampled, not yet evaluated), so a
 * conversation continues with another sx_generate on the same session; a
 * <think> opened earlier in the context counts for the exit policy. */
SX_MUST_USE sx_status sx_generate(sx_session *s, const int32_t *prompt, int n_prompt, const sx_generate_params *p, sx_token_callback cb,
                                  void *user, sx_generate_stats *out_stats);

#ifdef __cplusplus
}
#endif
#endif
