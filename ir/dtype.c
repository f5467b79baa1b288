/* ir/dtype.c — the dtype table and the reference (scalar) conversion rules.
 * These are the exact block formats of GGUF; every backend's dequantisation
 * is tested against the functions here. */
#include "ir/dtype.h"

#include <math.h>
#include <string.h>
#include <strings.h>

static const sx_dtype_info g_dtypes[SX_DTYPE_COUNT] = {
#define SX_DTYPE(NAME, str, ggml, bs, ts, q) [SX_DTYPE_##NAME] = {str, ggml, bs, ts, q},
#include "ir/dtype.def"
#undef SX_DTYPE
};

_Static_assert(sizeof(sx_block_q4_0) == 18 && sizeof(sx_block_q6_k) == 210, "block sizes match dtype.def");

const sx_dtype_info *sx_dtype_get(sx_dtype t) {
    return (unsigned)t < SX_DTYPE_COUNT ? &g_dtypes[t] : NULL;
}

const char *sx_dtype_name(sx_dtype t) {
    const sx_dtype_info *i = sx_dtype_get(t);
    return i ? i->name : "invalid";
}

bool sx_dtype_from_ggml(int ggml_type, sx_dtype *out) {
    for (int t = 0; t < SX_DTYPE_COUNT; t++) {
        if (g_dtypes[t].ggml_type == ggml_type) {
            *out = (sx_dtype)t;
            return true;
        }
    }
    return false;
}

bool sx_dtype_from_name(const char *name, sx_dtype *out) {
    for (int t = 0; t < SX_DTYPE_COUNT; t++) {
        if (strcasecmp(g_dtypes[t].name, name) == 0) {
            *out = (sx_dtype)t;
            return true;
        }
    }
    return false;
}

size_t sx_dtype_row_size(sx_dtype t, int64_t n) {
    const sx_dtype_info *i = sx_dtype_get(t);
    if (!i || n < 0 || n % i->block_size != 0) return 0;
    return (size_t)(n / i->block_size) * (size_t)i->type_size;
}

