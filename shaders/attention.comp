/* attention.comp — ATTENTION, batch-invariant, split-K (flash-decoding).
 *
 * The ordinal of a key visible to query row t is its index among the row's
 * visible keys in slot order: prefix slots 0..n_past-1 are ordinals
 * 0..n_past-1, the visible tree slots (mask[t][i] == 0, or i <= t without a
 * mask) follow in slot order. Every choice of the reduction depends on
 * ordinals only, never on slots, T, the mask width or n_kv, so a row of a
 * verify batch gives the same bits as that token decoded alone (its
 * ancestors then at contiguous slots): tests/test_batch_invariance.c.
 *
 * One workgroup per (row = (query t, head h), chunk c) of SX_ATTN_CHUNK
 * ordinals. The chunk's ordinal -> slot list is built in shared memory (a
 * masked row: thread 0 scans the mask row; the mask part is small in
 * verify/draft batches). Thread tid scores ordinals tid, tid + WG, ... of
 * the chunk (q . k * scale, each dot product in dim order); the chunk max
 * m_c (exact in any order); p = exp(s - m_c); then every thread sums
 * l_c = sum p and its own output dims acc_c = sum p * v in ordinal order.
 *  - pc.nch > 1 (grid of nch chunks per row): binding 4 is scratch and gets
 *    the partial (m_c, l_c, acc_c[d]) of each (row, chunk); an empty chunk
 *    (past the row's visible keys) writes m_c = -inf. attention_merge.comp
 *    combines them in chunk order.
 *  - pc.nch == 1: this workgroup applies the same merge formula to its one
 *    chunk (exp(m - m) = 1, 0 + x = x) and writes the output: the same bits
 *    as the merge of a grid whose other chunks are empty.
 * A row that sees nothing outputs zeros. GQA: head h reads kv head
 * h / group. K/V f32, f16 (KV_F16), q8_0 (KV_Q8_0) or q4_0 (KV_Q4_0): a
 * quantized KV cache, element i of a head's row is fp16 d * int8 q (q8_0)
 * or d * (nibble - 8) (q4_0: elements 0..15 of a block in the low nibbles
 * of its 16 code bytes, 16..31 in the high ones) of block i / 32,
 * dequantized on load; exact, so the reduction above is unchanged; k/v
 * offsets and strides then in bytes, head dim a multiple of 32), read as
 * words. Rows row0 .. row0 + nrows - 1 (row = t * nh + h) per dispatch (the
 * host bounds scratch).
 * Tested by tests/test_ops.c (decode, prefill, MQA, tree mask, long context;
 * f32/f16/q8_0/q4_0) and tests/test_batch_invariance.c; measured by
 * `specexit bench`. */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_ATTN
#include "common/params.h"
#include "common/types.glsl"

#define HD_MAX 256u
#define DPT (HD_MAX / WG)
#define CH SX_ATTN_CHUNK
#define KPT (CH / WG)
layout(local_size_x = WG) in;
layout(binding = 0, std430) readonly buffer Q { float q[]; };
/* LDK(r, i) / LDV(r, i): element i of the K / V head row at r */
#if defined(KV_F16)
layout(binding = 1, std430) readonly buffer Kb { uint kb[]; };
layout(binding = 2, std430) readonly buffer Vb { uint vb[]; };
#define LDK(r, i) f16_to_f32(RD_HALF(kb, (r) + (i)))
#define LDV(r, i) f16_to_f32(RD_HALF(vb, (r) + (i)))
#elif defined(KV_Q8_0)
layout(binding = 1, std430) readonly buffer Kb { uint kb[]; };
layout(binding = 2, std430) readonly buffer Vb { uint vb[]; };
/* r: byte offset of the row (even); block {f16 d; int8 qs[32]} of 34 bytes */
#define Q8_AT(buf, r, i) (f16_to_f32(RD_U16(buf, (r) + ((i) >> 5) * 34u)) \
    * float(bitfieldExtract(int(RD_U8(buf, (r) + ((i) >> 5) * 34u + 2u + ((i) & 31u))), 0, 8)))
