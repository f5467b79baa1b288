/* core/gguf.h — read (mmap) and write GGUF model files.
 *
 * Format (GGUF v2/v3, little-endian; v1 is rejected):
 *
 *   "GGUF" u32 version  u64 n_tensors  u64 n_kv
 *   n_kv    x { string key, u32 type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type,
 *                 u64 offset (relative to the data section, multiple of the
 *                 alignment) }
 *   padding to `general.alignment` (default 32)
 *   data section: tensor bytes
 *
 *   string = u64 length + bytes (not NUL-terminated)
 *   array  = u32 element type + u64 count + elements (nested arrays are
 *            rejected as unsupported)
 *
 * Reader: every count, length, offset, dimension, type id and data range is
 * checked against the file size (overflow-safe) before use. A bad file gives
 * SX_ERR_FORMAT with a message naming the file, the item and the offset;
 * nothing in the file can make the reader crash, read out of bounds, or
 * allocate more than a small multiple of the file size.
 *
 * Tensor types: ggml type ids fall in three classes.
 *  - supported by specexit (ir/dtype.def): sx_gguf_tensor returns SX_OK.
 *  - known ggml types we do not compute with (q5_k, iq2_xs, ...): the file
 *    opens (sizes are still checked), sx_gguf_tensor fills the info but
 *    returns SX_ERR_UNSUPPORTED: "unsupported tensor type 13 (q5_k) for
 *    tensor 'X'". This lets tools list any GGUF file and model loading give
 *    precise errors.
 *  - ids that were removed from ggml (4, 5, 31..33, 36..38) or are unknown
 *    (>= 40): the tensor cannot be sized, so open fails with
 *    SX_ERR_UNSUPPORTED.
 *
 * Thread safety: an open sx_gguf is immutable; any number of threads may
 * query it concurrently. Error messages are thread-local (sx_last_error()).
 * The writer is not thread-safe (one thread per writer).
 *
 * Ownership: open/create => the caller owns the object and frees it with
 * close/destroy. Every pointer returned by a getter (keys, names, string
 * values, array data, tensor data) is borrowed and valid until close.
 */
#ifndef SX_GGUF_H
#define SX_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/dtype.h"
#include "ir/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SX_GGUF_MAGIC "GGUF"
#define SX_GGUF_VERSION 3            /* version the writer produces */
#define SX_GGUF_DEFAULT_ALIGNMENT 32 /* when general.alignment is absent */
#define SX_GGUF_MAX_DIMS 4

/* Value types of metadata entries (on-disk ids). */
typedef enum sx_gguf_type {
    SX_GGUF_TYPE_UINT8 = 0,
    SX_GGUF_TYPE_INT8 = 1,
    SX_GGUF_TYPE_UINT16 = 2,
    SX_GGUF_TYPE_INT16 = 3,
    SX_GGUF_TYPE_UINT32 = 4,
    SX_GGUF_TYPE_INT32 = 5,
    SX_GGUF_TYPE_FLOAT32 = 6,
    SX_GGUF_TYPE_BOOL = 7,
    SX_GGUF_TYPE_STRING = 8,
    SX_GGUF_TYPE_ARRAY = 9,
    SX_GGUF_TYPE_UINT64 = 10,
    SX_GGUF_TYPE_INT64 = 11,
    SX_GGUF_TYPE_FLOAT64 = 12,
    SX_GGUF_TYPE_COUNT
} sx_gguf_type;

/* "uint32", "string", ...; "invalid" for an out-of-range value. Static. */
const char *sx_gguf_type_name(sx_gguf_type t);
/* Bytes of one scalar of type t; 0 for STRING, ARRAY and invalid types. */
size_t sx_gguf_type_size(sx_gguf_type t);
/* Name of a ggml tensor type id ("q5_k"); "unknown" when the id is not in the
 * ggml table (0..39). Static storage. */
const char *sx_gguf_ggml_type_name(int ggml_type);

/* ===================================================================== */
/* Reader                                                                */
/* ===================================================================== */

typedef struct sx_gguf sx_gguf;

