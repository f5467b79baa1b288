/* backends/vulkan/vk_ops_matmul.c — weight-reading ops (shaders/matvec.comp,
 * matmul_tiled.comp, get_rows.comp): MATMUL, MUL_MAT_ID and GET_ROWS, any
 * weight dtype.
 *
 * MATMUL picks matvec1 (M = 1, decode), matvec8 (M <= 8: short speculative
 * batches, weights still read once) or the tiled kernel (M > 64); batches of
 * 9..64 columns (and any batch of a small weight: the KV rotation) run as
 * matvec8 groups (one dispatch, grid y) so every column is computed exactly as
 * in decoding (batch invariance: tests/test_batch_invariance.c). A weight
 * matrix (or activation) larger than one storage binding is processed in
 * windows of whole rows / columns, each bound at its own offset; GET_ROWS
 * over a table above the limit runs once per row window; an id outside the
 * table raises an error word (vk_command.c), reported at the next read.
 * MUL_MAT_ID (mixture of experts) runs the matvec1 code per pick
 * (matvec1id), so each expert column equals MATMUL's M = 1 result bit for
 * bit; an expert id outside [0, E) raises an error word like GET_ROWS. */
#include <stdio.h>
#include <string.h>

#include "backends/vulkan/vk_internal.h"

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* one dispatch over w rows [n0, n0 + nc) and x columns [m0, m0 + mc);
 * grouped: mc > 8 columns as matvec8 groups of 8 (grid y), each column
 * computed exactly as alone */
static sx_status matmul_chunk(vk_device *d, sx_tensor *node, int64_t n0, int64_t nc, int64_t m0, int64_t mc, bool grouped) {
    const sx_tensor *w = node->src[0], *x = node->src[1];
    const int64_t K = w->ne[0];
    const char *dt = sx_dtype_name(w->dtype);
    int sh;
    if (mc == 1) sh = sx_vk_shader_pick(d, "matvec1_%s", dt);
    else if (mc <= 8 || grouped) sh = sx_vk_shader_pick(d, "matvec8_%s", dt);
    else sh = sx_vk_shader_pick(d, "matmul_%s", dt);
    if (sh < 0) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: no matmul shader for %s", dt);
    sx_pc_matmul pc = {0};
    vk_arg args[3];
    pc.K = (uint32_t)K, pc.N = (uint32_t)nc, pc.M = (uint32_t)mc;
    pc.w_nb1 = (uint32_t)w->nb[1];
    pc.x_nb1 = (uint32_t)(x->nb[1] / 4);
    pc.d_nb1 = (uint32_t)(node->nb[1] / 4);
    const size_t row = sx_dtype_row_size(w->dtype, K);
    SX_RETURN_IF_ERROR(sx_vk_arg_window(d, w, sx_tensor_buffer_offset(w) + (size_t)n0 * w->nb[1], (size_t)(nc - 1) * w->nb[1] + row, 1, false,
                                        &args[0], &pc.w_off));
    SX_RETURN_IF_ERROR(sx_vk_arg_window(d, x, sx_tensor_buffer_offset(x) + (size_t)m0 * x->nb[1], (size_t)(mc - 1) * x->nb[1] + (size_t)K * 4, 4,
                                        false, &args[1], &pc.x_off));
    SX_RETURN_IF_ERROR(sx_vk_arg_window(d, node, sx_tensor_buffer_offset(node) + (size_t)m0 * node->nb[1] + (size_t)n0 * 4,
                                        (size_t)(mc - 1) * node->nb[1] + (size_t)nc * 4, 4, true, &args[2], &pc.d_off));
    const sx_vk_shader_spv *s = &sx_vk_shaders[sh];
    if (s->rows > 0 && mc > 8) pc.col_groups = (uint32_t)((mc + 7) / 8);
    if (s->rows > 0) return sx_vk_dispatch(d, sh, args, 3, &pc, sizeof pc, (uint32_t)((nc + s->rows - 1) / s->rows), mc > 8 ? pc.col_groups : 1);
    return sx_vk_dispatch(d, sh, args, 3, &pc, sizeof pc, (uint32_t)((nc + 63) / 64), (uint32_t)((mc + 63) / 64));
}

