/* tools/server_text.h — from generated token pieces to the text a client sees.
 *
 * Token pieces are raw bytes: a UTF-8 character may span two tokens, and a
 * stop string or the closing </think> may arrive split over several. The
 * assembler releases text as soon as it is decided:
 *  - whole UTF-8 characters only (an incomplete tail waits for the next
 *    piece; invalid bytes become U+FFFD, so JSON stays valid);
 *  - with a thinking section open at the start (the prompt ended in <think>),
 *    text up to </think> is reasoning and the rest is the answer (content),
 *    without the whitespace that follows </think> (as vLLM's and llama.cpp's
 *    reasoning parsers split it);
 *  - stop strings: the text ends before the first occurrence of any of them
 *    in the text as delivered (reasoning or answer; never the </think> tag or
 *    the whitespace dropped after it); a tail that could begin one is held
 *    back until it is decided.
 * The deltas of every push, concatenated, equal the final text, so a streamed
 * answer and a whole one are the same bytes. Pure: no I/O, no globals. */
#ifndef SX_SERVER_TEXT_H
#define SX_SERVER_TEXT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sx_sbuf {
    char *s; /* NUL-terminated when not NULL */
    size_t len, cap;
    bool oom;
} sx_sbuf;

void sx_sbuf_add(sx_sbuf *b, const char *s, size_t n);
void sx_sbuf_adds(sx_sbuf *b, const char *s);
void sx_sbuf_clear(sx_sbuf *b); /* keeps the memory */
void sx_sbuf_free(sx_sbuf *b);

#define SX_TEXT_MAX_STOPS 16

typedef struct sx_text_asm {
    bool reasoning;    /* inside the thinking section */
    bool skip_ws;      /* after </think>: drop whitespace before the answer */
    bool saw_reasoning;/* a thinking section was open at some point */
    bool stopped;      /* a stop string ended the text */
    const char *stops[SX_TEXT_MAX_STOPS];
    int n_stops;
    sx_sbuf pend;      /* bytes received, not yet released */
    sx_sbuf reasoning_text, content_text; /* everything released so far */
} sx_text_asm;

/* thinking_open: the prompt left a <think> section open. stops: borrowed,
 * must outlive the assembler; empty strings are ignored; at most
 * SX_TEXT_MAX_STOPS. */
void sx_text_init(sx_text_asm *a, bool thinking_open, const char *const *stops, int n_stops);
/* Adds a piece; appends the newly released text to d_reasoning and
 * d_content (either may be NULL). Returns false once a stop string ended the
 * text (later pieces are ignored). */
bool sx_text_push(sx_text_asm *a, const char *piece, size_t len, sx_sbuf *d_reasoning, sx_sbuf *d_content);
/* Generation ended: releases what was held back. */
void sx_text_finish(sx_text_asm *a, sx_sbuf *d_reasoning, sx_sbuf *d_content);
void sx_text_free(sx_text_asm *a);

/* Length of the longest prefix of s[0..n) that is valid UTF-8 and does not
 * end inside a character (n minus an incomplete tail); exported for tests. */
size_t sx_utf8_complete_len(const char *s, size_t n);
/* Appends s[0..n) to b with every invalid UTF-8 sequence replaced by U+FFFD. */
void sx_utf8_sanitize_into(sx_sbuf *b, const char *s, size_t n);

#endif
