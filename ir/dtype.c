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
    case SX_DTYPE_Q4_K: {
        const sx_block_q4_k *b = src;
        for (int64_t i = 0; i < n / SX_QK_K; i++) dequant_q4_k(&b[i], dst + i * SX_QK_K);
    } break;
    case SX_DTYPE_Q6_K: {
        const sx_block_q6_k *b = src;
        for (int64_t i = 0; i < n / SX_QK_K; i++) dequant_q6_k(&b[i], dst + i * SX_QK_K);
    } break;
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
    case SX_DTYPE_Q5_K: {
        const sx_block_q5_k *b = src;
        for (int64_t i = 0; i < n / SX_QK_K; i++) dequant_q5_k(&b[i], dst + i * SX_QK_K);
    } break;
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
            /* signed max: the value of largest magnitude maps to -8 */
            float mx = 0;
            for (int j = 0; j < SX_QK; j++) if (fabsf(x[j]) > fabsf(mx)) mx = x[j];
            const float d = mx / -8.0f, id = d != 0 ? 1.0f / d : 0;
            b[i].d = sx_fp32_to_fp16(d);
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
    case SX_DTYPE_Q4_K: {
        sx_block_q4_k *b = dst;
        for (int64_t i = 0; i < n / SX_QK_K; i++) quant_q4_k(src + i * SX_QK_K, &b[i]);
    } break;
    case SX_DTYPE_Q5_0: {
        sx_block_q5_0 *b = dst;
        for (int64_t i = 0; i < n / SX_QK; i++) {
            const float *x = src + i * SX_QK;
            /* signed max: the value of largest magnitude maps to code 0 (-16) */
            float mx = 0;
            for (int j = 0; j < SX_QK; j++) if (fabsf(x[j]) > fabsf(mx)) mx = x[j];
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
    case SX_DTYPE_Q5_K: {
        sx_block_q5_k *b = dst;
        for (int64_t i = 0; i < n / SX_QK_K; i++) quant_q5_k(src + i * SX_QK_K, &b[i]);
    } break;
    case SX_DTYPE_Q6_K: {
        sx_block_q6_k *b = dst;
        for (int64_t i = 0; i < n / SX_QK_K; i++) quant_q6_k(src + i * SX_QK_K, &b[i]);
    } break;
    case SX_DTYPE_COUNT: break;
    }
}
