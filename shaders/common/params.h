/* shaders/common/params.h — push-constant structs shared by the Vulkan host
 * code (C11) and the compute shaders (GLSL 450), declared once.
 *
 * In GLSL a shader selects its block with `#define SX_PC_<NAME>` before the
 * include; that block becomes `layout(push_constant) uniform ... pc`. In C all
 * structs are declared and their size is checked against the 128-byte
 * push-constant minimum every Vulkan device guarantees.
 *
 * Only 32-bit scalars: std430 and C agree on their layout without padding.
 * Units: `*_off` and `*_nb*` count elements of the binding's access type
 * (floats for f32 tensors, halves for f16/bf16, bytes for quantised rows). */
#ifndef SX_SHADER_PARAMS_H
#define SX_SHADER_PARAMS_H

#if defined(VULKAN) || defined(GL_core_profile)
#define SX_U32 uint
#define SX_I32 int
#define SX_F32 float
#define SX_PC_BEGIN(NAME) layout(push_constant) uniform NAME##_block {
#define SX_PC_END(NAME) } pc;
#else
#include <stdint.h>
#define SX_U32 uint32_t
#define SX_I32 int32_t
#define SX_F32 float
#define SX_PC_BEGIN(NAME) typedef struct NAME {
#define SX_PC_END(NAME) } NAME; _Static_assert(sizeof(NAME) <= 128, #NAME " exceeds the 128-byte push-constant limit");
#define SX_PC_ALL 1
#endif

/* Elementwise ops over a 4-D iteration space (ADD MUL SILU_MUL SIGMOID EXP
 * CONCAT COPY). Element i of the space (linear, ne0 fastest) reads a at
 * a_off + sum(i_k * a_nb_k), b at the broadcast index (i_k % b_ne_k) and
 * writes d at d_off + sum(i_k * d_nb_k). CONCAT: b_ne holds a's extent, and
 * `param` the joined dim. base: first linear index of this dispatch. */
#if defined(SX_PC_ALL) || defined(SX_PC_ELTWISE)
SX_PC_BEGIN(sx_pc_eltwise)
    SX_U32 ne0, ne1, ne2, ne3;
    SX_U32 a_off, a_nb0, a_nb1, a_nb2, a_nb3;
    SX_U32 b_off, b_nb0, b_nb1, b_nb2, b_nb3;
    SX_U32 b_ne0, b_ne1, b_ne2, b_ne3;
    SX_U32 d_off, d_nb0, d_nb1, d_nb2, d_nb3;
    SX_U32 n, base, param;
SX_PC_END(sx_pc_eltwise)
#endif

/* Row ops (RMS_NORM, SOFTMAX): one workgroup per row of ne0 elements. */
#if defined(SX_PC_ALL) || defined(SX_PC_ROWS)
SX_PC_BEGIN(sx_pc_rows)
    SX_U32 ne0, ne1, ne2, ne3;
    SX_U32 x_off, x_nb0, x_nb1, x_nb2, x_nb3;
    SX_U32 w_off;
    SX_U32 d_off, d_nb0, d_nb1, d_nb2, d_nb3;
    SX_F32 eps;
SX_PC_END(sx_pc_rows)
#endif

/* MATMUL y[n + m*N] = dot(w row n, x col m). w_off / w_nb1 in bytes. */
#if defined(SX_PC_ALL) || defined(SX_PC_MATMUL)
SX_PC_BEGIN(sx_pc_matmul)
    SX_U32 K, N, M;
    SX_U32 w_off, w_nb1;
    SX_U32 x_off, x_nb1;
    SX_U32 d_off, d_nb1;
    SX_U32 col_groups; /* matvec: 0, or workgroup (x, y) = row group x of columns y*MAXC .. (M split in groups of MAXC) */
SX_PC_END(sx_pc_matmul)
#endif

/* MUL_MAT_ID (matvec.comp with MUL_MAT_ID, M = 1 per pick): workgroup
 * (x, y) computes rows x*NR.. of pick p = pick0 + y, j = p % n_k of row
 * r = p / n_k, whose expert is e = ids[ids_off + r*ids_nb1 + j]:
 * dst[d_off + r*d_nb2 + j*d_nb1 + n] = dot(w row n of expert e,
 * x[x_off + r*x_nb2 + j*x_nb1 ..]) (x_nb1 = 0: one input per row). The
 * binding of w is a window of experts [e_lo, e_hi) (expert e_lo at w_off,
 * w_nb2 bytes apart) and of N rows; picks of other experts are left to
 * another dispatch. An expert outside [0, n_experts) raises
 * SX_KERR_MUL_MAT_ID_ID. w_* in bytes, the rest in floats / ints. */
#if defined(SX_PC_ALL) || defined(SX_PC_MUL_MAT_ID)
SX_PC_BEGIN(sx_pc_mul_mat_id)
    SX_U32 K, N;
    SX_U32 w_off, w_nb1, w_nb2;
    SX_U32 x_off, x_nb1, x_nb2;
    SX_U32 d_off, d_nb1, d_nb2;
    SX_U32 ids_off, ids_nb1;
    SX_U32 n_k, pick0, e_lo, e_hi, n_experts;
SX_PC_END(sx_pc_mul_mat_id)
#endif

/* Codes a kernel ORs into its error word (common/errors.glsl) when it
 * skipped rows; the host reports them (vk_command.c). Bits, so one word
 * can carry several; 1 and 2 match the CUDA backend's SX_GPU_ERR_*. */
