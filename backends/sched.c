/* backends/sched.c — places graph nodes on devices, plans their memory, moves
 * tensors across device cuts and runs each device's run of nodes.
 *
 * Placement rule: a node that writes into a persistent tensor (SET_ROWS into a
 * KV cache) runs where that tensor lives; any other node follows its data
 * (the device of its first persistent source, e.g. its weights, else of its
 * first computed source) when that device can run it, else runs on the first
 * device in the list that supports it (so a backend missing an op falls back
 * to the next, usually the CPU). A node pinned by the caller (node->device set
 * before compute) stays where it is. A source that lives on another device is
 * copied whole into a proxy tensor just before the segment that first needs it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"

#define SX_SCHED_MAX_DEVICES 12
#define SX_SCHED_ALIGN 256

struct sx_sched {
    sx_device *devs[SX_SCHED_MAX_DEVICES];
    int n_devs;
    sx_buffer *arena[SX_SCHED_MAX_DEVICES];
    int last_segments, last_copies;
    size_t guard;
    sx_device *check;  /* SPECEXIT_CHECK_RESULTS=1: the reference device */
    bool check_reported;
    long checked, diverged;
};

#define SX_GUARD_BYTE 0xA5

void sx_sched_set_guard(sx_sched *s, size_t bytes) { s->guard = bytes; }

/* Fills (check = false) or verifies (check = true) the guard after every
 * planned tensor of the graph. */
static sx_status guards(sx_sched *s, sx_graph *g, bool check) {
    unsigned char *buf = malloc(s->guard);
    if (!buf) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "scheduler: guard buffer");
    sx_status st = SX_OK;
    for (int i = 0; i < sx_graph_n_tensors(g) && st == SX_OK; i++) {
        sx_tensor *t = sx_graph_tensor(g, i);
        if (t->view_src || !t->buffer || t->device < 0 || t->buffer != s->arena[t->device]) continue;
        const size_t at = t->offset + sx_tensor_nbytes(t);
        if (!check) {
            memset(buf, SX_GUARD_BYTE, s->guard);
            st = t->buffer->dev->vt->buffer_write(t->buffer, at, buf, s->guard);
        } else {
            st = t->buffer->dev->vt->buffer_read(t->buffer, at, buf, s->guard);
            for (size_t k = 0; k < s->guard && st == SX_OK; k++)
                if (buf[k] != SX_GUARD_BYTE)
                    st = sx_set_error(SX_ERR_BACKEND, "scheduler: %s (op %s) wrote past its end (guard byte %zu changed)", t->name,
                                      sx_op_name(t->op), k);
        }
    }
    free(buf);
    return st;
}

sx_status sx_sched_create(sx_device *const *devices, int n_devices, sx_sched **out_sched) {
    *out_sched = NULL;
    if (n_devices < 1 || n_devices > SX_SCHED_MAX_DEVICES)
        return sx_set_error(SX_ERR_INVALID_ARG, "scheduler: %d devices (1..%d)", n_devices, SX_SCHED_MAX_DEVICES);
    sx_sched *s = calloc(1, sizeof *s);
    if (!s) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "scheduler: out of memory");
    for (int i = 0; i < n_devices; i++) s->devs[i] = devices[i];
    s->n_devs = n_devices;
    const char *env = getenv("SPECEXIT_GUARD");
    if (env && atoi(env) > 0) s->guard = 64;
    env = getenv("SPECEXIT_CHECK_RESULTS");
    if (env && atoi(env) > 0) {
        sx_device_options o;
        sx_device_options_init(&o);
        if (sx_device_open_by_name("cpu-ref", &o, &s->check) != SX_OK) SX_LOGW("SPECEXIT_CHECK_RESULTS: no reference device: %s", sx_last_error());
    }
    *out_sched = s;
    return SX_OK;
}

void sx_sched_destroy(sx_sched *s) {
    if (!s) return;
    if (s->check) SX_LOGI("SPECEXIT_CHECK_RESULTS: %ld nodes checked, %ld diverged", s->checked, s->diverged);
    sx_device_close(s->check);
    for (int i = 0; i < s->n_devs; i++) sx_buffer_free(s->arena[i]);
    free(s);
}

