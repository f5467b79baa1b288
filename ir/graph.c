/* ir/graph.c — graph builder and liveness memory planner. */
#include "ir/graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sx_graph {
    sx_tensor *tensors; /* [cap] all graph-owned tensors (nodes, views, inputs) */
    int n_tensors, cap;
    sx_tensor **nodes; /* [cap] op nodes in execution order */
    int n_nodes;
    unsigned char **input_data; /* [cap] host copies of input bytes, by tensor slot */
    sx_status status;
};

sx_status sx_graph_create(int max_tensors, sx_graph **out_graph) {
    *out_graph = NULL;
    if (max_tensors <= 0) return sx_set_error(SX_ERR_INVALID_ARG, "graph: max_tensors must be > 0");
    sx_graph *g = calloc(1, sizeof *g);
    if (!g) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "graph: out of memory");
    g->cap = max_tensors;
    g->tensors = calloc((size_t)max_tensors, sizeof *g->tensors);
    g->nodes = calloc((size_t)max_tensors, sizeof *g->nodes);
    g->input_data = calloc((size_t)max_tensors, sizeof *g->input_data);
    if (!g->tensors || !g->nodes || !g->input_data) {
        sx_graph_destroy(g);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "graph: out of memory for %d tensors", max_tensors);
    }
    *out_graph = g;
    return SX_OK;
}

void sx_graph_reset(sx_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_tensors; i++) {
        free(g->input_data[i]);
        g->input_data[i] = NULL;
    }
    g->n_tensors = 0;
    g->n_nodes = 0;
    g->status = SX_OK;
}

void sx_graph_destroy(sx_graph *g) {
    if (!g) return;
    sx_graph_reset(g);
    free(g->tensors);
    free(g->nodes);
    free(g->input_data);
    free(g);
}

sx_status sx_graph_status(const sx_graph *g) { return g->status; }

static sx_tensor *fail(sx_graph *g, sx_status s) {
    if (g->status == SX_OK) g->status = s;
    return NULL;
}

static sx_tensor *new_tensor(sx_graph *g) {
    if (g->status != SX_OK) return NULL;
    if (g->n_tensors >= g->cap)
        return fail(g, sx_set_error(SX_ERR_OUT_OF_MEMORY, "graph: more than %d tensors; raise max_tensors", g->cap));
    sx_tensor *t = &g->tensors[g->n_tensors++];
    memset(t, 0, sizeof *t);
    for (int i = 0; i < SX_MAX_DIMS; i++) t->ne[i] = 1;
    t->device = -1;
    t->index = -1;
    t->live_from = -1;
    t->live_until = -1;
    return t;
}

bool sx_graph_owns(const sx_graph *g, const sx_tensor *t) {
    return t >= g->tensors && t < g->tensors + g->n_tensors;
}

void sx_tensor_set_name(sx_tensor *t, const char *fmt, ...) {
    if (!t) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
}

sx_tensor *sx_graph_input(sx_graph *g, sx_dtype dtype, int n_dims, const int64_t *ne, const char *name) {
    if (n_dims < 1 || n_dims > SX_MAX_DIMS || !sx_dtype_get(dtype))
        return fail(g, sx_set_error(SX_ERR_INVALID_ARG, "graph input %s: bad dtype or n_dims", name ? name : ""));
    sx_tensor *t = new_tensor(g);
    if (!t) return NULL;
    t->dtype = dtype;
    for (int i = 0; i < n_dims; i++) {
        if (ne[i] <= 0) return fail(g, sx_set_error(SX_ERR_INVALID_ARG, "graph input %s: dim %d is %lld", name ? name : "", i, (long long)ne[i]));
        t->ne[i] = ne[i];
    }
    if (t->ne[0] % sx_dtype_get(dtype)->block_size)
        return fail(g, sx_set_error(SX_ERR_INVALID_ARG, "graph input %s: ne0 not a multiple of the block size", name ? name : ""));
    sx_tensor_set_contiguous_strides(t);
    t->role = SX_ROLE_INPUT;
    if (name) sx_tensor_set_name(t, "%s", name);
    return t;
}

