/* matvec.comp — MATMUL for few activation columns (decode, M <= MAXC).
 * y[n + m*N] = sum_k w[n][k] * x[m][k].
 * Each workgroup owns NR consecutive weight rows; its threads stride over K
 * four weights at a time (adjacent threads read adjacent words: coalesced),
 * dequantise each group once and use it for every column, so the weights are
 * read exactly once. Partial sums are reduced with subgroupAdd and one
 * barrier (USE_SUBGROUP) or a shared-memory tree.
 * Tested by tests/test_ops.c (MATMUL, M = 1 and 5, every weight dtype). */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_MATMUL
#include "common/params.h"

layout(local_size_x = WG) in;
layout(binding = 0, std430) readonly buffer W { uint wq[]; };
layout(binding = 1, std430) readonly buffer X { float xf[]; };
layout(binding = 2, std430) writeonly buffer D { float dst[]; };

#define WBUF wq
#include "common/quant.glsl"
#include "common/reduce.glsl"

#if USE_SUBGROUP
shared float part[NR * MAXC][WG];
#endif

vec4 ldx(uint base, uint k, uint K) {
    if (k + 4u <= K) return vec4(xf[base + k], xf[base + k + 1u], xf[base + k + 2u], xf[base + k + 3u]);
    vec4 v = vec4(0.0);
    for (uint i = 0u; i < 4u; i++)
        if (k + i < K) v[i] = xf[base + k + i];
    return v;
}

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

#if USE_SUBGROUP
    for (uint r = 0u; r < NR; r++)
        for (uint c = 0u; c < MAXC; c++) {
            const float s = subgroupAdd(acc[r][c]);
            if (subgroupElect()) part[r * MAXC + c][gl_SubgroupID] = s;
        }
    barrier();
    if (tid < NR * MAXC) {
        const uint r = tid / MAXC, c = tid % MAXC;
        if (row0 + r < N && c < M) {
            float s = 0.0;
            for (uint i = 0u; i < gl_NumSubgroups; i++) s += part[tid][i];
            dst[pc.d_off + c * pc.d_nb1 + row0 + r] = s;
        }
    }
#else
    for (uint r = 0u; r < NR; r++)
        for (uint c = 0u; c < MAXC; c++) {
            if (c >= M) continue;
            const float s = wg_sum(acc[r][c]);
            if (tid == 0u && row0 + r < N) dst[pc.d_off + c * pc.d_nb1 + row0 + r] = s;
        }
#endif
}
