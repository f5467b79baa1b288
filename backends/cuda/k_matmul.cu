/* backends/cuda/k_matmul.cu — MATMUL y[m][n] = dot(w row n, x col m) for
 * weights of every dtype (f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 iq4_nl q2_k q3_k
 * q4_k q5_k q6_k iq4_xs).
 *
 * Two paths:
 *  - matvec (M <= 8: decode, short verify batches): one logical warp per
 *    weight row; lanes take neighbouring chunks of the row (qchunk<T> in
 *    common.cuh: 16-byte loads for f32/f16/bf16, 2/4-byte loads for blocks),
 *    dequantise in registers and multiply with up to 8 activation columns
 *    (float4 loads), so each weight byte is read once. Needs x columns and
 *    w rows aligned (checked by the launcher).
 *  - tiled (M > 8: prefill, or anything the matvec cannot take): 64x64
 *    output tile per 256-thread block, K in steps of 32; the weight tile is
 *    dequantised once into shared memory and reused by 64 columns, 4x4
 *    outputs per thread, f32 FMA.
 * Layout: w [K, N] rows contiguous (nb1 bytes apart); x [K, M] f32 with
 * contiguous columns (nb1 bytes apart); y [N, M] contiguous (the node).
 * Accumulation in f32 (the reference uses double; the tolerance is 2e-5
 * of sum|w x| for plain weights, 1/127 for quantised ones).
 * MUL_MAT_ID (mixture of experts) runs each pick (row r, pick j) as one
 * M = 1 column through the same device code (matvec_row, or the tiled
 * kernel's order where the matvec cannot take it): k_mul_mat_id.
 * Tested by tests/test_ops.c (decode M = 1, strided x, M = 19, --full adds
 * 130x67; MUL_MAT_ID decode and verify shapes) against cpu_ops_ref.c; the
 * bits of MUL_MAT_ID against MATMUL by backends/cuda/emu/mmid_invariance.c;
 * decode speed by `specexit bench` and tools/gpu-check.sh (weights bytes / decode time vs peak bandwidth). */
#include "backends/cuda/common.cuh"

