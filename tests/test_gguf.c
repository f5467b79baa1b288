/* tests/test_gguf.c — GGUF reader and writer.
 *
 * Round trips (every value type, tensors of every supported dtype, memory and
 * file), typed getter conversions, writer argument checks, hand-built corrupt
 * files (each must give the right status and a message naming the problem),
 * every truncation and single-byte corruptions of a valid file (no crash;
 * run under ASan/UBSan), and an optional real model (SX_SMOLLM2=path).
 *
 *   test_gguf                      run the tests
 *   test_gguf --write-corpus DIR   write the fuzz seed files into DIR
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/gguf.h"

#define BAD_NAME "bad.gguf"

/* ---------------------------------------------------------------------- */
/* Byte builder for hand-made (often corrupt) files                        */
/* ---------------------------------------------------------------------- */

typedef struct bb {
    uint8_t *d;
    size_t n, cap;
} bb;

static void bb_put(bb *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->d = realloc(b->d, b->cap);
        assert_non_null(b->d);
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void bb_u8(bb *b, uint8_t v) { bb_put(b, &v, 1); }
static void bb_u32(bb *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_put(b, &v, 8); }
static void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}
static void bb_header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_put(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static void bb_kv_u32(bb *b, const char *key, uint32_t v) {
    bb_str(b, key);
    bb_u32(b, SX_GGUF_TYPE_UINT32);
    bb_u32(b, v);
}
/* Tensor info with n_dims dims. */
static void bb_tensor(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) bb_u64(b, ne[d]);
    bb_u32(b, type);
    bb_u64(b, off);
}
static void bb_pad(bb *b, size_t align) {
    while (b->n % align) bb_u8(b, 0);
}
static void bb_zeros(bb *b, size_t n) {
    for (size_t i = 0; i < n; i++) bb_u8(b, 0);
}

/* Opens b (through an exact-size heap copy so ASan sees overruns) and
 * expects `want` with a message naming the file and containing `needle`. */
static void expect_open_fails(const bb *b, sx_status want, const char *needle) {
    uint8_t *copy = malloc(b->n ? b->n : 1);
    assert_non_null(copy);
    if (b->n) memcpy(copy, b->d, b->n);
    sx_gguf *g = (sx_gguf *)0x1;
    sx_clear_error();
    sx_status s = sx_gguf_open_memory(copy, b->n, BAD_NAME, &g);
    const char *msg = sx_last_error();
    if (s != want || !strstr(msg, needle) || !strstr(msg, BAD_NAME))
        print_error("status %s (want %s), message: %s (want '%s')\n", sx_status_str(s), sx_status_str(want), msg,
                    needle);
    assert_int_equal(s, want);
    assert_null(g);
    assert_non_null(strstr(msg, BAD_NAME));
    assert_non_null(strstr(msg, needle));
    free(copy);
}

/* ---------------------------------------------------------------------- */
/* A valid file with every value type and several tensors                  */
/* ---------------------------------------------------------------------- */

/* Deterministic bytes (seed printed by the tests that use it). */
static void fill_bytes(uint8_t *p, size_t n, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (uint8_t)(x >> 24);
    }
}

typedef struct tspec {
    const char *name;
    sx_dtype dtype;
    int n_dims;
    int64_t ne[4];
} tspec;

static const tspec k_tensors[] = {
    {"tok_embd.weight", SX_DTYPE_F32, 2, {3, 2, 1, 1}},
    {"f16", SX_DTYPE_F16, 1, {5, 1, 1, 1}},
    {"bf16", SX_DTYPE_BF16, 3, {4, 1, 2, 1}},
    {"i32", SX_DTYPE_I32, 1, {7, 1, 1, 1}},
    {"blk.0.attn_q.weight", SX_DTYPE_Q8_0, 2, {64, 2, 1, 1}},
    {"q4_0", SX_DTYPE_Q4_0, 1, {32, 1, 1, 1}},
    {"q4_1", SX_DTYPE_Q4_1, 2, {32, 3, 1, 1}},
    {"q4_k", SX_DTYPE_Q4_K, 1, {256, 1, 1, 1}},
    {"q6_k", SX_DTYPE_Q6_K, 4, {256, 1, 1, 2}},
    {"q2_k", SX_DTYPE_Q2_K, 2, {256, 2, 1, 1}},  /* ggml ids 10, 11, 20, 23 */
    {"q3_k", SX_DTYPE_Q3_K, 1, {512, 1, 1, 1}},
    {"iq4_nl", SX_DTYPE_IQ4_NL, 2, {64, 3, 1, 1}},
    {"iq4_xs", SX_DTYPE_IQ4_XS, 1, {256, 1, 1, 1}},
};
#define N_TENSORS (sizeof k_tensors / sizeof k_tensors[0])

static size_t tspec_bytes(const tspec *t) {
    return sx_dtype_row_size(t->dtype, t->ne[0]) * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]);
}

static const char *const k_strs[] = {"hello", "", "wörld", "<|im_end|>"};
static const int32_t k_i32s[] = {-3, 0, 7, INT32_MAX};
static const float k_f32s[] = {1.5f, -2.25f, 0.0f};
static const uint8_t k_bools[] = {1, 0, 1};
static const uint64_t k_u64s[] = {UINT64_MAX, 1};

