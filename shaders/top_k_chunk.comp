/* top_k_chunk.comp — TOP_K over long rows, in passes (vk_ops_rows.c): one
 * workgroup per (row, chunk of CHUNK entries of the pass's input).
 *   pc.from_x == 1: the entries are x's (value, position) (pass 1), else
 *                   (value bits, index) pairs of the previous pass in
 *                   scratch (binding 1), pc.ne0 = chunks * k per row;
 *   pc.final == 0:  the chunk's top k go to scratch as pairs, k per chunk,
 *                   laid out [row - row0][chunk][k];
 *   pc.final == 1:  (one chunk per row) their indices go to d in order.
 * Every element of a row's top k is in its chunk's top k, so passes are exact.
 *
 * Order: one strict total order, larger value first and ties to the lower
 * index (the reference's); the padding pair (-inf, 0xffffffff) is worse than
 * every real entry, -inf included, and never reaches the output (k <= ne0).
 *
 * Per chunk: (1) every thread takes the best of its entries (j = tid mod WG);
 * the k-th best of those WG thread bests, P (k <= WG), is beaten or equalled
 * by at least k entries, so an entry worse than P is not in the top k.
 * (2) the entries not worse than P are appended to a shared buffer in rounds
 * of 2 * WG; when the next round might not fit, the buffer is reduced to its
 * top K2 (K2 = the power of two >= k) by a bitonic top-k: sort blocks of K2,
 * fold pairs of sorted blocks (entry i against entry K2-1-i of the other
 * block keeps the better: a bitonic sequence holding the top K2 of both) and
 * bitonic-merge; then the k-th kept entry, when better, becomes P. (3) a last
 * reduction leaves the chunk's top k, in order, at the buffer's start.
 * Random rows keep ~k entries of a chunk; all-equal rows keep exactly k;
 * adversarial ones only cost more reductions.
 * Tested by tests/test_ops.c (TOP_K rows of 300 .. 151936, k 20 / 64, ties). */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_TOPK
#include "common/params.h"
#include "common/types.glsl"

#define CHUNK SX_TOPK_CHUNK
#define CAP 1024u /* buffer entries: K2 <= 256 kept + a round of 2 * WG */

layout(local_size_x = WG) in;
layout(binding = 0, std430) readonly buffer X { float x[]; };
layout(binding = 1, std430) buffer S { uvec2 s[]; };
layout(binding = 2, std430) writeonly buffer D { int d[]; };

shared float sv[CAP];
shared uint si[CAP];
shared uint fill;
shared float p_v;
shared uint p_i;

const float NEG_INF = -1.0 / 0.0;
const uint NONE = 0xffffffffu;

bool better(float v, uint i, float bv, uint bi) { return v > bv || (v == bv && i < bi); }

/* puts the better of slots a < b first (desc) or last */
void cswap(uint a, uint b, bool desc) {
    const float va = sv[a], vb = sv[b];
    const uint ia = si[a], ib = si[b];
    if (better(vb, ib, va, ia) == desc) {
        sv[a] = vb, si[a] = ib;
        sv[b] = va, si[b] = ia;
    }
}

uint next_pow2(uint n) {
    uint p = 1u;
    while (p < n) p <<= 1;
    return p;
}

uint g_row, g_rl, g_srl, g_begin, g_xbase;

/* entry j of this chunk (j < len) */
void entry(uint j, out float v, out uint i) {
    const uint e = g_begin + j;
    if (pc.from_x != 0u) {
        v = x[g_xbase + (e - pc.c0 * CHUNK) * pc.x_nb0];
        i = e;
    } else {
        const uvec2 p = s[pc.in_off + g_srl * pc.ne0 + e];
        v = uintBitsToFloat(p.x);
        i = p.y;
    }
}