/* Opens `path` read-only with mmap and validates the whole header.
 * Errors: SX_ERR_IO (open/stat/mmap failed, not a regular file),
 * SX_ERR_FORMAT (corrupt/truncated file), SX_ERR_UNSUPPORTED (GGUF v1,
 * a future version, big-endian file, nested arrays, a tensor type id that
 * cannot be sized), SX_ERR_OUT_OF_MEMORY, SX_ERR_INVALID_ARG (NULL args).
 * The file must not be truncated by another process while it is open
 * (that would raise SIGBUS on access, like any mmap). */
SX_MUST_USE sx_status sx_gguf_open(const char *path, sx_gguf **out);

/* Same as sx_gguf_open over `size` bytes at `data`. No copy: the caller keeps
 * the memory alive and unchanged until sx_gguf_close. `name_for_errors`
 * prefixes error messages (NULL => "<memory>"); it is copied. */
SX_MUST_USE sx_status sx_gguf_open_memory(const void *data, size_t size, const char *name_for_errors,
                                          sx_gguf **out);

/* Unmaps/frees. NULL is a no-op. */
void sx_gguf_close(sx_gguf *g);

/* Whole file image, its size, GGUF version, alignment and the absolute
 * offset of the data section. */
const void *sx_gguf_data(const sx_gguf *g);
size_t sx_gguf_size(const sx_gguf *g);
uint32_t sx_gguf_version(const sx_gguf *g);
uint32_t sx_gguf_alignment(const sx_gguf *g);
uint64_t sx_gguf_data_offset(const sx_gguf *g);
/* The name used in error messages (path or name_for_errors). */
const char *sx_gguf_name(const sx_gguf *g);

/* ---- metadata by index (0 <= i < n_kv); O(1) ---- */

int64_t sx_gguf_n_kv(const sx_gguf *g);
/* Index of `key`, or -1 when absent. O(1) (hash table). */
int64_t sx_gguf_find_key(const sx_gguf *g, const char *key);
/* NUL-terminated key (a copy; keys with NUL bytes are rejected at open).
 * NULL for a bad index. */
const char *sx_gguf_key(const sx_gguf *g, int64_t i);
/* Type of entry i; SX_GGUF_TYPE_COUNT for a bad index. */
sx_gguf_type sx_gguf_kv_type(const sx_gguf *g, int64_t i);
/* Element type and length of an array entry; SX_GGUF_TYPE_COUNT / 0 when
 * entry i is not an array or the index is bad. */
sx_gguf_type sx_gguf_arr_type(const sx_gguf *g, int64_t i);
uint64_t sx_gguf_arr_len(const sx_gguf *g, int64_t i);
/* Element j of a string array (entry i), O(1): pointer into the file and
 * length (NOT NUL-terminated). SX_ERR_INVALID_ARG for a bad index,
 * SX_ERR_FORMAT when entry i is not an array of strings. */
SX_MUST_USE sx_status sx_gguf_arr_str(const sx_gguf *g, int64_t i, uint64_t j, const char **out_s,
                                      size_t *out_len);

/* ---- typed getters by key ----
 * All return SX_ERR_NOT_FOUND when the key is absent and SX_ERR_FORMAT (with a
 * message naming the key, its type and the expected type) when the value
 * has the wrong type or does not fit. Integer getters accept any integer
 * type whose value fits the output; float getters accept float32/float64. */
SX_MUST_USE sx_status sx_gguf_get_u32(const sx_gguf *g, const char *key, uint32_t *out);
SX_MUST_USE sx_status sx_gguf_get_i32(const sx_gguf *g, const char *key, int32_t *out);
SX_MUST_USE sx_status sx_gguf_get_u64(const sx_gguf *g, const char *key, uint64_t *out);
SX_MUST_USE sx_status sx_gguf_get_i64(const sx_gguf *g, const char *key, int64_t *out);
SX_MUST_USE sx_status sx_gguf_get_f32(const sx_gguf *g, const char *key, float *out);
SX_MUST_USE sx_status sx_gguf_get_f64(const sx_gguf *g, const char *key, double *out);
SX_MUST_USE sx_status sx_gguf_get_bool(const sx_gguf *g, const char *key, bool *out);
/* String value: pointer into the file and length; NOT NUL-terminated. */
SX_MUST_USE sx_status sx_gguf_get_str(const sx_gguf *g, const char *key, const char **out_s,
                                      size_t *out_len);