void sx_sched_last_stats(const sx_sched *s, int *out_segments, int *out_copies) {
    if (out_segments) *out_segments = s->last_segments;
    if (out_copies) *out_copies = s->last_copies;
}

static int device_of_buffer(const sx_sched *s, const sx_buffer *b) {
    for (int i = 0; i < s->n_devs; i++)
        if (s->devs[i] == b->dev) return i;
    return -1;
}

/* device index where root r's bytes are (or will be) */
static int device_of_root(const sx_sched *s, const sx_tensor *r) {
    return r->buffer ? device_of_buffer(s, r->buffer) : r->device;
}

/* A node follows its data: the device holding its first persistent source
 * (weights, caches), else that of its first already placed source, when that
 * device can run it. -1: no preference. */
static int preferred_device(const sx_sched *s, const sx_tensor *node) {
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < SX_MAX_SRC; i++) {
            if (!node->src[i]) continue;
            const sx_tensor *r = node->src[i]->view_src ? node->src[i]->view_src : node->src[i];
            const bool persistent = r->buffer != NULL && r->op == SX_OP_NONE && r->role != SX_ROLE_INPUT;
            int dev = -1;
            if (pass == 0 && persistent) dev = device_of_buffer(s, r->buffer);
            if (pass == 1 && !persistent) dev = r->device;
            if (dev >= 0 && s->devs[dev]->vt->supports_op(s->devs[dev], node)) return dev;
        }
    return -1;
}

static sx_status place_nodes(sx_sched *s, sx_graph *g) {
    const int n = sx_graph_n_nodes(g);
    for (int k = 0; k < n; k++) {
        sx_tensor *node = sx_graph_node(g, k);
        sx_tensor *root = sx_tensor_root(node);
        int dev = node->device;
        if (root != node && root->buffer) { /* in-place write into a persistent tensor */
            dev = device_of_buffer(s, root->buffer);
            if (dev < 0) return sx_set_error(SX_ERR_INVALID_ARG, "scheduler: %s writes into %s, whose device is not scheduled", node->name, root->name);
        } else if (root != node) {
            dev = root->device;
        }
        if (dev < 0) dev = preferred_device(s, node);
        if (dev < 0) {
            for (int i = 0; i < s->n_devs && dev < 0; i++)
                if (s->devs[i]->vt->supports_op(s->devs[i], node)) dev = i;
            if (dev < 0) return sx_set_error(SX_ERR_UNSUPPORTED, "scheduler: no device can run %s (op %s)", node->name, sx_op_name(node->op));
        } else if (dev >= s->n_devs || !s->devs[dev]->vt->supports_op(s->devs[dev], node)) {
            return sx_set_error(SX_ERR_UNSUPPORTED, "scheduler: %s (op %s) is bound to device %d, which cannot run it", node->name,
                                sx_op_name(node->op), dev);
        }
        node->device = dev;
    }
    /* inputs go where their first consumer runs */
    for (int k = 0; k < n; k++) {
        sx_tensor *node = sx_graph_node(g, k);
        for (int i = 0; i < SX_MAX_SRC; i++) {
            if (!node->src[i]) continue;
            sx_tensor *r = sx_tensor_root(node->src[i]);
            if (sx_graph_owns(g, r) && r->op == SX_OP_NONE && r->device < 0) r->device = node->device;
        }
    }
    for (int i = 0; i < sx_graph_n_tensors(g); i++) { /* unused inputs */
        sx_tensor *t = sx_graph_tensor(g, i);
        if (!t->view_src && t->device < 0) t->device = 0;
    }
    return SX_OK;
}

typedef struct {
    sx_tensor *from, *proxy;
    int first_node;
} proxy_rec;

