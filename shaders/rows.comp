/* rows.comp — row ops, one workgroup per row of ne0 elements (any strides):
 *   OP_RMS_NORM: d = x / sqrt(mean(x^2) + eps) * w
 *   OP_SOFTMAX:  d = exp(x - max) / sum(exp(x - max))
 * Reductions from common/reduce.glsl (subgroup or shared-memory variant).
 * Tested by tests/test_ops.c (RMS_NORM, SOFTMAX; contiguous, strided and
 * permuted views; rows of 33..576). */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_ROWS
#include "common/params.h"
#include "common/types.glsl"

layout(local_size_x = WG) in;
layout(binding = 0, std430) readonly buffer X { float x[]; };
#if defined(OP_RMS_NORM)
layout(binding = 1, std430) readonly buffer Wt { float w[]; };
layout(binding = 2, std430) writeonly buffer D { float d[]; };
#else
layout(binding = 1, std430) writeonly buffer D { float d[]; };
#endif

#include "common/reduce.glsl"

void main() {
    const uint row = group_linear();
    if (row >= pc.ne1 * pc.ne2 * pc.ne3) return;
    const uint tid = gl_LocalInvocationIndex;
    const uint i1 = row % pc.ne1, i2 = (row / pc.ne1) % pc.ne2, i3 = row / (pc.ne1 * pc.ne2);
    const uint xb = pc.x_off + i1 * pc.x_nb1 + i2 * pc.x_nb2 + i3 * pc.x_nb3;
    const uint db = pc.d_off + i1 * pc.d_nb1 + i2 * pc.d_nb2 + i3 * pc.d_nb3;
#if defined(OP_RMS_NORM)
    float ss = 0.0;
    for (uint i = tid; i < pc.ne0; i += WG) {
        const float v = x[xb + i * pc.x_nb0];
        ss += v * v;
    }
    ss = wg_sum(ss);
    const float scale = 1.0 / sqrt(ss / float(pc.ne0) + pc.eps);
    for (uint i = tid; i < pc.ne0; i += WG) d[db + i * pc.d_nb0] = x[xb + i * pc.x_nb0] * scale * w[pc.w_off + i];
#else
    float mx = -1.0 / 0.0;
    for (uint i = tid; i < pc.ne0; i += WG) mx = max(mx, x[xb + i * pc.x_nb0]);
    mx = wg_max(mx);
    float s = 0.0;
    for (uint i = tid; i < pc.ne0; i += WG) s += exp(x[xb + i * pc.x_nb0] - mx);
    s = wg_sum(s);
    const float inv = 1.0 / s;
    for (uint i = tid; i < pc.ne0; i += WG) d[db + i * pc.d_nb0] = exp(x[xb + i * pc.x_nb0] - mx) * inv;
#endif
}
