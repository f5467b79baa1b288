/* core/tokenizer.c — tokenizer object: validation and construction from the
 * descriptor, lookups, special-token partitioning, encode dispatch, decode.
 * The merge algorithms live in tokenizer_bpe.c, the pre-tokenizers in
 * tokenizer_pretok.c. See core/tokenizer.h for the contract. */
#include <stdlib.h>
#include <string.h>

#include "core/tokenizer_internal.h"

#define SX_TOKEN_MAX_BYTES (1u << 20) /* longest token text accepted */

/* ---- small helpers ---- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* A short printable rendering of token bytes for error messages. */
static const char *show(const char *s, size_t n, char buf[80]) {
    size_t o = 0;
    for (size_t i = 0; i < n && o < 70; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f && c != '\\') {
            buf[o++] = (char)c;
        } else {
            static const char hex[] = "0123456789abcdef";
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        }
    }
    if (o >= 70) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = 0;
    return buf;
}

sx_status sx_idvec_push(sx_idvec *iv, int32_t id) {
    if (iv->n == iv->cap) {
        int64_t cap = iv->cap ? iv->cap * 2 : 64;
        int32_t *v = realloc(iv->v, (size_t)cap * sizeof *v);
        if (!v) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for %lld ids", (long long)cap);
        iv->v = v;
        iv->cap = cap;
    }
    iv->v[iv->n++] = id;
    return SX_OK;
}

void sx_bpe_scratch_free(sx_bpe_scratch *s) {
    free(s->sym);
    free(s->heap);
    free(s->buf);
    memset(s, 0, sizeof *s);
}

/* ---- GPT-2 byte-level map ----
 * Printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for themselves;
 * the other 68 bytes, in order, are U+0100 .. U+0143. */
static bool byte_printable(unsigned b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

uint32_t sx_byte_to_cp(uint8_t b) {
    if (byte_printable(b)) return b;
    if (b <= 0x20) return 256u + b;
    if (b <= 0xA0) return 256u + 33u + (b - 0x7Fu);
    return 256u + 67u; /* 0xAD */
}

int sx_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_printable(cp) ? (int)cp : -1;
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 67) return (int)(0x7F + cp - 256 - 33);
    if (cp == 256 + 67) return 0xAD;
    return -1;
}

static size_t utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- lookups ---- */

static const char *tok_text(const sx_tokenizer *t, int32_t id) { return t->text + t->text_off[id]; }

int32_t sx_tok_lookup(const sx_tokenizer *t, const char *s, size_t len) {
    size_t h = (size_t)hash_bytes(s, len) & t->str_mask;
    for (;;) {
        int32_t id = t->str_ht[h];
        if (id < 0) return -1;
        if (t->text_len[id] == len && memcmp(tok_text(t, id), s, len) == 0) return id;
        h = (h + 1) & t->str_mask;
    }
}

static bool valid_id(const sx_tokenizer *t, int32_t id) { return t && id >= 0 && id < t->n_tokens; }

sx_tokenizer_kind sx_tokenizer_get_kind(const sx_tokenizer *t) { return t->kind; }
int64_t sx_tokenizer_n_vocab(const sx_tokenizer *t) { return t ? t->n_tokens : 0; }
int32_t sx_tokenizer_bos(const sx_tokenizer *t) { return t ? t->bos : -1; }
int32_t sx_tokenizer_eos(const sx_tokenizer *t) { return t ? t->eos : -1; }
int32_t sx_tokenizer_eot(const sx_tokenizer *t) { return t ? t->eot : -1; }
int32_t sx_tokenizer_unk(const sx_tokenizer *t) { return t ? t->unk : -1; }
bool sx_tokenizer_add_bos(const sx_tokenizer *t) { return t && t->add_bos; }

int32_t sx_tokenizer_find_n(const sx_tokenizer *t, const char *text, size_t len) {
    if (!t || (!text && len)) return -1;
    return sx_tok_lookup(t, text ? text : "", len);
}

int32_t sx_tokenizer_find(const sx_tokenizer *t, const char *text) {
    return text ? sx_tokenizer_find_n(t, text, strlen(text)) : -1;
}

bool sx_tokenizer_is_special(const sx_tokenizer *t, int32_t id) {
    return valid_id(t, id) && (t->flags[id] & SX_TOKF_SPECIAL);
}