/* Rewrites cross-device sources to proxies; fills recs (caller frees). */
static sx_status insert_proxies(sx_sched *s, sx_graph *g, proxy_rec **out_recs, int *out_n) {
    const int n = sx_graph_n_nodes(g);
    proxy_rec *recs = NULL;
    int n_recs = 0, cap = 0;
    *out_recs = NULL;
    *out_n = 0;
    for (int k = 0; k < n; k++) {
        sx_tensor *node = sx_graph_node(g, k);
        for (int i = 0; i < SX_MAX_SRC; i++) {
            sx_tensor *src = node->src[i];
            if (!src) continue;
            sx_tensor *r = sx_tensor_root(src);
            const int rdev = device_of_root(s, r);
            if (rdev < 0) {
                free(recs);
                return sx_set_error(SX_ERR_INVALID_ARG, "scheduler: %s reads %s, whose device is not scheduled", node->name, r->name);
            }
            if (rdev == node->device) continue;
            sx_tensor *proxy = NULL;
            for (int j = 0; j < n_recs; j++)
                if (recs[j].from == r && recs[j].proxy->device == node->device) proxy = recs[j].proxy;
            if (!proxy) {
                int nd = 4;
                proxy = sx_graph_input(g, r->dtype, nd, r->ne, NULL);
                if (!proxy) {
                    free(recs);
                    return sx_graph_status(g);
                }
                memcpy(proxy->nb, r->nb, sizeof proxy->nb);
                proxy->role = SX_ROLE_INTERMEDIATE;
                proxy->device = node->device;
                snprintf(proxy->name, sizeof proxy->name, "%.38s@dev%d", r->name, node->device);
                if (n_recs == cap) {
                    cap = cap ? 2 * cap : 16;
                    proxy_rec *p = realloc(recs, sizeof *recs * (size_t)cap);
                    if (!p) {
                        free(recs);
                        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "scheduler: out of memory");
                    }
                    recs = p;
                }
                recs[n_recs++] = (proxy_rec){r, proxy, k};
            }
            if (src == r) {
                node->src[i] = proxy;
            } else {
                int64_t ne[4];
                memcpy(ne, src->ne, sizeof ne);
                sx_tensor *v = sx_graph_view(g, proxy, 4, ne, &src->nb[1], src->view_offs);
                if (!v) {
                    free(recs);
                    return sx_graph_status(g);
                }
                node->src[i] = v;
            }
        }
    }
    *out_recs = recs;
    *out_n = n_recs;
    return SX_OK;
}

/* ---- SPECEXIT_CHECK_RESULTS: every node against the CPU reference ----
 * Before a node runs, its source roots (and, for in-place writers, the
 * destination) are read back to host memory; the reference kernel runs on a
 * shadow node over those copies; after the device ran the node, both
 * outputs are compared. The first divergence is reported with its node. */
typedef struct {
    const sx_tensor *orig; /* the device's root */
    sx_tensor t;        /* shadow root */
    sx_buffer *buf;     /* host copy on the reference device */
} shadow_root;

static sx_status shadow_of(sx_sched *s, const sx_tensor *root, shadow_root *out) {
    const size_t bytes = sx_tensor_nbytes(root);
    SX_RETURN_IF_ERROR(sx_buffer_alloc(s->check, bytes + 64, &out->buf));
    void *host = out->buf->host_ptr;
    sx_status st = root->buffer->dev->vt->buffer_read(root->buffer, root->offset, host, bytes);
    out->orig = root;
    out->t = *root;
    out->t.buffer = out->buf;
    out->t.offset = 0;
    return st;
}

static double node_tolerance(const sx_tensor *node) {
    if (node->op == SX_OP_MATMUL && sx_dtype_get(node->src[0]->dtype)->quantized) return 5e-2; /* 8-bit activations, relative to max |ref| */
    if (node->op == SX_OP_ARGMAX || node->op == SX_OP_TOP_K) return 0;
    return 1e-3;
}

