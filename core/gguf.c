/* core/gguf.c — GGUF reader (mmap or memory) and writer. Format in gguf.h.
 *
 * Reader design: one pass over the header with a bounds-checked cursor.
 * Nothing is trusted: each read checks the bytes left, each count is bounded
 * by the bytes left before anything is allocated, and sizes are computed with
 * overflow checks. Keys and tensor names are copied NUL-terminated into one
 * arena after the pass; values stay in the file image (zero copy). Hash
 * tables give O(1) lookup and catch duplicates. Tested by tests/test_gguf.c
 * (round trips, corrupt files, every truncation) and tests/fuzz/fuzz_gguf.c.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "core/gguf.c reads little-endian values with memcpy: big-endian hosts are not supported"
#endif

/* ===================================================================== */
/* Type tables                                                           */
/* ===================================================================== */

static const char *const k_type_names[SX_GGUF_TYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64",
};
static const uint8_t k_type_sizes[SX_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *sx_gguf_type_name(sx_gguf_type t) {
    return (unsigned)t < SX_GGUF_TYPE_COUNT ? k_type_names[t] : "invalid";
}

size_t sx_gguf_type_size(sx_gguf_type t) {
    return (unsigned)t < SX_GGUF_TYPE_COUNT ? k_type_sizes[t] : 0;
}

/* ggml tensor types: name, elements per block, bytes per block. Block 0
 * marks ids removed from ggml (their data cannot be sized). */
typedef struct sx_ggml_type_desc {
    const char *name;
    uint32_t block;
    uint32_t bytes;
} sx_ggml_type_desc;

#define SX_GGML_TYPE_COUNT 40
static const sx_ggml_type_desc k_ggml_types[SX_GGML_TYPE_COUNT] = {
    {"f32", 1, 4},          {"f16", 1, 2},          {"q4_0", 32, 18},        {"q4_1", 32, 20},
    {"q4_2", 0, 0},         {"q4_3", 0, 0},         {"q5_0", 32, 22},        {"q5_1", 32, 24},
    {"q8_0", 32, 34},       {"q8_1", 32, 36},       {"q2_k", 256, 84},       {"q3_k", 256, 110},
    {"q4_k", 256, 144},     {"q5_k", 256, 176},     {"q6_k", 256, 210},      {"q8_k", 256, 292},
    {"iq2_xxs", 256, 66},   {"iq2_xs", 256, 74},    {"iq3_xxs", 256, 98},    {"iq1_s", 256, 50},
    {"iq4_nl", 32, 18},     {"iq3_s", 256, 110},    {"iq2_s", 256, 82},      {"iq4_xs", 256, 136},
    {"i8", 1, 1},           {"i16", 1, 2},          {"i32", 1, 4},           {"i64", 1, 8},
    {"f64", 1, 8},          {"iq1_m", 256, 56},     {"bf16", 1, 2},          {"q4_0_4_4", 0, 0},
    {"q4_0_4_8", 0, 0},     {"q4_0_8_8", 0, 0},     {"tq1_0", 256, 54},      {"tq2_0", 256, 66},
    {"iq4_nl_4_4", 0, 0},   {"iq4_nl_4_8", 0, 0},   {"iq4_nl_8_8", 0, 0},    {"mxfp4", 32, 17},
};

const char *sx_gguf_ggml_type_name(int ggml_type) {
    if (ggml_type < 0 || ggml_type >= SX_GGML_TYPE_COUNT) return "unknown";
    return k_ggml_types[ggml_type].name;
}

/* ===================================================================== */
/* Small helpers                                                         */
/* ===================================================================== */

static bool is_pow2_u64(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* a + b into *out; false on overflow. */
static bool add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    if (a > UINT64_MAX - b) return false;
    *out = a + b;
    return true;
}

/* a * b into *out; false on overflow. */
static bool mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    if (a != 0 && b > UINT64_MAX / a) return false;
    *out = a * b;
    return true;
}

/* FNV-1a over n bytes. */
static uint64_t hash_bytes(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ===================================================================== */
/* Name index: open addressing over NUL-terminated names; stores i + 1.  */
/* ===================================================================== */

typedef struct sx_gguf_index {
    uint64_t *slots; /* 0 = empty, else entry index + 1 */
    uint64_t mask;   /* capacity - 1 (capacity a power of two >= 2n) */
} sx_gguf_index;

static sx_status index_init(sx_gguf_index *ix, uint64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * n) cap <<= 1; /* n is bounded by the file size */
    ix->slots = calloc((size_t)cap, sizeof *ix->slots);
    ix->mask = cap - 1;
    if (!ix->slots) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "gguf: out of memory for a name index");
    return SX_OK;
}

/* Slot of `name` (len bytes): either holding it or the empty slot where it
 * would go. names[k] is the NUL-terminated name of entry k. */
static uint64_t index_slot(const sx_gguf_index *ix, const char *const *names, size_t stride,
                           const char *name, size_t len) {
    uint64_t s = hash_bytes(name, len) & ix->mask;
    for (;;) {
        uint64_t e = ix->slots[s];
        if (e == 0) return s;
        const char *cand = *(const char *const *)((const char *)names + (e - 1) * stride);
        if (strncmp(cand, name, len) == 0 && cand[len] == 0) return s;
        s = (s + 1) & ix->mask;
    }
}

/* ===================================================================== */
/* Reader state                                                          */
/* ===================================================================== */

typedef struct sx_gguf_kv {
    const char *key;        /* NUL-terminated (arena); first field: index uses it */
    const uint8_t *key_raw; /* key bytes in the file */
    size_t key_len;
    sx_gguf_type type;
    sx_gguf_type arr_type;  /* ARRAY: element type */
    uint64_t arr_len;       /* ARRAY: element count */
    uint64_t str_len;       /* STRING: byte length */
    const uint8_t *val;     /* scalar / string bytes / first array element */
    uint64_t *str_offs;     /* ARRAY of STRING: file offset of each u64 length */
} sx_gguf_kv;

typedef struct sx_gguf_ti {
    const char *name;        /* NUL-terminated (arena); first field */
    const uint8_t *name_raw;
    size_t name_len;
    uint64_t name_off;       /* file offset of the name, for messages */
    int ggml_type;
    int n_dims;
    int64_t ne[4];
    uint64_t rel_offset;     /* as stored: relative to the data section */
    uint64_t offset;         /* absolute */
    uint64_t size;           /* bytes */
} sx_gguf_ti;

struct sx_gguf {
    const uint8_t *base;
    size_t size;
    bool mapped;
    char *name;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    int64_t n_kv;
    sx_gguf_kv *kv;
    int64_t n_tensors;
    sx_gguf_ti *ti;
    char *arena;
    sx_gguf_index kv_index;
    sx_gguf_index ti_index;
};

/* Bounds-checked reader over the file image. */
typedef struct sx_cursor {
    const uint8_t *base;
    size_t size;
    size_t pos;
    const char *file; /* name for messages */
    const char *ctx;  /* item being read ("kv #3 'general.name'") */
} sx_cursor;

static sx_status cur_err(const sx_cursor *c, sx_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "<file>: <ctx>: <message>" */
static sx_status cur_err(const sx_cursor *c, sx_status s, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->ctx && c->ctx[0]) return sx_set_error(s, "%s: %s: %s", c->file, c->ctx, msg);
    return sx_set_error(s, "%s: %s", c->file, msg);
}

static size_t cur_left(const sx_cursor *c) { return c->size - c->pos; }

/* Takes n bytes (pointer in *out), or a truncation error naming `what`. */
static sx_status cur_take(sx_cursor *c, uint64_t n, const char *what, const uint8_t **out) {
    if (n > cur_left(c))
        return cur_err(c, SX_ERR_FORMAT,
                       "truncated: %s needs %" PRIu64 " bytes at offset %zu but only %zu remain (file size %zu)",
                       what, n, c->pos, cur_left(c), c->size);
    *out = c->base + c->pos;
    c->pos += (size_t)n;
    return SX_OK;
}

