/* tools/server_req.h — an OpenAI-style request body to generation settings.
 *
 * Parses and validates the JSON of POST /v1/chat/completions and
 * /v1/completions (the OpenAI fields, llama-server's extensions and this
 * engine's speculation/exit fields; see the README's server section) on top
 * of the server's defaults. Every problem is reported with the offending
 * field and a message; nothing here touches the engine, so it is fuzzed on
 * its own (tests/fuzz/fuzz_request.c). */
#ifndef SX_SERVER_REQ_H
#define SX_SERVER_REQ_H

#include <stdbool.h>
#include <stddef.h>

#include "core/specexit.h"
#include "tools/server_text.h"

typedef enum sx_req_kind { SX_REQ_CHAT, SX_REQ_COMPLETION } sx_req_kind;

/* reasoning_effort "low": the SpecExit confidence threshold (the sumchain dev
 * set: 7% fewer tokens than the draft's 0.7 at the same accuracy), or the
 * thinking budget when the draft has no exit signals */
#define SX_REQ_LOW_EFFORT_CONF 0.5f
#define SX_REQ_LOW_EFFORT_BUDGET 512

/* tool_choice */
typedef enum sx_tool_choice { SX_TOOLS_AUTO = 0, SX_TOOLS_NONE, SX_TOOLS_REQUIRED, SX_TOOLS_NAMED } sx_tool_choice;

#define SX_REQ_MAX_CHOICES 16

typedef struct sx_req {
    sx_req_kind kind;
    int n_choices;          /* OpenAI's n: choices generated one after another on the request's slot (the prompt once) */
    struct cJSON *root;     /* owns every string below */
    sx_chat_message *msgs;  /* chat: the conversation */
    char **joined;          /* contents assembled from text parts (owned), [n_joined] */
    int n_msgs, n_joined;
    const char *prompt;     /* completion: the prompt text, or NULL when given as token ids: */
    int32_t *prompt_ids;    /* (owned) */
    int n_prompt_ids;
    bool echo;              /* completion: the prompt comes back before the text (with logprobs, scored) */
    bool token_ids;         /* return_tokens_as_token_ids: logprobs name tokens "token_id:ID" */
    bool stream, include_usage;
    bool cache_prompt;      /* reuse a slot's matching prefix (default true) */
    int think;              /* chat_template_kwargs.enable_thinking: -1 unset, 0, 1 */
    const char *stops[SX_TEXT_MAX_STOPS];
    int n_stops;
    sx_generate_params gp;  /* the server defaults with the request's overrides */
    char *grammar;          /* a grammar made from json_schema / response_format / tool_choice (owned); gp.grammar points here or into root */
    char *tools_json;       /* "tools" as JSON text (owned), NULL without tools */
    sx_tool_choice tool_choice;
    const char *tool_name;  /* SX_TOOLS_NAMED: the function */
    bool parallel_tool_calls;
    char *tools_call_grammar; /* tool_choice auto: one call's body, for a lazy grammar after <tool_call> (owned) */
    int32_t *bias_ids;      /* logit_bias (owned); gp.sampling points here */
    float *bias_vals;
} sx_req;

/* Parses body[0..len) (not NUL-terminated) for an endpoint of `kind` over
 * the defaults `def`. On failure returns false and writes the message and
 * the offending field ("" when none) into err/param. The request must be
 * released with sx_req_free in both cases. */
bool sx_req_parse(const char *body, size_t len, sx_req_kind kind, const sx_generate_params *def, sx_req *out, char *err, size_t err_cap,
                  char *param, size_t param_cap);
void sx_req_free(sx_req *r);
/* Tool calls in an answer (<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>
 * blocks, the ChatML models' format): OpenAI's "tool_calls" array (ids
 * "call_<id_prefix>_<i>", arguments as a JSON string), and the text outside
 * the blocks, trimmed, into *text. NULL (and the whole answer in *text) when
 * there is no block or one is not a call. Caller owns the array (cJSON_Delete). */
struct cJSON *sx_tool_calls_parse(const char *content, const char *id_prefix, sx_sbuf *text);
/* Whether the request's tools are in play (given, and tool_choice not "none"). */
static inline bool sx_req_tools(const sx_req *r) { return r->tools_json && r->tool_choice != SX_TOOLS_NONE; }

#endif
