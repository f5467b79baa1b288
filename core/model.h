/* core/model.h — transformer models loaded from GGUF and their step graphs.
 * Internal to core/ (the public API is core/specexit.h). */
#ifndef SX_MODEL_H
#define SX_MODEL_H

#include "backends/backend.h"
#include "core/gguf.h"
#include "core/specexit.h"
#include "ir/graph.h"

typedef enum sx_arch {
    SX_ARCH_LLAMA = 0, /* SmolLM2, Llama 3, DeepSeek-R1-Distill-Llama */
    SX_ARCH_QWEN2,     /* DeepSeek-R1-Distill-Qwen: q/k/v biases */
    SX_ARCH_QWEN3,     /* Qwen3: per-head q/k rms norm */
    SX_ARCH_QWEN3MOE,  /* Qwen3 MoE (Qwen3-30B-A3B, 235B-A22B): qwen3 attention, routed experts */
    SX_ARCH_COUNT
} sx_arch;

const char *sx_arch_name(sx_arch a);

typedef struct sx_hparams {
    sx_arch arch;
    int n_layer;
    int n_embd;     /* residual width */
    int n_head, n_head_kv;
    int head_dim;   /* q/k/v per head */
    int n_ff;
    int n_expert, n_expert_used; /* mixture of experts (qwen3moe), else 0 */
    int n_ff_exp;                /* each expert's hidden size */
    int n_vocab;
    int n_ctx_train;
    int rope_dims;
    float rope_base;
    float rope_scale; /* frequency scale (1 = none) */
    sx_rope_mode rope_mode;
    float norm_eps;
} sx_hparams;

typedef struct sx_layer {
    sx_tensor *attn_norm;          /* [n_embd] */
    sx_tensor *wq, *wk, *wv, *wo;  /* [n_embd, nh*hd], [n_embd, nkv*hd] x2, [nh*hd, n_embd] */
    sx_tensor *bq, *bk, *bv;       /* qwen2 biases or NULL */
    sx_tensor *q_norm, *k_norm;    /* qwen3 [hd] or NULL */
    sx_tensor *ffn_norm;           /* [n_embd] */
    sx_tensor *w_gate, *w_up;      /* [n_embd, n_ff] */
    sx_tensor *w_down;             /* [n_ff, n_embd] */
    sx_tensor *gate_inp;           /* MoE router [n_embd, n_expert], or NULL (then the dense FFN above) */
    sx_tensor *gate_exps, *up_exps; /* [n_embd, n_ff_exp, n_expert] */
    sx_tensor *down_exps;          /* [n_ff_exp, n_embd, n_expert] */
    sx_tensor *rope_freqs;         /* the model's rope_freqs on this layer's device, or NULL */
    sx_device *dev;                /* where this layer's weights and KV cache live */
} sx_layer;

typedef struct sx_model {
    sx_hparams hp;
    sx_gguf *gguf;       /* owned; weights may point into its mapping */
    sx_device *dev;      /* borrowed; where the weights live (the offloaded ones, with -ngl) */
    sx_device *host;     /* borrowed; with -ngl: the CPU holding the other layers, else NULL */
    int n_dev_layers;    /* layers on dev (the rest, the first ones, are on host) */
    uint64_t fit_need;   /* SX_NGL_AUTO: bytes the whole model and its cache would take on dev (0: not fitted) */
    uint64_t fit_budget; /* and the bytes dev had for them */
    int n_cpu_moe;       /* blocks whose expert stacks are on host (--n-cpu-moe) */
    bool output_on_dev;  /* output norm and matrix on dev (else on host) */
    sx_device *split_devs[SX_MAX_DEVICES]; /* borrowed: a split's devices before dev (sx_model_placement.extra) */
    int n_split_devs;
    int split_layers[SX_MAX_DEVICES];      /* blocks on each of them, then on dev ([n_split_devs]) */
    sx_buffer *split_weights[SX_MAX_DEVICES]; /* owned: their weights */
    sx_buffer *weights;  /* owned: the weights on dev */
    sx_buffer *host_weights; /* owned (with host): the file mapping wrapped for host */
    size_t dev_weight_bytes; /* bytes of weights on dev */
    sx_tensor *tensors;  /* [n_tensors] owned weight tensors */
    int n_tensors;
    sx_tensor *tok_embd; /* [n_embd, n_vocab] */
    sx_tensor *out_norm; /* [n_embd] */
    sx_tensor *output;   /* [n_embd, n_vocab]; tok_embd when tied */
    sx_tensor *rope_freqs; /* [rope_dims/2] RoPE frequency divisors (Llama 3.1 "rope_freqs.weight") or NULL */
    sx_layer *layers;    /* [n_layer] */
    char name[128];
    char file_type[32];  /* most common weight dtype, e.g. "q4_1" */
    uint64_t n_params;
    size_t weight_bytes;
    size_t active_weight_bytes; /* read per token: all but the unpicked experts (= weight_bytes for dense models) */
} sx_model;

