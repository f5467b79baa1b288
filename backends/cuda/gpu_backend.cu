/* backends/cuda/gpu_backend.cu — the "cuda" (nvcc) or "hip" (hipcc -DSX_HIP)
 * backend: device enumeration, device buffers, and compute(), which enqueues
 * every node's kernels on one stream per device with no host sync inside.
 * buffer_read and synchronize wait for the stream and then report any error
 * a kernel raised (ids out of range) or the runtime recorded (faults).
 *
 * Graphs: compute() of GPU_GRAPH_MIN_NODES nodes or more captures its
 * launches into a CUDA/HIP graph and launches that instead (one launch
 * instead of hundreds: decode of a small model is bound by launch overhead
 * and the gaps between kernels). The device keeps GPU_GRAPH_CACHE
 * executable graphs, least recently used out, keyed by a hash of what in the
 * node list picks the kernels and their number (graph_key); a compute()
 * whose key is cached updates that graph in place (new arguments: pointers,
 * n_past, KV lengths, row counts), one whose key is not instantiates a new
 * one (~1 ms for 500 kernels). A speculative step alternates several such
 * shapes (draft passes, verify, KV moves); each stays instantiated.
 * SPECEXIT_CUDA_GRAPHS=0 (read at device open; both backends) launches
 * directly; the device's features say "graphs=on" or "graphs=off", and
 * closing it logs launches, cache hits, in-place updates, instantiations
 * and evictions (SPECEXIT_LOG=info; instantiations close to launches =
 * more shapes alternate than the cache holds, or keys that miss).
 *
 * ATTENTION's split-K writes partial states, and TOP_K's two-kernel plan
 * its per-chunk candidates, to a scratch buffer of the device
 * (GPU_SCRATCH_BYTES, allocated at open, never resized: graphs keep its
 * address); SPECEXIT_CUDA_ATTN_SPLIT=0 turns split-K off, =all splits
 * every row of 2 chunks or more (tests), unset = automatic.
 * SPECEXIT_CUDA_TOPK=passes / =block / =N (chunk length) forces a TOP_K
 * plan (tests: all give the same bits), unset = automatic.
 *
 * No device (no driver, no GPU): device_count fails with SX_ERR_NO_DEVICE
 * and a message naming the runtime error, so callers can skip cleanly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/gpu_internal.h"

#if defined(SX_HIP)
#define SX_GPU_ENTRY sx_hip_backend
#define SX_NO_DEVICE_HINT "is an AMD GPU present, with the amdgpu kernel driver and ROCm runtime?"
#else
#define SX_GPU_ENTRY sx_cuda_backend
#define SX_NO_DEVICE_HINT "is an NVIDIA GPU present, with a driver as new as the CUDA runtime?"
#endif

/* device-side block layouts and dtype ids must match the host's */
static_assert(SX_Q8_0_BYTES == sizeof(sx_block_q8_0) && SX_Q4_0_BYTES == sizeof(sx_block_q4_0) &&
                  SX_Q4_1_BYTES == sizeof(sx_block_q4_1) && SX_Q4_K_BYTES == sizeof(sx_block_q4_k) &&
                  SX_Q6_K_BYTES == sizeof(sx_block_q6_k),
              "block sizes match ir/quant_blocks.h");
static_assert((int)SXT_COUNT == (int)SX_DTYPE_COUNT && (int)SXT_Q6_K == (int)SX_DTYPE_Q6_K && (int)SXT_F16 == (int)SX_DTYPE_F16,
              "dtype ids match ir/dtype.def");

namespace SX_NS {

sx_status gpu_error(cudaError_t e, const char *what) {
    return sx_set_error(SX_ERR_BACKEND, SX_GPU_NAME ": %s: %s (%s, error %d)", what, cudaGetErrorString(e), cudaGetErrorName(e), (int)e);
}

#define GPU_TRY(call, what)                        \
    do {                                           \
        cudaError_t e_ = (call);                   \
        if (e_ != cudaSuccess) {                   \
            (void)cudaGetLastError();              \
            return gpu_error(e_, what);            \
        }                                          \
    } while (0)

/* one launcher per op, in the order of ir/ops.def (= enum sx_op order) */
static const gpu_launch_fn g_launch[SX_OP_COUNT] = {
    NULL, /* SX_OP_NONE */
#define SX_OP(NAME, nsrc, nopt, params) launch_##NAME,
#include "ir/ops.def"
#undef SX_OP
};

static sx_status gpu_device_count(int *out) {
    *out = 0;
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return sx_set_error(SX_ERR_NO_DEVICE, SX_GPU_NAME ": no usable device: " SX_GPU_RUNTIME " runtime error %d (%s: %s); %s", (int)e,
                            cudaGetErrorName(e), cudaGetErrorString(e), SX_NO_DEVICE_HINT);
    }
    *out = n;
    return SX_OK;
}

