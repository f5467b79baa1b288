/* backends/cuda/k_rope.cu — ROPE: rotary position embedding, normal (adjacent
 * pairs, llama GGUF) and NeoX (halves, qwen2/qwen3) layouts, partial rotary
 * (dims >= n_dims are copied). One thread per output element.
 *
 * Layout: x [d, heads, T, ne3] read through its strides, pos i32 [T],
 * optional frequency divisors ff f32 [n_dims/2] (Llama 3.1 rope_freqs; data
 * NULL without), output contiguous. The angle
 * pos * freq_scale * base^(-2i/n_dims) / ff[i] reaches
 * thousands of radians, so it and its sin/cos are computed in double (as the
 * reference does); in f32 the angle alone would be off by ~3e-4 rad.
 * Tested by tests/test_ops.c (both modes, partial dims, factors, positions < 5000)
 * against cpu_ops_ref.c with atol 2e-5. */
#include "backends/cuda/common.cuh"

namespace SX_NS {

__global__ void k_rope(sx_gt x, sx_gt pos, sx_gt ff, sx_gt out, int neox, int n_dims, float freq_base, float freq_scale, sx_i64 n) {
    const int half = n_dims / 2;
    for (sx_i64 idx = (sx_i64)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (sx_i64)gridDim.x * blockDim.x) {
        sx_i64 r = idx;
        const int i0 = (int)(r % x.ne[0]);
        r /= x.ne[0];
        const sx_i64 h = r % x.ne[1];
        r /= x.ne[1];
        const sx_i64 t = r % x.ne[2], i3 = r / x.ne[2];
        float *dst = (float *)SX_GT_AT(out, i0, h, t, i3);
        if (i0 >= n_dims) {
            *dst = *(const float *)SX_GT_AT(x, i0, h, t, i3);
            continue;
        }
        const int i = neox ? (i0 < half ? i0 : i0 - half) : i0 / 2;
        const bool first = neox ? i0 < half : (i0 & 1) == 0;
        const sx_i64 a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        const double position = (double)*(const int *)(pos.data + t * pos.nb[0]);
        const double factor = ff.data ? (double)*(const float *)(ff.data + i * ff.nb[0]) : 1.0;
        const double theta = position * (double)freq_scale * pow((double)freq_base, -2.0 * i / n_dims) / factor;
        double s, c;
        sincos(theta, &s, &c);
        const double x0 = *(const float *)SX_GT_AT(x, a, h, t, i3), x1 = *(const float *)SX_GT_AT(x, b, h, t, i3);
        *dst = (float)(first ? x0 * c - x1 * s : x0 * s + x1 * c);
    }
}

} /* namespace SX_NS */

#if !defined(__CUDACC_RTC__)
#include "backends/cuda/gpu_internal.h"

namespace SX_NS {

sx_status launch_ROPE(gpu_device *d, sx_tensor *node) {
    const sx_tensor *x = node->src[0];
    const sx_params_rope *p = &node->params.rope;
    const sx_i64 n = sx_tensor_nelements(x);
    if (n == 0) return SX_OK;
    sx_i64 blocks = (n + 255) / 256;
    if (blocks > (1 << 20)) blocks = 1 << 20;
    const sx_gt ff = node->src[2] ? gt_of(node->src[2]) : gt_none();
    k_rope<<<(unsigned)blocks, 256, 0, d->stream>>>(gt_of(x), gt_of(node->src[1]), ff, gt_of(node), p->mode == SX_ROPE_NEOX, p->n_dims,
                                                     p->freq_base, p->freq_scale, n);
    return SX_OK;
}

} /* namespace SX_NS */
#endif
