/* backends/cuda/k_rows.cu — GET_ROWS (embedding lookup, dequantising any
 * dtype to f32) and SET_ROWS (writing f32 rows into an f32/f16 KV cache at
 * given slots, or quantising them into a q8_0 or q4_0 one). Grid: x over the
 * row's elements, y over the ids.
 *
 * q8_0 SET_ROWS (k_set_rows_quant<SXT_Q8_0>): one logical warp per 32-element block,
 * lane j owns element j, with the arithmetic of sx_dtype_quantize_row
 * (ir/dtype.c) written as IEEE intrinsics so no fast-math flag can change a
 * bit: amax = max |x| (a warp max: exact in any order), d = amax / 127,
 * id = d > 0 ? 1 / d : 0, q = clamp(rint(x * id), -127, 127) (round half to
 * even, as lrintf), and d stored as f16 rounded to nearest even. Blocks are
 * 34 bytes (only 2-byte aligned), so d is a 16-bit store and qs 8-bit ones.
 *
 * q4_0 SET_ROWS (k_set_rows_quant<SXT_Q4_0>): the same shape. mx = the value of largest
 * |x|, the lowest lane on ties (the CPU's first; a warp reduction of (|x|,
 * lane), exact in any order), d = mx / -8, a d that rounds to zero in f16
 * stored as the zero block (d = -0, codes 8: what its dequantised values
 * quantise to, so KV moves keep the bytes), else id = 1 / d and q =
 * clamp(rint(x * id) + 8, 0, 15); lane j < 16 packs its code with lane j +
 * 16's into byte j. Blocks are 18 bytes.
 *
 * Layout: the table/cache rows are contiguous (checked by ir/ops.c), row i
 * at data + i * nb1; ids are i32 with any stride. An id out of range cannot
 * fail the launch (no host sync inside compute): the kernel skips the row
 * and raises an error word that the host reports at the next sync.
 * SET_ROWS writes through the node, a view of the cache root, so later
 * nodes reading the cache see the new rows (same stream, in order).
 * Tested by tests/test_ops.c for every dtype against cpu_ops_ref.c (q4_0:
 * edge rows of zero / subnormal scales, ties, positive maxima, and KV moves
 * byte for byte); the
 * q8_0 quantisation's edges (ties, zero blocks, f16 scale subnormal / zero /
 * inf) byte for byte by backends/cuda/emu/q8_0_set_rows.c (CPU emulation). */
#include "backends/cuda/common.cuh"