static void version_str(int v, char *buf, size_t n) {
#if defined(SX_HIP)
    snprintf(buf, n, "%d.%d.%d", v / 10000000, (v / 100000) % 100, v % 100000);
#else
    snprintf(buf, n, "%d.%d", v / 1000, (v % 1000) / 10);
#endif
}

/* SPECEXIT_CUDA_GRAPHS: "0" turns graphs off; unset or anything else keeps the default. */
static bool graphs_wanted(void) {
    const char *v = getenv("SPECEXIT_CUDA_GRAPHS");
    if (v && *v) return strcmp(v, "0") != 0;
    return SX_GPU_GRAPHS_DEFAULT != 0;
}

/* SPECEXIT_CUDA_ATTN_SPLIT: "0" off, "all" every row that can, else automatic. */
static int attn_split_wanted(void) {
    const char *v = getenv("SPECEXIT_CUDA_ATTN_SPLIT");
    if (v && strcmp(v, "0") == 0) return GPU_ATTN_SPLIT_OFF;
    if (v && strcmp(v, "all") == 0) return GPU_ATTN_SPLIT_ALL;
    return GPU_ATTN_SPLIT_AUTO;
}

/* SPECEXIT_CUDA_TOPK: "passes", "block", a chunk length N > 0, else automatic. */
static int topk_mode_wanted(void) {
    const char *v = getenv("SPECEXIT_CUDA_TOPK");
    if (!v || !*v) return GPU_TOPK_AUTO;
    if (strcmp(v, "passes") == 0) return GPU_TOPK_PASSES;
    if (strcmp(v, "block") == 0) return GPU_TOPK_BLOCK;
    const long n = strtol(v, NULL, 10);
    return n > 0 && n <= (1 << 30) ? (int)n : GPU_TOPK_AUTO;
}

static sx_status fill_info(int index, bool graphs, sx_device_info *info) {
    memset(info, 0, sizeof *info);
    cudaDeviceProp p;
    GPU_TRY(cudaGetDeviceProperties(&p, index), "reading device properties");
    snprintf(info->name, sizeof info->name, "%.127s", p.name);
    snprintf(info->vendor, sizeof info->vendor, "%s", SX_GPU_VENDOR_DEFAULT);
    int drv = 0, rt = 0;
    (void)cudaDriverGetVersion(&drv);
    (void)cudaRuntimeGetVersion(&rt);
    char dv[32], rv[32];
    version_str(drv, dv, sizeof dv);
    version_str(rt, rv, sizeof rv);
    snprintf(info->driver, sizeof info->driver, SX_GPU_RUNTIME " driver %s, runtime %s", dv, rv);
#if defined(SX_HIP)
    snprintf(info->arch, sizeof info->arch, "%.63s", p.gcnArchName);
    char *colon = strchr(info->arch, ':'); /* "gfx90a:sramecc+:xnack-" -> "gfx90a" */
    if (colon) *colon = 0;
    const int hw_warp = p.warpSize;
#else
    snprintf(info->arch, sizeof info->arch, "sm_%d%d", p.major, p.minor);
    const int hw_warp = p.warpSize;
#endif
    int mem_khz = 0, bus_bits = 0;
    (void)cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, index);
    (void)cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, index);
    (void)cudaGetLastError();
    const double peak_gbs = 2.0 * mem_khz * 1e3 * (bus_bits / 8.0) / 1e9; /* double data rate */
    snprintf(info->features, sizeof info->features, "f16 bf16 int8 warp=%d cus=%d smem/block=%zuKiB bus=%dbit peak_bw=%.0fGB/s graphs=%s",
             hw_warp, p.multiProcessorCount, (size_t)p.sharedMemPerBlock / 1024, bus_bits, peak_gbs, graphs ? "on" : "off");
    info->memory_total = (uint64_t)p.totalGlobalMem;
    size_t free_b = 0, total_b = 0;
    if (cudaSetDevice(index) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) info->memory_free = (uint64_t)free_b;
    (void)cudaGetLastError();
    info->host_visible = false;
    return SX_OK;
}

static sx_status gpu_device_info(int index, sx_device_info *out) {
    int n = 0;
    SX_RETURN_IF_ERROR(gpu_device_count(&n));
    if (index < 0 || index >= n) return sx_set_error(SX_ERR_NOT_FOUND, SX_GPU_NAME ": device %d does not exist (%d devices)", index, n);
    return fill_info(index, graphs_wanted(), out);
}

static const sx_backend_vtbl *vtbl(void);

