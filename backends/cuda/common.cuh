/* backends/cuda/common.cuh — device-side helpers shared by every kernel file.
 *
 * Tensor views (sx_gt: data pointer, ne[4], byte strides nb[4], as in
 * ir/tensor.h), the dtype ids (generated from ir/dtype.def, the same table
 * the host uses), IEEE half / bfloat16 conversions with the exact rounding
 * of ir/dtype.c, logical-warp reductions, and dequantisation of the GGUF
 * block types: per element (dq_elem, any position) and per chunk
 * (qchunk<T>, a few runs of 4 consecutive weights, for the matvec kernels).
 * Layouts are those of ir/quant_blocks.h; the host static-asserts the block
 * sizes against it. NVRTC-compatible: no host headers here. */
#ifndef SX_GPU_COMMON_CUH
#define SX_GPU_COMMON_CUH

#include "backends/cuda/vendor.h"

typedef unsigned char sx_u8;
typedef signed char sx_i8;
typedef unsigned short sx_u16;
typedef unsigned int sx_u32;
typedef long long sx_i64;

/* dtype ids: same order as enum sx_dtype (host checks this) */
enum sx_gpu_dtype {
#define SX_DTYPE(NAME, str, ggml, bs, ts, q) SXT_##NAME,
#include "ir/dtype.def"
#undef SX_DTYPE
    SXT_COUNT
};

/* A tensor as the kernels see it: first element, sizes, byte strides. */
struct sx_gt {
    char *data;
    sx_i64 ne[4];
    sx_i64 nb[4];
};

#define SX_GT_AT(t, i0, i1, i2, i3) ((t).data + (i0) * (t).nb[0] + (i1) * (t).nb[1] + (i2) * (t).nb[2] + (i3) * (t).nb[3])

#define SX_NEG_INF __int_as_float((int)0xff800000u)

/* error codes a kernel may raise (read by the host at the next sync) */
enum { SX_GPU_ERR_NONE = 0, SX_GPU_ERR_GET_ROWS_ID = 1, SX_GPU_ERR_SET_ROWS_ID = 2, SX_GPU_ERR_GATHER_ID = 3, SX_GPU_ERR_MUL_MAT_ID_ID = 4 };

