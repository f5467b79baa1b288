/* backends/vulkan/vk_backend.c — the "vulkan" backend's vtable.
 *
 * The kernel table has one slot per op of ir/ops.def (NULL = not
 * implemented); supports_op answers from it plus the dtype / shape / limit
 * checks below, so the scheduler never hands us a node we would reject.
 * compute() records every node into one command buffer with barriers only
 * at byte-range hazards, and submits once; reads and synchronize wait, and
 * report ids that GET_ROWS / SET_ROWS / GATHER / MUL_MAT_ID kernels found
 * out of range.
 * With SPECEXIT_LOG=debug each compute logs its dispatch, barrier and submit
 * counts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/vulkan/vk_internal.h"

static const sx_kernel_fn g_kernels[SX_OP_COUNT] = {
#define SX_OP(NAME, nsrc, nopt, params) [SX_OP_##NAME] = sx_vk_op_##NAME,
#include "ir/ops.def"
#undef SX_OP
};

static bool is_plain(sx_dtype t) { return t == SX_DTYPE_F32 || t == SX_DTYPE_F16 || t == SX_DTYPE_BF16; }

static bool elem_strides(const sx_tensor *t) {
    const size_t unit = t->dtype == SX_DTYPE_F32 || t->dtype == SX_DTYPE_I32 ? 4 : is_plain(t->dtype) ? 2 : 1;
    uint32_t nb[4];
    return sx_vk_strides(t, unit, nb) && sx_tensor_nelements(t) < ((int64_t)1 << 32);
}

/* A quantized KV cache type (shaders: set_rows DST_*, attention KV_*) */
static bool kv_quant(sx_dtype t) { return t == SX_DTYPE_Q8_0 || t == SX_DTYPE_Q4_0; }

/* A q8_0 / q4_0 KV cache: the cache of SET_ROWS (src 0) or K/V of ATTENTION. */
static bool kv_quant_src(const sx_tensor *node, int i) {
    if (!kv_quant(node->src[i]->dtype)) return false;
    return (node->op == SX_OP_SET_ROWS && i == 0) || (node->op == SX_OP_ATTENTION && (i == 1 || i == 2));
}

/* q8_0 / q4_0 K/V (shaders/attention.comp, KV_Q8_0 / KV_Q4_0): both of the
 * type, whole blocks per head, rows at even byte strides (the scales are
 * read as halves) */
static bool attention_kv_ok(const sx_tensor *k, const sx_tensor *v) {
    if (k->dtype != v->dtype) return false;
    if (!kv_quant(k->dtype)) return true;
    return k->ne[0] % 32 == 0 && k->nb[1] % 2 == 0 && k->nb[2] % 2 == 0 && v->nb[1] % 2 == 0 && v->nb[2] % 2 == 0;
}

bool sx_vk_supports_node(const vk_device *d, const sx_tensor *node) {
    if ((unsigned)node->op >= SX_OP_COUNT || !g_kernels[node->op]) return false;
    const int nsrc = sx_op_n_src(node->op);
    const bool windowed = node->op == SX_OP_MATMUL || node->op == SX_OP_GET_ROWS;
    const bool moe = node->op == SX_OP_MUL_MAT_ID; /* windows of weight rows and of rows r (sx_vk_mul_mat_id_fits) */
    if (!elem_strides(node) || (!windowed && !moe && !sx_vk_fits(d, node))) return false;
    for (int i = 0; i < nsrc; i++) {
        const sx_tensor *s = node->src[i];
        if (!s) continue;
        if (s->dtype != SX_DTYPE_I32 && !is_plain(s->dtype) && !((windowed || moe) && i == 0) && !kv_quant_src(node, i)) return false;
        if (!elem_strides(s)) return false;
        if (!(windowed && i < 2) && !moe && !(node->op == SX_OP_TOP_K && i == 0) && !sx_vk_fits(d, s)) return false;
    }
    const sx_tensor *a = node->src[0];
    switch (node->op) {
    case SX_OP_GET_ROWS:
    case SX_OP_MATMUL: {
        char name[48];
        snprintf(name, sizeof name, "%s_%s", node->op == SX_OP_MATMUL ? "matmul" : "get_rows", sx_dtype_name(a->dtype));
        if (sx_vk_shader_find(name) < 0) return false;
        /* windows hold whole rows: one row of the weights / activations must fit */
        const size_t lim = (size_t)(d->max_range - d->align), row = sx_dtype_row_size(a->dtype, a->ne[0]);
        if (row > lim || a->nb[1] >= ((size_t)1 << 32)) return false;
        if (node->op == SX_OP_GET_ROWS) return sx_vk_fits(d, node) && node->nb[0] == 4;
        return node->src[1]->nb[0] == 4 && node->nb[0] == 4 && (size_t)a->ne[0] * 4 <= lim && (size_t)a->ne[1] * 4 <= lim;
    }
    case SX_OP_SET_ROWS: /* q8_0 / q4_0: whole blocks per row, written as halves */
        if (kv_quant(node->dtype)) return d->storage16 && node->ne[0] % 32 == 0 && node->nb[1] % 2 == 0;
        return node->dtype == SX_DTYPE_F32 || d->storage16;
    case SX_OP_COPY: return node->dtype == SX_DTYPE_F32 || d->storage16;
    case SX_OP_ATTENTION: return a->ne[0] <= 256 && a->nb[0] == 4 && node->nb[0] == 4 && attention_kv_ok(node->src[1], node->src[2]);
    case SX_OP_ROPE: { /* frequency factors are read by the host (rope_table): host-written data only */
        const sx_tensor *ff = node->src[2], *r = ff && ff->view_src ? ff->view_src : ff;
        return node->params.rope.n_dims <= 2048 && (!r || (r->op == SX_OP_NONE && (r->role == SX_ROLE_WEIGHT || r->role == SX_ROLE_INPUT)));
    }
    case SX_OP_TOP_K: return sx_vk_top_k_fits(d, node); /* k <= 256, a row's scratch and x (or a chunk window of it) fit */
    case SX_OP_MUL_MAT_ID: { /* matvec1id (vk_ops_matmul.c) */
        char name[48];
        snprintf(name, sizeof name, "matvec1id_%s", sx_dtype_name(a->dtype));
        if (sx_vk_shader_find(name) < 0) return false;
        const sx_tensor *x = node->src[1], *ids = node->src[2];
        return x->nb[0] == 4 && ids->nb[0] == 4 && node->nb[0] == 4 && sx_vk_mul_mat_id_fits(d, node);
    }
    case SX_OP_GATHER: return true; /* any element strides (elem_strides above) */
    default: return true;
    }
}