sx_status sx_graph_set_input(sx_graph *g, sx_tensor *t, const void *data, size_t nbytes) {
    if (!t || !sx_graph_owns(g, t) || t->role != SX_ROLE_INPUT)
        return sx_set_error(SX_ERR_INVALID_ARG, "graph: set_input on a tensor that is not an input of this graph");
    if (nbytes != sx_tensor_nbytes(t))
        return sx_set_error(SX_ERR_INVALID_ARG, "graph input %s: %zu bytes given, %zu expected", t->name, nbytes, sx_tensor_nbytes(t));
    const int slot = (int)(t - g->tensors);
    unsigned char *copy = malloc(nbytes);
    if (!copy) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "graph input %s: out of memory", t->name);
    memcpy(copy, data, nbytes);
    free(g->input_data[slot]);
    g->input_data[slot] = copy;
    t->host_data = copy;
    return SX_OK;
}

sx_tensor *sx_graph_input_i32(sx_graph *g, const int32_t *vals, int64_t n, const char *name) {
    sx_tensor *t = sx_graph_input(g, SX_DTYPE_I32, 1, &n, name);
    if (t) {
        sx_status s = sx_graph_set_input(g, t, vals, (size_t)n * 4);
        if (s != SX_OK) return fail(g, s);
    }
    return t;
}

sx_tensor *sx_graph_input_f32(sx_graph *g, const float *vals, int n_dims, const int64_t *ne, const char *name) {
    sx_tensor *t = sx_graph_input(g, SX_DTYPE_F32, n_dims, ne, name);
    if (t) {
        sx_status s = sx_graph_set_input(g, t, vals, sx_tensor_nbytes(t));
        if (s != SX_OK) return fail(g, s);
    }
    return t;
}

sx_tensor *sx_graph_view(sx_graph *g, sx_tensor *t, int n_dims, const int64_t *ne, const size_t *nb, size_t offset) {
    if (!t) return fail(g, g->status != SX_OK ? g->status : sx_set_error(SX_ERR_INVALID_ARG, "graph: view of NULL"));
    if (n_dims < 1 || n_dims > SX_MAX_DIMS) return fail(g, sx_set_error(SX_ERR_INVALID_ARG, "graph: view n_dims %d", n_dims));
    sx_tensor *v = new_tensor(g);
    if (!v) return NULL;
    sx_tensor *root = sx_tensor_root(t);
    v->dtype = t->dtype;
    for (int i = 0; i < n_dims; i++) {
        v->ne[i] = ne[i];
        v->nb[i] = i == 0 ? t->nb[0] : nb[i - 1];
    }
    /* nb[] argument lists strides of dims 1..n_dims-1 (dim 0 keeps the element stride) */
    for (int i = n_dims; i < SX_MAX_DIMS; i++) v->nb[i] = v->nb[i - 1] * (size_t)v->ne[i - 1];
    v->view_src = root;
    v->view_offs = (t->view_src ? t->view_offs : 0) + offset;
    v->role = t->role == SX_ROLE_WEIGHT || t->role == SX_ROLE_KV ? t->role : SX_ROLE_INTERMEDIATE;
    v->device = -1;
    /* the view must stay inside the root's bytes */
    const size_t root_bytes = sx_tensor_nbytes(root);
    if (v->view_offs + sx_tensor_nbytes(v) > root_bytes)
        return fail(g, sx_set_error(SX_ERR_INVALID_ARG, "graph: view of %s out of bounds (%zu + %zu > %zu)", root->name,
                                    v->view_offs, sx_tensor_nbytes(v), root_bytes));
    snprintf(v->name, sizeof v->name, "%.40s(v)", t->name);
    return v;
}

sx_tensor *sx_graph_slice(sx_graph *g, sx_tensor *t, int dim, int64_t start, int64_t n) {
    if (!t) return fail(g, g->status);
    if (dim < 0 || dim >= SX_MAX_DIMS || start < 0 || n < 1 || start + n > t->ne[dim])
        return fail(g, sx_set_error(SX_ERR_INVALID_ARG, "graph: slice [%lld, +%lld) of dim %d of %s", (long long)start, (long long)n, dim, t->name));
    int64_t ne[SX_MAX_DIMS];
    memcpy(ne, t->ne, sizeof ne);
    ne[dim] = n;
    return sx_graph_view(g, t, SX_MAX_DIMS, ne, &t->nb[1], (size_t)start * t->nb[dim]);
}