namespace SX_NS {

/* ---- scalar conversions ---- */
static __device__ __forceinline__ float h2f(sx_u16 h) { return __half2float(__ushort_as_half(h)); }
static __device__ __forceinline__ sx_u16 f2h(float f) { return __half_as_ushort(__float2half_rn(f)); }
static __device__ __forceinline__ float bf2f(sx_u16 h) { return __uint_as_float((sx_u32)h << 16); }
/* round to nearest even, quiet NaN: the rule of sx_fp32_to_bf16 */
static __device__ __forceinline__ sx_u16 f2bf(float f) {
    sx_u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (sx_u16)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (sx_u16)(u >> 16);
}

/* value of a plain-dtype element at p */
static __device__ __forceinline__ float load_f(const char *p, int dt) {
    switch (dt) {
    case SXT_F32: return *(const float *)p;
    case SXT_F16: return h2f(*(const sx_u16 *)p);
    case SXT_BF16: return bf2f(*(const sx_u16 *)p);
    case SXT_I32: return (float)*(const int *)p;
    default: return 0.0f;
    }
}

static __device__ __forceinline__ void store_f(char *p, int dt, float v) {
    switch (dt) {
    case SXT_F32: *(float *)p = v; break;
    case SXT_F16: *(sx_u16 *)p = f2h(v); break;
    case SXT_BF16: *(sx_u16 *)p = f2bf(v); break;
    default: break;
    }
}

/* ---- logical-warp reductions (SX_WARP lanes) ---- */
static __device__ __forceinline__ float warp_sum(float v) {
#if defined(SX_EMU) /* the CPU emulation replays this butterfly as one collective (gpu_emu.h) */
    if (sx_emu::use_collectives() && SX_WARP == 32) return sx_emu::warp_butterfly(v, [](float a, float b) { return a + b; });
#endif
#pragma unroll
    for (int m = SX_WARP / 2; m > 0; m >>= 1) v += sx_shfl_xor(v, m);
    return v;
}
static __device__ __forceinline__ float warp_max(float v) {
#if defined(SX_EMU)
    if (sx_emu::use_collectives() && SX_WARP == 32) return sx_emu::warp_butterfly(v, [](float a, float b) { return fmaxf(a, b); });
#endif
#pragma unroll
    for (int m = SX_WARP / 2; m > 0; m >>= 1) v = fmaxf(v, sx_shfl_xor(v, m));
    return v;
}

/* Block-wide sum/max for blockDim.x <= 1024; scratch holds 32 floats. All
 * threads get the result. */
static __device__ __forceinline__ float block_sum(float v, float *scratch) {
    const int lane = threadIdx.x % SX_WARP, w = threadIdx.x / SX_WARP, nw = (blockDim.x + SX_WARP - 1) / SX_WARP;
    v = warp_sum(v);
    __syncthreads(); /* scratch may still be read by a previous call */
    if (lane == 0) scratch[w] = v;
    __syncthreads();
    v = lane < nw ? scratch[lane] : 0.0f;
    return warp_sum(v);
}
static __device__ __forceinline__ float block_max(float v, float *scratch) {
    const int lane = threadIdx.x % SX_WARP, w = threadIdx.x / SX_WARP, nw = (blockDim.x + SX_WARP - 1) / SX_WARP;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[w] = v;
    __syncthreads();
    v = lane < nw ? scratch[lane] : SX_NEG_INF;
    return warp_max(v);
}

/* ---- quantised blocks (ir/quant_blocks.h) ---- */
#define SX_QK 32
#define SX_QK_K 256
#define SX_Q8_0_BYTES 34
#define SX_Q4_0_BYTES 18
#define SX_Q4_1_BYTES 20
#define SX_Q4_K_BYTES 144
#define SX_Q6_K_BYTES 210
#define SX_Q5_0_BYTES 22
#define SX_Q5_1_BYTES 24
#define SX_Q5_K_BYTES 176
#define SX_Q2_K_BYTES 84
#define SX_Q3_K_BYTES 110
#define SX_IQ4_NL_BYTES 18 /* = SX_Q4_0_BYTES: qchunk_d_nib */
#define SX_IQ4_XS_BYTES 136

static __device__ __forceinline__ sx_u16 ld16(const sx_u8 *p) { return *(const sx_u16 *)p; }
/* 4 bytes from a 2-byte aligned address */
static __device__ __forceinline__ sx_u32 ld32_a2(const sx_u8 *p) {
    const sx_u16 *q = (const sx_u16 *)p;
    return (sx_u32)q[0] | ((sx_u32)q[1] << 16);
}
static __device__ __forceinline__ sx_u32 ld32(const sx_u8 *p) { return *(const sx_u32 *)p; }

/* 6-bit scale and min of sub-block j of a q4_k super-block */
static __device__ __forceinline__ void q4k_scale_min(int j, const sx_u8 *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* 6-bit scale of sub-block s (0..15) of a q3_k super-block (sc = its
 * scales[12]), before the -32 */
static __device__ __forceinline__ int q3k_scale(int s, const sx_u8 *sc) {
    return ((sc[s & 7] >> (4 * (s >> 3))) & 0xF) | (((sc[8 + (s & 3)] >> (2 * (s >> 2))) & 3) << 4);
}

/* 6-bit scale of sub-block s (0..7) of an iq4_xs super-block b, before the -32 */
static __device__ __forceinline__ int iq4xs_scale(int s, const sx_u8 *b) {
    return ((b[4 + (s >> 1)] >> (4 * (s & 1))) & 0xF) | (((ld16(b + 2) >> (2 * s)) & 3) << 4);
}

/* the iq4_nl value of 4-bit code q (ir/quant_blocks.h SX_IQ4NL_VALUES), from
 * two words of 8 bytes (no table in memory) */
static __device__ __forceinline__ float iq4_val(int q) {
    const unsigned long long v = (q & 8) ? 0x7159453526190d01ull : 0xf6eaddcfbfad9881ull;
    return (float)(sx_i8)(v >> (8 * (q & 7)));
}

/* Element k of a row (any dtype). Same formulas as sx_dtype_dequantize_row. */
template <int T> static __device__ __forceinline__ float dq_elem(const sx_u8 *row, sx_i64 k) {
    if (T == SXT_F32) return ((const float *)row)[k];
    if (T == SXT_F16) return h2f(((const sx_u16 *)row)[k]);
    if (T == SXT_BF16) return bf2f(((const sx_u16 *)row)[k]);
    if (T == SXT_I32) return (float)((const int *)row)[k];
    if (T == SXT_Q8_0) {
        const sx_u8 *b = row + (k / SX_QK) * SX_Q8_0_BYTES;
        return h2f(ld16(b)) * (float)(sx_i8)b[2 + k % SX_QK];
    }
    if (T == SXT_Q4_0) {
        const sx_u8 *b = row + (k / SX_QK) * SX_Q4_0_BYTES;
        const int j = (int)(k % SX_QK);
        const int byte = b[2 + (j & 15)];
        return h2f(ld16(b)) * (float)((j < 16 ? byte & 0xF : byte >> 4) - 8);
    }
    if (T == SXT_Q4_1) {
        const sx_u8 *b = row + (k / SX_QK) * SX_Q4_1_BYTES;
        const int j = (int)(k % SX_QK);
        const int byte = b[4 + (j & 15)];
        return h2f(ld16(b)) * (float)(j < 16 ? byte & 0xF : byte >> 4) + h2f(ld16(b + 2));
    }
    if (T == SXT_Q4_K) {
        const sx_u8 *b = row + (k / SX_QK_K) * SX_Q4_K_BYTES;
        const int j = (int)(k % SX_QK_K), sub = j / 32, l = j % 32;
        const int byte = b[16 + 32 * (j / 64) + l];
        int sc, m;
        q4k_scale_min(sub, b + 4, &sc, &m);
        const float d1 = h2f(ld16(b)) * (float)sc, m1 = h2f(ld16(b + 2)) * (float)m;
        return d1 * (float)(sub & 1 ? byte >> 4 : byte & 0xF) - m1;
    }
    if (T == SXT_Q5_0) { /* {f16 d; u8 qh[4]; u8 qs[16]}: bit 4 of code j is bit j of qh */
        const sx_u8 *b = row + (k / SX_QK) * SX_Q5_0_BYTES;
        const int j = (int)(k % SX_QK);
        const int byte = b[6 + (j & 15)];
        const int q = (j < 16 ? byte & 0xF : byte >> 4) | (int)(((ld32_a2(b + 2) >> j) & 1u) << 4);
        return h2f(ld16(b)) * (float)(q - 16);
    }
    if (T == SXT_Q5_1) { /* {f16 d, m; u8 qh[4]; u8 qs[16]} */
        const sx_u8 *b = row + (k / SX_QK) * SX_Q5_1_BYTES;
        const int j = (int)(k % SX_QK);
        const int byte = b[8 + (j & 15)];
        const int q = (j < 16 ? byte & 0xF : byte >> 4) | (int)(((ld32_a2(b + 4) >> j) & 1u) << 4);
        return h2f(ld16(b)) * (float)q + h2f(ld16(b + 2));
    }
    if (T == SXT_Q5_K) { /* q4_k with qh[32] before qs: bit 4 of element l of sub-block sub is bit sub of qh[l] */
        const sx_u8 *b = row + (k / SX_QK_K) * SX_Q5_K_BYTES;
        const int j = (int)(k % SX_QK_K), sub = j / 32, l = j % 32;
        const int byte = b[48 + 32 * (j / 64) + l];
        const int q = (sub & 1 ? byte >> 4 : byte & 0xF) | (((b[16 + l] >> sub) & 1) << 4);
        int sc, m;
        q4k_scale_min(sub, b + 4, &sc, &m);
        const float d1 = h2f(ld16(b)) * (float)sc, m1 = h2f(ld16(b + 2)) * (float)m;
        return d1 * (float)q - m1;
    }
    if (T == SXT_Q2_K || T == SXT_Q3_K) { /* 2 low bits of element j at qs[32 (j / 128) + j % 32] >> 2 ((j % 128) / 32) */
        const sx_u8 *b = row + (k / SX_QK_K) * (T == SXT_Q2_K ? SX_Q2_K_BYTES : SX_Q3_K_BYTES);
        const int j = (int)(k % SX_QK_K), s = j / 16;
        const int q = (b[(T == SXT_Q2_K ? 16 : 32) + 32 * (j / 128) + j % 32] >> (2 * ((j % 128) / 32))) & 3;
        if (T == SXT_Q2_K) {
            const float dl = h2f(ld16(b + 80)) * (float)(b[s] & 0xF), ml = h2f(ld16(b + 82)) * (float)(b[s] >> 4);
            return dl * (float)q - ml;
        }
        const int hi = (b[j % 32] >> (j / 32)) & 1;
        return h2f(ld16(b + 108)) * (float)(q3k_scale(s, b + 96) - 32) * (float)(q - (hi ? 0 : 4));
    }
    if (T == SXT_IQ4_NL) {
        const sx_u8 *b = row + (k / SX_QK) * SX_IQ4_NL_BYTES;
        const int j = (int)(k % SX_QK), byte = b[2 + (j & 15)];
        return h2f(ld16(b)) * iq4_val(j < 16 ? byte & 0xF : byte >> 4);
    }
    if (T == SXT_IQ4_XS) {
        const sx_u8 *b = row + (k / SX_QK_K) * SX_IQ4_XS_BYTES;
        const int j = (int)(k % SX_QK_K), sub = j / 32, l = j % 32, byte = b[8 + 16 * sub + (l & 15)];
        return h2f(ld16(b)) * (float)(iq4xs_scale(sub, b) - 32) * iq4_val(l < 16 ? byte & 0xF : byte >> 4);
    }
    if (T == SXT_Q6_K) {
        const sx_u8 *b = row + (k / SX_QK_K) * SX_Q6_K_BYTES;
        const int j = (int)(k % SX_QK_K), n = j / 128, r = j % 128, quarter = r / 32, l = r % 32;
        const int lo = b[64 * n + (quarter & 1) * 32 + l];
        const int q = ((quarter < 2 ? lo & 0xF : lo >> 4) | (((b[128 + 32 * n + l] >> (2 * quarter)) & 3) << 4)) - 32;
        const float d = h2f(ld16(b + 208));
        return d * (float)(sx_i8)b[192 + 8 * n + l / 16 + 2 * quarter] * (float)q;
    }
    return 0.0f;
}

/* Runtime-dtype element of a row (get_rows and other cheap paths). */
static __device__ __forceinline__ float dq_elem_rt(const sx_u8 *row, sx_i64 k, int dt) {
    switch (dt) {
    case SXT_F32: return dq_elem<SXT_F32>(row, k);
    case SXT_F16: return dq_elem<SXT_F16>(row, k);
    case SXT_BF16: return dq_elem<SXT_BF16>(row, k);
    case SXT_I32: return dq_elem<SXT_I32>(row, k);
    case SXT_Q8_0: return dq_elem<SXT_Q8_0>(row, k);
    case SXT_Q4_0: return dq_elem<SXT_Q4_0>(row, k);
    case SXT_Q4_1: return dq_elem<SXT_Q4_1>(row, k);
    case SXT_Q4_K: return dq_elem<SXT_Q4_K>(row, k);
    case SXT_Q6_K: return dq_elem<SXT_Q6_K>(row, k);
    case SXT_Q5_0: return dq_elem<SXT_Q5_0>(row, k);
    case SXT_Q5_1: return dq_elem<SXT_Q5_1>(row, k);
    case SXT_Q5_K: return dq_elem<SXT_Q5_K>(row, k);
    case SXT_Q2_K: return dq_elem<SXT_Q2_K>(row, k);
    case SXT_Q3_K: return dq_elem<SXT_Q3_K>(row, k);
    case SXT_IQ4_NL: return dq_elem<SXT_IQ4_NL>(row, k);
    case SXT_IQ4_XS: return dq_elem<SXT_IQ4_XS>(row, k);
    default: return 0.0f;
    }
}

/* ---- chunk decoding for the matvec kernels ----
 * qchunk<T>: a row is split into K / CH chunks; chunk c decodes to RUNS runs
 * of 4 consecutive weights, run r starting at element kpos[r]. ALIGN is the
 * byte alignment the row start needs. Neighbouring lanes take neighbouring
 * chunks, so a warp reads a contiguous stretch of the row. */
template <int T> struct qchunk;

template <> struct qchunk<SXT_F32> {
    enum { CH = 8, RUNS = 2, ALIGN = 16 };
    static __device__ __forceinline__ void decode(const sx_u8 *row, int c, float *w, int *kpos) {
        const float4 a = ((const float4 *)row)[2 * c], b = ((const float4 *)row)[2 * c + 1];
        w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w, w[4] = b.x, w[5] = b.y, w[6] = b.z, w[7] = b.w;
        kpos[0] = 8 * c, kpos[1] = 8 * c + 4;
    }
};

template <int T> struct qchunk_half16 { /* f16 and bf16: 8 values in 16 bytes */
    enum { CH = 8, RUNS = 2, ALIGN = 16 };
    static __device__ __forceinline__ void decode(const sx_u8 *row, int c, float *w, int *kpos) {
        const uint4 u = ((const uint4 *)row)[c];
        const sx_u32 v[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            w[2 * i] = T == SXT_F16 ? h2f((sx_u16)(v[i] & 0xffff)) : bf2f((sx_u16)(v[i] & 0xffff));
            w[2 * i + 1] = T == SXT_F16 ? h2f((sx_u16)(v[i] >> 16)) : bf2f((sx_u16)(v[i] >> 16));
        }
        kpos[0] = 8 * c, kpos[1] = 8 * c + 4;
    }
};
template <> struct qchunk<SXT_F16> : qchunk_half16<SXT_F16> {};
template <> struct qchunk<SXT_BF16> : qchunk_half16<SXT_BF16> {};

template <> struct qchunk<SXT_Q8_0> {
    enum { CH = 8, RUNS = 2, ALIGN = 2 };
    static __device__ __forceinline__ void decode(const sx_u8 *row, int c, float *w, int *kpos) {
        const int b = c >> 2, j = c & 3;
        const sx_u8 *blk = row + b * SX_Q8_0_BYTES;
        const float d = h2f(ld16(blk));
        const sx_u32 q0 = ld32_a2(blk + 2 + 8 * j), q1 = ld32_a2(blk + 6 + 8 * j);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            w[i] = d * (float)(sx_i8)(q0 >> (8 * i));
            w[4 + i] = d * (float)(sx_i8)(q1 >> (8 * i));
        }
        kpos[0] = SX_QK * b + 8 * j, kpos[1] = SX_QK * b + 8 * j + 4;
    }
};

/* q4_0 and iq4_nl: {f16 d; u8 qs[16]}, x = d * value(code); low nibbles j < 16 */
template <int T> static __device__ __forceinline__ float nib_val(int q) { return T == SXT_IQ4_NL ? iq4_val(q) : (float)(q - 8); }
template <int T> struct qchunk_d_nib {
    enum { CH = 8, RUNS = 2, ALIGN = 2 };
    static __device__ __forceinline__ void decode(const sx_u8 *row, int c, float *w, int *kpos) {
        const int b = c >> 2, j = c & 3;
        const sx_u8 *blk = row + b * SX_Q4_0_BYTES; /* = SX_IQ4_NL_BYTES */
        const float d = h2f(ld16(blk));
        const sx_u32 q = ld32_a2(blk + 2 + 4 * j);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            w[i] = d * nib_val<T>((int)((q >> (8 * i)) & 0xF));
            w[4 + i] = d * nib_val<T>((int)((q >> (8 * i + 4)) & 0xF));
        }
        kpos[0] = SX_QK * b + 4 * j, kpos[1] = SX_QK * b + 16 + 4 * j;
    }
};
template <> struct qchunk<SXT_Q4_0> : qchunk_d_nib<SXT_Q4_0> {};
template <> struct qchunk<SXT_IQ4_NL> : qchunk_d_nib<SXT_IQ4_NL> {};