static sx_status cur_u32(sx_cursor *c, const char *what, uint32_t *out) {
    const uint8_t *p = NULL;
    SX_RETURN_IF_ERROR(cur_take(c, 4, what, &p));
    memcpy(out, p, 4);
    return SX_OK;
}

static sx_status cur_u64(sx_cursor *c, const char *what, uint64_t *out) {
    const uint8_t *p = NULL;
    SX_RETURN_IF_ERROR(cur_take(c, 8, what, &p));
    memcpy(out, p, 8);
    return SX_OK;
}

/* GGUF string: u64 length + bytes. */
static sx_status cur_str(sx_cursor *c, const char *what, const uint8_t **out, uint64_t *out_len) {
    size_t at = c->pos;
    uint64_t len = 0;
    SX_RETURN_IF_ERROR(cur_u64(c, what, &len));
    if (len > cur_left(c))
        return cur_err(c, SX_ERR_FORMAT,
                       "%s length %" PRIu64 " at offset %zu exceeds the %zu bytes left in the file", what, len,
                       at, cur_left(c));
    *out_len = len;
    return cur_take(c, len, what, out);
}

/* Name (key or tensor name): non-empty, no NUL byte. */
static sx_status cur_name(sx_cursor *c, const char *what, const uint8_t **out, size_t *out_len) {
    size_t at = c->pos;
    uint64_t len = 0;
    SX_RETURN_IF_ERROR(cur_str(c, what, out, &len));
    if (len == 0) return cur_err(c, SX_ERR_FORMAT, "empty %s at offset %zu", what, at);
    if (memchr(*out, 0, (size_t)len))
        return cur_err(c, SX_ERR_FORMAT, "%s at offset %zu contains a NUL byte", what, at);
    *out_len = (size_t)len;
    return SX_OK;
}

/* ===================================================================== */
/* Header and metadata                                                   */
/* ===================================================================== */

static sx_status parse_header(sx_cursor *c, sx_gguf *g, uint64_t *n_tensors, uint64_t *n_kv) {
    if (c->size < 4)
        return cur_err(c, SX_ERR_FORMAT, "file too small for a GGUF header (%zu bytes)%s", c->size,
                       c->size == 0 ? ": empty file" : "");
    if (memcmp(c->base, SX_GGUF_MAGIC, 4) != 0)
        return cur_err(c, SX_ERR_FORMAT, "bad magic %02x %02x %02x %02x at offset 0 (expected \"GGUF\"): not a GGUF file",
                       c->base[0], c->base[1], c->base[2], c->base[3]);
    c->pos = 4;
    uint32_t v = 0;
    SX_RETURN_IF_ERROR(cur_u32(c, "version", &v));
    if (v == 1)
        return cur_err(c, SX_ERR_UNSUPPORTED, "GGUF version 1 is not supported (only v2 and v3); re-convert the model");
    uint32_t swapped = (v >> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24);
    if (swapped >= 1 && swapped <= 3)
        return cur_err(c, SX_ERR_UNSUPPORTED, "version field 0x%08x looks big-endian: big-endian GGUF files are not supported", v);
    if (v == 0) return cur_err(c, SX_ERR_FORMAT, "invalid GGUF version 0 at offset 4");
    if (v > 3) return cur_err(c, SX_ERR_UNSUPPORTED, "GGUF version %u is newer than supported (2..3)", v);
    g->version = v;
    SX_RETURN_IF_ERROR(cur_u64(c, "tensor count", n_tensors));
    SX_RETURN_IF_ERROR(cur_u64(c, "metadata count", n_kv));
    return SX_OK;
}

/* Offsets of the n strings of a string array starting at the cursor. */
static sx_status parse_str_array(sx_cursor *c, sx_gguf_kv *kv) {
    /* each string takes >= 8 bytes: bounds n before allocating */
    if (kv->arr_len > cur_left(c) / 8)
        return cur_err(c, SX_ERR_FORMAT,
                       "string array count %" PRIu64 " at offset %zu is impossible: only %zu bytes remain",
                       kv->arr_len, c->pos, cur_left(c));
    kv->str_offs = malloc((size_t)(kv->arr_len ? kv->arr_len : 1) * sizeof *kv->str_offs);
    if (!kv->str_offs) return cur_err(c, SX_ERR_OUT_OF_MEMORY, "out of memory for %" PRIu64 " strings", kv->arr_len);
    for (uint64_t j = 0; j < kv->arr_len; j++) {
        const uint8_t *s;
        uint64_t len = 0;
        kv->str_offs[j] = c->pos;
        SX_RETURN_IF_ERROR(cur_str(c, "array string", &s, &len));
    }
    return SX_OK;
}

static sx_status parse_array(sx_cursor *c, sx_gguf_kv *kv) {
    uint32_t et = 0;
    size_t at = c->pos;
    SX_RETURN_IF_ERROR(cur_u32(c, "array element type", &et));
    if (et == SX_GGUF_TYPE_ARRAY)
        return cur_err(c, SX_ERR_UNSUPPORTED, "nested arrays (at offset %zu) are not supported", at);
    if (et >= SX_GGUF_TYPE_COUNT)
        return cur_err(c, SX_ERR_FORMAT, "invalid array element type %u at offset %zu", et, at);
    kv->arr_type = (sx_gguf_type)et;
    SX_RETURN_IF_ERROR(cur_u64(c, "array count", &kv->arr_len));
    kv->val = c->base + c->pos;
    if (et == SX_GGUF_TYPE_STRING) return parse_str_array(c, kv);
    uint64_t esize = k_type_sizes[et];
    if (kv->arr_len > cur_left(c) / esize)
        return cur_err(c, SX_ERR_FORMAT,
                       "array of %" PRIu64 " %s at offset %zu does not fit in the %zu bytes left", kv->arr_len,
                       k_type_names[et], c->pos, cur_left(c));
    const uint8_t *p = NULL;
    return cur_take(c, kv->arr_len * esize, "array data", &p);
}

static sx_status parse_value(sx_cursor *c, sx_gguf_kv *kv) {
    const uint8_t *p = NULL;
    switch (kv->type) {
    case SX_GGUF_TYPE_STRING: return cur_str(c, "string", &kv->val, &kv->str_len);
    case SX_GGUF_TYPE_ARRAY: return parse_array(c, kv);
    default:
        SX_RETURN_IF_ERROR(cur_take(c, k_type_sizes[kv->type], "value", &p));
        kv->val = p;
        return SX_OK;
    }
}

static sx_status parse_kv(sx_cursor *c, int64_t i, sx_gguf_kv *kv) {
    char ctx[200];
    snprintf(ctx, sizeof ctx, "metadata entry #%" PRId64, i);
    c->ctx = ctx;
    SX_RETURN_IF_ERROR(cur_name(c, "key", &kv->key_raw, &kv->key_len));
    snprintf(ctx, sizeof ctx, "key '%.*s'", (int)(kv->key_len > 120 ? 120 : kv->key_len), (const char *)kv->key_raw);
    size_t at = c->pos;
    uint32_t t = 0;
    SX_RETURN_IF_ERROR(cur_u32(c, "value type", &t));
    if (t >= SX_GGUF_TYPE_COUNT) return cur_err(c, SX_ERR_FORMAT, "invalid value type %u at offset %zu", t, at);
    kv->type = (sx_gguf_type)t;
    SX_RETURN_IF_ERROR(parse_value(c, kv));
    c->ctx = NULL;
    return SX_OK;
}

