/* backends/cuda/k_select.cu — ARGMAX and TOP_K over rows of logits, and
 * GATHER.
 *
 * ARGMAX: one thread block per row, a block-wide (value, index) reduction:
 * larger value first, equal values by lower index.
 *
 * TOP_K ranks elements by a 64-bit key, unique per element of a row: high
 * half the value's bits mapped to an unsigned order (-0 as +0, so the two
 * tie as the reference's `<` makes them; NaN below -inf: picked last, by
 * index), low half ~index (lower index = larger key). Descending key order
 * is the reference's order (value desc, ties by lower index), so the k
 * largest keys, sorted, are exactly its answer. Plans (gpu_topk_plan; the
 * plan changes the kernels, never the bits):
 *  - PASSES (k <= 4 on rows of one chunk, or k > TOPK_KMAX): k block-wide
 *    reductions per row, each the largest key below the previous pick.
 *  - BLOCK (rows of one chunk, or no room in the scratch): one block per row
 *    finds the k-th largest key by radix select (8 bits a pass over the row,
 *    a shared histogram; stops as soon as the bin holding it is taken whole),
 *    gathers the keys at or above it and bitonic-sorts them in shared memory.
 *  - split into S >= 2 chunks (rows longer than one chunk, the usual case of
 *    a vocabulary): k_top_k_part, grid (S, rows), radix-selects each chunk's
 *    top min(k, chunk) keys into the device scratch (padding its k slots with
 *    key 0, below every real key); k_top_k_merge, one block per row, selects
 *    and sorts the row's top k of its S * k candidates as BLOCK does. Exact:
 *    each of the row's top k is among its chunk's top k.
 * GATHER (the values of TOP_K's picks, a router's weights): a plain indexed
 * copy, one thread per output.
 * Tested by tests/test_ops.c (rows of 9 to 50000, k = 1..ne0, many ties)
 * for exact equality with cpu_ops_ref.c; SPECEXIT_CUDA_TOPK forces a plan. */
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

typedef unsigned long long sx_u64;

/* most elements TOP_K's block select handles (shared sort buffer) */
#define TOPK_KMAX 1024
#define TOPK_THREADS 256

/* TOP_K's key of value v at index i (see the header); never 0 */
static __device__ __forceinline__ sx_u64 topk_key(float v, int i) {
    sx_u32 u = __float_as_uint(v);
    if (v != v) u = 0;                       /* NaN: below everything */
    else if (v == 0.0f) u = 0x80000000u;     /* -0 and +0 tie */
    else u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return (sx_u64)u << 32 | (sx_u64)~(sx_u32)i;
}
static __device__ __forceinline__ int topk_index(sx_u64 key) { return (int)~(sx_u32)key; }

/* block-wide maximum of a key; every thread gets it */
static __device__ sx_u64 block_max_key(sx_u64 v, sx_u32 *sh, sx_u32 *sl) {
    const int lane = threadIdx.x % SX_WARP, w = threadIdx.x / SX_WARP, nw = blockDim.x / SX_WARP;
#pragma unroll
    for (int m = SX_WARP / 2; m > 0; m >>= 1) {
        const sx_u64 o = (sx_u64)sx_shfl_xor((sx_u32)(v >> 32), m) << 32 | sx_shfl_xor((sx_u32)v, m);
        if (o > v) v = o;
    }
    __syncthreads();
    if (lane == 0) sh[w] = (sx_u32)(v >> 32), sl[w] = (sx_u32)v;
    __syncthreads();
    v = lane < nw ? (sx_u64)sh[lane] << 32 | sl[lane] : 0;
#pragma unroll
    for (int m = SX_WARP / 2; m > 0; m >>= 1) {
        const sx_u64 o = (sx_u64)sx_shfl_xor((sx_u32)(v >> 32), m) << 32 | sx_shfl_xor((sx_u32)v, m);
        if (o > v) v = o;
    }
    return v;
}

/* PASSES: pick j is the largest key below pick j - 1 */
__global__ void k_top_k(sx_gt x, sx_gt out, int k) {
    __shared__ sx_u32 sh[32], sl[32];
    const sx_i64 r = blockIdx.x;
    const int n = (int)x.ne[0];
    sx_u64 prev = ~0ull;
    for (int j = 0; j < k; j++) {
        sx_u64 best = 0;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const sx_u64 key = topk_key(*(const float *)SX_GT_AT(x, i, r, 0, 0), i);
            if (key < prev && key > best) best = key;
        }
        best = block_max_key(best, sh, sl);
        if (threadIdx.x == 0) *(int *)SX_GT_AT(out, j, r, 0, 0) = topk_index(best);
        prev = best;
    }
}

