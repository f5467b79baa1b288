/* tools/server_text.c — see server_text.h. */
#include "tools/server_text.h"

#include <stdlib.h>
#include <string.h>

void sx_sbuf_add(sx_sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    if (n) memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void sx_sbuf_adds(sx_sbuf *b, const char *s) { sx_sbuf_add(b, s, strlen(s)); }

void sx_sbuf_clear(sx_sbuf *b) {
    b->len = 0;
    b->oom = false; /* a failed append is forgotten with the contents */
    if (b->s) b->s[0] = 0;
}

void sx_sbuf_free(sx_sbuf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* The sequence at s[0..n): its length when valid and complete; 0 when
 * invalid; -(bytes present) when valid so far but cut off by n. */
static int utf8_seq(const unsigned char *s, size_t n) {
    const unsigned c = s[0];
    int len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else return 0;
    unsigned cp = c & (0x3Fu >> (len - 1));
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) {
            return -i; /* cut off; the bytes present were checked below as they came */
        }
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
        /* reject overlong forms and surrogates as early as the second byte allows */
        if (i == 1) {
            if (c == 0xE0 && s[1] < 0xA0) return 0;
            if (c == 0xED && s[1] > 0x9F) return 0;
            if (c == 0xF0 && s[1] < 0x90) return 0;
            if (c == 0xF4 && s[1] > 0x8F) return 0;
        }
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

size_t sx_utf8_complete_len(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    /* only the last 3 bytes can start an incomplete character */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        const size_t i = n - back;
        const int r = utf8_seq(s + i, back);
        if (r < 0) return i;                  /* an incomplete character: hold it */
        if (r > 0 || (s[i] & 0xC0) != 0x80) break; /* a complete character or an invalid lead: nothing to hold */
    }
    return n;
}

void sx_utf8_sanitize_into(sx_sbuf *b, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0;
    while (i < n) {
        int r = utf8_seq(s + i, n - i);
        if (r > 0) {
            i += (size_t)r;
            continue;
        }
        sx_sbuf_add(b, str + run, i - run);
        sx_sbuf_add(b, "\xEF\xBF\xBD", 3); /* U+FFFD for the invalid byte (or the cut-off sequence) */
        i += r < 0 ? (size_t)-r : 1;
        run = i;
    }
    sx_sbuf_add(b, str + run, n - run);
}

void sx_text_init(sx_text_asm *a, bool thinking_open, const char *const *stops, int n_stops) {
    memset(a, 0, sizeof *a);
    a->reasoning = thinking_open;
    a->saw_reasoning = thinking_open;
    for (int i = 0; i < n_stops && a->n_stops < SX_TEXT_MAX_STOPS; i++)
        if (stops[i] && stops[i][0]) a->stops[a->n_stops++] = stops[i];
}

void sx_text_free(sx_text_asm *a) {
    sx_sbuf_free(&a->pend);
    sx_sbuf_free(&a->reasoning_text);
    sx_sbuf_free(&a->content_text);
}

static const char k_close[] = "</think>";

/* first occurrence of needle in s[0..n) */
static const char *find(const char *s, size_t n, const char *needle) {
    const size_t m = strlen(needle);
    if (m == 0 || m > n) return NULL;
    for (size_t i = 0; i + m <= n; i++)
        if (s[i] == needle[0] && !memcmp(s + i, needle, m)) return s + i;
    return NULL;
}

/* length of the longest suffix of s[0..n) that is a proper prefix of pat */
static size_t partial_suffix(const char *s, size_t n, const char *pat) {
    const size_t m = strlen(pat);
    for (size_t k = m - 1 < n ? m - 1 : n; k > 0; k--)
        if (!memcmp(s + n - k, pat, k)) return k;
    return 0;
}

static void release(sx_text_asm *a, const char *s, size_t n, sx_sbuf *delta) {
    if (n == 0) return;
    sx_sbuf *total = a->reasoning ? &a->reasoning_text : &a->content_text;
    const size_t before = total->len;
    sx_utf8_sanitize_into(total, s, n);
    if (delta && !total->oom) sx_sbuf_add(delta, total->s + before, total->len - before);
}

static void drop_pend(sx_text_asm *a, size_t n) {
    memmove(a->pend.s, a->pend.s + n, a->pend.len - n);
    a->pend.len -= n;
    a->pend.s[a->pend.len] = 0;
}

static void process(sx_text_asm *a, bool final, sx_sbuf *d_reasoning, sx_sbuf *d_content) {
    while (!a->stopped && a->pend.len > 0) {
        if (!a->reasoning && a->skip_ws) { /* the whitespace after </think> is not text (nor matched by stop strings) */
            size_t ws = 0;
            while (ws < a->pend.len && (a->pend.s[ws] == ' ' || a->pend.s[ws] == '\n' || a->pend.s[ws] == '\r' || a->pend.s[ws] == '\t')) ws++;
            drop_pend(a, ws);
            if (a->pend.len == 0) return;
            a->skip_ws = false;
        }
        const char *p = a->pend.s;
        const size_t n = a->pend.len;
        sx_sbuf *delta = a->reasoning ? d_reasoning : d_content;
        /* the earliest stop string */
        const char *stop = NULL;
        for (int i = 0; i < a->n_stops; i++) {
            const char *f = find(p, n, a->stops[i]);
            if (f && (!stop || f < stop)) stop = f;
        }
        const char *close = a->reasoning ? find(p, n, k_close) : NULL;
        if (stop && (!close || stop < close)) {
            release(a, p, (size_t)(stop - p), delta);
            a->stopped = true;
            sx_sbuf_clear(&a->pend);
            return;
        }
        if (close) {
            release(a, p, (size_t)(close - p), delta);
            drop_pend(a, (size_t)(close - p) + strlen(k_close));
            a->reasoning = false;
            a->skip_ws = true;
            continue;
        }
        size_t hold = 0;
        if (!final) {
            for (int i = 0; i < a->n_stops; i++) {
                const size_t h = partial_suffix(p, n, a->stops[i]);
                if (h > hold) hold = h;
            }
            if (a->reasoning) {
                const size_t h = partial_suffix(p, n, k_close);
                if (h > hold) hold = h;
            }
            const size_t u = n - sx_utf8_complete_len(p, n);
            if (u > hold) hold = u;
        }
        release(a, p, n - hold, delta);
        drop_pend(a, n - hold);
        return;
    }
}

bool sx_text_push(sx_text_asm *a, const char *piece, size_t len, sx_sbuf *d_reasoning, sx_sbuf *d_content) {
    if (a->stopped) return false;
    sx_sbuf_add(&a->pend, piece, len);
    if (a->pend.len == 0) return true;
    process(a, false, d_reasoning, d_content);
    return !a->stopped;
}

void sx_text_finish(sx_text_asm *a, sx_sbuf *d_reasoning, sx_sbuf *d_content) {
    if (a->pend.len) process(a, true, d_reasoning, d_content);
}
