/* backends/cuda/emu/gpu_emu.h — a CPU emulation of the small part of CUDA the
 * kernels in backends/cuda/ use, to check their *logic* on a machine without
 * a GPU (tests/test_ops against cpu-ref). Not a product path: blocks run
 * one at a time, launches one at a time, and it is blind to GPU-only issues
 * (memory model, real intrinsics, occupancy).
 *
 * How: backends/cuda/emu/run_emu_tests.sh rewrites each `k<<<g, b, s, st>>>(a)`
 * into sx_emu_launch(g, b, s, st, [&] { k(a); }) and compiles the .cu files
 * as C++20 with -DSX_EMU, which makes vendor.h include this header.
 * __shared__ becomes `static` (blocks run one at a time), __syncthreads a
 * wait of every thread of the block, a shuffle a write to a per-warp buffer,
 * a wait of the warp and a read; exited threads drop out of both waits.
 * The threads of a block are fibers on the launching thread (a hand-written
 * register switch: x86-64 and aarch64), so a launch costs function calls, not
 * OS threads, and the emulation is fast enough to run whole models.
 * Half conversions use ir/dtype.c's reference functions. */
#ifndef SX_GPU_EMU_H
#define SX_GPU_EMU_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

#include <stdio.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#include <time.h>


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

/* plain globals, not thread_local (a TLS lookup per use in a shared library
 * is a call): launches run one at a time under sx_emu::launch_lock */
inline dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace sx_emu {
/* Each GPU thread of a block is a fiber on the launching host thread; a
 * fiber runs until it waits at a barrier or returns, so a kernel without
 * barriers costs one call per thread. */
enum { F_READY, F_WAIT_BLOCK, F_WAIT_WARP, F_DONE };
struct fiber { void *sp; int state; unsigned shfl; };
struct block_ctx {
    unsigned nt, cur, nt_pad;
    fiber *f;
    uint64_t *xchg;
    uint64_t *res;     /* warp_butterfly's results, 32 per warp */
    unsigned *res_seq; /* per warp: the collective (lane's shfl count) they belong to */
    void *sched_sp;
    void (*call)(void *);
    void *arg;
};
inline block_ctx *g_block;
} // namespace sx_emu

/* void sx_emu_switch(void **save_sp, void *next_sp): saves the callee-saved
 * registers on the current stack, stores its pointer in *save_sp and resumes
 * the context whose stack pointer is next_sp. Weak: each .cu defines it. */
#if defined(__x86_64__)
asm(".text\n.weak sx_emu_switch\n.type sx_emu_switch,@function\nsx_emu_switch:\n"
    "pushq %rbp\npushq %rbx\npushq %r12\npushq %r13\npushq %r14\npushq %r15\n"
    "movq %rsp, (%rdi)\nmovq %rsi, %rsp\n"
    "popq %r15\npopq %r14\npopq %r13\npopq %r12\npopq %rbx\npopq %rbp\nret\n"
    ".size sx_emu_switch,.-sx_emu_switch\n");
#elif defined(__aarch64__)
asm(".text\n.weak sx_emu_switch\n.type sx_emu_switch,%function\nsx_emu_switch:\n"
    "sub sp, sp, #176\nstp x19, x20, [sp, #0]\nstp x21, x22, [sp, #16]\nstp x23, x24, [sp, #32]\n"
    "stp x25, x26, [sp, #48]\nstp x27, x28, [sp, #64]\nstp x29, x30, [sp, #80]\n"
    "stp d8, d9, [sp, #96]\nstp d10, d11, [sp, #112]\nstp d12, d13, [sp, #128]\nstp d14, d15, [sp, #144]\n"
    "mov x9, sp\nstr x9, [x0]\nmov sp, x1\n"
    "ldp x19, x20, [sp, #0]\nldp x21, x22, [sp, #16]\nldp x23, x24, [sp, #32]\n"
    "ldp x25, x26, [sp, #48]\nldp x27, x28, [sp, #64]\nldp x29, x30, [sp, #80]\n"
    "ldp d8, d9, [sp, #96]\nldp d10, d11, [sp, #112]\nldp d12, d13, [sp, #128]\nldp d14, d15, [sp, #144]\n"
    "add sp, sp, #176\nret\n.size sx_emu_switch,.-sx_emu_switch\n");
#else
#error "gpu_emu.h: fibers are written for x86-64 and aarch64"
#endif
extern "C" void sx_emu_switch(void **save_sp, void *next_sp);