/* Opens a GGUF model file, checks every tensor the architecture needs
 * (names, shapes, dtypes) and uploads the weights to dev. Clear errors for
 * unknown architectures, missing tensors, shape mismatches and unsupported
 * quant types. Caller owns *out (sx_model_free). */
SX_MUST_USE sx_status sx_model_load(const char *path, sx_device *dev, sx_model **out);
/* Same, from an already opened GGUF (takes ownership of g even on failure). */
SX_MUST_USE sx_status sx_model_load_gguf(sx_gguf *g, sx_device *dev, sx_model **out);
/* Where the weights go besides -ngl (all optional: zeros = nothing):
 * n_cpu_moe: the expert stacks of the first n_cpu_moe blocks stay on host
 * (llama.cpp's --n-cpu-moe; attention and the router stay on dev).
 * For n_dev_layers = SX_NGL_AUTO: the device's memory (0 = unknown: the
 * whole model goes there), of which a margin (5%, at least 256 MiB), the
 * work space of a prompt chunk and a verify batch, and `reserve` bytes (a
 * draft on the same device) are not for the model; `exact`: all of `mem`
 * is (tests). The weights and a fit_ctx-token KV cache of kv_type go there
 * whole when they fit, else the most blocks that do (the output layer and
 * embedding then stay on host). */
typedef struct sx_model_placement {
    int n_cpu_moe;
    /* a split over several devices (llama.cpp's -sm layer): the offloaded blocks go
     * consecutively to extra[0..n_extra) and then dev (which keeps the output layer),
     * in the proportions share[0..n_extra] (all 0: by the devices' memory, equal when
     * unknown); the embedding goes to the first device with blocks */
    sx_device *const *extra;
    int n_extra;
    const float *share;
    uint64_t mem;
    bool exact;
    uint64_t reserve;
    int fit_ctx;
    sx_dtype kv_type;
} sx_model_placement;
/* Layer offload (llama.cpp's -ngl): the last n_dev_layers blocks go to dev,
 * the others and the token embedding stay on host (a CPU device, read in
 * place from the file mapping); the output norm and matrix go to dev only
 * when n_dev_layers > n_layer, which puts the whole model on dev. host NULL
 * or n_dev_layers < 0: everything on dev, as sx_model_load_gguf. */
SX_MUST_USE sx_status sx_model_load_gguf_split(sx_gguf *g, sx_device *dev, sx_device *host, int n_dev_layers, const sx_model_placement *pl,
                                               sx_model **out);
void sx_model_free(sx_model *m);

/* ---- KV cache: per layer K and V, [kv_dim, n_ctx] slots ---- */
#define SX_KV_MAX_BUFS (SX_MAX_DEVICES + 1)
typedef struct sx_kv_cache {
    int n_layer, n_ctx, kv_dim;
    sx_dtype dtype;   /* F16 default, F32 and Q8_0 allowed */
    sx_tensor *k, *v; /* [n_layer] each */
    sx_buffer *bufs[SX_KV_MAX_BUFS]; /* one per device holding layers */
    int n_bufs;
    /* A quantized cache holds K and V rotated by the orthonormal Walsh-Hadamard matrix of the head dim
     * (q and the attention output rotated to match: q.k and the weighted sum of values are unchanged), so
     * that a channel of outliers spreads over its whole block instead of coarsening it (SmolLM2, q4_0:
     * mean KL divergence from an f16 cache 0.22 -> see the README). One matrix per buffer's device. */
    bool rotate;
    int head_dim;
    sx_tensor rot[SX_KV_MAX_BUFS]; /* [head_dim, head_dim] f32 */
    sx_buffer *rot_bufs[SX_KV_MAX_BUFS];
} sx_kv_cache;
/* The rotation of layer il's cache (kv->rotate), else NULL. */
sx_tensor *sx_kv_cache_rotation(sx_kv_cache *kv, int il);