template <> struct qchunk<SXT_Q4_1> {
    enum { CH = 8, RUNS = 2, ALIGN = 4 };
    static __device__ __forceinline__ void decode(const sx_u8 *row, int c, float *w, int *kpos) {
        const int b = c >> 2, j = c & 3;
        const sx_u8 *blk = row + b * SX_Q4_1_BYTES;
        const sx_u32 dm = ld32(blk), q = ld32(blk + 4 + 4 * j);
        const float d = h2f((sx_u16)(dm & 0xffff)), m = h2f((sx_u16)(dm >> 16));
#pragma unroll
        for (int i = 0; i < 4; i++) {
            w[i] = d * (float)((q >> (8 * i)) & 0xF) + m;
            w[4 + i] = d * (float)((q >> (8 * i + 4)) & 0xF) + m;
        }
        kpos[0] = SX_QK * b + 4 * j, kpos[1] = SX_QK * b + 16 + 4 * j;
    }
};

template <> struct qchunk<SXT_Q4_K> {
    enum { CH = 8, RUNS = 2, ALIGN = 4 };
    static __device__ __forceinline__ void decode(const sx_u8 *row, int c, float *w, int *kpos) {
        const int b = c >> 5, g = (c >> 3) & 3, i = c & 7;
        const sx_u8 *blk = row + b * SX_Q4_K_BYTES;
        const sx_u32 dm = ld32(blk), q = ld32(blk + 16 + 32 * g + 4 * i);
        const float d = h2f((sx_u16)(dm & 0xffff)), dmin = h2f((sx_u16)(dm >> 16));
        int sc0, m0, sc1, m1;
        q4k_scale_min(2 * g, blk + 4, &sc0, &m0);
        q4k_scale_min(2 * g + 1, blk + 4, &sc1, &m1);
        const float d0 = d * (float)sc0, mm0 = dmin * (float)m0, d1 = d * (float)sc1, mm1 = dmin * (float)m1;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            w[e] = d0 * (float)((q >> (8 * e)) & 0xF) - mm0;
            w[4 + e] = d1 * (float)((q >> (8 * e + 4)) & 0xF) - mm1;
        }
        kpos[0] = SX_QK_K * b + 64 * g + 4 * i, kpos[1] = SX_QK_K * b + 64 * g + 32 + 4 * i;
    }
};

