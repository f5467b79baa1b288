/* core/spec.c — speculative decoding (see spec.h).
 *
 * EAGLE-3 state between steps. After a step commits the path P[0..k] of the
 * verified tree (P[0] = the root), the target's cache holds N + k + 1 tokens
 * once the moves N+P[j] -> N+j are applied (they run at the start of the
 * next verify pass), and the target features of the committed tokens sit in
 * rows P[0..k] of the persistent feature buffer. The draft has not seen
 * them yet: they are its "pending rows", paired with the token that follows
 * each (the last with the new root), and are run at the start of the next
 * step at draft positions draft_past.. (slot = position). The draft's tree
 * rows of a step live in its cache right after draft_past and are simply
 * overwritten later. */
#include "core/spec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/eagle3.h"

typedef struct tnode {
    int32_t token;  /* target id */
    int parent;     /* node index, -1 = the root */
    int depth;      /* 1 = child of the root */
    float score;    /* cumulative draft log-probability */
    int hrow;       /* hidden-buffer row holding the h' of this node's draft row; -1 = not expanded */
    int drow;       /* draft tree row (kv slot offset) when expanded */
    int vrow;       /* verify row (0 = root) when selected, -1 otherwise */
} tnode;

struct sx_spec {
    sx_session *s;
    sx_spec_params p;
    const sx_eagle3 *d;   /* EAGLE-3 draft, or NULL */
    sx_model *dm;         /* classic draft model, or NULL */
    sx_kv_cache *dkv;     /* the draft's cache */
    sx_tensor featbuf;    /* [3*Ht, feat_cap] on the target's device */
    sx_tensor hbuf;       /* [H, h_cap] on the draft's device */
    sx_buffer *featbuf_buf, *hbuf_buf;
    int feat_cap, h_cap;
    int draft_past;       /* draft positions committed */

    /* pending draft rows (EAGLE-3): feature rows and the tokens after them */
    int n_pend;
    int32_t *pend_feat, *pend_tok;
    bool pend_generated;  /* the pending rows are generated tokens (signals count) */

    /* classic draft: committed tokens the draft has not consumed yet */
    int32_t *dm_pend;
    int n_dm_pend;

    /* target cache moves to apply at the next verify */
    int32_t *move_src, *move_dst;
    int n_moves;

    /* the last verified tree */
    tnode nodes[SX_SPEC_MAX_NODES];
    int n_nodes;
    int vnode[SX_SPEC_MAX_NODES + 1]; /* verify row -> node (row 0: the root, -1) */
    int n_vrows;
    int path[SX_SPEC_MAX_DEPTH + 1];  /* accepted verify rows, path[0] = 0 */
    int n_path;
    int32_t root;

    float *vlogits;       /* [verify rows][n_vocab] target logits of a sampled verification */
    int32_t *vtop_ids;    /* [verify rows][SX_SAMPLER_TOP_MAX]: instead, each row's largest logits (sx_sampler_takes_top) */
    float *vtop_vals;
    bool vtop;            /* the last verification read those */
    bool read_rows;       /* logprobs: every verification reads whole rows */
    bool have_rows;       /* the last verification did */
    sx_constraint cpath;  /* a grammar along the path being accepted (its matcher made on first use) */
    float *probs;         /* [n_out][top_k] draft probabilities of the top candidates */
    int32_t *tops;
    double draft_ms, verify_ms;
};

static int feature_layers(const sx_spec *sp, int out[3]) {
    if (!sp->d) return 0;
    memcpy(out, sp->d->hp.target_layers, sizeof(int) * 3);
    return 3;
}

static sx_status persistent(sx_device *dev, sx_dtype dt, int64_t ne0, int64_t ne1, const char *name, sx_tensor *t, sx_buffer **buf) {
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ne[0] = ne0, t->ne[1] = ne1, t->ne[2] = t->ne[3] = 1;
    sx_tensor_set_contiguous_strides(t);
    t->role = SX_ROLE_KV;
    t->device = t->index = t->live_from = -1;
    snprintf(t->name, sizeof t->name, "%s", name);
    SX_RETURN_IF_ERROR(sx_buffer_alloc(dev, sx_tensor_nbytes(t), buf));
    t->buffer = *buf;
    return SX_OK;
}

void sx_spec_destroy(sx_spec *sp) {
    if (!sp) return;
    sx_engine_lock(sp->s->e);
    sx_kv_cache_free(sp->dkv);
    sx_buffer_free(sp->featbuf_buf);
    sx_buffer_free(sp->hbuf_buf);
    sx_engine_unlock(sp->s->e);
    free(sp->vlogits);
    free(sp->vtop_ids), free(sp->vtop_vals);
    free(sp->pend_feat), free(sp->pend_tok), free(sp->dm_pend);
    free(sp->move_src), free(sp->move_dst);
    free(sp->probs), free(sp->tops);
    sx_constraint_free(&sp->cpath);
    free(sp);
}

