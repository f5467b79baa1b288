/* backends/cuda/k_attention.cu — ATTENTION over a KV cache: GQA, causal or
 * tree mask over the T new tokens, the n_past prefix visible to all, f16 or
 * f32 K/V, single pass with an online softmax (no score matrix in memory).
 *
 * Grid: one block of 8 logical warps per (head, query). Each warp walks the
 * key slots j = warp, warp + 8, ...; per slot the lanes split the head dim
 * (lane owns dims lane + 32 r), reduce q.k with shuffles and update their
 * running max m, sum l and output accumulator; the 8 partial states are
 * merged through shared memory at the end. Keys past n_past + t are never
 * visited in causal mode. Head dim <= 32 * R (R = 1, 2, 4, 8: up to 256).
 * Layout: q [d, nh, T] f32, k/v [d, nkv, n_kv] views of the cache (any slot
 * stride, rows contiguous), mask f32 [T, T] (0 = visible), output [d, nh, T].
 * Semantics (ir/ops.def): slot j < n_past always visible; slot n_past + i
 * visible to query t when mask[t][i] == 0, or i <= t without a mask; a query
 * that sees nothing outputs zeros. Tested by tests/test_ops.c (decode, GQA,
 * MQA, prefill from empty, tree masks; --full adds 300 past slots, d = 128)
 * against cpu_ops_ref.c with atol 2e-5. */
#include "backends/cuda/common.cuh"

namespace SX_NS {

#define ATTN_WARPS 8

template <int KVT> static __device__ __forceinline__ float kv_load(const char *p) {
    return KVT == SXT_F16 ? h2f(*(const sx_u16 *)p) : *(const float *)p;
}

template <int R, int KVT>
__global__ void __launch_bounds__(ATTN_WARPS * SX_WARP) k_attention(sx_gt q, sx_gt k, sx_gt v, sx_gt mask, sx_gt out, int n_past, float scale, int group) {
    __shared__ float s_m[ATTN_WARPS], s_l[ATTN_WARPS];
    __shared__ float s_acc[ATTN_WARPS][R * SX_WARP];
    const int h = blockIdx.x, t = blockIdx.y;
    const int lane = threadIdx.x % SX_WARP, w = threadIdx.x / SX_WARP;
    const int d = (int)q.ne[0], kh = h / group, n_kv = (int)k.ne[2];

    float qr[R], acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int c = lane + SX_WARP * r;
        qr[r] = c < d ? *(const float *)SX_GT_AT(q, c, h, t, 0) : 0.0f;
        acc[r] = 0.0f;
    }
    float m = SX_NEG_INF, l = 0.0f;
    const int j_end = mask.data ? n_kv : min(n_kv, n_past + t + 1);
    const char *kbase = k.data + kh * k.nb[1], *vbase = v.data + kh * v.nb[1];
    for (int j = w; j < j_end; j += ATTN_WARPS) {
        if (j >= n_past) {
            const int i = j - n_past;
            const bool visible = mask.data ? *(const float *)(mask.data + i * mask.nb[0] + t * mask.nb[1]) == 0.0f : i <= t;
            if (!visible) continue; /* warp-uniform */
        }
        const char *kp = kbase + (sx_i64)j * k.nb[2];
        float s = 0.0f;
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int c = lane + SX_WARP * r;
            if (c < d) s += qr[r] * kv_load<KVT>(kp + c * k.nb[0]);
        }
        s = warp_sum(s) * scale;
        const float m_new = fmaxf(m, s);
        const float corr = expf(m - m_new), p = expf(s - m_new);
        l = l * corr + p;
        const char *vp = vbase + (sx_i64)j * v.nb[2];
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int c = lane + SX_WARP * r;
            acc[r] = acc[r] * corr + (c < d ? p * kv_load<KVT>(vp + c * v.nb[0]) : 0.0f);
        }
        m = m_new;
    }
    if (lane == 0) s_m[w] = m, s_l[w] = l;
#pragma unroll
    for (int r = 0; r < R; r++) s_acc[w][lane + SX_WARP * r] = acc[r];
    __syncthreads();
    float M = SX_NEG_INF;
#pragma unroll
    for (int i = 0; i < ATTN_WARPS; i++) M = fmaxf(M, s_m[i]);
    float L = 0.0f, f[ATTN_WARPS];
#pragma unroll
    for (int i = 0; i < ATTN_WARPS; i++) {
        f[i] = s_m[i] == SX_NEG_INF ? 0.0f : expf(s_m[i] - M);
        L += s_l[i] * f[i];
    }
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float o = 0.0f;
#pragma unroll
        for (int i = 0; i < ATTN_WARPS; i++) o += s_acc[i][c] * f[i];
        *(float *)SX_GT_AT(out, c, h, t, 0) = L > 0.0f ? o / L : 0.0f;
    }
}

#define SX_ATTN_INST(R, KVT) template __global__ void k_attention<R, KVT>(sx_gt, sx_gt, sx_gt, sx_gt, sx_gt, int, float, int);
SX_ATTN_INST(1, SXT_F32)
SX_ATTN_INST(2, SXT_F32)
SX_ATTN_INST(4, SXT_F32)
SX_ATTN_INST(8, SXT_F32)
SX_ATTN_INST(1, SXT_F16)
SX_ATTN_INST(2, SXT_F16)
SX_ATTN_INST(4, SXT_F16)
SX_ATTN_INST(8, SXT_F16)

} /* namespace SX_NS */

#if !defined(__CUDACC_RTC__)
#include "backends/cuda/gpu_internal.h"

namespace SX_NS {

template <int KVT> static void attn_launch(int R, dim3 grid, cudaStream_t st, sx_gt q, sx_gt k, sx_gt v, sx_gt m, sx_gt o, int n_past, float scale, int group) {
    const dim3 block(ATTN_WARPS * SX_WARP);
    switch (R) {
    case 1: k_attention<1, KVT><<<grid, block, 0, st>>>(q, k, v, m, o, n_past, scale, group); break;
    case 2: k_attention<2, KVT><<<grid, block, 0, st>>>(q, k, v, m, o, n_past, scale, group); break;
    case 4: k_attention<4, KVT><<<grid, block, 0, st>>>(q, k, v, m, o, n_past, scale, group); break;
    default: k_attention<8, KVT><<<grid, block, 0, st>>>(q, k, v, m, o, n_past, scale, group); break;
    }
}

sx_status launch_ATTENTION(gpu_device *d, sx_tensor *node) {
    const sx_tensor *q = node->src[0], *k = node->src[1], *v = node->src[2], *mask = node->src[3];
    const int dh = (int)q->ne[0], nh = (int)q->ne[1], T = (int)q->ne[2];
    const int R = dh <= 32 ? 1 : dh <= 64 ? 2 : dh <= 128 ? 4 : 8;
    if (nh == 0 || T == 0) return SX_OK;
    const dim3 grid((unsigned)nh, (unsigned)T);
    const int group = (int)(q->ne[1] / k->ne[1]);
    const sx_gt mg = mask ? gt_of(mask) : gt_none();
    if (k->dtype == SX_DTYPE_F16)
        attn_launch<SXT_F16>(R, grid, d->stream, gt_of(q), gt_of(k), gt_of(v), mg, gt_of(node), node->params.attn.n_past, node->params.attn.scale, group);
    else
        attn_launch<SXT_F32>(R, grid, d->stream, gt_of(q), gt_of(k), gt_of(v), mg, gt_of(node), node->params.attn.n_past, node->params.attn.scale, group);
    return SX_OK;
}

} /* namespace SX_NS */
#endif
