/* core/tokenizer_pretok.c — UTF-8 decoding, Unicode classes and the
 * byte-level BPE pre-tokenizers, written out by hand (no regex engine).
 *
 * Each pre-tokenizer is the regex of its model family (see core/tokenizer.h),
 * evaluated the way a backtracking regex engine would: at each position the
 * alternatives are tried in order and the first that matches wins. Every
 * matcher below documents the alternative it implements. The text is first
 * decoded to code points; an invalid UTF-8 byte becomes one "other" code
 * point, so any byte string splits (and byte-level BPE round-trips it).
 *
 * Tested in tests/test_tokenizer.c against the splits of HF tokenizers'
 * Split(Regex(...), "isolated") for the same patterns
 * (tests/ref/gen_tokenizer_cases.py).
 */
#include <stdlib.h>
#include <string.h>

#include "core/tokenizer_internal.h"
#include "core/unicode_tables.h"

size_t sx_utf8_decode(const unsigned char *s, size_t len, uint32_t *out_cp) {
    unsigned b0 = s[0];
    if (b0 < 0x80) {
        *out_cp = b0;
        return 1;
    }
    size_t n;
    uint32_t cp;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        n = 2;
        cp = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        n = 3;
        cp = b0 & 0x0F;
        if (b0 == 0xE0) lo = 0xA0;      /* no overlong forms */
        if (b0 == 0xED) hi = 0x9F;      /* no surrogates */
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        n = 4;
        cp = b0 & 0x07;
        if (b0 == 0xF0) lo = 0x90;      /* no overlong forms */
        if (b0 == 0xF4) hi = 0x8F;      /* nothing above U+10FFFF */
    } else {
        *out_cp = SX_CP_INVALID;
        return 1;
    }
    if (len < n || s[1] < lo || s[1] > hi) {
        *out_cp = SX_CP_INVALID;
        return 1;
    }
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80) {
            *out_cp = SX_CP_INVALID;
            return 1;
        }
        cp = (cp << 6) | (s[k] & 0x3Fu);
    }
    *out_cp = cp;
    return n;
}

uint32_t sx_unicode_class(uint32_t cp) {
    if (cp < 128) return sx_uclass_ascii[cp];
    if (cp > 0x10FFFF) return 0;
    size_t lo = 0, hi = SX_UCLASS_N_RANGES;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < sx_uclass_ranges[mid].first) {
            hi = mid;
        } else if (cp > sx_uclass_ranges[mid].last) {
            lo = mid + 1;
        } else {
            return sx_uclass_ranges[mid].cls;
        }
    }
    return 0;
}

bool sx_pretok_from_name(const char *pre, sx_pretok_kind *out_kind, bool *out_ignore_merges,
                         bool *out_is_default) {
    static const struct {
        const char *name;
        sx_pretok_kind kind;
        bool ignore_merges;
    } names[] = {
        {"gpt2", SX_PRETOK_GPT2, false},       {"gpt-2", SX_PRETOK_GPT2, false},
        {"mpt", SX_PRETOK_GPT2, false},        {"olmo", SX_PRETOK_GPT2, false},
        {"jais", SX_PRETOK_GPT2, false},       {"smollm", SX_PRETOK_SMOLLM, false},
        {"starcoder", SX_PRETOK_SMOLLM, false}, {"refact", SX_PRETOK_SMOLLM, false},
        {"command-r", SX_PRETOK_SMOLLM, false}, {"codeshell", SX_PRETOK_SMOLLM, false},
        {"exaone", SX_PRETOK_SMOLLM, false},   {"minerva-7b", SX_PRETOK_SMOLLM, false},
        {"minerva", SX_PRETOK_SMOLLM, false},  {"llama-bpe", SX_PRETOK_LLAMA3, true},
        {"llama3", SX_PRETOK_LLAMA3, true},    {"llama-v3", SX_PRETOK_LLAMA3, true},
        {"falcon3", SX_PRETOK_LLAMA3, true},   {"pixtral", SX_PRETOK_LLAMA3, true},
        {"dbrx", SX_PRETOK_LLAMA3, false},     {"smaug-bpe", SX_PRETOK_LLAMA3, false},
        {"qwen2", SX_PRETOK_QWEN2, false},     {"deepseek-r1-qwen", SX_PRETOK_QWEN2, false},
        {"megrez", SX_PRETOK_QWEN2, false},
    };
    *out_ignore_merges = false;
    *out_is_default = false;
    if (pre == NULL || pre[0] == 0 || strcmp(pre, "default") == 0) {
        *out_kind = SX_PRETOK_GPT2;
        *out_is_default = true;
        return true;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(pre, names[i].name) == 0) {
            *out_kind = names[i].kind;
            *out_ignore_merges = names[i].ignore_merges;
            return true;
        }
    }
    return false;
}