/* keys of a row of x from element base on */
struct topk_row_src {
    sx_gt x;
    sx_i64 r;
    int base;
    __device__ __forceinline__ sx_u64 operator()(int i) const { return topk_key(*(const float *)SX_GT_AT(x, base + i, r, 0, 0), base + i); }
};
/* keys stored by k_top_k_part */
struct topk_cand_src {
    const sx_u64 *p;
    __device__ __forceinline__ sx_u64 operator()(int i) const { return p[i]; }
};

/* shared state of topk_block_select */
struct topk_smem {
    sx_u64 sel[TOPK_KMAX]; /* the selected keys */
    sx_u32 hist[256];
    sx_u32 lane_sum[32];
    sx_u32 digit, above, count;
};

/* The c largest of the n (>= c >= 1, c <= TOPK_KMAX) unique nonzero keys
 * src(0..n-1) into s->sel[0..c): sorted descending if sort (then
 * s->sel[c..pow2) holds zeros), else in no particular order. Every thread
 * of the block (a multiple of 32, at least 32) calls it. Radix select: each
 * pass histograms the next 8 bits of the keys that match the bits fixed so
 * far and fixes the digit of the bin holding the c-th largest key; once
 * that bin is needed whole, the keys whose fixed bits are >= the prefix are
 * exactly the c largest. */
template <class Src>
static __device__ void topk_block_select(const Src &src, int n, int c, bool sort, topk_smem *s) {
    const int tid = threadIdx.x, nt = blockDim.x;
    sx_u64 prefix = 0, mask = 0;
    sx_u32 rem = (sx_u32)c; /* keys still wanted from the keys matching prefix */
    for (int shift = 56; shift >= 0; shift -= 8) {
        for (int b = tid; b < 256; b += nt) s->hist[b] = 0;
        __syncthreads();
        sx_u32 run_bin = 0, run = 0; /* a run of equal bins, one atomic (the high bits of logits vary little) */
        for (int i = tid; i < n; i += nt) {
            const sx_u64 key = src(i);
            if ((key & mask) != prefix) continue;
            const sx_u32 b = (sx_u32)(key >> shift) & 255u;
            if (run && b != run_bin) atomicAdd(&s->hist[run_bin], run), run = 0;
            run_bin = b, run++;
        }
        if (run) atomicAdd(&s->hist[run_bin], run);
        __syncthreads();
        /* lane l of warp 0 owns bins 255 - 8l down to 248 - 8l */
        sx_u32 cnt[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (tid < 32) {
            sx_u32 sum = 0;
            for (int j = 0; j < 8; j++) cnt[j] = s->hist[255 - 8 * tid - j], sum += cnt[j];
            s->lane_sum[tid] = sum;
        }
        __syncthreads();
        if (tid < 32) {
            sx_u32 above = 0; /* keys in higher bins */
            for (int l = 0; l < tid; l++) above += s->lane_sum[l];
            for (int j = 0; j < 8; j++) {
                if (above < rem && above + cnt[j] >= rem) s->digit = (sx_u32)(255 - 8 * tid - j), s->above = above;
                above += cnt[j];
            }
        }
        __syncthreads();
        const sx_u32 d = s->digit;
        rem -= s->above;
        prefix |= (sx_u64)d << shift;
        mask |= (sx_u64)0xff << shift;
        const bool whole = s->hist[d] == rem; /* always true once all 64 bits are fixed */
        __syncthreads();                      /* all have read hist before the next pass clears it */
        if (whole) break;
    }
    int p = 1;
    while (p < c) p <<= 1;
    if (tid == 0) s->count = 0;
    if (sort)
        for (int i = c + tid; i < p; i += nt) s->sel[i] = 0;
    __syncthreads();
    for (int i = tid; i < n; i += nt) {
        const sx_u64 key = src(i);
        if ((key & mask) >= prefix) s->sel[atomicAdd(&s->count, 1u)] = key;
    }
    __syncthreads();
    if (!sort) return;
    for (int size = 2; size <= p; size <<= 1)
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int t = tid; t < p / 2; t += nt) {
                const int i = 2 * t - (t & (stride - 1)), j = i + stride;
                const sx_u64 a = s->sel[i], b = s->sel[j];
                if ((a < b) == ((i & size) == 0)) s->sel[i] = b, s->sel[j] = a; /* descending where i & size == 0 */
            }
            __syncthreads();
        }
}