static void add_all_kv(sx_gguf_writer *w) {
    assert_int_equal(sx_gguf_writer_set_str(w, "general.architecture", "llama"), SX_OK);
    assert_int_equal(sx_gguf_writer_set_u8(w, "t.u8", 200), SX_OK);
    assert_int_equal(sx_gguf_writer_set_i8(w, "t.i8", -5), SX_OK);
    assert_int_equal(sx_gguf_writer_set_u16(w, "t.u16", 60000), SX_OK);
    assert_int_equal(sx_gguf_writer_set_i16(w, "t.i16", -30000), SX_OK);
    assert_int_equal(sx_gguf_writer_set_u32(w, "t.u32", 4000000000u), SX_OK);
    assert_int_equal(sx_gguf_writer_set_i32(w, "t.i32", -1), SX_OK);
    assert_int_equal(sx_gguf_writer_set_u64(w, "t.u64", UINT64_MAX), SX_OK);
    assert_int_equal(sx_gguf_writer_set_i64(w, "t.i64", INT64_MIN), SX_OK);
    assert_int_equal(sx_gguf_writer_set_f32(w, "t.f32", 0.5f), SX_OK);
    assert_int_equal(sx_gguf_writer_set_f64(w, "t.f64", 1e300), SX_OK);
    assert_int_equal(sx_gguf_writer_set_bool(w, "t.bool", true), SX_OK);
    assert_int_equal(sx_gguf_writer_set_strn(w, "t.strn", "a\0b", 3), SX_OK);
    assert_int_equal(sx_gguf_writer_set_str(w, "t.empty", ""), SX_OK);
    assert_int_equal(sx_gguf_writer_set_arr_str(w, "t.arr_str", k_strs, 4), SX_OK);
    assert_int_equal(sx_gguf_writer_set_arr_i32(w, "t.arr_i32", k_i32s, 4), SX_OK);
    assert_int_equal(sx_gguf_writer_set_arr_f32(w, "t.arr_f32", k_f32s, 3), SX_OK);
    assert_int_equal(sx_gguf_writer_set_arr(w, "t.arr_bool", SX_GGUF_TYPE_BOOL, k_bools, 3), SX_OK);
    assert_int_equal(sx_gguf_writer_set_arr(w, "t.arr_u64", SX_GGUF_TYPE_UINT64, k_u64s, 2), SX_OK);
    assert_int_equal(sx_gguf_writer_set_arr_i32(w, "t.arr_empty", NULL, 0), SX_OK);
    assert_int_equal(sx_gguf_writer_set_arr_str(w, "t.arr_str_empty", NULL, 0), SX_OK);
}

/* Writer with all kvs and tensors; tensor data in *out_data (caller frees). */
static sx_gguf_writer *make_writer(uint8_t ***out_data) {
    sx_gguf_writer *w = NULL;
    assert_int_equal(sx_gguf_writer_create(&w), SX_OK);
    add_all_kv(w);
    uint8_t **data = calloc(N_TENSORS, sizeof *data);
    for (size_t i = 0; i < N_TENSORS; i++) {
        size_t n = tspec_bytes(&k_tensors[i]);
        data[i] = malloc(n);
        fill_bytes(data[i], n, (uint32_t)i + 1);
        sx_status s = i % 2 ? sx_gguf_writer_add_tensor_copy(w, k_tensors[i].name, k_tensors[i].dtype,
                                                             k_tensors[i].n_dims, k_tensors[i].ne, data[i], n)
                            : sx_gguf_writer_add_tensor(w, k_tensors[i].name, k_tensors[i].dtype,
                                                        k_tensors[i].n_dims, k_tensors[i].ne, data[i], n);
        assert_int_equal(s, SX_OK);
    }
    *out_data = data;
    return w;
}

static void free_data(uint8_t **data) {
    for (size_t i = 0; i < N_TENSORS; i++) free(data[i]);
    free(data);
}

/* Serialized valid file (caller frees). */
static uint8_t *make_valid_file(size_t *out_size) {
    uint8_t **data;
    sx_gguf_writer *w = make_writer(&data);
    void *file = NULL;
    assert_int_equal(sx_gguf_writer_write_memory(w, &file, out_size), SX_OK);
    sx_gguf_writer_destroy(w);
    free_data(data);
    return file;
}

