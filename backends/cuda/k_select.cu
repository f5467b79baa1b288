/* backends/cuda/k_select.cu — ARGMAX and TOP_K over rows of logits: one thread
 * block per row, block-wide (value, index) reductions.
 *
 * Order: larger value first, equal values by lower index — the total order
 * of the reference, so results match it exactly. TOP_K runs k reductions,
 * each finding the best element strictly after the previous pick in that
 * order (no scratch memory, O(k * ne0) per row: meant for the small k of
 * sampling and draft trees). Output i32, one row of k (or 1) per input row.
 * GATHER (the values of TOP_K's picks, a router's weights) lives here too:
 * a plain indexed copy, one thread per output.
 * Tested by tests/test_ops.c (rows of 9 to 5000, k = 1..ne0) for exact
 * equality with cpu_ops_ref.c. */
#include "backends/cuda/common.cuh"

namespace SX_NS {

/* (v, i) before (bv, bi) in the order value desc, index asc */
static __device__ __forceinline__ bool before(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

/* block-wide best (value, index); every thread gets the result */
static __device__ void block_best(float *v, int *i, float *sv, int *si) {
    const int lane = threadIdx.x % SX_WARP, w = threadIdx.x / SX_WARP, nw = blockDim.x / SX_WARP;
#pragma unroll
    for (int m = SX_WARP / 2; m > 0; m >>= 1) {
        const float ov = sx_shfl_xor(*v, m);
        const int oi = sx_shfl_xor(*i, m);
        if (before(ov, oi, *v, *i)) *v = ov, *i = oi;
    }
    __syncthreads();
    if (lane == 0) sv[w] = *v, si[w] = *i;
    __syncthreads();
    *v = lane < nw ? sv[lane] : SX_NEG_INF;
    *i = lane < nw ? si[lane] : 0x7fffffff;
#pragma unroll
    for (int m = SX_WARP / 2; m > 0; m >>= 1) {
        const float ov = sx_shfl_xor(*v, m);
        const int oi = sx_shfl_xor(*i, m);
        if (before(ov, oi, *v, *i)) *v = ov, *i = oi;
    }
}

__global__ void k_argmax(sx_gt x, sx_gt out) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const sx_i64 r = blockIdx.x;
    float bv = SX_NEG_INF;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < x.ne[0]; i += blockDim.x) {
        const float v = *(const float *)SX_GT_AT(x, i, r, 0, 0);
        if (before(v, i, bv, bi)) bv = v, bi = i;
    }
    block_best(&bv, &bi, sv, si);
    if (threadIdx.x == 0) *(int *)SX_GT_AT(out, 0, r, 0, 0) = bi < x.ne[0] ? bi : 0;
}

__global__ void k_top_k(sx_gt x, sx_gt out, int k) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const sx_i64 r = blockIdx.x;
    float pv = __int_as_float(0x7f800000); /* +inf: everything comes after it */
    int pi = -1;
    for (int j = 0; j < k; j++) {
        float bv = SX_NEG_INF;
        int bi = 0x7fffffff;
        for (int i = threadIdx.x; i < x.ne[0]; i += blockDim.x) {
            const float v = *(const float *)SX_GT_AT(x, i, r, 0, 0);
            const bool after_prev = v < pv || (v == pv && i > pi);
            if (after_prev && before(v, i, bv, bi)) bv = v, bi = i;
        }
        block_best(&bv, &bi, sv, si);
        if (bi == 0x7fffffff) bi = 0; /* only NaNs left: keep the output defined */
        if (threadIdx.x == 0) *(int *)SX_GT_AT(out, j, r, 0, 0) = bi;
        pv = bv, pi = bi;
    }
}

/* GATHER: out[j][r] = x[ids[j][r]][r], one thread per output (grid-stride).
 * An id out of range skips that output and raises SX_GPU_ERR_GATHER_ID,
 * reported at the next sync (as GET_ROWS does). */
__global__ void k_gather(sx_gt x, sx_gt ids, sx_gt out, int *err) {
    const sx_i64 k = ids.ne[0], n = k * ids.ne[1];
    for (sx_i64 i = (sx_i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (sx_i64)gridDim.x * blockDim.x) {
        const sx_i64 j = i % k, r = i / k;
        const int id = *(const int *)SX_GT_AT(ids, j, r, 0, 0);
        if (id < 0 || id >= x.ne[0]) {
            atomicExch(err, SX_GPU_ERR_GATHER_ID);
            continue;
        }
        *(float *)SX_GT_AT(out, j, r, 0, 0) = *(const float *)SX_GT_AT(x, id, r, 0, 0);
    }
}

} /* namespace SX_NS */

#if !defined(__CUDACC_RTC__)
#include "backends/cuda/gpu_internal.h"

namespace SX_NS {

static unsigned select_threads(sx_i64 K) { return K >= 8192 ? 1024 : K >= 1024 ? 256 : 64; }

sx_status launch_ARGMAX(gpu_device *d, sx_tensor *node) {
    const sx_tensor *x = node->src[0];
    if (x->ne[1] == 0) return SX_OK;
    k_argmax<<<(unsigned)x->ne[1], select_threads(x->ne[0]), 0, d->stream>>>(gt_of(x), gt_of(node));
    return SX_OK;
}

sx_status launch_TOP_K(gpu_device *d, sx_tensor *node) {
    const sx_tensor *x = node->src[0];
    if (x->ne[1] == 0) return SX_OK;
    k_top_k<<<(unsigned)x->ne[1], select_threads(x->ne[0]), 0, d->stream>>>(gt_of(x), gt_of(node), node->params.top_k.k);
    return SX_OK;
}

sx_status launch_GATHER(gpu_device *d, sx_tensor *node) {
    const sx_tensor *x = node->src[0], *ids = node->src[1];
    const sx_i64 n = ids->ne[0] * ids->ne[1];
    if (n == 0) return SX_OK;
    const sx_i64 blocks = (n + 127) / 128;
    k_gather<<<(unsigned)(blocks > 1024 ? 1024 : blocks), 128, 0, d->stream>>>(gt_of(x), gt_of(ids), gt_of(node), d->err_dev);
    return SX_OK;
}

} /* namespace SX_NS */
#endif