sx_status sx_spec_create(sx_session *s, const sx_spec_params *p, sx_spec **out) {
    *out = NULL;
    sx_engine *e = s->e;
    if (p->kind == SX_SPEC_EAGLE3 && !e->eagle)
        return sx_set_error(SX_ERR_INVALID_ARG, "--spec eagle3 needs an EAGLE-3 draft (-md DRAFT.gguf with architecture eagle3)");
    if (p->kind == SX_SPEC_DRAFT && !e->draft)
        return sx_set_error(SX_ERR_INVALID_ARG, "--spec draft needs a draft model sharing the target's vocabulary (-md MODEL.gguf)");
    if (p->draft_max < 1 || p->draft_max > SX_SPEC_MAX_DEPTH)
        return sx_set_error(SX_ERR_INVALID_ARG, "--draft-max must be in [1, %d]", SX_SPEC_MAX_DEPTH);
    if (p->draft_topk < 1 || p->draft_topk > 32) return sx_set_error(SX_ERR_INVALID_ARG, "--draft-topk must be in [1, 32]");
    if (p->draft_nodes < 1 || p->draft_nodes > SX_SPEC_MAX_VERIFY - 1) /* verify batches stay batch-invariant (cpu_fast.h) */
        return sx_set_error(SX_ERR_INVALID_ARG, "--draft-nodes must be in [1, %d]", SX_SPEC_MAX_VERIFY - 1);
    if (p->kind == SX_SPEC_NGRAM && (p->ngram_min < 1 || p->ngram_max < p->ngram_min || p->ngram_max > 64))
        return sx_set_error(SX_ERR_INVALID_ARG, "--prompt-lookup-min/--prompt-lookup-max: need 1 <= min <= max <= 64 (got %d and %d)", p->ngram_min,
                            p->ngram_max);
    sx_spec *sp = calloc(1, sizeof *sp);
    if (!sp) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "spec: out of memory");
    sp->s = s;
    sp->p = *p;
    if (sp->p.draft_topk == 1) sp->p.draft_nodes = sp->p.draft_max;
    /* a verify row costs about a decoded token where any of the target runs on the CPU (-ngl included) */
    if (!(sp->p.p_min >= 0)) sp->p.p_min = e->dev->info.host_visible || e->model->host ? 0.3f : 0.0f;
    if (sp->p.p_min > 1) return sx_spec_destroy(sp), sx_set_error(SX_ERR_INVALID_ARG, "--draft-p-min must be in [0, 1]");
    sx_device *ddev = e->draft_dev ? e->draft_dev : e->dev;
    const int n_ctx = s->kv->n_ctx;
    sx_status st = SX_OK;
    const int cap_rows = s->n_batch > SX_SPEC_MAX_NODES ? s->n_batch : SX_SPEC_MAX_NODES;
    sp->pend_feat = malloc(sizeof(int32_t) * (size_t)cap_rows);
    sp->pend_tok = malloc(sizeof(int32_t) * (size_t)cap_rows);
    sp->dm_pend = malloc(sizeof(int32_t) * (size_t)(n_ctx + 1));
    sp->move_src = malloc(sizeof(int32_t) * (SX_SPEC_MAX_DEPTH + 1));
    sp->move_dst = malloc(sizeof(int32_t) * (SX_SPEC_MAX_DEPTH + 1));
    if (!sp->pend_feat || !sp->pend_tok || !sp->dm_pend || !sp->move_src || !sp->move_dst)
        st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "spec: out of memory");
    if (st == SX_OK && p->kind == SX_SPEC_EAGLE3) {
        sp->d = e->eagle;
        const int K = sp->p.draft_topk;
        sp->feat_cap = cap_rows;
        sp->h_cap = SX_SPEC_MAX_NODES + 1;
        sp->probs = malloc(sizeof(float) * (size_t)K * (size_t)K);
        sp->tops = malloc(sizeof(int32_t) * (size_t)K * (size_t)K);
        if (!sp->probs || !sp->tops) st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "spec: out of memory");
        sx_engine_lock(e);
        if (st == SX_OK)
            st = persistent(e->dev, SX_DTYPE_F32, 3 * (int64_t)e->model->hp.n_embd, sp->feat_cap, "features", &sp->featbuf, &sp->featbuf_buf);
        if (st == SX_OK) st = persistent(ddev, SX_DTYPE_F32, sp->d->hp.n_embd, sp->h_cap, "draft_hidden", &sp->hbuf, &sp->hbuf_buf);
        if (st == SX_OK) st = sx_eagle3_kv_create(sp->d, ddev, n_ctx + SX_SPEC_MAX_NODES + 1, &sp->dkv);
        sx_engine_unlock(e);
    } else if (st == SX_OK && p->kind == SX_SPEC_DRAFT) {
        sp->dm = e->draft;
        const int K = sp->p.draft_topk;
        sp->probs = malloc(sizeof(float) * (size_t)K * (size_t)K);
        sp->tops = malloc(sizeof(int32_t) * (size_t)K * (size_t)K);
        if (!sp->probs || !sp->tops) st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "spec: out of memory");
        sx_engine_lock(e);
        if (st == SX_OK) st = sx_kv_cache_create(&sp->dm->hp, ddev, n_ctx + SX_SPEC_MAX_NODES + 1, SX_DTYPE_F16, &sp->dkv);
        sx_engine_unlock(e);
    }
    if (st != SX_OK) {
        sx_spec_destroy(sp);
        return st;
    }
    *out = sp;
    return SX_OK;
}

sx_status sx_spec_finish(sx_spec *sp) {
    if (sp->n_moves == 0) return SX_OK;
    sx_session *s = sp->s;
    sx_engine_lock(s->e);
    sx_graph_reset(s->graph);
    sx_status st = sx_kv_cache_build_move(s->kv, s->graph, sp->move_src, sp->move_dst, sp->n_moves);
    if (st == SX_OK) st = sx_sched_compute(s->sched, s->graph);
    sx_engine_unlock(s->e);
    if (st == SX_OK) sp->n_moves = 0;
    return st;
}

