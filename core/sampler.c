/* core/sampler.c — see sampler.h. */
#include "core/sampler.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sx_sampler_params_init(sx_sampler_params *p) {
    memset(p, 0, sizeof *p);
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = SX_SEED_RANDOM;
}

/* SX_SEED_RANDOM: the clock in nanoseconds and a counter, so that samplers made in the same second
 * (the choices of one request, concurrent requests) draw differently */
static uint64_t random_seed(void) {
    static _Atomic uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ (atomic_fetch_add(&counter, 1) * 0x9e3779b97f4a7c15ull);
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sx_rng_seed(sx_rng *r, uint64_t seed) {
    r->s[0] = splitmix(&seed);
    r->s[1] = splitmix(&seed);
}

double sx_rng_uniform(sx_rng *r) { /* xoroshiro128+ */
    const uint64_t s0 = r->s[0];
    uint64_t s1 = r->s[1];
    const uint64_t result = s0 + s1;
    s1 ^= s0;
    r->s[0] = ((s0 << 24) | (s0 >> 40)) ^ s1 ^ (s1 << 16);
    r->s[1] = (s1 << 37) | (s1 >> 27);
    return (double)(result >> 11) * (1.0 / 9007199254740992.0);
}

struct sx_sampler {
    sx_sampler_params p;
    int n_vocab;
    sx_rng rng;
    float *work;   /* [n_vocab] penalised logits */
    int32_t *ids;  /* [n_vocab] candidate ids */
    float *probs;  /* [n_vocab] */
    int32_t *heap; /* [n_vocab] candidate heap of the filtered distribution, made on first use */
};

sx_status sx_sampler_create(const sx_sampler_params *p, int n_vocab, sx_sampler **out) {
    *out = NULL;
    if (n_vocab < 1) return sx_set_error(SX_ERR_INVALID_ARG, "sampler: n_vocab %d", n_vocab);
    if (!(p->temp >= 0) || !(p->top_p > 0) || !(p->min_p >= 0 && p->min_p <= 1) || !(p->repeat_penalty > 0))
        return sx_set_error(SX_ERR_INVALID_ARG, "sampler: invalid parameters (temp >= 0, 0 < top-p, 0 <= min-p <= 1, repeat-penalty > 0)");
    if (p->n_logit_bias < 0 || (p->n_logit_bias > 0 && (!p->bias_ids || !p->bias_vals)))
        return sx_set_error(SX_ERR_INVALID_ARG, "sampler: logit bias without ids or values");
    for (int i = 0; i < p->n_logit_bias; i++) {
        if (p->bias_ids[i] < 0 || p->bias_ids[i] >= n_vocab)
            return sx_set_error(SX_ERR_INVALID_ARG, "logit bias: token %d is not in the vocabulary (0..%d)", p->bias_ids[i], n_vocab - 1);
        if (isnan(p->bias_vals[i]) || p->bias_vals[i] == INFINITY)
            return sx_set_error(SX_ERR_INVALID_ARG, "logit bias: token %d: the bias must be a number or -inf", p->bias_ids[i]);
    }
    sx_sampler *s = calloc(1, sizeof *s);
    if (!s) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->work = malloc(sizeof(float) * (size_t)n_vocab);
    s->ids = malloc(sizeof(int32_t) * (size_t)n_vocab);
    s->probs = malloc(sizeof(float) * (size_t)n_vocab);
    if (!s->work || !s->ids || !s->probs) {
        sx_sampler_destroy(s);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "sampler: out of memory");
    }
    sx_rng_seed(&s->rng, p->seed == SX_SEED_RANDOM ? random_seed() : p->seed);
    *out = s;
    return SX_OK;
}

void sx_sampler_destroy(sx_sampler *s) {
    if (!s) return;
    free(s->work), free(s->ids), free(s->probs), free(s->heap);
    free(s);
}

sx_rng *sx_sampler_rng(sx_sampler *s) { return &s->rng; }

bool sx_sampler_argmax_only(const sx_sampler *s) { return s->p.temp <= 0 && s->p.repeat_penalty == 1.0f && !s->p.n_logit_bias; }

