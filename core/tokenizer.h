/* core/tokenizer.h — byte-level BPE and SentencePiece-style BPE tokenizers.
 *
 * A tokenizer is built from plain arrays (what a GGUF file stores under
 * tokenizer.ggml.*); it does not know about GGUF. Two kinds:
 *
 *  - SX_TOKENIZER_BPE ("gpt2" in GGUF): byte-level BPE as in GPT-2, Llama 3,
 *    Qwen2/3, SmolLM2, DeepSeek-R1-Distill. Text is split by the model's
 *    pre-tokenizer (`pre`), every byte of a piece is mapped to its GPT-2
 *    byte-level character, and merges are applied by rank. Any byte string
 *    (including invalid UTF-8) encodes and decodes back exactly, provided
 *    the vocabulary has all 256 byte-level tokens.
 *  - SX_TOKENIZER_SPM ("llama" in GGUF): SentencePiece BPE driven by token
 *    scores (llama.cpp's algorithm): spaces become U+2581, an optional
 *    U+2581 prefix, repeatedly merge the adjacent pair whose concatenation is
 *    a token with the highest score; bytes that end up in no token use the
 *    <0xXX> byte tokens.
 *
 * Special tokens: tokens of type CONTROL are recognised in the text when the
 * caller asks (parse_special); tokens of type USER_DEFINED are always
 * recognised (as HF tokenizers and llama.cpp do). Leftmost match, longest
 * token first. The text between them is encoded normally.
 *
 * Pre-tokenizers (`pre`, GGUF tokenizer.ggml.pre), implemented by hand:
 *   "gpt2" family  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *                  (also "gpt-2", "mpt", "olmo", "jais", "default"/NULL with a warning)
 *   "smollm" family: every \p{N} split off alone first, then the gpt2 regex
 *                  (also "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva")
 *   "llama-bpe" family ("llama3", "llama-v3", "falcon3", "pixtral", "dbrx", "smaug-bpe"):
 *                  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *                  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *                  (words that are whole tokens skip the merges, as HF's ignore_merges)
 *   "qwen2" family ("deepseek-r1-qwen", "megrez"): as llama-bpe but \p{N} one digit at a time.
 * \p{L}, \p{N} are Unicode general categories L*, N*; \s is the Unicode
 * White_Space property (core/unicode_tables.h, generated). An unknown `pre`
 * is SX_ERR_UNSUPPORTED rather than a silently different tokenization.
 *
 * Thread safety: a created tokenizer is immutable; any number of threads may
 * encode/decode with it concurrently. Errors are reported through the status
 * and the thread-local message (sx_last_error()).
 *
 * Ownership: sx_tokenizer_create copies everything it needs from the
 * descriptor (the arrays may be freed right after). Arrays returned by
 * encode/decode are malloc'ed and owned by the caller (free()). Pointers
 * returned by getters are borrowed and live as long as the tokenizer.
 */
#ifndef SX_TOKENIZER_H
#define SX_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sx_tokenizer_kind {
    SX_TOKENIZER_BPE = 0, /* byte-level BPE; GGUF tokenizer.ggml.model "gpt2" */
    SX_TOKENIZER_SPM = 1, /* SentencePiece BPE via scores; GGUF model "llama" */
} sx_tokenizer_kind;

/* Token types, as GGUF tokenizer.ggml.token_type stores them. */
typedef enum sx_token_type {
    SX_TOKEN_TYPE_UNDEFINED = 0,
    SX_TOKEN_TYPE_NORMAL = 1,
    SX_TOKEN_TYPE_UNKNOWN = 2,
    SX_TOKEN_TYPE_CONTROL = 3,
    SX_TOKEN_TYPE_USER_DEFINED = 4,
    SX_TOKEN_TYPE_UNUSED = 5,
    SX_TOKEN_TYPE_BYTE = 6,
} sx_token_type;

typedef struct sx_tokenizer sx_tokenizer;

typedef struct sx_tokenizer_desc {
    sx_tokenizer_kind kind;
    /* Pre-tokenizer name (GGUF tokenizer.ggml.pre), BPE only; see above. */
    const char *pre;
    int64_t n_tokens;                /* 1 .. INT32_MAX */
    const char *const *tokens;       /* [n_tokens] token text (not necessarily NUL-terminated) */
    const size_t *token_lens;        /* [n_tokens] byte lengths; NULL: tokens are NUL-terminated */
    const int32_t *token_types;      /* [n_tokens] sx_token_type; NULL: all NORMAL except the
                                        bos/eos/eot/pad (CONTROL) and unk (UNKNOWN) ids */
    const float *scores;             /* [n_tokens] SPM merge scores; NULL: all 0 */
    int64_t n_merges;                /* BPE: number of merges (rank = index) */
    const char *const *merges;       /* [n_merges] "left right" */
    const size_t *merge_lens;        /* [n_merges]; NULL: NUL-terminated */
    int32_t bos_id, eos_id, eot_id, pad_id, unk_id; /* -1 if absent */
    bool add_bos;                    /* prepend bos when encoding with add_special */
    bool add_space_prefix;           /* SPM: prefix a space (U+2581) to the text */
} sx_tokenizer_desc;

/* Fills `d` with an empty BPE descriptor: no tokens, every special id -1,
 * add_bos false, add_space_prefix false. */
void sx_tokenizer_desc_init(sx_tokenizer_desc *d);

