/* matvec.comp — MATMUL for few activation columns (decode, M <= MAXC).
 * y[n + m*N] = sum_k w[n][k] * x[m][k].
 * Each workgroup owns NR consecutive weight rows. Lanes stride over K four
 * weights at a time (adjacent lanes read adjacent words: coalesced),
 * dequantise each group once and use it for every column, so the weights are
 * read exactly once. USE_SUBGROUP: one subgroup per row, subgroupAdd, no
 * barrier; otherwise the whole workgroup per row with a shared-memory tree.
 * Tested by tests/test_ops.c (MATMUL, M = 1 and 5, every weight dtype). */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_MATMUL
#include "common/params.h"

layout(local_size_x = WG) in;
layout(binding = 0, std430) readonly buffer W { uint wq[]; };
layout(binding = 1, std430) readonly buffer X { float xf[]; };
layout(binding = 1, std430) readonly buffer X4 { vec4 xv4[]; };
layout(binding = 2, std430) writeonly buffer D { float dst[]; };

#define WBUF wq
#include "common/quant.glsl"
#include "common/reduce.glsl"

vec4 ldx(uint base, uint k, uint K) {
    if (k + 4u <= K) {
        const uint e = base + k;
        if ((e & 3u) == 0u) return xv4[e >> 2];
        return vec4(xf[e], xf[e + 1u], xf[e + 2u], xf[e + 3u]);
    }
    vec4 v = vec4(0.0);
    for (uint i = 0u; i < 4u; i++)
        if (k + i < K) v[i] = xf[base + k + i];
    return v;
}

#if USE_SUBGROUP
/* Subgroup per row: no shared memory, no barrier. The NR rows of the
 * workgroup are dealt to its subgroups (any subgroup size, even one that
 * varies per dispatch); each subgroup strides its row with all lanes and
 * reduces with subgroupAdd. */
void main() {
    const uint K = pc.K, N = pc.N, M = pc.M;
    const uint lane = gl_SubgroupInvocationID, width = gl_SubgroupSize;
    for (uint r = gl_SubgroupID; r < NR; r += gl_NumSubgroups) {
        const uint row = group_linear() * NR + r;
        if (row >= N) break;
        const uint rb = pc.w_off + row * pc.w_nb1;
        float acc[MAXC];
        for (uint c = 0u; c < MAXC; c++) acc[c] = 0.0;
        for (uint k = lane * 4u; k < K; k += width * 4u) {
            const vec4 w = dq4k(rb, k, K);
            for (uint c = 0u; c < MAXC; c++)
                if (c < M) acc[c] += dot(w, ldx(pc.x_off + c * pc.x_nb1, k, K));
        }
        for (uint c = 0u; c < MAXC; c++) {
            if (c >= M) break;
            const float s = subgroupAdd(acc[c]);
            if (subgroupElect()) dst[pc.d_off + c * pc.d_nb1 + row] = s;
        }
    }
}
#else
/* Workgroup per NR rows: threads stride over K, partial sums of all rows
 * and columns reduced through shared memory. */
void main() {
    const uint tid = gl_LocalInvocationIndex;
    const uint row0 = group_linear() * NR;
    const uint K = pc.K, N = pc.N, M = pc.M;
    float acc[NR][MAXC];
    for (uint r = 0u; r < NR; r++)
        for (uint c = 0u; c < MAXC; c++) acc[r][c] = 0.0;

    for (uint k = tid * 4u; k < K; k += WG * 4u) {
        vec4 xv[MAXC];
        for (uint c = 0u; c < MAXC; c++)
            if (c < M) xv[c] = ldx(pc.x_off + c * pc.x_nb1, k, K);
        for (uint r = 0u; r < NR; r++) {
            if (row0 + r < N) {
                const vec4 w = dq4k(pc.w_off + (row0 + r) * pc.w_nb1, k, K);
                for (uint c = 0u; c < MAXC; c++)
                    if (c < M) acc[r][c] += dot(w, xv[c]);
            }
        }
    }
    for (uint r = 0u; r < NR; r++)
        for (uint c = 0u; c < MAXC; c++) {
            if (c >= M) continue;
            const float s = wg_sum(acc[r][c]);
            if (tid == 0u && row0 + r < N) dst[pc.d_off + c * pc.d_nb1 + row0 + r] = s;
        }
}
#endif
