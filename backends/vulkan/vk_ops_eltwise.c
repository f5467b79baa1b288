/* backends/vulkan/vk_ops_eltwise.c — elementwise ops (shaders/eltwise.comp,
 * copy.comp, rope.comp): ADD, MUL, SILU_MUL, SIGMOID, EXP, CONCAT, COPY, ROPE.
 * Every tensor is passed with its element offset and element strides, so
 * views, permutations and broadcasts need no copies. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backends/vulkan/vk_internal.h"

static uint32_t groups_for(uint64_t n, int wg) { return (uint32_t)((n + (uint64_t)wg - 1) / (uint64_t)wg); }

/* binds t (f32 words or halves) and stores its offset and strides */
static sx_status arg_strided(vk_device *d, const sx_tensor *t, size_t unit, bool write, vk_arg *a, uint32_t *off, uint32_t *nb) {
    uint32_t s[4];
    if (!sx_vk_strides(t, unit, s)) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: %s has strides that are not whole elements", t->name);
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, t, unit, write, a, off));
    memcpy(nb, s, sizeof s);
    return SX_OK;
}

static size_t unit_of(sx_dtype t) { return t == SX_DTYPE_F32 || t == SX_DTYPE_I32 ? 4 : 2; }

static sx_status eltwise(sx_device *dev, sx_tensor *node, const char *shader_name) {
    vk_device *d = vk_dev(dev);
    const sx_tensor *a = node->src[0], *b = node->src[1];
    const int sh = sx_vk_shader_find(shader_name);
    if (sh < 0) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: no shader %s", shader_name);
    sx_pc_eltwise pc = {0};
    vk_arg args[3];
    int n = 0;
    const sx_tensor *shape = node->op == SX_OP_CONCAT ? node : a;
    pc.ne0 = (uint32_t)shape->ne[0], pc.ne1 = (uint32_t)shape->ne[1], pc.ne2 = (uint32_t)shape->ne[2], pc.ne3 = (uint32_t)shape->ne[3];
    SX_RETURN_IF_ERROR(arg_strided(d, a, 4, false, &args[n++], &pc.a_off, &pc.a_nb0));
    if (b) {
        SX_RETURN_IF_ERROR(arg_strided(d, b, 4, false, &args[n++], &pc.b_off, &pc.b_nb0));
        const sx_tensor *ext = node->op == SX_OP_CONCAT ? a : b; /* broadcast modulus, or a's extent */
        pc.b_ne0 = (uint32_t)ext->ne[0], pc.b_ne1 = (uint32_t)ext->ne[1], pc.b_ne2 = (uint32_t)ext->ne[2], pc.b_ne3 = (uint32_t)ext->ne[3];
    }
    SX_RETURN_IF_ERROR(arg_strided(d, node, 4, true, &args[n++], &pc.d_off, &pc.d_nb0));
    const uint64_t total = (uint64_t)sx_tensor_nelements(shape);
    pc.n = (uint32_t)total;
    pc.param = node->op == SX_OP_CONCAT ? (uint32_t)node->params.concat.dim : 0;
    return sx_vk_dispatch(d, sh, args, n, &pc, sizeof pc, groups_for(total, sx_vk_shaders[sh].wg), 1);
}

sx_status sx_vk_op_ADD(sx_device *dev, sx_tensor *node) { return eltwise(dev, node, "add"); }
sx_status sx_vk_op_MUL(sx_device *dev, sx_tensor *node) { return eltwise(dev, node, "mul"); }
sx_status sx_vk_op_SILU_MUL(sx_device *dev, sx_tensor *node) { return eltwise(dev, node, "silu_mul"); }
sx_status sx_vk_op_SIGMOID(sx_device *dev, sx_tensor *node) { return eltwise(dev, node, "sigmoid"); }
sx_status sx_vk_op_EXP(sx_device *dev, sx_tensor *node) { return eltwise(dev, node, "exp"); }
sx_status sx_vk_op_CONCAT(sx_device *dev, sx_tensor *node) { return eltwise(dev, node, "concat"); }

sx_status sx_vk_op_COPY(sx_device *dev, sx_tensor *node) {
    vk_device *d = vk_dev(dev);
    const sx_tensor *x = node->src[0];
    char name[48];
    snprintf(name, sizeof name, "copy_%s_%s", sx_dtype_name(x->dtype), sx_dtype_name(node->dtype));
    const int sh = sx_vk_shader_find(name);
    if (sh < 0) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: no shader %s", name);
    sx_pc_eltwise pc = {0};
    vk_arg args[2];
    pc.ne0 = (uint32_t)x->ne[0], pc.ne1 = (uint32_t)x->ne[1], pc.ne2 = (uint32_t)x->ne[2], pc.ne3 = (uint32_t)x->ne[3];
    SX_RETURN_IF_ERROR(arg_strided(d, x, unit_of(x->dtype), false, &args[0], &pc.a_off, &pc.a_nb0));
    SX_RETURN_IF_ERROR(arg_strided(d, node, unit_of(node->dtype), true, &args[1], &pc.d_off, &pc.d_nb0));
    const uint64_t total = (uint64_t)sx_tensor_nelements(x);
    pc.n = (uint32_t)total;
    return sx_vk_dispatch(d, sh, args, 2, &pc, sizeof pc, groups_for(total, sx_vk_shaders[sh].wg), 1);
}

