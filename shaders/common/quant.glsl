/* shaders/common/quant.glsl — dequantisation of 4 consecutive weights.
 *
 *   vec4 dq4(uint rb, uint k)
 *
 * rb: byte offset of a weight row in the uint array WBUF (the including
 * shader defines WBUF); k: element index in the row, a multiple of 4.
 * Exactly one of the QTYPE_* macros is defined per shader variant. The rules
 * are those of ir/dtype.c (sx_dtype_dequantize_row); every 4-element group of
 * every format comes from one 32-bit word of quants (q5 types and q3_k: plus
 * the word of their high bits; iq4 types: mapped through their value table), so each call reads one to three words plus the block's
 * scales. Plain types also take the row length
 * (dq4k(rb, k, K)) so that K need not be a multiple of 4. */
#ifndef SX_QUANT_GLSL
#define SX_QUANT_GLSL

#include "types.glsl"

/* reads of the weight buffer (byte offsets; any alignment) */
#define w_u16(o) RD_U16(WBUF, o)
#define w_u32(o) RD_U32(WBUF, o)
#define w_u8(o) RD_U8(WBUF, o)

#if defined(QTYPE_F32)
#define SX_PLAIN 1
#define SX_ESIZE 4u
float dq1(uint rb, uint k) { return uintBitsToFloat(w_u32(rb + 4u * k)); }
#elif defined(QTYPE_F16)
#define SX_PLAIN 1
#define SX_ESIZE 2u
float dq1(uint rb, uint k) { return f16_to_f32(w_u16(rb + 2u * k)); }
#elif defined(QTYPE_BF16)
#define SX_PLAIN 1
#define SX_ESIZE 2u
float dq1(uint rb, uint k) { return bf16_to_f32(w_u16(rb + 2u * k)); }
#endif

#if defined(SX_PLAIN)
/* k + 3 < K: fast path; else element-wise with zeros past the end */
vec4 dq4k(uint rb, uint k, uint K) {
    if (k + 4u <= K) {
#if defined(QTYPE_F32)
        return vec4(uintBitsToFloat(w_u32(rb + 4u * k)), uintBitsToFloat(w_u32(rb + 4u * k + 4u)),
                    uintBitsToFloat(w_u32(rb + 4u * k + 8u)), uintBitsToFloat(w_u32(rb + 4u * k + 12u)));
#elif defined(QTYPE_F16)
        return vec4(unpackHalf2x16(w_u32(rb + 2u * k)), unpackHalf2x16(w_u32(rb + 2u * k + 4u)));
#else
        const uint w0 = w_u32(rb + 2u * k), w1 = w_u32(rb + 2u * k + 4u);
        return vec4(uintBitsToFloat(w0 << 16), uintBitsToFloat(w0 & 0xffff0000u), uintBitsToFloat(w1 << 16),
                    uintBitsToFloat(w1 & 0xffff0000u));
#endif
    }
    vec4 v = vec4(0.0);
    for (uint i = 0u; i < 4u; i++)
        if (k + i < K) v[i] = dq1(rb, k + i);
    return v;
}
#define QBLOCK 1u

#elif defined(QTYPE_Q8_0) /* {f16 d; int8 qs[32]}: x = q * d */
#define QBLOCK 32u
vec4 dq4(uint rb, uint k) {
    const uint o = rb + (k >> 5) * 34u;
    return f16_to_f32(w_u16(o)) * bytes_s(w_u32(o + 2u + (k & 31u)));
}

#elif defined(QTYPE_Q4_0) /* {f16 d; u8 qs[16]}: x = (q - 8) * d; low nibbles j < 16 */
#define QBLOCK 32u
vec4 dq4(uint rb, uint k) {
    const uint o = rb + (k >> 5) * 18u, j = k & 31u;
    const uint q = (w_u32(o + 2u + (j & 15u)) >> (j >= 16u ? 4u : 0u)) & 0x0f0f0f0fu;
    return f16_to_f32(w_u16(o)) * (bytes_u(q) - 8.0);
}

#elif defined(QTYPE_Q4_1) /* {f16 d, m; u8 qs[16]}: x = q * d + m */
#define QBLOCK 32u
vec4 dq4(uint rb, uint k) {
    const uint o = rb + (k >> 5) * 20u, j = k & 31u;
    const vec2 dm = unpackHalf2x16(w_u32(o));
    const uint q = (w_u32(o + 4u + (j & 15u)) >> (j >= 16u ? 4u : 0u)) & 0x0f0f0f0fu;
    return bytes_u(q) * dm.x + dm.y;
}

