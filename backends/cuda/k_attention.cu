/* backends/cuda/k_attention.cu — ATTENTION over a KV cache: GQA, causal or
 * tree mask over the T new tokens, the n_past prefix visible to all, f16,
 * f32, q8_0 or q4_0 K/V (a quantized KV cache: head dim % 32 == 0,
 * dequantised on load, d * q or d * (nibble - 8), by both plans alike),
 * online softmax (no
 * score matrix in memory), batch-invariant, with split-K
 * ("flash-decoding") for grids too small to fill the GPU.
 *
 * Batch invariance (speculative verification must give plain decoding's
 * bits): every reduction choice is a function of *ordinals*, never of slot
 * indices, T, the mask width or n_kv. The ordinal of a key visible to query
 * t is its index among the row's V visible keys in slot order: prefix slots
 * 0..n_past-1 are ordinals 0..n_past-1, then the visible tree slots in slot
 * order (a causal row without a mask: slot = ordinal). A verify row and the
 * same token decoded alone see the same keys at the same ordinals, so they
 * sum the same numbers in the same order.
 *   - Ordinals are cut into chunks of ATTN_CHUNK keys. A chunk is scored by
 *     8 logical warps, warp w taking ordinals o0 + w, o0 + w + 8, ...; per
 *     key the lanes split the head dim (lane owns dims lane + 32 r), reduce
 *     q.k with shuffles and update their running max m, sum l and output
 *     accumulator; the 8 warp states are merged in warp order into the
 *     chunk's partial state (m, l, acc[d]).
 *   - The partial states are folded in chunk order (attn_fold); a chunk with
 *     no visible key (past the row's V, e.g. the extra chunks a longer n_kv
 *     adds) is skipped exactly, so 1 chunk or many, few or extra empty
 *     chunks in the grid, give the same bits. Products and sums that decide
 *     the bits are written with explicit fmaf / __fmul_rn so the compiler
 *     cannot contract them differently in the two kernels below.
 *   - Mask rows: each block counts its row's visible tree slots (a parallel
 *     scan over the mask row) and, for a chunk that reaches past the prefix,
 *     lists the slots of the chunk's ordinals in shared memory.
 * Two launch plans, the same arithmetic (the host picks, attn_plan):
 *   single  k_attention: grid (nh, T), one block per (head, query) walks
 *           the row's chunks in order and folds them in registers.
 *   split   k_attention_part: grid (nh, T, S), block z computes chunks
 *           z, z + S, ... and writes their partial states to the device's
 *           scratch; k_attention_merge: grid (nh, T) folds them in chunk
 *           order. Used when nh * T blocks would leave most SMs idle (decode,
 *           small verify batches) and the row has 2 or more chunks.
 * Head dim <= 32 * R (R = 1, 2, 4, 8: up to 256).
 * Layout: q [d, nh, T] f32, k/v [d, nkv, n_kv] views of the cache (any slot
 * stride, rows contiguous; a q8_0 / q4_0 head row is d / 32 blocks of 34 /
 * 18 bytes, 2-byte aligned), mask f32 [M, T] (0 = visible, M = n_kv - n_past), output
 * [d, nh, T]; scratch [T][nh][n_chunks][2 + d] f32.
 * Semantics (ir/ops.def): slot j < n_past always visible; slot n_past + i
 * visible to query t when mask[t][i] == 0, or i <= t without a mask; a query
 * that sees nothing outputs zeros.
 * Tested by tests/test_ops.c (decode, GQA, MQA, prefill from empty, tree
 * masks, q8_0 and q4_0 K/V at d = 32, 64, 128; --full adds 300 past slots, d = 128)
 * against cpu_ops_ref.c with atol 2e-5; bit-for-bit invariance by
 * tests/test_batch_invariance.c and, under the CPU emulation (both plans
 * forced, n_past in the thousands, f16/f32/q8_0), by
 * backends/cuda/emu/attn_invariance.c. Benchmarked by tools/gpu-check.sh
 * (long-context decode, split-K on / off). */
#include "backends/cuda/common.cuh"