static sx_status parse_kvs(sx_cursor *c, sx_gguf *g, uint64_t n_kv) {
    /* each entry takes >= 8 (key len) + 1 (key) + 4 (type) + 1 (value) bytes */
    if (n_kv > cur_left(c) / 14)
        return cur_err(c, SX_ERR_FORMAT,
                       "metadata count %" PRIu64 " at offset 16 is impossible: only %zu bytes remain", n_kv,
                       cur_left(c));
    g->kv = calloc((size_t)(n_kv ? n_kv : 1), sizeof *g->kv);
    if (!g->kv) return cur_err(c, SX_ERR_OUT_OF_MEMORY, "out of memory for %" PRIu64 " metadata entries", n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        g->n_kv = (int64_t)i + 1; /* so close() frees str_offs of a partial parse */
        SX_RETURN_IF_ERROR(parse_kv(c, (int64_t)i, &g->kv[i]));
    }
    g->n_kv = (int64_t)n_kv;
    return SX_OK;
}

/* ===================================================================== */
/* Tensor infos                                                          */
/* ===================================================================== */

static sx_status parse_dims(sx_cursor *c, sx_gguf_ti *t) {
    size_t at = c->pos;
    uint32_t n_dims = 0;
    SX_RETURN_IF_ERROR(cur_u32(c, "n_dims", &n_dims));
    if (n_dims < 1 || n_dims > SX_GGUF_MAX_DIMS)
        return cur_err(c, SX_ERR_FORMAT, "n_dims %u at offset %zu out of range (1..%d)", n_dims, at, SX_GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    uint64_t nel = 1;
    for (int d = 0; d < 4; d++) {
        uint64_t ne = 1;
        at = c->pos;
        if (d < (int)n_dims) SX_RETURN_IF_ERROR(cur_u64(c, "dimension", &ne));
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return cur_err(c, SX_ERR_FORMAT, "dimension %d is %" PRId64 " at offset %zu (must be >= 1)", d,
                           (int64_t)ne, at);
        if (!mul_u64(nel, ne, &nel) || nel > (uint64_t)INT64_MAX)
            return cur_err(c, SX_ERR_FORMAT, "element count overflows at dimension %d (offset %zu)", d, at);
        t->ne[d] = (int64_t)ne;
    }
    return SX_OK;
}

/* Bytes of tensor t by its type: through ir/dtype for supported types, the
 * ggml table otherwise. */
static sx_status tensor_nbytes(sx_cursor *c, sx_gguf_ti *t, size_t type_at) {
    int id = t->ggml_type;
    if (id < 0 || id >= SX_GGML_TYPE_COUNT || k_ggml_types[id].block == 0)
        return cur_err(c, SX_ERR_UNSUPPORTED, "unsupported tensor type %d (%s%s) at offset %zu", id,
                       sx_gguf_ggml_type_name(id), id >= 0 && id < SX_GGML_TYPE_COUNT ? ", removed from ggml" : "",
                       type_at);
    uint64_t block = k_ggml_types[id].block, row;
    if ((uint64_t)t->ne[0] % block != 0)
        return cur_err(c, SX_ERR_FORMAT, "ne[0] = %" PRId64 " is not a multiple of the block size %" PRIu64 " of type %s",
                       t->ne[0], block, k_ggml_types[id].name);
    sx_dtype dt;
    if (sx_dtype_from_ggml(id, &dt)) {
        row = sx_dtype_row_size(dt, t->ne[0]);
        if (row == 0)
            return cur_err(c, SX_ERR_FORMAT, "ne[0] = %" PRId64 " does not fit type %s", t->ne[0], k_ggml_types[id].name);
    } else {
        row = (uint64_t)t->ne[0] / block * k_ggml_types[id].bytes;
    }
    uint64_t rows = (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3]; /* <= nel, no overflow */
    if (!mul_u64(row, rows, &t->size) || t->size > c->size)
        return cur_err(c, SX_ERR_FORMAT, "data size (%" PRIu64 " rows of %" PRIu64 " bytes) exceeds the file size %zu",
                       rows, row, c->size);
    return SX_OK;
}

static sx_status parse_tensor_info(sx_cursor *c, int64_t i, sx_gguf_ti *t) {
    char ctx[200];
    snprintf(ctx, sizeof ctx, "tensor #%" PRId64, i);
    c->ctx = ctx;
    t->name_off = c->pos;
    SX_RETURN_IF_ERROR(cur_name(c, "tensor name", &t->name_raw, &t->name_len));
    snprintf(ctx, sizeof ctx, "tensor '%.*s'", (int)(t->name_len > 120 ? 120 : t->name_len), (const char *)t->name_raw);
    SX_RETURN_IF_ERROR(parse_dims(c, t));
    size_t type_at = c->pos;
    uint32_t type = 0;
    SX_RETURN_IF_ERROR(cur_u32(c, "type", &type));
    t->ggml_type = type > INT32_MAX ? -1 : (int)type;
    if (type > INT32_MAX)
        return cur_err(c, SX_ERR_UNSUPPORTED, "unsupported tensor type %u at offset %zu", type, type_at);
    SX_RETURN_IF_ERROR(tensor_nbytes(c, t, type_at));
    SX_RETURN_IF_ERROR(cur_u64(c, "data offset", &t->rel_offset));
    c->ctx = NULL;
    return SX_OK;
}

static sx_status parse_tensor_infos(sx_cursor *c, sx_gguf *g, uint64_t n) {
    /* each info takes >= 8 + 1 + 4 + 8 + 4 + 8 = 33 bytes */
    if (n > cur_left(c) / 33)
        return cur_err(c, SX_ERR_FORMAT,
                       "tensor count %" PRIu64 " (offset 8) is impossible: only %zu bytes remain at offset %zu", n,
                       cur_left(c), c->pos);
    g->ti = calloc((size_t)(n ? n : 1), sizeof *g->ti);
    if (!g->ti) return cur_err(c, SX_ERR_OUT_OF_MEMORY, "out of memory for %" PRIu64 " tensor infos", n);
    for (uint64_t i = 0; i < n; i++) SX_RETURN_IF_ERROR(parse_tensor_info(c, (int64_t)i, &g->ti[i]));
    g->n_tensors = (int64_t)n;
    return SX_OK;
}

/* ===================================================================== */
/* Cross checks: alignment, data ranges, overlaps, duplicates            */
/* ===================================================================== */

/* general.alignment: an integer, power of two, nonzero. */
static sx_status read_alignment(const sx_cursor *c, sx_gguf *g) {
    g->alignment = SX_GGUF_DEFAULT_ALIGNMENT;
    int64_t i = sx_gguf_find_key(g, "general.alignment");
    if (i < 0) return SX_OK;
    uint32_t a = 0;
    sx_status s = sx_gguf_get_u32(g, "general.alignment", &a);
    if (s != SX_OK)
        return cur_err(c, SX_ERR_FORMAT, "general.alignment must be a uint32 (got %s)",
                       sx_gguf_type_name(g->kv[i].type));
    if (!is_pow2_u64(a))
        return cur_err(c, SX_ERR_FORMAT, "general.alignment = %u is not a nonzero power of two", a);
    g->alignment = a;
    return SX_OK;
}

static sx_status check_tensor_range(const sx_cursor *c, const sx_gguf *g, sx_gguf_ti *t) {
    if (t->rel_offset % g->alignment != 0)
        return cur_err(c, SX_ERR_FORMAT,
                       "tensor '%s': data offset %" PRIu64 " is not a multiple of the alignment %u (misaligned)",
                       t->name, t->rel_offset, g->alignment);
    uint64_t end;
    if (!add_u64(g->data_offset, t->rel_offset, &t->offset))
        return cur_err(c, SX_ERR_FORMAT, "tensor '%s': data offset %" PRIu64 " overflows (past end of file, size %zu)",
                       t->name, t->rel_offset, c->size);
    if (!add_u64(t->offset, t->size, &end))
        return cur_err(c, SX_ERR_FORMAT, "tensor '%s': data range [%" PRIu64 ", +%" PRIu64 ") overflows (file size %zu)",
                       t->name, t->offset, t->size, c->size);
    if (end > c->size)
        return cur_err(c, SX_ERR_FORMAT,
                       "tensor '%s': data range [%" PRIu64 ", %" PRIu64 ") past end of file (size %zu)", t->name,
                       t->offset, end, c->size);
    return SX_OK;
}

typedef struct sx_range {
    uint64_t begin, end;
    int64_t tensor;
} sx_range;

static int cmp_range(const void *a, const void *b) {
    const sx_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->tensor < y->tensor ? -1 : x->tensor > y->tensor;
}

/* Sorted by offset, each tensor must end at or before the next begins. */
static sx_status check_overlaps(const sx_cursor *c, const sx_gguf *g) {
    if (g->n_tensors < 2) return SX_OK;
    sx_range *r = malloc((size_t)g->n_tensors * sizeof *r);
    if (!r) return cur_err(c, SX_ERR_OUT_OF_MEMORY, "out of memory checking tensor ranges");
    for (int64_t i = 0; i < g->n_tensors; i++)
        r[i] = (sx_range){g->ti[i].offset, g->ti[i].offset + g->ti[i].size, i};
    qsort(r, (size_t)g->n_tensors, sizeof *r, cmp_range);
    sx_status s = SX_OK;
    for (int64_t i = 1; i < g->n_tensors && s == SX_OK; i++) {
        const sx_range *a = &r[i - 1], *b = &r[i];
        if (b->begin < a->end)
            s = cur_err(c, SX_ERR_FORMAT,
                        "tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%" PRIu64 ", %" PRIu64 ") overlap",
                        g->ti[a->tensor].name, a->begin, a->end, g->ti[b->tensor].name, b->begin, b->end);
    }
    free(r);
    return s;
}

/* Copies keys and tensor names NUL-terminated into one arena (total is
 * bounded by the file size). */
static sx_status build_names(const sx_cursor *c, sx_gguf *g) {
    size_t total = 1;
    for (int64_t i = 0; i < g->n_kv; i++) total += g->kv[i].key_len + 1;
    for (int64_t i = 0; i < g->n_tensors; i++) total += g->ti[i].name_len + 1;
    g->arena = malloc(total);
    if (!g->arena) return cur_err(c, SX_ERR_OUT_OF_MEMORY, "out of memory for names (%zu bytes)", total);
    char *p = g->arena;
    for (int64_t i = 0; i < g->n_kv; i++) {
        memcpy(p, g->kv[i].key_raw, g->kv[i].key_len);
        p[g->kv[i].key_len] = 0;
        g->kv[i].key = p;
        p += g->kv[i].key_len + 1;
    }
    for (int64_t i = 0; i < g->n_tensors; i++) {
        memcpy(p, g->ti[i].name_raw, g->ti[i].name_len);
        p[g->ti[i].name_len] = 0;
        g->ti[i].name = p;
        p += g->ti[i].name_len + 1;
    }
    return SX_OK;
}

/* Fills the key and tensor indexes; a duplicate is an error. */
static sx_status build_indexes(const sx_cursor *c, sx_gguf *g) {
    SX_RETURN_IF_ERROR(index_init(&g->kv_index, (uint64_t)g->n_kv));
    for (int64_t i = 0; i < g->n_kv; i++) {
        const sx_gguf_kv *kv = &g->kv[i];
        uint64_t s = index_slot(&g->kv_index, &g->kv[0].key, sizeof *kv, kv->key, kv->key_len);
        if (g->kv_index.slots[s] != 0)
            return cur_err(c, SX_ERR_FORMAT, "duplicate key '%s' (metadata entries #%" PRIu64 " and #%" PRId64 ")",
                           kv->key, g->kv_index.slots[s] - 1, i);
        g->kv_index.slots[s] = (uint64_t)i + 1;
    }
    SX_RETURN_IF_ERROR(index_init(&g->ti_index, (uint64_t)g->n_tensors));
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const sx_gguf_ti *t = &g->ti[i];
        uint64_t s = index_slot(&g->ti_index, &g->ti[0].name, sizeof *t, t->name, t->name_len);
        if (g->ti_index.slots[s] != 0)
            return cur_err(c, SX_ERR_FORMAT, "duplicate tensor name '%s' (tensors #%" PRIu64 " and #%" PRId64 ")",
                           t->name, g->ti_index.slots[s] - 1, i);
        g->ti_index.slots[s] = (uint64_t)i + 1;
    }
    return SX_OK;
}

