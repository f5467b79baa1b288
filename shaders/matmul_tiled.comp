/* matmul_tiled.comp — MATMUL for many activation columns (prefill, verify).
 * Output tiles of 64 weight rows x 64 columns per workgroup of 256 threads,
 * each thread accumulating a 4x4 block. Per step of 32 along K the weight
 * tile is dequantised once into shared memory (dq4: one quad per call) and
 * the activation tile is loaded coalesced along K.
 * Tested by tests/test_ops.c (MATMUL, M = 19 and 67, every weight dtype). */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_MATMUL
#include "common/params.h"


#define BN 64u
#define BM 64u
#define BK 32u
layout(local_size_x = WG) in;
layout(binding = 0, std430) readonly buffer W { uint wq[]; };
layout(binding = 1, std430) readonly buffer X { float xf[]; };
layout(binding = 2, std430) writeonly buffer D { float dst[]; };

#define WBUF wq
#include "common/quant.glsl"

shared float ws[BK][BN + 1u];
shared float xs[BK][BM + 1u];

void main() {
    const uint tid = gl_LocalInvocationIndex;
    const uint tx = tid % 16u, ty = tid / 16u;
    const uint n0 = gl_WorkGroupID.x * BN, m0 = gl_WorkGroupID.y * BM;
    const uint K = pc.K, N = pc.N, M = pc.M;
    float acc[4][4];
    for (uint i = 0u; i < 4u; i++)
        for (uint j = 0u; j < 4u; j++) acc[i][j] = 0.0;

    for (uint k0 = 0u; k0 < K; k0 += BK) {
        for (uint p = 0u; p < (BN * BK / 4u) / WG; p++) {
            const uint idx = tid + p * WG, row = idx / (BK / 4u), q = idx % (BK / 4u);
            vec4 v = vec4(0.0);
            if (n0 + row < N && k0 + 4u * q < K) v = dq4k(pc.w_off + (n0 + row) * pc.w_nb1, k0 + 4u * q, K);
            for (uint e = 0u; e < 4u; e++) ws[4u * q + e][row] = v[e];
        }
        for (uint p = 0u; p < (BM * BK) / WG; p++) {
            const uint idx = tid + p * WG, col = idx / BK, kk = idx % BK;
            xs[kk][col] = (m0 + col < M && k0 + kk < K) ? xf[pc.x_off + (m0 + col) * pc.x_nb1 + k0 + kk] : 0.0;
        }
        barrier();
        for (uint kk = 0u; kk < BK; kk++) {
            float a[4], b[4];
            for (uint i = 0u; i < 4u; i++) a[i] = ws[kk][tx + 16u * i];
            for (uint j = 0u; j < 4u; j++) b[j] = xs[kk][ty + 16u * j];
            for (uint i = 0u; i < 4u; i++)
                for (uint j = 0u; j < 4u; j++) acc[i][j] += a[i] * b[j];
        }
        barrier();
    }
    for (uint i = 0u; i < 4u; i++)
        for (uint j = 0u; j < 4u; j++) {
            const uint n = n0 + tx + 16u * i, m = m0 + ty + 16u * j;
            if (n < N && m < M) dst[pc.d_off + m * pc.d_nb1 + n] = acc[i][j];
        }
}