sx_status sx_vk_op_MATMUL(sx_device *dev, sx_tensor *node) {
    vk_device *d = vk_dev(dev);
    const sx_tensor *w = node->src[0], *x = node->src[1];
    const int64_t K = w->ne[0], N = w->ne[1], M = x->ne[1];
    const size_t lim = (size_t)(d->max_range - d->align);
    const size_t row = sx_dtype_row_size(w->dtype, K);
    /* rows of w per window, then columns per window so x and y fit too */
    int64_t nc = N;
    if ((size_t)(N - 1) * w->nb[1] + row > lim) nc = (int64_t)((lim - row) / w->nb[1]) + 1;
    if ((size_t)nc * 4 > lim) nc = (int64_t)(lim / 4);
    const size_t col_stride = x->nb[1] > node->nb[1] ? x->nb[1] : node->nb[1];
    const size_t first = (size_t)K * 4 > (size_t)nc * 4 ? (size_t)K * 4 : (size_t)nc * 4;
    int64_t mc = M;
    if (first <= lim && (size_t)(M - 1) * col_stride + first > lim) mc = (int64_t)((lim - first) / col_stride) + 1;
    if (nc < 1 || mc < 1 || row > lim || first > lim) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: matmul %s: a single row exceeds the binding limit", node->name);
    /* batch invariance (backends/backend.h): those batches as matvec8
     * groups, which compute every column exactly like M = 1; one dispatch
     * with the groups on grid y where the grid fits, else one per group */
    bool grouped = false;
    if (mc > 8 && (M <= SX_MATMUL_INVARIANT_M || N * K <= SX_MATMUL_INVARIANT_SMALL_W)) {
        const int sh = sx_vk_shader_pick(d, "matvec8_%s", sx_dtype_name(w->dtype));
        const int rows = sh >= 0 ? sx_vk_shaders[sh].rows : 0;
        if (rows > 0 && (nc + rows - 1) / rows <= d->max_groups[0] && (mc + 7) / 8 <= d->max_groups[1]) grouped = true;
        else mc = 8;
    }
    for (int64_t m0 = 0; m0 < M; m0 += mc)
        for (int64_t n0 = 0; n0 < N; n0 += nc)
            SX_RETURN_IF_ERROR(matmul_chunk(d, node, n0, min_sz((size_t)nc, (size_t)(N - n0)), m0, min_sz((size_t)mc, (size_t)(M - m0)), grouped));
    return SX_OK;
}

sx_status sx_vk_op_GET_ROWS(sx_device *dev, sx_tensor *node) {
    vk_device *d = vk_dev(dev);
    const sx_tensor *tab = node->src[0], *ids = node->src[1];
    const int sh = sx_vk_shader_pick(d, "get_rows_%s", sx_dtype_name(tab->dtype));
    if (sh < 0) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: no get_rows shader for %s", sx_dtype_name(tab->dtype));
    const int64_t R = tab->ne[1];
    const size_t row = sx_dtype_row_size(tab->dtype, tab->ne[0]);
    const size_t lim = (size_t)(d->max_range - d->align);
    int64_t rc = R;
    if ((size_t)(R - 1) * tab->nb[1] + row > lim) rc = (int64_t)((lim - row) / tab->nb[1]) + 1;
    if (rc < 1) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: get_rows %s: a row exceeds the binding limit", node->name);
    sx_pc_get_rows pc = {0};
    vk_arg args[4];
    pc.K = (uint32_t)tab->ne[0];
    pc.n_ids = (uint32_t)ids->ne[0];
    pc.t_nb1 = (uint32_t)tab->nb[1];
    pc.d_nb1 = (uint32_t)(node->nb[1] / 4);
    pc.n_rows = (uint32_t)R;
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, ids, 4, false, &args[1], &pc.ids_off));
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, node, 4, true, &args[2], &pc.d_off));
    for (int64_t r0 = 0; r0 < R; r0 += rc) {
        const int64_t n = rc < R - r0 ? rc : R - r0;
        SX_RETURN_IF_ERROR(sx_vk_arg_window(d, tab, sx_tensor_buffer_offset(tab) + (size_t)r0 * tab->nb[1], (size_t)(n - 1) * tab->nb[1] + row, 1,
                                            false, &args[0], &pc.t_off));
        pc.row_lo = (uint32_t)r0;
        pc.row_hi = (uint32_t)(r0 + n);
        SX_RETURN_IF_ERROR(sx_vk_arg_error(d, &args[3])); /* ids out of [0, R): every window raises it */
        SX_RETURN_IF_ERROR(sx_vk_dispatch(d, sh, args, 4, &pc, sizeof pc, pc.n_ids, 1));
    }
    return SX_OK;
}