SX_MUST_USE sx_status sx_kv_cache_create(const sx_hparams *hp, sx_device *dev, int n_ctx, sx_dtype dtype, sx_kv_cache **out);
/* The cache of model m: each layer's K and V on that layer's device. */
SX_MUST_USE sx_status sx_kv_cache_create_for_model(const sx_model *m, int n_ctx, sx_dtype dtype, sx_kv_cache **out);
size_t sx_kv_cache_bytes(const sx_kv_cache *kv);
void sx_kv_cache_free(sx_kv_cache *kv);
/* Adds to g the copies that move slot src[i] to slot dst[i] in every layer
 * (KV compaction after tree verification). Gathers first, then scatters, so
 * overlapping moves are safe. */
SX_MUST_USE sx_status sx_kv_cache_build_move(sx_kv_cache *kv, sx_graph *g, const int32_t *src, const int32_t *dst, int n);

/* ---- one forward pass ---- */
typedef struct sx_batch {
    const int32_t *tokens; /* [n] */
    const int32_t *pos;    /* [n] rope positions; NULL = n_past + i */
    int n;
    int n_past;            /* kv slots already filled; tokens go to slots n_past.. */
    const float *mask;     /* [n][M] 0 / -inf over the slots after n_past; NULL = causal */
    int mask_width;        /* M (0 = n): the new tokens occupy the last n of the M slots
                              after n_past (earlier ones: e.g. upper levels of a draft tree) */
    const int32_t *out_rows; /* rows (0..n-1) whose logits are wanted; NULL = all */
    int n_out;
    const int *feature_layers; /* residual entering these layers is output too */
    int n_feature_layers;
    sx_tensor *feature_buf;    /* if set: the features, concatenated [sum, n], are also
                                  written to rows 0..n-1 of this persistent tensor */
    const int32_t *move_src, *move_dst; /* KV slot moves applied before the pass */
    int n_moves;
    int32_t *top_ids;  /* if set: [n_out][SX_SAMPLER_TOP_MAX] each output row's largest logits' ids (TOP_K) */
    float *top_vals;   /* and their logits (GATHER), read instead of whole rows for sampling */
} sx_batch;

#define SX_MAX_FEATURE_LAYERS 4

typedef struct sx_forward_out {
    sx_tensor *logits;   /* F32 [n_vocab, rows]: this batch's are rows row0.. (n_out of them) */
    sx_tensor *argmax;   /* I32 [1, rows], same rows */
    sx_tensor *top_ids, *top_vals; /* [SX_SAMPLER_TOP_MAX, rows] when a batch asked for them, else NULL */
    int row0, n_out;
    sx_tensor *features[SX_MAX_FEATURE_LAYERS]; /* F32 [n_embd, n] each (single batch only) */
} sx_forward_out;

/* Builds the step graph into g (reset by the caller). */
SX_MUST_USE sx_status sx_model_build_forward(const sx_model *m, sx_kv_cache *kv, sx_graph *g, const sx_batch *b, sx_forward_out *out);
/* One forward pass over the batches of n_seq sequences, each with its own
 * cache (continuous batching): the row-wise work (matmuls, norms, RoPE) runs
 * once over all their rows, attention per sequence. With batch-invariant
 * kernels every sequence gets exactly what it would get alone. */
SX_MUST_USE sx_status sx_model_build_forward_multi(const sx_model *m, int n_seq, sx_kv_cache *const *kvs, const sx_batch *bs, sx_graph *g,
                                                   sx_forward_out *outs);
/* The checks sx_model_build_forward makes on a batch, alone. */
SX_MUST_USE sx_status sx_model_check_batch(const sx_model *m, const sx_kv_cache *kv, const sx_batch *b);

/* Graph capacity that fits one forward pass of m. */
int sx_model_graph_size(const sx_model *m);

#endif
