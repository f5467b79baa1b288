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

/* compute() keeps this many executable graphs per device (least recently
 * used out): a speculative step alternates several shapes (the draft's
 * pending rows, its tree levels, the target's verify pass, KV moves), each
 * of which would otherwise be instantiated anew at every use. */
#define GPU_GRAPH_CACHE 8

/* One cached executable graph and the topology key of the node lists it was
 * captured from (graph_key in gpu_backend.cu). */
typedef struct gpu_graph_entry {
    uint64_t key;          /* hash of what picks kernels and launch counts */
    int n_nodes;           /* node count of the list (part of the key) */
    cudaGraphExec_t exec;  /* NULL: free slot */
    uint64_t last_used;    /* gpu_device.graph_clock at its last launch (LRU) */
} gpu_graph_entry;

/* Split-K of ATTENTION (k_attention.cu), SPECEXIT_CUDA_ATTN_SPLIT at open:
 * AUTO splits rows into chunk blocks when the grid would leave SMs idle,
 * OFF never (one block per row), ALL whenever a row spans 2 chunks or more
 * (tests: both plans must give the same bits). */
enum { GPU_ATTN_SPLIT_AUTO = 0, GPU_ATTN_SPLIT_OFF = 1, GPU_ATTN_SPLIT_ALL = 2 };

/* Device scratch of the two-kernel plans (allocated at open, never resized:
 * captured graphs keep its address). One node uses it at a time, between
 * its own first and second kernel (one stream: the next node's kernels
 * start after them). A plan that would need more falls back to its
 * one-kernel form, with the same bits.
 *  - ATTENTION split-K partial states: (2 + head dim) floats per head,
 *    query and 256-key chunk, so 32 MiB hold 32 heads of 128 up to 64K of
 *    context at T = 8, 500K at T = 1.
 *  - TOP_K candidates: k 8-byte keys per row and chunk, e.g. 64 rows of
 *    151936 logits with k = 64 in chunks of 2048: 2.4 MiB. */
#define GPU_SCRATCH_BYTES ((size_t)32 << 20)

/* TOP_K's plan (k_select.cu), SPECEXIT_CUDA_TOPK at open: AUTO picks by
 * shape; PASSES is always the k-pass kernel, BLOCK always one block per row
 * (tests: every plan must give the same bits); a number N > 0 splits rows
 * into chunks of N whenever that makes 2 chunks or more. */
enum { GPU_TOPK_AUTO = 0, GPU_TOPK_PASSES = -1, GPU_TOPK_BLOCK = -2 };

typedef struct gpu_device {
    sx_device base;
    int ordinal;          /* runtime device index */
    cudaStream_t stream;  /* every copy and kernel of this device, in order */
    int *err_dev;         /* error word kernels set (SX_GPU_ERR_*) */
    int *err_host;        /* pinned copy of it, read at synchronisation */
    int n_sm;
    int attn_split;             /* GPU_ATTN_SPLIT_* */
    int topk_mode;              /* GPU_TOPK_*, or a forced chunk length > 0 */
    char *scratch;              /* GPU_SCRATCH_BYTES: split-K attention states, */
    size_t scratch_bytes;       /* TOP_K candidates (one node at a time) */
    bool graphs;                /* compute() captures its launches into a graph
                                   (SPECEXIT_CUDA_GRAPHS, read at open) */
    gpu_graph_entry graph_cache[GPU_GRAPH_CACHE]; /* updated in place when a
                                   compute() has an entry's key (decode steps) */
    uint64_t graph_clock;       /* graph launches so far: the LRU's clock */
    /* logged at close (SPECEXIT_LOG=info): graph launches; of those, how many
     * found their key in the cache and how many of these were updated in
     * place (the rest: update refused, re-instantiated); instantiations in
     * all, and entries evicted to make room */
    long n_graph_launches, n_graph_hits, n_graph_updates, n_graph_instantiations, n_graph_evictions;
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

/* ATTENTION's launch plan (k_attention.cu): 0 = one block per (head,
 * query), S > 0 = split-K with S blocks per row; *out_chunks (optional) =
 * the number of ATTN_CHUNK-key chunks in n_kv. A function of the node's shapes
 * and the device only (the graph key uses it too). */
int gpu_attn_plan(const gpu_device *d, const sx_tensor *node, int *out_chunks);

/* TOP_K's launch plan (k_select.cu): GPU_TOPK_PASSES (k block-wide
 * reductions per row), GPU_TOPK_BLOCK (one block per row: radix select and
 * a sort) or S >= 2 = two kernels, S chunks of *out_chunk (optional)
 * elements per row, candidates in the device scratch. A function of the
 * node's shapes and the device only (the graph key uses it too). */
int gpu_topk_plan(const gpu_device *d, const sx_tensor *node, int *out_chunk);

/* Extra limits a node must meet beyond ir/ops.c's checks (head dim, strides). */
bool gpu_supports(const sx_tensor *node);

} /* namespace SX_NS */

#endif