#if defined(SX_HIP) && defined(__clang__)
/* HIP's __fmul_rn is a plain x * y: keep clang from fusing it (or any
 * product) into a neighbouring add, whose choice could differ per kernel */
#pragma clang fp contract(off)
#endif

namespace SX_NS {

#define ATTN_WARPS 8
#define ATTN_THREADS (ATTN_WARPS * SX_WARP)
#define ATTN_CHUNK 256 /* ordinals per chunk: the unit of split-K and of the fold */

/* Element c of a K or V row (head dim contiguous: f32/f16 one element per
 * nb0 bytes; q8_0 / q4_0 one 34- / 18-byte block per 32 elements, nb0 = the
 * block). q8_0 is dequantised as d * q, q4_0 as d * (nibble - 8) (element j
 * < 16 of a block in the low nibble of byte j, else the high one of byte j -
 * 16), with an explicit product, the formula of sx_dtype_dequantize_row, so
 * no contraction can round it differently in the two plans (it is exact
 * anyway). Lane l reads element l of block c / 32: one broadcast 16-bit
 * scale and 32 consecutive bytes (16 for q4_0) per warp. */
template <int KVT> static __device__ __forceinline__ float kv_load(const char *row, int c, sx_i64 nb0) {
    if (KVT == SXT_Q8_0) {
        const sx_u8 *b = (const sx_u8 *)row + (c / SX_QK) * SX_Q8_0_BYTES;
        return __fmul_rn(h2f(ld16(b)), (float)(sx_i8)b[2 + c % SX_QK]);
    }
    if (KVT == SXT_Q4_0) {
        const sx_u8 *b = (const sx_u8 *)row + (c / SX_QK) * SX_Q4_0_BYTES;
        const int j = c % SX_QK, nib = j < SX_QK / 2 ? b[2 + j] & 15 : b[2 + j - SX_QK / 2] >> 4;
        return __fmul_rn(h2f(ld16(b)), (float)(nib - 8));
    }
    const char *p = row + c * nb0;
    return KVT == SXT_F16 ? h2f(*(const sx_u16 *)p) : *(const float *)p;
}

static __device__ __forceinline__ bool attn_mask_visible(const sx_gt &mask, int i, int t) {
    return *(const float *)(mask.data + (sx_i64)i * mask.nb[0] + (sx_i64)t * mask.nb[1]) == 0.0f;
}

/* The row's visible keys, as one block sees them. Without a mask, slot =
 * ordinal. With one, thread x owns mask entries [i0, i1) and rank0 is the
 * number of visible entries before i0 (so its entries' tree ranks follow). */
struct attn_row {
    int V;      /* visible keys: ordinals 0..V-1 */
    int np;     /* prefix length: min(n_past, n_kv) */
    int i0, i1; /* this thread's mask entries */
    int rank0;  /* visible mask entries before i0 */
};

/* Counts row t's visible keys (every thread of the block gets V). s_scan:
 * ATTN_THREADS ints of shared memory. */
static __device__ __forceinline__ attn_row attn_row_init(const sx_gt &mask, int t, int n_past, int n_kv, int *s_scan) {
    attn_row r;
    r.np = min(n_past, n_kv);
    r.i0 = r.i1 = r.rank0 = 0;
    if (!mask.data) {
        r.V = min(n_kv, r.np + t + 1);
        return r;
    }
    const int M = n_kv - r.np, seg = (M + ATTN_THREADS - 1) / ATTN_THREADS, x = threadIdx.x;
    r.i0 = min(M, x * seg);
    r.i1 = min(M, r.i0 + seg);
    int cnt = 0;
    for (int i = r.i0; i < r.i1; i++) cnt += attn_mask_visible(mask, i, t);
    s_scan[x] = cnt; /* inclusive scan (Hillis-Steele) over the threads' counts */
    __syncthreads();
    for (int off = 1; off < ATTN_THREADS; off <<= 1) {
        const int add = x >= off ? s_scan[x - off] : 0;
        __syncthreads();
        s_scan[x] += add;
        __syncthreads();
    }
    r.rank0 = s_scan[x] - cnt;
    r.V = r.np + s_scan[ATTN_THREADS - 1];
    return r;
}

/* Lists in s_slot the slots of ordinals [o0, o0 + ATTN_CHUNK) that lie past
 * the prefix (masked rows only; others need no list). Call with the whole
 * block; s_slot may be read after it returns. */
static __device__ __forceinline__ void attn_chunk_slots(const sx_gt &mask, int t, const attn_row &r, int o0, int *s_slot) {
    __syncthreads(); /* the previous chunk is done reading s_slot */
    if (mask.data && o0 + ATTN_CHUNK > r.np) {
        const int lo = o0 - r.np; /* tree rank of ordinal o0 (may be < 0) */
        int rank = r.rank0;
        for (int i = r.i0; i < r.i1 && rank < lo + ATTN_CHUNK; i++)
            if (attn_mask_visible(mask, i, t)) {
                if (rank >= lo) s_slot[rank - lo] = r.np + i;
                rank++;
            }
    }
    __syncthreads();
}

/* Partial state of the chunk at ordinal o0 (o0 < V): thread c < d gets
 * (pm, pl, pacc) for its dim c, the same in every thread for pm and pl. */
template <int R, int KVT>
static __device__ __forceinline__ void attn_chunk(const float *qr, const char *kbase, const char *vbase, const sx_gt &k, const sx_gt &v, int d,
                                                  float scale, const sx_gt &mask, const attn_row &r, int o0, const int *s_slot, float *s_m,
                                                  float *s_l, float (*s_acc)[R * SX_WARP], float &pm, float &pl, float &pacc) {
    const int lane = threadIdx.x % SX_WARP, w = threadIdx.x / SX_WARP;
    const int o_end = min(o0 + ATTN_CHUNK, r.V);
    float m = SX_NEG_INF, l = 0.0f, acc[R];
#pragma unroll
    for (int i = 0; i < R; i++) acc[i] = 0.0f;
    for (int o = o0 + w; o < o_end; o += ATTN_WARPS) {
        const int j = mask.data && o >= r.np ? s_slot[o - o0] : o;
        const char *kp = kbase + (sx_i64)j * k.nb[2];
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < R; i++) {
            const int c = lane + SX_WARP * i;
            if (c < d) s = __fmaf_rn(qr[i], kv_load<KVT>(kp, c, k.nb[0]), s);
        }
        s = __fmul_rn(warp_sum(s), scale);
        const float m_new = fmaxf(m, s);
        const float corr = expf(m - m_new), p = expf(s - m_new);
        l = __fmaf_rn(l, corr, p);
        const char *vp = vbase + (sx_i64)j * v.nb[2];
#pragma unroll
        for (int i = 0; i < R; i++) {
            const int c = lane + SX_WARP * i;
            acc[i] = __fmaf_rn(acc[i], corr, c < d ? __fmul_rn(p, kv_load<KVT>(vp, c, v.nb[0])) : 0.0f);
        }
        m = m_new;
    }
    if (lane == 0) s_m[w] = m, s_l[w] = l;
#pragma unroll
    for (int i = 0; i < R; i++) s_acc[w][lane + SX_WARP * i] = acc[i];
    __syncthreads();
    float M = SX_NEG_INF;
#pragma unroll
    for (int i = 0; i < ATTN_WARPS; i++) M = fmaxf(M, s_m[i]);
    float L = 0.0f, o = 0.0f;
    const int c = (int)threadIdx.x < d ? (int)threadIdx.x : 0;
#pragma unroll
    for (int i = 0; i < ATTN_WARPS; i++) {
        const float f = s_m[i] == SX_NEG_INF ? 0.0f : expf(s_m[i] - M);
        L = __fmaf_rn(s_l[i], f, L);
        o = __fmaf_rn(s_acc[i][c], f, o);
    }
    __syncthreads(); /* s_m, s_l, s_acc are free for the next chunk */
    pm = M, pl = L, pacc = o;
}