/* q5_0 / q5_1: as q4_0 / q4_1, plus bit 4 of code e from the block's qh word */
template <> struct qchunk<SXT_Q5_0> {
    enum { CH = 8, RUNS = 2, ALIGN = 2 };
    static __device__ __forceinline__ void decode(const sx_u8 *row, int c, float *w, int *kpos) {
        const int b = c >> 2, j = c & 3;
        const sx_u8 *blk = row + b * SX_Q5_0_BYTES;
        const float d = h2f(ld16(blk));
        const sx_u32 qh = ld32_a2(blk + 2), q = ld32_a2(blk + 6 + 4 * j);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            w[i] = d * (float)((int)(((q >> (8 * i)) & 0xF) | (((qh >> (4 * j + i)) & 1u) << 4)) - 16);
            w[4 + i] = d * (float)((int)(((q >> (8 * i + 4)) & 0xF) | (((qh >> (16 + 4 * j + i)) & 1u) << 4)) - 16);
        }
        kpos[0] = SX_QK * b + 4 * j, kpos[1] = SX_QK * b + 16 + 4 * j;
    }
};

template <> struct qchunk<SXT_Q5_1> {
    enum { CH = 8, RUNS = 2, ALIGN = 4 };
    static __device__ __forceinline__ void decode(const sx_u8 *row, int c, float *w, int *kpos) {
        const int b = c >> 2, j = c & 3;
        const sx_u8 *blk = row + b * SX_Q5_1_BYTES;
        const sx_u32 dm = ld32(blk), qh = ld32(blk + 4), q = ld32(blk + 8 + 4 * j);
        const float d = h2f((sx_u16)(dm & 0xffff)), m = h2f((sx_u16)(dm >> 16));
#pragma unroll
        for (int i = 0; i < 4; i++) {
            w[i] = d * (float)(((q >> (8 * i)) & 0xF) | (((qh >> (4 * j + i)) & 1u) << 4)) + m;
            w[4 + i] = d * (float)(((q >> (8 * i + 4)) & 0xF) | (((qh >> (16 + 4 * j + i)) & 1u) << 4)) + m;
        }
        kpos[0] = SX_QK * b + 4 * j, kpos[1] = SX_QK * b + 16 + 4 * j;
    }
};

