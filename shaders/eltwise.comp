/* eltwise.comp — f32 elementwise ops over any strides: ADD, MUL (b
 * broadcast by modulo), SILU_MUL, SIGMOID, EXP, CONCAT (param = dim).
 * One thread per output element; coordinates unravelled from the linear
 * index (ne0 fastest) and mapped through each tensor's element strides.
 * OP_* selects the op (one variant each, see shaders/variants.txt).
 * Tested by tests/test_ops.c (views, permuted strides, broadcasts). */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_ELTWISE
#include "common/params.h"
#include "common/types.glsl"

layout(local_size_x = WG) in;
layout(binding = 0, std430) readonly buffer A { float a[]; };
#if NSRC == 2
layout(binding = 1, std430) readonly buffer B { float b[]; };
layout(binding = 2, std430) writeonly buffer D { float d[]; };
#else
layout(binding = 1, std430) writeonly buffer D { float d[]; };
#endif

void main() {
    const uint i = pc.base + group_linear() * WG + gl_LocalInvocationIndex;
    if (i >= pc.n) return;
    uint c[4];
    c[0] = i % pc.ne0;
    uint t = i / pc.ne0;
    c[1] = t % pc.ne1;
    t /= pc.ne1;
    c[2] = t % pc.ne2;
    c[3] = t / pc.ne2;
    const uint di = pc.d_off + c[0] * pc.d_nb0 + c[1] * pc.d_nb1 + c[2] * pc.d_nb2 + c[3] * pc.d_nb3;
#if defined(OP_CONCAT)
    const uint ext[4] = uint[4](pc.b_ne0, pc.b_ne1, pc.b_ne2, pc.b_ne3); /* a's extent */
    if (c[pc.param] < ext[pc.param]) {
        d[di] = a[pc.a_off + c[0] * pc.a_nb0 + c[1] * pc.a_nb1 + c[2] * pc.a_nb2 + c[3] * pc.a_nb3];
    } else {
        c[pc.param] -= ext[pc.param];
        d[di] = b[pc.b_off + c[0] * pc.b_nb0 + c[1] * pc.b_nb1 + c[2] * pc.b_nb2 + c[3] * pc.b_nb3];
    }
#else
    const float x = a[pc.a_off + c[0] * pc.a_nb0 + c[1] * pc.a_nb1 + c[2] * pc.a_nb2 + c[3] * pc.a_nb3];
#if NSRC == 2
    const float y = b[pc.b_off + (c[0] % pc.b_ne0) * pc.b_nb0 + (c[1] % pc.b_ne1) * pc.b_nb1 + (c[2] % pc.b_ne2) * pc.b_nb2 +
                      (c[3] % pc.b_ne3) * pc.b_nb3];
#endif
#if defined(OP_ADD)
    d[di] = x + y;
#elif defined(OP_MUL)
    d[di] = x * y;
#elif defined(OP_SILU_MUL)
    d[di] = x / (1.0 + exp(-x)) * y;
#elif defined(OP_SIGMOID)
    d[di] = 1.0 / (1.0 + exp(-x));
#elif defined(OP_EXP)
    d[di] = exp(x);
#endif
#endif
}
