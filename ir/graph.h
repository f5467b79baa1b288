/* ir/graph.h — building an op graph for one step.
 *
 * A graph is rebuilt every step (cheap host work). It owns its node and view
 * tensors and the host bytes of its inputs; persistent tensors (weights, KV
 * caches) are owned by the caller and referenced as sources.
 *
 * Errors are sticky: a builder call with a bad shape records the first error
 * in the graph and returns NULL; later calls given NULL return NULL. Check
 * sx_graph_status() once after building. Not thread-safe.
 */
#ifndef SX_GRAPH_H
#define SX_GRAPH_H

#include "ir/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sx_graph sx_graph;

/* max_tensors bounds nodes + views + inputs. Caller owns *out_graph. */
SX_MUST_USE sx_status sx_graph_create(int max_tensors, sx_graph **out_graph);
void sx_graph_destroy(sx_graph *g); /* NULL is a no-op */
/* Drops all tensors, keeps the memory for the next build. */
void sx_graph_reset(sx_graph *g);
/* SX_OK, or the first error recorded while building. */
sx_status sx_graph_status(const sx_graph *g);

/* Inputs: host data is copied into the graph (nbytes must equal the tensor's size). */
sx_tensor *sx_graph_input(sx_graph *g, sx_dtype dtype, int n_dims, const int64_t *ne, const char *name);
sx_status sx_graph_set_input(sx_graph *g, sx_tensor *t, const void *data, size_t nbytes);
/* Convenience: a 1-D I32 input holding `vals`. */
sx_tensor *sx_graph_input_i32(sx_graph *g, const int32_t *vals, int64_t n, const char *name);
/* Convenience: a F32 input of the given shape holding `vals`. */
sx_tensor *sx_graph_input_f32(sx_graph *g, const float *vals, int n_dims, const int64_t *ne, const char *name);

/* Views (no copy), like ggml_view: nb[i] is the byte stride of dim i+1 (dim 0
 * keeps t's element stride); offset in bytes relative to t's first byte. */
sx_tensor *sx_graph_view(sx_graph *g, sx_tensor *t, int n_dims, const int64_t *ne, const size_t *nb, size_t offset);
/* Contiguous t seen with another shape of the same element count. */
sx_tensor *sx_graph_reshape(sx_graph *g, sx_tensor *t, int n_dims, const int64_t *ne);
/* A view of elements start..start+n-1 along dim (the other dims whole, the strides kept). */
sx_tensor *sx_graph_slice(sx_graph *g, sx_tensor *t, int dim, int64_t start, int64_t n);

/* Generic node creation: validates with the op's rule from ir/ops.def. */
sx_tensor *sx_graph_add_op(sx_graph *g, sx_op op, sx_tensor *const *srcs, const sx_op_params *params);

/* Typed builders (thin wrappers over sx_graph_add_op). */
sx_tensor *sx_graph_add_get_rows(sx_graph *g, sx_tensor *table, sx_tensor *ids);
sx_tensor *sx_graph_add_rms_norm(sx_graph *g, sx_tensor *x, sx_tensor *w, float eps);
sx_tensor *sx_graph_add_add(sx_graph *g, sx_tensor *a, sx_tensor *b);
sx_tensor *sx_graph_add_mul(sx_graph *g, sx_tensor *a, sx_tensor *b);
sx_tensor *sx_graph_add_matmul(sx_graph *g, sx_tensor *w, sx_tensor *x);
/* freq_factors: optional F32 [n_dims/2] (Llama 3.1's rope_freqs), NULL for none */
sx_tensor *sx_graph_add_rope(sx_graph *g, sx_tensor *x, sx_tensor *pos, sx_rope_mode mode, int n_dims, float freq_base, float freq_scale,
                             sx_tensor *freq_factors);
sx_tensor *sx_graph_add_set_rows(sx_graph *g, sx_tensor *dst, sx_tensor *src, sx_tensor *ids);
sx_tensor *sx_graph_add_attention(sx_graph *g, sx_tensor *q, sx_tensor *k, sx_tensor *v, sx_tensor *mask, float scale, int n_past);
sx_tensor *sx_graph_add_silu_mul(sx_graph *g, sx_tensor *gate, sx_tensor *up);
sx_tensor *sx_graph_add_softmax(sx_graph *g, sx_tensor *x);
sx_tensor *sx_graph_add_argmax(sx_graph *g, sx_tensor *x);
sx_tensor *sx_graph_add_top_k(sx_graph *g, sx_tensor *x, int k);
sx_tensor *sx_graph_add_gather(sx_graph *g, sx_tensor *x, sx_tensor *ids);
sx_tensor *sx_graph_add_mul_mat_id(sx_graph *g, sx_tensor *w, sx_tensor *x, sx_tensor *ids);
sx_tensor *sx_graph_add_concat(sx_graph *g, sx_tensor *a, sx_tensor *b, int dim);
/* parts[0..n) concatenated along dim, in order (overwrites parts[]). */
sx_tensor *sx_graph_add_concat_n(sx_graph *g, sx_tensor **parts, int n, int dim);
sx_tensor *sx_graph_add_copy(sx_graph *g, sx_tensor *x, sx_dtype dtype);
sx_tensor *sx_graph_add_sigmoid(sx_graph *g, sx_tensor *x);
sx_tensor *sx_graph_add_exp(sx_graph *g, sx_tensor *x);

/* Marks t (a node or a view of one) as a result kept alive for reading. */
void sx_graph_set_output(sx_graph *g, sx_tensor *t);
void sx_tensor_set_name(sx_tensor *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int sx_graph_n_nodes(const sx_graph *g);
sx_tensor *sx_graph_node(const sx_graph *g, int i);
/* Graph-owned root tensors that need memory (inputs, nodes, outputs). */
int sx_graph_n_tensors(const sx_graph *g);
sx_tensor *sx_graph_tensor(const sx_graph *g, int i);
bool sx_graph_owns(const sx_graph *g, const sx_tensor *t);

/* ---- memory planner ----
 * Assigns t->offset to every graph-owned root tensor with t->device == device
 * (nodes, inputs, outputs) so that tensors whose lifetimes overlap never share
 * bytes. Lifetime: from the producing node (inputs: from the start) to the
 * last consumer (outputs: to the end). Views extend their root's lifetime.
 * Returns the arena size needed. */
/* guard_bytes > 0 leaves that many bytes after every tensor (for overrun checks). */
SX_MUST_USE sx_status sx_graph_plan_memory(sx_graph *g, int device, size_t alignment, size_t guard_bytes, size_t *out_arena_size);

#ifdef __cplusplus
}
#endif
#endif