/* q5_k: as q4_k; bits 2g (low nibbles) and 2g+1 (high nibbles) of qh[l] */
template <> struct qchunk<SXT_Q5_K> {
    enum { CH = 8, RUNS = 2, ALIGN = 4 };
    static __device__ __forceinline__ void decode(const sx_u8 *row, int c, float *w, int *kpos) {
        const int b = c >> 5, g = (c >> 3) & 3, i = c & 7;
        const sx_u8 *blk = row + b * SX_Q5_K_BYTES;
        const sx_u32 dm = ld32(blk), q = ld32(blk + 48 + 32 * g + 4 * i), h = ld32(blk + 16 + 4 * i);
        const float d = h2f((sx_u16)(dm & 0xffff)), dmin = h2f((sx_u16)(dm >> 16));
        int sc0, m0, sc1, m1;
        q4k_scale_min(2 * g, blk + 4, &sc0, &m0);
        q4k_scale_min(2 * g + 1, blk + 4, &sc1, &m1);
        const float d0 = d * (float)sc0, mm0 = dmin * (float)m0, d1 = d * (float)sc1, mm1 = dmin * (float)m1;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            w[e] = d0 * (float)(((q >> (8 * e)) & 0xF) | (((h >> (8 * e + 2 * g)) & 1u) << 4)) - mm0;
            w[4 + e] = d1 * (float)(((q >> (8 * e + 4)) & 0xF) | (((h >> (8 * e + 2 * g + 1)) & 1u) << 4)) - mm1;
        }
        kpos[0] = SX_QK_K * b + 64 * g + 4 * i, kpos[1] = SX_QK_K * b + 64 * g + 32 + 4 * i;
    }
};

