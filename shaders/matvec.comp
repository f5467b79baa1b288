/* matvec.comp — MATMUL for few activation columns (decode, M <= MAXC).
 * y[n + m*N] = sum_k w[n][k] * x[m][k].
 * Each workgroup owns NR consecutive weight rows. Lanes stride over K four
 * weights at a time (adjacent lanes read adjacent words: coalesced),
 * dequantise each group once and use it for every column, so the weights are
 * read exactly once. USE_SUBGROUP: one subgroup per row, subgroupAdd, no
 * barrier; otherwise the whole workgroup per row with a shared-memory tree.
 * MATMUL with col_groups > 0: the grid is (row groups) x (groups of MAXC
 * columns), one dispatch for a batch computed column by column as alone.
 * MUL_MAT_ID (mixture of experts, MAXC = 1): the grid is (row groups) x
 * (picks); a workgroup reads its pick's expert id and computes that expert's
 * rows for the pick's input column. Only the bases of w, x and dst differ
 * (locate()): every dot product is the same code as matvec1_* (the same
 * NR, WG and subgroup choice), so an expert's output column equals MATMUL's
 * M = 1 result bit for bit (tests/test_batch_invariance.c).
 * Tested by tests/test_ops.c (MATMUL, M = 1 and 5, every weight dtype;
 * MUL_MAT_ID, every weight dtype). */
#version 450
#extension GL_GOOGLE_include_directive : require
#ifdef MUL_MAT_ID
#define SX_PC_MUL_MAT_ID
#if MAXC != 1
#error MUL_MAT_ID computes one column per pick (MAXC = 1)
#endif
#else
#define SX_PC_MATMUL
#endif
#include "common/params.h"

layout(local_size_x = WG) in;
layout(binding = 0, std430) readonly buffer W { uint wq[]; };
layout(binding = 1, std430) readonly buffer X { float xf[]; };
layout(binding = 1, std430) readonly buffer X4 { vec4 xv4[]; };
layout(binding = 2, std430) writeonly buffer D { float dst[]; };
#ifdef MUL_MAT_ID
layout(binding = 3, std430) readonly buffer Ids { int ids[]; };
#define ERR_BINDING 4
#include "common/errors.glsl"
#endif

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

/* This workgroup's group of NR rows and the element bases of w (bytes), x
 * and dst; false when it has nothing to do. MATMUL: the dispatch's bases.
 * MUL_MAT_ID: pick p = pick0 + y; its expert's rows in the w window, its
 * input column and its output column (M = 1: column 0 of each). An expert
 * outside [0, n_experts) raises SX_KERR_MUL_MAT_ID_ID (output unwritten);
 * one outside the window [e_lo, e_hi) is another dispatch's. */
uint g_group, g_w, g_x, g_d, g_m;
bool locate() {
#ifdef MUL_MAT_ID
    g_group = gl_WorkGroupID.x;
    const uint p = pc.pick0 + gl_WorkGroupID.y;
    const uint j = p % pc.n_k, r = p / pc.n_k;
    const int e = ids[pc.ids_off + r * pc.ids_nb1 + j];
    if (e < 0 || uint(e) >= pc.n_experts) {
        if (gl_LocalInvocationIndex == 0u && gl_WorkGroupID.x == 0u) raise_error(SX_KERR_MUL_MAT_ID_ID);
        return false;
    }
    if (uint(e) < pc.e_lo || uint(e) >= pc.e_hi) return false;
    g_w = pc.w_off + (uint(e) - pc.e_lo) * pc.w_nb2;
    g_x = pc.x_off + r * pc.x_nb2 + j * pc.x_nb1;
    g_d = pc.d_off + r * pc.d_nb2 + j * pc.d_nb1;
#else
    g_w = pc.w_off;
    if (pc.col_groups > 0u) { /* a batch in groups of MAXC columns: each column as alone */
        const uint c0 = gl_WorkGroupID.y * MAXC;
        g_group = gl_WorkGroupID.x;
        g_m = min(uint(MAXC), pc.M - c0);
        g_x = pc.x_off + c0 * pc.x_nb1;
        g_d = pc.d_off + c0 * pc.d_nb1;
    } else {
        g_group = group_linear();
        g_m = pc.M;
        g_x = pc.x_off;
        g_d = pc.d_off;
    }
#endif
    return true;
}

#ifdef MUL_MAT_ID
#define NCOLS 1u
#define X_COL 0u /* column c of a pick: only c = 0 */
#define D_COL 0u
#else
#define NCOLS g_m
#define X_COL pc.x_nb1
#define D_COL pc.d_nb1
#endif

#if USE_SUBGROUP
/* Subgroup per row: no shared memory, no barrier. The NR rows of the
 * workgroup are dealt to its subgroups (any subgroup size, even one that
 * varies per dispatch); each subgroup strides its row with all lanes and
 * reduces with subgroupAdd. */
void main() {
    if (!locate()) return;
    const uint K = pc.K, N = pc.N, M = NCOLS;
    const uint lane = gl_SubgroupInvocationID, width = gl_SubgroupSize;
    for (uint r = gl_SubgroupID; r < NR; r += gl_NumSubgroups) {
        const uint row = g_group * NR + r;
        if (row >= N) break;
        const uint rb = g_w + row * pc.w_nb1;
        float acc[MAXC];
        for (uint c = 0u; c < MAXC; c++) acc[c] = 0.0;
        for (uint k = lane * 4u; k < K; k += width * 4u) {
            const vec4 w = dq4k(rb, k, K);
            for (uint c = 0u; c < MAXC; c++)
                if (c < M) acc[c] += dot(w, ldx(g_x + c * X_COL, k, K));
        }
        for (uint c = 0u; c < MAXC; c++) {
            if (c >= M) break;
            const float s = subgroupAdd(acc[c]);
            if (subgroupElect()) dst[g_d + c * D_COL + row] = s;
        }
    }
}
#else
/* Workgroup per NR rows: threads stride over K, partial sums of all rows
 * and columns reduced through shared memory. */
void main() {
    if (!locate()) return; /* uniform per workgroup: no barrier is skipped by some threads only */
    const uint tid = gl_LocalInvocationIndex;
    const uint row0 = g_group * NR;
    const uint K = pc.K, N = pc.N, M = NCOLS;
    float acc[NR][MAXC];
    for (uint r = 0u; r < NR; r++)
        for (uint c = 0u; c < MAXC; c++) acc[r][c] = 0.0;

    for (uint k = tid * 4u; k < K; k += WG * 4u) {
        vec4 xv[MAXC];
        for (uint c = 0u; c < MAXC; c++)
            if (c < M) xv[c] = ldx(g_x + c * X_COL, k, K);
        for (uint r = 0u; r < NR; r++) {
            if (row0 + r < N) {
                const vec4 w = dq4k(g_w + (row0 + r) * pc.w_nb1, k, K);
                for (uint c = 0u; c < MAXC; c++)
                    if (c < M) acc[r][c] += dot(w, xv[c]);
            }
        }
    }
    for (uint r = 0u; r < NR; r++)
        for (uint c = 0u; c < MAXC; c++) {
            if (c >= M) continue;
            const float s = wg_sum(acc[r][c]);
            if (tid == 0u && row0 + r < N) dst[g_d + c * D_COL + row0 + r] = s;
        }
}
#endif