static sx_status place_data(sx_cursor *c, sx_gguf *g) {
    uint64_t a = g->alignment, end;
    if (!add_u64(c->pos, a - 1, &end)) return cur_err(c, SX_ERR_FORMAT, "data section offset overflows");
    g->data_offset = end / a * a;
    for (int64_t i = 0; i < g->n_tensors; i++) SX_RETURN_IF_ERROR(check_tensor_range(c, g, &g->ti[i]));
    return check_overlaps(c, g);
}

/* ===================================================================== */
/* Open / close                                                          */
/* ===================================================================== */

static sx_status parse_all(sx_gguf *g) {
    sx_cursor c = {g->base, g->size, 0, g->name, NULL};
    uint64_t n_tensors = 0, n_kv = 0;
    SX_RETURN_IF_ERROR(parse_header(&c, g, &n_tensors, &n_kv));
    SX_RETURN_IF_ERROR(parse_kvs(&c, g, n_kv));
    SX_RETURN_IF_ERROR(parse_tensor_infos(&c, g, n_tensors));
    SX_RETURN_IF_ERROR(build_names(&c, g));
    SX_RETURN_IF_ERROR(build_indexes(&c, g));
    SX_RETURN_IF_ERROR(read_alignment(&c, g));
    return place_data(&c, g);
}

static sx_status gguf_new(const char *name, sx_gguf **out) {
    sx_gguf *g = calloc(1, sizeof *g);
    if (g) g->name = strdup(name ? name : "<memory>");
    if (!g || !g->name) {
        free(g);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "gguf: out of memory");
    }
    *out = g;
    return SX_OK;
}

sx_status sx_gguf_open_memory(const void *data, size_t size, const char *name_for_errors, sx_gguf **out) {
    if (!out || (!data && size)) return sx_set_error(SX_ERR_INVALID_ARG, "sx_gguf_open_memory: NULL argument");
    *out = NULL;
    sx_gguf *g = NULL;
    SX_RETURN_IF_ERROR(gguf_new(name_for_errors, &g));
    g->base = data ? data : (const uint8_t *)"";
    g->size = size;
    sx_status s = parse_all(g);
    if (s != SX_OK) {
        sx_gguf_close(g);
        return s;
    }
    *out = g;
    return SX_OK;
}

