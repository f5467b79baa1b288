/* tests/test_sampler.c — the token sampler (core/sampler.c), cmocka.
 *
 * The truncation order is llama.cpp's: repetition penalty, top-k, top-p,
 * min-p, temperature. The distribution is checked against a reference
 * written here the plain way (sort the whole vocabulary), element for
 * element and bit for bit, on logits with many ties; the sampler selects the
 * top k with a heap instead, which must not change a single id or
 * probability. Also: greedy, the penalty (once per distinct token), NaN
 * logits, seeded draws. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/sampler.h"

static const float *g_sort;

static int by_logit(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (g_sort[x] != g_sort[y]) return g_sort[x] > g_sort[y] ? -1 : 1;
    return (x > y) - (x < y);
}

/* The reference: the whole vocabulary sorted, then the same arithmetic
 * (softmax at temperature 1 in double for top-p and min-p, the final one at
 * the temperature) over the kept prefix. */
static int reference(const sx_sampler_params *p, const float *logits, int V, int32_t *ids, float *probs) {
    for (int i = 0; i < V; i++) ids[i] = i;
    g_sort = logits;
    qsort(ids, (size_t)V, sizeof *ids, by_logit);
    int n = p->top_k > 0 && p->top_k < V ? p->top_k : V;
    const float mx = logits[ids[0]];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += probs[i] = expf(logits[ids[i]] - mx);
    if (p->top_p < 1.0f) {
        double cum = 0;
        for (int i = 0; i < n; i++)
            if ((cum += probs[i] / sum) >= p->top_p) {
                n = i + 1;
                break;
            }
    }
    if (p->min_p > 0) {
        int keep = 1;
        while (keep < n && probs[keep] >= probs[0] * p->min_p) keep++;
        n = keep;
    }
    sum = 0;
    for (int i = 0; i < n; i++) sum += probs[i] = expf((logits[ids[i]] - mx) / p->temp);
    for (int i = 0; i < n; i++) probs[i] = (float)(probs[i] / sum);
    return n;
}

static uint64_t g_rng = 88172645463325252ull;
static uint32_t next_u32(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 32);
}

/* logits on a coarse grid (many exact ties), or smooth */
static void fill(float *l, int V, bool ties) {
    for (int i = 0; i < V; i++) l[i] = ties ? (float)(next_u32() % 24) * 0.5f - 6.0f : (float)(next_u32() % 2000000) * 1e-5f - 10.0f;
}

static void test_matches_full_sort(void **state) {
    (void)state;
    const int Vs[] = {1, 2, 7, 50, 1000, 49152};
    const int ks[] = {0, 1, 2, 3, 20, 40, 49, 50, 51, 999, 100000};
    const float tps[] = {1.0f, 0.95f, 0.5f}, mps[] = {0.0f, 0.05f}, temps[] = {0.8f, 0.6f, 1.3f};
    int checked = 0;
    for (size_t iv = 0; iv < sizeof Vs / sizeof *Vs; iv++) {
        const int V = Vs[iv];
        float *l = malloc(sizeof(float) * (size_t)V), *rp = malloc(sizeof(float) * (size_t)V);
        int32_t *rid = malloc(sizeof(int32_t) * (size_t)V);
        assert_non_null(l), assert_non_null(rp), assert_non_null(rid);
        for (int rep = 0; rep < 4; rep++) {
            fill(l, V, rep % 2 == 0);
            for (size_t ik = 0; ik < sizeof ks / sizeof *ks; ik++)
                for (size_t it = 0; it < 3; it++)
                    for (size_t im = 0; im < 2; im++) {
                        if (V > 1000 && (it != 0 || im != 1)) continue; /* the big vocabulary: the default cut only */
                        sx_sampler_params p;
                        sx_sampler_params_init(&p);
                        p.top_k = ks[ik], p.top_p = tps[it], p.min_p = mps[im], p.temp = temps[(ik + it) % 3], p.seed = 1;
                        sx_sampler *s;
                        assert_int_equal(sx_sampler_create(&p, V, &s), SX_OK);
                        const int32_t *ids;
                        const float *pr;
                        int n;
                        assert_int_equal(sx_sampler_distribution(s, l, NULL, 0, &ids, &pr, &n), SX_OK);
                        const int rn = reference(&p, l, V, rid, rp);
                        assert_int_equal(n, rn);
                        assert_memory_equal(ids, rid, sizeof(int32_t) * (size_t)n);
                        assert_memory_equal(pr, rp, sizeof(float) * (size_t)n); /* bit for bit */
                        sx_sampler_destroy(s);
                        checked++;
                    }
        }
        free(l), free(rp), free(rid);
    }
    assert_true(checked > 500);
}