static void check_all_kv(const sx_gguf *g) {
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f;
    double d;
    bool b;
    const char *s;
    size_t len;
    assert_int_equal(sx_gguf_n_kv(g), 21);
    assert_int_equal(sx_gguf_get_u32(g, "t.u8", &u32), SX_OK);
    assert_int_equal(u32, 200);
    assert_int_equal(sx_gguf_get_i32(g, "t.i8", &i32), SX_OK);
    assert_int_equal(i32, -5);
    assert_int_equal(sx_gguf_get_u32(g, "t.u16", &u32), SX_OK);
    assert_int_equal(u32, 60000);
    assert_int_equal(sx_gguf_get_i32(g, "t.i16", &i32), SX_OK);
    assert_int_equal(i32, -30000);
    assert_int_equal(sx_gguf_get_u32(g, "t.u32", &u32), SX_OK);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(sx_gguf_get_i64(g, "t.i32", &i64), SX_OK);
    assert_int_equal(i64, -1);
    assert_int_equal(sx_gguf_get_u64(g, "t.u64", &u64), SX_OK);
    assert_true(u64 == UINT64_MAX);
    assert_int_equal(sx_gguf_get_i64(g, "t.i64", &i64), SX_OK);
    assert_true(i64 == INT64_MIN);
    assert_int_equal(sx_gguf_get_f32(g, "t.f32", &f), SX_OK);
    assert_true(f == 0.5f);
    assert_int_equal(sx_gguf_get_f64(g, "t.f64", &d), SX_OK);
    assert_true(d == 1e300);
    assert_int_equal(sx_gguf_get_bool(g, "t.bool", &b), SX_OK);
    assert_true(b);
    assert_int_equal(sx_gguf_get_str(g, "general.architecture", &s, &len), SX_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(s, "llama", 5);
    assert_int_equal(sx_gguf_get_str(g, "t.strn", &s, &len), SX_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(s, "a\0b", 3);
    assert_int_equal(sx_gguf_get_str(g, "t.empty", &s, &len), SX_OK);
    assert_int_equal(len, 0);

    int64_t k = sx_gguf_find_key(g, "t.arr_str");
    assert_true(k >= 0);
    assert_string_equal(sx_gguf_key(g, k), "t.arr_str");
    assert_int_equal(sx_gguf_kv_type(g, k), SX_GGUF_TYPE_ARRAY);
    assert_int_equal(sx_gguf_arr_type(g, k), SX_GGUF_TYPE_STRING);
    assert_int_equal(sx_gguf_arr_len(g, k), 4);
    for (uint64_t j = 0; j < 4; j++) {
        assert_int_equal(sx_gguf_arr_str(g, k, j, &s, &len), SX_OK);
        assert_int_equal(len, strlen(k_strs[j]));
        assert_memory_equal(s, k_strs[j], len);
    }
    sx_gguf_type et;
    uint64_t n;
    const void *p;
    assert_int_equal(sx_gguf_get_arr(g, "t.arr_i32", &et, &n, &p), SX_OK);
    assert_int_equal(et, SX_GGUF_TYPE_INT32);
    assert_int_equal(n, 4);
    assert_memory_equal(p, k_i32s, sizeof k_i32s);
    assert_int_equal(sx_gguf_get_arr(g, "t.arr_f32", &et, &n, &p), SX_OK);
    assert_int_equal(et, SX_GGUF_TYPE_FLOAT32);
    assert_memory_equal(p, k_f32s, sizeof k_f32s);
    assert_int_equal(sx_gguf_get_arr(g, "t.arr_bool", &et, &n, &p), SX_OK);
    assert_int_equal(et, SX_GGUF_TYPE_BOOL);
    assert_memory_equal(p, k_bools, sizeof k_bools);
    assert_int_equal(sx_gguf_get_arr(g, "t.arr_u64", &et, &n, &p), SX_OK);
    assert_int_equal(et, SX_GGUF_TYPE_UINT64);
    assert_memory_equal(p, k_u64s, sizeof k_u64s);
    assert_int_equal(sx_gguf_get_arr(g, "t.arr_empty", &et, &n, &p), SX_OK);
    assert_int_equal(n, 0);
    assert_int_equal(sx_gguf_get_arr(g, "t.arr_str", &et, &n, &p), SX_OK);
    assert_int_equal(et, SX_GGUF_TYPE_STRING);
    assert_int_equal(n, 4);
    assert_null(p);
    assert_int_equal(sx_gguf_get_arr(g, "t.arr_str_empty", &et, &n, NULL), SX_OK);
    assert_int_equal(n, 0);
}

static void check_all_tensors(const sx_gguf *g, uint8_t **data, uint32_t align) {
    assert_int_equal(sx_gguf_n_tensors(g), N_TENSORS);
    assert_int_equal(sx_gguf_data_offset(g) % align, 0);
    for (size_t i = 0; i < N_TENSORS; i++) {
        const tspec *t = &k_tensors[i];
        sx_gguf_tensor_info info;
        assert_int_equal(sx_gguf_find_tensor(g, t->name), (int64_t)i);
        assert_int_equal(sx_gguf_tensor(g, (int64_t)i, &info), SX_OK);
        assert_string_equal(info.name, t->name);
        assert_int_equal(info.dtype, t->dtype);
        assert_int_equal(info.ggml_type, sx_dtype_get(t->dtype)->ggml_type);
        assert_string_equal(sx_gguf_ggml_type_name(info.ggml_type), sx_dtype_name(t->dtype));
        assert_int_equal(info.n_dims, t->n_dims);
        assert_memory_equal(info.ne, t->ne, sizeof info.ne);
        assert_int_equal(info.size, tspec_bytes(t));
        assert_int_equal(info.offset % align, 0);
        assert_ptr_equal(info.data, (const uint8_t *)sx_gguf_data(g) + info.offset);
        assert_memory_equal(info.data, data[i], info.size);
    }
    assert_int_equal(sx_gguf_find_tensor(g, "nope"), -1);
}

/* ---------------------------------------------------------------------- */
/* Round trips                                                             */
/* ---------------------------------------------------------------------- */

static void test_roundtrip_memory(void **state) {
    (void)state;
    uint8_t **data;
    sx_gguf_writer *w = make_writer(&data);
    void *file = NULL;
    size_t size = 0;
    assert_int_equal(sx_gguf_writer_write_memory(w, &file, &size), SX_OK);
    sx_gguf *g = NULL;
    assert_int_equal(sx_gguf_open_memory(file, size, "mem.gguf", &g), SX_OK);
    assert_int_equal(sx_gguf_version(g), 3);
    assert_int_equal(sx_gguf_alignment(g), 32);
    assert_int_equal(sx_gguf_size(g), size);
    assert_string_equal(sx_gguf_name(g), "mem.gguf");
    check_all_kv(g);
    check_all_tensors(g, data, 32);
    sx_gguf_close(g);
    free(file);
    sx_gguf_writer_destroy(w);
    free_data(data);
}

static void test_roundtrip_file(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof dir, "%s/sx_gguf_test_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    uint8_t **data;
    sx_gguf_writer *w = make_writer(&data);
    assert_int_equal(sx_gguf_writer_set_u32(w, "general.alignment", 64), SX_OK);
    assert_int_equal(sx_gguf_writer_write(w, path), SX_OK);
    sx_gguf *g = NULL;
    assert_int_equal(sx_gguf_open(path, &g), SX_OK);
    assert_int_equal(sx_gguf_alignment(g), 64);
    check_all_tensors(g, data, 64);
    sx_gguf_close(g);

    /* write failure: no directory */
    char bad[320];
    snprintf(bad, sizeof bad, "%s/missing/x.gguf", dir);
    assert_int_equal(sx_gguf_writer_write(w, bad), SX_ERR_IO);
    assert_non_null(strstr(sx_last_error(), "cannot create"));
    /* open failures: missing file, directory, empty file */
    assert_int_equal(sx_gguf_open(bad, &g), SX_ERR_IO);
    assert_non_null(strstr(sx_last_error(), "x.gguf"));
    assert_null(g);
    assert_int_equal(sx_gguf_open(dir, &g), SX_ERR_IO);
    assert_non_null(strstr(sx_last_error(), "not a regular file"));
    char fifo[320];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(sx_gguf_open(fifo, &g), SX_ERR_IO); /* must not block */
    remove(fifo);
    char empty[320];
    snprintf(empty, sizeof empty, "%s/empty.gguf", dir);
    FILE *f = fopen(empty, "wb");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(sx_gguf_open(empty, &g), SX_ERR_FORMAT);
    assert_non_null(strstr(sx_last_error(), "empty file"));
    assert_non_null(strstr(sx_last_error(), "empty.gguf"));

    remove(empty);
    remove(path);
    rmdir(dir);
    sx_gguf_writer_destroy(w);
    free_data(data);
}

static void test_getters(void **state) {
    (void)state;
    size_t size;
    uint8_t *file = make_valid_file(&size);
    sx_gguf *g = NULL;
    assert_int_equal(sx_gguf_open_memory(file, size, "m.gguf", &g), SX_OK);
    uint32_t u32;
    int32_t i32;
    int64_t i64;
    float f;
    double d;
    bool b;
    assert_int_equal(sx_gguf_get_u32(g, "absent", &u32), SX_ERR_NOT_FOUND);
    assert_non_null(strstr(sx_last_error(), "absent"));
    assert_int_equal(sx_gguf_get_u32(g, "t.i32", &u32), SX_ERR_FORMAT); /* -1 */
    assert_non_null(strstr(sx_last_error(), "does not fit"));
    assert_int_equal(sx_gguf_get_u32(g, "t.u64", &u32), SX_ERR_FORMAT);
    assert_int_equal(sx_gguf_get_i32(g, "t.u32", &i32), SX_ERR_FORMAT); /* 4e9 */
    assert_int_equal(sx_gguf_get_i64(g, "t.u64", &i64), SX_ERR_FORMAT);
    assert_int_equal(sx_gguf_get_u32(g, "general.architecture", &u32), SX_ERR_FORMAT);
    assert_non_null(strstr(sx_last_error(), "has type string"));
    assert_int_equal(sx_gguf_get_f32(g, "t.f64", &f), SX_OK);
    assert_int_equal(sx_gguf_get_f64(g, "t.f32", &d), SX_OK);
    assert_true(d == 0.5);
    assert_int_equal(sx_gguf_get_f32(g, "t.u32", &f), SX_ERR_FORMAT);
    assert_int_equal(sx_gguf_get_bool(g, "t.u8", &b), SX_ERR_FORMAT);
    assert_int_equal(sx_gguf_get_arr(g, "t.u8", NULL, NULL, NULL), SX_ERR_FORMAT);

    char buf[4];
    assert_int_equal(sx_gguf_get_str_copy(g, "general.architecture", buf, sizeof buf), SX_ERR_INVALID_ARG);
    assert_string_equal(buf, "lla");
    assert_non_null(strstr(sx_last_error(), "truncated"));
    char big[16];
    assert_int_equal(sx_gguf_get_str_copy(g, "general.architecture", big, sizeof big), SX_OK);
    assert_string_equal(big, "llama");
    char *dup = NULL;
    assert_int_equal(sx_gguf_get_str_dup(g, "general.architecture", &dup), SX_OK);
    assert_string_equal(dup, "llama");
    free(dup);

    const char *s;
    size_t len;
    int64_t k = sx_gguf_find_key(g, "t.arr_str");
    assert_int_equal(sx_gguf_arr_str(g, k, 4, &s, &len), SX_ERR_INVALID_ARG);
    assert_int_equal(sx_gguf_arr_str(g, sx_gguf_find_key(g, "t.arr_i32"), 0, &s, &len), SX_ERR_FORMAT);
    assert_int_equal(sx_gguf_arr_str(g, -1, 0, &s, &len), SX_ERR_INVALID_ARG);
    assert_null(sx_gguf_key(g, -1));
    assert_null(sx_gguf_key(g, sx_gguf_n_kv(g)));
    assert_int_equal(sx_gguf_kv_type(g, 1000), SX_GGUF_TYPE_COUNT);
    assert_int_equal(sx_gguf_arr_type(g, sx_gguf_find_key(g, "t.u8")), SX_GGUF_TYPE_COUNT);
    assert_int_equal(sx_gguf_find_key(g, "t.u"), -1);

    sx_log_set_level(SX_LOG_NONE); /* the _or helpers warn on a wrong type */
    assert_int_equal(sx_gguf_get_u32_or(g, "t.u16", 1), 60000);
    assert_int_equal(sx_gguf_get_u32_or(g, "absent", 7), 7);
    assert_int_equal(sx_gguf_get_u32_or(g, "t.i32", 7), 7);
    assert_true(sx_gguf_get_i64_or(g, "t.i8", 0) == -5);
    assert_true(sx_gguf_get_f32_or(g, "absent", 2.5f) == 2.5f);
    assert_true(sx_gguf_get_bool_or(g, "t.bool", false));
    sx_log_set_level(SX_LOG_WARN);

    sx_gguf_tensor_info info;
    assert_int_equal(sx_gguf_tensor(g, -1, &info), SX_ERR_INVALID_ARG);
    assert_int_equal(sx_gguf_tensor(g, (int64_t)N_TENSORS, &info), SX_ERR_INVALID_ARG);
    sx_gguf_close(g);
    sx_gguf_close(NULL);
    free(file);
}

static void test_writer_errors(void **state) {
    (void)state;
    sx_gguf_writer *w = NULL;
    assert_int_equal(sx_gguf_writer_create(&w), SX_OK);
    float x[64] = {0};
    int64_t ne[4] = {4, 2, 1, 1};
    assert_int_equal(sx_gguf_writer_add_tensor(w, "a", SX_DTYPE_F32, 2, ne, x, 32), SX_OK);
    assert_int_equal(sx_gguf_writer_add_tensor(w, "a", SX_DTYPE_F32, 2, ne, x, 32), SX_ERR_INVALID_ARG);
    assert_non_null(strstr(sx_last_error(), "duplicate"));
    assert_int_equal(sx_gguf_writer_add_tensor(w, "b", SX_DTYPE_F32, 2, ne, x, 31), SX_ERR_INVALID_ARG);
    assert_non_null(strstr(sx_last_error(), "nbytes"));
    assert_int_equal(sx_gguf_writer_add_tensor(w, "c", SX_DTYPE_F32, 5, ne, x, 32), SX_ERR_INVALID_ARG);
    assert_int_equal(sx_gguf_writer_add_tensor(w, "d", SX_DTYPE_F32, 0, ne, x, 32), SX_ERR_INVALID_ARG);
    int64_t zero[1] = {0};
    assert_int_equal(sx_gguf_writer_add_tensor(w, "e", SX_DTYPE_F32, 1, zero, x, 0), SX_ERR_INVALID_ARG);
    int64_t odd[1] = {33};
    assert_int_equal(sx_gguf_writer_add_tensor(w, "f", SX_DTYPE_Q4_0, 1, odd, x, 18), SX_ERR_INVALID_ARG);
    assert_non_null(strstr(sx_last_error(), "block size"));
    assert_int_equal(sx_gguf_writer_add_tensor(w, "", SX_DTYPE_F32, 2, ne, x, 32), SX_ERR_INVALID_ARG);
    assert_int_equal(sx_gguf_writer_add_tensor(w, "g", SX_DTYPE_COUNT, 2, ne, x, 32), SX_ERR_INVALID_ARG);
    assert_int_equal(sx_gguf_writer_set_arr(w, "k", SX_GGUF_TYPE_STRING, x, 1), SX_ERR_INVALID_ARG);
    assert_int_equal(sx_gguf_writer_set_u32(w, "", 1), SX_ERR_INVALID_ARG);
    assert_int_equal(sx_gguf_writer_set_str(w, "k", NULL), SX_ERR_INVALID_ARG);
    /* replacing a key keeps one entry */
    assert_int_equal(sx_gguf_writer_set_u32(w, "k", 1), SX_OK);
    assert_int_equal(sx_gguf_writer_set_str(w, "k", "two"), SX_OK);
    void *file = NULL;
    size_t size = 0;
    assert_int_equal(sx_gguf_writer_write_memory(w, &file, &size), SX_OK);
    sx_gguf *g = NULL;
    assert_int_equal(sx_gguf_open_memory(file, size, "w.gguf", &g), SX_OK);
    assert_int_equal(sx_gguf_n_kv(g), 1);
    assert_int_equal(sx_gguf_n_tensors(g), 1);
    char buf[8];
    assert_int_equal(sx_gguf_get_str_copy(g, "k", buf, sizeof buf), SX_OK);
    assert_string_equal(buf, "two");
    sx_gguf_close(g);
    free(file);
    /* a bad general.alignment is refused at write time */
    assert_int_equal(sx_gguf_writer_set_u32(w, "general.alignment", 48), SX_OK);
    assert_int_equal(sx_gguf_writer_write_memory(w, &file, &size), SX_ERR_INVALID_ARG);
    sx_gguf_writer_destroy(w);
    sx_gguf_writer_destroy(NULL);
}

/* A known ggml type that specexit does not compute with opens, and the
 * tensor accessor names it. */
static void test_unsupported_known_type(void **state) {
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 2, 0);
    uint64_t ne[1] = {256};
    bb_tensor(&b, "blk.0.ffn_down.weight", 1, ne, 16 /* iq2_xxs */, 0);
    bb_tensor(&b, "ok", 1, ne, 0 /* f32 */, 192);
    bb_pad(&b, 32);
    bb_zeros(&b, 192 + 1024);
    sx_gguf *g = NULL;
    assert_int_equal(sx_gguf_open_memory(b.d, b.n, "iq2.gguf", &g), SX_OK);
    sx_gguf_tensor_info info;
    assert_int_equal(sx_gguf_tensor(g, 0, &info), SX_ERR_UNSUPPORTED);
    assert_non_null(strstr(sx_last_error(), "unsupported tensor type 16 (iq2_xxs) for tensor 'blk.0.ffn_down.weight'"));
    assert_int_equal(info.dtype, SX_DTYPE_COUNT);
    assert_int_equal(info.ggml_type, 16);
    assert_int_equal(info.size, 66);
    assert_int_equal(sx_gguf_tensor(g, 1, &info), SX_OK);
    assert_int_equal(info.dtype, SX_DTYPE_F32);
    assert_string_equal(sx_gguf_ggml_type_name(30), "bf16");
    assert_string_equal(sx_gguf_ggml_type_name(39), "mxfp4");
    assert_string_equal(sx_gguf_ggml_type_name(40), "unknown");
    sx_gguf_close(g);
    free(b.d);
}

/* ---------------------------------------------------------------------- */
/* Corrupt files                                                           */
/* ---------------------------------------------------------------------- */

static void test_bad_header(void **state) {
    (void)state;
    bb b = {0};
    expect_open_fails(&b, SX_ERR_FORMAT, "empty file");
    bb_put(&b, "GGU", 3);
    expect_open_fails(&b, SX_ERR_FORMAT, "too small");
    b.n = 0;
    bb_put(&b, "GGML", 4);
    bb_zeros(&b, 20);
    expect_open_fails(&b, SX_ERR_FORMAT, "bad magic");
    b.n = 0;
    bb_header(&b, 1, 0, 0);
    expect_open_fails(&b, SX_ERR_UNSUPPORTED, "version 1");
    b.n = 0;
    bb_header(&b, 0, 0, 0);
    expect_open_fails(&b, SX_ERR_FORMAT, "version 0");
    b.n = 0;
    bb_header(&b, 4, 0, 0);
    expect_open_fails(&b, SX_ERR_UNSUPPORTED, "version 4");
    b.n = 0;
    bb_header(&b, 0x03000000u, 0, 0);
    expect_open_fails(&b, SX_ERR_UNSUPPORTED, "big-endian");
    b.n = 0;
    bb_put(&b, "GGUF", 4);
    bb_u32(&b, 3);
    bb_u32(&b, 0); /* half a tensor count */
    expect_open_fails(&b, SX_ERR_FORMAT, "truncated: tensor count");
    b.n = 0;
    bb_header(&b, 3, 0, 1ull << 60);
    expect_open_fails(&b, SX_ERR_FORMAT, "metadata count 1152921504606846976");
    b.n = 0;
    bb_header(&b, 3, UINT64_MAX, 0);
    expect_open_fails(&b, SX_ERR_FORMAT, "tensor count 18446744073709551615");
    /* the minimal valid file: header only */
    b.n = 0;
    bb_header(&b, 2, 0, 0);
    sx_gguf *g = NULL;
    assert_int_equal(sx_gguf_open_memory(b.d, b.n, "v2.gguf", &g), SX_OK);
    assert_int_equal(sx_gguf_version(g), 2);
    assert_int_equal(sx_gguf_n_kv(g), 0);
    assert_int_equal(sx_gguf_find_key(g, "x"), -1);
    assert_int_equal(sx_gguf_find_tensor(g, "x"), -1);
    sx_gguf_close(g);
    free(b.d);
}

static void test_bad_kv(void **state) {
    (void)state;
    bb b = {0};
    /* truncated in the middle of a value type */
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.name");
    bb_u8(&b, 8);
    expect_open_fails(&b, SX_ERR_FORMAT, "key 'general.name': truncated: value type");
    /* string shorter than its length */
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.name");
    bb_u32(&b, SX_GGUF_TYPE_STRING);
    bb_u64(&b, 10);
    bb_put(&b, "abc", 3);
    expect_open_fails(&b, SX_ERR_FORMAT, "string length 10 at offset 48 exceeds the 3 bytes left");
    /* huge string length */
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.name");
    bb_u32(&b, SX_GGUF_TYPE_STRING);
    bb_u64(&b, UINT64_MAX);
    bb_zeros(&b, 16);
    expect_open_fails(&b, SX_ERR_FORMAT, "string length 18446744073709551615");
    /* huge key length */
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_u64(&b, 1ull << 62);
    bb_zeros(&b, 16);
    expect_open_fails(&b, SX_ERR_FORMAT, "key length 4611686018427387904");
    /* huge numeric array */
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "a");
    bb_u32(&b, SX_GGUF_TYPE_ARRAY);
    bb_u32(&b, SX_GGUF_TYPE_UINT32);
    bb_u64(&b, 1ull << 62);
    bb_zeros(&b, 16);
    expect_open_fails(&b, SX_ERR_FORMAT, "array of 4611686018427387904 uint32");
    /* huge string array */
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "tokenizer.ggml.tokens");
    bb_u32(&b, SX_GGUF_TYPE_ARRAY);
    bb_u32(&b, SX_GGUF_TYPE_STRING);
    bb_u64(&b, UINT64_MAX);
    bb_zeros(&b, 16);
    expect_open_fails(&b, SX_ERR_FORMAT, "string array count 18446744073709551615");
    /* invalid value type / element type / nested array */
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "a");
    bb_u32(&b, 13);
    bb_zeros(&b, 8);
    expect_open_fails(&b, SX_ERR_FORMAT, "invalid value type 13");
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "a");
    bb_u32(&b, SX_GGUF_TYPE_ARRAY);
    bb_u32(&b, 77);
    bb_u64(&b, 0);
    expect_open_fails(&b, SX_ERR_FORMAT, "invalid array element type 77");
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "a");
    bb_u32(&b, SX_GGUF_TYPE_ARRAY);
    bb_u32(&b, SX_GGUF_TYPE_ARRAY);
    bb_u64(&b, 0);
    expect_open_fails(&b, SX_ERR_UNSUPPORTED, "nested arrays");
    /* duplicate key */
    b.n = 0;
    bb_header(&b, 3, 0, 2);
    bb_kv_u32(&b, "llama.block_count", 1);
    bb_kv_u32(&b, "llama.block_count", 2);
    expect_open_fails(&b, SX_ERR_FORMAT, "duplicate key 'llama.block_count'");
    /* empty key, key with a NUL byte */
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_kv_u32(&b, "", 1);
    expect_open_fails(&b, SX_ERR_FORMAT, "empty key");
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_u64(&b, 3);
    bb_put(&b, "a\0b", 3);
    bb_u32(&b, SX_GGUF_TYPE_UINT8);
    bb_u8(&b, 1);
    expect_open_fails(&b, SX_ERR_FORMAT, "NUL byte");
    free(b.d);
}

