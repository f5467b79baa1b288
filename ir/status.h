/* ir/status.h — status codes, error messages and logging shared by every layer.
 *
 * Every fallible function in specexit returns sx_status. On failure it also
 * records a readable message in a thread-local slot (sx_last_error()), so the
 * caller can print exactly what went wrong. Nothing in the library aborts on
 * bad input: assert() guards internal invariants only.
 */
#ifndef SX_STATUS_H
#define SX_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sx_status {
    SX_OK = 0,
    SX_ERR_INVALID_ARG,   /* caller passed something malformed */
    SX_ERR_OUT_OF_MEMORY, /* host or device allocation failed */
    SX_ERR_IO,            /* open/read/write/mmap failed */
    SX_ERR_FORMAT,        /* corrupt or truncated file, bad metadata */
    SX_ERR_UNSUPPORTED,   /* valid but not supported (arch, dtype, op on a backend) */
    SX_ERR_NOT_FOUND,     /* missing key, tensor, device */
    SX_ERR_BACKEND,       /* driver/runtime failure inside a backend */
    SX_ERR_NO_DEVICE,     /* backend present but no usable device */
    SX_ERR_CONTEXT_FULL,  /* prompt or generation exceeds the context */
    SX_ERR_CANCELLED,
} sx_status;

#define SX_MUST_USE __attribute__((warn_unused_result))

/* Human-readable name of a status ("invalid argument", ...). Static storage. */
const char *sx_status_str(sx_status s);

/* Records a formatted message for the calling thread and returns `s`, so
 * `return sx_set_error(SX_ERR_FORMAT, "tensor %s: ...", name);` reads well. */
sx_status sx_set_error(sx_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the current message with context ("loading model: " + old). */
sx_status sx_wrap_error(sx_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last message recorded on this thread ("" when none). Borrowed. */
const char *sx_last_error(void);
void sx_clear_error(void);

#define SX_RETURN_IF_ERROR(expr)                \
    do {                                        \
        sx_status sx_status_tmp_ = (expr);      \
        if (sx_status_tmp_ != SX_OK)            \
            return sx_status_tmp_;              \
    } while (0)

/* ---- logging: one callback, levels, SPECEXIT_LOG=debug|info|warn|error ---- */
typedef enum sx_log_level {
    SX_LOG_DEBUG = 0,
    SX_LOG_INFO = 1,
    SX_LOG_WARN = 2,
    SX_LOG_ERROR = 3,
    SX_LOG_NONE = 4,
} sx_log_level;

typedef void (*sx_log_fn)(sx_log_level level, const char *msg, void *user);

/* Replaces the log sink (NULL restores the default: stderr). Not thread-safe
 * against concurrent logging; set it once at start-up. */
void sx_log_set_callback(sx_log_fn fn, void *user);
void sx_log_set_level(sx_log_level level);
sx_log_level sx_log_get_level(void);
void sx_log(sx_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define SX_LOGD(...) sx_log(SX_LOG_DEBUG, __VA_ARGS__)
#define SX_LOGI(...) sx_log(SX_LOG_INFO, __VA_ARGS__)
#define SX_LOGW(...) sx_log(SX_LOG_WARN, __VA_ARGS__)
#define SX_LOGE(...) sx_log(SX_LOG_ERROR, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
