/* tests/test_exit.c — the exit policies on scripted signal traces and token
 * streams (cmocka). The vocabulary is a tiny model's (argv[1] via
 * SX_TINY_MODEL): byte-level BPE with "\n\n" as one token, <think>, </think>. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/exit.h"
#include "core/gguf.h"

sx_status sx_tokenizer_from_gguf(const sx_gguf *g, sx_tokenizer **out);

static sx_tokenizer *g_tok;
static int32_t T_OPEN, T_CLOSE, T_DELIM, T_A, T_B;

static int32_t tok1(const char *s) {
    int32_t *ids = NULL;
    int64_t n = 0;
    assert_int_equal(sx_tokenizer_encode(g_tok, s, strlen(s), false, true, &ids, &n), SX_OK);
    assert_int_equal(n, 1);
    int32_t id = ids[0];
    free(ids);
    return id;
}

static int setup(void **state) {
    (void)state;
    const char *path = getenv("SX_TINY_MODEL");
    if (!path) return -1;
    sx_gguf *g;
    if (sx_gguf_open(path, &g) != SX_OK) return -1;
    sx_status s = sx_tokenizer_from_gguf(g, &g_tok);
    sx_gguf_close(g);
    if (s != SX_OK) return -1;
    T_OPEN = tok1("<think>"), T_CLOSE = tok1("</think>"), T_DELIM = tok1("\n\n"), T_A = tok1("a"), T_B = tok1("b");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    sx_tokenizer_destroy(g_tok);
    return 0;
}

static void init_state(sx_exit_state *st, sx_exit_kind kind, int budget) {
    sx_generate_params gp;
    sx_generate_params_init(&gp);
    gp.exit.kind = kind;
    gp.exit.reasoning_budget = budget;
    const int32_t prompt[] = {T_A, T_OPEN};
    assert_int_equal(sx_exit_init(st, &gp.exit, g_tok, prompt, 2), SX_OK);
    assert_true(st->thinking);
    assert_true(st->n_delims >= 1);
}

static const float HIGH[3] = {0.99f, 0.9f, 10.0f}, LOW[3] = {0.1f, 0.1f, 500.0f};

static void test_exits_only_at_a_delimiter(void **state) {
    (void)state;
    sx_exit_state st;
    init_state(&st, SX_EXIT_SPECEXIT, -1);
    sx_exit_observe(&st, HIGH);
    int32_t no_delim[4] = {T_A, T_B, T_A, T_B};
    assert_int_equal(sx_exit_apply(&st, no_delim, 4, true), 4);
    assert_false(st.exited);
    int32_t with[5] = {T_A, T_DELIM, T_A, T_DELIM, T_B}; /* cut after the FIRST delimiter */
    assert_int_equal(sx_exit_apply(&st, with, 5, true), 3);
    assert_int_equal(with[1], T_DELIM);
    assert_int_equal(with[2], T_CLOSE);
    assert_true(st.exited);
    assert_string_equal(st.reason, "signals");
}

static void test_bonus_delimiter_is_not_a_cut_point(void **state) {
    (void)state;
    sx_exit_state st;
    init_state(&st, SX_EXIT_SPECEXIT, -1);
    sx_exit_observe(&st, HIGH);
    int32_t t[3] = {T_A, T_B, T_DELIM}; /* the delimiter is the bonus: not an accepted token */
    assert_int_equal(sx_exit_apply(&st, t, 3, true), 3);
    assert_false(st.exited);
}

static void test_only_while_thinking(void **state) {
    (void)state;
    sx_exit_state st;
    init_state(&st, SX_EXIT_SPECEXIT, -1);
    sx_exit_observe(&st, HIGH);
    sx_exit_account(&st, T_CLOSE); /* the model closed the section itself */
    assert_false(st.thinking);
    assert_string_equal(st.reason, "natural");
    int32_t t[3] = {T_A, T_DELIM, T_B};
    assert_int_equal(sx_exit_apply(&st, t, 3, true), 3);
    assert_false(st.exited);
    /* signals are not updated outside thinking */
    float before = st.ewma[0];
    sx_exit_observe(&st, LOW);
    assert_true(st.ewma[0] == before);
}

static void test_every_threshold(void **state) {
    (void)state;
    const float cases[][3] = {{0.8f, 0.9f, 10}, {0.95f, 0.3f, 10}, {0.95f, 0.9f, 200}}; /* each sits exactly on its threshold */
    for (int c = 0; c < 3; c++) {
        sx_exit_state st;
        init_state(&st, SX_EXIT_SPECEXIT, -1);
        sx_exit_observe(&st, cases[c]);
        int32_t t[3] = {T_A, T_DELIM, T_B};
        assert_int_equal(sx_exit_apply(&st, t, 3, true), 3);
        assert_false(st.exited);
    }
    /* custom thresholds are honoured */
    sx_exit_state st;
    init_state(&st, SX_EXIT_SPECEXIT, -1);
    st.p.conf = 0.5f, st.p.progress = 0.05f, st.p.remain = 600;
    sx_exit_observe(&st, (const float[3]){0.6f, 0.1f, 500});
    int32_t t[3] = {T_A, T_DELIM, T_B};
    assert_int_equal(sx_exit_apply(&st, t, 3, true), 3);
    assert_true(st.exited);
    assert_int_equal(t[2], T_CLOSE);
}

