/* attention_merge.comp — the second pass of split-K ATTENTION
 * (attention.comp): one workgroup per row (query t, head h), one thread per
 * output dim. Reads the row's nch partials (m_c, l_c, acc_c[d]) from scratch
 * (binding 0, laid out [row - row0][chunk][2 + d]) and combines them in chunk
 * order: M = max m_c; L = sum l_c * exp(m_c - M); out = sum acc_c *
 * exp(m_c - M) / L. Empty chunks (m_c = -inf) are skipped, so a grid with
 * extra empty chunks gives the same bits; a row that sees nothing outputs
 * zeros. attention.comp applies this same formula when the grid has one
 * chunk. Tested by tests/test_ops.c and tests/test_batch_invariance.c. */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_ATTN
#include "common/params.h"
#include "common/types.glsl"

layout(local_size_x = WG) in;
layout(binding = 0, std430) readonly buffer S { float s[]; };
layout(binding = 1, std430) writeonly buffer D { float d[]; };

void main() {
    const uint rl = group_linear();
    if (rl >= pc.nrows) return;
    const uint r = pc.row0 + rl, h = r % pc.nh, t = r / pc.nh;
    const uint D = pc.d, stride = D + 2u, row = rl * pc.nch * stride;
    const float NEG_INF = -1.0 / 0.0;
    float M = NEG_INF;
    for (uint c = 0u; c < pc.nch; c++) M = max(M, s[row + c * stride]);
    for (uint e = gl_LocalInvocationIndex; e < D; e += WG) {
        float L = 0.0, a = 0.0;
        for (uint c = 0u; c < pc.nch; c++) {
            const uint b = row + c * stride;
            const float mc = s[b];
            if (mc == NEG_INF) continue;
            const float w = exp(mc - M);
            L += s[b + 1u] * w;
            a += s[b + 2u + e] * w;
        }
        d[pc.d_off + h * pc.d_nb1 + t * pc.d_nb2 + e] = L > 0.0 ? a / L : 0.0;
    }
}
