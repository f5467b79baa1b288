/* backends/cuda/gpu_internal.h — host-side internals shared by the CUDA/HIP
 * backend files: the device and buffer structs, tensor -> kernel view, error
 * helpers and the launcher of every op (one per op in ir/ops.def, defined in
 * the k_*.cu file of its op family). Host code only (never seen by NVRTC).
 * Everything lives in namespace SX_NS (sx_cuda or sx_hip), so both backends
 * can be linked into one library. */
#ifndef SX_GPU_INTERNAL_H
#define SX_GPU_INTERNAL_H

#if defined(__CUDACC_RTC__)
#error "gpu_internal.h is host code"
#endif


#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "backends/cuda/common.cuh"

namespace SX_NS {

typedef struct gpu_device {
    sx_device base;
    int ordinal;          /* runtime device index */
    cudaStream_t stream;  /* every copy and kernel of this device, in order */
    int *err_dev;         /* error word kernels set (SX_GPU_ERR_*) */
    int *err_host;        /* pinned copy of it, read at synchronisation */
    int n_sm;
    bool graphs;                /* compute() captures its launches into a graph
                                   (SPECEXIT_CUDA_GRAPHS, read at open) */
    cudaGraphExec_t graph_exec; /* last compute()'s graph, updated in place while
                                   its shape repeats (decode steps); NULL if none */
    long n_graph_launches, n_graph_instantiations; /* logged at close (SPECEXIT_LOG=info) */
} gpu_device;

typedef struct gpu_buffer {
    sx_buffer base;
    char *ptr; /* device memory */
} gpu_buffer;

/* Records "<backend>: WHAT: <runtime message>" and returns SX_ERR_BACKEND. */
sx_status gpu_error(cudaError_t e, const char *what);

/* Device address of t's first element and its shape/strides. */
static inline sx_gt gt_of(const sx_tensor *t) {
    sx_gt g;
    const sx_tensor *r = t->view_src ? t->view_src : t;
    g.data = r->buffer ? ((gpu_buffer *)r->buffer)->ptr + sx_tensor_buffer_offset(t) : NULL;
    for (int i = 0; i < 4; i++) {
        g.ne[i] = t->ne[i];
        g.nb[i] = (sx_i64)t->nb[i];
    }
    return g;
}

/* A view with no data (an absent optional source). */
static inline sx_gt gt_none(void) {
    sx_gt g;
    g.data = NULL;
    for (int i = 0; i < 4; i++) g.ne[i] = 1, g.nb[i] = 0;
    return g;
}

static inline unsigned cdiv(sx_i64 a, sx_i64 b) { return (unsigned)((a + b - 1) / b); }

/* Launchers: enqueue the node's kernels on d->stream; never synchronise. */
typedef sx_status (*gpu_launch_fn)(gpu_device *d, sx_tensor *node);
#define SX_OP(NAME, nsrc, nopt, params) sx_status launch_##NAME(gpu_device *d, sx_tensor *node);
#include "ir/ops.def"
#undef SX_OP

/* Extra limits a node must meet beyond ir/ops.c's checks (head dim, strides). */
bool gpu_supports(const sx_tensor *node);

} /* namespace SX_NS */

#endif