bool sx_tokenizer_is_eog(const sx_tokenizer *t, int32_t id) { return valid_id(t, id) && (t->flags[id] & SX_TOKF_EOG); }

int sx_tokenizer_token_type(const sx_tokenizer *t, int32_t id) { return valid_id(t, id) ? t->type[id] : -1; }

const char *sx_tokenizer_token_text(const sx_tokenizer *t, int32_t id, size_t *out_len) {
    if (!valid_id(t, id)) return NULL;
    if (out_len) *out_len = t->text_len[id];
    return tok_text(t, id);
}

const char *sx_tokenizer_piece(const sx_tokenizer *t, int32_t id, size_t *out_len) {
    if (!valid_id(t, id)) return NULL;
    if (out_len) *out_len = t->piece_len[id];
    return t->piece + t->piece_off[id];
}

sx_status sx_tokenizer_token_to_piece(const sx_tokenizer *t, int32_t id, char *buf, size_t cap, size_t *out_len) {
    if (!t || !out_len) return sx_set_error(SX_ERR_INVALID_ARG, "token_to_piece: NULL argument");
    if (!valid_id(t, id))
        return sx_set_error(SX_ERR_INVALID_ARG, "token_to_piece: id %d out of range [0, %d)", id, t->n_tokens);
    size_t n = t->piece_len[id];
    *out_len = n;
    if (n > cap)
        return sx_set_error(SX_ERR_INVALID_ARG, "token_to_piece: token %d needs %zu bytes, buffer has %zu", id, n,
                            cap);
    if (n) memcpy(buf, t->piece + t->piece_off[id], n);
    return SX_OK;
}

sx_status sx_tokenizer_decode(const sx_tokenizer *t, const int32_t *ids, int64_t n, bool skip_special, char **out,
                              size_t *out_len) {
    if (out) *out = NULL;
    if (out_len) *out_len = 0;
    if (!t || !out || (n > 0 && !ids) || n < 0) return sx_set_error(SX_ERR_INVALID_ARG, "decode: bad argument");
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!valid_id(t, ids[i]))
            return sx_set_error(SX_ERR_INVALID_ARG, "decode: id %d at position %lld out of range [0, %d)", ids[i],
                                (long long)i, t->n_tokens);
        if (skip_special && t->type[ids[i]] == SX_TOKEN_TYPE_CONTROL) continue;
        total += t->piece_len[ids[i]]; /* each <= 1 MiB, n ids fit in memory: no overflow */
    }
    char *s = malloc(total + 1);
    if (!s) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "decode: out of memory for %zu bytes", total);
    size_t o = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (skip_special && t->type[id] == SX_TOKEN_TYPE_CONTROL) continue;
        memcpy(s + o, t->piece + t->piece_off[id], t->piece_len[id]);
        o += t->piece_len[id];
    }
    s[o] = 0;
    if (t->kind == SX_TOKENIZER_SPM && t->add_space_prefix && o > 0 && s[0] == ' ') {
        memmove(s, s + 1, o); /* moves the NUL too */
        o--;
    }
    *out = s;
    if (out_len) *out_len = o;
    return SX_OK;
}

size_t sx_utf8_complete_len(const char *s, size_t len) {
    if (!s) return 0;
    /* look at most 3 bytes back for a lead byte whose sequence is unfinished */
    size_t back = len < 3 ? len : 3;
    for (size_t k = 1; k <= back; k++) {
        unsigned char c = (unsigned char)s[len - k];
        if ((c & 0xC0) == 0x80) continue; /* continuation: keep looking */
        size_t need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 1;
        if (need > k) {
            /* unfinished only if what is there so far is a valid start */
            uint32_t cp;
            unsigned char tmp[4] = {c, 0x80, 0x80, 0x80};
            for (size_t j = 1; j < k; j++) tmp[j] = (unsigned char)s[len - k + j];
            /* pad with the smallest continuation that keeps the prefix valid */
            if (k == 1 && c == 0xE0) tmp[1] = 0xA0;
            if (k == 1 && c == 0xF0) tmp[1] = 0x90;
            if (sx_utf8_decode(tmp, need, &cp) == need) return len - k;
        }
        return len;
    }
    return len;
}

/* ---- construction ---- */

void sx_tokenizer_desc_init(sx_tokenizer_desc *d) {
    memset(d, 0, sizeof *d);
    d->kind = SX_TOKENIZER_BPE;
    d->bos_id = d->eos_id = d->eot_id = d->pad_id = d->unk_id = -1;
}

