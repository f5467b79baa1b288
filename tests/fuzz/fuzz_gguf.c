/* tests/fuzz/fuzz_gguf.c — libFuzzer target for the GGUF reader.
 *
 * Opens the input with sx_gguf_open_memory and, when it opens, walks every
 * accessor (typed getters on every key, every string of every string array,
 * every tensor's first and last data byte), so ASan/UBSan see any read the
 * validation at open failed to cover.
 *
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *     core/gguf.c ir/status.c ir/dtype.c tests/fuzz/fuzz_gguf.c -lm -o fuzz_gguf
 *   ./fuzz_gguf -max_total_time=60 tests/fuzz/corpus_gguf
 * Seeds: test_gguf --write-corpus tests/fuzz/corpus_gguf
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/gguf.h"

static volatile unsigned g_sink;

static void touch(const void *p, size_t n) {
    if (n == 0) return;
    const uint8_t *b = p;
    g_sink += b[0] + b[n - 1];
}

/* Every getter on key i; failures are expected, crashes are not. */
static void walk_kv(const sx_gguf *g, int64_t i) {
    const char *key = sx_gguf_key(g, i);
    if (sx_gguf_find_key(g, key) != i) abort(); /* duplicates are rejected at open */
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f;
    double d;
    bool b;
    const char *s;
    size_t len;
    sx_gguf_type et;
    uint64_t n;
    const void *data;
    char buf[8];
    g_sink += (unsigned)sx_gguf_get_u32(g, key, &u32) + (unsigned)sx_gguf_get_i32(g, key, &i32);
    g_sink += (unsigned)sx_gguf_get_u64(g, key, &u64) + (unsigned)sx_gguf_get_i64(g, key, &i64);
    g_sink += (unsigned)sx_gguf_get_f32(g, key, &f) + (unsigned)sx_gguf_get_f64(g, key, &d);
    g_sink += (unsigned)sx_gguf_get_bool(g, key, &b) + (unsigned)sx_gguf_get_str_copy(g, key, buf, sizeof buf);
    if (sx_gguf_get_str(g, key, &s, &len) == SX_OK) touch(s, len);
    if (sx_gguf_get_arr(g, key, &et, &n, &data) == SX_OK && data) touch(data, n * sx_gguf_type_size(et));
    if (sx_gguf_arr_type(g, i) == SX_GGUF_TYPE_STRING) {
        for (uint64_t j = 0; j < sx_gguf_arr_len(g, i); j++)
            if (sx_gguf_arr_str(g, i, j, &s, &len) == SX_OK) touch(s, len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sx_log_set_level(SX_LOG_NONE);
    sx_gguf *g = NULL;
    if (sx_gguf_open_memory(data, size, "fuzz.gguf", &g) != SX_OK) return 0;
    for (int64_t i = 0; i < sx_gguf_n_kv(g); i++) walk_kv(g, i);
    for (int64_t i = 0; i < sx_gguf_n_tensors(g); i++) {
        sx_gguf_tensor_info t;
        sx_status s = sx_gguf_tensor(g, i, &t);
        if (s != SX_OK && s != SX_ERR_UNSUPPORTED) abort();
        if (t.offset + t.size > size || sx_gguf_find_tensor(g, t.name) != i) abort();
        touch(t.data, t.size);
    }
    sx_gguf_close(g);
    return 0;
}