#define SX_KERR_GET_ROWS_ID 1u /* GET_ROWS: an id outside [0, n_rows) */
#define SX_KERR_SET_ROWS_ID 2u /* SET_ROWS: a slot outside [0, R) */
#define SX_KERR_GATHER_ID 4u   /* GATHER: an id outside [0, K) */
#define SX_KERR_MUL_MAT_ID_ID 8u /* MUL_MAT_ID: an expert outside [0, E) */

/* GET_ROWS: out row i = table row ids[i] - row_lo when ids[i] is in
 * [row_lo, row_hi) (a window of a table too large for one binding); an id
 * outside [0, n_rows), the whole table, raises SX_KERR_GET_ROWS_ID. */
#if defined(SX_PC_ALL) || defined(SX_PC_GET_ROWS)
SX_PC_BEGIN(sx_pc_get_rows)
    SX_U32 K, n_ids;
    SX_U32 t_off, t_nb1;
    SX_U32 ids_off;
    SX_U32 d_off, d_nb1;
    SX_U32 row_lo, row_hi, n_rows;
SX_PC_END(sx_pc_get_rows)
#endif

/* GATHER: dst[d_off + r*d_nb1 + j] = x[x_off + ids[..j, r]*x_nb0 + r*x_nb1]
 * for the n = k*R outputs (j = i % k, r = i / k); an id outside [0, K)
 * leaves its output unwritten and raises SX_KERR_GATHER_ID. */
#if defined(SX_PC_ALL) || defined(SX_PC_GATHER)
SX_PC_BEGIN(sx_pc_gather)
    SX_U32 K, k, n;
    SX_U32 x_off, x_nb0, x_nb1;
    SX_U32 ids_off, ids_nb0, ids_nb1;
    SX_U32 d_off, d_nb1;
SX_PC_END(sx_pc_gather)
#endif

/* ROPE over x [d, heads, T, ne3]; freq table entries (hi, lo) per pair. */
#if defined(SX_PC_ALL) || defined(SX_PC_ROPE)
SX_PC_BEGIN(sx_pc_rope)
    SX_U32 ne0, ne1, ne2, ne3;
    SX_U32 x_off, x_nb0, x_nb1, x_nb2, x_nb3;
    SX_U32 d_off, d_nb0, d_nb1, d_nb2, d_nb3;
    SX_U32 pos_off, f_off;
    SX_U32 n_dims, neox;
    SX_U32 n, base;
SX_PC_END(sx_pc_rope)
#endif

/* SET_ROWS: dst row ids[i] = src col i. dst in its access units. A slot
 * outside [0, R) raises SX_KERR_SET_ROWS_ID. */
#if defined(SX_PC_ALL) || defined(SX_PC_SET_ROWS)
SX_PC_BEGIN(sx_pc_set_rows)
    SX_U32 K, n, R;
    SX_U32 d_off, d_nb1;
    SX_U32 s_off, s_nb0, s_nb1;
    SX_U32 ids_off;
SX_PC_END(sx_pc_set_rows)
#endif

/* ATTENTION (attention.comp, attention_merge.comp): one workgroup per
 * (row, chunk of SX_ATTN_CHUNK key ordinals), rows row0 .. row0 + nrows - 1
 * (row = t * nh + h), nch chunks per row (1: no merge pass; more: partials
 * in scratch, merged by attention_merge). k/v strides in elements. */
#define SX_ATTN_CHUNK 256u
#if defined(SX_PC_ALL) || defined(SX_PC_ATTN)
SX_PC_BEGIN(sx_pc_attn)
    SX_U32 d, nh, T, group, n_kv, n_past;
    SX_F32 scale;
    SX_U32 q_off, q_nb1, q_nb2;
    SX_U32 k_off, k_nb1, k_nb2;
    SX_U32 v_off, v_nb1, v_nb2;
    SX_U32 m_off, m_nb1, has_mask;
    SX_U32 d_off, d_nb1, d_nb2;
    SX_U32 nch, row0, nrows;
SX_PC_END(sx_pc_attn)
#endif

/* TOP_K in passes (top_k_chunk.comp): one workgroup per (row, chunk of
 * SX_TOPK_CHUNK entries of the pass's input): rows row0 .. row0 + nrows - 1
 * (scratch rows srow ..), chunks c0 .. c0 + ncd - 1 of the nch per row.
 * from_x: the input is x, (row0 + r, entry e) at x_off + r * x_nb1 +
 * (e - c0 * SX_TOPK_CHUNK) * x_nb0 (floats; x may be bound as a window),
 * else the previous pass's (value bits, index) pairs in scratch at in_off
 * (pairs), ne0 per row; final: write the indices to d, else k pairs per
 * chunk to scratch at out_off. */
#define SX_TOPK_CHUNK 8192u
#if defined(SX_PC_ALL) || defined(SX_PC_TOPK)
SX_PC_BEGIN(sx_pc_topk)
    SX_U32 ne0, nrows, row0, srow, nch, c0, ncd, k;
    SX_U32 from_x, final;
    SX_U32 x_off, x_nb0, x_nb1;
    SX_U32 d_off, d_nb1;
    SX_U32 in_off, out_off;
SX_PC_END(sx_pc_topk)
#endif

/* ARGMAX / TOP_K over rows of x [ne0, rows]. */
#if defined(SX_PC_ALL) || defined(SX_PC_SELECT)
SX_PC_BEGIN(sx_pc_select)
    SX_U32 ne0, rows;
    SX_U32 x_off, x_nb0, x_nb1;
    SX_U32 d_off, d_nb1;
    SX_U32 k;
SX_PC_END(sx_pc_select)
#endif

#endif