void sx_tokenizer_destroy(sx_tokenizer *t) {
    if (!t) return;
    free(t->text);
    free(t->text_off);
    free(t->text_len);
    free(t->piece);
    free(t->piece_off);
    free(t->piece_len);
    free(t->type);
    free(t->flags);
    free(t->score);
    free(t->str_ht);
    free(t->merge_ht);
    free(t->special);
    free(t);
}

static sx_status copy_vocab(sx_tokenizer *t, const sx_tokenizer_desc *d) {
    int32_t n = t->n_tokens;
    size_t total = 0;
    t->text_off = malloc((size_t)n * sizeof *t->text_off);
    t->text_len = malloc((size_t)n * sizeof *t->text_len);
    t->type = malloc((size_t)n);
    t->flags = calloc((size_t)n, 1);
    t->score = malloc((size_t)n * sizeof *t->score);
    if (!t->text_off || !t->text_len || !t->type || !t->flags || !t->score)
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for %d tokens", n);
    for (int32_t i = 0; i < n; i++) {
        size_t len;
        if (d->tokens[i] == NULL) {
            if (d->token_lens && d->token_lens[i] == 0) {
                len = 0;
            } else {
                return sx_set_error(SX_ERR_FORMAT, "tokenizer: token %d has no text (NULL)", i);
            }
        } else {
            len = d->token_lens ? d->token_lens[i] : strlen(d->tokens[i]);
        }
        if (len > SX_TOKEN_MAX_BYTES)
            return sx_set_error(SX_ERR_FORMAT, "tokenizer: token %d is %zu bytes long (limit %u)", i, len,
                                SX_TOKEN_MAX_BYTES);
        t->text_off[i] = total;
        t->text_len[i] = (uint32_t)len;
        total += len + 1; /* cannot overflow: n < 2^31 tokens of <= 1 MiB */
        if (len > t->max_token_len) t->max_token_len = len;
    }
    t->text = malloc(total ? total : 1);
    if (!t->text) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for %zu bytes of tokens", total);
    for (int32_t i = 0; i < n; i++) {
        if (t->text_len[i]) memcpy(t->text + t->text_off[i], d->tokens[i], t->text_len[i]);
        t->text[t->text_off[i] + t->text_len[i]] = 0;
        /* arrays may point into a GGUF mapping, where they need not be aligned */
        if (d->scores) memcpy(&t->score[i], (const char *)d->scores + sizeof(float) * (size_t)i, sizeof(float));
        else t->score[i] = 0.0f;
        if (d->token_types) {
            int32_t ty;
            memcpy(&ty, (const char *)d->token_types + sizeof(int32_t) * (size_t)i, sizeof ty);
            if (ty < SX_TOKEN_TYPE_UNDEFINED || ty > SX_TOKEN_TYPE_BYTE)
                return sx_set_error(SX_ERR_FORMAT, "tokenizer: token %d has unknown token type %d (expected 0..6)",
                                    i, ty);
            t->type[i] = (uint8_t)ty;
        } else {
            t->type[i] = SX_TOKEN_TYPE_NORMAL;
        }
    }
    if (!d->token_types) {
        int32_t ctl[] = {t->bos, t->eos, t->eot, t->pad};
        for (size_t k = 0; k < 4; k++)
            if (ctl[k] >= 0) t->type[ctl[k]] = SX_TOKEN_TYPE_CONTROL;
        if (t->unk >= 0) t->type[t->unk] = SX_TOKEN_TYPE_UNKNOWN;
    }
    /* string -> id table; a repeated text keeps its first id */
    size_t cap = pow2_at_least((size_t)n * 2);
    t->str_ht = malloc(cap * sizeof *t->str_ht);
    if (!t->str_ht) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for the token table");
    memset(t->str_ht, 0xff, cap * sizeof *t->str_ht);
    t->str_mask = cap - 1;
    int32_t dups = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t h = (size_t)hash_bytes(tok_text(t, i), t->text_len[i]) & t->str_mask;
        for (;;) {
            int32_t id = t->str_ht[h];
            if (id < 0) {
                t->str_ht[h] = i;
                break;
            }
            if (t->text_len[id] == t->text_len[i] && memcmp(tok_text(t, id), tok_text(t, i), t->text_len[i]) == 0) {
                dups++;
                break;
            }
            h = (h + 1) & t->str_mask;
        }
    }
    if (dups) SX_LOGD("tokenizer: %d tokens repeat an earlier token's text; lookups give the first id", dups);
    return SX_OK;
}