/* Builds a tokenizer. Validates everything: SX_ERR_INVALID_ARG for NULL or
 * impossible arguments; SX_ERR_FORMAT for bad vocabulary data (special ids
 * out of range, unknown token types, merges that are not "a b" with a, b and
 * ab all in the vocabulary, add_bos without a bos id); SX_ERR_UNSUPPORTED
 * for an unknown pre-tokenizer; SX_ERR_OUT_OF_MEMORY. On success the caller
 * owns *out (sx_tokenizer_destroy). */
sx_status sx_tokenizer_create(const sx_tokenizer_desc *d, sx_tokenizer **out) SX_MUST_USE;

/* Frees the tokenizer; NULL is a no-op. */
void sx_tokenizer_destroy(sx_tokenizer *tok);

/* Encodes `len` bytes of `text` (any bytes; NUL is an ordinary byte).
 * add_special: prepend the bos token if the model asks for it (add_bos).
 * parse_special: recognise CONTROL tokens (<|im_start|>, ...) in the text;
 * USER_DEFINED tokens are recognised either way.
 * On SX_OK, *out_ids is a malloc'ed array of *out_n ids (never NULL, even
 * when *out_n == 0); the caller frees it. On error *out_ids is NULL, *out_n 0.
 * A byte the vocabulary cannot represent (BPE: its byte-level character is
 * not a token; SPM: no <0xXX> token and no unk) is dropped, as HF tokenizers
 * and llama.cpp do. Errors: SX_ERR_INVALID_ARG (NULL arguments),
 * SX_ERR_OUT_OF_MEMORY. Thread-safe. */
sx_status sx_tokenizer_encode(const sx_tokenizer *tok, const char *text, size_t len, bool add_special,
                              bool parse_special, int32_t **out_ids, int64_t *out_n) SX_MUST_USE;

/* The raw bytes token `id` stands for: byte-level characters mapped back to
 * bytes (BPE), U+2581 -> space and <0xAB> -> byte 0xAB (SPM); CONTROL and
 * USER_DEFINED tokens give their text. A piece may be part of a UTF-8
 * character: streaming callers concatenate bytes and print only complete
 * characters (sx_utf8_complete_len). Writes the piece to buf (no NUL) and its
 * length to *out_len. SX_ERR_INVALID_ARG if id is out of range, or if `cap`
 * is too small (then *out_len is still the length needed). */
sx_status sx_tokenizer_token_to_piece(const sx_tokenizer *tok, int32_t id, char *buf, size_t cap,
                                      size_t *out_len) SX_MUST_USE;

/* The same piece, borrowed (not NUL-terminated); NULL if id is out of range. */
const char *sx_tokenizer_piece(const sx_tokenizer *tok, int32_t id, size_t *out_len);

/* The token's text as stored in the vocabulary (e.g. "Ġthe", "▁the",
 * "<|im_start|>"), borrowed and NUL-terminated; NULL if id is out of range. */
const char *sx_tokenizer_token_text(const sx_tokenizer *tok, int32_t id, size_t *out_len);

/* Decodes n ids into a malloc'ed, NUL-terminated string (*out, caller frees)
 * of *out_len bytes (it may contain NUL bytes or invalid UTF-8 if the ids
 * do). skip_special leaves out CONTROL tokens. SPM with add_space_prefix:
 * one leading space of the result is removed (as SentencePiece does).
 * SX_ERR_INVALID_ARG for an id out of range. out_len may be NULL. */
sx_status sx_tokenizer_decode(const sx_tokenizer *tok, const int32_t *ids, int64_t n, bool skip_special,
                              char **out, size_t *out_len) SX_MUST_USE;

/* ---- lookups (all O(1) and thread-safe) ---- */
sx_tokenizer_kind sx_tokenizer_get_kind(const sx_tokenizer *tok);
int64_t sx_tokenizer_n_vocab(const sx_tokenizer *tok);
int32_t sx_tokenizer_bos(const sx_tokenizer *tok); /* -1 if absent */
int32_t sx_tokenizer_eos(const sx_tokenizer *tok); /* -1 if absent */
/* End-of-turn token: eot_id if given, else a CONTROL token named <|eot_id|>,
 * <|im_end|>, <|end|>, <end_of_turn> or <｜end▁of▁sentence｜>, else eos; -1 if none. */
int32_t sx_tokenizer_eot(const sx_tokenizer *tok);
int32_t sx_tokenizer_unk(const sx_tokenizer *tok);
bool sx_tokenizer_add_bos(const sx_tokenizer *tok);

/* Id of the token whose text is exactly `text` (e.g. "</think>", "Ġthe"),
 * or -1. */
int32_t sx_tokenizer_find(const sx_tokenizer *tok, const char *text);
int32_t sx_tokenizer_find_n(const sx_tokenizer *tok, const char *text, size_t len);

/* CONTROL or USER_DEFINED token. False for out-of-range ids. */
bool sx_tokenizer_is_special(const sx_tokenizer *tok, int32_t id);
/* sx_token_type of the token; -1 for out-of-range ids. */
int sx_tokenizer_token_type(const sx_tokenizer *tok, int32_t id);
/* End of generation: eos, eot, and the CONTROL/USER_DEFINED tokens named
 * <|endoftext|>, <|im_end|>, <|eot_id|>, <|eom_id|>, <|end_of_text|>, <|end|>,
 * <end_of_turn>, </s>, <｜end▁of▁sentence｜>. False for out-of-range ids. */
bool sx_tokenizer_is_eog(const sx_tokenizer *tok, int32_t id);

/* Length of the longest prefix of s[0..len) that does not end inside an
 * unfinished UTF-8 sequence: the bytes a streaming printer can emit now.
 * Invalid bytes count as complete (they will never become valid). */
size_t sx_utf8_complete_len(const char *s, size_t len);

#ifdef __cplusplus
}
#endif
#endif
