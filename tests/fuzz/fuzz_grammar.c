/* tests/fuzz/fuzz_grammar.c — libFuzzer target for constrained generation's
 * untrusted inputs (a request's "grammar", "json_schema" and "tools"): any
 * bytes must parse or fail with a message, never crash, hang or leak. The
 * first byte picks the input kind (GBNF, JSON Schema, tools array); up to a
 * NUL is the text, after it the bytes fed to a matcher of the grammar, in
 * pieces of varying sizes. Checked on the way: allows() predicts accept(), a
 * refused piece leaves the matcher as it was, and every grammar the JSON
 * Schema and tools converters emit parses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/grammar.h"

static void require(int cond) {
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int kind = data[0] % 3;
    const uint8_t *nul = memchr(data + 1, 0, size - 1);
    const size_t tlen = nul ? (size_t)(nul - data - 1) : size - 1;
    char *text = malloc(tlen + 1);
    if (!text) return 0;
    memcpy(text, data + 1, tlen);
    text[tlen] = 0;
    const uint8_t *feed = nul ? nul + 1 : data + size;
    const size_t nfeed = (size_t)(data + size - feed);
    char *gbnf = NULL;
    sx_status st;
    if (kind == 0) gbnf = text, text = NULL, st = SX_OK;
    else if (kind == 1) st = sx_json_schema_to_grammar(text, &gbnf);
    else st = sx_tools_grammar(text, NULL, data[0] & 4, &gbnf);
    free(text);
    sx_grammar *g = NULL;
    if (st == SX_OK) {
        st = sx_grammar_parse(gbnf, &g);
        require(kind == 0 || st == SX_OK); /* the converters' grammars always parse */
    }
    free(gbnf);
    if (st != SX_OK) return 0;
    sx_gmatch *m = NULL, *twin = NULL;
    if (sx_gmatch_create(g, &m) == SX_OK && sx_gmatch_clone(m, &twin) == SX_OK) {
        for (size_t i = 0; i < nfeed;) {
            size_t n = 1 + feed[i] % 5;
            if (n > nfeed - i) n = nfeed - i;
            const bool allowed = sx_gmatch_allows(m, (const char *)feed + i, n);
            const bool taken = sx_gmatch_accept(m, (const char *)feed + i, n);
            require(allowed == taken);
            if (taken) require(sx_gmatch_accept(twin, (const char *)feed + i, n)); /* the same input, the same answer */
            else require(sx_gmatch_can_end(m) == sx_gmatch_can_end(twin) && sx_gmatch_must_end(m) == sx_gmatch_must_end(twin));
            if (sx_gmatch_must_end(m)) require(sx_gmatch_can_end(m));
            i += n;
        }
    }
    sx_gmatch_destroy(twin);
    sx_gmatch_destroy(m);
    sx_grammar_destroy(g);
    return 0;
}