static void test_greedy_and_ties(void **state) {
    (void)state;
    sx_sampler_params p;
    sx_sampler_params_init(&p);
    p.temp = 0;
    sx_sampler *s;
    assert_int_equal(sx_sampler_create(&p, 6, &s), SX_OK);
    const float l[6] = {1, 3, 2, 3, -1, 0};
    int32_t t;
    assert_int_equal(sx_sampler_sample(s, l, NULL, 0, &t), SX_OK);
    assert_int_equal(t, 1); /* the lowest id of the tie */
    sx_sampler_destroy(s);
    /* top-k 2 at a tie for second place keeps the lower id */
    sx_sampler_params_init(&p);
    p.top_k = 2, p.top_p = 1, p.min_p = 0, p.temp = 1;
    assert_int_equal(sx_sampler_create(&p, 6, &s), SX_OK);
    const float l2[6] = {0, 5, 2, 9, 5, 5};
    const int32_t *ids;
    const float *pr;
    int n;
    assert_int_equal(sx_sampler_distribution(s, l2, NULL, 0, &ids, &pr, &n), SX_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 3);
    assert_int_equal(ids[1], 1);
    assert_float_equal(pr[0], 1.0 / (1.0 + exp(-4.0)), 1e-6);
    sx_sampler_destroy(s);
}

static void test_penalty_once_per_token(void **state) {
    (void)state;
    sx_sampler_params p;
    sx_sampler_params_init(&p);
    p.top_k = 0, p.top_p = 1, p.min_p = 0, p.temp = 1, p.repeat_penalty = 2.0f, p.repeat_last_n = 3;
    sx_sampler *s;
    assert_int_equal(sx_sampler_create(&p, 4, &s), SX_OK);
    const float l[4] = {4, -2, 1, 0};
    const int32_t hist[5] = {2, 0, 1, 1, 1}; /* the last 3: token 1 three times, penalised once */
    const int32_t *ids;
    const float *pr;
    int n;
    assert_int_equal(sx_sampler_distribution(s, l, hist, 5, &ids, &pr, &n), SX_OK);
    assert_int_equal(n, 4);
    float want[4] = {4, -4, 1, 0}; /* positive logits divided, negative multiplied; 0 and 2 are out of the window */
    double z = 0;
    for (int i = 0; i < 4; i++) z += exp(want[i] - 4.0);
    for (int i = 0; i < n; i++) assert_float_equal(pr[i], exp(want[ids[i]] - 4.0) / z, 1e-6);
    assert_int_equal(ids[3], 1);
    sx_sampler_destroy(s);
}

/* logit bias: the distribution of the biased logits, bit for bit; -inf bans a
 * token even from greedy; ids out of the vocabulary and +inf are errors */