/* Copies the string plus a NUL into buf[cap]. SX_ERR_INVALID_ARG (and buf
 * holds the truncated prefix, NUL-terminated when cap > 0) when it does not
 * fit. */
SX_MUST_USE sx_status sx_gguf_get_str_copy(const sx_gguf *g, const char *key, char *buf, size_t cap);
/* malloc'd NUL-terminated copy; the caller frees it with free(). */
SX_MUST_USE sx_status sx_gguf_get_str_dup(const sx_gguf *g, const char *key, char **out);
/* Array entry: element type, count and, for numeric/bool arrays, a pointer
 * to the raw little-endian elements in the file (count * type_size bytes,
 * possibly unaligned: memcpy before use). For string arrays *out_data is
 * NULL (use sx_gguf_arr_str with sx_gguf_find_key). Any out pointer may be
 * NULL. */
SX_MUST_USE sx_status sx_gguf_get_arr(const sx_gguf *g, const char *key, sx_gguf_type *out_elem_type,
                                      uint64_t *out_n, const void **out_data);

/* Convenience: the value, or `def` when the key is absent. A present key of
 * the wrong type also yields `def`, with a warning logged. */
uint32_t sx_gguf_get_u32_or(const sx_gguf *g, const char *key, uint32_t def);
int64_t sx_gguf_get_i64_or(const sx_gguf *g, const char *key, int64_t def);
float sx_gguf_get_f32_or(const sx_gguf *g, const char *key, float def);
bool sx_gguf_get_bool_or(const sx_gguf *g, const char *key, bool def);

/* ---- tensors ---- */

typedef struct sx_gguf_tensor_info {
    const char *name;  /* NUL-terminated, borrowed */
    sx_dtype dtype;    /* SX_DTYPE_COUNT when the type is not supported */
    int ggml_type;     /* on-disk type id */
    int n_dims;        /* 1..4 */
    int64_t ne[4];     /* elements per dim, ne[0] fastest; unused dims = 1 */
    uint64_t offset;   /* absolute offset of the data in the file */
    size_t size;       /* bytes of data */
    const void *data;  /* = sx_gguf_data(g) + offset, borrowed */
} sx_gguf_tensor_info;

int64_t sx_gguf_n_tensors(const sx_gguf *g);
/* Index of tensor `name`, or -1. O(1). */
int64_t sx_gguf_find_tensor(const sx_gguf *g, const char *name);
/* Fills *out for tensor i. SX_ERR_INVALID_ARG for a bad index;
 * SX_ERR_UNSUPPORTED (with *out still filled, dtype = SX_DTYPE_COUNT) when
 * the tensor's type is a known ggml type that specexit does not support. */
SX_MUST_USE sx_status sx_gguf_tensor(const sx_gguf *g, int64_t i, sx_gguf_tensor_info *out);

/* ===================================================================== */
/* Writer                                                                */
/* ===================================================================== */

/* Builds a GGUF v3 file in memory (metadata) and writes it with tensors at
 * offsets aligned to 32 bytes (or to `general.alignment` when set as a
 * power-of-two integer). Entries and tensors keep the order they were added.
 * Setting a key that exists replaces its value in place.
 * Errors of every setter: SX_ERR_INVALID_ARG (NULL/empty key, bad value),
 * SX_ERR_OUT_OF_MEMORY. */
typedef struct sx_gguf_writer sx_gguf_writer;

SX_MUST_USE sx_status sx_gguf_writer_create(sx_gguf_writer **out);
void sx_gguf_writer_destroy(sx_gguf_writer *w); /* NULL is a no-op */