static void test_bad_alignment(void **state) {
    (void)state;
    const uint32_t bad[] = {0, 48, 3};
    bb b = {0};
    for (size_t i = 0; i < 3; i++) {
        b.n = 0;
        bb_header(&b, 3, 0, 1);
        bb_kv_u32(&b, "general.alignment", bad[i]);
        expect_open_fails(&b, SX_ERR_FORMAT, "not a nonzero power of two");
    }
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.alignment");
    bb_u32(&b, SX_GGUF_TYPE_STRING);
    bb_str(&b, "32");
    expect_open_fails(&b, SX_ERR_FORMAT, "general.alignment must be a uint32");
    free(b.d);
}

/* One tensor file: header, optional alignment kv, one info, data. */
static void one_tensor(bb *b, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off, size_t data) {
    b->n = 0;
    bb_header(b, 3, 1, 0);
    bb_tensor(b, "blk.0.attn_q.weight", n_dims, ne, type, off);
    bb_pad(b, 32);
    bb_zeros(b, data);
}

static void test_bad_tensors(void **state) {
    (void)state;
    bb b = {0};
    uint64_t ne[5] = {32, 2, 1, 1, 1};
    one_tensor(&b, 5, ne, 0, 0, 256);
    expect_open_fails(&b, SX_ERR_FORMAT, "tensor 'blk.0.attn_q.weight': n_dims 5");
    one_tensor(&b, 0, ne, 0, 0, 256);
    expect_open_fails(&b, SX_ERR_FORMAT, "n_dims 0");
    uint64_t zero[2] = {32, 0};
    one_tensor(&b, 2, zero, 0, 0, 256);
    expect_open_fails(&b, SX_ERR_FORMAT, "dimension 1 is 0");
    uint64_t neg[2] = {32, (uint64_t)-5};
    one_tensor(&b, 2, neg, 0, 0, 256);
    expect_open_fails(&b, SX_ERR_FORMAT, "dimension 1 is -5");
    uint64_t huge[3] = {1ull << 32, 1ull << 32, 1ull << 32};
    one_tensor(&b, 3, huge, 0, 0, 256);
    expect_open_fails(&b, SX_ERR_FORMAT, "element count overflows");
    uint64_t big[2] = {1ull << 20, 1ull << 20};
    one_tensor(&b, 2, big, 0, 0, 256);
    expect_open_fails(&b, SX_ERR_FORMAT, "exceeds the file size");
    one_tensor(&b, 2, ne, 99, 0, 256);
    expect_open_fails(&b, SX_ERR_UNSUPPORTED, "unsupported tensor type 99 (unknown)");
    one_tensor(&b, 2, ne, 4, 0, 256);
    expect_open_fails(&b, SX_ERR_UNSUPPORTED, "tensor type 4 (q4_2, removed from ggml)");
    one_tensor(&b, 2, ne, 0x80000000u, 0, 256);
    expect_open_fails(&b, SX_ERR_UNSUPPORTED, "unsupported tensor type 2147483648");
    uint64_t odd[1] = {33};
    one_tensor(&b, 1, odd, 8 /* q8_0 */, 0, 256);
    expect_open_fails(&b, SX_ERR_FORMAT, "ne[0] = 33 is not a multiple of the block size 32 of type q8_0");
    one_tensor(&b, 2, ne, 0, 16, 512);
    expect_open_fails(&b, SX_ERR_FORMAT, "data offset 16 is not a multiple of the alignment 32");
    one_tensor(&b, 2, ne, 0, 64, 255); /* needs 256 bytes at 64 */
    expect_open_fails(&b, SX_ERR_FORMAT, "tensor 'blk.0.attn_q.weight': data range [160, 416) past end of file (size 351)");
    one_tensor(&b, 2, ne, 0, UINT64_MAX - 31, 256);
    expect_open_fails(&b, SX_ERR_FORMAT, "overflows");
    one_tensor(&b, 2, ne, 0, 0, 255); /* data section one byte short */
    expect_open_fails(&b, SX_ERR_FORMAT, "past end of file");

    /* overlapping tensors and duplicate names */
    b.n = 0;
    bb_header(&b, 3, 2, 0);
    bb_tensor(&b, "a", 2, ne, 0, 0);
    bb_tensor(&b, "b", 2, ne, 0, 224); /* a is [0, 256) */
    bb_pad(&b, 32);
    bb_zeros(&b, 1024);
    expect_open_fails(&b, SX_ERR_FORMAT, "tensors 'a' [");
    expect_open_fails(&b, SX_ERR_FORMAT, "overlap");
    b.n = 0;
    bb_header(&b, 3, 2, 0);
    bb_tensor(&b, "a", 2, ne, 0, 0);
    bb_tensor(&b, "a", 2, ne, 0, 256);
    bb_pad(&b, 32);
    bb_zeros(&b, 1024);
    expect_open_fails(&b, SX_ERR_FORMAT, "duplicate tensor name 'a'");
    /* tensor name longer than the file */
    b.n = 0;
    bb_header(&b, 3, 1, 0);
    bb_u64(&b, 1000);
    bb_zeros(&b, 40);
    expect_open_fails(&b, SX_ERR_FORMAT, "tensor name length 1000");
    /* n_tensors says 3, file holds one info */
    b.n = 0;
    bb_header(&b, 3, 3, 0);
    bb_tensor(&b, "a", 2, ne, 0, 0);
    bb_zeros(&b, 300);
    expect_open_fails(&b, SX_ERR_FORMAT, "tensor #1: empty tensor name");
    free(b.d);
}