/* Folds a chunk's partial state (pm, pl, pa) into the running state (m, l,
 * a) of one output dim. An empty chunk (pm = -inf) changes nothing, not even
 * the sign of a zero; the first non-empty one is taken as it is. */
static __device__ __forceinline__ void attn_fold(float &m, float &l, float &a, float pm, float pl, float pa) {
    if (pm == SX_NEG_INF) return;
    if (m == SX_NEG_INF) {
        m = pm, l = pl, a = pa;
        return;
    }
    const float M = fmaxf(m, pm), fs = expf(m - M), fp = expf(pm - M);
    l = __fmaf_rn(l, fs, __fmul_rn(pl, fp));
    a = __fmaf_rn(a, fs, __fmul_rn(pa, fp));
    m = M;
}

template <int R>
static __device__ __forceinline__ void attn_load_q(const sx_gt &q, int h, int t, int d, float *qr) {
    const int lane = threadIdx.x % SX_WARP;
#pragma unroll
    for (int i = 0; i < R; i++) {
        const int c = lane + SX_WARP * i;
        qr[i] = c < d ? *(const float *)SX_GT_AT(q, c, h, t, 0) : 0.0f;
    }
}

/* single plan: one block per (head h, query t) folds the row's chunks */
template <int R, int KVT>
__global__ void __launch_bounds__(ATTN_THREADS) k_attention(sx_gt q, sx_gt k, sx_gt v, sx_gt mask, sx_gt out, int n_past, float scale, int group) {
    __shared__ int s_scan[ATTN_THREADS], s_slot[ATTN_CHUNK];
    __shared__ float s_m[ATTN_WARPS], s_l[ATTN_WARPS];
    __shared__ float s_acc[ATTN_WARPS][R * SX_WARP];
    const int h = blockIdx.x, t = blockIdx.y;
    const int d = (int)q.ne[0], kh = h / group, n_kv = (int)k.ne[2];
    float qr[R];
    attn_load_q<R>(q, h, t, d, qr);
    const attn_row r = attn_row_init(mask, t, n_past, n_kv, s_scan);
    const char *kbase = k.data + kh * k.nb[1], *vbase = v.data + kh * v.nb[1];
    float m = SX_NEG_INF, l = 0.0f, a = 0.0f;
    for (int o0 = 0; o0 < r.V; o0 += ATTN_CHUNK) {
        attn_chunk_slots(mask, t, r, o0, s_slot);
        float pm, pl, pa;
        attn_chunk<R, KVT>(qr, kbase, vbase, k, v, d, scale, mask, r, o0, s_slot, s_m, s_l, s_acc, pm, pl, pa);
        attn_fold(m, l, a, pm, pl, pa);
    }
    if ((int)threadIdx.x < d) *(float *)SX_GT_AT(out, threadIdx.x, h, t, 0) = l > 0.0f ? a / l : 0.0f;
}