/* buffer [0, n) -> its top K2, best first, in [0, K2). Uniform n. */
void reduce_buf(uint n, uint K2) {
    const uint tid = gl_LocalInvocationIndex;
    const uint n2 = max(next_pow2(n), K2);
    for (uint j = n + tid; j < n2; j += WG) {
        sv[j] = NEG_INF;
        si[j] = NONE;
    }
    barrier();
    for (uint size = 2u; size <= K2; size <<= 1) {
        for (uint st = size >> 1; st > 0u; st >>= 1) {
            for (uint t = tid; t < n2 / 2u; t += WG) {
                const uint lo = 2u * t - (t & (st - 1u));
                cswap(lo, lo + st, size == K2 || (lo & size) == 0u);
            }
            barrier();
        }
    }
    /* live blocks sit at multiples of span: fold (b, b + span) into b */
    const uint nblk = n2 / K2;
    for (uint span = 1u; span < nblk; span <<= 1) {
        const uint pairs = nblk / (2u * span);
        for (uint t = tid; t < pairs * K2; t += WG) {
            const uint p = t / K2, j = t % K2;
            const uint a = p * 2u * span * K2 + j, b = (p * 2u + 1u) * span * K2 + (K2 - 1u - j);
            if (better(sv[b], si[b], sv[a], si[a])) {
                sv[a] = sv[b];
                si[a] = si[b];
            }
        }
        barrier();
        for (uint st = K2 >> 1; st > 0u; st >>= 1) {
            for (uint t = tid; t < pairs * (K2 / 2u); t += WG) {
                const uint p = t / (K2 / 2u), j = t % (K2 / 2u);
                const uint lo = p * 2u * span * K2 + 2u * j - (j & (st - 1u));
                cswap(lo, lo + st, true);
            }
            barrier();
        }
    }
}

void main() {
    const uint g = group_linear();
    if (g >= pc.nrows * pc.ncd) return;
    const uint c = pc.c0 + g % pc.ncd;
    g_rl = g / pc.ncd;
    g_row = pc.row0 + g_rl;
    g_srl = pc.srow + g_rl;
    g_xbase = pc.x_off + g_rl * pc.x_nb1;
    g_begin = c * CHUNK;
    const uint tid = gl_LocalInvocationIndex;
    const uint len = min(pc.ne0 - g_begin, uint(CHUNK));
    const uint k = pc.k, K2 = next_pow2(k);

    /* (1) thread bests; P = the k-th best of them (rank k-1; padding bests
     * all tie, so P stays the padding pair when fewer than k are real) */
    float bv = NEG_INF;
    uint bi = NONE;
    for (uint j = tid; j < len; j += WG) {
        float v;
        uint i;
        entry(j, v, i);
        if (better(v, i, bv, bi)) bv = v, bi = i;
    }
    sv[tid] = bv;
    si[tid] = bi;
    if (tid == 0u) {
        p_v = NEG_INF;
        p_i = NONE;
        fill = 0u;
    }
    barrier();
    uint rank = 0u;
    for (uint u = 0u; u < WG; u++) rank += better(sv[u], si[u], bv, bi) ? 1u : 0u;
    if (rank == k - 1u && bi != NONE) {
        p_v = bv;
        p_i = bi;
    }
    barrier();
    float pv = p_v;
    uint pi = p_i;

    /* (2) append the entries not worse than P, two per thread a round */
    for (uint base = 0u; base < len; base += 2u * WG) {
        const uint f = fill;
        barrier(); /* everyone has read fill */
        if (f + 2u * WG > CAP) {
            reduce_buf(f, K2);
            if (better(sv[k - 1u], si[k - 1u], pv, pi)) pv = sv[k - 1u], pi = si[k - 1u];
            if (tid == 0u) fill = K2;
            barrier();
        }
        for (uint h = 0u; h < 2u; h++) {
            const uint j = base + h * WG + tid;
            if (j < len) {
                float v;
                uint i;
                entry(j, v, i);
                if (better(v, i, pv, pi) || i == pi) {
                    const uint slot = atomicAdd(fill, 1u);
                    sv[slot] = v;
                    si[slot] = i;
                }
            }
        }
        barrier();
    }

    /* (3) the chunk's top k, best first */
    reduce_buf(fill, K2);
    for (uint j = tid; j < k; j += WG) {
        if (pc.final != 0u)
            d[pc.d_off + g_row * pc.d_nb1 + j] = int(si[j]);
        else
            s[pc.out_off + (g_srl * pc.nch + c) * k + j] = uvec2(floatBitsToUint(sv[j]), si[j]);
    }
}
