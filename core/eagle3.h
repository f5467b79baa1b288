/* core/eagle3.h — the EAGLE-3 draft model with SpecExit signal rows.
 *
 * GGUF layout of a draft (general.architecture = "eagle3"). Written by
 * tools/train (our trainer) and by `specexit convert eagle3` (AngelSlim /
 * EAGLE-3 checkpoints). Shapes in GGUF order (ne0 first = input dim).
 *
 *   keys
 *     eagle3.embedding_length             u32  H, draft hidden size
 *     eagle3.feed_forward_length          u32  I
 *     eagle3.attention.head_count         u32  nh
 *     eagle3.attention.head_count_kv      u32  nkv
 *     eagle3.attention.key_length         u32  head_dim (default H / nh)
 *     eagle3.attention.layer_norm_rms_epsilon f32
 *     eagle3.rope.freq_base               f32  draft RoPE base (default 10000,
 *                                              AngelSlim trains with 10000)
 *     eagle3.rope.scaling.type            str  optional: "linear" (positions / factor)
 *                                              or "llama3" (rope_freqs.weight); absent: none
 *     eagle3.rope.scaling.factor          f32  the scaling factor
 *     eagle3.rope.scaling.original_context_length u32, .low_freq_factor f32,
 *       .high_freq_factor f32               llama3 only, as recorded (the
 *                                              divisors are in rope_freqs.weight)
 *     eagle3.vocab_size                   u32  Vd, draft vocabulary
 *     eagle3.target_vocab_size            u32  V, the target's vocabulary
 *     eagle3.target_hidden_size           u32  Ht
 *     eagle3.target_layers                i32[3]  layers whose *input* residual
 *                                              stream is a feature (2, L/2, L-3)
 *     eagle3.signal_rows                  u32  k_sig: 3 with SpecExit signals
 *                                              (confidence, progress, remain), 0 without
 *     eagle3.exit.conf / .progress / .remain / .alpha   f32, optional: the exit
 *                                              thresholds and EWMA weight this draft's
 *                                              signals were tuned for (dev set)
 *   tensors
 *     fc.weight             [3*Ht, H + k_sig]  rows 0..H-1: fusion; H..H+2: signals
 *     fc.bias               [H + k_sig]        optional
 *     hidden_norm.weight    [H]                norm of the fused hidden
 *     input_norm.weight     [H]                norm of the token embedding
 *     attn_q.weight         [2H, nh*hd]
 *     attn_k.weight         [2H, nkv*hd]
 *     attn_v.weight         [2H, nkv*hd]
 *     attn_output.weight    [nh*hd, H]
 *     ffn_norm.weight       [H]                post-attention norm
 *     ffn_gate.weight       [H, I]
 *     ffn_up.weight         [H, I]
 *     ffn_down.weight       [I, H]
 *     output_norm.weight    [H]
 *     output.weight         [H, Vd]            never tied to the embedding
 *     d2t                   i32 [Vd]           target_id = draft_id + d2t[draft_id];
 *                                              absent: Vd == V, identity
 *     token_embd.weight     [H, V]             optional; absent: the target's
 *                                              (requires H == the target's n_embd)
 *     rope_freqs.weight     f32 [hd/2]         optional (required by llama3 scaling):
 *                                              pair i's frequency is divided by it,
 *                                              as a Llama 3.1 target's rope_freqs
 *
 * One draft step over n rows (batch): row i pairs a hidden h_i (the fused
 * target features for the first draft position after committed tokens, or
 * the parent's output hidden deeper in the tree) with the embedding of the
 * token x_i that follows it; it predicts the token after x_i.
 *   x   = concat(input_norm(embed(x_i)), hidden_norm(h_i))     [2H]
 *   r   = h_i + o_proj(attn(rope(q(x)), rope(k(x)), v(x)))     [H] (residual starts at h)
 *   h'  = r + down(silu(gate(ffn_norm(r))) * up(ffn_norm(r)))  [H]
 *   out = output(output_norm(h'))                              [Vd]
 * h' is carried to the children of row i. Signals come from the target
 * features alone: sigmoid(fc_H), sigmoid(fc_H+1), exp(fc_H+2).
 */
#ifndef SX_EAGLE3_H
#define SX_EAGLE3_H

#include "core/model.h"

#define SX_EAGLE3_N_FEATURES 3
#define SX_EAGLE3_MAX_SIGNALS 3

typedef struct sx_eagle3_hparams {
    int n_embd;        /* H */
    int n_ff;          /* I */
    int n_head, n_head_kv, head_dim;
    float norm_eps;
    float rope_base;
    float rope_scale;  /* RoPE freq_scale: 1 / factor with linear scaling, else 1 */
    bool rope_llama3;  /* llama3 scaling: rope_freqs.weight required */
    int n_vocab;        /* Vd */
    int n_vocab_target; /* V */
    int n_embd_target;  /* Ht */
    int target_layers[SX_EAGLE3_N_FEATURES];
    int n_signals;      /* k_sig: 0 or 3 */
    /* recommended exit settings (optional keys eagle3.exit.conf / .progress /
     * .remain / .alpha, tuned on a development set); NAN when absent */
    float exit_conf, exit_progress, exit_remain, exit_alpha;
} sx_eagle3_hparams;