static void gpu_device_close(sx_device *dev) {
    if (!dev) return;
    gpu_device *d = (gpu_device *)dev;
    (void)cudaSetDevice(d->ordinal);
    if (d->stream) (void)cudaStreamSynchronize(d->stream);
    for (int i = 0; i < GPU_GRAPH_CACHE; i++)
        if (d->graph_cache[i].exec) (void)cudaGraphExecDestroy(d->graph_cache[i].exec);
    if (d->n_graph_launches)
        SX_LOGI(SX_GPU_NAME ": device %d: %ld graph launches, %ld found in the cache (%ld updated in place), %ld instantiated, %ld evicted",
                d->ordinal, d->n_graph_launches, d->n_graph_hits, d->n_graph_updates, d->n_graph_instantiations, d->n_graph_evictions);
    if (d->stream) (void)cudaStreamDestroy(d->stream);
    if (d->err_dev) (void)cudaFree(d->err_dev);
    if (d->scratch) (void)cudaFree(d->scratch);
    if (d->err_host) (void)cudaFreeHost(d->err_host);
    (void)cudaGetLastError();
    free(d);
}

static sx_status gpu_device_open(int index, const sx_device_options *opts, sx_device **out) {
    (void)opts;
    *out = NULL;
    int n = 0;
    SX_RETURN_IF_ERROR(gpu_device_count(&n));
    if (index < 0 || index >= n) return sx_set_error(SX_ERR_NOT_FOUND, SX_GPU_NAME ": device %d does not exist (%d devices)", index, n);
    gpu_device *d = (gpu_device *)calloc(1, sizeof *d);
    if (!d) return sx_set_error(SX_ERR_OUT_OF_MEMORY, SX_GPU_NAME ": out of memory");
    d->base.vt = vtbl();
    d->base.index = index;
    d->ordinal = index;
    d->graphs = graphs_wanted();
    d->attn_split = attn_split_wanted();
    d->topk_mode = topk_mode_wanted();
    sx_status s = fill_info(index, d->graphs, &d->base.info);
    cudaError_t e = cudaSuccess;
    const char *what = "";
    if (s == SX_OK) {
        if ((e = cudaSetDevice(index)) != cudaSuccess) what = "selecting the device";
        else if ((e = cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking)) != cudaSuccess) what = "creating a stream";
        else if ((e = cudaMalloc((void **)&d->err_dev, sizeof(int))) != cudaSuccess) what = "allocating the error word";
        else if ((e = cudaMallocHost((void **)&d->err_host, sizeof(int))) != cudaSuccess) what = "allocating pinned memory";
        else if ((e = cudaMalloc((void **)&d->scratch, GPU_SCRATCH_BYTES)) != cudaSuccess) what = "allocating kernel scratch";
        else if ((e = cudaMemsetAsync(d->err_dev, 0, sizeof(int), d->stream)) != cudaSuccess) what = "clearing the error word";
        else if ((e = cudaStreamSynchronize(d->stream)) != cudaSuccess) what = "first synchronisation";
        if (e != cudaSuccess) s = gpu_error(e, what);
    }
    if (s != SX_OK) {
        gpu_device_close(&d->base);
        return s;
    }
    cudaDeviceProp p;
    d->n_sm = cudaGetDeviceProperties(&p, index) == cudaSuccess ? p.multiProcessorCount : 1;
    d->scratch_bytes = GPU_SCRATCH_BYTES;
    *out = &d->base;
    return SX_OK;
}

/* ---- buffers ---- */
static sx_status gpu_buffer_alloc(sx_device *dev, size_t size, sx_buffer **out) {
    *out = NULL;
    gpu_device *d = (gpu_device *)dev;
    gpu_buffer *b = (gpu_buffer *)calloc(1, sizeof *b);
    if (!b) return sx_set_error(SX_ERR_OUT_OF_MEMORY, SX_GPU_NAME ": out of memory");
    GPU_TRY(cudaSetDevice(d->ordinal), "selecting the device");
    const cudaError_t e = cudaMalloc((void **)&b->ptr, size ? size : 256);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        free(b);
        size_t fr = 0, tot = 0;
        (void)cudaMemGetInfo(&fr, &tot);
        (void)cudaGetLastError();
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, SX_GPU_NAME ": cannot allocate %zu bytes on %s (%zu of %zu bytes free): %s", size, dev->info.name, fr,
                            tot, cudaGetErrorString(e));
    }
    b->base.dev = dev;
    b->base.size = size;
    b->base.host_ptr = NULL;
    *out = &b->base;
    return SX_OK;
}

static void gpu_buffer_free(sx_buffer *buf) {
    if (!buf) return;
    gpu_buffer *b = (gpu_buffer *)buf;
    (void)cudaSetDevice(((gpu_device *)buf->dev)->ordinal);
    (void)cudaFree(b->ptr); /* waits for kernels still using it */
    (void)cudaGetLastError();
    free(b);
}