/* split plan, first kernel: block (h, t, z) writes the partial states of
 * chunks z, z + gridDim.z, ... < n_chunks of row (h, t) to part (an empty
 * chunk: m = -inf) */
template <int R, int KVT>
__global__ void __launch_bounds__(ATTN_THREADS)
    k_attention_part(sx_gt q, sx_gt k, sx_gt v, sx_gt mask, float *part, int n_past, float scale, int group, int n_chunks) {
    __shared__ int s_scan[ATTN_THREADS], s_slot[ATTN_CHUNK];
    __shared__ float s_m[ATTN_WARPS], s_l[ATTN_WARPS];
    __shared__ float s_acc[ATTN_WARPS][R * SX_WARP];
    const int h = blockIdx.x, t = blockIdx.y, nh = gridDim.x;
    const int d = (int)q.ne[0], kh = h / group, n_kv = (int)k.ne[2];
    float qr[R];
    attn_load_q<R>(q, h, t, d, qr);
    const attn_row r = attn_row_init(mask, t, n_past, n_kv, s_scan);
    const char *kbase = k.data + kh * k.nb[1], *vbase = v.data + kh * v.nb[1];
    float *row = part + ((sx_i64)t * nh + h) * n_chunks * (d + 2);
    for (int c = blockIdx.z; c < n_chunks; c += gridDim.z) {
        const int o0 = c * ATTN_CHUNK;
        float *p = row + (sx_i64)c * (d + 2);
        if (o0 >= r.V) { /* block-uniform */
            if (threadIdx.x == 0) p[0] = SX_NEG_INF, p[1] = 0.0f;
            continue;
        }
        attn_chunk_slots(mask, t, r, o0, s_slot);
        float pm, pl, pa;
        attn_chunk<R, KVT>(qr, kbase, vbase, k, v, d, scale, mask, r, o0, s_slot, s_m, s_l, s_acc, pm, pl, pa);
        if (threadIdx.x == 0) p[0] = pm, p[1] = pl;
        if ((int)threadIdx.x < d) p[2 + threadIdx.x] = pa;
    }
}