typedef struct sx_eagle3 {
    sx_eagle3_hparams hp;
    sx_gguf *gguf;
    sx_device *dev;
    sx_buffer *weights;
    sx_tensor tensors[20];
    int n_tensors;
    sx_tensor *fc, *fc_b;
    sx_tensor *hidden_norm, *input_norm;
    sx_tensor *wq, *wk, *wv, *wo;
    sx_tensor *ffn_norm, *w_gate, *w_up, *w_down;
    sx_tensor *out_norm, *output;
    sx_tensor *d2t;       /* I32 [Vd] or NULL */
    sx_tensor *rope_freqs; /* F32 [head_dim/2] RoPE frequency divisors or NULL */
    sx_tensor *tok_embd;  /* own or the target's */
    sx_buffer *embd_buf;  /* the target's embedding copied to the draft's device, or NULL */
    int32_t *d2t_host;    /* [Vd] host copy of the offsets (NULL = identity) */
} sx_eagle3;

/* Loads a draft and checks it against its target: hidden sizes, vocabulary,
 * feature layers in range, every tensor's shape. Clear errors otherwise. */
SX_MUST_USE sx_status sx_eagle3_load(const char *path, const sx_model *target, sx_device *dev, sx_eagle3 **out);
void sx_eagle3_free(sx_eagle3 *d);

/* Draft-vocabulary id -> target id. */
static inline int32_t sx_eagle3_to_target(const sx_eagle3 *d, int32_t draft_id) {
    return d->d2t_host ? draft_id + d->d2t_host[draft_id] : draft_id;
}

#endif

/* ---- one draft pass ---- */
typedef struct sx_draft_batch {
    int n;                       /* rows */
    const int32_t *tokens;       /* [n] target ids of x_i (embedded) */
    const int32_t *pos;          /* [n] rope positions */
    int n_past;                  /* draft kv slots [0, n_past) are visible to every row */
    int slot0;                   /* rows write kv slots slot0 .. slot0+n-1 (>= n_past) */
    const float *mask;           /* [M][n], M = slot0 + n - n_past; NULL: causal (slot0 == n_past) */
    const int32_t *feat_rows;    /* [n] rows of the feature buffer (first draft position), or NULL */
    const int32_t *parent_rows;  /* [n] rows of the hidden buffer (deeper positions), or NULL */
    int n_hout;                  /* rows whose h' is stored in the hidden buffer: */
    const int32_t *hout_src;     /*   [n_hout] rows of this batch */
    const int32_t *hout_rows;    /*   [n_hout] rows of the hidden buffer that receive them */
    const int32_t *out_rows;     /* rows whose next-token distribution is wanted */
    int n_out;
    int top_k;                   /* candidates per wanted row */
    bool signals;                /* also output the exit signals of the rows (feat_rows only) */
} sx_draft_batch;

typedef struct sx_draft_out {
    sx_tensor *probs;    /* F32 [top_k, rows out]: the draft probabilities of the top ids (a few values per row, not the
                            vocabulary); this batch's rows are row0.. (n_out of them) */
    sx_tensor *top;      /* I32 [top_k, rows out] draft ids, best first; same rows */
    int row0, n_out;
    sx_tensor *sig_01;   /* F32 [2, n] sigmoid(confidence, progress rows) or NULL */
    sx_tensor *sig_2;    /* F32 [1, n] exp(remain row) or NULL */
} sx_draft_out;

/* Builds a draft pass into g. featbuf: the target's persistent feature
 * buffer [3*Ht, cap]; hbuf: the draft's persistent hidden buffer [H, cap]. */
SX_MUST_USE sx_status sx_eagle3_build(const sx_eagle3 *d, sx_kv_cache *kv, sx_graph *g, sx_tensor *featbuf, sx_tensor *hbuf,
                                      const sx_draft_batch *b, sx_draft_out *out);
/* One sequence of a combined draft pass (continuous batching): its cache,
 * its feature and hidden buffers and its batch. */
typedef struct sx_draft_seq {
    sx_kv_cache *kv;
    sx_tensor *featbuf, *hbuf;
    const sx_draft_batch *b;
} sx_draft_seq;
/* Builds one draft pass over the batches of n_seq sequences: the row-wise
 * work once over all their rows, attention per sequence on its own cache.
 * The batches must be compatible (sx_eagle3_batches_compatible). */
SX_MUST_USE sx_status sx_eagle3_build_multi(const sx_eagle3 *d, int n_seq, const sx_draft_seq *seqs, sx_graph *g, sx_draft_out *outs);
/* Two batches can share a pass: both start from features or both from
 * parents, and both or neither want distributions, with the same top_k. */
bool sx_eagle3_batches_compatible(const sx_draft_batch *a, const sx_draft_batch *b);
/* A KV cache shaped for the draft's single layer. */
SX_MUST_USE sx_status sx_eagle3_kv_create(const sx_eagle3 *d, sx_device *dev, int n_ctx, sx_kv_cache **out);