static void test_natural_end_wins(void **state) {
    (void)state;
    sx_exit_state st;
    init_state(&st, SX_EXIT_SPECEXIT, -1);
    sx_exit_observe(&st, HIGH);
    int32_t t[5] = {T_A, T_DELIM, T_CLOSE, T_B, T_A};
    assert_int_equal(sx_exit_apply(&st, t, 5, true), 5);
    assert_false(st.exited);
    assert_int_equal(t[3], T_B);
}

static void test_ewma_and_lag(void **state) {
    (void)state;
    sx_exit_state st;
    init_state(&st, SX_EXIT_SPECEXIT, -1);
    sx_exit_observe(&st, LOW); /* first value initialises */
    assert_float_equal(st.ewma[0], 0.1f, 1e-6);
    sx_exit_observe(&st, HIGH); /* 0.1 * 0.99 + 0.9 * 0.1 */
    assert_float_equal(st.ewma[0], 0.1f * 0.99f + 0.9f * 0.1f, 1e-6);
    /* confidence needs many confident steps to pass 0.8: the decision uses what was observed before it */
    int steps = 0;
    for (; steps < 100; steps++) {
        int32_t t[3] = {T_A, T_DELIM, T_B};
        sx_exit_apply(&st, t, 3, true);
        if (st.exited) break;
        sx_exit_observe(&st, HIGH);
    }
    assert_true(st.exited);
    print_message("exited after %d confident steps\n", steps);
    assert_true(steps >= 10 && steps < 40);
}

static void test_budget(void **state) {
    (void)state;
    sx_exit_state st;
    init_state(&st, SX_EXIT_BUDGET, 5);
    for (int i = 0; i < 3; i++) sx_exit_account(&st, T_A);
    int32_t t[4] = {T_A, T_B, T_A, T_B}; /* 2 more allowed: keep t0, t1, then </think> */
    assert_int_equal(sx_exit_apply(&st, t, 4, true), 3);
    assert_int_equal(t[2], T_CLOSE);
    assert_string_equal(st.reason, "budget");
    /* budget reached exactly at the bonus: the next token is forced */
    init_state(&st, SX_EXIT_BUDGET, 2);
    int32_t u[2] = {T_A, T_B};
    assert_int_equal(sx_exit_apply(&st, u, 2, true), 2);
    assert_true(st.force_end_next);
    sx_exit_account(&st, u[0]), sx_exit_account(&st, u[1]);
    int32_t v[3] = {T_A, T_B, T_A};
    assert_int_equal(sx_exit_apply(&st, v, 3, true), 1);
    assert_int_equal(v[0], T_CLOSE);
    /* budget 0: no thinking at all */
    init_state(&st, SX_EXIT_BUDGET, 0);
    int32_t w[1] = {T_A};
    assert_int_equal(sx_exit_apply(&st, w, 1, false), 1);
    assert_int_equal(w[0], T_CLOSE);
}

static void test_first_answer(void **state) {
    (void)state;
    sx_exit_state st;
    init_state(&st, SX_EXIT_FIRST_ANSWER, -1);
    const char *text = "So the answer is 69.";
    int32_t *ids = NULL;
    int64_t n = 0;
    assert_int_equal(sx_tokenizer_encode(g_tok, text, strlen(text), false, false, &ids, &n), SX_OK);
    for (int64_t i = 0; i < n; i++) sx_exit_account(&st, ids[i]);
    free(ids);
    int32_t t[3] = {T_DELIM, T_A, T_B};
    assert_int_equal(sx_exit_apply(&st, t, 3, true), 2);
    assert_int_equal(t[1], T_CLOSE);
    assert_string_equal(st.reason, "first-answer");
    /* without an answer stated, no exit */
    init_state(&st, SX_EXIT_FIRST_ANSWER, -1);
    int32_t u[3] = {T_DELIM, T_A, T_B};
    assert_int_equal(sx_exit_apply(&st, u, 3, true), 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exits_only_at_a_delimiter), cmocka_unit_test(test_bonus_delimiter_is_not_a_cut_point),
        cmocka_unit_test(test_only_while_thinking),       cmocka_unit_test(test_every_threshold),
        cmocka_unit_test(test_natural_end_wins),          cmocka_unit_test(test_ewma_and_lag),
        cmocka_unit_test(test_budget),                    cmocka_unit_test(test_first_answer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
