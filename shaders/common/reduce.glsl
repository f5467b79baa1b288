/* shaders/common/reduce.glsl — workgroup reductions.
 *
 * WG (threads per workgroup) must be defined. With USE_SUBGROUP (a variant
 * chosen when the device offers subgroup arithmetic in compute shaders) each
 * subgroup reduces in registers and one barrier combines the subgroups; the
 * fallback is a shared-memory tree. Every thread of the workgroup must call
 * these (they contain barriers) and all get the result. Works for any
 * subgroup size, including devices whose size varies between dispatches. */
#ifndef SX_REDUCE_GLSL
#define SX_REDUCE_GLSL

#if USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

shared float red_f[WG];
shared uint red_i[WG];

float wg_sum(float v) {
#if USE_SUBGROUP
    v = subgroupAdd(v);
    if (subgroupElect()) red_f[gl_SubgroupID] = v;
    barrier();
    float s = 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; i++) s += red_f[i];
    barrier();
    return s;
#else
    const uint tid = gl_LocalInvocationIndex;
    red_f[tid] = v;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (tid < s) red_f[tid] += red_f[tid + s];
        barrier();
    }
    const float r = red_f[0];
    barrier();
    return r;
#endif
}

float wg_max(float v) {
#if USE_SUBGROUP
    v = subgroupMax(v);
    if (subgroupElect()) red_f[gl_SubgroupID] = v;
    barrier();
    float s = red_f[0];
    for (uint i = 1u; i < gl_NumSubgroups; i++) s = max(s, red_f[i]);
    barrier();
    return s;
#else
    const uint tid = gl_LocalInvocationIndex;
    red_f[tid] = v;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (tid < s) red_f[tid] = max(red_f[tid], red_f[tid + s]);
        barrier();
    }
    const float r = red_f[0];
    barrier();
    return r;
#endif
}

/* (value, index) pair: larger value wins, ties go to the lower index.
 * Index 0xffffffff marks "none" (value -inf). Result in *v / *i. */
bool better(float v, uint i, float bv, uint bi) { return v > bv || (v == bv && i < bi); }

void wg_argmax(inout float v, inout uint i) {
    const uint tid = gl_LocalInvocationIndex;
    red_f[tid] = v;
    red_i[tid] = i;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (tid < s && better(red_f[tid + s], red_i[tid + s], red_f[tid], red_i[tid])) {
            red_f[tid] = red_f[tid + s];
            red_i[tid] = red_i[tid + s];
        }
        barrier();
    }
    v = red_f[0];
    i = red_i[0];
    barrier();
}

#endif