static sx_status build_merges(sx_tokenizer *t, const sx_tokenizer_desc *d) {
    size_t cap = pow2_at_least((size_t)d->n_merges * 2);
    t->merge_ht = malloc(cap * sizeof *t->merge_ht);
    if (!t->merge_ht) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for %lld merges",
                                          (long long)d->n_merges);
    for (size_t i = 0; i < cap; i++) t->merge_ht[i].key = UINT64_MAX;
    t->merge_mask = cap - 1;
    char *cat = malloc(2 * t->max_token_len + 1); /* both parts are tokens: at most max_token_len each */
    if (!cat) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    sx_status st = SX_OK;
    char b1[80];
    for (int64_t r = 0; r < d->n_merges; r++) {
        const char *m = d->merges[r];
        size_t len = m ? (d->merge_lens ? d->merge_lens[r] : strlen(m)) : 0;
        if (!m || len > 2 * SX_TOKEN_MAX_BYTES) {
            st = sx_set_error(SX_ERR_FORMAT, "tokenizer: merge %lld is %s", (long long)r, m ? "too long" : "NULL");
            break;
        }
        /* "left right": split at the first space after the first byte */
        const char *sp = len > 1 ? memchr(m + 1, ' ', len - 1) : NULL;
        if (!sp || sp == m + len - 1) {
            st = sx_set_error(SX_ERR_FORMAT, "tokenizer: merge %lld '%s' is not of the form 'left right'",
                              (long long)r, show(m, len, b1));
            break;
        }
        size_t ll = (size_t)(sp - m), rl = len - ll - 1;
        int32_t a = sx_tok_lookup(t, m, ll), b = sx_tok_lookup(t, sp + 1, rl);
        if (a < 0 || b < 0) {
            st = sx_set_error(SX_ERR_FORMAT, "tokenizer: merge %lld '%s': '%s' is not a token", (long long)r,
                              show(m, len, b1), a < 0 ? "left part" : "right part");
            break;
        }
        memcpy(cat, m, ll);
        memcpy(cat + ll, sp + 1, rl);
        int32_t ab = sx_tok_lookup(t, cat, ll + rl);
        if (ab < 0) {
            st = sx_set_error(SX_ERR_FORMAT, "tokenizer: merge %lld '%s': the merged text is not a token",
                              (long long)r, show(m, len, b1));
            break;
        }
        if (r > INT32_MAX) {
            st = sx_set_error(SX_ERR_FORMAT, "tokenizer: too many merges (%lld)", (long long)d->n_merges);
            break;
        }
        uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
        size_t h = (size_t)sx_tok_hash_u64(key) & t->merge_mask;
        while (t->merge_ht[h].key != UINT64_MAX && t->merge_ht[h].key != key) h = (h + 1) & t->merge_mask;
        if (t->merge_ht[h].key == UINT64_MAX) { /* a repeated merge keeps its first (best) rank */
            t->merge_ht[h].key = key;
            t->merge_ht[h].rank = (int32_t)r;
            t->merge_ht[h].id = ab;
        }
    }
    free(cat);
    return st;
}

