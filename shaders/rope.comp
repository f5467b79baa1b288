/* rope.comp — ROPE, normal (adjacent pairs) and NeoX (halves) layouts, with
 * partial rotary dims (elements past n_dims are copied).
 * Angle = pos * w_i with w_i = freq_scale * base^(-2i/n_dims). Positions run
 * to thousands, where an f32 angle is off by 1e-4 rad, so the host gives each
 * pair its frequency in cycles as a 64-bit fixed-point fraction (table of
 * {hi, lo} words): frac(pos * f) is then exact integer arithmetic
 * (umulExtended) and the reduced angle in [-pi, pi) has ~2e-7 rad of error,
 * without fp64 or fused-multiply-add requirements.
 * Tested by tests/test_ops.c (ROPE, both modes, partial dims, pos < 5000). */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_ROPE
#include "common/params.h"
#include "common/types.glsl"

layout(local_size_x = WG) in;
layout(binding = 0, std430) readonly buffer X { float x[]; };
layout(binding = 1, std430) readonly buffer P { int pos[]; };
layout(binding = 2, std430) readonly buffer F { uint freq[]; };
layout(binding = 3, std430) writeonly buffer D { float d[]; };

void main() {
    const uint i = pc.base + group_linear() * WG + gl_LocalInvocationIndex;
    if (i >= pc.n) return;
    const uint half_d = pc.n_dims / 2u;
    const uint W = half_d + pc.ne0 - pc.n_dims; /* work items per row */
    const uint w = i % W, row = i / W;
    const uint h = row % pc.ne1, t = (row / pc.ne1) % pc.ne2, i3 = row / (pc.ne1 * pc.ne2);
    const uint xb = pc.x_off + h * pc.x_nb1 + t * pc.x_nb2 + i3 * pc.x_nb3;
    const uint db = pc.d_off + h * pc.d_nb1 + t * pc.d_nb2 + i3 * pc.d_nb3;
    if (w >= half_d) { /* pass-through tail */
        const uint e = pc.n_dims + (w - half_d);
        d[db + e * pc.d_nb0] = x[xb + e * pc.x_nb0];
        return;
    }
    const int p = pos[pc.pos_off + t];
    const uint ap = uint(abs(p));
    const uint fhi = freq[pc.f_off + 2u * w], flo = freq[pc.f_off + 2u * w + 1u];
    uint msb, lsb;
    umulExtended(ap, flo, msb, lsb);
    const uint frac_hi = ap * fhi + msb; /* (ap * f) mod 1, top 32 bits */
    float ang = 6.283185307179586 * float(int(frac_hi)) * 2.3283064365386963e-10;
    if (p < 0) ang = -ang;
    const float cs = cos(ang), sn = sin(ang);
    const uint a = pc.neox != 0u ? w : 2u * w, b = pc.neox != 0u ? w + half_d : 2u * w + 1u;
    const float x0 = x[xb + a * pc.x_nb0], x1 = x[xb + b * pc.x_nb0];
    d[db + a * pc.d_nb0] = x0 * cs - x1 * sn;
    d[db + b * pc.d_nb0] = x0 * sn + x1 * cs;
}