/* Maps `path` read-only; an empty file gets no mapping (size 0). */
static sx_status map_file(const char *path, const uint8_t **out_base, size_t *out_size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block us */
    if (fd < 0) return sx_set_error(SX_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sx_set_error(SX_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sx_set_error(SX_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return sx_set_error(SX_ERR_IO, "%s: file too large to map (%lld bytes)", path, (long long)st.st_size);
    }
    *out_size = (size_t)st.st_size;
    *out_base = NULL;
    if (*out_size > 0) {
        void *p = mmap(NULL, *out_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return sx_set_error(SX_ERR_IO, "%s: mmap of %zu bytes failed: %s", path, *out_size, strerror(e));
        }
        *out_base = p;
    }
    close(fd);
    return SX_OK;
}

sx_status sx_gguf_open(const char *path, sx_gguf **out) {
    if (!path || !out) return sx_set_error(SX_ERR_INVALID_ARG, "sx_gguf_open: NULL argument");
    *out = NULL;
    const uint8_t *base = NULL;
    size_t size = 0;
    SX_RETURN_IF_ERROR(map_file(path, &base, &size));
    sx_gguf *g = NULL;
    sx_status s = gguf_new(path, &g);
    if (s != SX_OK) {
        if (base) munmap((void *)base, size);
        return s;
    }
    g->base = base ? base : (const uint8_t *)"";
    g->size = size;
    g->mapped = base != NULL;
    s = parse_all(g);
    if (s != SX_OK) {
        sx_gguf_close(g);
        return s;
    }
    *out = g;
    return SX_OK;
}

void sx_gguf_close(sx_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) free(g->kv[i].str_offs);
    free(g->kv);
    free(g->ti);
    free(g->arena);
    free(g->kv_index.slots);
    free(g->ti_index.slots);
    if (g->mapped) munmap((void *)g->base, g->size);
    free(g->name);
    free(g);
}

const void *sx_gguf_data(const sx_gguf *g) { return g->base; }
size_t sx_gguf_size(const sx_gguf *g) { return g->size; }
uint32_t sx_gguf_version(const sx_gguf *g) { return g->version; }
uint32_t sx_gguf_alignment(const sx_gguf *g) { return g->alignment; }
uint64_t sx_gguf_data_offset(const sx_gguf *g) { return g->data_offset; }
const char *sx_gguf_name(const sx_gguf *g) { return g->name; }

/* ===================================================================== */
/* Metadata access                                                       */
/* ===================================================================== */

int64_t sx_gguf_n_kv(const sx_gguf *g) { return g->n_kv; }

int64_t sx_gguf_find_key(const sx_gguf *g, const char *key) {
    if (!key || !g->kv_index.slots) return -1;
    uint64_t s = index_slot(&g->kv_index, &g->kv[0].key, sizeof g->kv[0], key, strlen(key));
    return (int64_t)g->kv_index.slots[s] - 1;
}

static const sx_gguf_kv *kv_at(const sx_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}

const char *sx_gguf_key(const sx_gguf *g, int64_t i) {
    const sx_gguf_kv *kv = kv_at(g, i);
    return kv ? kv->key : NULL;
}

sx_gguf_type sx_gguf_kv_type(const sx_gguf *g, int64_t i) {
    const sx_gguf_kv *kv = kv_at(g, i);
    return kv ? kv->type : SX_GGUF_TYPE_COUNT;
}

sx_gguf_type sx_gguf_arr_type(const sx_gguf *g, int64_t i) {
    const sx_gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == SX_GGUF_TYPE_ARRAY ? kv->arr_type : SX_GGUF_TYPE_COUNT;
}

uint64_t sx_gguf_arr_len(const sx_gguf *g, int64_t i) {
    const sx_gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == SX_GGUF_TYPE_ARRAY ? kv->arr_len : 0;
}

sx_status sx_gguf_arr_str(const sx_gguf *g, int64_t i, uint64_t j, const char **out_s, size_t *out_len) {
    const sx_gguf_kv *kv = kv_at(g, i);
    if (!kv) return sx_set_error(SX_ERR_INVALID_ARG, "%s: metadata index %" PRId64 " out of range", g->name, i);
    if (kv->type != SX_GGUF_TYPE_ARRAY || kv->arr_type != SX_GGUF_TYPE_STRING)
        return sx_set_error(SX_ERR_FORMAT, "%s: key '%s' is not an array of strings", g->name, kv->key);
    if (j >= kv->arr_len)
        return sx_set_error(SX_ERR_INVALID_ARG, "%s: key '%s': index %" PRIu64 " out of range (%" PRIu64 " strings)",
                            g->name, kv->key, j, kv->arr_len);
    uint64_t at = kv->str_offs[j], len; /* validated at open */
    memcpy(&len, g->base + at, 8);
    *out_s = (const char *)g->base + at + 8;
    *out_len = (size_t)len;
    return SX_OK;
}

/* Entry for `key` or SX_ERR_NOT_FOUND. */
static sx_status kv_lookup(const sx_gguf *g, const char *key, const sx_gguf_kv **out) {
    int64_t i = sx_gguf_find_key(g, key);
    if (i < 0) return sx_set_error(SX_ERR_NOT_FOUND, "%s: key '%s' not found", g->name, key ? key : "(null)");
    *out = &g->kv[i];
    return SX_OK;
}

static sx_status wrong_type(const sx_gguf *g, const sx_gguf_kv *kv, const char *expected) {
    return sx_set_error(SX_ERR_FORMAT, "%s: key '%s' has type %s, expected %s", g->name, kv->key,
                        sx_gguf_type_name(kv->type), expected);
}

/* Any integer entry, widened: *neg when negative; *u holds non-negative
 * values, *s signed ones (clamped to INT64_MAX for huge unsigned values). */
static sx_status kv_int(const sx_gguf *g, const sx_gguf_kv *kv, bool *neg, uint64_t *u, int64_t *s) {
    const uint8_t *p = kv->val;
    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
    *neg = false;
    switch (kv->type) {
    case SX_GGUF_TYPE_UINT8: memcpy(&u8, p, 1); *u = u8; break;
    case SX_GGUF_TYPE_UINT16: memcpy(&u16, p, 2); *u = u16; break;
    case SX_GGUF_TYPE_UINT32: memcpy(&u32, p, 4); *u = u32; break;
    case SX_GGUF_TYPE_UINT64: memcpy(u, p, 8); break;
    case SX_GGUF_TYPE_INT8: memcpy(&i8, p, 1); *s = i8; break;
    case SX_GGUF_TYPE_INT16: memcpy(&i16, p, 2); *s = i16; break;
    case SX_GGUF_TYPE_INT32: memcpy(&i32, p, 4); *s = i32; break;
    case SX_GGUF_TYPE_INT64: memcpy(s, p, 8); break;
    default: return wrong_type(g, kv, "an integer");
    }
    switch (kv->type) {
    case SX_GGUF_TYPE_INT8: case SX_GGUF_TYPE_INT16: case SX_GGUF_TYPE_INT32: case SX_GGUF_TYPE_INT64:
        *neg = *s < 0;
        *u = *neg ? 0 : (uint64_t)*s;
        break;
    default:
        *s = *u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)*u;
        break;
    }
    return SX_OK;
}

/* Integer of `key` checked against [lo, hi]. */
static sx_status get_int_range(const sx_gguf *g, const char *key, int64_t lo, uint64_t hi, bool *neg,
                               uint64_t *u, int64_t *s, const char *what) {
    const sx_gguf_kv *kv = NULL;
    SX_RETURN_IF_ERROR(kv_lookup(g, key, &kv));
    SX_RETURN_IF_ERROR(kv_int(g, kv, neg, u, s));
    bool ok = *neg ? *s >= lo : *u <= hi;
    if (!ok) {
        if (*neg) return sx_set_error(SX_ERR_FORMAT, "%s: key '%s' = %" PRId64 " does not fit %s", g->name, key, *s, what);
        return sx_set_error(SX_ERR_FORMAT, "%s: key '%s' = %" PRIu64 " does not fit %s", g->name, key, *u, what);
    }
    return SX_OK;
}

sx_status sx_gguf_get_u32(const sx_gguf *g, const char *key, uint32_t *out) {
    bool neg = false;
    uint64_t u = 0;
    int64_t s = 0;
    SX_RETURN_IF_ERROR(get_int_range(g, key, 0, UINT32_MAX, &neg, &u, &s, "uint32"));
    *out = (uint32_t)u;
    return SX_OK;
}

sx_status sx_gguf_get_i32(const sx_gguf *g, const char *key, int32_t *out) {
    bool neg = false;
    uint64_t u = 0;
    int64_t s = 0;
    SX_RETURN_IF_ERROR(get_int_range(g, key, INT32_MIN, INT32_MAX, &neg, &u, &s, "int32"));
    *out = (int32_t)s;
    return SX_OK;
}