static void test_logit_bias(void **state) {
    (void)state;
    enum { V = 50 };
    float logits[V], biased[V];
    for (int i = 0; i < V; i++) logits[i] = biased[i] = (float)((i * 37) % 11) * 0.5f;
    const int32_t ids[] = {3, 7, 10};
    const float vals[] = {10.0f, -INFINITY, -1.0f};
    for (int k = 0; k < 3; k++) biased[ids[k]] += vals[k];
    const float temps[] = {0.0f, 0.9f};
    for (int t = 0; t < 2; t++) {
        sx_sampler_params p;
        sx_sampler_params_init(&p);
        p.temp = temps[t], p.top_k = 0, p.top_p = 1, p.min_p = 0, p.seed = 1;
        sx_sampler *plain, *bias;
        assert_int_equal(sx_sampler_create(&p, V, &plain), SX_OK);
        p.n_logit_bias = 3, p.bias_ids = ids, p.bias_vals = vals;
        assert_int_equal(sx_sampler_create(&p, V, &bias), SX_OK);
        assert_false(sx_sampler_argmax_only(bias)); /* greedy with a bias needs the row */
        const int32_t *i1, *i2;
        const float *p1, *p2;
        int n1, n2;
        assert_int_equal(sx_sampler_distribution(bias, logits, NULL, 0, &i1, &p1, &n1), SX_OK);
        assert_int_equal(sx_sampler_distribution(plain, biased, NULL, 0, &i2, &p2, &n2), SX_OK);
        assert_int_equal(n1, n2);
        for (int i = 0; i < n1; i++) {
            assert_int_equal(i1[i], i2[i]);
            assert_memory_equal(&p1[i], &p2[i], sizeof(float));
            assert_true(i1[i] != 7 || p1[i] == 0.0f); /* banned */
        }
        if (temps[t] == 0) assert_int_equal(i1[0], 3); /* the bias made it the argmax */
        sx_sampler_destroy(plain);
        sx_sampler_destroy(bias);
    }
    sx_sampler_params p;
    sx_sampler_params_init(&p);
    sx_sampler *s = NULL;
    const int32_t bad_id[] = {V};
    const float one[] = {1.0f}, pinf[] = {INFINITY};
    p.n_logit_bias = 1, p.bias_ids = bad_id, p.bias_vals = one;
    assert_int_equal(sx_sampler_create(&p, V, &s), SX_ERR_INVALID_ARG);
    p.bias_ids = ids, p.bias_vals = pinf;
    assert_int_equal(sx_sampler_create(&p, V, &s), SX_ERR_INVALID_ARG);
    assert_null(s);
}

static void test_nan_is_an_error(void **state) {
    (void)state;
    sx_sampler_params p;
    sx_sampler_params_init(&p);
    sx_sampler *s;
    assert_int_equal(sx_sampler_create(&p, 3, &s), SX_OK);
    const float l[3] = {1, NAN, 0};
    int32_t t;
    assert_int_equal(sx_sampler_sample(s, l, NULL, 0, &t), SX_ERR_INVALID_ARG);
    sx_sampler_destroy(s);
}

/* same seed, same draws; the draws follow the distribution */
static void test_seeded_draws(void **state) {
    (void)state;
    sx_sampler_params p;
    sx_sampler_params_init(&p);
    p.top_k = 3, p.top_p = 1, p.min_p = 0, p.temp = 1, p.seed = 42;
    const float l[5] = {0, (float)log(2.0), -50, (float)log(5.0), -60}; /* kept: 3 (5/8), 1 (2/8), 0 (1/8) */
    sx_sampler *a, *b;
    assert_int_equal(sx_sampler_create(&p, 5, &a), SX_OK);
    assert_int_equal(sx_sampler_create(&p, 5, &b), SX_OK);
    int count[5] = {0};
    const int N = 20000;
    for (int i = 0; i < N; i++) {
        int32_t x, y;
        assert_int_equal(sx_sampler_sample(a, l, NULL, 0, &x), SX_OK);
        assert_int_equal(sx_sampler_sample(b, l, NULL, 0, &y), SX_OK);
        assert_int_equal(x, y);
        count[x]++;
    }
    assert_int_equal(count[2] + count[4], 0);
    const double want[5] = {1.0 / 8, 2.0 / 8, 0, 5.0 / 8, 0};
    for (int i = 0; i < 5; i++) assert_true(fabs(count[i] / (double)N - want[i]) < 0.015); /* > 5 sigma at N = 20000 */
    sx_sampler_destroy(a), sx_sampler_destroy(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_full_sort), cmocka_unit_test(test_greedy_and_ties), cmocka_unit_test(test_penalty_once_per_token),
        cmocka_unit_test(test_nan_is_an_error), cmocka_unit_test(test_seeded_draws), cmocka_unit_test(test_logit_bias),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