SX_MUST_USE sx_status sx_gguf_writer_set_u8(sx_gguf_writer *w, const char *key, uint8_t v);
SX_MUST_USE sx_status sx_gguf_writer_set_i8(sx_gguf_writer *w, const char *key, int8_t v);
SX_MUST_USE sx_status sx_gguf_writer_set_u16(sx_gguf_writer *w, const char *key, uint16_t v);
SX_MUST_USE sx_status sx_gguf_writer_set_i16(sx_gguf_writer *w, const char *key, int16_t v);
SX_MUST_USE sx_status sx_gguf_writer_set_u32(sx_gguf_writer *w, const char *key, uint32_t v);
SX_MUST_USE sx_status sx_gguf_writer_set_i32(sx_gguf_writer *w, const char *key, int32_t v);
SX_MUST_USE sx_status sx_gguf_writer_set_u64(sx_gguf_writer *w, const char *key, uint64_t v);
SX_MUST_USE sx_status sx_gguf_writer_set_i64(sx_gguf_writer *w, const char *key, int64_t v);
SX_MUST_USE sx_status sx_gguf_writer_set_f32(sx_gguf_writer *w, const char *key, float v);
SX_MUST_USE sx_status sx_gguf_writer_set_f64(sx_gguf_writer *w, const char *key, double v);
SX_MUST_USE sx_status sx_gguf_writer_set_bool(sx_gguf_writer *w, const char *key, bool v);
/* NUL-terminated string; _strn takes an explicit length (may contain NULs). */
SX_MUST_USE sx_status sx_gguf_writer_set_str(sx_gguf_writer *w, const char *key, const char *s);
SX_MUST_USE sx_status sx_gguf_writer_set_strn(sx_gguf_writer *w, const char *key, const char *s, size_t len);
/* Numeric/bool array of n host values of elem_type (copied). STRING and
 * ARRAY element types are rejected: use _set_arr_str. */
SX_MUST_USE sx_status sx_gguf_writer_set_arr(sx_gguf_writer *w, const char *key, sx_gguf_type elem_type,
                                             const void *data, uint64_t n);
SX_MUST_USE sx_status sx_gguf_writer_set_arr_i32(sx_gguf_writer *w, const char *key, const int32_t *v,
                                                 uint64_t n);
SX_MUST_USE sx_status sx_gguf_writer_set_arr_f32(sx_gguf_writer *w, const char *key, const float *v,
                                                 uint64_t n);
/* Array of n NUL-terminated strings (copied). */
SX_MUST_USE sx_status sx_gguf_writer_set_arr_str(sx_gguf_writer *w, const char *key,
                                                 const char *const *strs, uint64_t n);

/* Adds a tensor of `dtype` with n_dims (1..4) dims ne[] (each >= 1, ne[0]
 * a multiple of the block size). nbytes must equal the tensor's size.
 * _add_tensor REFERENCES `data`: it must stay valid until the last write
 * or destroy. _add_tensor_copy copies it. SX_ERR_INVALID_ARG for a bad
 * shape, size mismatch or duplicate name. */
SX_MUST_USE sx_status sx_gguf_writer_add_tensor(sx_gguf_writer *w, const char *name, sx_dtype dtype,
                                                int n_dims, const int64_t *ne, const void *data,
                                                size_t nbytes);
SX_MUST_USE sx_status sx_gguf_writer_add_tensor_copy(sx_gguf_writer *w, const char *name, sx_dtype dtype,
                                                     int n_dims, const int64_t *ne, const void *data,
                                                     size_t nbytes);

/* Writes the file to `path` (through `path`.tmp, renamed at the end, so a
 * failure never leaves a partial file at `path`). SX_ERR_IO on failure. The
 * writer stays usable. */
SX_MUST_USE sx_status sx_gguf_writer_write(const sx_gguf_writer *w, const char *path);
/* Serialises the file into a malloc'd buffer; the caller frees *out_data
 * with free(). */
SX_MUST_USE sx_status sx_gguf_writer_write_memory(const sx_gguf_writer *w, void **out_data,
                                                  size_t *out_size);

#ifdef __cplusplus
}
#endif
#endif