void sx_spec_timing(const sx_spec *sp, double *draft_ms, double *verify_ms) {
    *draft_ms = sp->draft_ms;
    *verify_ms = sp->verify_ms;
}

/* ---- draft passes ---- */
/* One EAGLE-3 pass (shared with other sessions' passes when they run at the
 * same time, core/batch.c); reads the wanted rows' distributions into probs
 * [n_out][top_k] (of the candidates) and tops [n_out][top_k], and the signals into sig [3n]. */
static sx_status run_draft(sx_spec *sp, const sx_draft_batch *b, float *probs, int32_t *tops, float *sig) {
    const sx_draft_seq seq = {.kv = sp->dkv, .featbuf = &sp->featbuf, .hbuf = &sp->hbuf, .b = b};
    return sx_draft_forward_shared(sp->s, sp->d, &seq, probs, tops, sig);
}

/* The pending rows: commits them to the draft's cache, stores the last row's
 * h' at hidden row 0 and reads the root's candidate children and signals. */
static sx_status draft_pending(sx_spec *sp, int32_t root, sx_spec_proposal *prop) {
    const int n = sp->n_pend;
    sp->pend_tok[n - 1] = root;
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)n);
    if (!pos) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "spec: out of memory");
    for (int i = 0; i < n; i++) pos[i] = sp->draft_past + i;
    const int32_t last = n - 1, hrow0 = 0;
    const bool sig = sp->pend_generated && sp->d->hp.n_signals == 3;
    sx_draft_batch b = {.n = n, .tokens = sp->pend_tok, .pos = pos, .n_past = sp->draft_past, .slot0 = sp->draft_past,
                        .feat_rows = sp->pend_feat, .n_hout = 1, .hout_src = &last, .hout_rows = &hrow0, .out_rows = &last, .n_out = 1,
                        .top_k = sp->p.draft_topk, .signals = sig};
    float *a = sig ? malloc(sizeof(float) * (size_t)n * 3) : NULL;
    sx_status st = sig && !a ? sx_set_error(SX_ERR_OUT_OF_MEMORY, "spec: out of memory") : SX_OK;
    if (st == SX_OK) st = run_draft(sp, &b, sp->probs, sp->tops, a);
    free(pos);
    prop->have_signals = false;
    if (st == SX_OK && sig) {
        double m[3] = {0, 0, 0};
        for (int i = 0; i < n; i++) m[0] += a[2 * i], m[1] += a[2 * i + 1], m[2] += a[2 * n + i];
        for (int j = 0; j < 3; j++) prop->signals[j] = (float)(m[j] / n);
        prop->have_signals = true;
    }
    free(a);
    if (st == SX_OK) sp->draft_past += n;
    return st;
}

/* A pass of the classic draft model over rows; fills probs [n][V] and the
 * top-K ids [n][K] of every row. mask_width 0: causal rows at n_past. */
static sx_status run_model_rows_locked(sx_spec *sp, const int32_t *tok, const int32_t *pos, int n, int n_past, const float *mask, int mask_width) {
    sx_session *s = sp->s;
    sx_batch b = {.tokens = tok, .pos = pos, .n = n, .n_past = n_past, .mask = mask, .mask_width = mask_width};
    sx_forward_out fo;
    sx_graph_reset(s->graph);
    SX_RETURN_IF_ERROR(sx_model_build_forward(sp->dm, sp->dkv, s->graph, &b, &fo));
    sx_tensor *top = sx_graph_add_top_k(s->graph, fo.logits, sp->p.draft_topk);
    sx_tensor *probs = sx_graph_add_gather(s->graph, sx_graph_add_softmax(s->graph, fo.logits), top);
    sx_graph_set_output(s->graph, probs);
    sx_graph_set_output(s->graph, top);
    SX_RETURN_IF_ERROR(sx_sched_compute(s->sched, s->graph));
    SX_RETURN_IF_ERROR(sx_tensor_read(probs, sp->probs, sizeof(float) * (size_t)sp->p.draft_topk * (size_t)n));
    return sx_tensor_read(top, sp->tops, sizeof(int32_t) * (size_t)sp->p.draft_topk * (size_t)n);
}

static sx_status run_model_rows(sx_spec *sp, const int32_t *tok, const int32_t *pos, int n, int n_past, const float *mask, int mask_width) {
    sx_engine_lock(sp->s->e);
    const sx_status st = run_model_rows_locked(sp, tok, pos, n, n_past, mask, mask_width);
    sx_engine_unlock(sp->s->e);
    return st;
}

/* Classic draft: the committed tokens it has not seen, then the root; the
 * last row's distribution gives the root's children. */
