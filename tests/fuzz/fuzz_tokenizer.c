/* tests/fuzz/fuzz_tokenizer.c — libFuzzer target for the tokenizers: a
 * byte-level BPE vocabulary read from a GGUF (SX_FUZZ_TOKENIZER_GGUF: the
 * embedded sumchain model or SmolLM2) and a SentencePiece vocabulary with
 * byte fallback built here. For any input bytes, with and without parsing
 * special tokens: encoding never fails or crashes, every id is in range,
 * decoding the ids gives the input back byte for byte (both vocabularies can
 * spell every byte; SentencePiece except after a parsed special token, where
 * it adds a space prefix as llama.cpp does), and every piece of every id can
 * be read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_internal.h"
#include "core/gguf.h"
#include "core/tokenizer.h"

static sx_tokenizer *g_bpe, *g_spm;
static bool g_bpe_all_bytes;

static void require(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", what);
        abort();
    }
}

static sx_tokenizer *make_spm(void) {
    /* 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then a few pieces */
    static const char *normal[] = {"\xe2\x96\x81", "a", "b", "ab", ("\xe2\x96\x81" "a"), "\xe2\x96\x81\xe2\x96\x81", "\xc3\xa9", "<ctl>"};
    enum { N_BYTES = 256, FIRST = 3 + N_BYTES, N_TOK = FIRST + 8 };
    static char bytes[N_BYTES][8];
    static const char *tokens[N_TOK];
    static int32_t types[N_TOK];
    static float scores[N_TOK];
    tokens[0] = "<unk>", tokens[1] = "<s>", tokens[2] = "</s>";
    types[0] = SX_TOKEN_TYPE_UNKNOWN, types[1] = types[2] = SX_TOKEN_TYPE_CONTROL;
    for (int b = 0; b < N_BYTES; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tokens[3 + b] = bytes[b];
        types[3 + b] = SX_TOKEN_TYPE_BYTE;
    }
    for (int i = 0; i < 8; i++) {
        tokens[FIRST + i] = normal[i];
        types[FIRST + i] = i == 7 ? SX_TOKEN_TYPE_CONTROL : SX_TOKEN_TYPE_NORMAL;
        scores[FIRST + i] = -(float)i;
    }
    sx_tokenizer_desc d;
    sx_tokenizer_desc_init(&d);
    d.kind = SX_TOKENIZER_SPM;
    d.n_tokens = N_TOK;
    d.tokens = tokens;
    d.token_types = types;
    d.scores = scores;
    d.unk_id = 0, d.bos_id = 1, d.eos_id = 2;
    d.add_bos = true;
    d.add_space_prefix = true;
    sx_tokenizer *t = NULL;
    require(sx_tokenizer_create(&d, &t) == SX_OK, "building the SentencePiece vocabulary");
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *path = getenv("SX_FUZZ_TOKENIZER_GGUF");
    require(path != NULL, "set SX_FUZZ_TOKENIZER_GGUF to a GGUF with a byte-level BPE vocabulary");
    sx_gguf *g = NULL;
    require(sx_gguf_open(path, &g) == SX_OK, "opening SX_FUZZ_TOKENIZER_GGUF");
    require(sx_tokenizer_from_gguf(g, &g_bpe) == SX_OK, "reading its tokenizer");
    sx_gguf_close(g);
    g_spm = make_spm();
    g_bpe_all_bytes = true; /* can the vocabulary spell every byte? (byte-level BPE normally can) */
    for (int b = 0; b < 256; b++) {
        const char c = (char)b;
        int32_t *ids = NULL;
        int64_t n = 0;
        require(sx_tokenizer_encode(g_bpe, &c, 1, false, false, &ids, &n) == SX_OK, "encoding one byte");
        if (n == 0) g_bpe_all_bytes = false;
        free(ids);
    }
    return 0;
}

static void round_trip(const sx_tokenizer *t, const char *data, size_t size, bool parse_special, bool exact) {
    int32_t *ids = NULL;
    int64_t n = 0;
    require(sx_tokenizer_encode(t, data, size, false, parse_special, &ids, &n) == SX_OK, "encode failed");
    const int64_t V = sx_tokenizer_n_vocab(t);
    for (int64_t i = 0; i < n; i++) {
        require(ids[i] >= 0 && ids[i] < V, "id out of range");
        size_t len = 0;
        require(sx_tokenizer_piece(t, ids[i], &len) != NULL, "no piece for an id");
    }
    /* SentencePiece puts a space prefix on the text after a parsed special token
     * (as llama.cpp and HF's legacy Llama tokenizer do) and decodes U+2581 as a
     * space, so exactness holds there only without either */
    if (t == g_spm && memmem(data, size, "\xe2\x96\x81", 3)) exact = false;
    for (int64_t i = 0; i < n && t == g_spm; i++)
        if (sx_tokenizer_token_type(t, ids[i]) == SX_TOKEN_TYPE_CONTROL || sx_tokenizer_token_type(t, ids[i]) == SX_TOKEN_TYPE_UNKNOWN)
            exact = false;
    char *out = NULL;
    size_t out_len = 0;
    require(sx_tokenizer_decode(t, ids, n, false, &out, &out_len) == SX_OK, "decode failed");
    if (exact && (out_len != size || memcmp(out, data, size) != 0)) {
        fprintf(stderr, "fuzz_tokenizer: %s tokenizer, parse_special %d: %zu bytes in, %zu out: ", t == g_spm ? "SentencePiece" : "BPE",
                parse_special, size, out_len);
        for (size_t i = 0; i < size; i++) fprintf(stderr, "%02x", (unsigned char)data[i]);
        fprintf(stderr, " -> ");
        for (size_t i = 0; i < out_len; i++) fprintf(stderr, "%02x", (unsigned char)out[i]);
        fprintf(stderr, "\n");
        require(0, "decode(encode(x)) != x");
    }
    free(out);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    for (int ps = 0; ps < 2; ps++) {
        round_trip(g_bpe, s, size, ps == 1, g_bpe_all_bytes);
        round_trip(g_spm, s, size, ps == 1, true);
    }
    /* ids from the input: decode and pieces must cope with any in-range id */
    int32_t ids[64];
    int n = 0;
    for (size_t i = 0; i + 1 < size && n < 64; i += 2) ids[n++] = (int32_t)(((unsigned)data[i] << 8 | data[i + 1]) % (unsigned)sx_tokenizer_n_vocab(g_bpe));
    char *out = NULL;
    require(sx_tokenizer_decode(g_bpe, ids, n, true, &out, NULL) == SX_OK, "decode of in-range ids failed");
    free(out);
    return 0;
}