#define LDK(r, i) Q8_AT(kb, r, i)
#define LDV(r, i) Q8_AT(vb, r, i)
#elif defined(KV_Q4_0)
layout(binding = 1, std430) readonly buffer Kb { uint kb[]; };
layout(binding = 2, std430) readonly buffer Vb { uint vb[]; };
/* r: byte offset of the row (even); block {f16 d; uint8 qs[16]} of 18 bytes */
#define Q4_AT(buf, r, i) (f16_to_f32(RD_U16(buf, (r) + ((i) >> 5) * 18u)) \
    * float(int((RD_U8(buf, (r) + ((i) >> 5) * 18u + 2u + ((i) & 15u)) >> (((i) & 16u) >> 2)) & 15u) - 8))
#define LDK(r, i) Q4_AT(kb, r, i)
#define LDV(r, i) Q4_AT(vb, r, i)
#else
layout(binding = 1, std430) readonly buffer Kb { float kb[]; };
layout(binding = 2, std430) readonly buffer Vb { float vb[]; };
#define LDK(r, i) kb[(r) + (i)]
#define LDV(r, i) vb[(r) + (i)]
#endif
layout(binding = 3, std430) readonly buffer Mk { float mask[]; };
layout(binding = 4, std430) writeonly buffer D { float d[]; };

#include "common/reduce.glsl"

shared float qs[HD_MAX];
shared float ps[CH];
shared uint slots[CH];
shared uint n_found;

