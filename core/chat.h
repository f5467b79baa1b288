/* core/chat.h — chat templates of the supported model families.
 *
 * Not a Jinja interpreter: each family's template is written out in C and
 * chosen from the GGUF's tokenizer.chat_template by its markers
 * (sx_chat_detect). The output is the prompt text; encode it with
 * sx_tokenizer_encode(..., add_special = true, parse_special = true), so the
 * model's BOS is added by the tokenizer where the model wants one (the text
 * itself never contains the BOS token, as in llama.cpp).
 *
 * Families (exact strings; "{x}" is a message field):
 *  SX_CHAT_CHATML        SmolLM2, Qwen2.5:
 *      <|im_start|>{role}\n{content}<|im_end|>\n ...
 *      generation prompt: <|im_start|>assistant\n
 *  SX_CHAT_CHATML_THINK  Qwen3 and the project's sumchain model: ChatML where
 *      assistant turns before the last user turn lose their <think> block, and
 *      later ones are written as <think>\n{reasoning}\n</think>\n\n{answer}
 *      (Qwen3's template); tool messages become <tool_response> blocks.
 *  SX_CHAT_LLAMA3        <|start_header_id|>{role}<|end_header_id|>\n\n{content, trimmed}<|eot_id|>
 *      generation prompt: <|start_header_id|>assistant<|end_header_id|>\n\n
 *  SX_CHAT_DEEPSEEK_R1   DeepSeek-R1 and its Llama/Qwen distills:
 *      {system prompts joined by \n\n}<｜User｜>{content}<｜Assistant｜>{answer}<｜end▁of▁sentence｜>
 *      (an assistant turn keeps only the text after its last </think>)
 *      generation prompt: <｜Assistant｜>
 * With `think`, the generation prompt is followed by "<think>\n" (the opening
 * of a thinking model's reasoning; DeepSeek-R1's own template does this).
 *
 * Messages' content is inserted verbatim: text in a user message that looks
 * like a control token (<|im_start|>) is parsed as that token if the prompt
 * is encoded with parse_special. Servers that take untrusted messages should
 * know this (HF and llama.cpp behave the same).
 *
 * Thread safety: all functions are pure; strings returned are malloc'ed and
 * owned by the caller.
 */
#ifndef SX_CHAT_H
#define SX_CHAT_H

#include <stdbool.h>

#include "core/specexit.h"
#include "ir/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sx_chat_template_kind {
    SX_CHAT_UNKNOWN = 0,
    SX_CHAT_CHATML,
    SX_CHAT_CHATML_THINK,
    SX_CHAT_LLAMA3,
    SX_CHAT_DEEPSEEK_R1,
} sx_chat_template_kind;

/* one message: role ("system", "user", "assistant", "tool", ...: [A-Za-z0-9_-]+)
 * and NUL-terminated UTF-8 content; the public sx_chat_message */
typedef sx_chat_message sx_chat_msg;

/* Family of a GGUF tokenizer.chat_template string, from its markers:
 * <｜Assistant｜>/<｜User｜> -> DEEPSEEK_R1, <|start_header_id|> -> LLAMA3,
 * <|im_start|> -> CHATML_THINK if it mentions <think>, else CHATML.
 * SX_CHAT_UNKNOWN for NULL or anything else. */
sx_chat_template_kind sx_chat_detect(const char *tmpl);

/* "chatml", "chatml-think", "llama3", "deepseek-r1", "unknown". Static. */
const char *sx_chat_kind_name(sx_chat_template_kind kind);

/* The inverse of sx_chat_kind_name (also accepts "qwen3" for chatml-think
 * and "deepseek" for deepseek-r1), for command-line overrides.
 * SX_ERR_INVALID_ARG for other names. */
sx_status sx_chat_kind_from_name(const char *name, sx_chat_template_kind *out) SX_MUST_USE;

/* The default system prompt a ChatML template injects when the first message
 * is not a system message (SmolLM2: "You are a helpful AI assistant named
 * SmolLM, trained by Hugging Face"; Qwen2.5: "You are Qwen, ..."): the literal
 * text between '<|im_start|>system\n and <|im_end|> inside one Jinja string
 * literal, with \n, \', \", \\ unescaped. *out is a malloc'ed string, or NULL
 * when the template has none. SX_ERR_INVALID_ARG for NULL out;
 * SX_ERR_OUT_OF_MEMORY. */
sx_status sx_chat_default_system(const char *tmpl, char **out) SX_MUST_USE;

/* Formats n messages (n >= 0) as a prompt. add_generation_prompt opens an
 * assistant turn at the end; think then also opens a <think> block.
 * default_system (may be NULL): used as a system message when n > 0 and the
 * first message is not a system message. *out: malloc'ed, NUL-terminated.
 * SX_ERR_INVALID_ARG: unknown kind, NULL out, NULL role/content, a role with
 * characters outside [A-Za-z0-9_-], or a role the family has no place for
 * (DEEPSEEK_R1: only system, user, assistant; CHATML_THINK: system, user,
 * assistant, tool). SX_ERR_OUT_OF_MEMORY. */
sx_status sx_chat_format(sx_chat_template_kind kind, const sx_chat_msg *msgs, int n, bool add_generation_prompt,
                         bool think, const char *default_system, char **out) SX_MUST_USE;

/* sx_chat_format with tools (OpenAI's tools array as JSON text, NULL: none):
 * the system turn gets Qwen's / Hermes' tools section (each tool as
 * json.dumps writes it), after the system prompt (chatml-think, as Qwen3) or
 * the system prompt or default one (chatml, as Qwen2.5); assistant tool calls
 * are written by the caller into the content as
 * <tool_call>\n{"name": ..., "arguments": ...}\n</tool_call> and "tool"
 * messages become <tool_response> blocks of a user turn. Other families:
 * SX_ERR_UNSUPPORTED. */
sx_status sx_chat_format_tools(sx_chat_template_kind kind, const sx_chat_msg *msgs, int n, const char *tools_json,
                               bool add_generation_prompt, bool think, const char *default_system, char **out) SX_MUST_USE;

#ifdef __cplusplus
}
#endif
#endif