/* MUL_MAT_ID: matvec1id (matvec.comp, MUL_MAT_ID), grid (row groups of N)
 * x (picks). w is bound in windows of whole experts (or, when one expert
 * exceeds a binding, of rows of one expert); every dispatch covers the picks
 * of a range of rows and skips those whose expert lies in another window.
 * x, ids and dst are bound in windows of whole rows r (a long prefill), and
 * picks per dispatch are capped by the grid's y limit. */
static size_t mmid_extent(const sx_tensor *t, size_t last) { return (size_t)(t->ne[1] - 1) * t->nb[1] + last; } /* one row r */

bool sx_vk_mul_mat_id_fits(const vk_device *d, const sx_tensor *node) {
    const sx_tensor *w = node->src[0], *x = node->src[1], *ids = node->src[2];
    const size_t lim = (size_t)(d->max_range - d->align);
    return sx_dtype_row_size(w->dtype, w->ne[0]) <= lim && w->nb[1] < ((size_t)1 << 32) && mmid_extent(x, (size_t)x->ne[0] * 4) <= lim &&
           mmid_extent(node, (size_t)node->ne[0] * 4) <= lim && (size_t)ids->ne[0] * 4 <= lim;
}

sx_status sx_vk_op_MUL_MAT_ID(sx_device *dev, sx_tensor *node) {
    vk_device *d = vk_dev(dev);
    const sx_tensor *w = node->src[0], *x = node->src[1], *ids = node->src[2];
    const int64_t K = w->ne[0], N = w->ne[1], E = w->ne[2], k = ids->ne[0], R = ids->ne[1];
    const char *dt = sx_dtype_name(w->dtype);
    const int sh = sx_vk_shader_pick(d, "matvec1id_%s", dt);
    if (sh < 0) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: no mul_mat_id shader for %s", dt);
    if (!sx_vk_mul_mat_id_fits(d, node)) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: mul_mat_id %s: a row exceeds the binding limit", node->name);
    const int nr = sx_vk_shaders[sh].rows;
    const size_t lim = (size_t)(d->max_range - d->align);
    const size_t row = sx_dtype_row_size(w->dtype, K);
    /* w: rows per window (binding limit, x grid limit), then experts */
    int64_t nc = N;
    if ((size_t)(N - 1) * w->nb[1] + row > lim) nc = (int64_t)((lim - row) / w->nb[1]) + 1;
    if (nc > (int64_t)d->max_groups[0] * nr) nc = (int64_t)d->max_groups[0] * nr;
    const size_t expert = (size_t)(nc - 1) * w->nb[1] + row;
    int64_t ec = 1;
    if (nc == N && E > 1 && w->nb[2] < ((size_t)1 << 32)) {
        ec = (int64_t)((lim - expert) / w->nb[2]) + 1;
        if (ec > E) ec = E;
    }
    /* x, ids, dst: rows r per window */
    const size_t xe = mmid_extent(x, (size_t)K * 4), de = mmid_extent(node, (size_t)N * 4), ie = (size_t)k * 4;
    int64_t rc = R;
    if ((size_t)(rc - 1) * x->nb[2] + xe > lim) rc = (int64_t)((lim - xe) / x->nb[2]) + 1;
    if ((size_t)(rc - 1) * node->nb[2] + de > lim) rc = (int64_t)((lim - de) / node->nb[2]) + 1;
    if ((size_t)(rc - 1) * ids->nb[1] + ie > lim) rc = (int64_t)((lim - ie) / ids->nb[1]) + 1;
    const int64_t pc_max = (int64_t)d->max_groups[1];
    sx_pc_mul_mat_id pc = {0};
    vk_arg args[5];
    pc.K = (uint32_t)K;
    pc.w_nb1 = (uint32_t)w->nb[1];
    pc.w_nb2 = ec > 1 ? (uint32_t)w->nb[2] : 0u;
    pc.x_nb1 = x->ne[1] == 1 ? 0u : (uint32_t)(x->nb[1] / 4);
    pc.x_nb2 = (uint32_t)(x->nb[2] / 4);
    pc.d_nb1 = (uint32_t)(node->nb[1] / 4);
    pc.d_nb2 = (uint32_t)(node->nb[2] / 4);
    pc.ids_nb1 = (uint32_t)(ids->nb[1] / 4);
    pc.n_k = (uint32_t)k;
    pc.n_experts = (uint32_t)E;
    for (int64_t r0 = 0; r0 < R; r0 += rc) {
        const int64_t rn = rc < R - r0 ? rc : R - r0, picks = k * rn;
        uint32_t d_off;
        SX_RETURN_IF_ERROR(sx_vk_arg_window(d, x, sx_tensor_buffer_offset(x) + (size_t)r0 * x->nb[2], (size_t)(rn - 1) * x->nb[2] + xe, 4, false,
                                            &args[1], &pc.x_off));
        SX_RETURN_IF_ERROR(sx_vk_arg_window(d, node, sx_tensor_buffer_offset(node) + (size_t)r0 * node->nb[2], (size_t)(rn - 1) * node->nb[2] + de, 4,
                                            true, &args[2], &d_off));
        SX_RETURN_IF_ERROR(sx_vk_arg_window(d, ids, sx_tensor_buffer_offset(ids) + (size_t)r0 * ids->nb[1], (size_t)(rn - 1) * ids->nb[1] + ie, 4,
                                            false, &args[3], &pc.ids_off));
        for (int64_t e0 = 0; e0 < E; e0 += ec) {
            const int64_t en = ec < E - e0 ? ec : E - e0;
            for (int64_t n0 = 0; n0 < N; n0 += nc) {
                const int64_t nn = nc < N - n0 ? nc : N - n0;
                SX_RETURN_IF_ERROR(sx_vk_arg_window(d, w, sx_tensor_buffer_offset(w) + (size_t)e0 * w->nb[2] + (size_t)n0 * w->nb[1],
                                                    (size_t)(en - 1) * w->nb[2] + (size_t)(nn - 1) * w->nb[1] + row, 1, false, &args[0], &pc.w_off));
                pc.N = (uint32_t)nn;
                pc.d_off = d_off + (uint32_t)n0;
                pc.e_lo = (uint32_t)e0;
                pc.e_hi = (uint32_t)(e0 + en);
                for (int64_t p0 = 0; p0 < picks; p0 += pc_max) {
                    pc.pick0 = (uint32_t)p0;
                    SX_RETURN_IF_ERROR(sx_vk_arg_error(d, &args[4])); /* experts out of [0, E): every window raises it */
                    SX_RETURN_IF_ERROR(sx_vk_dispatch(d, sh, args, 5, &pc, sizeof pc, (uint32_t)((nn + nr - 1) / nr),
                                                      (uint32_t)(pc_max < picks - p0 ? pc_max : picks - p0)));
                }
            }
        }
    }
    return SX_OK;
}
