/* backends/cuda/emu/gpu_emu.h — a CPU emulation of the small part of CUDA the
 * kernels in backends/cuda/ use, to check their *logic* on a machine without
 * a GPU (tests/test_ops against cpu-ref). Not a product path: slow (one OS
 * thread per GPU thread, one block at a time) and blind to GPU-only issues
 * (memory model, real intrinsics, occupancy).
 *
 * How: backends/cuda/emu/build_emu.sh rewrites each `k<<<g, b, s, st>>>(a)`
 * into sx_emu_launch(g, b, s, st, [&] { k(a); }) and compiles the .cu files
 * as C++20 with -DSX_EMU, which makes vendor.h include this header.
 * __shared__ becomes `static` (blocks run one at a time), __syncthreads a
 * std::barrier over the block, shuffles an exchange through a per-warp buffer
 * between two warp barriers; exiting threads drop out of both barriers.
 * Half conversions use ir/dtype.c's reference functions. */
#ifndef SX_GPU_EMU_H
#define SX_GPU_EMU_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <barrier>
#include <memory>
#include <thread>
#include <vector>

extern "C" float sx_fp16_to_fp32(uint16_t h);
extern "C" uint16_t sx_fp32_to_fp16(float f);

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

using std::max;
using std::min;

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct __half { uint16_t bits; };

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

namespace sx_emu {
struct block_ctx {
    std::unique_ptr<std::barrier<>> bar;
    std::vector<std::unique_ptr<std::barrier<>>> warp_bar;
    std::vector<uint64_t> xchg;
};
inline block_ctx *g_block;
template <class T> inline T shfl_xor(T v, int m) {
    const unsigned t = threadIdx.x, lane = t % 32, w = t / 32;
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    g_block->xchg[t] = bits;
    g_block->warp_bar[w]->arrive_and_wait();
    bits = g_block->xchg[w * 32 + (lane ^ (unsigned)m)];
    g_block->warp_bar[w]->arrive_and_wait();
    T r;
    memcpy(&r, &bits, sizeof r);
    return r;
}
} // namespace sx_emu

static inline void __syncthreads() { sx_emu::g_block->bar->arrive_and_wait(); }
template <class T> static inline T __shfl_xor_sync(unsigned, T v, int m, int = 32) { return sx_emu::shfl_xor(v, m); }
static inline int atomicExch(int *p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned atomicAdd(unsigned *p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }

/* IEEE single ops that a GPU compiler never contracts (x86 without -mfma
 * contracts nothing either) */
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
/* round half to even under the default rounding mode, as the GPU's cvt.rni */
static inline int __float2int_rn(float f) { return (int)nearbyintf(f); }

static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
static inline __half __ushort_as_half(unsigned short b) { return __half{b}; }
static inline unsigned short __half_as_ushort(__half h) { return h.bits; }
static inline float __half2float(__half h) { return sx_fp16_to_fp32(h.bits); }
static inline __half __float2half_rn(float f) { return __half{sx_fp32_to_fp16(f)}; }

/* ---- runtime ---- */
typedef int cudaError_t;
typedef void *cudaStream_t;
enum { cudaSuccess = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3, cudaStreamNonBlocking = 1 };
enum { cudaDevAttrMemoryClockRate = 36, cudaDevAttrGlobalMemoryBusWidth = 37, cudaDevAttrMultiProcessorCount = 16 };
struct cudaDeviceProp {
    char name[256];
    int major, minor, warpSize, multiProcessorCount;
    size_t sharedMemPerBlock, totalGlobalMem;
};
static inline const char *cudaGetErrorString(cudaError_t) { return "emulated error"; }
static inline const char *cudaGetErrorName(cudaError_t) { return "emuError"; }
static inline cudaError_t cudaGetLastError() { return 0; }
static inline cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return 0; }
static inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) {
    memset(p, 0, sizeof *p);
    strcpy(p->name, "CPU emulation of the CUDA kernels");
    p->major = 9, p->warpSize = 32, p->multiProcessorCount = 1, p->sharedMemPerBlock = 48 << 10, p->totalGlobalMem = (size_t)4 << 30;
    return 0;
}
static inline cudaError_t cudaDeviceGetAttribute(int *v, int, int) { *v = 0; return 0; }
static inline cudaError_t cudaSetDevice(int) { return 0; }
static inline cudaError_t cudaDriverGetVersion(int *v) { *v = 0; return 0; }
static inline cudaError_t cudaRuntimeGetVersion(int *v) { *v = 0; return 0; }
static inline cudaError_t cudaMemGetInfo(size_t *f, size_t *t) { *f = *t = (size_t)4 << 30; return 0; }
static inline cudaError_t cudaMalloc(void **p, size_t n) { *p = aligned_alloc(256, (n + 255) / 256 * 256); return *p ? 0 : 2; }
static inline cudaError_t cudaFree(void *p) { free(p); return 0; }
static inline cudaError_t cudaMallocHost(void **p, size_t n) { return cudaMalloc(p, n); }
static inline cudaError_t cudaFreeHost(void *p) { free(p); return 0; }
static inline cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, int, cudaStream_t) { memcpy(d, s, n); return 0; }
static inline cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) { memset(d, v, n); return 0; }
static inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, int) { *s = (void *)1; return 0; }
static inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return 0; }
static inline cudaError_t cudaStreamDestroy(cudaStream_t) { return 0; }