namespace SX_NS {

#define MV_WARPS 4   /* rows per 128-thread block */
#define TBM 64       /* tiled: weight rows per block */
#define TBN 64       /* tiled: activation columns per block */
#define TBK 32       /* tiled: K step */

/* Row n of y (up to M columns) as the matvec computes it, for the calling
 * logical warp: lane takes chunks lane, lane + SX_WARP, ..., then a warp sum.
 * Shared by k_matvec and k_mul_mat_id, so a MUL_MAT_ID pick gives bit for
 * bit what MATMUL gives for that column. */
template <int T, int M>
static __device__ __forceinline__ void matvec_row(const sx_u8 *__restrict__ row, int nchunks, const float *__restrict__ x, sx_i64 x_ld,
                                                  int mcount, float *__restrict__ y, sx_i64 y_ld, int n, int lane) {
    typedef qchunk<T> Q;
    float acc[M];
#pragma unroll
    for (int m = 0; m < M; m++) acc[m] = 0.0f;
    for (int c = lane; c < nchunks; c += SX_WARP) {
        float wv[Q::CH];
        int kp[Q::RUNS];
        Q::decode(row, c, wv, kp);
#pragma unroll
        for (int m = 0; m < M; m++) {
            if (m < mcount) {
                const float *xc = x + (sx_i64)m * x_ld;
#pragma unroll
                for (int r = 0; r < Q::RUNS; r++) {
                    const float4 xv = *(const float4 *)(xc + kp[r]);
                    acc[m] += wv[4 * r] * xv.x + wv[4 * r + 1] * xv.y + wv[4 * r + 2] * xv.z + wv[4 * r + 3] * xv.w;
                }
            }
        }
    }
#pragma unroll
    for (int m = 0; m < M; m++) acc[m] = warp_sum(acc[m]);
    if (lane == 0) {
#pragma unroll
        for (int m = 0; m < M; m++)
            if (m < mcount) y[(sx_i64)m * y_ld + n] = acc[m];
    }
}

template <int T, int M>
__global__ void __launch_bounds__(MV_WARPS * SX_WARP) k_matvec(const sx_u8 *__restrict__ w, sx_i64 w_nb1, int N, int nchunks,
                                                               const float *__restrict__ x, sx_i64 x_ld, int mcount, float *__restrict__ y,
                                                               sx_i64 y_ld) {
    const int lane = threadIdx.x % SX_WARP;
    const int n = blockIdx.x * MV_WARPS + threadIdx.x / SX_WARP;
    if (n >= N) return; /* the whole logical warp leaves together */
    const int m0 = blockIdx.y * M; /* column group: columns m0 .. m0 + M - 1 of mcount */
    matvec_row<T, M>(w + (sx_i64)n * w_nb1, nchunks, x + (sx_i64)m0 * x_ld, x_ld, min(M, mcount - m0), y + (sx_i64)m0 * y_ld, y_ld, n, lane);
}

/* MUL_MAT_ID: block (bx, j, r) computes rows bx * MV_WARPS .. + MV_WARPS - 1
 * of pick j of row r: expert e = ids[j][r] (w + e * w_nb2), input column
 * x[:, X == 1 ? 0 : j, r], output y[:, j, r]. Each pick is one MATMUL column
 * with M = 1, and takes the path mm_launch would take for it (decided here
 * per pick, from the same conditions as matvec_fits): aligned -> the matvec
 * row (matvec_row<T, 1>, same chunks, same sums); otherwise the tiled
 * kernel's order for one column (acc += w[k] * x[k], k = 0..K-1, f32), so
 * the bits never depend on the batch. An expert id out of range skips the
 * pick and raises SX_GPU_ERR_MUL_MAT_ID_ID (reported at the next sync). */
template <int T>
__global__ void __launch_bounds__(MV_WARPS * SX_WARP) k_mul_mat_id(const sx_u8 *__restrict__ w, sx_i64 w_nb1, sx_i64 w_nb2, int K, int N,
                                                                   int E, sx_gt x, sx_gt ids, sx_gt y, int *err) {
    typedef qchunk<T> Q;
    const int j = blockIdx.y, r = blockIdx.z;
    const int e = *(const int *)SX_GT_AT(ids, j, r, 0, 0);
    if (e < 0 || e >= E) {
        if (threadIdx.x == 0 && blockIdx.x == 0) atomicExch(err, SX_GPU_ERR_MUL_MAT_ID_ID);
        return;
    }
    const int lane = threadIdx.x % SX_WARP;
    const int n = blockIdx.x * MV_WARPS + threadIdx.x / SX_WARP;
    if (n >= N) return; /* the whole logical warp leaves together */
    const sx_u8 *we = w + (sx_i64)e * w_nb2;
    const float *xc = (const float *)SX_GT_AT(x, 0, x.ne[1] == 1 ? 0 : j, r, 0);
    float *yc = (float *)SX_GT_AT(y, 0, j, r, 0);
    const bool mv = K % Q::CH == 0 && (unsigned long long)we % Q::ALIGN == 0 && w_nb1 % Q::ALIGN == 0 && (unsigned long long)xc % 16 == 0;
    if (mv) {
        matvec_row<T, 1>(we + (sx_i64)n * w_nb1, K / Q::CH, xc, 0, 1, yc, 0, n, lane);
    } else if (lane == 0) {
        const sx_u8 *row = we + (sx_i64)n * w_nb1;
        float acc = 0.0f;
        for (int k = 0; k < K; k++) acc += dq_elem<T>(row, k) * xc[k];
        yc[n] = acc;
    }
}

template <int T>
__global__ void __launch_bounds__(256) k_matmul_tiled(const sx_u8 *__restrict__ w, sx_i64 w_nb1, int K, int N, const float *__restrict__ x,
                                                      sx_i64 x_ld, int M, float *__restrict__ y, sx_i64 y_ld) {
    __shared__ float ws[TBK][TBM + 1]; /* [k][n], padded against bank conflicts */
    __shared__ float xs[TBK][TBN + 1]; /* [k][m] */
    const int n0 = blockIdx.x * TBM, m0 = blockIdx.y * TBN;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    for (int k0 = 0; k0 < K; k0 += TBK) {
        for (int e = threadIdx.x; e < TBM * TBK; e += blockDim.x) {
            const int r = e / TBK, kk = e % TBK, n = n0 + r, k = k0 + kk;
            ws[kk][r] = n < N && k < K ? dq_elem<T>(w + (sx_i64)n * w_nb1, k) : 0.0f;
        }
        for (int e = threadIdx.x; e < TBN * TBK; e += blockDim.x) {
            const int c = e / TBK, kk = e % TBK, m = m0 + c, k = k0 + kk;
            xs[kk][c] = m < M && k < K ? x[(sx_i64)m * x_ld + k] : 0.0f;
        }
        __syncthreads();
#pragma unroll 8
        for (int kk = 0; kk < TBK; kk++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = ws[kk][tx + 16 * i], b[i] = xs[kk][ty + 16 * i];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const int m = m0 + ty + 16 * j;
        if (m >= M) continue;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int n = n0 + tx + 16 * i;
            if (n < N) y[(sx_i64)m * y_ld + n] = acc[i][j];
        }
    }
}

/* explicit instantiations: every variant the launcher uses (and NVRTC checks) */
#define SX_MV_INST(T, M)                                                                                                   \
    template __global__ void k_matvec<T, M>(const sx_u8 *__restrict__, sx_i64, int, int, const float *__restrict__, sx_i64, int, \
                                            float *__restrict__, sx_i64);
#define SX_MM_INST(T)                                                                                                       \
    SX_MV_INST(T, 1)                                                                                                        \
    SX_MV_INST(T, 2)                                                                                                        \
    SX_MV_INST(T, 4)                                                                                                        \
    SX_MV_INST(T, 8)                                                                                                        \
    template __global__ void k_matmul_tiled<T>(const sx_u8 *__restrict__, sx_i64, int, int, const float *__restrict__, sx_i64, int, \
                                               float *__restrict__, sx_i64);                                                     \
    template __global__ void k_mul_mat_id<T>(const sx_u8 *__restrict__, sx_i64, sx_i64, int, int, int, sx_gt, sx_gt, sx_gt, int *);
SX_MM_INST(SXT_F32)
SX_MM_INST(SXT_F16)
SX_MM_INST(SXT_BF16)
SX_MM_INST(SXT_Q8_0)
SX_MM_INST(SXT_Q4_0)
SX_MM_INST(SXT_Q4_1)
SX_MM_INST(SXT_Q4_K)
SX_MM_INST(SXT_Q6_K)
SX_MM_INST(SXT_Q5_0)
SX_MM_INST(SXT_Q5_1)
SX_MM_INST(SXT_Q5_K)
SX_MM_INST(SXT_Q2_K)
SX_MM_INST(SXT_Q3_K)
SX_MM_INST(SXT_IQ4_NL)
SX_MM_INST(SXT_IQ4_XS)

} /* namespace SX_NS */