static sx_status compute_checked(sx_sched *s, sx_device *d, sx_tensor *const *nodes, int n) {
    for (int i = 0; i < n; i++) {
        sx_tensor *node = nodes[i];
        shadow_root roots[SX_MAX_SRC + 1];
        int n_roots = 0;
        sx_tensor shadow = *node, srcs[SX_MAX_SRC];
        sx_status st = SX_OK;
        /* sources (and the in-place destination) as host copies */
        for (int j = 0; j <= SX_MAX_SRC && st == SX_OK; j++) {
            const sx_tensor *t = j < SX_MAX_SRC ? node->src[j] : node;
            if (!t) continue;
            const sx_tensor *r = t->view_src ? t->view_src : t;
            if (j == SX_MAX_SRC && r == t) break; /* the output of a normal node is written fresh */
            int found = -1;
            for (int k = 0; k < n_roots; k++)
                if (roots[k].orig == r) found = k;
            if (found < 0) {
                st = shadow_of(s, r, &roots[n_roots]);
                found = n_roots++;
            }
            if (j < SX_MAX_SRC) {
                srcs[j] = *t;
                if (t->view_src) srcs[j].view_src = &roots[found].t;
                else srcs[j] = roots[found].t;
                shadow.src[j] = &srcs[j];
            } else {
                shadow.view_src = &roots[found].t;
            }
        }
        shadow_root out_root = {0};
        if (st == SX_OK && !node->view_src) { /* a fresh output buffer for the reference */
            st = sx_buffer_alloc(s->check, sx_tensor_nbytes(node) + 64, &out_root.buf);
            shadow.buffer = out_root.buf;
            shadow.offset = 0;
        }
        if (st == SX_OK) st = s->check->vt->compute(s->check, (sx_tensor *const[]){&shadow}, 1);
        if (st == SX_OK) st = d->vt->compute(d, &nodes[i], 1);
        /* compare as floats */
        const int64_t ne = sx_tensor_nelements(node), rows = ne / node->ne[0];
        const size_t bytes = sx_tensor_nbytes(node);
        void *a = st == SX_OK ? malloc(bytes) : NULL, *b = st == SX_OK ? malloc(bytes) : NULL;
        float *fa = a ? malloc(sizeof(float) * (size_t)ne) : NULL, *fb = a ? malloc(sizeof(float) * (size_t)ne) : NULL;
        if (st == SX_OK && (!a || !b || !fa || !fb)) st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "check results: out of memory");
        if (st == SX_OK) st = sx_tensor_read(node, a, bytes);
        if (st == SX_OK) st = sx_tensor_read(&shadow, b, bytes);
        if (st == SX_OK && sx_tensor_is_contiguous(node)) {
            for (int64_t r = 0; r < rows; r++) {
                sx_dtype_dequantize_row(node->dtype, (char *)a + (size_t)r * node->nb[1], fa + r * node->ne[0], node->ne[0]);
                sx_dtype_dequantize_row(node->dtype, (char *)b + (size_t)r * node->nb[1], fb + r * node->ne[0], node->ne[0]);
            }
            double maxref = 0, maxerr = 0;
            int64_t at = 0;
            for (int64_t k = 0; k < ne; k++) {
                maxref = fmax(maxref, fabs(fb[k]));
                const double e = fabs((double)fa[k] - fb[k]);
                if (e > maxerr || isnan(fa[k])) maxerr = isnan(fa[k]) ? INFINITY : e, at = k;
            }
            s->checked++;
            if (maxerr > node_tolerance(node) * (maxref + 1e-6)) {
                s->diverged++;
                if (!s->check_reported) {
                    s->check_reported = true;
                    SX_LOGE("SPECEXIT_CHECK_RESULTS: first divergence at node %s (op %s, %s) on %s: element %lld is %g, reference %g "
                            "(max |error| %g, max |ref| %g)",
                            node->name, sx_op_name(node->op), sx_dtype_name(node->src[0] ? node->src[0]->dtype : node->dtype), d->info.name,
                            (long long)at, fa[at], fb[at], maxerr, maxref);
                }
            }
        }
        free(a), free(b), free(fa), free(fb);
        for (int k = 0; k < n_roots; k++) sx_buffer_free(roots[k].buf);
        sx_buffer_free(out_root.buf);
        if (st != SX_OK) return st;
    }
    return SX_OK;
}

static sx_status copy_across(const sx_tensor *from, sx_tensor *to) {
    const size_t n = sx_tensor_nbytes(from);
    void *tmp = malloc(n ? n : 1);
    if (!tmp) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "scheduler: %zu bytes for a device copy", n);
    sx_status st = sx_tensor_read(from, tmp, n);
    if (st == SX_OK) st = sx_tensor_write(to, tmp, n);
    free(tmp);
    return st;
}

