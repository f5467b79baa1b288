/* backends/cuda/k_rows.cu — GET_ROWS (embedding lookup, dequantising any
 * dtype to f32) and SET_ROWS (writing f32 rows into an f32/f16 KV cache at
 * given slots). Grid: x over the row's elements, y over the ids.
 *
 * Layout: the table/cache rows are contiguous (checked by ir/ops.c), row i
 * at data + i * nb1; ids are i32 with any stride. An id out of range cannot
 * fail the launch (no host sync inside compute): the kernel skips the row
 * and raises an error word that the host reports at the next sync.
 * SET_ROWS writes through the node, a view of the cache root, so later
 * nodes reading the cache see the new rows (same stream, in order).
 * Tested by tests/test_ops.c for every dtype against cpu_ops_ref.c. */
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
    k_set_rows<<<rows_grid(src->ne[0], ids->ne[0]), 256, 0, d->stream>>>(gt_of(node), (int)node->dtype, gt_of(src), gt_of(ids), d->err_dev);
    return SX_OK;
}

} /* namespace SX_NS */
#endif