namespace sx_emu {
inline void wait(int state) {
    block_ctx *b = g_block;
    b->f[b->cur].state = state;
    sx_emu_switch(&b->f[b->cur].sp, b->sched_sp);
}
[[noreturn]] inline void fiber_entry() {
    block_ctx *b = g_block;
    b->call(b->arg);
    b = g_block;
    b->f[b->cur].state = F_DONE;
    void *dead;
    sx_emu_switch(&dead, b->sched_sp);
    abort();
}
/* two exchange buffers used in turn: a lane cannot write a shuffle's value
 * before every lane of its warp has read the previous one (it waits once per
 * shuffle, and the warp opens only when all its lanes wait) */
template <class T> inline uint64_t *post_and_wait(T v) {
    const unsigned t = threadIdx.x;
    uint64_t *buf = g_block->xchg + (size_t)(g_block->f[t].shfl++ & 1) * g_block->nt_pad;
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    buf[t] = bits;
    wait(F_WAIT_WARP);
    return buf;
}
template <class T> inline T shfl_xor(T v, int m) {
    const unsigned lane = threadIdx.x % 32, w = threadIdx.x / 32;
    uint64_t *buf = post_and_wait(v);
    const uint64_t bits = buf[w * 32 + (lane ^ (unsigned)m)];
    T r;
    memcpy(&r, &bits, sizeof r);
    return r;
}
/* warp_sum / warp_max of common.cuh as one collective: every lane posts its
 * value, waits once, then replays the xor butterfly over the warp's 32
 * values (v = op(v, partner) for m = 16, 8, 4, 2, 1), the same operations in
 * the same order as the five shuffles, at one wait instead of five.
 * SX_EMU_SHUFFLES=1 turns it off, so the shuffles themselves run (the op
 * conformance test does). */
inline int collectives = -1;
inline bool use_collectives() {
    if (collectives < 0) {
        const char *v = getenv("SX_EMU_SHUFFLES");
        collectives = !(v && *v && strcmp(v, "0"));
    }
    return collectives;
}
template <class T, class Op> inline T warp_butterfly(T v, Op op) {
    const unsigned lane = threadIdx.x % 32, w = threadIdx.x / 32;
    uint64_t *buf = post_and_wait(v);
    const unsigned seq = g_block->f[threadIdx.x].shfl;
    /* the warp's first lane to resume replays it for all 32; the results
     * stay until every lane has read its own (the next collective opens only
     * when all lanes wait at it) */
    uint64_t *res = g_block->res + (size_t)w * 32;
    if (g_block->res_seq[w] != seq) {
        T x[32], y[32];
        for (unsigned l = 0; l < 32; l++) memcpy(&x[l], &buf[w * 32 + l], sizeof(T));
        for (unsigned m = 16; m > 0; m >>= 1) {
            for (unsigned l = 0; l < 32; l++) y[l] = op(x[l], x[l ^ m]);
            memcpy(x, y, sizeof x);
        }
        for (unsigned l = 0; l < 32; l++) res[l] = 0, memcpy(&res[l], &x[l], sizeof(T));
        g_block->res_seq[w] = seq;
    }
    T r;
    memcpy(&r, &res[lane], sizeof r);
    return r;
}
} // namespace sx_emu

static inline void __syncthreads() { sx_emu::wait(sx_emu::F_WAIT_BLOCK); }
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

namespace sx_emu {
constexpr size_t STACK = 128 << 10, PAGE = 4096;
constexpr unsigned MAX_THREADS = 1024;
/* one stack per GPU thread of a block, each over a guard page; made once
 * and reused by every launch */
inline char *stacks() {
    static char *base; /* under launch_lock */
    if (!base) {
        void *p = mmap(nullptr, STACK * MAX_THREADS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) { fprintf(stderr, "gpu_emu: cannot map fiber stacks\n"); abort(); }
        base = (char *)p;
        for (unsigned t = 0; t < MAX_THREADS; t++) mprotect(base + t * STACK, PAGE, PROT_NONE);
    }
    return base;
}
template <class F> inline void call(void *fn) { (*(F *)fn)(); }

/* SX_EMU_PROFILE=1: at exit, each launch site's launches, blocks, fiber
 * switches and seconds on stderr, the costliest first */
struct prof_entry { const char *site; unsigned long launches, blocks, switches; double s; };
inline std::vector<prof_entry> prof;
inline int prof_on = -1;
inline void prof_print() {
    std::sort(prof.begin(), prof.end(), [](const prof_entry &a, const prof_entry &b) { return a.s > b.s; });
    for (const prof_entry &e : prof)
        fprintf(stderr, "gpu_emu: %8.3f s %8lu launches %10lu blocks %12lu switches  %s\n", e.s, e.launches, e.blocks, e.switches, e.site);
}
inline prof_entry *prof_site(const char *site) {
    if (prof_on < 0) {
        const char *v = getenv("SX_EMU_PROFILE");
        prof_on = v && *v && strcmp(v, "0");
        if (prof_on) {
            atexit(prof_print);
            signal(SIGTERM, [](int) { prof_print(); _exit(143); }); /* a timed-out test too */
        }
    }
    if (!prof_on) return nullptr;
    for (prof_entry &e : prof)
        if (e.site == site) return &e;
    prof.push_back(prof_entry{site, 0, 0, 0, 0});
    return &prof.back();
}
inline double now_s() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
/* the static __shared__ arrays are one per program: one launch at a time */
inline std::mutex launch_lock;
} // namespace sx_emu