static volatile unsigned g_sink; /* keeps the touches below from being optimised out */

/* Opening must never crash; when it succeeds every accessor must work. */
static void exercise(const uint8_t *p, size_t n) {
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n) memcpy(copy, p, n);
    sx_gguf *g = NULL;
    sx_status s = sx_gguf_open_memory(copy, n, "t.gguf", &g);
    if (s != SX_OK) {
        assert_null(g);
        assert_true(sx_last_error()[0] != 0);
        assert_true(s == SX_ERR_FORMAT || s == SX_ERR_UNSUPPORTED);
    } else {
        for (int64_t i = 0; i < sx_gguf_n_kv(g); i++) {
            uint64_t len = sx_gguf_arr_len(g, i);
            for (uint64_t j = 0; j < len && sx_gguf_arr_type(g, i) == SX_GGUF_TYPE_STRING; j++) {
                const char *str;
                size_t sl;
                assert_int_equal(sx_gguf_arr_str(g, i, j, &str, &sl), SX_OK);
                if (sl) g_sink += (unsigned)str[0] + (unsigned)str[sl - 1];
            }
        }
        for (int64_t i = 0; i < sx_gguf_n_tensors(g); i++) {
            sx_gguf_tensor_info info;
            sx_status ts = sx_gguf_tensor(g, i, &info);
            assert_true(ts == SX_OK || ts == SX_ERR_UNSUPPORTED);
            assert_true(info.offset + info.size <= n);
            const uint8_t *d = info.data;
            g_sink += (unsigned)d[0] + d[info.size - 1];
        }
        sx_gguf_close(g);
    }
    free(copy);
}