/* The decoded bytes of every token (what token_to_piece returns). */
static sx_status build_pieces(sx_tokenizer *t) {
    int32_t n = t->n_tokens;
    size_t total = t->text_off[n - 1] + t->text_len[n - 1] + 1; /* pieces are never longer than texts */
    t->piece = malloc(total);
    t->piece_off = malloc((size_t)n * sizeof *t->piece_off);
    t->piece_len = malloc((size_t)n * sizeof *t->piece_len);
    if (!t->piece || !t->piece_off || !t->piece_len)
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for the decode table");
    size_t o = 0;
    char b1[80];
    for (int32_t i = 0; i < n; i++) {
        const unsigned char *s = (const unsigned char *)tok_text(t, i);
        size_t len = t->text_len[i];
        uint8_t ty = t->type[i];
        t->piece_off[i] = o;
        if (ty == SX_TOKEN_TYPE_CONTROL || ty == SX_TOKEN_TYPE_USER_DEFINED ||
            (t->kind == SX_TOKENIZER_SPM && ty == SX_TOKEN_TYPE_UNKNOWN)) {
            memcpy(t->piece + o, s, len);
            o += len;
        } else if (t->kind == SX_TOKENIZER_SPM && ty == SX_TOKEN_TYPE_BYTE) {
            unsigned v = 0;
            bool ok = len == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>';
            for (size_t k = 3; ok && k < 5; k++) {
                unsigned c = s[k];
                unsigned dgt = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                             : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 16;
                ok = dgt < 16;
                v = v * 16 + dgt;
            }
            if (!ok)
                return sx_set_error(SX_ERR_FORMAT, "tokenizer: token %d has type BYTE but its text '%s' is not <0xXX>",
                                    i, show((const char *)s, len, b1));
            t->piece[o++] = (char)v;
        } else if (t->kind == SX_TOKENIZER_SPM) {
            for (size_t k = 0; k < len;) {
                if (k + 3 <= len && s[k] == 0xE2 && s[k + 1] == 0x96 && s[k + 2] == 0x81) {
                    t->piece[o++] = ' ';
                    k += 3;
                } else {
                    t->piece[o++] = (char)s[k++];
                }
            }
        } else { /* byte-level: map every character back to its byte */
            for (size_t k = 0; k < len;) {
                uint32_t cp;
                size_t m = sx_utf8_decode(s + k, len - k, &cp);
                int b = cp == SX_CP_INVALID ? -1 : sx_cp_to_byte(cp);
                if (b >= 0) {
                    t->piece[o++] = (char)b;
                } else { /* not a byte-level character: keep it as it is */
                    memcpy(t->piece + o, s + k, m);
                    o += m;
                }
                k += m;
            }
        }
        t->piece_len[i] = (uint32_t)(o - t->piece_off[i]);
    }
    return SX_OK;
}

typedef struct special_ent {
    unsigned char first;
    uint32_t len;
    int32_t id;
} special_ent;

static int special_cmp(const void *pa, const void *pb) {
    const special_ent *a = pa, *b = pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1; /* longest first */
    return a->id < b->id ? -1 : a->id > b->id;
}

static sx_status build_specials(sx_tokenizer *t) {
    int32_t n = t->n_tokens, cnt = 0;
    for (int32_t i = 0; i < n; i++) {
        uint8_t ty = t->type[i];
        if ((ty == SX_TOKEN_TYPE_CONTROL || ty == SX_TOKEN_TYPE_USER_DEFINED || ty == SX_TOKEN_TYPE_UNKNOWN) &&
            t->text_len[i] > 0 && sx_tok_lookup(t, tok_text(t, i), t->text_len[i]) == i)
            cnt++;
    }
    special_ent *e = malloc((size_t)(cnt ? cnt : 1) * sizeof *e);
    t->special = malloc((size_t)(cnt ? cnt : 1) * sizeof *t->special);
    if (!e || !t->special) {
        free(e);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    }
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        uint8_t ty = t->type[i];
        if ((ty == SX_TOKEN_TYPE_CONTROL || ty == SX_TOKEN_TYPE_USER_DEFINED || ty == SX_TOKEN_TYPE_UNKNOWN) &&
            t->text_len[i] > 0 && sx_tok_lookup(t, tok_text(t, i), t->text_len[i]) == i)
            e[k++] = (special_ent){(unsigned char)tok_text(t, i)[0], t->text_len[i], i};
    }
    qsort(e, (size_t)cnt, sizeof *e, special_cmp);
    memset(t->special_start, 0, sizeof t->special_start);
    for (int32_t i = 0; i < cnt; i++) {
        t->special[i] = e[i].id;
        t->special_start[e[i].first + 1]++;
    }
    for (int b = 0; b < 256; b++) t->special_start[b + 1] += t->special_start[b];
    free(e);
    return SX_OK;
}

#define DS_EOS "<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>" /* <｜end▁of▁sentence｜> */

