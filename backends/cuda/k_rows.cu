/* backends/cuda/k_rows.cu — GET_ROWS (embedding lookup, dequantising any
 * dtype to f32) and SET_ROWS (writing f32 rows into an f32/f16 KV cache at
 * given slots, or quantising them into a q8_0 one). Grid: x over the row's
 * elements, y over the ids.
 *
 * q8_0 SET_ROWS (k_set_rows_q8_0): one logical warp per 32-element block,
 * lane j owns element j, with the arithmetic of sx_dtype_quantize_row
 * (ir/dtype.c) written as IEEE intrinsics so no fast-math flag can change a
 * bit: amax = max |x| (a warp max: exact in any order), d = amax / 127,
 * id = d > 0 ? 1 / d : 0, q = clamp(rint(x * id), -127, 127) (round half to
 * even, as lrintf), and d stored as f16 rounded to nearest even. Blocks are
 * 34 bytes (only 2-byte aligned), so d is a 16-bit store and qs 8-bit ones.
 *
 * Layout: the table/cache rows are contiguous (checked by ir/ops.c), row i
 * at data + i * nb1; ids are i32 with any stride. An id out of range cannot
 * fail the launch (no host sync inside compute): the kernel skips the row
 * and raises an error word that the host reports at the next sync.
 * SET_ROWS writes through the node, a view of the cache root, so later
 * nodes reading the cache see the new rows (same stream, in order).
 * Tested by tests/test_ops.c for every dtype against cpu_ops_ref.c; the
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

/* q8_0 destination: warp w of the block quantises block blockIdx.x * 8 + w
 * (stride gridDim.x * 8) of row ids[blockIdx.y]; src row length ne0 % 32 == 0
 * (gpu_supports). The loop bound is warp-uniform, so every shuffle has all
 * 32 lanes. */
__global__ void k_set_rows_q8_0(sx_gt dst, sx_gt src, sx_gt ids, int *err) {
    const sx_i64 i = blockIdx.y;
    const int id = *(const int *)(ids.data + i * ids.nb[0]);
    if (id < 0 || id >= dst.ne[1]) {
        if (threadIdx.x == 0 && blockIdx.x == 0) atomicExch(err, SX_GPU_ERR_SET_ROWS_ID);
        return;
    }
    const int lane = threadIdx.x % SX_WARP, w = threadIdx.x / SX_WARP, wpb = blockDim.x / SX_WARP;
    const sx_i64 nblk = src.ne[0] / SX_QK;
    sx_u8 *row = (sx_u8 *)dst.data + (sx_i64)id * dst.nb[1];
    for (sx_i64 b = (sx_i64)blockIdx.x * wpb + w; b < nblk; b += (sx_i64)gridDim.x * wpb) {
        const float x = *(const float *)(src.data + (b * SX_QK + lane) * src.nb[0] + i * src.nb[1]);
        const float amax = warp_max(fabsf(x));
        /* 1 / d as an IEEE division: some HIP headers map __frcp_rn to the
         * approximate v_rcp_f32 */
        const float d = __fdiv_rn(amax, 127.0f), id_ = d > 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
        const int q = __float2int_rn(__fmul_rn(x, id_));
        sx_u8 *blk = row + b * SX_Q8_0_BYTES;
        if (lane == 0) *(sx_u16 *)blk = f2h(d);
        blk[2 + lane] = (sx_u8)(sx_i8)(q < -127 ? -127 : q > 127 ? 127 : q);
    }
}

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
        k_set_rows_q8_0<<<rows_grid(src->ne[0], ids->ne[0]), 256, 0, d->stream>>>(gt_of(node), gt_of(src), gt_of(ids), d->err_dev);
        return SX_OK;
    }
    k_set_rows<<<rows_grid(src->ne[0], ids->ne[0]), 256, 0, d->stream>>>(gt_of(node), (int)node->dtype, gt_of(src), gt_of(ids), d->err_dev);
    return SX_OK;
}

} /* namespace SX_NS */
#endif
