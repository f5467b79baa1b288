/* backends/cpu/cpu_internal.h — private to the CPU backend. */
#ifndef SX_CPU_INTERNAL_H
#define SX_CPU_INTERNAL_H

#include "backends/backend.h"
#include "backends/cpu/cpu_fast.h"

/* Rope angles of one configuration (fast mode, cpu_ops_fast.c). */
typedef struct sx_cpu_rope_cache {
    int half, n_dims; /* key: n_dims, base, scale, freq factors */
    float freq_base, freq_scale;
    bool has_ff;
    float *ff;           /* [half] copy of the freq factors */
    double *inv;         /* [half] freq_base^(-2i/n_dims) */
    float *cs;           /* [n_pos][half][2] cos, sin */
    uint8_t *ready;      /* [n_pos] */
    int64_t n_pos;
    uint64_t used;       /* last use (device rope_clock) */
} sx_cpu_rope_cache;
#define SX_CPU_ROPE_CACHES 4

typedef struct sx_cpu_device {
    sx_device base;
    bool reference;      /* scalar oracle mode */
    sx_threadpool *pool; /* fast mode only */
    float *scratch;      /* per-device scratch for kernels, grown on demand */
    size_t scratch_floats;
    sx_cpu_rope_cache rope[SX_CPU_ROPE_CACHES]; /* fast mode: target and draft ropes */
    uint64_t rope_clock;
} sx_cpu_device;

/* Host address of t's first element (all CPU buffers are host memory). */
static inline void *sx_cpu_data(const sx_tensor *t) {
    const sx_tensor *r = t->view_src ? t->view_src : t;
    return (char *)r->buffer->host_ptr + sx_tensor_buffer_offset(t);
}

/* Scratch of at least n floats owned by the device (not thread-safe). */
float *sx_cpu_scratch(sx_cpu_device *d, size_t n);

extern const sx_kernel_fn sx_cpu_ref_kernels[SX_OP_COUNT];
extern const sx_kernel_fn sx_cpu_fast_kernels[SX_OP_COUNT];

/* Reference kernels reused by the fast table where speed does not matter. */
#define SX_OP(NAME, nsrc, nopt, params) sx_status sx_cpu_ref_##NAME(sx_device *dev, sx_tensor *node);
#include "ir/ops.def"
#undef SX_OP

#endif