template <class F> static void sx_emu_launch(dim3 grid, dim3 block, size_t, cudaStream_t, F fn) {
    using namespace sx_emu;
    std::lock_guard<std::mutex> hold(launch_lock);
    prof_entry *pe = prof_site(__PRETTY_FUNCTION__);
    const double t0 = pe ? now_s() : 0;
    unsigned long switches = 0;
    gridDim = grid;
    blockDim = block;
    const unsigned nt = block.x * block.y * block.z, nw = (nt + 31) / 32;
    if (nt == 0 || nt > MAX_THREADS) { fprintf(stderr, "gpu_emu: block of %u threads\n", nt); abort(); }
    std::vector<fiber> f(nt);
    std::vector<uint64_t> xchg(2 * nw * 32), res(nw * 32);
    std::vector<unsigned> res_seq(nw);
    block_ctx ctx{nt, 0, nw * 32, f.data(), xchg.data(), res.data(), res_seq.data(), nullptr, call<F>, &fn};
    char *st = stacks();
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                blockIdx = dim3(bx, by, bz);
                std::fill(res_seq.begin(), res_seq.end(), 0u); /* lanes count collectives from 1 in each block */
                for (unsigned t = 0; t < nt; t++) {
                    /* a fresh stack whose first switch "returns" into fiber_entry; tops
                     * staggered (128 KiB-aligned ones would share cache sets) */
                    void **top = (void **)(st + (size_t)(t + 1) * STACK - (t % 61) * 64 - (t / 61 % 8) * PAGE);
#if defined(__x86_64__) /* 6 saved registers, then the address `ret` takes */
                    void **sp = top - 8;
                    memset(sp, 0, 8 * sizeof *sp);
                    sp[6] = (void *)&fiber_entry;
#else /* a 176-byte frame whose x30 (link register) is at byte 88 */
                    void **sp = top - 22;
                    memset(sp, 0, 22 * sizeof *sp);
                    sp[11] = (void *)&fiber_entry;
#endif
                    f[t] = fiber{(void *)sp, F_READY, 0};
                }
                g_block = &ctx;
                for (;;) {
                    for (unsigned t = 0; t < nt; t++)
                        if (f[t].state == F_READY) {
                            ctx.cur = t;
                            threadIdx = dim3(t, 0, 0);
                            sx_emu_switch(&ctx.sched_sp, f[t].sp);
                            switches++;
                        }
                    /* every fiber now waits or is done: open the full barriers */
                    unsigned live = 0, at_block = 0;
                    bool opened = false;
                    for (unsigned w = 0; w < nw; w++) {
                        unsigned wl = 0, ww = 0;
                        for (unsigned t = w * 32; t < std::min(nt, w * 32 + 32); t++) {
                            wl += f[t].state != F_DONE;
                            ww += f[t].state == F_WAIT_WARP;
                            at_block += f[t].state == F_WAIT_BLOCK;
                        }
                        live += wl;
                        if (wl && ww == wl) { /* its exited lanes stay done */
                            for (unsigned t = w * 32; t < std::min(nt, w * 32 + 32); t++)
                                if (f[t].state == F_WAIT_WARP) f[t].state = F_READY;
                            opened = true;
                        }
                    }
                    if (!live) break;
                    if (!opened && at_block == live) {
                        for (unsigned t = 0; t < nt; t++)
                            if (f[t].state == F_WAIT_BLOCK) f[t].state = F_READY;
                        opened = true;
                    }
                    if (!opened) { fprintf(stderr, "gpu_emu: threads of block (%u,%u,%u) wait at different barriers\n", bx, by, bz); abort(); }
                }
                g_block = nullptr;
            }
    if (pe) pe->launches++, pe->blocks += (unsigned long)grid.x * grid.y * grid.z, pe->switches += switches, pe->s += now_s() - t0;
}

#endif