static sx_status gpu_buffer_write(sx_buffer *buf, size_t offset, const void *src, size_t n) {
    if (offset > buf->size || n > buf->size - offset)
        return sx_set_error(SX_ERR_INVALID_ARG, SX_GPU_NAME ": write [%zu, +%zu) past buffer size %zu", offset, n, buf->size);
    if (n == 0) return SX_OK;
    gpu_device *d = (gpu_device *)buf->dev;
    GPU_TRY(cudaSetDevice(d->ordinal), "selecting the device");
    /* pageable source: the runtime stages it before returning, so the caller
     * may reuse src at once; ordered with the kernels on the stream */
    GPU_TRY(cudaMemcpyAsync(((gpu_buffer *)buf)->ptr + offset, src, n, cudaMemcpyHostToDevice, d->stream), "copying to the device");
    return SX_OK;
}

/* Waits for the stream; reports a kernel-raised error word or a fault. */
static sx_status gpu_sync(gpu_device *d) {
    GPU_TRY(cudaMemcpyAsync(d->err_host, d->err_dev, sizeof(int), cudaMemcpyDeviceToHost, d->stream), "reading the error word");
    GPU_TRY(cudaMemsetAsync(d->err_dev, 0, sizeof(int), d->stream), "clearing the error word");
    GPU_TRY(cudaStreamSynchronize(d->stream), "running kernels");
    const int code = *d->err_host;
    *d->err_host = 0;
    switch (code) {
    case SX_GPU_ERR_NONE: return SX_OK;
    case SX_GPU_ERR_GET_ROWS_ID: return sx_set_error(SX_ERR_INVALID_ARG, SX_GPU_NAME ": get_rows: an id was out of range (rows skipped)");
    case SX_GPU_ERR_SET_ROWS_ID: return sx_set_error(SX_ERR_INVALID_ARG, SX_GPU_NAME ": set_rows: a slot was out of range (rows skipped)");
    case SX_GPU_ERR_GATHER_ID: return sx_set_error(SX_ERR_INVALID_ARG, SX_GPU_NAME ": gather: an id was out of range (outputs skipped)");
    case SX_GPU_ERR_MUL_MAT_ID_ID: return sx_set_error(SX_ERR_INVALID_ARG, SX_GPU_NAME ": mul_mat_id: an expert id was out of range (picks skipped)");
    default: return sx_set_error(SX_ERR_BACKEND, SX_GPU_NAME ": kernel error code %d", code);
    }
}

static sx_status gpu_buffer_read(sx_buffer *buf, size_t offset, void *dst, size_t n) {
    if (offset > buf->size || n > buf->size - offset)
        return sx_set_error(SX_ERR_INVALID_ARG, SX_GPU_NAME ": read [%zu, +%zu) past buffer size %zu", offset, n, buf->size);
    gpu_device *d = (gpu_device *)buf->dev;
    GPU_TRY(cudaSetDevice(d->ordinal), "selecting the device");
    if (n) GPU_TRY(cudaMemcpyAsync(dst, ((gpu_buffer *)buf)->ptr + offset, n, cudaMemcpyDeviceToHost, d->stream), "copying from the device");
    return gpu_sync(d);
}

static sx_status gpu_synchronize(sx_device *dev) {
    gpu_device *d = (gpu_device *)dev;
    GPU_TRY(cudaSetDevice(d->ordinal), "selecting the device");
    return gpu_sync(d);
}

/* ---- compute ---- */
static bool fits_int(const sx_tensor *t) {
    for (int i = 0; i < SX_MAX_DIMS; i++)
        if (t->ne[i] < 0 || t->ne[i] > 0x7fffffff) return false;
    return true;
}

/* A q8_0 / q4_0 KV cache tensor the kernels can address: rows of whole
 * 34- / 18-byte blocks (ne0 % 32 == 0, nb[0] = one block) starting at 2-byte
 * aligned addresses (the f16 scale is read and written as 16 bits). */
static bool kv_quant_rows_ok(const sx_tensor *t) {
    const size_t blk = t->dtype == SX_DTYPE_Q8_0 ? SX_Q8_0_BYTES : t->dtype == SX_DTYPE_Q4_0 ? SX_Q4_0_BYTES : 0;
    if (!blk || t->ne[0] % SX_QK != 0 || t->nb[0] != blk || sx_tensor_buffer_offset(t) % 2 != 0) return false;
    for (int i = 1; i < SX_MAX_DIMS; i++)
        if (t->nb[i] % 2 != 0) return false;
    return true;
}

