/* attention.comp — ATTENTION with online softmax (flash-attention style).
 * One workgroup per (query head h, query t). Keys are visited in chunks of
 * WG: each thread scores one key (q . k * scale, -inf when hidden by the
 * causal rule or the tree mask), the chunk max updates the running max, and
 * each thread accumulates its own output dims of sum(p * v) rescaled by
 * exp(old max - new max). Memory is O(d) whatever n_kv is. GQA: head h
 * reads kv head h / group. K/V are f32 or f16 (KV_F16), read as words.
 * Tested by tests/test_ops.c (decode, prefill, MQA, tree mask; f32/f16). */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_ATTN
#include "common/params.h"
#include "common/types.glsl"

#define HD_MAX 256u
#define DPT (HD_MAX / WG)
layout(local_size_x = WG) in;
layout(binding = 0, std430) readonly buffer Q { float q[]; };
#if defined(KV_F16)
layout(binding = 1, std430) readonly buffer Kb { uint kb[]; };
layout(binding = 2, std430) readonly buffer Vb { uint vb[]; };
#define LDK(e) f16_to_f32(RD_HALF(kb, e))
#define LDV(e) f16_to_f32(RD_HALF(vb, e))
#else
layout(binding = 1, std430) readonly buffer Kb { float kb[]; };
layout(binding = 2, std430) readonly buffer Vb { float vb[]; };
#define LDK(e) kb[e]
#define LDV(e) vb[e]
#endif
layout(binding = 3, std430) readonly buffer Mk { float mask[]; };
layout(binding = 4, std430) writeonly buffer D { float d[]; };

#include "common/reduce.glsl"

shared float qs[HD_MAX];
shared float ps[WG];

void main() {
    const uint hq = group_linear();
    const uint h = hq % pc.nh, t = hq / pc.nh;
    if (t >= pc.T) return;
    const uint tid = gl_LocalInvocationIndex;
    const uint kh = h / pc.group, D = pc.d;
    for (uint c = tid; c < D; c += WG) qs[c] = q[pc.q_off + h * pc.q_nb1 + t * pc.q_nb2 + c];
    barrier();

    const float NEG_INF = -1.0 / 0.0;
    float m = NEG_INF, l = 0.0;
    float acc[DPT];
    for (uint i = 0u; i < DPT; i++) acc[i] = 0.0;
    const uint kbase = pc.k_off + kh * pc.k_nb1, vbase = pc.v_off + kh * pc.v_nb1;

    for (uint j0 = 0u; j0 < pc.n_kv; j0 += WG) {
        const uint j = j0 + tid;
        float s = NEG_INF;
        if (j < pc.n_kv) {
            bool visible = j < pc.n_past;
            if (!visible) {
                const uint i = j - pc.n_past;
                visible = pc.has_mask != 0u ? mask[pc.m_off + t * pc.m_nb1 + i] == 0.0 : i <= t;
            }
            if (visible) {
                const uint kr = kbase + j * pc.k_nb2;
                float acc_s = 0.0;
#if defined(KV_F16)
                if ((kr & 1u) == 0u) {
                    uint c = 0u;
                    for (; c + 1u < D; c += 2u) {
                        const vec2 kv2 = unpackHalf2x16(kb[(kr + c) >> 1]);
                        acc_s += qs[c] * kv2.x + qs[c + 1u] * kv2.y;
                    }
                    if (c < D) acc_s += qs[c] * LDK(kr + c);
                } else
#endif
                for (uint c = 0u; c < D; c++) acc_s += qs[c] * LDK(kr + c);
                s = acc_s * pc.scale;
            }
        }
        const float mc = wg_max(s);
        if (mc == NEG_INF) continue; /* uniform: the whole chunk is hidden */
        const float mn = max(m, mc);
        const float alpha = m == NEG_INF ? 0.0 : exp(m - mn);
        const float p = s == NEG_INF ? 0.0 : exp(s - mn);
        ps[tid] = p;
        l = l * alpha + p;
        barrier();
        const uint jn = min(WG, pc.n_kv - j0);
        for (uint i = 0u; i < DPT; i++) {
            const uint c = tid + i * WG;
            if (c < D) {
                float a = acc[i] * alpha;
                for (uint jj = 0u; jj < jn; jj++) {
                    const float pj = ps[jj];
                    if (pj != 0.0) a += pj * LDV(vbase + (j0 + jj) * pc.v_nb2 + c);
                }
                acc[i] = a;
            }
        }
        barrier();
        m = mn;
    }
    l = wg_sum(l);
    for (uint i = 0u; i < DPT; i++) {
        const uint c = tid + i * WG;
        if (c < D) d[pc.d_off + h * pc.d_nb1 + t * pc.d_nb2 + c] = l > 0.0 ? acc[i] / l : 0.0;
    }
}
