/* backends/cuda/k_elementwise.cu — ADD, MUL, SILU_MUL, SIGMOID, EXP, COPY,
 * CONCAT: one thread per output element (grid-stride), any source strides.
 *
 * Layout: the output is the node (contiguous); sources are read through
 * their byte strides, so strided and permuted views work. ADD/MUL broadcast
 * b by taking each index modulo b's size (ir/ops.def). COPY converts between
 * f32/f16/bf16 with the exact rounding of ir/dtype.c (f16 RNE via
 * __float2half_rn, bf16 by the same bit rule).
 * Tested by tests/test_ops.c (cases with views and broadcasts) against
 * backends/cpu/cpu_ops_ref.c; cheap enough that no benchmark tracks them. */
#include "backends/cuda/common.cuh"

namespace SX_NS {

enum { EW_ADD = 0, EW_MUL = 1, EW_SILU_MUL = 2, EW_SIGMOID = 3, EW_EXP = 4 };

/* flat index of the output -> (i0, i1, i2, i3) */
static __device__ __forceinline__ void unflatten(sx_i64 idx, const sx_gt &o, sx_i64 *i) {
    i[0] = idx % o.ne[0];
    idx /= o.ne[0];
    i[1] = idx % o.ne[1];
    idx /= o.ne[1];
    i[2] = idx % o.ne[2];
    i[3] = idx / o.ne[2];
}

/* out = a (op) b; b broadcast by modulo (SILU_MUL: same shapes) */
template <int OP> __global__ void k_binary(sx_gt a, sx_gt b, sx_gt out, sx_i64 n) {
    for (sx_i64 idx = (sx_i64)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (sx_i64)gridDim.x * blockDim.x) {
        sx_i64 i[4];
        unflatten(idx, out, i);
        const float x = *(const float *)SX_GT_AT(a, i[0], i[1], i[2], i[3]);
        const float y = *(const float *)SX_GT_AT(b, i[0] % b.ne[0], i[1] % b.ne[1], i[2] % b.ne[2], i[3] % b.ne[3]);
        float r;
        if (OP == EW_ADD) r = x + y;
        else if (OP == EW_MUL) r = x * y;
        else r = x / (1.0f + expf(-x)) * y;
        *(float *)SX_GT_AT(out, i[0], i[1], i[2], i[3]) = r;
    }
}

template <int OP> __global__ void k_unary(sx_gt a, sx_gt out, sx_i64 n) {
    for (sx_i64 idx = (sx_i64)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (sx_i64)gridDim.x * blockDim.x) {
        sx_i64 i[4];
        unflatten(idx, out, i);
        const float x = *(const float *)SX_GT_AT(a, i[0], i[1], i[2], i[3]);
        *(float *)SX_GT_AT(out, i[0], i[1], i[2], i[3]) = OP == EW_SIGMOID ? 1.0f / (1.0f + expf(-x)) : expf(x);
    }
}

/* dtype conversion, any source strides */
__global__ void k_copy(sx_gt a, int adt, sx_gt out, int odt, sx_i64 n) {
    for (sx_i64 idx = (sx_i64)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (sx_i64)gridDim.x * blockDim.x) {
        sx_i64 i[4];
        unflatten(idx, out, i);
        store_f(SX_GT_AT(out, i[0], i[1], i[2], i[3]), odt, load_f(SX_GT_AT(a, i[0], i[1], i[2], i[3]), adt));
    }
}

__global__ void k_concat(sx_gt a, sx_gt b, sx_gt out, int dim, sx_i64 n) {
    for (sx_i64 idx = (sx_i64)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (sx_i64)gridDim.x * blockDim.x) {
        sx_i64 i[4];
        unflatten(idx, out, i);
        float *dst = (float *)SX_GT_AT(out, i[0], i[1], i[2], i[3]);
        const bool from_a = i[dim] < a.ne[dim];
        if (!from_a) i[dim] -= a.ne[dim];
        *dst = from_a ? *(const float *)SX_GT_AT(a, i[0], i[1], i[2], i[3]) : *(const float *)SX_GT_AT(b, i[0], i[1], i[2], i[3]);
    }
}

template __global__ void k_binary<EW_ADD>(sx_gt, sx_gt, sx_gt, sx_i64);
template __global__ void k_binary<EW_MUL>(sx_gt, sx_gt, sx_gt, sx_i64);
template __global__ void k_binary<EW_SILU_MUL>(sx_gt, sx_gt, sx_gt, sx_i64);
template __global__ void k_unary<EW_SIGMOID>(sx_gt, sx_gt, sx_i64);
template __global__ void k_unary<EW_EXP>(sx_gt, sx_gt, sx_i64);

} /* namespace SX_NS */

#if !defined(__CUDACC_RTC__)
#include "backends/cuda/gpu_internal.h"

namespace SX_NS {

static const int EW_THREADS = 256;

static unsigned ew_blocks(sx_i64 n) {
    const sx_i64 b = (n + EW_THREADS - 1) / EW_THREADS;
    return (unsigned)(b < 1 ? 1 : b > (1 << 20) ? (1 << 20) : b);
}

template <int OP> static sx_status launch_binary(gpu_device *d, sx_tensor *node) {
    const sx_i64 n = sx_tensor_nelements(node);
    k_binary<OP><<<ew_blocks(n), EW_THREADS, 0, d->stream>>>(gt_of(node->src[0]), gt_of(node->src[1]), gt_of(node), n);
    return SX_OK;
}
template <int OP> static sx_status launch_unary(gpu_device *d, sx_tensor *node) {
    const sx_i64 n = sx_tensor_nelements(node);
    k_unary<OP><<<ew_blocks(n), EW_THREADS, 0, d->stream>>>(gt_of(node->src[0]), gt_of(node), n);
    return SX_OK;
}

sx_status launch_ADD(gpu_device *d, sx_tensor *node) { return launch_binary<EW_ADD>(d, node); }
sx_status launch_MUL(gpu_device *d, sx_tensor *node) { return launch_binary<EW_MUL>(d, node); }
sx_status launch_SILU_MUL(gpu_device *d, sx_tensor *node) { return launch_binary<EW_SILU_MUL>(d, node); }
sx_status launch_SIGMOID(gpu_device *d, sx_tensor *node) { return launch_unary<EW_SIGMOID>(d, node); }
sx_status launch_EXP(gpu_device *d, sx_tensor *node) { return launch_unary<EW_EXP>(d, node); }

sx_status launch_COPY(gpu_device *d, sx_tensor *node) {
    const sx_i64 n = sx_tensor_nelements(node);
    k_copy<<<ew_blocks(n), EW_THREADS, 0, d->stream>>>(gt_of(node->src[0]), (int)node->src[0]->dtype, gt_of(node), (int)node->dtype, n);
    return SX_OK;
}

sx_status launch_CONCAT(gpu_device *d, sx_tensor *node) {
    const sx_i64 n = sx_tensor_nelements(node);
    k_concat<<<ew_blocks(n), EW_THREADS, 0, d->stream>>>(gt_of(node->src[0]), gt_of(node->src[1]), gt_of(node), node->params.concat.dim, n);
    return SX_OK;
}

} /* namespace SX_NS */
#endif