int32_t sx_argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

void sx_logprob_row(const float *row, int V, int32_t token, int n_top, sx_token_logprob *out) {
    if (n_top > SX_MAX_TOP_LOGPROBS) n_top = SX_MAX_TOP_LOGPROBS;
    if (n_top < 0) n_top = 0;
    float m = -INFINITY;
    for (int i = 0; i < V; i++) m = row[i] > m ? row[i] : m;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += expf(row[i] - m);
    const double lse = (double)m + log(sum);
    /* the n_top largest, kept sorted: a value enters only above the smallest kept, so equal values keep the lower id first */
    int k = 0;
    for (int i = 0; i < V && n_top > 0; i++) {
        const float v = row[i];
        if (k == n_top && !(v > row[out->top_ids[k - 1]])) continue;
        int at = k < n_top ? k++ : k - 1;
        while (at > 0 && v > row[out->top_ids[at - 1]]) out->top_ids[at] = out->top_ids[at - 1], at--;
        out->top_ids[at] = i;
    }
    out->n_top = k;
    for (int i = 0; i < k; i++) out->top_logprobs[i] = (float)((double)row[out->top_ids[i]] - lse);
    out->token = token;
    out->logprob = token >= 0 && token < V ? (float)((double)row[token] - lse) : -INFINITY;
}

static _Thread_local const float *t_sort_logits;

static int cmp_desc(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    const float lx = t_sort_logits[x], ly = t_sort_logits[y];
    if (lx != ly) return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* a before b in the candidate order: higher logit first, then lower id (a
 * strict total order, so any selection gives the same first k as a sort) */
static inline bool before(const float *l, int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); }

/* The first k ids of the candidate order, in that order, into out[0..k):
 * a heap of the k best so far (its root the worst of them), O(V log k)
 * instead of sorting the whole vocabulary per token (151936 ids for Qwen3:
 * milliseconds, once per sampled token and per verified tree row). */
static int select_top_k(const float *l, int V, int k, int32_t *out) {
    int n = 0;
    for (int32_t id = 0; id < V; id++) {
        int at;
        if (n < k) { /* sift up */
            at = n++;
            while (at > 0 && before(l, out[(at - 1) / 2], id)) {
                out[at] = out[(at - 1) / 2];
                at = (at - 1) / 2;
            }
            out[at] = id;
            continue;
        }
        if (!before(l, id, out[0])) continue;
        at = 0; /* replace the root, sift down */
        for (;;) {
            int c = 2 * at + 1;
            if (c >= n) break;
            if (c + 1 < n && before(l, out[c], out[c + 1])) c++; /* the worse child */
            if (!before(l, id, out[c])) break;
            out[at] = out[c];
            at = c;
        }
        out[at] = id;
    }
    qsort(out, (size_t)n, sizeof(int32_t), cmp_desc);
    return n;
}

static sx_status finish(sx_sampler *s, int n, const int32_t **out_ids, const float **out_p, int *out_n);
static sx_status draw(sx_sampler *s, const int32_t *ids, const float *p, int n, int32_t *out_token);

/* the logits with the repetition penalty, into s->work */
static void penalise(sx_sampler *s, const float *logits, const int32_t *history, int n_history) {
    const int V = s->n_vocab;
    memcpy(s->work, logits, sizeof(float) * (size_t)V);
    if (s->p.repeat_penalty != 1.0f && history) {
        const int from = n_history > s->p.repeat_last_n ? n_history - s->p.repeat_last_n : 0;
        for (int i = from; i < n_history; i++) {
            const int32_t t = history[i];
            if (t < 0 || t >= V) continue;
            /* each distinct token penalised once */
            bool seen = false;
            for (int j = from; j < i && !seen; j++) seen = history[j] == t;
            if (seen) continue;
            s->work[t] = s->work[t] > 0 ? s->work[t] / s->p.repeat_penalty : s->work[t] * s->p.repeat_penalty;
        }
    }
    for (int i = 0; i < s->p.n_logit_bias; i++) s->work[s->p.bias_ids[i]] += s->p.bias_vals[i]; /* checked at create */
}

