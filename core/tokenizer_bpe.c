/* core/tokenizer_bpe.c — the two merge algorithms.
 *
 * Byte-level BPE (sx_bpe_encode_fragment): the fragment is split by the
 * pre-tokenizer; each piece starts as one symbol per byte (the token of the
 * byte's GPT-2 character) and adjacent pairs are merged lowest rank first,
 * leftmost first among equal ranks (HF tokenizers' and llama.cpp's order), with
 * a binary heap and lazy invalidation: O(n log n) per piece.
 *
 * SentencePiece BPE (sx_spm_encode_fragment): spaces become U+2581 (plus a
 * U+2581 prefix when asked); symbols start as UTF-8 characters; repeatedly the
 * adjacent pair whose concatenation is a token with the highest score merges
 * (leftmost first among equal scores), as llama.cpp does. A symbol that is not
 * a token at the end is written as <0xXX> byte tokens (or unk).
 *
 * Tested in tests/test_tokenizer.c (real SmolLM2 vocabulary vs HF tokenizers,
 * a synthetic qwen2 vocabulary, a hand-checked SPM vocabulary).
 */
#include <stdlib.h>
#include <string.h>

#include "core/tokenizer_internal.h"

static sx_status grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return SX_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    if (c > SIZE_MAX / elem) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "tokenizer: word too long");
    void *q = realloc(*p, c * elem);
    if (!q) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for a %zu-symbol word", need);
    *p = q;
    *cap = c;
    return SX_OK;
}

/* SPM: a byte no token covers becomes its <0xXX> token, else unk, else it
 * is dropped (there is nothing to write). */
static sx_status push_byte_fallback(const sx_tokenizer *t, unsigned char b, sx_idvec *out) {
    if (t->byte_tok[b] >= 0) return sx_idvec_push(out, t->byte_tok[b]);
    if (t->unk >= 0) return sx_idvec_push(out, t->unk);
    return SX_OK;
}

/* ================= byte-level BPE ================= */

typedef struct bpe_sym {
    int32_t id; /* token; -1: merged away */
    int32_t prev, next;
} bpe_sym;

typedef struct bpe_ent {
    int32_t rank, left, lid, rid, mid;
} bpe_ent;

static bool bpe_less(const bpe_ent *a, const bpe_ent *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

typedef struct bpe_heap {
    bpe_ent *e;
    size_t n;
} bpe_heap;

static void bpe_heap_push(bpe_heap *h, bpe_ent x) {
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bpe_less(&x, &h->e[p])) break;
        h->e[i] = h->e[p];
        i = p;
    }
    h->e[i] = x;
}

static bpe_ent bpe_heap_pop(bpe_heap *h) {
    bpe_ent top = h->e[0], x = h->e[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bpe_less(&h->e[c + 1], &h->e[c])) c++;
        if (!bpe_less(&h->e[c], &x)) break;
        h->e[i] = h->e[c];
        i = c;
    }
    if (h->n) h->e[i] = x;
    return top;
}

static const sx_merge_slot *find_merge(const sx_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t h = (size_t)sx_tok_hash_u64(key) & t->merge_mask;
    for (;;) {
        const sx_merge_slot *s = &t->merge_ht[h];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
        h = (h + 1) & t->merge_mask;
    }
}

static void bpe_try_pair(const sx_tokenizer *t, const bpe_sym *sym, int32_t left, bpe_heap *h) {
    if (left < 0) return;
    int32_t right = sym[left].next;
    if (right < 0) return;
    const sx_merge_slot *m = find_merge(t, sym[left].id, sym[right].id);
    if (m) bpe_heap_push(h, (bpe_ent){m->rank, left, sym[left].id, sym[right].id, m->id});
}

typedef struct bpe_ctx {
    const sx_tokenizer *t;
    const unsigned char *text;
    sx_bpe_scratch *sc;
    sx_idvec *out;
} bpe_ctx;

static sx_status bpe_word(void *user, size_t off, size_t n) {
    bpe_ctx *c = user;
    const sx_tokenizer *t = c->t;
    const unsigned char *w = c->text + off;
    sx_bpe_scratch *sc = c->sc;
    if (n == 0) return SX_OK;
    if (n > INT32_MAX) return sx_set_error(SX_ERR_UNSUPPORTED, "tokenizer: a %zu-byte word is too long", n);
    if (t->ignore_merges && n <= t->max_token_len) { /* the whole word as one token */
        SX_RETURN_IF_ERROR(grow((void **)&sc->buf, &sc->buf_cap, 2 * n, 1));
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t cp = sx_byte_to_cp(w[i]);
            if (cp < 0x80) {
                sc->buf[o++] = (char)cp;
            } else {
                sc->buf[o++] = (char)(0xC0 | (cp >> 6));
                sc->buf[o++] = (char)(0x80 | (cp & 0x3F));
            }
        }
        int32_t id = sx_tok_lookup(t, sc->buf, o);
        if (id >= 0) return sx_idvec_push(c->out, id);
    }
    SX_RETURN_IF_ERROR(grow(&sc->sym, &sc->sym_cap, n, sizeof(bpe_sym)));
    /* each merge pushes at most 2 entries: n - 1 + 2 (n - 1) bound */
    SX_RETURN_IF_ERROR(grow(&sc->heap, &sc->heap_cap, 3 * n, sizeof(bpe_ent)));
    bpe_sym *sym = sc->sym;
    bpe_heap h = {sc->heap, 0};
    /* bytes whose byte-level character is not in the vocabulary are dropped
     * before merging, as HF tokenizers does (SmolLM2 lacks 21 of them) */
    int32_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        if (t->byte_tok[w[i]] < 0) continue;
        sym[ns] = (bpe_sym){t->byte_tok[w[i]], ns - 1, ns + 1};
        ns++;
    }
    if (ns == 0) return SX_OK;
    sym[ns - 1].next = -1;
    for (int32_t i = 0; i + 1 < ns; i++) bpe_try_pair(t, sym, i, &h);
    while (h.n) {
        bpe_ent e = bpe_heap_pop(&h);
        int32_t l = e.left, r = sym[l].next;
        if (sym[l].id != e.lid || r < 0 || sym[r].id != e.rid) continue; /* stale */
        sym[l].id = e.mid;
        sym[l].next = sym[r].next;
        if (sym[r].next >= 0) sym[sym[r].next].prev = l;
        sym[r].id = -1;
        bpe_try_pair(t, sym, sym[l].prev, &h);
        bpe_try_pair(t, sym, l, &h);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) SX_RETURN_IF_ERROR(sx_idvec_push(c->out, sym[i].id));
    return SX_OK;
}