static void test_every_truncation(void **state) {
    (void)state;
    size_t size;
    uint8_t *file = make_valid_file(&size);
    size_t ok = 0;
    for (size_t n = 0; n <= size; n++) {
        sx_gguf *g = NULL;
        if (sx_gguf_open_memory(file, n, "t.gguf", &g) == SX_OK) ok++;
        sx_gguf_close(g);
        exercise(file, n);
    }
    /* only the full file and cuts inside the final padding open */
    assert_true(ok >= 1 && ok <= 32);
    free(file);
}

/* Each byte of a valid file set to a few values: never a crash. */
static void test_byte_corruptions(void **state) {
    (void)state;
    size_t size;
    uint8_t *file = make_valid_file(&size);
    const uint8_t vals[] = {0x00, 0xff, 0x7f, 0x80, 0x01};
    for (size_t i = 0; i < size; i++) {
        uint8_t keep = file[i];
        for (size_t v = 0; v < sizeof vals; v++) {
            file[i] = (uint8_t)(keep ^ vals[v]);
            exercise(file, size);
        }
        file[i] = keep;
    }
    free(file);
}

/* ---------------------------------------------------------------------- */
/* Real model (optional)                                                   */
/* ---------------------------------------------------------------------- */

static void test_smollm2(void **state) {
    (void)state;
    const char *path = getenv("SX_SMOLLM2");
    if (!path || !path[0]) {
        skip();
        return;
    }
    sx_gguf *g = NULL;
    sx_status s = sx_gguf_open(path, &g);
    if (s != SX_OK) print_error("%s\n", sx_last_error());
    assert_int_equal(s, SX_OK);
    assert_int_equal(sx_gguf_n_tensors(g), 272);
    uint32_t n_layer = 0;
    assert_int_equal(sx_gguf_get_u32(g, "llama.block_count", &n_layer), SX_OK);
    assert_int_equal(n_layer, 30);
    int64_t k = sx_gguf_find_key(g, "tokenizer.ggml.tokens");
    assert_true(k >= 0);
    assert_int_equal(sx_gguf_arr_len(g, k), 49152);
    for (int64_t i = 0; i < sx_gguf_n_tensors(g); i++) {
        sx_gguf_tensor_info info;
        s = sx_gguf_tensor(g, i, &info);
        if (s != SX_OK) print_error("%s\n", sx_last_error());
        assert_int_equal(s, SX_OK);
    }
    sx_gguf_close(g);
}