static void build_flags(sx_tokenizer *t, bool have_types) {
    static const char *const eog_names[] = {
        "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|end|>",
        "<end_of_turn>", "</s>", DS_EOS,
    };
    static const char *const eot_names[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
        DS_EOS,
    };
    for (int32_t i = 0; i < t->n_tokens; i++) {
        uint8_t ty = t->type[i];
        if (ty == SX_TOKEN_TYPE_CONTROL || ty == SX_TOKEN_TYPE_USER_DEFINED) t->flags[i] |= SX_TOKF_SPECIAL;
        if (ty != SX_TOKEN_TYPE_CONTROL && ty != SX_TOKEN_TYPE_BYTE && ty != SX_TOKEN_TYPE_UNKNOWN)
            t->flags[i] |= SX_TOKF_MERGEABLE;
    }
    if (t->eos >= 0) t->flags[t->eos] |= SX_TOKF_EOG;
    if (t->eot >= 0) t->flags[t->eot] |= SX_TOKF_EOG;
    for (size_t k = 0; k < sizeof eog_names / sizeof eog_names[0]; k++) {
        int32_t id = sx_tokenizer_find(t, eog_names[k]);
        if (id >= 0 && (!have_types || (t->flags[id] & SX_TOKF_SPECIAL))) t->flags[id] |= SX_TOKF_EOG;
    }
    if (t->eot < 0) {
        for (size_t k = 0; k < sizeof eot_names / sizeof eot_names[0] && t->eot < 0; k++) {
            int32_t id = sx_tokenizer_find(t, eot_names[k]);
            if (id >= 0 && (!have_types || (t->flags[id] & SX_TOKF_SPECIAL))) t->eot = id;
        }
        if (t->eot < 0) t->eot = t->eos;
        if (t->eot >= 0) t->flags[t->eot] |= SX_TOKF_EOG;
    }
}

static sx_status check_id(const char *what, int32_t id, int64_t n) {
    if (id < -1 || id >= n)
        return sx_set_error(SX_ERR_FORMAT, "tokenizer: %s id %d is out of range (vocabulary has %lld tokens)", what, id,
                            (long long)n);
    return SX_OK;
}

static sx_status create(const sx_tokenizer_desc *d, sx_tokenizer *t) {
    if (d->kind != SX_TOKENIZER_BPE && d->kind != SX_TOKENIZER_SPM)
        return sx_set_error(SX_ERR_INVALID_ARG, "tokenizer: unknown kind %d", (int)d->kind);
    if (d->n_tokens < 1 || d->n_tokens > INT32_MAX)
        return sx_set_error(SX_ERR_FORMAT, "tokenizer: vocabulary size %lld out of range [1, 2^31)",
                            (long long)d->n_tokens);
    if (!d->tokens) return sx_set_error(SX_ERR_INVALID_ARG, "tokenizer: tokens is NULL");
    if (d->n_merges < 0 || (d->n_merges > 0 && !d->merges))
        return sx_set_error(SX_ERR_INVALID_ARG, "tokenizer: %lld merges but no merge array", (long long)d->n_merges);
    SX_RETURN_IF_ERROR(check_id("bos", d->bos_id, d->n_tokens));
    SX_RETURN_IF_ERROR(check_id("eos", d->eos_id, d->n_tokens));
    SX_RETURN_IF_ERROR(check_id("eot", d->eot_id, d->n_tokens));
    SX_RETURN_IF_ERROR(check_id("pad", d->pad_id, d->n_tokens));
    SX_RETURN_IF_ERROR(check_id("unk", d->unk_id, d->n_tokens));
    if (d->add_bos && d->bos_id < 0)
        return sx_set_error(SX_ERR_FORMAT, "tokenizer: add_bos is set but the vocabulary has no bos token");
    t->kind = d->kind;
    t->n_tokens = (int32_t)d->n_tokens;
    t->bos = d->bos_id;
    t->eos = d->eos_id;
    t->eot = d->eot_id;
    t->pad = d->pad_id;
    t->unk = d->unk_id;
    t->add_bos = d->add_bos;
    t->add_space_prefix = d->add_space_prefix;
    bool is_default = false;
    if (d->kind == SX_TOKENIZER_BPE) {
        if (!sx_pretok_from_name(d->pre, &t->pretok, &t->ignore_merges, &is_default))
            return sx_set_error(SX_ERR_UNSUPPORTED,
                                "tokenizer: unknown pre-tokenizer '%s' (supported: gpt2, smollm, llama-bpe, qwen2, "
                                "deepseek-r1-qwen and their aliases)",
                                d->pre);
    }
    SX_RETURN_IF_ERROR(copy_vocab(t, d));
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t n;
        if (t->kind == SX_TOKENIZER_BPE) {
            n = utf8_encode(sx_byte_to_cp((uint8_t)b), s);
        } else {
            static const char hex[] = "0123456789ABCDEF";
            memcpy(s, "<0x", 3);
            s[3] = hex[b >> 4];
            s[4] = hex[b & 15];
            s[5] = '>';
            n = 6;
        }
        t->byte_tok[b] = sx_tok_lookup(t, s, n);
    }
    if (t->kind == SX_TOKENIZER_BPE) {
        int missing = 0;
        for (int b = 0; b < 256; b++) missing += t->byte_tok[b] < 0;
        if (missing)
            SX_LOGI("tokenizer: %d of the 256 byte-level tokens are missing; those bytes are dropped when encoding",
                    missing);
        SX_RETURN_IF_ERROR(build_merges(t, d));
    }
    SX_RETURN_IF_ERROR(build_pieces(t));
    SX_RETURN_IF_ERROR(build_specials(t));
    build_flags(t, d->token_types != NULL);
    if (t->kind == SX_TOKENIZER_BPE && is_default)
        SX_LOGW("tokenizer: no model-specific pre-tokenizer ('%s'); using the GPT-2 regex", d->pre ? d->pre : "");
    if (t->kind == SX_TOKENIZER_SPM && !d->scores)
        SX_LOGW("tokenizer: SentencePiece vocabulary without scores; merges go left to right");
    return SX_OK;
}