/* Frequencies of a rope configuration as 64-bit fixed-point fractions of a
 * turn: f_i = frac(freq_scale * base^(-2i/n_dims) / factor_i / 2pi), {hi, lo}
 * words. Frequency factors (Llama 3.1) are weights or inputs the host wrote:
 * their bytes are read once per buffer version (sx_vk_supports_node checks
 * the role), so the table is keyed by the buffer's serial and version. */
static sx_status rope_table(vk_device *d, const sx_tensor *node, vk_arg *out) {
    const sx_params_rope *p = &node->params.rope;
    const sx_tensor *ff = node->src[2];
    char key[128];
    const int half = p->n_dims / 2;
    if (half > 1024) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: rope n_dims %d > 2048", p->n_dims);
    float factor[1024];
    if (ff) {
        const sx_tensor *r = ff->view_src ? ff->view_src : ff;
        vk_buffer *b = (vk_buffer *)r->buffer;
        const size_t off = sx_tensor_buffer_offset(ff);
        snprintf(key, sizeof key, "rope:%d:%a:%a:ff:%llu:%llu:%zu", p->n_dims, (double)p->freq_base, (double)p->freq_scale,
                 (unsigned long long)b->serial, (unsigned long long)b->version, off);
        if (sx_vk_const_find(d, key, out)) return SX_OK;
        SX_RETURN_IF_ERROR(sx_vk_read_bytes(b, off, factor, sizeof(float) * (size_t)half));
        for (int i = 0; i < half; i++)
            if (!(factor[i] > 0)) return sx_set_error(SX_ERR_INVALID_ARG, "vulkan: rope frequency factor %d is %g (must be > 0)", i, factor[i]);
    } else {
        snprintf(key, sizeof key, "rope:%d:%a:%a", p->n_dims, (double)p->freq_base, (double)p->freq_scale);
    }
    uint32_t tab[2 * 1024];
    for (int i = 0; i < half; i++) {
        const double w = (double)p->freq_scale * pow((double)p->freq_base, -2.0 * i / p->n_dims) / (ff ? (double)factor[i] : 1.0);
        const double turns = w / (2.0 * M_PI);
        const double frac = turns - floor(turns);
        const double scaled = frac * 4294967296.0;
        const double hi = floor(scaled);
        tab[2 * i] = (uint32_t)hi;
        tab[2 * i + 1] = (uint32_t)floor((scaled - hi) * 4294967296.0);
    }
    return sx_vk_const_get(d, key, tab, sizeof(uint32_t) * 2 * (size_t)(half ? half : 1), out);
}

sx_status sx_vk_op_ROPE(sx_device *dev, sx_tensor *node) {
    vk_device *d = vk_dev(dev);
    const sx_tensor *x = node->src[0], *pos = node->src[1];
    const sx_params_rope *p = &node->params.rope;
    const int sh = sx_vk_shader_find("rope");
    sx_pc_rope pc = {0};
    vk_arg args[4];
    pc.ne0 = (uint32_t)x->ne[0], pc.ne1 = (uint32_t)x->ne[1], pc.ne2 = (uint32_t)x->ne[2], pc.ne3 = (uint32_t)x->ne[3];
    SX_RETURN_IF_ERROR(arg_strided(d, x, 4, false, &args[0], &pc.x_off, &pc.x_nb0));
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, pos, 4, false, &args[1], &pc.pos_off));
    SX_RETURN_IF_ERROR(rope_table(d, node, &args[2]));
    pc.f_off = 0;
    SX_RETURN_IF_ERROR(arg_strided(d, node, 4, true, &args[3], &pc.d_off, &pc.d_nb0));
    pc.n_dims = (uint32_t)p->n_dims;
    pc.neox = p->mode == SX_ROPE_NEOX;
    const uint64_t per_row = (uint64_t)(p->n_dims / 2) + (uint64_t)(x->ne[0] - p->n_dims);
    const uint64_t total = per_row * (uint64_t)sx_tensor_nrows(x);
    pc.n = (uint32_t)total;
    return sx_vk_dispatch(d, sh, args, 4, &pc, sizeof pc, groups_for(total, sx_vk_shaders[sh].wg), 1);
}