sx_status sx_sched_compute(sx_sched *s, sx_graph *g) {
    SX_RETURN_IF_ERROR(sx_graph_status(g));
    SX_RETURN_IF_ERROR(place_nodes(s, g));
    proxy_rec *recs;
    int n_recs;
    SX_RETURN_IF_ERROR(insert_proxies(s, g, &recs, &n_recs));
    const int n = sx_graph_n_nodes(g);

    /* a proxy must be live from the start of the segment that fills it, and
     * its source until then: its last reader on its own device may come
     * several segments earlier, and its bytes must not be reused meanwhile */
    for (int j = 0; j < n_recs; j++) {
        int k = recs[j].first_node;
        while (k > 0 && sx_graph_node(g, k - 1)->device == sx_graph_node(g, k)->device) k--;
        recs[j].first_node = k;
        recs[j].proxy->live_from = k;
        if (sx_graph_owns(g, recs[j].from) && recs[j].from->live_until < k) recs[j].from->live_until = k;
    }

    sx_status st = SX_OK;
    for (int d = 0; d < s->n_devs && st == SX_OK; d++) {
        size_t need;
        st = sx_graph_plan_memory(g, d, SX_SCHED_ALIGN, s->guard, &need);
        if (st != SX_OK) break;
        if (need && (!s->arena[d] || s->arena[d]->size < need)) {
            sx_buffer_free(s->arena[d]);
            s->arena[d] = NULL;
            st = sx_buffer_alloc(s->devs[d], need + need / 4, &s->arena[d]); /* headroom for growth */
            if (st != SX_OK) {
                sx_wrap_error(st, "scheduler: %zu-byte work arena on %s", need, s->devs[d]->info.name);
                break;
            }
        }
        for (int i = 0; i < sx_graph_n_tensors(g); i++) {
            sx_tensor *t = sx_graph_tensor(g, i);
            if (t->view_src || t->device != d || t->buffer) continue;
            if (t->op != SX_OP_NONE || t->role == SX_ROLE_INPUT || t->live_from >= 0) t->buffer = s->arena[d];
        }
    }
    for (int i = 0; i < sx_graph_n_tensors(g) && st == SX_OK; i++) {
        sx_tensor *t = sx_graph_tensor(g, i);
        if (t->role == SX_ROLE_INPUT && t->host_data) st = sx_tensor_write(t, t->host_data, sx_tensor_nbytes(t));
    }

    if (st == SX_OK && s->guard) st = guards(s, g, false);

    int segments = 0;
    for (int k = 0; k < n && st == SX_OK;) {
        int e = k + 1;
        const int dev = sx_graph_node(g, k)->device;
        while (e < n && sx_graph_node(g, e)->device == dev) e++;
        for (int j = 0; j < n_recs && st == SX_OK; j++)
            if (recs[j].first_node == k) st = copy_across(recs[j].from, recs[j].proxy);
        if (st != SX_OK) break;
        sx_device *d = s->devs[dev];
        /* nodes are contiguous in the graph's node list */
        sx_tensor **nodes = malloc(sizeof(sx_tensor *) * (size_t)(e - k));
        if (!nodes) {
            st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "scheduler: out of memory");
            break;
        }
        for (int i = k; i < e; i++) nodes[i - k] = sx_graph_node(g, i);
        st = s->check ? compute_checked(s, d, nodes, e - k) : d->vt->compute(d, nodes, e - k);
        free(nodes);
        segments++;
        k = e;
    }
    if (st == SX_OK && s->guard) st = guards(s, g, true);
    s->last_segments = segments;
    s->last_copies = n_recs;
    free(recs);
    return st;
}

sx_status sx_sched_read(sx_sched *s, const sx_tensor *t, void *dst, size_t nbytes) {
    (void)s;
    if (!sx_tensor_is_contiguous(t)) return sx_set_error(SX_ERR_INVALID_ARG, "scheduler: reading non-contiguous %s", t->name);
    return sx_tensor_read(t, dst, nbytes);
}