static sx_status model_pending_locked(sx_spec *sp, int32_t root) {
    sp->dm_pend[sp->n_dm_pend++] = root;
    const int n = sp->n_dm_pend, K = sp->p.draft_topk;
    for (int done = 0; done < n;) { /* in chunks of n_batch; only the last row's distribution is kept */
        const int m = n - done < sp->s->n_batch ? n - done : sp->s->n_batch;
        int32_t *pos = malloc(sizeof(int32_t) * (size_t)m);
        if (!pos) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "spec: out of memory");
        for (int i = 0; i < m; i++) pos[i] = sp->draft_past + i;
        const int32_t last = m - 1;
        sx_session *s = sp->s;
        sx_batch b = {.tokens = sp->dm_pend + done, .pos = pos, .n = m, .n_past = sp->draft_past, .out_rows = &last, .n_out = 1};
        sx_forward_out fo;
        sx_graph_reset(s->graph);
        sx_status st = sx_model_build_forward(sp->dm, sp->dkv, s->graph, &b, &fo);
        free(pos);
        SX_RETURN_IF_ERROR(st);
        sx_tensor *top = sx_graph_add_top_k(s->graph, fo.logits, K);
        sx_tensor *probs = sx_graph_add_gather(s->graph, sx_graph_add_softmax(s->graph, fo.logits), top);
        sx_graph_set_output(s->graph, probs);
        sx_graph_set_output(s->graph, top);
        SX_RETURN_IF_ERROR(sx_sched_compute(s->sched, s->graph));
        if (done + m == n) {
            SX_RETURN_IF_ERROR(sx_tensor_read(probs, sp->probs, sizeof(float) * (size_t)K));
            SX_RETURN_IF_ERROR(sx_tensor_read(top, sp->tops, sizeof(int32_t) * (size_t)K));
        }
        sp->draft_past += m;
        done += m;
    }
    sp->n_dm_pend = 0;
    return SX_OK;
}

static sx_status model_pending(sx_spec *sp, int32_t root) {
    sx_engine_lock(sp->s->e);
    const sx_status st = model_pending_locked(sp, root);
    sx_engine_unlock(sp->s->e);
    return st;
}

static int32_t to_target(const sx_spec *sp, int32_t draft_id) { return sp->d ? sx_eagle3_to_target(sp->d, draft_id) : draft_id; }

static int cmp_nodes(const tnode *a, int ia, const tnode *b, int ib) {
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->depth != b->depth) return a->depth < b->depth ? -1 : 1;
    return ia < ib ? -1 : ia > ib;
}

/* indices of the best `k` nodes among idx[0..n) (score desc, depth, index) */
static void best_k(const tnode *nodes, int *idx, int n, int k) {
    for (int i = 1; i < n; i++) { /* insertion sort: n <= K*K <= 1024 */
        int v = idx[i], j = i;
        while (j > 0 && cmp_nodes(&nodes[v], v, &nodes[idx[j - 1]], idx[j - 1]) < 0) idx[j] = idx[j - 1], j--;
        idx[j] = v;
    }
    (void)k;
}

/* probs[i]: the draft probability of top[i] (read back with the ids, not whole rows) */
static void add_children(sx_spec *sp, int parent, const float *probs, const int32_t *top, int K) {
    const float base = parent < 0 ? 0.0f : sp->nodes[parent].score;
    const int depth = parent < 0 ? 1 : sp->nodes[parent].depth + 1;
    for (int i = 0; i < K && sp->n_nodes < SX_SPEC_MAX_NODES; i++) {
        const int32_t id = top[i];
        const float p = probs[i];
        tnode *t = &sp->nodes[sp->n_nodes++];
        t->token = to_target(sp, id);
        t->parent = parent;
        t->depth = depth;
        t->score = base + logf(p > 1e-30f ? p : 1e-30f);
        t->hrow = -1;
        t->drow = -1;
        t->vrow = -1;
    }
}

/* Prompt lookup: the context is history[0..n_past) and the root. For suffix
 * lengths n from ngram_max down to ngram_min, its earlier occurrences, most
 * recent first, give up to `branches` continuations of at most D tokens,
 * merged into the tree (a token already there under the same parent is
 * reused, e.g. a draft's). A new node's path probability is its parent's
 * times q_first for the first continuation found (the longest, most recent
 * match) and q_other for the others, so a child never outscores its parent
 * and --draft-p-min keeps the CPU to the likely ones. */
static void lookup_insert(sx_spec *sp, int32_t root, int branches, int D, float q_first, float q_other) {
    const sx_session *s = sp->s;
    const int32_t *h = s->history;
    const int L = s->n_past + 1;
#define CTX(i) ((i) < L - 1 ? h[i] : root)
    int found = 0;
    for (int n = sp->p.ngram_max < L - 1 ? sp->p.ngram_max : L - 1; n >= sp->p.ngram_min && found < branches; n--)
        for (int j = L - n - 1; j >= 0 && found < branches; j--) { /* an occurrence at j..j+n-1 with a token after it */
            int k = 0;
            while (k < n && CTX(j + k) == CTX(L - n + k)) k++;
            if (k < n) continue;
            const float lq = logf(found == 0 ? q_first : q_other);
            int parent = -1, added = 0;
            for (int d = 0; d < D && j + n + d < L && sp->n_nodes < SX_SPEC_MAX_NODES; d++) {
                const int32_t t = CTX(j + n + d);
                int child = -1;
                for (int i = 0; i < sp->n_nodes && child < 0; i++)
                    if (sp->nodes[i].parent == parent && sp->nodes[i].token == t) child = i;
                if (child < 0) {
                    child = sp->n_nodes++;
                    sp->nodes[child] = (tnode){.token = t, .parent = parent, .depth = d + 1, .score = (parent < 0 ? 0.0f : sp->nodes[parent].score) + lq,
                                               .hrow = -1, .drow = -1, .vrow = -1};
                    added++;
                }
                parent = child;
            }
            found += added > 0;
        }
#undef CTX
}