/* BLOCK: one block per row */
__global__ void __launch_bounds__(TOPK_THREADS) k_top_k_block(sx_gt x, sx_gt out, int k) {
    __shared__ topk_smem s;
    const sx_i64 r = blockIdx.x;
    topk_row_src src = {x, r, 0};
    topk_block_select(src, (int)x.ne[0], k, true, &s);
    for (int j = threadIdx.x; j < k; j += blockDim.x) *(int *)SX_GT_AT(out, j, r, 0, 0) = topk_index(s.sel[j]);
}

/* split, first kernel: block (chunk c, row r) writes the top min(k, chunk
 * length) keys of its chunk to cand[r][c][0..k), the rest of the k slots 0 */
__global__ void __launch_bounds__(TOPK_THREADS) k_top_k_part(sx_gt x, sx_u64 *cand, int k, int chunk) {
    __shared__ topk_smem s;
    const sx_i64 r = blockIdx.y;
    const int c = blockIdx.x, base = c * chunk, left = (int)x.ne[0] - base;
    const int len = left < chunk ? left : chunk, m = len < k ? len : k;
    topk_row_src src = {x, r, base};
    topk_block_select(src, len, m, false, &s);
    sx_u64 *o = cand + ((sx_i64)r * gridDim.x + c) * k;
    for (int j = threadIdx.x; j < k; j += blockDim.x) o[j] = j < m ? s.sel[j] : 0;
}

/* split, second kernel: one block per row over its n_cand = S * k candidates
 * (k of them at least are real keys: the zeros never reach the top k) */
__global__ void __launch_bounds__(TOPK_THREADS) k_top_k_merge(const sx_u64 *cand, int n_cand, sx_gt out, int k) {
    __shared__ topk_smem s;
    const sx_i64 r = blockIdx.x;
    topk_cand_src src = {cand + r * n_cand};
    topk_block_select(src, n_cand, k, true, &s);
    for (int j = threadIdx.x; j < k; j += blockDim.x) *(int *)SX_GT_AT(out, j, r, 0, 0) = topk_index(s.sel[j]);
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

/* TOP_K's plan (see the header and gpu_internal.h). Automatic: rows of more
 * than one chunk of max(2048, 16 * k) elements split (the chunk keeps 16x
 * fewer candidates than elements for stage two) when k <= TOPK_KMAX, the
 * grids fit and the candidates fit the scratch; otherwise BLOCK, except
 * PASSES for k <= 4 (a few reductions beat a radix select there) or k
 * beyond TOPK_KMAX. */
int gpu_topk_plan(const gpu_device *d, const sx_tensor *node, int *out_chunk) {
    const sx_tensor *x = node->src[0];
    const sx_i64 n = x->ne[0], R = x->ne[1], k = node->params.top_k.k;
    sx_i64 p = 1;
    while (p < k) p <<= 1;
    const sx_i64 chunk = d->topk_mode > 0 ? d->topk_mode : p * 16 > 2048 ? p * 16 : 2048;
    const sx_i64 S = (n + chunk - 1) / chunk;
    if (out_chunk) *out_chunk = (int)(chunk < n ? chunk : n);
    if (d->topk_mode == GPU_TOPK_PASSES || k > TOPK_KMAX) return GPU_TOPK_PASSES;
    if (d->topk_mode == GPU_TOPK_BLOCK) return GPU_TOPK_BLOCK;
    const bool split = S >= 2 && S <= 65535 && R <= 65535 && S * k <= 0x7fffffff && (sx_u64)(R * S * k) * sizeof(sx_u64) <= d->scratch_bytes;
    if (split) return (int)S;
    return k <= 4 ? GPU_TOPK_PASSES : GPU_TOPK_BLOCK;
}

sx_status launch_TOP_K(gpu_device *d, sx_tensor *node) {
    const sx_tensor *x = node->src[0];
    if (x->ne[1] == 0) return SX_OK;
    const int k = node->params.top_k.k;
    int chunk = 0;
    const int plan = gpu_topk_plan(d, node, &chunk);
    const unsigned R = (unsigned)x->ne[1];
    if (plan == GPU_TOPK_PASSES) {
        k_top_k<<<R, select_threads(x->ne[0]), 0, d->stream>>>(gt_of(x), gt_of(node), k);
    } else if (plan == GPU_TOPK_BLOCK) {
        k_top_k_block<<<R, TOPK_THREADS, 0, d->stream>>>(gt_of(x), gt_of(node), k);
    } else {
        sx_u64 *cand = (sx_u64 *)d->scratch;
        k_top_k_part<<<dim3((unsigned)plan, R), TOPK_THREADS, 0, d->stream>>>(gt_of(x), cand, k, chunk);
        k_top_k_merge<<<R, TOPK_THREADS, 0, d->stream>>>(cand, plan * k, gt_of(node), k);
    }
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