/* ---- matchers: each returns the number of code points matched at i (>= 1),
 * treating `end` as the end of the text ---- */

typedef struct cpbuf {
    const uint32_t *cp;
    const uint8_t *cl; /* SX_UCLASS_* */
} cpbuf;

#define IS_L(b, i) ((b)->cl[i] == SX_UCLASS_LETTER)
#define IS_N(b, i) ((b)->cl[i] == SX_UCLASS_NUMBER)
#define IS_S(b, i) ((b)->cl[i] == SX_UCLASS_SPACE)
#define IS_O(b, i) ((b)->cl[i] == 0) /* [^\s\p{L}\p{N}] */
#define IS_CRLF(b, i) ((b)->cp[i] == '\r' || (b)->cp[i] == '\n')

static size_t run_of(const cpbuf *b, size_t i, size_t end, uint8_t cls) {
    size_t j = i;
    while (j < end && b->cl[j] == cls) j++;
    return j - i;
}

/* \s+(?!\S) | \s+ at a whitespace code point: the whole run if it reaches
 * the end of the text, else the run minus its last code point (which then
 * prefixes the next piece), else (a run of one) that one code point. */
static size_t match_space_tail(const cpbuf *b, size_t i, size_t end) {
    size_t k = run_of(b, i, end, SX_UCLASS_SPACE);
    if (i + k == end) return k;
    return k > 1 ? k - 1 : k;
}

/* Case folding as the regex engines do it for (?i:...) on these letters:
 * ASCII, plus U+017F LATIN SMALL LETTER LONG S, which folds to 's'. */
static uint32_t fold(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c == 0x17F ? 's' : c; }