/* EAGLE-2 dynamic tree: expand the K best nodes of each level. The rows of
 * a level attend to the committed draft cache, their ancestors' rows and
 * themselves. Works with the EAGLE-3 head and with a classic draft model. */
static sx_status draft_tree(sx_spec *sp, int32_t root, sx_spec_proposal *prop) {
    const int K = sp->p.draft_topk, D = sp->p.draft_max;
    sp->n_nodes = 0;
    if (sp->p.kind == SX_SPEC_NGRAM) return lookup_insert(sp, root, K, D, 1.0f, 0.25f), SX_OK;
    SX_RETURN_IF_ERROR(sp->d ? draft_pending(sp, root, prop) : model_pending(sp, root));
    add_children(sp, -1, sp->probs, sp->tops, K);
    int level[SX_SPEC_MAX_NODES], n_level = 0, n_rows = 0;
    for (int i = 0; i < sp->n_nodes; i++) level[n_level++] = i;
    for (int depth = 2; depth <= D; depth++) {
        best_k(sp->nodes, level, n_level, K);
        const int n = n_level < K ? n_level : K;
        if (n == 0 || sp->n_nodes + n * K > SX_SPEC_MAX_NODES || n_rows + n > SX_SPEC_MAX_NODES - 1) break;
        int32_t tok[64], pos[64], prow[64], hout[64], outr[64];
        const int M = n_rows + n;
        float *mask = malloc(sizeof(float) * (size_t)M * (size_t)n);
        if (!mask) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "spec: out of memory");
        for (int r = 0; r < n; r++) {
            tnode *t = &sp->nodes[level[r]];
            t->drow = n_rows + r;
            t->hrow = 1 + t->drow;
            tok[r] = t->token;
            /* EAGLE row of a depth-d node: position draft_past + d - 1; a model row holds the node's own token */
            pos[r] = sp->d ? sp->draft_past + depth - 2 : sp->draft_past - 1 + t->depth;
            prow[r] = t->parent < 0 ? 0 : sp->nodes[t->parent].hrow;
            hout[r] = t->hrow;
            outr[r] = r;
            for (int j = 0; j < M; j++) mask[(size_t)r * M + j] = -INFINITY;
            for (int a = level[r]; a >= 0; a = sp->nodes[a].parent) mask[(size_t)r * M + sp->nodes[a].drow] = 0;
        }
        sx_status st;
        if (sp->d) {
            sx_draft_batch b = {.n = n, .tokens = tok, .pos = pos, .n_past = sp->draft_past, .slot0 = sp->draft_past + n_rows, .mask = mask,
                                .parent_rows = prow, .n_hout = n, .hout_rows = hout, .out_rows = outr, .n_out = n, .top_k = K};
            st = run_draft(sp, &b, sp->probs, sp->tops, NULL);
        } else {
            st = run_model_rows(sp, tok, pos, n, sp->draft_past, mask, M);
        }
        free(mask);
        if (st != SX_OK) return st;
        const int first = sp->n_nodes;
        for (int r = 0; r < n; r++) add_children(sp, level[r], sp->probs + (size_t)r * K, sp->tops + (size_t)r * K, K);
        n_rows += n;
        n_level = 0;
        for (int i = first; i < sp->n_nodes; i++) level[n_level++] = i;
    }
    /* prompt lookup's continuations join the draft's tree, up to twice its depth (sumchain's held-out set:
     * 4.82 -> 4.99 tokens per pass; at the draft's depth only 4.84) */
    if (sp->p.lookup) lookup_insert(sp, root, K, 2 * D < SX_SPEC_MAX_DEPTH ? 2 * D : SX_SPEC_MAX_DEPTH, 0.5f, 0.125f); /* the context's own continuations join the draft's tree */
    return SX_OK;
}

/* ---- verification ---- */
/* One target pass over the root and the selected nodes (shared with other
 * sessions' passes when they run at the same time, core/batch.c); reads the
 * argmax of every row, and all rows' logits when sampling. */
