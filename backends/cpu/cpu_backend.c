/* backends/cpu/cpu_backend.c — the CPU device: host buffers and the node loop.
 * Two registered backends share this file: "cpu" (SIMD kernels, thread pool)
 * and "cpu-ref" (the scalar oracle used by every conformance test). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/cpu/cpu_internal.h"

float *sx_cpu_scratch(sx_cpu_device *d, size_t n) {
    if (n > d->scratch_floats) {
        float *p = realloc(d->scratch, n * sizeof(float));
        if (!p) return NULL;
        d->scratch = p;
        d->scratch_floats = n;
    }
    return d->scratch;
}

static sx_status cpu_device_count(int *out) {
    *out = 1;
    return SX_OK;
}

static void fill_info(bool reference, sx_device_info *info) {
    memset(info, 0, sizeof *info);
    char topo[256];
    snprintf(info->name, sizeof info->name, "%s", reference ? "CPU (scalar reference)" : "CPU");
    snprintf(info->vendor, sizeof info->vendor, "host");
    snprintf(info->driver, sizeof info->driver, "specexit cpu backend");
    snprintf(info->arch, sizeof info->arch, "%s", reference ? "scalar" : sx_cpu_simd_level());
    snprintf(info->features, sizeof info->features, "%s", sx_cpu_topology_summary(topo, sizeof topo));
    const long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    const long avail = sysconf(_SC_AVPHYS_PAGES);
    info->memory_total = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 0;
    info->memory_free = avail > 0 && psize > 0 ? (uint64_t)avail * (uint64_t)psize : 0;
    info->host_visible = true;
}

static sx_status cpu_device_info_fast(int index, sx_device_info *out) {
    if (index != 0) return sx_set_error(SX_ERR_NOT_FOUND, "cpu: device %d does not exist (only 0)", index);
    fill_info(false, out);
    return SX_OK;
}
static sx_status cpu_device_info_ref(int index, sx_device_info *out) {
    if (index != 0) return sx_set_error(SX_ERR_NOT_FOUND, "cpu-ref: device %d does not exist (only 0)", index);
    fill_info(true, out);
    return SX_OK;
}

static const sx_backend_vtbl g_cpu_vtbl, g_ref_vtbl;

static sx_status cpu_open(bool reference, int index, const sx_device_options *opts, sx_device **out) {
    *out = NULL;
    if (index != 0) return sx_set_error(SX_ERR_NOT_FOUND, "cpu: device %d does not exist (only 0)", index);
    sx_cpu_device *d = calloc(1, sizeof *d);
    if (!d) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "cpu: out of memory");
    d->base.vt = reference ? &g_ref_vtbl : &g_cpu_vtbl;
    d->base.index = 0;
    d->reference = reference;
    fill_info(reference, &d->base.info);
    if (!reference) {
        sx_device_options def;
        sx_device_options_init(&def);
        if (!opts) opts = &def;
        sx_status s = sx_threadpool_create(opts->n_threads, opts->pin_threads, &d->pool);
        if (s != SX_OK) {
            free(d);
            return s;
        }
    }
    *out = &d->base;
    return SX_OK;
}
static sx_status cpu_open_fast(int i, const sx_device_options *o, sx_device **out) { return cpu_open(false, i, o, out); }
static sx_status cpu_open_ref(int i, const sx_device_options *o, sx_device **out) { return cpu_open(true, i, o, out); }

static void cpu_close(sx_device *dev) {
    if (!dev) return;
    sx_cpu_device *d = (sx_cpu_device *)dev;
    sx_threadpool_destroy(d->pool);
    for (int i = 0; i < SX_CPU_ROPE_CACHES; i++) {
        free(d->rope[i].ff);
        free(d->rope[i].inv);
        free(d->rope[i].cs);
        free(d->rope[i].ready);
    }
    free(d->scratch);
    free(d);
}

typedef struct {
    sx_buffer base;
    bool owned;
} cpu_buffer;

static sx_status cpu_buffer_alloc(sx_device *dev, size_t size, sx_buffer **out) {
    *out = NULL;
    cpu_buffer *b = calloc(1, sizeof *b);
    void *p = NULL;
    if (!b || posix_memalign(&p, 64, size ? size : 64) != 0) {
        free(b);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "cpu: cannot allocate %zu bytes", size);
    }
    b->base.dev = dev;
    b->base.size = size;
    b->base.host_ptr = p;
    b->owned = true;
    *out = &b->base;
    return SX_OK;
}

static sx_status cpu_buffer_wrap(sx_device *dev, void *ptr, size_t size, sx_buffer **out) {
    *out = NULL;
    cpu_buffer *b = calloc(1, sizeof *b);
    if (!b) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "cpu: out of memory");
    b->base.dev = dev;
    b->base.size = size;
    b->base.host_ptr = ptr;
    *out = &b->base;
    return SX_OK;
}

static void cpu_buffer_free(sx_buffer *buf) {
    if (!buf) return;
    cpu_buffer *b = (cpu_buffer *)buf;
    if (b->owned) free(b->base.host_ptr);
    free(b);
}

static sx_status cpu_buffer_write(sx_buffer *buf, size_t offset, const void *src, size_t n) {
    if (offset > buf->size || n > buf->size - offset)
        return sx_set_error(SX_ERR_INVALID_ARG, "cpu: write [%zu, +%zu) past buffer size %zu", offset, n, buf->size);
    memcpy((char *)buf->host_ptr + offset, src, n);
    return SX_OK;
}

static sx_status cpu_buffer_read(sx_buffer *buf, size_t offset, void *dst, size_t n) {
    if (offset > buf->size || n > buf->size - offset)
        return sx_set_error(SX_ERR_INVALID_ARG, "cpu: read [%zu, +%zu) past buffer size %zu", offset, n, buf->size);
    memcpy(dst, (const char *)buf->host_ptr + offset, n);
    return SX_OK;
}

static const sx_kernel_fn *table_of(const sx_device *dev) {
    return ((const sx_cpu_device *)dev)->reference ? sx_cpu_ref_kernels : sx_cpu_fast_kernels;
}

static bool cpu_supports_op(sx_device *dev, const sx_tensor *node) {
    return (unsigned)node->op < SX_OP_COUNT && table_of(dev)[node->op] != NULL;
}

static sx_status cpu_compute(sx_device *dev, sx_tensor *const *nodes, int n_nodes) {
    const sx_kernel_fn *table = table_of(dev);
    for (int i = 0; i < n_nodes; i++) {
        sx_tensor *node = nodes[i];
        if (!cpu_supports_op(dev, node))
            return sx_set_error(SX_ERR_UNSUPPORTED, "%s: op %s not implemented", dev->vt->name, sx_op_name(node->op));
        sx_status s = table[node->op](dev, node);
        if (s != SX_OK) return sx_wrap_error(s, "%s: node %s", dev->vt->name, node->name);
    }
    return SX_OK;
}

static sx_status cpu_sync(sx_device *dev) {
    (void)dev;
    return SX_OK;
}

#define CPU_VTBL(NAME, DESC, INFO, OPEN) \
    {NAME, DESC, cpu_device_count, INFO, OPEN, cpu_close, cpu_buffer_alloc, cpu_buffer_wrap, cpu_buffer_free, \
     cpu_buffer_write, cpu_buffer_read, cpu_supports_op, cpu_compute, cpu_sync}

static const sx_backend_vtbl g_cpu_vtbl = CPU_VTBL("cpu", "CPU, SIMD kernels and thread pool", cpu_device_info_fast, cpu_open_fast);
static const sx_backend_vtbl g_ref_vtbl = CPU_VTBL("cpu-ref", "CPU scalar reference (the test oracle)", cpu_device_info_ref, cpu_open_ref);

const sx_backend_vtbl *sx_cpu_backend(void) { return &g_cpu_vtbl; }
const sx_backend_vtbl *sx_cpu_ref_backend(void) { return &g_ref_vtbl; }