/* The dtypes k_rows.cu's SET_ROWS kernels write: f32 rows into an f32 or
 * f16 destination (k_set_rows, one element per nb[0]) or into q8_0 / q4_0
 * rows (k_set_rows_quant), i32 ids. Anything else ir/ops.c may come to accept is
 * left to the CPU, never written wrong. */
static bool set_rows_dtypes_ok(const sx_tensor *node) {
    const sx_dtype dt = node->src[0]->dtype;
    if (node->dtype != dt || node->src[1]->dtype != SX_DTYPE_F32 || node->src[2]->dtype != SX_DTYPE_I32) return false;
    if (dt == SX_DTYPE_Q8_0 || dt == SX_DTYPE_Q4_0) return kv_quant_rows_ok(node) && node->src[1]->ne[0] == node->ne[0];
    return dt == SX_DTYPE_F32 || dt == SX_DTYPE_F16;
}

/* The dtypes k_attention.cu reads: q f32, K and V both f32, both f16 (one
 * element per nb[0]), both q8_0 or both q4_0 (head dim % 32 == 0), mask
 * f32, output f32. */
static bool attention_dtypes_ok(const sx_tensor *node) {
    const sx_tensor *q = node->src[0], *k = node->src[1], *v = node->src[2], *m = node->src[3];
    if (q->dtype != SX_DTYPE_F32 || v->dtype != k->dtype || (m && m->dtype != SX_DTYPE_F32) || node->dtype != SX_DTYPE_F32) return false;
    if (k->dtype == SX_DTYPE_Q8_0 || k->dtype == SX_DTYPE_Q4_0) return kv_quant_rows_ok(k) && kv_quant_rows_ok(v);
    return k->dtype == SX_DTYPE_F32 || k->dtype == SX_DTYPE_F16;
}

/* The weight dtypes k_matmul.cu's MUL_MAT_ID launcher instantiates (those of
 * MATMUL). */
static bool mul_mat_id_dtype_ok(sx_dtype dt) {
    switch (dt) {
    case SX_DTYPE_F32: case SX_DTYPE_F16: case SX_DTYPE_BF16: case SX_DTYPE_Q8_0: case SX_DTYPE_Q4_0: case SX_DTYPE_Q4_1:
    case SX_DTYPE_Q4_K: case SX_DTYPE_Q6_K: case SX_DTYPE_Q5_0: case SX_DTYPE_Q5_1: case SX_DTYPE_Q5_K: case SX_DTYPE_Q2_K:
    case SX_DTYPE_Q3_K: case SX_DTYPE_IQ4_NL: case SX_DTYPE_IQ4_XS: return true;
    default: return false;
    }
}

bool gpu_supports(const sx_tensor *node) {
    if (!fits_int(node)) return false;
    for (int s = 0; s < SX_MAX_SRC; s++)
        if (node->src[s] && !fits_int(node->src[s])) return false;
    switch (node->op) {
    case SX_OP_GET_ROWS: return node->src[1]->ne[0] <= 65535;  /* ids on grid y */
    case SX_OP_SET_ROWS: return set_rows_dtypes_ok(node) && node->src[2]->ne[0] <= 65535;
    case SX_OP_MATMUL: return node->src[1]->nb[1] % sizeof(float) == 0 && node->nb[1] % sizeof(float) == 0;
    case SX_OP_GATHER: return true; /* f32 x, i32 ids (ir/ops.c), any strides, grid-stride loop */
    case SX_OP_MUL_MAT_ID: /* k_matmul.cu: the weight dtypes of MATMUL, picks on grid y (k) and z (R), f32 strides */
        return mul_mat_id_dtype_ok(node->src[0]->dtype) && node->src[2]->ne[0] <= 65535 && node->src[2]->ne[1] <= 65535 &&
               node->src[1]->nb[1] % sizeof(float) == 0 && node->src[1]->nb[2] % sizeof(float) == 0 && node->nb[1] % sizeof(float) == 0 &&
               node->nb[2] % sizeof(float) == 0 && node->nb[0] == sizeof(float);
    case SX_OP_ATTENTION: /* head dim on 8 registers per lane; queries on grid y */
        return attention_dtypes_ok(node) && node->src[0]->ne[0] <= 8 * SX_WARP && node->src[0]->ne[2] <= 65535 && node->src[0]->ne[3] == 1;
    default: return true;
    }
}

static bool gpu_supports_op(sx_device *dev, const sx_tensor *node) {
    (void)dev;
    return (unsigned)node->op < SX_OP_COUNT && g_launch[node->op] != NULL && gpu_supports(node);
}