static sx_status verify(sx_spec *sp, int32_t root, const int *sel, int n_sel, int32_t *argmax, const sx_sampler *smp, bool whole_rows) {
    sx_session *s = sp->s;
    const int n = n_sel + 1;
    int32_t tok[SX_SPEC_MAX_NODES + 1], pos[SX_SPEC_MAX_NODES + 1];
    /* sampling on a GPU: each row's largest logits when they decide the distribution (K values cross the bus, not the vocabulary), else whole rows */
    sp->vtop = !whole_rows && !sp->read_rows && sx_session_samples_top(s, smp);
    const bool want_logits = (smp && !sp->vtop) || sp->read_rows;
    sp->have_rows = false;
    if (want_logits && !sp->vlogits && !(sp->vlogits = malloc(sizeof(float) * (size_t)s->e->model->hp.n_vocab * SX_SPEC_MAX_VERIFY)))
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "spec: out of memory");
    if (sp->vtop && !sp->vtop_ids) {
        sp->vtop_ids = malloc(sizeof(int32_t) * SX_SAMPLER_TOP_MAX * SX_SPEC_MAX_VERIFY);
        sp->vtop_vals = malloc(sizeof(float) * SX_SAMPLER_TOP_MAX * SX_SPEC_MAX_VERIFY);
        if (!sp->vtop_ids || !sp->vtop_vals) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "spec: out of memory");
    }
    float *mask = malloc(sizeof(float) * (size_t)n * (size_t)n);
    if (!mask) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "spec: out of memory");
    tok[0] = root;
    pos[0] = s->n_past;
    sp->vnode[0] = -1;
    for (int i = 0; i < sp->n_nodes; i++) sp->nodes[i].vrow = -1;
    for (int r = 1; r < n; r++) {
        tnode *t = &sp->nodes[sel[r - 1]];
        t->vrow = r;
        sp->vnode[r] = sel[r - 1];
        tok[r] = t->token;
        pos[r] = s->n_past + t->depth;
    }
    for (int r = 0; r < n; r++) {
        for (int j = 0; j < n; j++) mask[(size_t)r * n + j] = -INFINITY;
        mask[(size_t)r * n + 0] = 0;
        for (int a = sp->vnode[r]; a >= 0; a = sp->nodes[a].parent) mask[(size_t)r * n + sp->nodes[a].vrow] = 0;
    }
    int fl[3];
    const int nfl = feature_layers(sp, fl);
    sx_batch b = {.tokens = tok, .pos = pos, .n = n, .n_past = s->n_past, .mask = mask, .feature_layers = fl, .n_feature_layers = nfl,
                  .feature_buf = nfl ? &sp->featbuf : NULL, .move_src = sp->move_src, .move_dst = sp->move_dst, .n_moves = sp->n_moves,
                  .top_ids = sp->vtop ? sp->vtop_ids : NULL, .top_vals = sp->vtop ? sp->vtop_vals : NULL};
    sx_status st = sx_session_forward_shared(s, &b, want_logits ? sp->vlogits : NULL, argmax);
    free(mask);
    if (st == SX_OK) sp->n_moves = 0;
    sp->have_rows = st == SX_OK && want_logits;
    sp->n_vrows = n;
    return st;
}

/* ---- acceptance ---- */
static int child_with_token(const sx_spec *sp, int vrow, int32_t token) {
    const int parent = sp->vnode[vrow];
    for (int r = 1; r < sp->n_vrows; r++)
        if (sp->nodes[sp->vnode[r]].parent == parent && sp->nodes[sp->vnode[r]].token == token) return r;
    return -1;
}

static sx_status accept_greedy(sx_spec *sp, const int32_t *argmax, int32_t *bonus) {
    int cur = 0;
    sp->path[0] = 0;
    sp->n_path = 1;
    for (;;) {
        const int next = child_with_token(sp, cur, argmax[cur]);
        if (next < 0) break;
        sp->path[sp->n_path++] = next;
        cur = next;
    }
    *bonus = argmax[cur];
    return SX_OK;
}

/* Exact sampling acceptance: at each node the target distribution p; try the
 * children in draft-score order, accept x with probability p(x), else zero it
 * and renormalise; the bonus comes from what remains. */
static sx_status accept_sample(sx_spec *sp, sx_sampler *smp, sx_constraint *con, int32_t *bonus) {
    sx_session *s = sp->s;
    const int V = s->e->model->hp.n_vocab;
    int cur = 0;
    sp->path[0] = 0;
    sp->n_path = 1;
    /* history = committed tokens + the root + the accepted path */
    const int base = s->n_past;
    s->history[base] = sp->root;
    sx_constraint *cp = NULL; /* the grammar after the root and the path so far */
    if (sx_constraint_active(con)) {
        if (!sp->cpath.m) SX_RETURN_IF_ERROR(sx_gmatch_clone(con->m, &sp->cpath.m));
        SX_RETURN_IF_ERROR(sx_constraint_copy(&sp->cpath, con));
        cp = &sp->cpath;
    }
    for (;;) {
        const int32_t *ids;
        const float *p;
        int n;
        if (cp) {
            const sx_status fs = sx_sampler_distribution_filtered(smp, sp->vlogits + (size_t)cur * V, s->history, base + sp->n_path,
                                                                  sx_constraint_filter, cp, &ids, &p, &n);
            SX_RETURN_IF_ERROR(sx_constraint_check(cp));
            SX_RETURN_IF_ERROR(fs);
        } else if (sp->vtop)
            SX_RETURN_IF_ERROR(sx_sampler_distribution_top(smp, sp->vtop_ids + (size_t)cur * SX_SAMPLER_TOP_MAX,
                                                           sp->vtop_vals + (size_t)cur * SX_SAMPLER_TOP_MAX, SX_SAMPLER_TOP_MAX, &ids, &p, &n));
        else
            SX_RETURN_IF_ERROR(sx_sampler_distribution(smp, sp->vlogits + (size_t)cur * V, s->history, base + sp->n_path, &ids, &p, &n));
        float *q = malloc(sizeof(float) * (size_t)n);
        if (!q) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "spec: out of memory");
        memcpy(q, p, sizeof(float) * (size_t)n);
        double mass = 1.0;
        int chosen = -1;
        /* children of cur in draft-score order */
        int kids[SX_SPEC_MAX_NODES], nk = 0;
        for (int r = 1; r < sp->n_vrows; r++)
            if (sp->nodes[sp->vnode[r]].parent == sp->vnode[cur]) kids[nk++] = sp->vnode[r];
        best_k(sp->nodes, kids, nk, nk);
        for (int c = 0; c < nk && chosen < 0; c++) {
            const int32_t tok = sp->nodes[kids[c]].token;
            int at = -1;
            for (int i = 0; i < n; i++)
                if (ids[i] == tok) at = i;
            const double px = at >= 0 && mass > 0 ? q[at] / mass : 0.0;
            if (px > 0 && sx_rng_uniform(sx_sampler_rng(smp)) < px) {
                chosen = sp->nodes[kids[c]].vrow;
            } else if (at >= 0) {
                mass -= q[at];
                q[at] = 0;
            }
        }
        if (chosen >= 0) {
            free(q);
            if (cp && !sx_constraint_accept(cp, sp->nodes[sp->vnode[chosen]].token))
                return cp->failed ? sx_constraint_check(cp) : sx_set_error(SX_ERR_INVALID_ARG, "spec: the grammar refused a token it allowed");
            sp->path[sp->n_path++] = chosen;
            s->history[base + sp->n_path - 1] = sp->nodes[sp->vnode[chosen]].token;
            cur = chosen;
            if (sp->n_path > SX_SPEC_MAX_DEPTH) return sx_set_error(SX_ERR_INVALID_ARG, "spec: path too deep");
            continue;
        }
        /* bonus from the residual distribution */
        double u = sx_rng_uniform(sx_sampler_rng(smp)) * mass, cum = 0;
        int32_t pick = -1;
        for (int i = 0; i < n; i++) {
            if (q[i] <= 0) continue;
            cum += q[i];
            pick = ids[i];
            if (u < cum) break;
        }
        free(q);
        if (pick < 0) pick = ids[0]; /* every candidate rejected with p == 1: cannot happen, kept safe */
        *bonus = pick;
        return SX_OK;
    }
}