sx_status sx_sampler_distribution(sx_sampler *s, const float *logits, const int32_t *history, int n_history, const int32_t **out_ids,
                                  const float **out_p, int *out_n) {
    const int V = s->n_vocab;
    penalise(s, logits, history, n_history);
    if (s->p.temp <= 0) {
        s->ids[0] = sx_argmax(s->work, V);
        s->probs[0] = 1.0f;
        *out_ids = s->ids, *out_p = s->probs, *out_n = 1;
        return SX_OK;
    }
    for (int i = 0; i < V; i++)
        if (isnan(s->work[i])) return sx_set_error(SX_ERR_INVALID_ARG, "sampler: logit %d is NaN", i);
    int n = V;
    t_sort_logits = s->work;
    if (s->p.top_k > 0 && s->p.top_k < V) {
        n = select_top_k(s->work, V, s->p.top_k, s->ids);
    } else {
        for (int i = 0; i < V; i++) s->ids[i] = i;
        qsort(s->ids, (size_t)n, sizeof(int32_t), cmp_desc);
    }
    return finish(s, n, out_ids, out_p, out_n);
}

/* max-heap of ids by the candidate order (the best at the root) */
static void heap_down(const float *l, int32_t *h, int n, int at) {
    const int32_t v = h[at];
    for (;;) {
        int c = 2 * at + 1;
        if (c >= n) break;
        if (c + 1 < n && before(l, h[c + 1], h[c])) c++;
        if (!before(l, h[c], v)) break;
        h[at] = h[c];
        at = c;
    }
    h[at] = v;
}

sx_status sx_sampler_distribution_filtered(sx_sampler *s, const float *logits, const int32_t *history, int n_history, sx_token_filter allow,
                                           void *ctx, const int32_t **out_ids, const float **out_p, int *out_n) {
    const int V = s->n_vocab;
    penalise(s, logits, history, n_history);
    for (int i = 0; i < V; i++)
        if (isnan(s->work[i])) return sx_set_error(SX_ERR_INVALID_ARG, "sampler: logit %d is NaN", i);
    const int want = s->p.temp <= 0 ? 1 : s->p.top_k > 0 && s->p.top_k < V ? s->p.top_k : V;
    int n = 0;
    if (want == 1) { /* greedy: the argmax is usually allowed */
        const int32_t a = sx_argmax(s->work, V);
        if (allow(ctx, a)) s->ids[n++] = a;
    }
    if (n < want) { /* the candidate order, lazily: a heap over the vocabulary, popped until `want` are allowed */
        if (!s->heap && !(s->heap = malloc(sizeof(int32_t) * (size_t)V))) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "sampler: out of memory");
        int32_t *h = s->heap;
        for (int i = 0; i < V; i++) h[i] = i;
        for (int i = V / 2 - 1; i >= 0; i--) heap_down(s->work, h, V, i);
        for (int hn = V; hn > 0 && n < want;) {
            const int32_t id = h[0];
            h[0] = h[--hn];
            heap_down(s->work, h, hn, 0);
            if (allow(ctx, id)) s->ids[n++] = id;
        }
    }
    if (n == 0) return sx_set_error(SX_ERR_INVALID_ARG, "sampler: no token of the vocabulary may come next (the grammar cannot go on)");
    if (s->p.temp <= 0) {
        s->probs[0] = 1.0f;
        *out_ids = s->ids, *out_p = s->probs, *out_n = 1;
        return SX_OK;
    }
    return finish(s, n, out_ids, out_p, out_n);
}

sx_status sx_sampler_sample_filtered(sx_sampler *s, const float *logits, const int32_t *history, int n_history, sx_token_filter allow, void *ctx,
                                     int32_t *out_token) {
    const int32_t *ids;
    const float *p;
    int n;
    SX_RETURN_IF_ERROR(sx_sampler_distribution_filtered(s, logits, history, n_history, allow, ctx, &ids, &p, &n));
    return draw(s, ids, p, n, out_token);
}