sx_status sx_gguf_get_u64(const sx_gguf *g, const char *key, uint64_t *out) {
    bool neg = false;
    uint64_t u = 0;
    int64_t s = 0;
    SX_RETURN_IF_ERROR(get_int_range(g, key, 0, UINT64_MAX, &neg, &u, &s, "uint64"));
    *out = u;
    return SX_OK;
}

sx_status sx_gguf_get_i64(const sx_gguf *g, const char *key, int64_t *out) {
    bool neg = false;
    uint64_t u = 0;
    int64_t s = 0;
    SX_RETURN_IF_ERROR(get_int_range(g, key, INT64_MIN, INT64_MAX, &neg, &u, &s, "int64"));
    *out = s;
    return SX_OK;
}

sx_status sx_gguf_get_f64(const sx_gguf *g, const char *key, double *out) {
    const sx_gguf_kv *kv = NULL;
    SX_RETURN_IF_ERROR(kv_lookup(g, key, &kv));
    if (kv->type == SX_GGUF_TYPE_FLOAT32) {
        float f;
        memcpy(&f, kv->val, 4);
        *out = f;
    } else if (kv->type == SX_GGUF_TYPE_FLOAT64) {
        memcpy(out, kv->val, 8);
    } else {
        return wrong_type(g, kv, "float32 or float64");
    }
    return SX_OK;
}

sx_status sx_gguf_get_f32(const sx_gguf *g, const char *key, float *out) {
    double d = 0;
    SX_RETURN_IF_ERROR(sx_gguf_get_f64(g, key, &d));
    *out = (float)d;
    return SX_OK;
}

sx_status sx_gguf_get_bool(const sx_gguf *g, const char *key, bool *out) {
    const sx_gguf_kv *kv = NULL;
    SX_RETURN_IF_ERROR(kv_lookup(g, key, &kv));
    if (kv->type != SX_GGUF_TYPE_BOOL) return wrong_type(g, kv, "bool");
    *out = kv->val[0] != 0;
    return SX_OK;
}

sx_status sx_gguf_get_str(const sx_gguf *g, const char *key, const char **out_s, size_t *out_len) {
    const sx_gguf_kv *kv = NULL;
    SX_RETURN_IF_ERROR(kv_lookup(g, key, &kv));
    if (kv->type != SX_GGUF_TYPE_STRING) return wrong_type(g, kv, "string");
    *out_s = (const char *)kv->val;
    *out_len = (size_t)kv->str_len;
    return SX_OK;
}

sx_status sx_gguf_get_str_copy(const sx_gguf *g, const char *key, char *buf, size_t cap) {
    const char *s = NULL;
    size_t len = 0;
    SX_RETURN_IF_ERROR(sx_gguf_get_str(g, key, &s, &len));
    if (cap == 0 || !buf)
        return sx_set_error(SX_ERR_INVALID_ARG, "%s: key '%s': no buffer for a string of %zu bytes", g->name, key, len);
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(buf, s, n);
    buf[n] = 0;
    if (n < len)
        return sx_set_error(SX_ERR_INVALID_ARG, "%s: key '%s': string of %zu bytes truncated to a %zu-byte buffer",
                            g->name, key, len, cap);
    return SX_OK;
}

sx_status sx_gguf_get_str_dup(const sx_gguf *g, const char *key, char **out) {
    const char *s = NULL;
    size_t len = 0;
    SX_RETURN_IF_ERROR(sx_gguf_get_str(g, key, &s, &len));
    char *d = malloc(len + 1);
    if (!d) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "%s: key '%s': out of memory", g->name, key);
    memcpy(d, s, len);
    d[len] = 0;
    *out = d;
    return SX_OK;
}

sx_status sx_gguf_get_arr(const sx_gguf *g, const char *key, sx_gguf_type *out_elem_type, uint64_t *out_n,
                          const void **out_data) {
    const sx_gguf_kv *kv = NULL;
    SX_RETURN_IF_ERROR(kv_lookup(g, key, &kv));
    if (kv->type != SX_GGUF_TYPE_ARRAY) return wrong_type(g, kv, "array");
    if (out_elem_type) *out_elem_type = kv->arr_type;
    if (out_n) *out_n = kv->arr_len;
    if (out_data) *out_data = kv->arr_type == SX_GGUF_TYPE_STRING ? NULL : kv->val;
    return SX_OK;
}

/* Logs why a present key fell back to its default. */
static void warn_default(const sx_gguf *g, const char *key, sx_status s) {
    if (s != SX_ERR_NOT_FOUND) SX_LOGW("%s (using the default)", sx_last_error());
    (void)g;
    (void)key;
}

uint32_t sx_gguf_get_u32_or(const sx_gguf *g, const char *key, uint32_t def) {
    uint32_t v = 0;
    sx_status s = sx_gguf_get_u32(g, key, &v);
    if (s == SX_OK) return v;
    warn_default(g, key, s);
    return def;
}

int64_t sx_gguf_get_i64_or(const sx_gguf *g, const char *key, int64_t def) {
    int64_t v = 0;
    sx_status s = sx_gguf_get_i64(g, key, &v);
    if (s == SX_OK) return v;
    warn_default(g, key, s);
    return def;
}

float sx_gguf_get_f32_or(const sx_gguf *g, const char *key, float def) {
    float v = 0;
    sx_status s = sx_gguf_get_f32(g, key, &v);
    if (s == SX_OK) return v;
    warn_default(g, key, s);
    return def;
}

bool sx_gguf_get_bool_or(const sx_gguf *g, const char *key, bool def) {
    bool v = false;
    sx_status s = sx_gguf_get_bool(g, key, &v);
    if (s == SX_OK) return v;
    warn_default(g, key, s);
    return def;
}

/* ===================================================================== */
/* Tensor access                                                         */
/* ===================================================================== */

int64_t sx_gguf_n_tensors(const sx_gguf *g) { return g->n_tensors; }

int64_t sx_gguf_find_tensor(const sx_gguf *g, const char *name) {
    if (!name || !g->ti_index.slots) return -1;
    uint64_t s = index_slot(&g->ti_index, &g->ti[0].name, sizeof g->ti[0], name, strlen(name));
    return (int64_t)g->ti_index.slots[s] - 1;
}

sx_status sx_gguf_tensor(const sx_gguf *g, int64_t i, sx_gguf_tensor_info *out) {
    if (i < 0 || i >= g->n_tensors)
        return sx_set_error(SX_ERR_INVALID_ARG, "%s: tensor index %" PRId64 " out of range (%" PRId64 " tensors)",
                            g->name, i, g->n_tensors);
    const sx_gguf_ti *t = &g->ti[i];
    out->name = t->name;
    out->ggml_type = t->ggml_type;
    out->n_dims = t->n_dims;
    memcpy(out->ne, t->ne, sizeof out->ne);
    out->offset = t->offset;
    out->size = (size_t)t->size;
    out->data = g->base + t->offset;
    if (!sx_dtype_from_ggml(t->ggml_type, &out->dtype)) {
        out->dtype = SX_DTYPE_COUNT;
        return sx_set_error(SX_ERR_UNSUPPORTED, "%s: unsupported tensor type %d (%s) for tensor '%s'", g->name,
                            t->ggml_type, sx_gguf_ggml_type_name(t->ggml_type), t->name);
    }
    return SX_OK;
}

/* ===================================================================== */
/* Writer                                                                */
/* ===================================================================== */

/* Growable byte buffer; `failed` sticks after an allocation failure. */
typedef struct sx_buf {
    uint8_t *data;
    size_t len, cap;
    bool failed;
} sx_buf;