sx_tensor *sx_graph_reshape(sx_graph *g, sx_tensor *t, int n_dims, const int64_t *ne) {
    if (!t) return fail(g, g->status);
    if (!sx_tensor_is_contiguous(t)) return fail(g, sx_set_error(SX_ERR_INVALID_ARG, "graph: reshape of non-contiguous %s", t->name));
    int64_t n = 1;
    for (int i = 0; i < n_dims; i++) n *= ne[i];
    if (n != sx_tensor_nelements(t)) return fail(g, sx_set_error(SX_ERR_INVALID_ARG, "graph: reshape of %s changes the element count", t->name));
    sx_tensor tmp = {.dtype = t->dtype, .ne = {1, 1, 1, 1}};
    for (int i = 0; i < n_dims; i++) tmp.ne[i] = ne[i];
    sx_tensor_set_contiguous_strides(&tmp);
    return sx_graph_view(g, t, n_dims, ne, &tmp.nb[1], 0);
}

sx_tensor *sx_graph_add_op(sx_graph *g, sx_op op, sx_tensor *const *srcs, const sx_op_params *params) {
    if (g->status != SX_OK) return NULL;
    const int n = sx_op_n_src(op), nreq = n - sx_op_n_src_optional(op);
    for (int i = 0; i < nreq; i++)
        if (!srcs[i]) return fail(g, sx_set_error(SX_ERR_INVALID_ARG, "graph: %s source %d is NULL", sx_op_name(op), i));
    sx_tensor *t = new_tensor(g);
    if (!t) return NULL;
    t->op = op;
    for (int i = 0; i < n; i++) t->src[i] = srcs[i];
    if (params) t->params = *params;
    sx_status s = sx_op_check(t);
    if (s != SX_OK) {
        g->n_tensors--;
        return fail(g, s);
    }
    sx_tensor_set_contiguous_strides(t);
    if (op == SX_OP_SET_ROWS) {
        /* the result aliases the destination's storage */
        sx_tensor *dst = srcs[0];
        t->view_src = sx_tensor_root(dst);
        t->view_offs = dst->view_src ? dst->view_offs : 0;
        memcpy(t->nb, dst->nb, sizeof t->nb);
    }
    t->index = g->n_nodes;
    g->nodes[g->n_nodes++] = t;
    snprintf(t->name, sizeof t->name, "%s_%d", sx_op_name(op), t->index);
    return t;
}

#define SRCS(...) ((sx_tensor *const[SX_MAX_SRC]){__VA_ARGS__})

