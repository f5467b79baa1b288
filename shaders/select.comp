/* select.comp — ARGMAX and TOP_K over rows of x [ne0, rows].
 * One workgroup per row. Order: larger value first, ties to the lower index
 * (exactly the reference's insertion order). TOP_K runs k selection rounds:
 * round r picks the best element strictly after round r-1's pick in that
 * total order, so no scratch state and duplicates are handled exactly;
 * used for ARGMAX and for TOP_K with k == 1 or k * ne0 <= 4096 (longer rows
 * go through top_k_chunk.comp in passes, vk_ops_rows.c).
 * Tested by tests/test_ops.c (ARGMAX rows of 101 and 5000; TOP_K k = 10, 1, 9). */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_SELECT
#include "common/params.h"
#include "common/types.glsl"

layout(local_size_x = WG) in;
layout(binding = 0, std430) readonly buffer X { float x[]; };
layout(binding = 1, std430) writeonly buffer D { int d[]; };

#include "common/reduce.glsl"

void main() {
    const uint row = group_linear();
    if (row >= pc.rows) return;
    const uint tid = gl_LocalInvocationIndex;
    const uint xb = pc.x_off + row * pc.x_nb1;
    float pv = 1.0 / 0.0;
    uint pi = 0xffffffffu;
    const uint rounds = pc.k;
    for (uint r = 0u; r < rounds; r++) {
        float bv = -1.0 / 0.0;
        uint bi = 0xffffffffu;
        for (uint i = tid; i < pc.ne0; i += WG) {
            const float v = x[xb + i * pc.x_nb0];
            const bool eligible = r == 0u || v < pv || (v == pv && i > pi);
            if (eligible && better(v, i, bv, bi)) {
                bv = v;
                bi = i;
            }
        }
        wg_argmax(bv, bi);
        if (tid == 0u) d[pc.d_off + row * pc.d_nb1 + r] = int(bi);
        pv = bv;
        pi = bi;
    }
}
