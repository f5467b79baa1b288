/* backends/backend.c — the registry of compiled-in backends and thin wrappers. */
#include "backends/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const sx_backend_vtbl *sx_cpu_backend(void);
const sx_backend_vtbl *sx_cpu_ref_backend(void);
#ifdef SX_HAVE_VULKAN
const sx_backend_vtbl *sx_vulkan_backend(void);
#endif
#ifdef SX_HAVE_CUDA
const sx_backend_vtbl *sx_cuda_backend(void);
#endif
#ifdef SX_HAVE_HIP
const sx_backend_vtbl *sx_hip_backend(void);
#endif

typedef const sx_backend_vtbl *(*backend_getter)(void);
static const backend_getter g_backends[] = {
#ifdef SX_HAVE_CUDA
    sx_cuda_backend,
#endif
#ifdef SX_HAVE_HIP
    sx_hip_backend,
#endif
#ifdef SX_HAVE_VULKAN
    sx_vulkan_backend,
#endif
    sx_cpu_backend,
    sx_cpu_ref_backend,
};

void sx_device_options_init(sx_device_options *opts) {
    memset(opts, 0, sizeof *opts);
    opts->pin_threads = false; /* pinning hurts when other processes share the cores; --pin-threads */
}

int sx_backend_count(void) { return (int)(sizeof g_backends / sizeof g_backends[0]); }

const sx_backend_vtbl *sx_backend_get(int i) { return i >= 0 && i < sx_backend_count() ? g_backends[i]() : NULL; }

const sx_backend_vtbl *sx_backend_find(const char *name) {
    for (int i = 0; i < sx_backend_count(); i++)
        if (strcmp(g_backends[i]()->name, name) == 0) return g_backends[i]();
    return NULL;
}

static const char *known_names(char *buf, size_t n) {
    buf[0] = 0;
    for (int i = 0; i < sx_backend_count(); i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s%s", i ? ", " : "", g_backends[i]()->name);
    }
    return buf;
}

sx_status sx_device_open_by_name(const char *spec, const sx_device_options *opts, sx_device **out_dev) {
    *out_dev = NULL;
    char name[64];
    int index = 0;
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (len == 0 || len >= sizeof name) return sx_set_error(SX_ERR_INVALID_ARG, "bad backend name '%s'", spec);
    memcpy(name, spec, len);
    name[len] = 0;
    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (*end || end == colon + 1 || v < 0 || v > 1024)
            return sx_set_error(SX_ERR_INVALID_ARG, "bad device index in '%s' (expected NAME:N)", spec);
        index = (int)v;
    }
    const sx_backend_vtbl *vt = sx_backend_find(name);
    char names[256];
    if (!vt) {
        const bool known = !strcmp(name, "vulkan") || !strcmp(name, "cuda") || !strcmp(name, "hip");
        return sx_set_error(SX_ERR_UNSUPPORTED, "backend '%s' %s (available: %s)", name,
                            known ? "is not compiled into this build" : "is unknown", known_names(names, sizeof names));
    }
    int count = 0;
    sx_status s = vt->device_count(&count);
    if (s != SX_OK) return sx_wrap_error(s, "backend '%s'", name);
    if (count == 0) return sx_set_error(SX_ERR_NO_DEVICE, "backend '%s': no device found", name);
    if (index >= count)
        return sx_set_error(SX_ERR_NOT_FOUND, "backend '%s': device %d does not exist (%d device%s)", name, index, count,
                            count == 1 ? "" : "s");
    s = vt->device_open(index, opts, out_dev);
    if (s != SX_OK) return sx_wrap_error(s, "opening %s:%d", name, index);
    return SX_OK;
}

void sx_device_close(sx_device *dev) {
    if (dev) dev->vt->device_close(dev);
}

sx_status sx_buffer_alloc(sx_device *dev, size_t size, sx_buffer **out_buf) { return dev->vt->buffer_alloc(dev, size, out_buf); }

void sx_buffer_free(sx_buffer *buf) {
    if (buf) buf->dev->vt->buffer_free(buf);
}

sx_status sx_tensor_write(sx_tensor *t, const void *src, size_t n) {
    sx_tensor *r = sx_tensor_root(t);
    if (!r->buffer) return sx_set_error(SX_ERR_INVALID_ARG, "tensor %s has no buffer", t->name);
    if (n > sx_tensor_nbytes(t)) return sx_set_error(SX_ERR_INVALID_ARG, "tensor %s: writing %zu bytes into %zu", t->name, n, sx_tensor_nbytes(t));
    return r->buffer->dev->vt->buffer_write(r->buffer, sx_tensor_buffer_offset(t), src, n);
}

sx_status sx_tensor_read_at(const sx_tensor *t, size_t offset, void *dst, size_t n) {
    const sx_tensor *r = t->view_src ? t->view_src : t;
    if (!r->buffer) return sx_set_error(SX_ERR_INVALID_ARG, "tensor %s has no buffer", t->name);
    const size_t total = sx_tensor_nbytes(t);
    if (offset > total || n > total - offset)
        return sx_set_error(SX_ERR_INVALID_ARG, "tensor %s: reading [%zu, +%zu) from %zu bytes", t->name, offset, n, total);
    return r->buffer->dev->vt->buffer_read(r->buffer, sx_tensor_buffer_offset(t) + offset, dst, n);
}

sx_status sx_tensor_read(const sx_tensor *t, void *dst, size_t n) { return sx_tensor_read_at(t, 0, dst, n); }