void main() {
    const uint g = group_linear();
    const uint rl = g / pc.nch, c = g - rl * pc.nch;
    if (rl >= pc.nrows) return;
    const uint r = pc.row0 + rl, h = r % pc.nh, t = r / pc.nh;
    const uint tid = gl_LocalInvocationIndex;
    const uint kh = h / pc.group, D = pc.d;
    const float NEG_INF = -1.0 / 0.0;

    /* ordinals [o0, o0 + CH) -> slots; len = how many the row sees */
    const uint o0 = c * CH;
    const uint nv = pc.has_mask != 0u ? pc.n_past : pc.n_past + t + 1u; /* with a mask: the prefix part */
    const uint np = nv > o0 ? min(CH, nv - o0) : 0u;
    for (uint jj = tid; jj < np; jj += WG) slots[jj] = o0 + jj;
    for (uint i = tid; i < D; i += WG) qs[i] = q[pc.q_off + h * pc.q_nb1 + t * pc.q_nb2 + i];
    uint len = np;
    if (pc.has_mask != 0u) {
        if (tid == 0u) {
            uint n = np, ord = pc.n_past;
            const uint M = pc.n_kv - pc.n_past, mrow = pc.m_off + t * pc.m_nb1;
            for (uint i = 0u; i < M && n < CH; i++)
                if (mask[mrow + i] == 0.0) {
                    if (ord >= o0) slots[n++] = pc.n_past + i;
                    ord++;
                }
            n_found = n;
        }
        barrier();
        len = n_found;
    }
    barrier();

    /* scores; the chunk max */
    const uint kbase = pc.k_off + kh * pc.k_nb1, vbase = pc.v_off + kh * pc.v_nb1;
#if defined(KV_F16)
    const bool pairs = ((kbase | pc.k_nb2) & 1u) == 0u; /* the same for every key */
#endif
    float mloc = NEG_INF;
    for (uint k = 0u; k < KPT; k++) {
        const uint jj = tid + k * WG;
        float s = NEG_INF;
        if (jj < len) {
            const uint kr = kbase + slots[jj] * pc.k_nb2;
            float a = 0.0;
            uint i = 0u;
#if defined(KV_F16)
            if (pairs)
                for (; i + 1u < D; i += 2u) {
                    const vec2 k2 = unpackHalf2x16(kb[(kr + i) >> 1]);
                    a += qs[i] * k2.x;
                    a += qs[i + 1u] * k2.y;
                }
#elif defined(KV_Q8_0)
            for (; i + 32u <= D; i += 32u) {
                /* a block in the 9 words from o / 4: o % 4 == 0: d low in the
                 * first, codes at half offsets; o % 4 == 2: d high, then 8 whole
                 * words of codes */
                const uint o = kr + (i >> 5) * 34u, w = o >> 2;
                const bool mid = (o & 2u) == 0u;
                uint cur = kb[w];
                const float dk = f16_to_f32(mid ? cur & 0xffffu : cur >> 16);
                for (uint g = 0u; g < 32u; g += 4u) {
                    const uint nxt = kb[w + 1u + (g >> 2)];
                    const vec4 k4 = dk * bytes_s(mid ? (cur >> 16) | (nxt << 16) : nxt); /* exact: the values of LDK */
                    cur = nxt;
                    a += qs[i + g] * k4.x;
                    a += qs[i + g + 1u] * k4.y;
                    a += qs[i + g + 2u] * k4.z;
                    a += qs[i + g + 3u] * k4.w;
                }
            }
#elif defined(KV_Q4_0)
            for (; i + 32u <= D; i += 32u) {
                /* a block in the 5 words from o / 4: o % 4 == 0: d low in the
                 * first, code bytes at half offsets; o % 4 == 2: d high, then 4
                 * whole words of code bytes */
                const uint o = kr + (i >> 5) * 18u, w = o >> 2;
                const bool mid = (o & 2u) == 0u;
                uint cw[5];
                for (uint x = 0u; x < 5u; x++) cw[x] = kb[w + x];
                const float dk = f16_to_f32(mid ? cw[0] & 0xffffu : cw[0] >> 16);
                uint cb[4]; /* code bytes 4x .. 4x + 3 */
                for (uint x = 0u; x < 4u; x++) cb[x] = mid ? (cw[x] >> 16) | (cw[x + 1u] << 16) : cw[x + 1u];
                for (uint hi = 0u; hi < 2u; hi++) /* dims in order: the low nibbles (i .. i + 15), then the high ones */
                    for (uint x = 0u; x < 4u; x++) {
                        const uint c4 = cb[x] >> (4u * hi), e = i + 16u * hi + 4u * x;
                        const vec4 k4 = dk * (vec4(uvec4(c4, c4 >> 8, c4 >> 16, c4 >> 24) & 15u) - 8.0); /* exact: the values of LDK */
                        a += qs[e] * k4.x;
                        a += qs[e + 1u] * k4.y;
                        a += qs[e + 2u] * k4.z;
                        a += qs[e + 3u] * k4.w;
                    }
            }
#endif
            for (; i < D; i++) a += qs[i] * LDK(kr, i);
            s = a * pc.scale;
        }
        ps[jj] = s;
        mloc = max(mloc, s);
    }
    const float mc = wg_max(mloc); /* its barriers also publish ps */
    for (uint k = 0u; k < KPT; k++) {
        const uint jj = tid + k * WG;
        ps[jj] = ps[jj] == NEG_INF ? 0.0 : exp(ps[jj] - mc);
    }
    barrier();

    /* l and this thread's dims of sum p * v, in ordinal order */
    float l = 0.0;
    float acc[DPT];
    for (uint i = 0u; i < DPT; i++) acc[i] = 0.0;
    if (mc != NEG_INF)
        for (uint jj = 0u; jj < len; jj++) {
            const float pj = ps[jj];
            l += pj;
            if (pj == 0.0) continue;
            const uint vr = vbase + slots[jj] * pc.v_nb2;
            for (uint i = 0u; i < DPT; i++) {
                const uint e = tid + i * WG;
                if (e < D) acc[i] += pj * LDV(vr, e);
            }
        }

    if (pc.nch == 1u) { /* the merge formula of attention_merge.comp, one chunk */
        float L = 0.0, w = 0.0;
        if (mc != NEG_INF) {
            w = exp(mc - mc);
            L += l * w;
        }
        for (uint i = 0u; i < DPT; i++) {
            const uint e = tid + i * WG;
            float a = 0.0;
            if (mc != NEG_INF) a += acc[i] * w;
            if (e < D) d[pc.d_off + h * pc.d_nb1 + t * pc.d_nb2 + e] = L > 0.0 ? a / L : 0.0;
        }
        return;
    }
    const uint base = pc.d_off + (rl * pc.nch + c) * (D + 2u);
    if (tid == 0u) {
        d[base] = mc;
        d[base + 1u] = l;
    }
    if (mc != NEG_INF)
        for (uint i = 0u; i < DPT; i++) {
            const uint e = tid + i * WG;
            if (e < D) d[base + 2u + e] = acc[i];
        }
}