#elif defined(QTYPE_Q5_0) || defined(QTYPE_Q5_1)
/* {f16 d; u8 qh[4]; u8 qs[16]}: x = (q - 16) * d / {f16 d, m; u8 qh[4]; u8 qs[16]}: x = q * d + m;
 * nibbles as q4_0, bit 4 of code j is bit j of the qh word */
#define QBLOCK 32u
/* bits j..j+3 of qh -> 0x10 in bytes 0..3 */
uint q5_hi4(uint qh, uint j) {
    const uint h = (qh >> j) & 0xfu;
    return ((h & 1u) << 4) | ((h & 2u) << 11) | ((h & 4u) << 18) | ((h & 8u) << 25);
}
#if defined(QTYPE_Q5_0)
vec4 dq4(uint rb, uint k) {
    const uint o = rb + (k >> 5) * 22u, j = k & 31u;
    const uint q = ((w_u32(o + 6u + (j & 15u)) >> (j >= 16u ? 4u : 0u)) & 0x0f0f0f0fu) | q5_hi4(w_u32(o + 2u), j);
    return f16_to_f32(w_u16(o)) * (bytes_u(q) - 16.0);
}
#else
vec4 dq4(uint rb, uint k) {
    const uint o = rb + (k >> 5) * 24u, j = k & 31u;
    const vec2 dm = unpackHalf2x16(w_u32(o));
    const uint q = ((w_u32(o + 8u + (j & 15u)) >> (j >= 16u ? 4u : 0u)) & 0x0f0f0f0fu) | q5_hi4(w_u32(o + 4u), j);
    return bytes_u(q) * dm.x + dm.y;
}
#endif

#elif defined(QTYPE_Q4_K) || defined(QTYPE_Q5_K)
/* q4_k {f16 d, dmin; u8 scales[12]; u8 qs[128]};
 * q5_k {f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: bit 4 of element
 * l of sub-block sub is bit sub of qh[l] */
#define QBLOCK 256u
#if defined(QTYPE_Q5_K)
#define SX_KBYTES 176u
#define SX_KQS 48u
#else
#define SX_KBYTES 144u
#define SX_KQS 16u
#endif
vec4 dq4(uint rb, uint k) {
    const uint o = rb + (k >> 8) * SX_KBYTES, j = k & 255u;
    const uint sub = j >> 5;  /* sub-block of 32: scale/min index */
    const vec2 dd = unpackHalf2x16(w_u32(o));
    uint sc, mn;
    if (sub < 4u) {
        sc = w_u8(o + 4u + sub) & 63u;
        mn = w_u8(o + 8u + sub) & 63u;
    } else {
        const uint a = w_u8(o + 8u + sub); /* scales[sub + 4] */
        sc = (a & 0xfu) | ((w_u8(o + sub) >> 6) << 4);
        mn = (a >> 4) | ((w_u8(o + 4u + sub) >> 6) << 4);
    }
    /* 32 bytes of qs per 64 elements: low nibble -> first 32, high -> next 32 */
    uint q = (w_u32(o + SX_KQS + (j >> 6) * 32u + (j & 31u)) >> ((sub & 1u) * 4u)) & 0x0f0f0f0fu;
#if defined(QTYPE_Q5_K)
    q |= ((w_u32(o + 16u + (j & 31u)) >> sub) & 0x01010101u) << 4;
#endif
    return dd.x * float(sc) * bytes_u(q) - dd.y * float(mn);
}