sx_status sx_tokenizer_create(const sx_tokenizer_desc *d, sx_tokenizer **out) {
    if (!out) return sx_set_error(SX_ERR_INVALID_ARG, "tokenizer: out is NULL");
    *out = NULL;
    if (!d) return sx_set_error(SX_ERR_INVALID_ARG, "tokenizer: descriptor is NULL");
    sx_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    sx_status st = create(d, t);
    if (st != SX_OK) {
        sx_tokenizer_destroy(t);
        return st;
    }
    *out = t;
    return SX_OK;
}

/* ---- encoding ---- */

static sx_status encode_raw(const sx_tokenizer *t, const char *s, size_t n, bool *prev_special, sx_bpe_scratch *sc,
                            sx_idvec *out) {
    if (n == 0) return SX_OK;
    bool space_prefix = t->add_space_prefix && *prev_special;
    *prev_special = false;
    if (t->kind == SX_TOKENIZER_SPM) return sx_spm_encode_fragment(t, s, n, space_prefix, sc, out);
    return sx_bpe_encode_fragment(t, s, n, sc, out);
}

sx_status sx_tokenizer_encode(const sx_tokenizer *t, const char *text, size_t len, bool add_special,
                              bool parse_special, int32_t **out_ids, int64_t *out_n) {
    if (out_ids) *out_ids = NULL;
    if (out_n) *out_n = 0;
    if (!t || !out_ids || !out_n || (!text && len))
        return sx_set_error(SX_ERR_INVALID_ARG, "encode: NULL argument");
    sx_idvec iv = {0};
    sx_bpe_scratch sc = {0};
    sx_status st = SX_OK;
    if (add_special && t->add_bos) st = sx_idvec_push(&iv, t->bos);
    bool prev_special = true; /* SPM: the text start counts as after a special token */
    size_t start = 0, p = 0;
    while (st == SX_OK && p < len) {
        unsigned char c = (unsigned char)text[p];
        int32_t hit = -1;
        for (uint32_t k = t->special_start[c]; k < t->special_start[c + 1]; k++) {
            int32_t id = t->special[k];
            if (!parse_special && t->type[id] != SX_TOKEN_TYPE_USER_DEFINED) continue;
            size_t l = t->text_len[id];
            if (l <= len - p && memcmp(text + p, tok_text(t, id), l) == 0) {
                hit = id;
                break;
            }
        }
        if (hit < 0) {
            p++;
            continue;
        }
        st = encode_raw(t, text + start, p - start, &prev_special, &sc, &iv);
        if (st == SX_OK) st = sx_idvec_push(&iv, hit);
        prev_special = true;
        p += t->text_len[hit];
        start = p;
    }
    if (st == SX_OK && len > start) st = encode_raw(t, text + start, len - start, &prev_special, &sc, &iv);
    if (st == SX_OK && iv.v == NULL) { /* never hand back NULL on success */
        iv.v = malloc(sizeof *iv.v);
        if (!iv.v) st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "encode: out of memory");
    }
    sx_bpe_scratch_free(&sc);
    if (st != SX_OK) {
        free(iv.v);
        return st;
    }
    *out_ids = iv.v;
    *out_n = iv.n;
    return SX_OK;
}