/* ---------------------------------------------------------------------- */
/* Fuzz seeds                                                              */
/* ---------------------------------------------------------------------- */

static int write_file(const char *dir, const char *name, const void *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        return 1;
    }
    printf("wrote %s (%zu bytes)\n", path, n);
    return 0;
}

/* Seeds: all value types + tensors; a tokenizer-like string array with
 * general.alignment 64; a q5_k tensor in a version 2 file (q5_k was not
 * computed when the seed was made; the file name stays). */
static int write_corpus(const char *dir) {
    int rc = 0;
    size_t size;
    uint8_t *file = make_valid_file(&size);
    rc |= write_file(dir, "all_types.gguf", file, size);
    free(file);

    sx_gguf_writer *w = NULL;
    if (sx_gguf_writer_create(&w) != SX_OK) return 1;
    static const char *const toks[] = {"<s>", "</s>", "a", "b", "ab", "Ġthe"};
    static const float scores[] = {0, 0, -1, -2, -3, -4};
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t ne[2] = {4, 2};
    if (sx_gguf_writer_set_u32(w, "general.alignment", 64) != SX_OK ||
        sx_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 6) != SX_OK ||
        sx_gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", scores, 6) != SX_OK ||
        sx_gguf_writer_add_tensor(w, "output.weight", SX_DTYPE_F32, 2, ne, x, sizeof x) != SX_OK ||
        sx_gguf_writer_write_memory(w, (void **)&file, &size) != SX_OK)
        rc = 1;
    else
        rc |= write_file(dir, "tokenizer.gguf", file, size), free(file);
    sx_gguf_writer_destroy(w);

    bb b = {0};
    bb_header(&b, 2, 1, 1);
    bb_kv_u32(&b, "llama.block_count", 1);
    uint64_t q5[1] = {256};
    bb_tensor(&b, "blk.0.ffn_down.weight", 1, q5, 13, 0);
    bb_pad(&b, 32);
    bb_zeros(&b, 176);
    rc |= write_file(dir, "v2_q5_k.gguf", b.d, b.n);
    free(b.d);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) return write_corpus(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_memory),
        cmocka_unit_test(test_roundtrip_file),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_unsupported_known_type),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_bad_kv),
        cmocka_unit_test(test_bad_alignment),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_byte_corruptions),
        cmocka_unit_test(test_smollm2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