/* q2_k / q3_k: one word of qs (elements 4i..4i+3 of a 32-byte half n) holds
 * 4 runs, one per 2-bit shift g (elements 128 n + 32 g + 4 i); q3_k's bit 2
 * is bit 4 n + g of the matching hmask bytes */
template <> struct qchunk<SXT_Q2_K> {
    enum { CH = 16, RUNS = 4, ALIGN = 4 };
    static __device__ __forceinline__ void decode(const sx_u8 *row, int c, float *w, int *kpos) {
        const int b = c >> 4, n = (c >> 3) & 1, i = c & 7;
        const sx_u8 *blk = row + b * SX_Q2_K_BYTES;
        const sx_u32 q = ld32(blk + 16 + 32 * n + 4 * i), dm = ld32(blk + 80);
        const float d = h2f((sx_u16)(dm & 0xffff)), dmin = h2f((sx_u16)(dm >> 16));
#pragma unroll
        for (int g = 0; g < 4; g++) {
            const int sc = blk[8 * n + 2 * g + (i >> 2)];
            const float dl = d * (float)(sc & 0xF), ml = dmin * (float)(sc >> 4);
#pragma unroll
            for (int e = 0; e < 4; e++) w[4 * g + e] = dl * (float)((q >> (8 * e + 2 * g)) & 3) - ml;
            kpos[g] = SX_QK_K * b + 128 * n + 32 * g + 4 * i;
        }
    }
};

