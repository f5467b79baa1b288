/* backends/backend.h — the one interface through which a backend is reached.
 *
 * Layers: registry (which backends are compiled in, how many devices each has)
 * -> device (info, open/close) -> buffer (alloc, write, read) -> compute
 * (supports_op, compute a run of graph nodes, synchronize).
 *
 * Every call returns a status; no backend aborts on bad input. An op a
 * backend does not implement is a NULL slot in its kernel table (sized by
 * SX_OP_COUNT from ir/ops.def), and supports_op answers from that table, so
 * "supports" and "dispatch" cannot disagree.
 */
#ifndef SX_BACKEND_H
#define SX_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/graph.h"
#include "ir/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* MATMUL batch invariance, every backend (tests/test_batch_invariance.c):
 * each column of a batch is computed bit for bit as that column alone, for
 * batches of up to SX_MATMUL_INVARIANT_M columns (speculative verification)
 * and, for a weight of at most SX_MATMUL_INVARIANT_SMALL_W elements, at any
 * batch (the KV cache rotation: head_dim^2 weights, heads x tokens columns,
 * whose prefill must store the codes decode would). */
#define SX_MATMUL_INVARIANT_M 64
#define SX_MATMUL_INVARIANT_SMALL_W (256 * 256)

typedef struct sx_backend_vtbl sx_backend_vtbl;

typedef struct sx_device_info {
    char name[128];     /* "AMD Ryzen 9 7950X", "llvmpipe (LLVM 15.0.6, 256 bits)" */
    char vendor[64];    /* "AMD", "NVIDIA", "Mesa" ... */
    char driver[128];   /* driver name and version */
    char arch[64];      /* "avx512", "sm_90", "gfx1030", device type */
    char features[256]; /* short list: "f16 int8 subgroup=8 ..." */
    uint64_t memory_total; /* bytes (device-local, or host RAM for the CPU) */
    uint64_t memory_free;  /* bytes, 0 when unknown */
    bool host_visible;     /* buffers are plain host memory (CPU) */
} sx_device_info;

typedef struct sx_device_options {
    int n_threads;      /* CPU: worker threads (0 = physical cores) */
    bool pin_threads;   /* CPU: pin workers to cores with hwloc */
} sx_device_options;

void sx_device_options_init(sx_device_options *opts);

/* Common heads; a backend embeds these as the first member of its own structs. */
typedef struct sx_device {
    const sx_backend_vtbl *vt;
    int index;
    sx_device_info info;
} sx_device;

typedef struct sx_buffer {
    sx_device *dev;
    size_t size;
    void *host_ptr; /* non-NULL when the bytes are directly addressable by the host */
} sx_buffer;

/* Kernel signature of one node; the backend's table is indexed by sx_op. */
typedef sx_status (*sx_kernel_fn)(sx_device *dev, sx_tensor *node);

struct sx_backend_vtbl {
    const char *name; /* "cpu", "ref", "vulkan", "cuda", "hip" */
    const char *description;
    /* Number of devices; 0 with SX_OK when none, an error when the runtime is missing. */
    sx_status (*device_count)(int *out_count);
    sx_status (*device_info)(int index, sx_device_info *out_info);
    sx_status (*device_open)(int index, const sx_device_options *opts, sx_device **out_dev);
    void (*device_close)(sx_device *dev);

    sx_status (*buffer_alloc)(sx_device *dev, size_t size, sx_buffer **out_buf);
    /* Optional (NULL when unsupported): wrap host memory without copying. */
    sx_status (*buffer_wrap_host)(sx_device *dev, void *ptr, size_t size, sx_buffer **out_buf);
    void (*buffer_free)(sx_buffer *buf);
    sx_status (*buffer_write)(sx_buffer *buf, size_t offset, const void *src, size_t n);
    sx_status (*buffer_read)(sx_buffer *buf, size_t offset, void *dst, size_t n);

    /* True when this device can run `node` (op, dtypes, shapes). */
    bool (*supports_op)(sx_device *dev, const sx_tensor *node);
    /* Runs nodes in order. Every source and destination root has a buffer of
     * this device. May be asynchronous: buffer_read and synchronize wait. */
    sx_status (*compute)(sx_device *dev, sx_tensor *const *nodes, int n_nodes);
    sx_status (*synchronize)(sx_device *dev);
};

/* ---- registry ---- */
/* All backends compiled into this build, in preference order. */
int sx_backend_count(void);
const sx_backend_vtbl *sx_backend_get(int i);
const sx_backend_vtbl *sx_backend_find(const char *name);

/* Opens "cpu", "vulkan", "vulkan:1", "cuda:0", "ref"... Clear error when the
 * backend is not compiled in, has no device or the index is out of range. */
SX_MUST_USE sx_status sx_device_open_by_name(const char *spec, const sx_device_options *opts, sx_device **out_dev);
void sx_device_close(sx_device *dev); /* NULL is a no-op */

/* Convenience wrappers over the vtable. */
SX_MUST_USE sx_status sx_buffer_alloc(sx_device *dev, size_t size, sx_buffer **out_buf);
void sx_buffer_free(sx_buffer *buf);
SX_MUST_USE sx_status sx_tensor_write(sx_tensor *t, const void *src, size_t n);
SX_MUST_USE sx_status sx_tensor_read(const sx_tensor *t, void *dst, size_t n);
/* Reads n bytes starting `offset` bytes into t (e.g. one row of logits). */
SX_MUST_USE sx_status sx_tensor_read_at(const sx_tensor *t, size_t offset, void *dst, size_t n);

/* ---- scheduler: runs a graph over one or more devices ----
 * devices[0] is preferred; a node that a device cannot run goes to the next
 * device in the list that can (put the CPU last as the fallback). Nodes may
 * also be pinned by setting node->device before compute. Tensors crossing
 * devices are copied at the cut. Owns per-device arenas reused across steps. */
typedef struct sx_sched sx_sched;
SX_MUST_USE sx_status sx_sched_create(sx_device *const *devices, int n_devices, sx_sched **out_sched);
void sx_sched_destroy(sx_sched *s);
/* Places, plans memory, uploads inputs and runs the graph. */
SX_MUST_USE sx_status sx_sched_compute(sx_sched *s, sx_graph *g);
/* Reads an output (a contiguous node of the last computed graph). */
SX_MUST_USE sx_status sx_sched_read(sx_sched *s, const sx_tensor *t, void *dst, size_t nbytes);
/* Debug: leave `bytes` of guard pattern after every planned tensor and check
 * them after compute (a kernel writing past its output fails the compute
 * with SX_ERR_BACKEND naming the node). Also enabled by SPECEXIT_GUARD=1. */
void sx_sched_set_guard(sx_sched *s, size_t bytes);
/* Counters of the last compute: segments (device switches) and copies. */
void sx_sched_last_stats(const sx_sched *s, int *out_segments, int *out_copies);

#ifdef __cplusplus
}
#endif
#endif