static sx_status check_on_device(const sx_device *dev, const sx_tensor *node, const sx_tensor *t) {
    const sx_tensor *r = t->view_src ? t->view_src : t;
    if (!r->buffer || r->buffer->dev != dev)
        return sx_set_error(SX_ERR_INVALID_ARG, SX_GPU_NAME ": node %s: tensor %s is not in a buffer of this device", node->name, t->name);
    return SX_OK;
}

/* Checks each node and enqueues its kernels on d->stream (or into the
 * stream's capture); stops at the first error, whose message it sets. */
static sx_status launch_nodes(gpu_device *d, sx_tensor *const *nodes, int n_nodes) {
    sx_device *dev = &d->base;
    for (int i = 0; i < n_nodes; i++) {
        sx_tensor *node = nodes[i];
        if (!gpu_supports_op(dev, node))
            return sx_set_error(SX_ERR_UNSUPPORTED, SX_GPU_NAME ": node %s: op %s not supported here", node->name, sx_op_name(node->op));
        SX_RETURN_IF_ERROR(check_on_device(dev, node, node));
        for (int s = 0; s < SX_MAX_SRC; s++)
            if (node->src[s]) SX_RETURN_IF_ERROR(check_on_device(dev, node, node->src[s]));
        sx_status st = g_launch[node->op](d, node);
        if (st != SX_OK) return sx_wrap_error(st, SX_GPU_NAME ": node %s", node->name);
        const cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) {
            char what[160];
            snprintf(what, sizeof what, "launching %s (op %s)", node->name, sx_op_name(node->op));
            return gpu_error(e, what);
        }
    }
    return SX_OK;
}

/* Fewer nodes than this (the scheduler's single-node copies, checked runs)
 * launch directly: a capture and graph launch would cost more than it saves. */
static const int GPU_GRAPH_MIN_NODES = 4;

/* Ends a capture that failed part-way: the stream leaves capture mode, the
 * partial graph (NULL when the capture was invalidated) is dropped and the
 * runtime's last error cleared. Keeps the message already set. */
static void capture_abort(gpu_device *d) {
    cudaGraph_t g = NULL;
    (void)cudaStreamEndCapture(d->stream, &g);
    if (g) (void)cudaGraphDestroy(g);
    (void)cudaGetLastError();
}

/* ---- graph cache key ----
 * graph_key hashes, before capture, what in the node list decides the
 * captured graph's topology (how many kernels, in which order) and which
 * kernel function each launch runs: per node its op, its dtype and its
 * sources' dtypes, and the fields each launcher (k_*.cu) picks a kernel or
 * skips a launch by:
 *   MATMUL     K and N (weight shape), the class of M (matvec variant 1, 2,
 *              4 or 8 columns; for 8 < M <= 64 the number of 8-column chunks
 *              and the last one's variant; tiled beyond), and the alignments
 *              that choose matvec or tiled (address and row stride mod 16 of
 *              w and x)
 *   ATTENTION  head dim (R), heads (grid x), whether there are queries and a
 *              mask, and whether the plan splits K (two kernels instead of
 *              one; the split count and chunk count only size a grid and
 *              an argument)
 *   GET_ROWS / SET_ROWS  row width, whether there are ids
 *   RMS_NORM / SOFTMAX / ARGMAX  row width (block size), whether there
 *              are rows
 *   TOP_K      row width, whether there are rows, and the plan's kind (k
 *              passes, one block per row, or two kernels: the chunk count
 *              and k only size grids and arguments)
 *   ROPE and the elementwise ops: whether there is anything to do (ROPE)
 *   GATHER / MUL_MAT_ID  whether there is anything to do (MUL_MAT_ID picks
 *              its path per pick inside the kernel, so alignments stay out)
 * Left out on purpose: values that change between steps while the kernels
 * stay the same — n_past, the KV length of the cache views and masks, data
 * pointers, and the row counts that only size a grid (tokens in a batch on
 * grid y, ids of KV moves, elements of an elementwise op). The update
 * changes grid sizes and arguments in place, so those graphs share an entry
 * instead of filling the cache with one per row count.
 * The key only chooses which cached graph to try: cudaGraphExecUpdate
 * refuses (and launch_graph re-instantiates that entry) when the capture's
 * topology differs, and an update that succeeds leaves exactly the new
 * capture, so a wrong or colliding key costs an instantiation, never a
 * wrong result. Keep that fallback. */