/* 's|'t|'re|'ve|'m|'ll|'d, case-sensitive or case-insensitive. */
static size_t match_contraction(const cpbuf *b, size_t i, size_t end, bool icase) {
    if (b->cp[i] != '\'' || i + 1 >= end) return 0;
    uint32_t a = icase ? fold(b->cp[i + 1]) : b->cp[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (i + 2 >= end) return 0;
    uint32_t c = icase ? fold(b->cp[i + 2]) : b->cp[i + 2];
    if ((a == 'r' && c == 'e') || (a == 'v' && c == 'e') || (a == 'l' && c == 'l')) return 3;
    return 0;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t match_gpt2(const cpbuf *b, size_t i, size_t end) {
    size_t m = match_contraction(b, i, end, false);
    if (m) return m;
    /* " ?X+": an optional U+0020 then a run of one class */
    size_t k = (b->cp[i] == ' ' && i + 1 < end && !IS_S(b, i + 1)) ? i + 1 : i;
    if (IS_L(b, k)) return k - i + run_of(b, k, end, SX_UCLASS_LETTER);
    if (IS_N(b, k)) return k - i + run_of(b, k, end, SX_UCLASS_NUMBER);
    if (IS_O(b, k)) return k - i + run_of(b, k, end, 0);
    return match_space_tail(b, i, end);
}

/* Llama 3 (max_digits 3) and Qwen2 (max_digits 1):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t match_llama3(const cpbuf *b, size_t i, size_t end, size_t max_digits) {
    size_t m = match_contraction(b, i, end, true);
    if (m) return m;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (IS_L(b, i)) return run_of(b, i, end, SX_UCLASS_LETTER);
    if (!IS_CRLF(b, i) && !IS_N(b, i) && i + 1 < end && IS_L(b, i + 1))
        return 1 + run_of(b, i + 1, end, SX_UCLASS_LETTER);
    /* \p{N}{1,max} */
    if (IS_N(b, i)) {
        size_t k = run_of(b, i, end, SX_UCLASS_NUMBER);
        return k < max_digits ? k : max_digits;
    }
    /* ?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t k = (b->cp[i] == ' ' && i + 1 < end && IS_O(b, i + 1)) ? i + 1 : i;
    if (IS_O(b, k)) {
        size_t j = k + run_of(b, k, end, 0);
        while (j < end && IS_CRLF(b, j)) j++;
        return j - i;
    }
    /* here b->cl[i] is whitespace. \s*[\r\n]+ : up to the last CR/LF of the run */
    size_t run = run_of(b, i, end, SX_UCLASS_SPACE);
    for (size_t j = i + run; j > i; j--) {
        if (IS_CRLF(b, j - 1)) return j - i;
    }
    return match_space_tail(b, i, end);
}

typedef struct split_ctx {
    cpbuf b;
    const size_t *off; /* [n + 1] byte offset of each code point */
    sx_pretok_emit_fn emit;
    void *user;
} split_ctx;

static sx_status split_range(const split_ctx *c, sx_pretok_kind kind, size_t i, size_t end) {
    while (i < end) {
        size_t m;
        switch (kind) {
        case SX_PRETOK_LLAMA3: m = match_llama3(&c->b, i, end, 3); break;
        case SX_PRETOK_QWEN2: m = match_llama3(&c->b, i, end, 1); break;
        default: m = match_gpt2(&c->b, i, end); break;
        }
        SX_RETURN_IF_ERROR(c->emit(c->user, c->off[i], c->off[i + m] - c->off[i]));
        i += m;
    }
    return SX_OK;
}

sx_status sx_pretok_split(sx_pretok_kind kind, const char *text, size_t len, sx_pretok_emit_fn emit,
                          void *user) {
    if (len == 0) return SX_OK;
    if (text == NULL || emit == NULL) return sx_set_error(SX_ERR_INVALID_ARG, "pre-tokenizer: NULL argument");
    if (len > SIZE_MAX / 16) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "pre-tokenizer: text too long");
    uint32_t *cp = malloc(len * sizeof *cp);
    uint8_t *cl = malloc(len);
    size_t *off = malloc((len + 1) * sizeof *off);
    sx_status st = SX_OK;
    if (!cp || !cl || !off) {
        st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "pre-tokenizer: out of memory for %zu bytes of text", len);
        goto done;
    }
    size_t n = 0;
    for (size_t p = 0; p < len;) {
        uint32_t c;
        size_t k = sx_utf8_decode((const unsigned char *)text + p, len - p, &c);
        cp[n] = c;
        cl[n] = (uint8_t)(c == SX_CP_INVALID ? 0 : sx_unicode_class(c));
        off[n] = p;
        n++;
        p += k;
    }
    off[n] = len;
    split_ctx c = {.b = {cp, cl}, .off = off, .emit = emit, .user = user};
    if (kind == SX_PRETOK_SMOLLM) {
        /* every \p{N} code point is a piece of its own; gpt2 runs between */
        size_t start = 0;
        for (size_t i = 0; i < n && st == SX_OK; i++) {
            if (cl[i] != SX_UCLASS_NUMBER) continue;
            st = split_range(&c, SX_PRETOK_GPT2, start, i);
            if (st == SX_OK) st = emit(user, off[i], off[i + 1] - off[i]);
            start = i + 1;
        }
        if (st == SX_OK) st = split_range(&c, SX_PRETOK_GPT2, start, n);
    } else {
        st = split_range(&c, kind, 0, n);
    }
done:
    free(cp);
    free(cl);
    free(off);
    return st;
}