#if !defined(__CUDACC_RTC__)
#include "backends/cuda/gpu_internal.h"

/* the q5 block layouts and ids (the others are checked in gpu_backend.cu) */
static_assert(SX_Q5_0_BYTES == sizeof(sx_block_q5_0) && SX_Q5_1_BYTES == sizeof(sx_block_q5_1) &&
                  SX_Q5_K_BYTES == sizeof(sx_block_q5_k) && (int)SXT_Q5_K == (int)SX_DTYPE_Q5_K,
              "q5 block sizes / ids match ir/quant_blocks.h and ir/dtype.def");
static_assert(SX_Q2_K_BYTES == sizeof(sx_block_q2_k) && SX_Q3_K_BYTES == sizeof(sx_block_q3_k) &&
                  SX_IQ4_NL_BYTES == sizeof(sx_block_iq4_nl) && SX_IQ4_XS_BYTES == sizeof(sx_block_iq4_xs) &&
                  (int)SXT_Q2_K == (int)SX_DTYPE_Q2_K && (int)SXT_IQ4_XS == (int)SX_DTYPE_IQ4_XS,
              "low-bit block sizes / ids match ir/quant_blocks.h and ir/dtype.def");

namespace SX_NS {

typedef struct {
    const sx_u8 *w;
    sx_i64 w_nb1;
    int K, N, M;
    const float *x;
    sx_i64 x_ld;
    float *y;
    sx_i64 y_ld;
} mm_args;

template <int T> static bool matvec_fits(const mm_args &a) {
    typedef qchunk<T> Q;
    return a.M <= 8 && a.K % Q::CH == 0 && (uintptr_t)a.w % Q::ALIGN == 0 && a.w_nb1 % Q::ALIGN == 0 && (uintptr_t)a.x % 16 == 0 &&
           a.x_ld % 4 == 0;
}

template <int T> static void mm_launch(const mm_args &a, cudaStream_t st) {
    typedef qchunk<T> Q;
    /* batch invariance (backends/backend.h): those batches as groups of 8
     * matvec columns (grid.y), each column computed like M = 1 */
    if (a.M > 8 && (a.M <= SX_MATMUL_INVARIANT_M || (sx_i64)a.N * a.K <= SX_MATMUL_INVARIANT_SMALL_W) && cdiv(a.M, 8) <= 65535) {
        mm_args c = a;
        c.M = 8;
        if (matvec_fits<T>(c)) {
            const dim3 grid(cdiv(a.N, MV_WARPS), cdiv(a.M, 8)), block(MV_WARPS * SX_WARP);
            k_matvec<T, 8><<<grid, block, 0, st>>>(a.w, a.w_nb1, a.N, a.K / Q::CH, a.x, a.x_ld, a.M, a.y, a.y_ld);
            return;
        }
    }
    if (matvec_fits<T>(a)) {
        const dim3 grid(cdiv(a.N, MV_WARPS)), block(MV_WARPS * SX_WARP);
        const int nch = a.K / Q::CH;
        if (a.M == 1) k_matvec<T, 1><<<grid, block, 0, st>>>(a.w, a.w_nb1, a.N, nch, a.x, a.x_ld, a.M, a.y, a.y_ld);
        else if (a.M == 2) k_matvec<T, 2><<<grid, block, 0, st>>>(a.w, a.w_nb1, a.N, nch, a.x, a.x_ld, a.M, a.y, a.y_ld);
        else if (a.M <= 4) k_matvec<T, 4><<<grid, block, 0, st>>>(a.w, a.w_nb1, a.N, nch, a.x, a.x_ld, a.M, a.y, a.y_ld);
        else k_matvec<T, 8><<<grid, block, 0, st>>>(a.w, a.w_nb1, a.N, nch, a.x, a.x_ld, a.M, a.y, a.y_ld);
        return;
    }
    const dim3 grid(cdiv(a.N, TBM), cdiv(a.M, TBN));
    k_matmul_tiled<T><<<grid, 256, 0, st>>>(a.w, a.w_nb1, a.K, a.N, a.x, a.x_ld, a.M, a.y, a.y_ld);
}

sx_status launch_MATMUL(gpu_device *d, sx_tensor *node) {
    const sx_tensor *w = node->src[0], *x = node->src[1];
    const sx_gt wg = gt_of(w), xg = gt_of(x), yg = gt_of(node);
    mm_args a;
    a.w = (const sx_u8 *)wg.data;
    a.w_nb1 = (sx_i64)w->nb[1];
    a.K = (int)w->ne[0];
    a.N = (int)w->ne[1];
    a.M = (int)x->ne[1];
    a.x = (const float *)xg.data;
    a.x_ld = (sx_i64)(x->nb[1] / sizeof(float));
    a.y = (float *)yg.data;
    a.y_ld = (sx_i64)(node->nb[1] / sizeof(float));
    if (a.N == 0 || a.M == 0) return SX_OK;
    switch (w->dtype) {
    case SX_DTYPE_F32: mm_launch<SXT_F32>(a, d->stream); break;
    case SX_DTYPE_F16: mm_launch<SXT_F16>(a, d->stream); break;
    case SX_DTYPE_BF16: mm_launch<SXT_BF16>(a, d->stream); break;
    case SX_DTYPE_Q8_0: mm_launch<SXT_Q8_0>(a, d->stream); break;
    case SX_DTYPE_Q4_0: mm_launch<SXT_Q4_0>(a, d->stream); break;
    case SX_DTYPE_Q4_1: mm_launch<SXT_Q4_1>(a, d->stream); break;
    case SX_DTYPE_Q4_K: mm_launch<SXT_Q4_K>(a, d->stream); break;
    case SX_DTYPE_Q6_K: mm_launch<SXT_Q6_K>(a, d->stream); break;
    case SX_DTYPE_Q5_0: mm_launch<SXT_Q5_0>(a, d->stream); break;
    case SX_DTYPE_Q5_1: mm_launch<SXT_Q5_1>(a, d->stream); break;
    case SX_DTYPE_Q5_K: mm_launch<SXT_Q5_K>(a, d->stream); break;
    case SX_DTYPE_Q2_K: mm_launch<SXT_Q2_K>(a, d->stream); break;
    case SX_DTYPE_Q3_K: mm_launch<SXT_Q3_K>(a, d->stream); break;
    case SX_DTYPE_IQ4_NL: mm_launch<SXT_IQ4_NL>(a, d->stream); break;
    case SX_DTYPE_IQ4_XS: mm_launch<SXT_IQ4_XS>(a, d->stream); break;
    default: return sx_set_error(SX_ERR_UNSUPPORTED, SX_GPU_NAME ": matmul with %s weights", sx_dtype_name(w->dtype));
    }
    return SX_OK;
}

/* MUL_MAT_ID: one launch, grid (N / MV_WARPS, k picks, R rows); the experts
 * are read on the device, so nothing waits on the host (graph capture
 * safe). gpu_supports keeps k and R within grid y / z. */
template <int T> static void mmid_launch(gpu_device *d, const sx_tensor *w, const sx_tensor *x, const sx_tensor *ids, sx_tensor *node) {
    const dim3 grid(cdiv(w->ne[1], MV_WARPS), (unsigned)ids->ne[0], (unsigned)ids->ne[1]), block(MV_WARPS * SX_WARP);
    k_mul_mat_id<T><<<grid, block, 0, d->stream>>>((const sx_u8 *)gt_of(w).data, (sx_i64)w->nb[1], (sx_i64)w->nb[2], (int)w->ne[0],
                                                   (int)w->ne[1], (int)w->ne[2], gt_of(x), gt_of(ids), gt_of(node), d->err_dev);
}

sx_status launch_MUL_MAT_ID(gpu_device *d, sx_tensor *node) {
    const sx_tensor *w = node->src[0], *x = node->src[1], *ids = node->src[2];
    if (w->ne[1] == 0 || ids->ne[0] == 0 || ids->ne[1] == 0) return SX_OK;
    switch (w->dtype) {
    case SX_DTYPE_F32: mmid_launch<SXT_F32>(d, w, x, ids, node); break;
    case SX_DTYPE_F16: mmid_launch<SXT_F16>(d, w, x, ids, node); break;
    case SX_DTYPE_BF16: mmid_launch<SXT_BF16>(d, w, x, ids, node); break;
    case SX_DTYPE_Q8_0: mmid_launch<SXT_Q8_0>(d, w, x, ids, node); break;
    case SX_DTYPE_Q4_0: mmid_launch<SXT_Q4_0>(d, w, x, ids, node); break;
    case SX_DTYPE_Q4_1: mmid_launch<SXT_Q4_1>(d, w, x, ids, node); break;
    case SX_DTYPE_Q4_K: mmid_launch<SXT_Q4_K>(d, w, x, ids, node); break;
    case SX_DTYPE_Q6_K: mmid_launch<SXT_Q6_K>(d, w, x, ids, node); break;
    case SX_DTYPE_Q5_0: mmid_launch<SXT_Q5_0>(d, w, x, ids, node); break;
    case SX_DTYPE_Q5_1: mmid_launch<SXT_Q5_1>(d, w, x, ids, node); break;
    case SX_DTYPE_Q5_K: mmid_launch<SXT_Q5_K>(d, w, x, ids, node); break;
    case SX_DTYPE_Q2_K: mmid_launch<SXT_Q2_K>(d, w, x, ids, node); break;
    case SX_DTYPE_Q3_K: mmid_launch<SXT_Q3_K>(d, w, x, ids, node); break;
    case SX_DTYPE_IQ4_NL: mmid_launch<SXT_IQ4_NL>(d, w, x, ids, node); break;
    case SX_DTYPE_IQ4_XS: mmid_launch<SXT_IQ4_XS>(d, w, x, ids, node); break;
    default: return sx_set_error(SX_ERR_UNSUPPORTED, SX_GPU_NAME ": mul_mat_id with %s weights", sx_dtype_name(w->dtype));
    }
    return SX_OK;
}

} /* namespace SX_NS */
#endif