static void buf_put(sx_buf *b, const void *p, size_t n) {
    if (b->failed || n == 0) return;
    if (n > SIZE_MAX - b->len) {
        b->failed = true;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) {
            b->failed = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void buf_u32(sx_buf *b, uint32_t v) { buf_put(b, &v, 4); }
static void buf_u64(sx_buf *b, uint64_t v) { buf_put(b, &v, 8); }
static void buf_str(sx_buf *b, const char *s, size_t len) {
    buf_u64(b, len);
    buf_put(b, s, len);
}

typedef struct sx_gguf_wkv {
    char *key;
    sx_buf val; /* u32 type + payload, as in the file */
} sx_gguf_wkv;

typedef struct sx_gguf_wtensor {
    char *name;
    int ggml_type;
    int n_dims;
    int64_t ne[4];
    const void *data; /* referenced, or == owned */
    void *owned;
    size_t nbytes;
} sx_gguf_wtensor;

struct sx_gguf_writer {
    sx_gguf_wkv *kv;
    size_t n_kv, cap_kv;
    sx_gguf_wtensor *t;
    size_t n_t, cap_t;
};

sx_status sx_gguf_writer_create(sx_gguf_writer **out) {
    if (!out) return sx_set_error(SX_ERR_INVALID_ARG, "sx_gguf_writer_create: NULL out");
    *out = calloc(1, sizeof **out);
    if (!*out) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    return SX_OK;
}

void sx_gguf_writer_destroy(sx_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val.data);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].owned);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

/* Grows an array of `size`-byte items to hold n + 1. */
static bool grow(void **items, size_t *cap, size_t n, size_t size) {
    if (n < *cap) return true;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = realloc(*items, c * size);
    if (!p) return false;
    *items = p;
    *cap = c;
    return true;
}

/* Stores a finished value buffer under `key` (replacing an existing one).
 * Takes ownership of val. */
static sx_status writer_put(sx_gguf_writer *w, const char *key, sx_buf val) {
    if (!w || !key || !key[0]) {
        free(val.data);
        return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: NULL writer or empty key");
    }
    if (val.failed) {
        free(val.data);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "gguf writer: out of memory for key '%s'", key);
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].val.data);
            w->kv[i].val = val;
            return SX_OK;
        }
    }
    char *k = strdup(key);
    if (!k || !grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv)) {
        free(k);
        free(val.data);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "gguf writer: out of memory for key '%s'", key);
    }
    w->kv[w->n_kv++] = (sx_gguf_wkv){k, val};
    return SX_OK;
}

static sx_status set_scalar(sx_gguf_writer *w, const char *key, sx_gguf_type t, const void *v) {
    sx_buf b = {0};
    buf_u32(&b, t);
    buf_put(&b, v, k_type_sizes[t]);
    return writer_put(w, key, b);
}

sx_status sx_gguf_writer_set_u8(sx_gguf_writer *w, const char *key, uint8_t v) { return set_scalar(w, key, SX_GGUF_TYPE_UINT8, &v); }
sx_status sx_gguf_writer_set_i8(sx_gguf_writer *w, const char *key, int8_t v) { return set_scalar(w, key, SX_GGUF_TYPE_INT8, &v); }
sx_status sx_gguf_writer_set_u16(sx_gguf_writer *w, const char *key, uint16_t v) { return set_scalar(w, key, SX_GGUF_TYPE_UINT16, &v); }
sx_status sx_gguf_writer_set_i16(sx_gguf_writer *w, const char *key, int16_t v) { return set_scalar(w, key, SX_GGUF_TYPE_INT16, &v); }
sx_status sx_gguf_writer_set_u32(sx_gguf_writer *w, const char *key, uint32_t v) { return set_scalar(w, key, SX_GGUF_TYPE_UINT32, &v); }
sx_status sx_gguf_writer_set_i32(sx_gguf_writer *w, const char *key, int32_t v) { return set_scalar(w, key, SX_GGUF_TYPE_INT32, &v); }
sx_status sx_gguf_writer_set_u64(sx_gguf_writer *w, const char *key, uint64_t v) { return set_scalar(w, key, SX_GGUF_TYPE_UINT64, &v); }
sx_status sx_gguf_writer_set_i64(sx_gguf_writer *w, const char *key, int64_t v) { return set_scalar(w, key, SX_GGUF_TYPE_INT64, &v); }
sx_status sx_gguf_writer_set_f32(sx_gguf_writer *w, const char *key, float v) { return set_scalar(w, key, SX_GGUF_TYPE_FLOAT32, &v); }
sx_status sx_gguf_writer_set_f64(sx_gguf_writer *w, const char *key, double v) { return set_scalar(w, key, SX_GGUF_TYPE_FLOAT64, &v); }

sx_status sx_gguf_writer_set_bool(sx_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, SX_GGUF_TYPE_BOOL, &b);
}

sx_status sx_gguf_writer_set_strn(sx_gguf_writer *w, const char *key, const char *s, size_t len) {
    if (!s && len) return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: key '%s': NULL string", key ? key : "");
    sx_buf b = {0};
    buf_u32(&b, SX_GGUF_TYPE_STRING);
    buf_str(&b, s, len);
    return writer_put(w, key, b);
}

sx_status sx_gguf_writer_set_str(sx_gguf_writer *w, const char *key, const char *s) {
    if (!s) return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: key '%s': NULL string", key ? key : "");
    return sx_gguf_writer_set_strn(w, key, s, strlen(s));
}

sx_status sx_gguf_writer_set_arr(sx_gguf_writer *w, const char *key, sx_gguf_type elem_type, const void *data,
                                 uint64_t n) {
    size_t es = sx_gguf_type_size(elem_type);
    if (es == 0)
        return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: key '%s': element type %s is not numeric",
                            key ? key : "", sx_gguf_type_name(elem_type));
    if ((!data && n) || n > SIZE_MAX / es)
        return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: key '%s': bad array data", key ? key : "");
    sx_buf b = {0};
    buf_u32(&b, SX_GGUF_TYPE_ARRAY);
    buf_u32(&b, elem_type);
    buf_u64(&b, n);
    buf_put(&b, data, (size_t)n * es);
    return writer_put(w, key, b);
}

sx_status sx_gguf_writer_set_arr_i32(sx_gguf_writer *w, const char *key, const int32_t *v, uint64_t n) {
    return sx_gguf_writer_set_arr(w, key, SX_GGUF_TYPE_INT32, v, n);
}

sx_status sx_gguf_writer_set_arr_f32(sx_gguf_writer *w, const char *key, const float *v, uint64_t n) {
    return sx_gguf_writer_set_arr(w, key, SX_GGUF_TYPE_FLOAT32, v, n);
}

sx_status sx_gguf_writer_set_arr_str(sx_gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    if (!strs && n) return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: key '%s': NULL strings", key ? key : "");
    sx_buf b = {0};
    buf_u32(&b, SX_GGUF_TYPE_ARRAY);
    buf_u32(&b, SX_GGUF_TYPE_STRING);
    buf_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i]) {
            free(b.data);
            return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: key '%s': string #%" PRIu64 " is NULL", key ? key : "", i);
        }
        buf_str(&b, strs[i], strlen(strs[i]));
    }
    return writer_put(w, key, b);
}

/* Validates a tensor's name, shape and byte size. */
static sx_status check_new_tensor(const sx_gguf_writer *w, const char *name, sx_dtype dtype, int n_dims,
                                  const int64_t *ne, size_t nbytes, int *out_ggml) {
    if (!w || !name || !name[0]) return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: NULL writer or empty tensor name");
    const sx_dtype_info *di = sx_dtype_get(dtype);
    if (!di) return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: tensor '%s': invalid dtype %d", name, (int)dtype);
    if (n_dims < 1 || n_dims > SX_GGUF_MAX_DIMS || !ne)
        return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: tensor '%s': n_dims %d out of range (1..4)", name, n_dims);
    uint64_t rows = 1, size = 0;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 1) return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: tensor '%s': ne[%d] = %" PRId64 " (must be >= 1)", name, d, ne[d]);
        if (d > 0 && !mul_u64(rows, (uint64_t)ne[d], &rows))
            return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: tensor '%s': too many elements", name);
    }
    size_t row = sx_dtype_row_size(dtype, ne[0]);
    if (row == 0)
        return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: tensor '%s': ne[0] = %" PRId64 " is not a multiple of the %s block size %d",
                            name, ne[0], di->name, di->block_size);
    if (!mul_u64(rows, row, &size) || size != nbytes)
        return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: tensor '%s': nbytes %zu, but the shape needs %" PRIu64 " bytes",
                            name, nbytes, size);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: duplicate tensor name '%s'", name);
    *out_ggml = di->ggml_type;
    return SX_OK;
}