template <> struct qchunk<SXT_Q3_K> {
    enum { CH = 16, RUNS = 4, ALIGN = 2 };
    static __device__ __forceinline__ void decode(const sx_u8 *row, int c, float *w, int *kpos) {
        const int b = c >> 4, n = (c >> 3) & 1, i = c & 7;
        const sx_u8 *blk = row + b * SX_Q3_K_BYTES;
        const sx_u32 q = ld32_a2(blk + 32 + 32 * n + 4 * i), h = ld32_a2(blk + 4 * i);
        const float d = h2f(ld16(blk + 108));
#pragma unroll
        for (int g = 0; g < 4; g++) {
            const float dl = d * (float)(q3k_scale(8 * n + 2 * g + (i >> 2), blk + 96) - 32);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int hi = (int)(h >> (8 * e + 4 * n + g)) & 1;
                w[4 * g + e] = dl * (float)((int)((q >> (8 * e + 2 * g)) & 3) - (hi ? 0 : 4));
            }
            kpos[g] = SX_QK_K * b + 128 * n + 32 * g + 4 * i;
        }
    }
};

/* iq4_xs: as iq4_nl (qchunk_d_nib), with its sub-block scale */
template <> struct qchunk<SXT_IQ4_XS> {
    enum { CH = 8, RUNS = 2, ALIGN = 4 };
    static __device__ __forceinline__ void decode(const sx_u8 *row, int c, float *w, int *kpos) {
        const int b = c >> 5, sub = (c >> 2) & 7, j = c & 3;
        const sx_u8 *blk = row + b * SX_IQ4_XS_BYTES;
        const float dl = h2f(ld16(blk)) * (float)(iq4xs_scale(sub, blk) - 32);
        const sx_u32 q = ld32(blk + 8 + 16 * sub + 4 * j);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            w[i] = dl * iq4_val((int)(q >> (8 * i)) & 0xF);
            w[4 + i] = dl * iq4_val((int)(q >> (8 * i + 4)) & 0xF);
        }
        kpos[0] = SX_QK_K * b + 32 * sub + 4 * j, kpos[1] = SX_QK_K * b + 32 * sub + 16 + 4 * j;
    }
};

