/* backends/cuda/vendor.h — the one place where CUDA and HIP differ.
 *
 * The kernel and host sources in backends/cuda/ are written in the CUDA
 * dialect. Compiled by hipcc with -DSX_HIP, this header maps the runtime
 * calls and types to their HIP names; compiled by nvcc or NVRTC it includes
 * the CUDA headers. NVRTC (__CUDACC_RTC__) sees device code only: no host
 * headers are included in that mode.
 *
 * Warps: kernels use a *logical* warp of SX_WARP = 32 lanes and shuffle
 * within it (width 32). On NVIDIA and on RDNA (wave32) that is the hardware
 * warp; on CDNA (gfx90a, wave64) one hardware wavefront holds two logical
 * warps, which is correct because HIP's shuffles take a width and AMD
 * wavefronts execute in lockstep. Block sizes are multiples of 64. */
#ifndef SX_GPU_VENDOR_H
#define SX_GPU_VENDOR_H

#if defined(SX_HIP)

#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>

#define SX_GPU_NAME "hip"
#define SX_GPU_VENDOR_DEFAULT "AMD"
#define SX_NS sx_hip
#define SX_GPU_RUNTIME "HIP"
#define sx_shfl_xor(v, m) __shfl_xor((v), (m), SX_WARP)

/* runtime API: CUDA spelling -> HIP */
#define cudaError_t hipError_t
#define cudaSuccess hipSuccess
#define cudaGetErrorString hipGetErrorString
#define cudaGetErrorName hipGetErrorName
#define cudaGetLastError hipGetLastError
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaGetDeviceProperties hipGetDeviceProperties
#define cudaDeviceProp hipDeviceProp_t
#define cudaDeviceGetAttribute hipDeviceGetAttribute
#define cudaDevAttrMemoryClockRate hipDeviceAttributeMemoryClockRate
#define cudaDevAttrGlobalMemoryBusWidth hipDeviceAttributeMemoryBusWidth
#define cudaDevAttrMultiProcessorCount hipDeviceAttributeMultiprocessorCount
#define cudaSetDevice hipSetDevice
#define cudaDriverGetVersion hipDriverGetVersion
#define cudaRuntimeGetVersion hipRuntimeGetVersion
#define cudaMemGetInfo hipMemGetInfo
#define cudaMalloc hipMalloc
#define cudaFree hipFree
#define cudaMallocHost(p, n) hipHostMalloc((p), (n), hipHostMallocDefault)
#define cudaFreeHost hipHostFree
#define cudaMemcpyAsync hipMemcpyAsync
#define cudaMemsetAsync hipMemsetAsync
#define cudaMemcpyHostToDevice hipMemcpyHostToDevice
#define cudaMemcpyDeviceToHost hipMemcpyDeviceToHost
#define cudaMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define cudaStream_t hipStream_t
#define cudaStreamCreateWithFlags hipStreamCreateWithFlags
#define cudaStreamNonBlocking hipStreamNonBlocking
#define cudaStreamSynchronize hipStreamSynchronize
#define cudaStreamDestroy hipStreamDestroy
/* graphs (compute() captures its launches; gpu_backend.cu). Two calls are
 * not mapped because HIP keeps their CUDA 11 signatures: cudaGraphInstantiate
 * (5 arguments in HIP; we call cudaGraphInstantiateWithFlags, the same in
 * both) and cudaGraphExecUpdate (wrapped by sx_graph_exec_update below). */
#define cudaGraph_t hipGraph_t
#define cudaGraphExec_t hipGraphExec_t
#define cudaStreamBeginCapture hipStreamBeginCapture
#define cudaStreamEndCapture hipStreamEndCapture
#define cudaStreamCaptureModeGlobal hipStreamCaptureModeGlobal
#define cudaStreamCaptureModeThreadLocal hipStreamCaptureModeThreadLocal
#define cudaStreamCaptureModeRelaxed hipStreamCaptureModeRelaxed
#define cudaGraphInstantiateWithFlags hipGraphInstantiateWithFlags
#define cudaGraphLaunch hipGraphLaunch
#define cudaGraphDestroy hipGraphDestroy
#define cudaGraphExecDestroy hipGraphExecDestroy

/* Graphs default on: the hipGraph* calls above compile with ROCm 5.2's hipcc
 * (Debian), where the API is marked beta; SPECEXIT_CUDA_GRAPHS=0 turns them off. */
#define SX_GPU_GRAPHS_DEFAULT 1

/* Updates exec in place from graph (same topology, new kernel arguments);
 * hipSuccess, or an error when the topology changed (then re-instantiate). */
static inline hipError_t sx_graph_exec_update(hipGraphExec_t exec, hipGraph_t graph) {
    hipGraphNode_t error_node = NULL;
    hipGraphExecUpdateResult result;
    return hipGraphExecUpdate(exec, graph, &error_node, &result);
}

#elif defined(SX_EMU) /* CPU emulation for logic checks: emu/gpu_emu.h */

#include "backends/cuda/emu/gpu_emu.h"

#define SX_GPU_NAME "cuda"
#define SX_GPU_VENDOR_DEFAULT "emulated"
#define SX_NS sx_cuda
#define SX_GPU_RUNTIME "emulated CUDA"
#define sx_shfl_xor(v, m) __shfl_xor_sync(0xffffffffu, (v), (m), SX_WARP)
/* graphs on: gpu_emu.h's stand-ins run captured launches at once (see there) */
#define SX_GPU_GRAPHS_DEFAULT 1

#else /* CUDA: nvcc or NVRTC */

#if !defined(__CUDACC_RTC__)
#include <cuda_runtime.h>
#endif
#include <cuda_fp16.h>

#define SX_GPU_NAME "cuda"
#define SX_GPU_VENDOR_DEFAULT "NVIDIA"
#define SX_NS sx_cuda
#define SX_GPU_RUNTIME "CUDA"
#define sx_shfl_xor(v, m) __shfl_xor_sync(0xffffffffu, (v), (m), SX_WARP)
#define SX_GPU_GRAPHS_DEFAULT 1

#endif

#if !defined(SX_HIP) && !defined(__CUDACC_RTC__)
/* Updates exec in place from graph (same topology, new kernel arguments);
 * cudaSuccess, or an error when the topology changed (then re-instantiate).
 * CUDA 12 replaced the error-node/result pair by one result struct. */
static inline cudaError_t sx_graph_exec_update(cudaGraphExec_t exec, cudaGraph_t graph) {
#if defined(CUDART_VERSION) && CUDART_VERSION < 12000
    cudaGraphNode_t error_node = NULL;
    cudaGraphExecUpdateResult result;
    return cudaGraphExecUpdate(exec, graph, &error_node, &result);
#else
    cudaGraphExecUpdateResultInfo info;
    return cudaGraphExecUpdate(exec, graph, &info);
#endif
}
#endif

#define SX_WARP 32 /* logical warp: lanes that cooperate through shuffles */

#endif