sx_tensor *sx_graph_add_get_rows(sx_graph *g, sx_tensor *table, sx_tensor *ids) {
    return sx_graph_add_op(g, SX_OP_GET_ROWS, SRCS(table, ids), NULL);
}
sx_tensor *sx_graph_add_rms_norm(sx_graph *g, sx_tensor *x, sx_tensor *w, float eps) {
    sx_op_params p = {.norm = {eps}};
    return sx_graph_add_op(g, SX_OP_RMS_NORM, SRCS(x, w), &p);
}
sx_tensor *sx_graph_add_add(sx_graph *g, sx_tensor *a, sx_tensor *b) { return sx_graph_add_op(g, SX_OP_ADD, SRCS(a, b), NULL); }
sx_tensor *sx_graph_add_mul(sx_graph *g, sx_tensor *a, sx_tensor *b) { return sx_graph_add_op(g, SX_OP_MUL, SRCS(a, b), NULL); }
sx_tensor *sx_graph_add_matmul(sx_graph *g, sx_tensor *w, sx_tensor *x) { return sx_graph_add_op(g, SX_OP_MATMUL, SRCS(w, x), NULL); }
sx_tensor *sx_graph_add_rope(sx_graph *g, sx_tensor *x, sx_tensor *pos, sx_rope_mode mode, int n_dims, float freq_base, float freq_scale,
                             sx_tensor *freq_factors) {
    sx_op_params p = {.rope = {(int32_t)mode, n_dims, freq_base, freq_scale}};
    return sx_graph_add_op(g, SX_OP_ROPE, SRCS(x, pos, freq_factors), &p);
}
sx_tensor *sx_graph_add_set_rows(sx_graph *g, sx_tensor *dst, sx_tensor *src, sx_tensor *ids) {
    return sx_graph_add_op(g, SX_OP_SET_ROWS, SRCS(dst, src, ids), NULL);
}
sx_tensor *sx_graph_add_attention(sx_graph *g, sx_tensor *q, sx_tensor *k, sx_tensor *v, sx_tensor *mask, float scale, int n_past) {
    sx_op_params p = {.attn = {scale, n_past}};
    return sx_graph_add_op(g, SX_OP_ATTENTION, SRCS(q, k, v, mask), &p);
}
sx_tensor *sx_graph_add_silu_mul(sx_graph *g, sx_tensor *gate, sx_tensor *up) {
    return sx_graph_add_op(g, SX_OP_SILU_MUL, SRCS(gate, up), NULL);
}
sx_tensor *sx_graph_add_softmax(sx_graph *g, sx_tensor *x) { return sx_graph_add_op(g, SX_OP_SOFTMAX, SRCS(x), NULL); }
sx_tensor *sx_graph_add_argmax(sx_graph *g, sx_tensor *x) { return sx_graph_add_op(g, SX_OP_ARGMAX, SRCS(x), NULL); }
sx_tensor *sx_graph_add_top_k(sx_graph *g, sx_tensor *x, int k) {
    sx_op_params p = {.top_k = {k}};
    return sx_graph_add_op(g, SX_OP_TOP_K, SRCS(x), &p);
}
sx_tensor *sx_graph_add_gather(sx_graph *g, sx_tensor *x, sx_tensor *ids) { return sx_graph_add_op(g, SX_OP_GATHER, SRCS(x, ids), NULL); }
sx_tensor *sx_graph_add_mul_mat_id(sx_graph *g, sx_tensor *w, sx_tensor *x, sx_tensor *ids) {
    return sx_graph_add_op(g, SX_OP_MUL_MAT_ID, SRCS(w, x, ids), NULL);
}
sx_tensor *sx_graph_add_concat(sx_graph *g, sx_tensor *a, sx_tensor *b, int dim) {
    sx_op_params p = {.concat = {dim}};
    return sx_graph_add_op(g, SX_OP_CONCAT, SRCS(a, b), &p);
}

sx_tensor *sx_graph_add_concat_n(sx_graph *g, sx_tensor **parts, int n, int dim) {
    if (n < 1) return fail(g, sx_set_error(SX_ERR_INVALID_ARG, "graph: concat of nothing"));
    while (n > 1) { /* pairwise: each element is copied about log2(n) times, not n times */
        int k = 0;
        for (int i = 0; i < n; i += 2) parts[k++] = i + 1 < n ? sx_graph_add_concat(g, parts[i], parts[i + 1], dim) : parts[i];
        n = k;
    }
    return parts[0];
}
sx_tensor *sx_graph_add_copy(sx_graph *g, sx_tensor *x, sx_dtype dtype) {
    sx_op_params p = {.copy = {(int32_t)dtype}};
    return sx_graph_add_op(g, SX_OP_COPY, SRCS(x), &p);
}
sx_tensor *sx_graph_add_sigmoid(sx_graph *g, sx_tensor *x) { return sx_graph_add_op(g, SX_OP_SIGMOID, SRCS(x), NULL); }
sx_tensor *sx_graph_add_exp(sx_graph *g, sx_tensor *x) { return sx_graph_add_op(g, SX_OP_EXP, SRCS(x), NULL); }

void sx_graph_set_output(sx_graph *g, sx_tensor *t) {
    if (!t) return;
    sx_tensor *r = sx_tensor_root(t);
    if (sx_graph_owns(g, r) && r->role == SX_ROLE_INTERMEDIATE) r->role = SX_ROLE_OUTPUT;
}

int sx_graph_n_nodes(const sx_graph *g) { return g->n_nodes; }
sx_tensor *sx_graph_node(const sx_graph *g, int i) { return g->nodes[i]; }
int sx_graph_n_tensors(const sx_graph *g) { return g->n_tensors; }
sx_tensor *sx_graph_tensor(const sx_graph *g, int i) { return &g->tensors[i]; }