#elif defined(QTYPE_Q6_K) /* {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d} */
#define QBLOCK 256u
vec4 dq4(uint rb, uint k) {
    const uint o = rb + (k >> 8) * 210u, j = k & 255u;
    const uint n = j >> 7, r = j & 127u, g = r >> 5, l = r & 31u;
    const uint ql = (w_u32(o + 64u * n + l + (g & 1u) * 32u) >> ((g >> 1) * 4u)) & 0x0f0f0f0fu;
    const uint qh = (w_u32(o + 128u + 32u * n + l) >> (2u * g)) & 0x03030303u;
    const float sc = float(bitfieldExtract(int(w_u8(o + 192u + 8u * n + (l >> 4) + 2u * g)), 0, 8));
    return f16_to_f32(w_u16(o + 208u)) * sc * (bytes_u(ql | (qh << 4)) - 32.0);
}
#elif defined(QTYPE_Q2_K) || defined(QTYPE_Q3_K)
/* q2_k {u8 scales[16]; u8 qs[64]; f16 d, dmin}: x = d * (sc & 15) * q - dmin * (sc >> 4);
 * q3_k {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}: x = d * (s - 32) * (q - 4).
 * Element j of a block: 2 bits at 2 * ((j & 127) >> 5) of qs[32 * (j >> 7) + (j & 31)];
 * q3_k's bit 2 is bit (j >> 5) of hmask[j & 31]; sub-block (scale) j >> 4 */
#define QBLOCK 256u
vec4 dq4(uint rb, uint k) {
    const uint j = k & 255u, s = j >> 4, l = j & 31u;
#if defined(QTYPE_Q2_K)
    const uint o = rb + (k >> 8) * 84u;
    const uint q = (w_u32(o + 16u + 32u * (j >> 7) + l) >> (2u * ((j >> 5) & 3u))) & 0x03030303u;
    const uint sc = w_u8(o + s);
    const vec2 dm = unpackHalf2x16(w_u32(o + 80u));
    return dm.x * float(sc & 15u) * bytes_u(q) - dm.y * float(sc >> 4);
#else
    const uint o = rb + (k >> 8) * 110u;
    const uint q = (w_u32(o + 32u + 32u * (j >> 7) + l) >> (2u * ((j >> 5) & 3u))) & 0x03030303u;
    const uint h = (w_u32(o + l) >> (j >> 5)) & 0x01010101u;
    const uint ls = ((w_u8(o + 96u + (s & 7u)) >> (4u * (s >> 3))) & 15u) | (((w_u8(o + 104u + (s & 3u)) >> (2u * (s >> 2))) & 3u) << 4);
    return f16_to_f32(w_u16(o + 108u)) * float(int(ls) - 32) * (bytes_u(q | (h << 2)) - 4.0);
#endif
}

#elif defined(QTYPE_IQ4_NL) || defined(QTYPE_IQ4_XS)
/* iq4_nl {f16 d; u8 qs[16]}: x = d * v[q], nibble order as q4_0;
 * iq4_xs {f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]}: 8 such groups of 32
 * (qs + 16 * sub) with scale d * (ls - 32), ls = 4 bits of scales_l | 2 of scales_h << 4 */
const float SX_IQ4NL[16] = float[16](-127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0, 1.0, 13.0, 25.0, 38.0,
                                     53.0, 69.0, 89.0, 113.0);
vec4 iq4_vals(uint q) { return vec4(SX_IQ4NL[q & 15u], SX_IQ4NL[(q >> 8) & 15u], SX_IQ4NL[(q >> 16) & 15u], SX_IQ4NL[q >> 24]); }
#if defined(QTYPE_IQ4_NL)
#define QBLOCK 32u
vec4 dq4(uint rb, uint k) {
    const uint o = rb + (k >> 5) * 18u, j = k & 31u;
    const uint q = (w_u32(o + 2u + (j & 15u)) >> (j >= 16u ? 4u : 0u)) & 0x0f0f0f0fu;
    return f16_to_f32(w_u16(o)) * iq4_vals(q);
}
#else
#define QBLOCK 256u
vec4 dq4(uint rb, uint k) {
    const uint o = rb + (k >> 8) * 136u, j = k & 255u, sub = j >> 5, jj = j & 31u;
    const uint q = (w_u32(o + 8u + 16u * sub + (jj & 15u)) >> (jj >= 16u ? 4u : 0u)) & 0x0f0f0f0fu;
    const uint ls = ((w_u8(o + 4u + (sub >> 1)) >> (4u * (sub & 1u))) & 15u) | (((w_u16(o + 2u) >> (2u * sub)) & 3u) << 4);
    return f16_to_f32(w_u16(o)) * float(int(ls) - 32) * iq4_vals(q);
}
#endif
#endif

#if !defined(SX_PLAIN)
vec4 dq4k(uint rb, uint k, uint K) { return dq4(rb, k); }
#endif

#endif