static sx_status add_tensor(sx_gguf_writer *w, const char *name, sx_dtype dtype, int n_dims, const int64_t *ne,
                            const void *data, size_t nbytes, bool copy) {
    int ggml = 0;
    SX_RETURN_IF_ERROR(check_new_tensor(w, name, dtype, n_dims, ne, nbytes, &ggml));
    if (!data) return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: tensor '%s': NULL data", name);
    sx_gguf_wtensor t = {0};
    t.name = strdup(name);
    t.owned = copy ? malloc(nbytes) : NULL;
    if (!t.name || (copy && !t.owned) || !grow((void **)&w->t, &w->cap_t, w->n_t, sizeof *w->t)) {
        free(t.name);
        free(t.owned);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "gguf writer: tensor '%s': out of memory", name);
    }
    if (copy) memcpy(t.owned, data, nbytes);
    t.data = copy ? t.owned : data;
    t.ggml_type = ggml;
    t.n_dims = n_dims;
    for (int d = 0; d < 4; d++) t.ne[d] = d < n_dims ? ne[d] : 1;
    t.nbytes = nbytes;
    w->t[w->n_t++] = t;
    return SX_OK;
}

sx_status sx_gguf_writer_add_tensor(sx_gguf_writer *w, const char *name, sx_dtype dtype, int n_dims,
                                    const int64_t *ne, const void *data, size_t nbytes) {
    return add_tensor(w, name, dtype, n_dims, ne, data, nbytes, false);
}

sx_status sx_gguf_writer_add_tensor_copy(sx_gguf_writer *w, const char *name, sx_dtype dtype, int n_dims,
                                         const int64_t *ne, const void *data, size_t nbytes) {
    return add_tensor(w, name, dtype, n_dims, ne, data, nbytes, true);
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* Alignment for the data section: general.alignment if set (must be a
 * uint32 power of two), else 32. */
static sx_status writer_alignment(const sx_gguf_writer *w, uint64_t *out) {
    *out = SX_GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment") != 0) continue;
        uint32_t type, v = 0;
        memcpy(&type, w->kv[i].val.data, 4);
        if (type == SX_GGUF_TYPE_UINT32) memcpy(&v, w->kv[i].val.data + 4, 4);
        if (!is_pow2_u64(v))
            return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: general.alignment must be a uint32 power of two");
        *out = v;
    }
    return SX_OK;
}

/* Header, metadata and tensor infos, padded to the alignment. Tensor data
 * offsets: each tensor at the next aligned offset after the previous one. */
static sx_status writer_meta(const sx_gguf_writer *w, uint64_t align, sx_buf *b, uint64_t *out_data_size) {
    buf_put(b, SX_GGUF_MAGIC, 4);
    buf_u32(b, SX_GGUF_VERSION);
    buf_u64(b, w->n_t);
    buf_u64(b, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        buf_str(b, w->kv[i].key, strlen(w->kv[i].key));
        buf_put(b, w->kv[i].val.data, w->kv[i].val.len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const sx_gguf_wtensor *t = &w->t[i];
        buf_str(b, t->name, strlen(t->name));
        buf_u32(b, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) buf_u64(b, (uint64_t)t->ne[d]);
        buf_u32(b, (uint32_t)t->ggml_type);
        buf_u64(b, off);
        off = align_up(off + t->nbytes, align);
    }
    static const uint8_t zeros[64];
    uint64_t pad = align_up(b->len, align) - b->len;
    for (; pad > 0; pad -= pad < 64 ? pad : 64) buf_put(b, zeros, pad < 64 ? (size_t)pad : 64);
    if (b->failed) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "gguf writer: out of memory for the header");
    *out_data_size = off;
    return SX_OK;
}

/* Emits the data section through put(ctx, bytes, n); tensor i at its
 * aligned offset, zero padding between. */
typedef bool (*sx_put_fn)(void *ctx, const void *p, size_t n);

static bool writer_data(const sx_gguf_writer *w, uint64_t align, sx_put_fn put, void *ctx) {
    static const uint8_t zeros[64];
    for (size_t i = 0; i < w->n_t; i++) {
        const sx_gguf_wtensor *t = &w->t[i];
        if (!put(ctx, t->data, t->nbytes)) return false;
        for (uint64_t pad = align_up(t->nbytes, align) - t->nbytes; pad > 0;) {
            size_t n = pad < 64 ? (size_t)pad : 64;
            if (!put(ctx, zeros, n)) return false;
            pad -= n;
        }
    }
    return true;
}

static bool put_mem(void *ctx, const void *p, size_t n) {
    uint8_t **dst = ctx;
    if (n) memcpy(*dst, p, n);
    *dst += n;
    return true;
}

static bool put_file(void *ctx, const void *p, size_t n) { return fwrite(p, 1, n, (FILE *)ctx) == n; }

sx_status sx_gguf_writer_write_memory(const sx_gguf_writer *w, void **out_data, size_t *out_size) {
    if (!w || !out_data || !out_size) return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: NULL argument");
    uint64_t align, data_size;
    SX_RETURN_IF_ERROR(writer_alignment(w, &align));
    sx_buf b = {0};
    sx_status s = writer_meta(w, align, &b, &data_size);
    uint64_t total = b.len + data_size;
    uint8_t *out = NULL;
    if (s == SX_OK && (total > SIZE_MAX || !(out = malloc(total ? (size_t)total : 1))))
        s = sx_set_error(SX_ERR_OUT_OF_MEMORY, "gguf writer: out of memory for a %" PRIu64 "-byte file", total);
    if (s == SX_OK) {
        uint8_t *p = out;
        put_mem(&p, b.data, b.len);
        writer_data(w, align, put_mem, &p);
        *out_data = out;
        *out_size = (size_t)total;
    }
    free(b.data);
    return s;
}

sx_status sx_gguf_writer_write(const sx_gguf_writer *w, const char *path) {
    if (!w || !path) return sx_set_error(SX_ERR_INVALID_ARG, "gguf writer: NULL argument");
    uint64_t align, data_size;
    SX_RETURN_IF_ERROR(writer_alignment(w, &align));
    sx_buf b = {0};
    sx_status s = writer_meta(w, align, &b, &data_size);
    size_t plen = strlen(path);
    char *tmp = s == SX_OK ? malloc(plen + 5) : NULL;
    if (s == SX_OK && !tmp) s = sx_set_error(SX_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    FILE *f = NULL;
    if (s == SX_OK) {
        memcpy(tmp, path, plen);
        memcpy(tmp + plen, ".tmp", 5);
        f = fopen(tmp, "wb");
        if (!f) s = sx_set_error(SX_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    if (s == SX_OK) {
        bool ok = put_file(f, b.data, b.len) && writer_data(w, align, put_file, f);
        int e = errno;
        if (fclose(f) != 0 && ok) {
            ok = false;
            e = errno;
        }
        if (!ok) s = sx_set_error(SX_ERR_IO, "%s: write failed: %s", tmp, strerror(e));
        else if (rename(tmp, path) != 0) s = sx_set_error(SX_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        if (s != SX_OK) remove(tmp);
    }
    free(tmp);
    free(b.data);
    return s;
}