static bool vk_supports_op(sx_device *dev, const sx_tensor *node) { return sx_vk_supports_node(vk_dev(dev), node); }

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

void sx_vk_profile_report(vk_device *d) {
    if (!d->profile) return;
    for (int op = 1; op < SX_OP_COUNT; op++)
        if (d->prof_n[op])
            SX_LOGI("vulkan profile: %-10s %8llu nodes %10.2f ms total %8.3f ms/node", sx_op_name((sx_op)op), (unsigned long long)d->prof_n[op],
                    d->prof_ms[op], d->prof_ms[op] / (double)d->prof_n[op]);
}

static sx_status vk_compute(sx_device *dev, sx_tensor *const *nodes, int n_nodes) {
    vk_device *d = vk_dev(dev);
    const vk_stats before = d->stats;
    sx_status st = SX_OK;
    for (int i = 0; i < n_nodes && st == SX_OK; i++) {
        sx_tensor *node = nodes[i];
        if (!sx_vk_supports_node(d, node)) {
            st = sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: op %s (%s) is not supported for node %s", sx_op_name(node->op),
                              sx_dtype_name(node->src[0] ? node->src[0]->dtype : node->dtype), node->name);
            break;
        }
        const double t0 = d->profile ? now_ms() : 0;
        st = g_kernels[node->op](dev, node);
        if (st != SX_OK) sx_wrap_error(st, "vulkan: node %s (%s)", node->name, sx_op_name(node->op));
        if (d->profile && st == SX_OK) { /* debug: serialise to time each op */
            st = sx_vk_submit(d);
            if (st == SX_OK) st = sx_vk_wait_all(d);
            d->prof_ms[node->op] += now_ms() - t0;
            d->prof_n[node->op]++;
        }
    }
    /* submit what was recorded even after an error, so the frame is consistent */
    const sx_status sub = sx_vk_submit(d);
    if (st == SX_OK) st = sub;
    d->stats.computes++;
    d->stats.nodes += (uint64_t)n_nodes;
    d->last = (vk_stats){d->stats.submits - before.submits, d->stats.barriers - before.barriers, d->stats.dispatches - before.dispatches, 1,
                         (uint64_t)n_nodes};
    SX_LOGD("vulkan: compute of %d nodes: %llu dispatches, %llu barriers, %llu submit(s)", n_nodes, (unsigned long long)d->last.dispatches,
            (unsigned long long)d->last.barriers, (unsigned long long)d->last.submits);
    if (st == SX_OK) st = sx_vk_check_validation(d, "compute");
    return st;
}

static sx_status vk_synchronize(sx_device *dev) {
    vk_device *d = vk_dev(dev);
    SX_RETURN_IF_ERROR(sx_vk_wait_all(d));
    SX_RETURN_IF_ERROR(sx_vk_check_validation(d, "synchronize"));
    return sx_vk_kernel_errors(d);
}

static const sx_backend_vtbl g_vulkan_vtbl = {
    .name = "vulkan",
    .description = "Vulkan 1.2 compute (any vendor; lavapipe on CPUs)",
    .device_count = sx_vk_device_count,
    .device_info = sx_vk_device_info,
    .device_open = sx_vk_device_open,
    .device_close = sx_vk_device_close,
    .buffer_alloc = sx_vk_buffer_alloc,
    .buffer_wrap_host = NULL,
    .buffer_free = sx_vk_buffer_free,
    .buffer_write = sx_vk_buffer_write,
    .buffer_read = sx_vk_buffer_read,
    .supports_op = vk_supports_op,
    .compute = vk_compute,
    .synchronize = vk_synchronize,
};

const sx_backend_vtbl *sx_vulkan_backend(void) { return &g_vulkan_vtbl; }