static uint64_t key_mix(uint64_t h, uint64_t v) { /* FNV-1a over v's 8 bytes */
    for (int i = 0; i < 8; i++) h = (h ^ ((v >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    return h;
}

/* The launch plan of a MATMUL with M activation columns (k_matmul.cu's
 * mm_launch): matvec variant for M <= 8, chunk count and the last chunk's
 * variant for M <= 64, one class for the tiled kernel beyond. */
static uint64_t matmul_m_class(int64_t M) {
    if (M <= 0) return 0;
    if (M > 64) return 1000;
    const int64_t chunks = (M + 7) / 8, last = M - 8 * (chunks - 1);
    const int variant = last == 1 ? 1 : last == 2 ? 2 : last <= 4 ? 4 : 8;
    return (uint64_t)(chunks * 16 + variant);
}

static uint64_t align16(const sx_tensor *t) { return (uint64_t)(uintptr_t)gt_of(t).data & 15; }

static uint64_t node_key(const gpu_device *d, uint64_t h, const sx_tensor *n) {
    h = key_mix(h, (uint64_t)n->op);
    h = key_mix(h, (uint64_t)n->dtype);
    for (int s = 0; s < SX_MAX_SRC; s++) h = key_mix(h, n->src[s] ? (uint64_t)n->src[s]->dtype + 1 : 0);
    const sx_tensor *a = n->src[0], *b = n->src[1];
    switch (n->op) {
    case SX_OP_MATMUL: /* a = w [K, N], b = x [K, M] */
        h = key_mix(h, (uint64_t)a->ne[0]);
        h = key_mix(h, (uint64_t)a->ne[1]);
        h = key_mix(h, matmul_m_class(b->ne[1]));
        h = key_mix(h, align16(a) | (uint64_t)(a->nb[1] & 15) << 4 | align16(b) << 8 | (uint64_t)(b->nb[1] & 15) << 12);
        break;
    case SX_OP_ATTENTION: /* a = q [d, nh, T]; src[3] = mask */
        h = key_mix(h, (uint64_t)a->ne[0]);
        h = key_mix(h, (uint64_t)a->ne[1]);
        h = key_mix(h, (uint64_t)(a->ne[2] > 0) | (uint64_t)(n->src[3] != NULL) << 1 | (uint64_t)(gpu_attn_plan(d, n, NULL) > 0) << 2);
        break;
    case SX_OP_GET_ROWS: /* a = table, b = ids */
        h = key_mix(h, (uint64_t)a->ne[0]);
        h = key_mix(h, (uint64_t)(b->ne[0] > 0));
        break;
    case SX_OP_SET_ROWS: /* b = src rows, src[2] = ids */
        h = key_mix(h, (uint64_t)b->ne[0]);
        h = key_mix(h, (uint64_t)(n->src[2]->ne[0] > 0));
        break;
    case SX_OP_RMS_NORM:
    case SX_OP_SOFTMAX:
        h = key_mix(h, (uint64_t)a->ne[0]);
        h = key_mix(h, (uint64_t)(sx_tensor_nrows(a) > 0));
        break;
    case SX_OP_ARGMAX:
        h = key_mix(h, (uint64_t)a->ne[0]);
        h = key_mix(h, (uint64_t)(a->ne[1] > 0));
        break;
    case SX_OP_TOP_K: { /* the plan depends on k and the row count too */
        const int plan = gpu_topk_plan(d, n, NULL);
        h = key_mix(h, (uint64_t)a->ne[0]);
        h = key_mix(h, (uint64_t)(a->ne[1] > 0) | (uint64_t)(plan == GPU_TOPK_PASSES ? 0 : plan == GPU_TOPK_BLOCK ? 1 : 2) << 1);
        break;
    }
    case SX_OP_ROPE: h = key_mix(h, (uint64_t)(sx_tensor_nelements(a) > 0)); break;
    case SX_OP_GATHER: h = key_mix(h, (uint64_t)(sx_tensor_nelements(n) > 0)); break;
    case SX_OP_MUL_MAT_ID: /* one kernel per weight dtype (hashed above); skipped when empty */
        h = key_mix(h, (uint64_t)(a->ne[1] > 0 && sx_tensor_nelements(n->src[2]) > 0));
        break;
    default: break; /* elementwise: one launch, its grid sized by the element count */
    }
    return h;
}

static uint64_t graph_key(const gpu_device *d, sx_tensor *const *nodes, int n_nodes) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a offset basis */
    for (int i = 0; i < n_nodes; i++) h = node_key(d, h, nodes[i]);
    return h;
}

/* Destroys a cached executable graph. CUDA frees one still running when it
 * completes; HIP does not document that, so there we wait for the stream
 * first (rare: a refused update or an eviction). */
static void graph_exec_destroy(gpu_device *d, cudaGraphExec_t exec) {
#if defined(SX_HIP)
    (void)cudaStreamSynchronize(d->stream);
    (void)cudaGetLastError(); /* a fault stays sticky: the next sync reports it */
#else
    (void)d;
#endif
    (void)cudaGraphExecDestroy(exec);
}

/* The entry for key: a cached one (*hit), else a free slot or the least
 * recently used one, emptied (an eviction). */
static gpu_graph_entry *graph_entry(gpu_device *d, uint64_t key, int n_nodes, bool *hit) {
    gpu_graph_entry *free_slot = NULL, *lru = NULL;
    for (int i = 0; i < GPU_GRAPH_CACHE; i++) {
        gpu_graph_entry *e = &d->graph_cache[i];
        if (!e->exec) {
            if (!free_slot) free_slot = e;
        } else if (e->key == key && e->n_nodes == n_nodes) {
            *hit = true;
            return e;
        } else if (!lru || e->last_used < lru->last_used) {
            lru = e;
        }
    }
    *hit = false;
    if (free_slot) return free_slot;
    graph_exec_destroy(d, lru->exec);
    lru->exec = NULL;
    d->n_graph_evictions++;
    return lru;
}

/* Captures the nodes' launches and launches the graph. Thread-local mode:
 * only calls unsafe during capture (synchronous copies, malloc, syncs) made
 * by this thread invalidate it; the launchers make none, they only launch
 * kernels on d->stream. The cached executable graph of the node list's key
 * is updated from the capture (same topology: a chain of the same number of
 * kernels whose grids and arguments may differ); when the update is refused
 * (the key missed a difference) or no graph has the key, the capture is
 * instantiated into that entry. A launch of it still running from an
 * earlier step is not affected by the update (CUDA: updates apply to later
 * launches; a destroyed graph in flight is freed on completion). */
static sx_status launch_graph(gpu_device *d, sx_tensor *const *nodes, int n_nodes) {
    const uint64_t key = graph_key(d, nodes, n_nodes);
    GPU_TRY(cudaStreamBeginCapture(d->stream, cudaStreamCaptureModeThreadLocal), "starting a graph capture");
    const sx_status st = launch_nodes(d, nodes, n_nodes);
    if (st != SX_OK) {
        capture_abort(d);
        return st;
    }
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(d->stream, &g);
    if (e != cudaSuccess) { /* e.g. invalidated by an illegal call: g is NULL */
        if (g) (void)cudaGraphDestroy(g);
        (void)cudaGetLastError();
        return gpu_error(e, "ending the graph capture");
    }
    bool hit = false;
    gpu_graph_entry *ent = graph_entry(d, key, n_nodes, &hit);
    if (hit) {
        d->n_graph_hits++;
        if (sx_graph_exec_update(ent->exec, g) == cudaSuccess) {
            d->n_graph_updates++;
        } else { /* topology differs after all: replace this entry's graph */
            (void)cudaGetLastError(); /* the update's own failure, not a fault */
            graph_exec_destroy(d, ent->exec);
            ent->exec = NULL;
        }
    }
    if (!ent->exec) {
        if ((e = cudaGraphInstantiateWithFlags(&ent->exec, g, 0)) != cudaSuccess) {
            ent->exec = NULL; /* the slot stays free */
            (void)cudaGraphDestroy(g);
            (void)cudaGetLastError();
            return gpu_error(e, "instantiating the graph");
        }
        ent->key = key;
        ent->n_nodes = n_nodes;
        d->n_graph_instantiations++;
    }
    ent->last_used = ++d->graph_clock;
    e = cudaGraphLaunch(ent->exec, d->stream);
    (void)cudaGraphDestroy(g); /* the executable graph does not need it */
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return gpu_error(e, "launching the graph");
    }
    d->n_graph_launches++;
    return SX_OK;
}

static sx_status gpu_compute(sx_device *dev, sx_tensor *const *nodes, int n_nodes) {
    gpu_device *d = (gpu_device *)dev;
    GPU_TRY(cudaSetDevice(d->ordinal), "selecting the device");
    if (d->graphs && n_nodes >= GPU_GRAPH_MIN_NODES) return launch_graph(d, nodes, n_nodes);
    return launch_nodes(d, nodes, n_nodes);
}

#if defined(SX_HIP)
static const char g_desc[] = "HIP (ROCm) GPUs; kernels shared with the CUDA backend";
#else
static const char g_desc[] = "NVIDIA GPUs through the CUDA runtime";
#endif

static const sx_backend_vtbl g_vtbl = {
    SX_GPU_NAME,      g_desc,           gpu_device_count, gpu_device_info, gpu_device_open, gpu_device_close, gpu_buffer_alloc,
    NULL, /* wrap */  gpu_buffer_free,  gpu_buffer_write, gpu_buffer_read, gpu_supports_op, gpu_compute,      gpu_synchronize,
};

static const sx_backend_vtbl *vtbl(void) { return &g_vtbl; }

} /* namespace SX_NS */

extern "C" const sx_backend_vtbl *SX_GPU_ENTRY(void) { return SX_NS::vtbl(); }