/* ---- memory planner ---- */
typedef struct {
    sx_tensor *t;
    int start, end;
    size_t size;
} plan_item;

static int cmp_start(const void *a, const void *b) {
    const plan_item *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->t < y->t ? -1 : x->t > y->t; /* deterministic */
}

static size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

sx_status sx_graph_plan_memory(sx_graph *g, int device, size_t alignment, size_t guard_bytes, size_t *out_arena_size) {
    *out_arena_size = 0;
    if (alignment == 0 || (alignment & (alignment - 1)))
        return sx_set_error(SX_ERR_INVALID_ARG, "planner: alignment %zu is not a power of two", alignment);
    const int n = g->n_tensors;
    int *first = malloc(sizeof(int) * (size_t)(n ? n : 1)), *last = malloc(sizeof(int) * (size_t)(n ? n : 1));
    plan_item *items = malloc(sizeof(plan_item) * (size_t)(n ? n : 1));
    if (!first || !last || !items) {
        free(first), free(last), free(items);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "planner: out of memory");
    }
    for (int i = 0; i < n; i++) first[i] = last[i] = -1;
    for (int k = 0; k < g->n_nodes; k++) {
        sx_tensor *node = g->nodes[k];
        for (int s = 0; s < SX_MAX_SRC; s++) {
            if (!node->src[s]) continue;
            sx_tensor *r = sx_tensor_root(node->src[s]);
            if (sx_graph_owns(g, r)) last[r - g->tensors] = k;
        }
        sx_tensor *r = sx_tensor_root(node);
        if (sx_graph_owns(g, r) && first[r - g->tensors] < 0) first[r - g->tensors] = k;
        if (r != node && sx_graph_owns(g, r)) last[r - g->tensors] = k; /* in-place writer keeps root alive */
    }
    int m = 0;
    for (int i = 0; i < n; i++) {
        sx_tensor *t = &g->tensors[i];
        if (t->view_src || t->device != device) continue;
        if (t->op == SX_OP_NONE && t->role != SX_ROLE_INPUT && t->live_from < 0) continue;
        if (t->buffer) continue; /* already has storage */
        plan_item it = {t, first[i], last[i], align_up(sx_tensor_nbytes(t) + guard_bytes, alignment)};
        if (t->role == SX_ROLE_INPUT) it.start = 0;
        if (t->live_from >= 0) it.start = t->live_from;
        if (it.start < 0) it.start = 0;
        if (t->live_until > it.end) it.end = t->live_until; /* e.g. read by a cross-device copy after its last reader here */
        if (t->role == SX_ROLE_OUTPUT || it.end < 0) it.end = g->n_nodes; /* outputs and unused stay */
        if (it.end < it.start) it.end = it.start;
        if (guard_bytes) it.start = 0, it.end = g->n_nodes; /* no reuse: a later tensor must not overwrite a guard */
        items[m++] = it;
    }
    qsort(items, (size_t)m, sizeof *items, cmp_start);
    /* greedy first fit: active blocks kept sorted by offset */
    plan_item **active = malloc(sizeof(plan_item *) * (size_t)(m ? m : 1));
    if (!active) {
        free(first), free(last), free(items);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "planner: out of memory");
    }
    int n_active = 0;
    size_t arena = 0;
    for (int i = 0; i < m; i++) {
        plan_item *it = &items[i];
        int w = 0; /* drop blocks whose last use is before this start */
        for (int a = 0; a < n_active; a++)
            if (active[a]->end >= it->start) active[w++] = active[a];
        n_active = w;
        size_t off = 0;
        int pos = 0;
        for (; pos < n_active; pos++) {
            if (active[pos]->t->offset >= off + it->size) break;
            size_t e = active[pos]->t->offset + active[pos]->size;
            if (e > off) off = e;
        }
        it->t->offset = off;
        memmove(&active[pos + 1], &active[pos], sizeof(plan_item *) * (size_t)(n_active - pos));
        active[pos] = it;
        n_active++;
        if (off + it->size > arena) arena = off + it->size;
    }
    free(active), free(first), free(last), free(items);
    *out_arena_size = arena;
    return SX_OK;
}
