/* ir/status.c — thread-local error messages and the log sink. */
#include "ir/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static _Thread_local char g_err[1024];

const char *sx_status_str(sx_status s) {
    switch (s) {
    case SX_OK: return "ok";
    case SX_ERR_INVALID_ARG: return "invalid argument";
    case SX_ERR_OUT_OF_MEMORY: return "out of memory";
    case SX_ERR_IO: return "i/o error";
    case SX_ERR_FORMAT: return "bad format";
    case SX_ERR_UNSUPPORTED: return "unsupported";
    case SX_ERR_NOT_FOUND: return "not found";
    case SX_ERR_BACKEND: return "backend error";
    case SX_ERR_NO_DEVICE: return "no device";
    case SX_ERR_CONTEXT_FULL: return "context full";
    case SX_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

sx_status sx_set_error(sx_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return s;
}

sx_status sx_wrap_error(sx_status s, const char *fmt, ...) {
    char prefix[512], old[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_err, sizeof old);
    size_t n = strlen(prefix);
    if (n >= sizeof g_err) n = sizeof g_err - 1;
    memcpy(g_err, prefix, n);
    if (old[0] && n + 2 < sizeof g_err) {
        memcpy(g_err + n, ": ", 2);
        n += 2;
        size_t m = strlen(old);
        if (m > sizeof g_err - 1 - n) m = sizeof g_err - 1 - n;
        memcpy(g_err + n, old, m);
        n += m;
    }
    g_err[n] = 0;
    return s;
}

const char *sx_last_error(void) { return g_err; }
void sx_clear_error(void) { g_err[0] = 0; }

/* ---- logging ---- */
static sx_log_fn g_log_fn;
static void *g_log_user;
static int g_log_level = -1; /* -1: not read from SPECEXIT_LOG yet */

static const char *level_name(sx_log_level l) {
    static const char *names[] = {"debug", "info", "warn", "error", "none"};
    return (unsigned)l <= SX_LOG_NONE ? names[l] : "?";
}

sx_log_level sx_log_get_level(void) {
    if (g_log_level < 0) {
        const char *e = getenv("SPECEXIT_LOG");
        g_log_level = SX_LOG_WARN;
        if (e) {
            for (int l = 0; l <= SX_LOG_NONE; l++)
                if (strcasecmp(e, level_name((sx_log_level)l)) == 0) g_log_level = l;
        }
    }
    return (sx_log_level)g_log_level;
}

void sx_log_set_level(sx_log_level level) { g_log_level = (int)level; }

void sx_log_set_callback(sx_log_fn fn, void *user) {
    g_log_fn = fn;
    g_log_user = user;
}

void sx_log(sx_log_level level, const char *fmt, ...) {
    if (level < sx_log_get_level()) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_log_fn) {
        g_log_fn(level, msg, g_log_user);
    } else {
        fprintf(stderr, "specexit %s: %s\n", level_name(level), msg);
    }
}