/* split plan, second kernel: block (h, t) folds the row's n_chunks partial
 * states in chunk order; thread c < d owns output dim c */
__global__ void __launch_bounds__(ATTN_THREADS) k_attention_merge(const float *part, sx_gt out, int n_chunks) {
    const int h = blockIdx.x, t = blockIdx.y, nh = gridDim.x, d = (int)out.ne[0], c = threadIdx.x;
    if (c >= d) return;
    const float *p = part + ((sx_i64)t * nh + h) * n_chunks * (d + 2);
    float m = SX_NEG_INF, l = 0.0f, a = 0.0f;
    for (int i = 0; i < n_chunks; i++, p += d + 2) attn_fold(m, l, a, p[0], p[1], p[2 + c]);
    *(float *)SX_GT_AT(out, c, h, t, 0) = l > 0.0f ? a / l : 0.0f;
}

#define SX_ATTN_INST(R, KVT)                                                                                         \
    template __global__ void k_attention<R, KVT>(sx_gt, sx_gt, sx_gt, sx_gt, sx_gt, int, float, int);                \
    template __global__ void k_attention_part<R, KVT>(sx_gt, sx_gt, sx_gt, sx_gt, float *, int, float, int, int);
SX_ATTN_INST(1, SXT_F32)
SX_ATTN_INST(2, SXT_F32)
SX_ATTN_INST(4, SXT_F32)
SX_ATTN_INST(8, SXT_F32)
SX_ATTN_INST(1, SXT_F16)
SX_ATTN_INST(2, SXT_F16)
SX_ATTN_INST(4, SXT_F16)
SX_ATTN_INST(8, SXT_F16)
SX_ATTN_INST(1, SXT_Q8_0)
SX_ATTN_INST(2, SXT_Q8_0)
SX_ATTN_INST(4, SXT_Q8_0)
SX_ATTN_INST(8, SXT_Q8_0)
SX_ATTN_INST(1, SXT_Q4_0)
SX_ATTN_INST(2, SXT_Q4_0)
SX_ATTN_INST(4, SXT_Q4_0)
SX_ATTN_INST(8, SXT_Q4_0)

} /* namespace SX_NS */

#if !defined(__CUDACC_RTC__)
#include "backends/cuda/gpu_internal.h"