/* ---- the step ---- */
sx_status sx_spec_step(sx_spec *sp, int32_t root, sx_sampler *smp, bool greedy, sx_constraint *con, sx_spec_proposal *out) {
    sx_session *s = sp->s;
    memset(out, 0, sizeof *out);
    sp->root = root;
    const int T = sp->p.draft_nodes;
    double t0 = sx_now_ms();
    sx_status st = draft_tree(sp, root, out); /* its device calls take the engine lock themselves */
    double t1 = sx_now_ms();
    sp->draft_ms += t1 - t0;
    if (st != SX_OK) return st;
    /* select the T best nodes (closed under ancestors), parents first */
    int sel[SX_SPEC_MAX_NODES];
    int n_sel = 0;
    for (int i = 0; i < sp->n_nodes; i++) sel[n_sel++] = i;
    best_k(sp->nodes, sel, n_sel, T);
    if (n_sel > T) n_sel = T;
    /* nodes the draft gives a path probability below p_min are not worth a verify row (a prefix of
     * the score order stays closed under ancestors: a child never outscores its parent) */
    if (sp->p.p_min > 0) {
        const float lp = logf(sp->p.p_min);
        int keep = 0;
        while (keep < n_sel && sp->nodes[sel[keep]].score >= lp) keep++;
        n_sel = keep;
    }
    const int room = s->kv->n_ctx - s->n_past - 1; /* verify rows after the root must fit the context */
    if (n_sel > room) n_sel = room > 0 ? room : 0;
    for (int i = 1; i < n_sel; i++) { /* order by depth (parents before children), stable */
        int v = sel[i], j = i;
        while (j > 0 && sp->nodes[sel[j - 1]].depth > sp->nodes[v].depth) sel[j] = sel[j - 1], j--;
        sel[j] = v;
    }
    out->n_drafted = n_sel;
    int32_t argmax[SX_SPEC_MAX_NODES + 1];
    /* under a grammar, or with a repetition penalty, greedy acceptance is the distribution's too (one token with p = 1):
     * the device's argmax would not see them */
    const bool constrained = sx_constraint_active(con) && smp;
    const bool sampled = smp && (!greedy || constrained || !sx_sampler_argmax_only(smp));
    st = verify(sp, root, sel, n_sel, argmax, sampled ? smp : NULL, constrained);
    int32_t bonus = 0;
    if (st == SX_OK) st = sampled ? accept_sample(sp, smp, constrained ? con : NULL, &bonus) : accept_greedy(sp, argmax, &bonus);
    sp->verify_ms += sx_now_ms() - t1;
    if (st != SX_OK) return st;
    if (con && con->m && con->wait_for >= 0) /* the grammar starts after this token: it ends the step, as the bonus */
        for (int j = 1; j < sp->n_path; j++)
            if (sp->nodes[sp->vnode[sp->path[j]]].token == con->wait_for) {
                bonus = con->wait_for;
                sp->n_path = j;
                break;
            }
    out->n = 0;
    for (int j = 1; j < sp->n_path; j++) out->tokens[out->n++] = sp->nodes[sp->vnode[sp->path[j]]].token;
    out->tokens[out->n++] = bonus;
    return SX_OK;
}

void sx_spec_read_rows(sx_spec *sp, bool on) { sp->read_rows = on; }

const float *sx_spec_row(const sx_spec *sp, int i) {
    if (!sp->have_rows || i < 0 || i >= sp->n_path) return NULL;
    return sp->vlogits + (size_t)sp->path[i] * (size_t)sp->s->e->model->hp.n_vocab;
}