namespace SX_NS {

__global__ void k_get_rows(sx_gt tab, int tdt, sx_gt ids, sx_gt out, int *err) {
    const sx_i64 i = blockIdx.y;
    const int id = *(const int *)(ids.data + i * ids.nb[0]);
    if (id < 0 || id >= tab.ne[1]) {
        if (threadIdx.x == 0 && blockIdx.x == 0) atomicExch(err, SX_GPU_ERR_GET_ROWS_ID);
        return;
    }
    const sx_u8 *row = (const sx_u8 *)tab.data + (sx_i64)id * tab.nb[1];
    for (sx_i64 k = (sx_i64)blockIdx.x * blockDim.x + threadIdx.x; k < tab.ne[0]; k += (sx_i64)gridDim.x * blockDim.x)
        *(float *)(out.data + k * out.nb[0] + i * out.nb[1]) = dq_elem_rt(row, (int)k, tdt);
}

__global__ void k_set_rows(sx_gt dst, int ddt, sx_gt src, sx_gt ids, int *err) {
    const sx_i64 i = blockIdx.y;
    const int id = *(const int *)(ids.data + i * ids.nb[0]);
    if (id < 0 || id >= dst.ne[1]) {
        if (threadIdx.x == 0 && blockIdx.x == 0) atomicExch(err, SX_GPU_ERR_SET_ROWS_ID);
        return;
    }
    for (sx_i64 k = (sx_i64)blockIdx.x * blockDim.x + threadIdx.x; k < src.ne[0]; k += (sx_i64)gridDim.x * blockDim.x)
        store_f(dst.data + k * dst.nb[0] + (sx_i64)id * dst.nb[1], ddt, *(const float *)(src.data + k * src.nb[0] + i * src.nb[1]));
}

/* One 32-element block into q8_0, lane j owning element j. */
static __device__ __forceinline__ void quant_lane_q8_0(float x, int lane, sx_u8 *blk) {
    const float amax = warp_max(fabsf(x));
    /* 1 / d as an IEEE division: some HIP headers map __frcp_rn to the
     * approximate v_rcp_f32 */
    const float d = __fdiv_rn(amax, 127.0f), id_ = d > 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
    const int q = __float2int_rn(__fmul_rn(x, id_));
    if (lane == 0) *(sx_u16 *)blk = f2h(d);
    blk[2 + lane] = (sx_u8)(sx_i8)(q < -127 ? -127 : q > 127 ? 127 : q);
}

/* One 32-element block into q4_0, lane j owning element j. */
static __device__ __forceinline__ void quant_lane_q4_0(float x, int lane, sx_u8 *blk) {
    float mx = x;
    int at = lane;
    for (int m = SX_WARP / 2; m > 0; m >>= 1) { /* (|x|, -lane) lexicographic max */
        const float o = sx_shfl_xor(mx, m);
        const int oat = sx_shfl_xor(at, m);
        if (fabsf(o) > fabsf(mx) || (fabsf(o) == fabsf(mx) && oat < at)) mx = o, at = oat;
    }
    const float d = __fmul_rn(mx, -0.125f); /* = mx / -8 exactly */
    const sx_u16 dh = f2h(d);
    const bool zero = (dh & 0x7fffu) == 0;
    const float id_ = zero ? 0.0f : __fdiv_rn(1.0f, d);
    int q = __float2int_rn(__fmul_rn(x, id_)) + 8;
    q = q < 0 ? 0 : q > 15 ? 15 : q;
    const int hi = sx_shfl_xor(q, 16); /* lane j < 16: the code of element j + 16 */
    if (lane == 0) *(sx_u16 *)blk = zero ? (sx_u16)0x8000u : dh;
    if (lane < SX_QK / 2) blk[2 + lane] = (sx_u8)(q | (hi << 4));
}

/* q8_0 / q4_0 destination (DT): warp w of the block quantises block
 * blockIdx.x * 8 + w (stride gridDim.x * 8) of row ids[blockIdx.y]; src row
 * length ne0 % 32 == 0 (gpu_supports). The loop bound is warp-uniform, so
 * every shuffle has all 32 lanes. */
template <int DT> __global__ void k_set_rows_quant(sx_gt dst, sx_gt src, sx_gt ids, int *err) {
    const sx_i64 i = blockIdx.y;
    const int id = *(const int *)(ids.data + i * ids.nb[0]);
    if (id < 0 || id >= dst.ne[1]) {
        if (threadIdx.x == 0 && blockIdx.x == 0) atomicExch(err, SX_GPU_ERR_SET_ROWS_ID);
        return;
    }
    const int lane = threadIdx.x % SX_WARP, w = threadIdx.x / SX_WARP, wpb = blockDim.x / SX_WARP;
    const sx_i64 nblk = src.ne[0] / SX_QK, bytes = DT == SXT_Q8_0 ? SX_Q8_0_BYTES : SX_Q4_0_BYTES;
    sx_u8 *row = (sx_u8 *)dst.data + (sx_i64)id * dst.nb[1];
    for (sx_i64 b = (sx_i64)blockIdx.x * wpb + w; b < nblk; b += (sx_i64)gridDim.x * wpb) {
        const float x = *(const float *)(src.data + (b * SX_QK + lane) * src.nb[0] + i * src.nb[1]);
        if (DT == SXT_Q8_0) quant_lane_q8_0(x, lane, row + b * bytes);
        else quant_lane_q4_0(x, lane, row + b * bytes);
    }
}
template __global__ void k_set_rows_quant<SXT_Q8_0>(sx_gt, sx_gt, sx_gt, int *);
template __global__ void k_set_rows_quant<SXT_Q4_0>(sx_gt, sx_gt, sx_gt, int *);

} /* namespace SX_NS */

#if !defined(__CUDACC_RTC__)
#include "backends/cuda/gpu_internal.h"

namespace SX_NS {

static dim3 rows_grid(sx_i64 K, sx_i64 n) {
    sx_i64 bx = (K + 255) / 256;
    return dim3((unsigned)(bx > 64 ? 64 : bx < 1 ? 1 : bx), (unsigned)n, 1);
}

sx_status launch_GET_ROWS(gpu_device *d, sx_tensor *node) {
    const sx_tensor *tab = node->src[0], *ids = node->src[1];
    if (ids->ne[0] == 0) return SX_OK;
    k_get_rows<<<rows_grid(tab->ne[0], ids->ne[0]), 256, 0, d->stream>>>(gt_of(tab), (int)tab->dtype, gt_of(ids), gt_of(node), d->err_dev);
    return SX_OK;
}

sx_status launch_SET_ROWS(gpu_device *d, sx_tensor *node) {
    const sx_tensor *src = node->src[1], *ids = node->src[2];
    if (ids->ne[0] == 0) return SX_OK;
    if (node->dtype == SX_DTYPE_Q8_0) { /* 8 warps = 8 blocks of 32 per CUDA block */
        k_set_rows_quant<SXT_Q8_0><<<rows_grid(src->ne[0], ids->ne[0]), 256, 0, d->stream>>>(gt_of(node), gt_of(src), gt_of(ids), d->err_dev);
        return SX_OK;
    }
    if (node->dtype == SX_DTYPE_Q4_0) {
        k_set_rows_quant<SXT_Q4_0><<<rows_grid(src->ne[0], ids->ne[0]), 256, 0, d->stream>>>(gt_of(node), gt_of(src), gt_of(ids), d->err_dev);
        return SX_OK;
    }
    k_set_rows<<<rows_grid(src->ne[0], ids->ne[0]), 256, 0, d->stream>>>(gt_of(node), (int)node->dtype, gt_of(src), gt_of(ids), d->err_dev);
    return SX_OK;
}

} /* namespace SX_NS */
#endif