namespace SX_NS {

/* The launch plan of an ATTENTION node: 0 = single (one block per row),
 * S > 0 = split with S blocks per row on grid z over n_chunks chunks.
 * Split when the rows leave SMs idle (nh * T below 4 blocks per SM), the
 * longest row may span 2 chunks or more, and the partial states fit the
 * device's scratch. The plan changes the kernels, never the bits. */
int gpu_attn_plan(const gpu_device *d, const sx_tensor *node, int *out_chunks) {
    const sx_tensor *q = node->src[0], *k = node->src[1];
    const sx_i64 dh = q->ne[0], rows = q->ne[1] * q->ne[2], n_kv = k->ne[2];
    const sx_i64 n_chunks = (n_kv + ATTN_CHUNK - 1) / ATTN_CHUNK;
    if (out_chunks) *out_chunks = (int)n_chunks;
    if (d->attn_split == GPU_ATTN_SPLIT_OFF || rows == 0 || n_chunks < 2) return 0;
    if ((size_t)(rows * n_chunks * (dh + 2)) * sizeof(float) > d->scratch_bytes) return 0;
    if (d->attn_split == GPU_ATTN_SPLIT_ALL) return (int)(n_chunks < 65535 ? n_chunks : 65535);
    const sx_i64 want = (4 * (sx_i64)d->n_sm + rows - 1) / rows; /* blocks per row for ~4 per SM */
    if (want < 2) return 0;
    return (int)(want < n_chunks ? want : n_chunks);
}

template <int R, int KVT>
static void attn_launch(gpu_device *dev, int S, int n_chunks, dim3 grid, sx_gt q, sx_gt k, sx_gt v, sx_gt m, sx_gt o, int n_past, float scale,
                        int group) {
    const dim3 block(ATTN_THREADS);
    cudaStream_t st = dev->stream;
    if (S == 0) {
        k_attention<R, KVT><<<grid, block, 0, st>>>(q, k, v, m, o, n_past, scale, group);
        return;
    }
    const dim3 grid_part(grid.x, grid.y, (unsigned)S);
    float *part = (float *)dev->scratch;
    k_attention_part<R, KVT><<<grid_part, block, 0, st>>>(q, k, v, m, part, n_past, scale, group, n_chunks);
    k_attention_merge<<<grid, dim3(R * SX_WARP), 0, st>>>(part, o, n_chunks);
}

template <int KVT>
static void attn_launch_r(gpu_device *dev, int R, int S, int n_chunks, dim3 grid, sx_gt q, sx_gt k, sx_gt v, sx_gt m, sx_gt o, int n_past,
                          float scale, int group) {
    switch (R) {
    case 1: attn_launch<1, KVT>(dev, S, n_chunks, grid, q, k, v, m, o, n_past, scale, group); break;
    case 2: attn_launch<2, KVT>(dev, S, n_chunks, grid, q, k, v, m, o, n_past, scale, group); break;
    case 4: attn_launch<4, KVT>(dev, S, n_chunks, grid, q, k, v, m, o, n_past, scale, group); break;
    default: attn_launch<8, KVT>(dev, S, n_chunks, grid, q, k, v, m, o, n_past, scale, group); break;
    }
}

sx_status launch_ATTENTION(gpu_device *d, sx_tensor *node) {
    const sx_tensor *q = node->src[0], *k = node->src[1], *v = node->src[2], *mask = node->src[3];
    const int dh = (int)q->ne[0], nh = (int)q->ne[1], T = (int)q->ne[2];
    const int R = dh <= 32 ? 1 : dh <= 64 ? 2 : dh <= 128 ? 4 : 8;
    if (nh == 0 || T == 0) return SX_OK;
    int n_chunks = 0;
    const int S = gpu_attn_plan(d, node, &n_chunks);
    const dim3 grid((unsigned)nh, (unsigned)T);
    const int group = (int)(q->ne[1] / k->ne[1]);
    const sx_gt mg = mask ? gt_of(mask) : gt_none();
    const int n_past = node->params.attn.n_past;
    const float scale = node->params.attn.scale;
    if (k->dtype == SX_DTYPE_F16)
        attn_launch_r<SXT_F16>(d, R, S, n_chunks, grid, gt_of(q), gt_of(k), gt_of(v), mg, gt_of(node), n_past, scale, group);
    else if (k->dtype == SX_DTYPE_Q8_0)
        attn_launch_r<SXT_Q8_0>(d, R, S, n_chunks, grid, gt_of(q), gt_of(k), gt_of(v), mg, gt_of(node), n_past, scale, group);
    else if (k->dtype == SX_DTYPE_Q4_0)
        attn_launch_r<SXT_Q4_0>(d, R, S, n_chunks, grid, gt_of(q), gt_of(k), gt_of(v), mg, gt_of(node), n_past, scale, group);
    else
        attn_launch_r<SXT_F32>(d, R, S, n_chunks, grid, gt_of(q), gt_of(k), gt_of(v), mg, gt_of(node), n_past, scale, group);
    return SX_OK;
}

} /* namespace SX_NS */
#endif