/* ---- half / bfloat16 ---- */
static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float sx_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) {
        if (mant == 0) return u2f(sign);
        /* subnormal: value = mant * 2^-24 */
        float v = (float)mant * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (exp == 31) return u2f(sign | 0x7f800000u | (mant << 13));
    return u2f(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t sx_fp32_to_fp16(float f) {
    uint32_t u = f2u(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0));
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (abs < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        float a = u2f(abs) * 16777216.0f; /* in units of 2^-24 */
        uint32_t m = (uint32_t)lrintf(a);  /* round to nearest even */
        return (uint16_t)(sign | m);
    }
    uint32_t mant = abs & 0x7fffff;
    uint32_t exp = (abs >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float sx_bf16_to_fp32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t sx_fp32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* ---- dequantisation ---- */
static void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void dequant_q4_k(const sx_block_q4_k *b, float *y) {
    const float d = sx_fp16_to_fp32(b->d), dmin = sx_fp16_to_fp32(b->dmin);
    const uint8_t *q = b->qs;
    for (int j = 0; j < SX_QK_K; j += 64) {
        uint8_t sc, m;
        get_scale_min_k4(j / 32, b->scales, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        get_scale_min_k4(j / 32 + 1, b->scales, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
        q += 32;
    }
}

static void dequant_q5_k(const sx_block_q5_k *b, float *y) {
    const float d = sx_fp16_to_fp32(b->d), dmin = sx_fp16_to_fp32(b->dmin);
    const uint8_t *q = b->qs;
    for (int j = 0; j < SX_QK_K; j += 64) {
        const int c = j / 64; /* qh bits 2c (low nibbles) and 2c+1 (high nibbles) */
        uint8_t sc, m;
        get_scale_min_k4(j / 32, b->scales, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        get_scale_min_k4(j / 32 + 1, b->scales, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * ((q[l] & 0xF) | (((b->qh[l] >> (2 * c)) & 1) << 4)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * ((q[l] >> 4) | (((b->qh[l] >> (2 * c + 1)) & 1) << 4)) - m2;
        q += 32;
    }
}

/* 5-bit code j of a q5_0/q5_1 block: nibble (j < 16 low, else high) | bit j of qh */
static inline int q5_code(const uint8_t qh[4], const uint8_t qs[16], int j) {
    uint32_t h;
    memcpy(&h, qh, 4);
    return (int)(((j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4)) | (((h >> j) & 1) << 4));
}

static void dequant_q6_k(const sx_block_q6_k *b, float *y) {
    const float d = sx_fp16_to_fp32(b->d);
    const uint8_t *ql = b->ql, *qh = b->qh;
    const int8_t *sc = b->scales;
    for (int n = 0; n < SX_QK_K; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * sc[is + 0] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

/* q2_k / q3_k: element i's 2 low bits, at qs[32 * (i / 128) + i % 32] bits 2 * ((i % 128) / 32) */
static inline int q2_bits(const uint8_t *qs, int i) { return (qs[32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3; }

/* 6-bit scale s (0..15) of a q3_k block, before the -32 */
static inline int q3k_scale(const uint8_t sc[12], int s) {
    return ((sc[s % 8] >> (4 * (s / 8))) & 0xF) | (((sc[8 + s % 4] >> (2 * (s / 4))) & 3) << 4);
}

static void dequant_q2_k(const sx_block_q2_k *b, float *y) {
    const float d = sx_fp16_to_fp32(b->d), dmin = sx_fp16_to_fp32(b->dmin);
    for (int s = 0; s < 16; s++) {
        const float dl = d * (float)(b->scales[s] & 0xF), ml = dmin * (float)(b->scales[s] >> 4);
        for (int i = 16 * s; i < 16 * s + 16; i++) y[i] = dl * (float)q2_bits(b->qs, i) - ml;
    }
}

static void dequant_q3_k(const sx_block_q3_k *b, float *y) {
    const float d = sx_fp16_to_fp32(b->d);
    for (int s = 0; s < 16; s++) {
        const float dl = d * (float)(q3k_scale(b->scales, s) - 32);
        for (int i = 16 * s; i < 16 * s + 16; i++) {
            const int hi = (b->hmask[i % 32] >> (i / 32)) & 1;
            y[i] = dl * (float)(q2_bits(b->qs, i) - (hi ? 0 : 4));
        }
    }
}

static const int8_t k_iq4nl[16] = SX_IQ4NL_VALUES;

/* 32 values of one iq4_nl-coded group with scale dl */
static void dequant_iq4_32(const uint8_t qs[16], float dl, float *y) {
    for (int j = 0; j < 16; j++) {
        y[j] = dl * (float)k_iq4nl[qs[j] & 0xF];
        y[j + 16] = dl * (float)k_iq4nl[qs[j] >> 4];
    }
}

static inline int iq4xs_scale(const sx_block_iq4_xs *b, int sub) {
    return ((b->scales_l[sub / 2] >> (4 * (sub % 2))) & 0xF) | (((b->scales_h >> (2 * sub)) & 3) << 4);
}

static void dequant_iq4_xs(const sx_block_iq4_xs *b, float *y) {
    const float d = sx_fp16_to_fp32(b->d);
    for (int sub = 0; sub < 8; sub++) dequant_iq4_32(b->qs + 16 * sub, d * (float)(iq4xs_scale(b, sub) - 32), y + 32 * sub);
}

/* a K-type case: fn(block, out) on each super-block of 256 */
#define SX_DEQ_BLOCKS(T, block_t, fn)                                                 \
    case SX_DTYPE_##T: {                                                              \
        const block_t *b = src;                                                       \
        for (int64_t i = 0; i < n / SX_QK_K; i++) fn(&b[i], dst + i * SX_QK_K);       \
    } break;

void sx_dtype_dequantize_row(sx_dtype t, const void *src, float *dst, int64_t n) {
    switch (t) {
    case SX_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case SX_DTYPE_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = sx_fp16_to_fp32(s[i]);
    } break;
    case SX_DTYPE_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = sx_bf16_to_fp32(s[i]);
    } break;
    case SX_DTYPE_I32: {
        const int32_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
    } break;
    case SX_DTYPE_Q8_0: {
        const sx_block_q8_0 *b = src;
        for (int64_t i = 0; i < n / SX_QK; i++) {
            const float d = sx_fp16_to_fp32(b[i].d);
            for (int j = 0; j < SX_QK; j++) dst[i * SX_QK + j] = d * b[i].qs[j];
        }
    } break;
    case SX_DTYPE_Q4_0: {
        const sx_block_q4_0 *b = src;
        for (int64_t i = 0; i < n / SX_QK; i++) {
            const float d = sx_fp16_to_fp32(b[i].d);
            for (int j = 0; j < SX_QK / 2; j++) {
                dst[i * SX_QK + j] = d * ((b[i].qs[j] & 0xF) - 8);
                dst[i * SX_QK + j + SX_QK / 2] = d * ((b[i].qs[j] >> 4) - 8);
            }
        }
    } break;
    case SX_DTYPE_Q4_1: {
        const sx_block_q4_1 *b = src;
        for (int64_t i = 0; i < n / SX_QK; i++) {
            const float d = sx_fp16_to_fp32(b[i].d), m = sx_fp16_to_fp32(b[i].m);
            for (int j = 0; j < SX_QK / 2; j++) {
                dst[i * SX_QK + j] = d * (b[i].qs[j] & 0xF) + m;
                dst[i * SX_QK + j + SX_QK / 2] = d * (b[i].qs[j] >> 4) + m;
            }
        }
    } break;
    SX_DEQ_BLOCKS(Q4_K, sx_block_q4_k, dequant_q4_k)
    SX_DEQ_BLOCKS(Q6_K, sx_block_q6_k, dequant_q6_k)
    case SX_DTYPE_Q5_0: {
        const sx_block_q5_0 *b = src;
        for (int64_t i = 0; i < n / SX_QK; i++) {
            const float d = sx_fp16_to_fp32(b[i].d);
            for (int j = 0; j < SX_QK; j++) dst[i * SX_QK + j] = d * (q5_code(b[i].qh, b[i].qs, j) - 16);
        }
    } break;
    case SX_DTYPE_Q5_1: {
        const sx_block_q5_1 *b = src;
        for (int64_t i = 0; i < n / SX_QK; i++) {
            const float d = sx_fp16_to_fp32(b[i].d), m = sx_fp16_to_fp32(b[i].m);
            for (int j = 0; j < SX_QK; j++) dst[i * SX_QK + j] = d * q5_code(b[i].qh, b[i].qs, j) + m;
        }
    } break;
    SX_DEQ_BLOCKS(Q5_K, sx_block_q5_k, dequant_q5_k)
    SX_DEQ_BLOCKS(Q2_K, sx_block_q2_k, dequant_q2_k)
    SX_DEQ_BLOCKS(Q3_K, sx_block_q3_k, dequant_q3_k)
    case SX_DTYPE_IQ4_NL: {
        const sx_block_iq4_nl *b = src;
        for (int64_t i = 0; i < n / SX_QK; i++) dequant_iq4_32(b[i].qs, sx_fp16_to_fp32(b[i].d), dst + i * SX_QK);
    } break;
    SX_DEQ_BLOCKS(IQ4_XS, sx_block_iq4_xs, dequant_iq4_xs)
    case SX_DTYPE_COUNT: break;
    }
}

/* ---- quantisation (round to nearest; for tests and the model writer) ---- */
static float absmax(const float *x, int n, float *out_min, float *out_max) {
    float amax = 0, mn = x[0], mx = x[0];
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]);
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
    }
    if (out_min) *out_min = mn;
    if (out_max) *out_max = mx;
    return amax;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* 32 five-bit codes -> q5_0/q5_1 qh (bit j = bit 4 of code j) and nibbles */
static void q5_pack(const uint8_t q[SX_QK], uint8_t qh[4], uint8_t qs[SX_QK / 2]) {
    uint32_t h = 0;
    for (int j = 0; j < SX_QK; j++) h |= (uint32_t)(q[j] >> 4) << j;
    for (int j = 0; j < SX_QK / 2; j++) qs[j] = (uint8_t)((q[j] & 0xF) | ((q[j + SX_QK / 2] & 0xF) << 4));
    memcpy(qh, &h, 4);
}

/* Shared by q4_k and q5_k (qmax 15 or 31): 6-bit scales/mins into scales[12],
 * codes into q[256] (natural order); d/dmin as f16 bits. */
static void quant_kmins(const float *x, int qmax, sx_fp16_bits *out_d, sx_fp16_bits *out_dmin, uint8_t scales[12],
                        uint8_t q[SX_QK_K]) {
    /* per sub-block of 32: scale = (max-min)/qmax, min = -min (>= 0); then the
     * 8 scales and mins are quantised to 6 bits against the super-block d/dmin. */
    float sc[8], mn[8], max_sc = 0, max_mn = 0;
    for (int j = 0; j < 8; j++) {
        float lo, hi;
        absmax(x + 32 * j, 32, &lo, &hi);
        if (lo > 0) lo = 0;
        sc[j] = (hi - lo) / (float)qmax;
        mn[j] = -lo;
        if (sc[j] > max_sc) max_sc = sc[j];
        if (mn[j] > max_mn) max_mn = mn[j];
    }
    const float d = max_sc / 63.0f, dmin = max_mn / 63.0f;
    *out_d = sx_fp32_to_fp16(d);
    *out_dmin = sx_fp32_to_fp16(dmin);
    const float dq = sx_fp16_to_fp32(*out_d), dmq = sx_fp16_to_fp32(*out_dmin);
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)(dq > 0 ? clampi((int)lrintf(sc[j] / dq), 0, 63) : 0);
        lm[j] = (uint8_t)(dmq > 0 ? clampi((int)lrintf(mn[j] / dmq), 0, 63) : 0);
    }
    memset(scales, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            scales[j] = ls[j];
            scales[j + 4] = lm[j];
        } else {
            scales[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
    for (int j = 0; j < SX_QK_K; j += 64) {
        for (int h = 0; h < 2; h++) {
            uint8_t s, m;
            get_scale_min_k4(j / 32 + h, scales, &s, &m);
            const float dd = dq * s, mm = dmq * m;
            for (int l = 0; l < 32; l++)
                q[j + 32 * h + l] = (uint8_t)(dd > 0 ? clampi((int)lrintf((x[j + 32 * h + l] + mm) / dd), 0, qmax) : 0);
        }
    }
}

static void quant_q4_k(const float *x, sx_block_q4_k *b) {
    uint8_t q[SX_QK_K];
    quant_kmins(x, 15, &b->d, &b->dmin, b->scales, q);
    for (int j = 0; j < SX_QK_K; j += 64)
        for (int l = 0; l < 32; l++) b->qs[j / 2 + l] = (uint8_t)(q[j + l] | (q[j + 32 + l] << 4));
}

static void quant_q5_k(const float *x, sx_block_q5_k *b) {
    uint8_t q[SX_QK_K];
    quant_kmins(x, 31, &b->d, &b->dmin, b->scales, q);
    memset(b->qh, 0, sizeof b->qh);
    for (int j = 0; j < SX_QK_K; j += 64) {
        const int c = j / 64;
        for (int l = 0; l < 32; l++) {
            const uint8_t lo = q[j + l], hi = q[j + 32 + l];
            b->qs[j / 2 + l] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
            b->qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
        }
    }
}

static void quant_q6_k(const float *x, sx_block_q6_k *b) {
    float sc[16], max_sc = 0;
    for (int j = 0; j < 16; j++) {
        sc[j] = absmax(x + 16 * j, 16, NULL, NULL) / 31.0f;
        if (sc[j] > max_sc) max_sc = sc[j];
    }
    const float d = max_sc / 127.0f;
    b->d = sx_fp32_to_fp16(d);
    const float dq = sx_fp16_to_fp32(b->d);
    for (int j = 0; j < 16; j++) b->scales[j] = (int8_t)(dq > 0 ? clampi((int)lrintf(sc[j] / dq), -128, 127) : 0);
    uint8_t q[SX_QK_K];
    for (int i = 0; i < SX_QK_K; i++) {
        const float dd = dq * b->scales[i / 16];
        q[i] = (uint8_t)(dd != 0 ? clampi((int)lrintf(x[i] / dd), -32, 31) + 32 : 32);
    }
    memset(b->ql, 0, sizeof b->ql);
    memset(b->qh, 0, sizeof b->qh);
    for (int n = 0; n < SX_QK_K; n += 128) {
        uint8_t *ql = b->ql + n / 2, *qh = b->qh + n / 4;
        for (int l = 0; l < 32; l++) {
            const uint8_t q1 = q[n + l], q2 = q[n + l + 32], q3 = q[n + l + 64], q4 = q[n + l + 96];
            ql[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
            ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
            qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
    }
}

/* value of largest magnitude, with its sign */
static float signed_max(const float *x, int n) {
    float mx = 0;
    for (int j = 0; j < n; j++) if (fabsf(x[j]) > fabsf(mx)) mx = x[j];
    return mx;
}

/* element i's 2 low bits into q2_k / q3_k qs (zeroed by the caller) */
static inline void q2_put(uint8_t *qs, int i, int q) { qs[32 * (i / 128) + i % 32] |= (uint8_t)((q & 3) << (2 * ((i % 128) / 32))); }

/* q2_k: per sub-block of 16 scale = (max-min)/3, min = -min (>= 0), both
 * rounded to 4 bits against d = max scale / 15, dmin = max min / 15 */
static void quant_q2_k(const float *x, sx_block_q2_k *b) {
    float sc[16], mn[16], max_sc = 0, max_mn = 0;
    for (int s = 0; s < 16; s++) {
        float lo, hi;
        absmax(x + 16 * s, 16, &lo, &hi);
        if (lo > 0) lo = 0;
        sc[s] = (hi - lo) / 3.0f;
        mn[s] = -lo;
        if (sc[s] > max_sc) max_sc = sc[s];
        if (mn[s] > max_mn) max_mn = mn[s];
    }
    b->d = sx_fp32_to_fp16(max_sc / 15.0f);
    b->dmin = sx_fp32_to_fp16(max_mn / 15.0f);
    const float dq = sx_fp16_to_fp32(b->d), dmq = sx_fp16_to_fp32(b->dmin);
    memset(b->qs, 0, sizeof b->qs);
    for (int s = 0; s < 16; s++) {
        const int ls = dq > 0 ? clampi((int)lrintf(sc[s] / dq), 0, 15) : 0;
        const int lm = dmq > 0 ? clampi((int)lrintf(mn[s] / dmq), 0, 15) : 0;
        b->scales[s] = (uint8_t)(ls | (lm << 4));
        const float dd = dq * (float)ls, mm = dmq * (float)lm;
        for (int i = 16 * s; i < 16 * s + 16; i++) q2_put(b->qs, i, dd > 0 ? clampi((int)lrintf((x[i] + mm) / dd), 0, 3) : 0);
    }
}

/* q3_k: per sub-block of 16 the value of largest magnitude maps to -4; the
 * 16 signed scales to 6 bits (-32..31) against d (the largest maps to -32) */
static void quant_q3_k(const float *x, sx_block_q3_k *b) {
    float sc[16];
    for (int s = 0; s < 16; s++) sc[s] = signed_max(x + 16 * s, 16) / -4.0f;
    b->d = sx_fp32_to_fp16(signed_max(sc, 16) / -32.0f);
    const float dq = sx_fp16_to_fp32(b->d);
    memset(b->hmask, 0, sizeof b->hmask);
    memset(b->qs, 0, sizeof b->qs);
    memset(b->scales, 0, sizeof b->scales);
    for (int s = 0; s < 16; s++) {
        const int ls = dq != 0 ? clampi((int)lrintf(sc[s] / dq), -32, 31) : 0, u = ls + 32;
        b->scales[s % 8] |= (uint8_t)((u & 0xF) << (4 * (s / 8)));
        b->scales[8 + s % 4] |= (uint8_t)((u >> 4) << (2 * (s / 4)));
        const float dd = dq * (float)ls;
        for (int i = 16 * s; i < 16 * s + 16; i++) {
            const int q = (dd != 0 ? clampi((int)lrintf(x[i] / dd), -4, 3) : 0) + 4;
            q2_put(b->qs, i, q);
            b->hmask[i % 32] |= (uint8_t)((q >> 2) << (i / 32));
        }
    }
}

/* nearest of the 16 non-linear values to v (the first on a tie) */
static int iq4_nearest(float v) {
    int best = 0;
    for (int k = 1; k < 16; k++)
        if (fabsf(v - (float)k_iq4nl[k]) < fabsf(v - (float)k_iq4nl[best])) best = k;
    return best;
}

/* 32 values with scale dl (the largest magnitude was mapped to -127) */
static void quant_iq4_32(const float *x, float dl, uint8_t qs[16]) {
    const float id = dl != 0 ? 1.0f / dl : 0;
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(iq4_nearest(x[j] * id) | (iq4_nearest(x[j + 16] * id) << 4));
}

/* iq4_xs: per sub-block of 32 the value of largest magnitude maps to -127;
 * the 8 signed scales to 6 bits (-32..31) against d (the largest maps to -32) */
static void quant_iq4_xs(const float *x, sx_block_iq4_xs *b) {
    float sc[8];
    for (int s = 0; s < 8; s++) sc[s] = signed_max(x + 32 * s, 32) / -127.0f;
    b->d = sx_fp32_to_fp16(signed_max(sc, 8) / -32.0f);
    const float dq = sx_fp16_to_fp32(b->d);
    b->scales_h = 0;
    memset(b->scales_l, 0, sizeof b->scales_l);
    for (int s = 0; s < 8; s++) {
        const int ls = dq != 0 ? clampi((int)lrintf(sc[s] / dq), -32, 31) : 0, u = ls + 32;
        b->scales_l[s / 2] |= (uint8_t)((u & 0xF) << (4 * (s % 2)));
        b->scales_h |= (uint16_t)((u >> 4) << (2 * s));
        quant_iq4_32(x + 32 * s, dq * (float)ls, b->qs + 16 * s);
    }
}

/* a K-type case: fn(x, block) on each super-block of 256 */
#define SX_Q_BLOCKS(T, block_t, fn)                                                   \
    case SX_DTYPE_##T: {                                                              \
        block_t *b = dst;                                                             \
        for (int64_t i = 0; i < n / SX_QK_K; i++) fn(src + i * SX_QK_K, &b[i]);       \
    } break;

void sx_dtype_quantize_row(sx_dtype t, const float *src, void *dst, int64_t n) {
    switch (t) {
    case SX_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case SX_DTYPE_F16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = sx_fp32_to_fp16(src[i]);
    } break;
    case SX_DTYPE_BF16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = sx_fp32_to_bf16(src[i]);
    } break;
    case SX_DTYPE_I32: {
        int32_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = (int32_t)lrintf(src[i]);
    } break;
    case SX_DTYPE_Q8_0: {
        sx_block_q8_0 *b = dst;
        for (int64_t i = 0; i < n / SX_QK; i++) {
            const float *x = src + i * SX_QK;
            const float d = absmax(x, SX_QK, NULL, NULL) / 127.0f, id = d > 0 ? 1.0f / d : 0;
            b[i].d = sx_fp32_to_fp16(d);
            for (int j = 0; j < SX_QK; j++) b[i].qs[j] = (int8_t)clampi((int)lrintf(x[j] * id), -127, 127);
        }
    } break;
    case SX_DTYPE_Q4_0: {
        sx_block_q4_0 *b = dst;
        for (int64_t i = 0; i < n / SX_QK; i++) {
            const float *x = src + i * SX_QK;
            /* the value of largest magnitude maps to -8. A block whose scale
             * rounds to zero in f16 is stored as the zero block (d = -0, codes
             * 8), which its dequantized values quantize to again: so a row
             * dequantized and quantized gives back its bytes (KV moves). */
            const float mx = signed_max(x, SX_QK);
            const uint16_t dh = sx_fp32_to_fp16(mx / -8.0f);
            const float d = (dh & 0x7fff) ? mx / -8.0f : 0, id = d != 0 ? 1.0f / d : 0;
            b[i].d = (dh & 0x7fff) ? dh : 0x8000;
            for (int j = 0; j < SX_QK / 2; j++) {
                int q0 = clampi((int)lrintf(x[j] * id) + 8, 0, 15);
                int q1 = clampi((int)lrintf(x[j + SX_QK / 2] * id) + 8, 0, 15);
                b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
            }
        }
    } break;
    case SX_DTYPE_Q4_1: {
        sx_block_q4_1 *b = dst;
        for (int64_t i = 0; i < n / SX_QK; i++) {
            const float *x = src + i * SX_QK;
            float lo, hi;
            absmax(x, SX_QK, &lo, &hi);
            const float d = (hi - lo) / 15.0f, id = d != 0 ? 1.0f / d : 0;
            b[i].d = sx_fp32_to_fp16(d);
            b[i].m = sx_fp32_to_fp16(lo);
            for (int j = 0; j < SX_QK / 2; j++) {
                int q0 = clampi((int)lrintf((x[j] - lo) * id), 0, 15);
                int q1 = clampi((int)lrintf((x[j + SX_QK / 2] - lo) * id), 0, 15);
                b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
            }
        }
    } break;
    SX_Q_BLOCKS(Q4_K, sx_block_q4_k, quant_q4_k)
    case SX_DTYPE_Q5_0: {
        sx_block_q5_0 *b = dst;
        for (int64_t i = 0; i < n / SX_QK; i++) {
            const float *x = src + i * SX_QK;
            /* the value of largest magnitude maps to code 0 (-16) */
            const float mx = signed_max(x, SX_QK);
            const float d = mx / -16.0f, id = d != 0 ? 1.0f / d : 0;
            b[i].d = sx_fp32_to_fp16(d);
            uint8_t q[SX_QK];
            for (int j = 0; j < SX_QK; j++) q[j] = (uint8_t)clampi((int)lrintf(x[j] * id) + 16, 0, 31);
            q5_pack(q, b[i].qh, b[i].qs);
        }
    } break;
    case SX_DTYPE_Q5_1: {
        sx_block_q5_1 *b = dst;
        for (int64_t i = 0; i < n / SX_QK; i++) {
            const float *x = src + i * SX_QK;
            float lo, hi;
            absmax(x, SX_QK, &lo, &hi);
            const float d = (hi - lo) / 31.0f, id = d != 0 ? 1.0f / d : 0;
            b[i].d = sx_fp32_to_fp16(d);
            b[i].m = sx_fp32_to_fp16(lo);
            uint8_t q[SX_QK];
            for (int j = 0; j < SX_QK; j++) q[j] = (uint8_t)clampi((int)lrintf((x[j] - lo) * id), 0, 31);
            q5_pack(q, b[i].qh, b[i].qs);
        }
    } break;
    SX_Q_BLOCKS(Q5_K, sx_block_q5_k, quant_q5_k)
    SX_Q_BLOCKS(Q6_K, sx_block_q6_k, quant_q6_k)
    SX_Q_BLOCKS(Q2_K, sx_block_q2_k, quant_q2_k)
    SX_Q_BLOCKS(Q3_K, sx_block_q3_k, quant_q3_k)
    case SX_DTYPE_IQ4_NL: {
        sx_block_iq4_nl *b = dst;
        for (int64_t i = 0; i < n / SX_QK; i++) {
            const float dl = signed_max(src + i * SX_QK, SX_QK) / -127.0f;
            b[i].d = sx_fp32_to_fp16(dl);
            quant_iq4_32(src + i * SX_QK, sx_fp16_to_fp32(b[i].d), b[i].qs);
        }
    } break;
    SX_Q_BLOCKS(IQ4_XS, sx_block_iq4_xs, quant_iq4_xs)
    case SX_DTYPE_COUNT: break;
    }
}