template <> struct qchunk<SXT_Q6_K> {
    enum { CH = 16, RUNS = 4, ALIGN = 2 };
    static __device__ __forceinline__ void decode(const sx_u8 *row, int c, float *w, int *kpos) {
        const int b = c >> 4, n = (c >> 3) & 1, i = c & 7;
        const sx_u8 *blk = row + b * SX_Q6_K_BYTES;
        const sx_u32 l0 = ld32_a2(blk + 64 * n + 4 * i), l1 = ld32_a2(blk + 64 * n + 32 + 4 * i);
        const sx_u32 h = ld32_a2(blk + 128 + 32 * n + 4 * i);
        const sx_i8 *sc = (const sx_i8 *)(blk + 192 + 8 * n + (i >> 2));
        const float d = h2f(ld16(blk + 208));
        const float s0 = d * (float)sc[0], s1 = d * (float)sc[2], s2 = d * (float)sc[4], s3 = d * (float)sc[6];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int lo0 = (int)(l0 >> (8 * e)) & 0xFF, lo1 = (int)(l1 >> (8 * e)) & 0xFF, hh = (int)(h >> (8 * e)) & 0xFF;
            w[e] = s0 * (float)(((lo0 & 0xF) | ((hh & 3) << 4)) - 32);
            w[4 + e] = s1 * (float)(((lo1 & 0xF) | (((hh >> 2) & 3) << 4)) - 32);
            w[8 + e] = s2 * (float)(((lo0 >> 4) | (((hh >> 4) & 3) << 4)) - 32);
            w[12 + e] = s3 * (float)(((lo1 >> 4) | (((hh >> 6) & 3) << 4)) - 32);
        }
        const int k0 = SX_QK_K * b + 128 * n + 4 * i;
        kpos[0] = k0, kpos[1] = k0 + 32, kpos[2] = k0 + 64, kpos[3] = k0 + 96;
    }
};

} /* namespace SX_NS */

#endif