void sx_spec_commit(sx_spec *sp, int n_accepted, int32_t bonus) {
    sx_session *s = sp->s;
    if (n_accepted > sp->n_path - 1) n_accepted = sp->n_path - 1;
    const int N = s->n_past, k = n_accepted;
    /* target cache: root at N already; accepted node j sits at N + path[j] */
    sp->n_moves = 0;
    for (int j = 1; j <= k; j++)
        if (sp->path[j] != j) {
            sp->move_src[sp->n_moves] = N + sp->path[j];
            sp->move_dst[sp->n_moves] = N + j;
            sp->n_moves++;
        }
    s->history[N] = sp->root;
    for (int j = 1; j <= k; j++) s->history[N + j] = sp->nodes[sp->vnode[sp->path[j]]].token;
    s->n_past = N + k + 1;
    if (sp->d) { /* pending draft rows: features of the committed tokens, each with the next token */
        for (int j = 0; j <= k; j++) {
            sp->pend_feat[j] = sp->path[j];
            sp->pend_tok[j] = j < k ? sp->nodes[sp->vnode[sp->path[j + 1]]].token : bonus;
        }
        sp->n_pend = k + 1;
        sp->pend_generated = true;
    } else if (sp->dm) { /* classic draft: its cache holds everything up to the root; the accepted tokens come next */
        sp->n_dm_pend = 0;
        for (int j = 1; j <= k; j++) sp->dm_pend[sp->n_dm_pend++] = sp->nodes[sp->vnode[sp->path[j]]].token;
    }
}

/* ---- prefill ---- */
/* One prompt chunk of an EAGLE-3 prefill: the target pass, then the draft reads it. */
static sx_status prefill_chunk(sx_spec *sp, const int32_t *prompt, int n, int done, const int *fl, float *out_logits) {
    sx_session *s = sp->s;
    const int m = n - done < s->n_batch ? n - done : s->n_batch;
    const bool last = done + m == n;
    const int32_t last_row = m - 1;
    sx_batch b = {.tokens = prompt + done, .n = m, .n_past = s->n_past, .out_rows = &last_row, .n_out = 1, .feature_layers = fl,
                  .n_feature_layers = 3, .feature_buf = &sp->featbuf, .move_src = sp->move_src, .move_dst = sp->move_dst,
                  .n_moves = sp->n_moves};
    SX_RETURN_IF_ERROR(sx_session_forward(s, &b, last ? out_logits : NULL, NULL));
    sp->n_moves = 0;
    memcpy(s->history + s->n_past, prompt + done, sizeof(int32_t) * (size_t)m);
    s->n_past += m;
    /* the draft reads this chunk: row i pairs feature i with the next prompt token */
    const int rows = last ? m - 1 : m;
    for (int i = 0; i < m; i++) {
        sp->pend_feat[i] = i;
        sp->pend_tok[i] = done + i + 1 < n ? prompt[done + i + 1] : 0;
    }
    if (rows > 0) {
        int32_t *pos = malloc(sizeof(int32_t) * (size_t)rows);
        if (!pos) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "spec: out of memory");
        for (int i = 0; i < rows; i++) pos[i] = sp->draft_past + i;
        sx_draft_batch db = {.n = rows, .tokens = sp->pend_tok, .pos = pos, .n_past = sp->draft_past, .slot0 = sp->draft_past,
                             .feat_rows = sp->pend_feat};
        sx_status st = run_draft(sp, &db, NULL, NULL, NULL);
        free(pos);
        SX_RETURN_IF_ERROR(st);
        sp->draft_past += rows;
    }
    if (last) { /* the prompt's last row waits for the first generated token */
        sp->pend_feat[0] = m - 1;
        sp->n_pend = 1;
        sp->pend_generated = false;
    }
    return SX_OK;
}

sx_status sx_spec_prefill(sx_spec *sp, const int32_t *prompt, int n, float *out_logits) {
    sx_session *s = sp->s;
    if ((int64_t)s->n_past + n > s->kv->n_ctx)
        return sx_set_error(SX_ERR_CONTEXT_FULL, "the prompt has %d tokens but only %d of the %d context slots are free (raise --ctx-size)", n,
                            s->kv->n_ctx - s->n_past, s->kv->n_ctx);
    if (!sp->d) { /* classic: the target as usual; the draft's cache starts empty, so it reads the whole context at its first step */
        SX_RETURN_IF_ERROR(sx_session_eval(s, prompt, n, out_logits));
        if (!sp->dm) return SX_OK; /* prompt lookup: nothing else to read */
        memcpy(sp->dm_pend, s->history, sizeof(int32_t) * (size_t)s->n_past);
        sp->n_dm_pend = s->n_past;
        sp->draft_past = 0;
        return SX_OK;
    }
    int fl[3];
    feature_layers(sp, fl);
    uint64_t turn = SX_PREFILL_FIRST;
    for (int done = 0; done < n;) {
        sx_batch_prefill_turn(s->e, &turn); /* decoding sessions go on between chunks */
        sx_engine_lock(s->e); /* the target and the draft pass of one chunk together */
        const sx_status st = prefill_chunk(sp, prompt, n, done, fl, out_logits);
        sx_engine_unlock(s->e);
        SX_RETURN_IF_ERROR(st);
        done += n - done < s->n_batch ? n - done : s->n_batch;
    }
    return SX_OK;
}