bool sx_sampler_takes_top(const sx_sampler *s, int k) {
    return s->p.temp > 0 && s->p.top_k > 0 && s->p.top_k <= k && s->p.top_k < s->n_vocab && s->p.repeat_penalty == 1.0f &&
           !s->p.n_logit_bias && !getenv("SPECEXIT_SAMPLE_FULL");
}

sx_status sx_sampler_distribution_top(sx_sampler *s, const int32_t *ids, const float *vals, int k, const int32_t **out_ids, const float **out_p,
                                      int *out_n) {
    if (!sx_sampler_takes_top(s, k)) return sx_set_error(SX_ERR_INVALID_ARG, "sampler: the top %d logits do not decide this distribution", k);
    const int n = s->p.top_k;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= s->n_vocab) return sx_set_error(SX_ERR_INVALID_ARG, "sampler: token id %d out of range", ids[i]);
        if (isnan(vals[i])) return sx_set_error(SX_ERR_INVALID_ARG, "sampler: logit %d is NaN", ids[i]);
        if (i > 0 && !(vals[i] < vals[i - 1] || (vals[i] == vals[i - 1] && ids[i] > ids[i - 1])))
            return sx_set_error(SX_ERR_INVALID_ARG, "sampler: the top logits are not in order at %d", i);
        s->ids[i] = ids[i];
        s->work[ids[i]] = vals[i]; /* the same values in the same places: finish() computes what the full row would give */
    }
    return finish(s, n, out_ids, out_p, out_n);
}

sx_status sx_sampler_sample_top(sx_sampler *s, const int32_t *ids, const float *vals, int k, int32_t *out_token) {
    const int32_t *cids;
    const float *p;
    int n;
    SX_RETURN_IF_ERROR(sx_sampler_distribution_top(s, ids, vals, k, &cids, &p, &n));
    return draw(s, cids, p, n, out_token);
}

/* Truncation after the candidates' order is known (ids[0..n) by logit,
 * values in work): top-p and min-p on the softmax at temperature 1 (as
 * llama.cpp), then the distribution at the temperature. */
static sx_status finish(sx_sampler *s, int n, const int32_t **out_ids, const float **out_p, int *out_n) {
    /* softmax at temperature 1 for top-p / min-p (as llama.cpp) */
    const float mx = s->work[s->ids[0]];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        s->probs[i] = expf(s->work[s->ids[i]] - mx);
        sum += s->probs[i];
    }
    if (s->p.top_p < 1.0f) {
        double cum = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += s->probs[i] / sum;
            if (cum >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (s->p.min_p > 0) {
        const float thr = s->probs[0] * s->p.min_p;
        int keep = 1;
        while (keep < n && s->probs[keep] >= thr) keep++;
        n = keep;
    }
    sum = 0;
    for (int i = 0; i < n; i++) {
        s->probs[i] = expf((s->work[s->ids[i]] - mx) / s->p.temp);
        sum += s->probs[i];
    }
    for (int i = 0; i < n; i++) s->probs[i] = (float)(s->probs[i] / sum);
    *out_ids = s->ids, *out_p = s->probs, *out_n = n;
    return SX_OK;
}

sx_status sx_sampler_sample(sx_sampler *s, const float *logits, const int32_t *history, int n_history, int32_t *out_token) {
    const int32_t *ids;
    const float *p;
    int n;
    SX_RETURN_IF_ERROR(sx_sampler_distribution(s, logits, history, n_history, &ids, &p, &n));
    return draw(s, ids, p, n, out_token);
}

/* an inverse-CDF draw over the distribution */
static sx_status draw(sx_sampler *s, const int32_t *ids, const float *p, int n, int32_t *out_token) {
    if (n == 1) {
        *out_token = ids[0];
        return SX_OK;
    }
    const double u = sx_rng_uniform(&s->rng);
    double cum = 0;
    for (int i = 0; i < n; i++) {
        cum += p[i];
        if (u < cum) {
            *out_token = ids[i];
            return SX_OK;
        }
    }
    *out_token = ids[n - 1];
    return SX_OK;
}