sx_status sx_bpe_encode_fragment(const sx_tokenizer *t, const char *text, size_t len, sx_bpe_scratch *sc,
                                 sx_idvec *out) {
    bpe_ctx c = {t, (const unsigned char *)text, sc, out};
    return sx_pretok_split(t->pretok, text, len, bpe_word, &c);
}

/* ================= SentencePiece BPE ================= */

typedef struct spm_sym {
    size_t off, n; /* bytes in the escaped text; n == 0: merged away */
    int32_t prev, next;
} spm_sym;

typedef struct spm_ent {
    float score;
    int32_t left, right;
    size_t size;
} spm_ent;

static bool spm_before(const spm_ent *a, const spm_ent *b) { /* max score, then leftmost */
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct spm_heap {
    spm_ent *e;
    size_t n, cap;
} spm_heap;

static void spm_heap_push(spm_heap *h, spm_ent x) {
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!spm_before(&x, &h->e[p])) break;
        h->e[i] = h->e[p];
        i = p;
    }
    h->e[i] = x;
}

static spm_ent spm_heap_pop(spm_heap *h) {
    spm_ent top = h->e[0], x = h->e[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && spm_before(&h->e[c + 1], &h->e[c])) c++;
        if (!spm_before(&h->e[c], &x)) break;
        h->e[i] = h->e[c];
        i = c;
    }
    if (h->n) h->e[i] = x;
    return top;
}

static void spm_try_pair(const sx_tokenizer *t, const char *buf, const spm_sym *sym, int32_t l, int32_t r,
                         spm_heap *h) {
    if (l < 0 || r < 0) return;
    size_t size = sym[l].n + sym[r].n;
    if (size > t->max_token_len) return;
    int32_t id = sx_tok_lookup(t, buf + sym[l].off, size); /* symbols are adjacent in buf */
    if (id < 0 || !(t->flags[id] & SX_TOKF_MERGEABLE)) return;
    spm_heap_push(h, (spm_ent){t->score[id], l, r, size});
}

sx_status sx_spm_encode_fragment(const sx_tokenizer *t, const char *text, size_t len, bool space_prefix,
                                 sx_bpe_scratch *sc, sx_idvec *out) {
    if (len == 0) return SX_OK;
    if (len > (SIZE_MAX - 3) / 3 || len > INT32_MAX / 4)
        return sx_set_error(SX_ERR_UNSUPPORTED, "tokenizer: a %zu-byte text fragment is too long", len);
    SX_RETURN_IF_ERROR(grow((void **)&sc->buf, &sc->buf_cap, 3 * len + 3, 1));
    char *buf = sc->buf;
    size_t bn = 0;
    if (space_prefix) {
        memcpy(buf, "\xe2\x96\x81", 3);
        bn = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + bn, "\xe2\x96\x81", 3);
            bn += 3;
        } else {
            buf[bn++] = text[i];
        }
    }
    SX_RETURN_IF_ERROR(grow(&sc->sym, &sc->sym_cap, bn, sizeof(spm_sym)));
    spm_sym *sym = sc->sym;
    int32_t ns = 0;
    for (size_t p = 0; p < bn;) {
        uint32_t cp;
        size_t k = sx_utf8_decode((const unsigned char *)buf + p, bn - p, &cp);
        sym[ns] = (spm_sym){p, k, ns - 1, -1};
        if (ns > 0) sym[ns - 1].next = ns;
        ns++;
        p += k;
    }
    /* a merge pushes at most 2 entries: (ns - 1) + 2 (ns - 1) bound */
    SX_RETURN_IF_ERROR(grow(&sc->heap, &sc->heap_cap, 3 * (size_t)ns, sizeof(spm_ent)));
    spm_heap h = {sc->heap, 0, sc->heap_cap};
    for (int32_t i = 1; i < ns; i++) spm_try_pair(t, buf, sym, i - 1, i, &h);
    while (h.n) {
        spm_ent e = spm_heap_pop(&h);
        spm_sym *l = &sym[e.left], *r = &sym[e.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != e.size || l->next != e.right) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = e.left;
        spm_try_pair(t, buf, sym, l->prev, e.left, &h);
        spm_try_pair(t, buf, sym, e.left, l->next, &h);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        int32_t id = sx_tok_lookup(t, buf + sym[i].off, sym[i].n);
        if (id >= 0) {
            SX_RETURN_IF_ERROR(sx_idvec_push(out, id));
            continue;
        }
        for (size_t k = 0; k < sym[i].n; k++)
            SX_RETURN_IF_ERROR(push_byte_fallback(t, (unsigned char)buf[sym[i].off + k], out));
    }
    return SX_OK;
}
