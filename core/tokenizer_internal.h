/* core/tokenizer_internal.h — shared internals of core/tokenizer*.c.
 * Not part of the public API; the unit test includes it to check the
 * pre-tokenizers directly against the HF reference splits. */
#ifndef SX_TOKENIZER_INTERNAL_H
#define SX_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tokenizer.h"
#include "ir/status.h"

/* ---- UTF-8 and Unicode classes (tokenizer_pretok.c) ---- */

#define SX_CP_INVALID 0xFFFFFFFFu /* an invalid UTF-8 byte, taken alone */

/* Decodes one code point from s[0..len), len >= 1. Returns the number of
 * bytes used (1..4). Invalid or truncated sequences, overlong forms,
 * surrogates and values above U+10FFFF give SX_CP_INVALID and 1 byte. */
size_t sx_utf8_decode(const unsigned char *s, size_t len, uint32_t *out_cp);

/* Unicode classes (the same values core/unicode_tables.h defines). */
#define SX_UCLASS_LETTER 1u
#define SX_UCLASS_NUMBER 2u
#define SX_UCLASS_SPACE 4u

/* SX_UCLASS_LETTER / _NUMBER / _SPACE, or 0 for everything else. */
uint32_t sx_unicode_class(uint32_t cp);

/* ---- pre-tokenizers (tokenizer_pretok.c) ---- */

typedef enum sx_pretok_kind {
    SX_PRETOK_GPT2 = 0,
    SX_PRETOK_SMOLLM, /* digits isolated, then gpt2 */
    SX_PRETOK_LLAMA3,
    SX_PRETOK_QWEN2,
} sx_pretok_kind;

/* Maps a GGUF tokenizer.ggml.pre name to a pre-tokenizer. NULL, "" and
 * "default" map to gpt2 (with *out_is_default set). Returns false for names
 * it does not know. *out_ignore_merges: whole-token words skip merges. */
bool sx_pretok_from_name(const char *pre, sx_pretok_kind *out_kind, bool *out_ignore_merges,
                         bool *out_is_default);

/* Called once per piece, in order; the pieces tile the text exactly. */
typedef sx_status (*sx_pretok_emit_fn)(void *user, size_t offset, size_t len);

/* Splits text[0..len) into pre-tokens. Scratch memory is allocated inside. */
sx_status sx_pretok_split(sx_pretok_kind kind, const char *text, size_t len, sx_pretok_emit_fn emit,
                          void *user) SX_MUST_USE;

/* ---- the tokenizer object (tokenizer.c), used by tokenizer_bpe.c ---- */

typedef struct sx_merge_slot {
    uint64_t key; /* (left id << 32) | right id; UINT64_MAX = empty */
    int32_t rank;
    int32_t id; /* merged token */
} sx_merge_slot;

enum {
    SX_TOKF_SPECIAL = 1, /* CONTROL or USER_DEFINED */
    SX_TOKF_EOG = 2,
    SX_TOKF_MERGEABLE = 4, /* SPM: may be formed by merging (not control/byte/unknown) */
};

struct sx_tokenizer {
    sx_tokenizer_kind kind;
    sx_pretok_kind pretok;
    bool ignore_merges;
    bool add_bos, add_space_prefix;
    int32_t n_tokens;
    int32_t bos, eos, eot, pad, unk;

    char *text;       /* all token texts, each NUL-terminated */
    size_t *text_off; /* [n_tokens] */
    uint32_t *text_len;
    char *piece;       /* decoded bytes of every token */
    size_t *piece_off; /* [n_tokens] */
    uint32_t *piece_len;
    uint8_t *type;  /* [n_tokens] sx_token_type */
    uint8_t *flags; /* [n_tokens] SX_TOKF_* */
    float *score;   /* [n_tokens] */
    size_t max_token_len;

    int32_t *str_ht; /* open addressing: token id or -1 */
    size_t str_mask;

    sx_merge_slot *merge_ht;
    size_t merge_mask;

    int32_t byte_tok[256]; /* BPE: byte-level char token; SPM: <0xXX> token; -1 if absent */

    /* Tokens matched in raw text before normal encoding, grouped by first
     * byte (special_start[b] .. special_start[b+1]), longest first. */
    int32_t *special;
    uint32_t special_start[257];
};

static inline uint64_t sx_tok_hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Token id of the exact string s[0..len), or -1. */
int32_t sx_tok_lookup(const sx_tokenizer *tok, const char *s, size_t len);

/* Growable id vector. */
typedef struct sx_idvec {
    int32_t *v;
    int64_t n, cap;
} sx_idvec;
sx_status sx_idvec_push(sx_idvec *iv, int32_t id) SX_MUST_USE;

/* Scratch space reused across the words of one encode call. */
typedef struct sx_bpe_scratch {
    void *sym;
    size_t sym_cap;
    void *heap;
    size_t heap_cap;
    char *buf;
    size_t buf_cap;
} sx_bpe_scratch;
void sx_bpe_scratch_free(sx_bpe_scratch *s);

/* tokenizer_bpe.c: encode one raw-text fragment (no special tokens in it). */
sx_status sx_bpe_encode_fragment(const sx_tokenizer *tok, const char *text, size_t len, sx_bpe_scratch *sc,
                                 sx_idvec *out) SX_MUST_USE;
/* `space_prefix`: add the U+2581 prefix (add_space_prefix and at the start
 * of the text or right after a special token). */
sx_status sx_spm_encode_fragment(const sx_tokenizer *tok, const char *text, size_t len, bool space_prefix,
                                 sx_bpe_scratch *sc, sx_idvec *out) SX_MUST_USE;

/* GPT-2 byte-level map: byte -> code point, and code point -> byte (-1). */
uint32_t sx_byte_to_cp(uint8_t b);
int sx_cp_to_byte(uint32_t cp);

#endif