/* Graphs: stand-ins where capture = run directly. Launches made while a
 * stream "captures" run at once (sx_emu_launch ignores the stream), so the
 * captured graph is an empty token and launching it does nothing. This keeps
 * gpu_backend.cu's capture/update/instantiate path compiled and its error
 * handling exercised, with the same results as direct launches; it checks
 * nothing about real graph semantics (that needs a GPU run). */
struct sx_emu_graph { int unused; };
inline sx_emu_graph sx_emu_graph_token;
typedef sx_emu_graph *cudaGraph_t;
typedef sx_emu_graph *cudaGraphExec_t;
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 };
struct cudaGraphExecUpdateResultInfo { int result; };
static inline cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) { return 0; }
static inline cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t *g) { *g = &sx_emu_graph_token; return 0; }
static inline cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *e, cudaGraph_t, unsigned long long) { *e = &sx_emu_graph_token; return 0; }
static inline cudaError_t cudaGraphExecUpdate(cudaGraphExec_t, cudaGraph_t, cudaGraphExecUpdateResultInfo *r) { r->result = 0; return 0; }
static inline cudaError_t cudaGraphLaunch(cudaGraphExec_t, cudaStream_t) { return 0; }
static inline cudaError_t cudaGraphDestroy(cudaGraph_t) { return 0; }
static inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t) { return 0; }

template <class F> static void sx_emu_launch(dim3 grid, dim3 block, size_t, cudaStream_t, F fn) {
    gridDim = grid;
    blockDim = block;
    const unsigned nt = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                sx_emu::block_ctx ctx;
                ctx.bar = std::make_unique<std::barrier<>>((std::ptrdiff_t)nt);
                for (unsigned w = 0; w < (nt + 31) / 32; w++)
                    ctx.warp_bar.push_back(std::make_unique<std::barrier<>>((std::ptrdiff_t)std::min(32u, nt - 32 * w)));
                ctx.xchg.assign(((nt + 31) / 32) * 32, 0);
                sx_emu::g_block = &ctx;
                std::vector<std::thread> th;
                for (unsigned t = 0; t < nt; t++)
                    th.emplace_back([&, t, bx, by, bz] {
                        threadIdx = dim3(t, 0, 0);
                        blockIdx = dim3(bx, by, bz);
                        fn();
                        ctx.warp_bar[t / 32]->arrive_and_drop();
                        ctx.bar->arrive_and_drop();
                    });
                for (auto &x : th) x.join();
            }
}

#endif
