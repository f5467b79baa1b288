/* tests/test_grammar.c — constrained generation's pieces (cmocka): the GBNF
 * parser and its errors, the matcher (classes, repetition bounds, recursion,
 * UTF-8 characters split between tokens), the JSON object grammar, the JSON
 * Schema converter (instances accepted and refused; unsupported keywords are
 * errors), and the sampler's filtered distribution against the plain one on
 * logits with the refused tokens set to -inf, bit for bit. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/grammar.h"
#include "core/sampler.h"

static sx_grammar *compile(const char *text) {
    sx_grammar *g = NULL;
    const sx_status st = sx_grammar_parse(text, &g);
    if (st != SX_OK) fprintf(stderr, "grammar error: %s\n", sx_last_error());
    assert_int_equal(st, SX_OK);
    return g;
}

/* the whole string taken, in pieces of `step` bytes; 1 = accepted and a whole sentence, 0 = taken but unfinished, -1 = refused */
static int match(const sx_grammar *g, const char *s, size_t step) {
    sx_gmatch *m;
    assert_int_equal(sx_gmatch_create(g, &m), SX_OK);
    const size_t n = strlen(s);
    int r = 0;
    for (size_t i = 0; i < n; i += step) {
        const size_t k = n - i < step ? n - i : step;
        const bool allowed = sx_gmatch_allows(m, s + i, k);
        const bool taken = sx_gmatch_accept(m, s + i, k);
        assert_int_equal(allowed, taken); /* allows() predicts accept() */
        if (!taken) {
            r = -1;
            break;
        }
    }
    if (r == 0) r = sx_gmatch_can_end(m) ? 1 : 0;
    sx_gmatch_destroy(m);
    return r;
}

static void expect_error(const char *text, const char *needle) {
    sx_grammar *g = NULL;
    assert_int_equal(sx_grammar_parse(text, &g), SX_ERR_INVALID_ARG);
    assert_null(g);
    if (!strstr(sx_last_error(), needle)) fail_msg("error '%s' does not mention '%s'", sx_last_error(), needle);
}

static void test_parse_errors(void **state) {
    (void)state;
    expect_error("a ::= \"x\"\n", "no 'root' rule");
    expect_error("root ::= foo\n", "line 1 col 10: undefined rule 'foo'");
    expect_error("root ::= root \"a\" | \"b\"\n", "left-recursive");
    expect_error("root ::= x root\nx ::= \"a\"?\n", "left-recursive"); /* through a rule that can be empty */
    expect_error("root ::= \"a\\q\"\n", "unknown escape");
    expect_error("root ::= \"abc\n", "unterminated");
    expect_error("root ::= \"a\"{3,1}\n", "n < m");
    expect_error("root ::= *\n", "nothing to repeat");
    expect_error("root ::= [b-a]\n", "out of order");
    expect_error("root ::= \"a\"\nroot ::= \"b\"\n", "defined twice");
    expect_error("root ::= ( \"a\" \n", "expected ')'");
    expect_error("\n\nroot = \"a\"\n", "line 3 col 6: expected '::='");
    assert_int_equal(sx_grammar_validate("root ::= \"a\" # a comment\n  | [b-c]+ # another\n"), SX_OK);
}

static void test_match_basic(void **state) {
    (void)state;
    sx_grammar *g = compile("root ::= \"a\" [0-9]+ (\"x\" | \"yz\")?\n");
    assert_int_equal(match(g, "a1", 1), 1);
    assert_int_equal(match(g, "a123yz", 2), 1);
    assert_int_equal(match(g, "a", 1), 0);
    assert_int_equal(match(g, "a1y", 1), 0);
    assert_int_equal(match(g, "b", 1), -1);
    assert_int_equal(match(g, "ax", 1), -1);
    assert_int_equal(match(g, "a1xx", 1), -1);
    sx_grammar_destroy(g);

    g = compile("root ::= \"a\"{2,3} \"-\"{1,} [^a-z]? .\n");
    assert_int_equal(match(g, "aa-z", 1), 1);
    assert_int_equal(match(g, "aaa---Q\xc3\xa9", 1), 1); /* [^a-z] then any character */
    assert_int_equal(match(g, "a-z", 1), -1);
    assert_int_equal(match(g, "aaaa-z", 1), -1);
    assert_int_equal(match(g, "aa-", 1), 0);
    sx_grammar_destroy(g);

    /* must_end: nothing may follow */
    g = compile("root ::= \"ok\"\n");
    sx_gmatch *m;
    assert_int_equal(sx_gmatch_create(g, &m), SX_OK);
    assert_false(sx_gmatch_must_end(m));
    assert_true(sx_gmatch_accept(m, "ok", 2));
    assert_true(sx_gmatch_must_end(m));
    assert_false(sx_gmatch_allows(m, "k", 1));
    sx_gmatch_reset(m);
    assert_false(sx_gmatch_can_end(m));
    sx_gmatch_destroy(m);
    sx_grammar_destroy(g);
}

static void test_match_recursion(void **state) {
    (void)state;
    sx_grammar *g = compile("root ::= \"(\" root \")\" | \"x\"\n");
    assert_int_equal(match(g, "((((x))))", 1), 1);
    assert_int_equal(match(g, "((x)", 1), 0);
    assert_int_equal(match(g, "((x)))", 1), -1);
    sx_grammar_destroy(g);
    /* long repetition runs in constant depth (a tail call): 20000 characters */
    g = compile("root ::= [a-c]* \"!\"\n");
    char *s = malloc(20002);
    for (int i = 0; i < 20000; i++) s[i] = (char)('a' + i % 3);
    s[20000] = '!', s[20001] = 0;
    assert_int_equal(match(g, s, 7), 1);
    free(s);
    sx_grammar_destroy(g);
}

/* A pathologically ambiguous grammar (found by fuzz_grammar): the stacks it
 * needs grow without bound, so the matcher gives up, says so, and takes
 * bounded time per call; an unambiguous one over the same text does not. */
static void test_match_ambiguous(void **state) {
    (void)state;
    sx_grammar *g = compile("root ::= [a-z] | . root*\n");
    sx_gmatch *m;
    assert_int_equal(sx_gmatch_create(g, &m), SX_OK);
    bool gave_up = false;
    for (int i = 0; i < 400 && !gave_up; i++) {
        if (!sx_gmatch_accept(m, "ab", 2)) {
            assert_true(sx_gmatch_failed(m)); /* not a refusal: out of room */
            gave_up = true;
        }
    }
    assert_true(gave_up);
    sx_gmatch_destroy(m);
    sx_grammar_destroy(g);
    g = compile("root ::= [a-z]*\n");
    assert_int_equal(sx_gmatch_create(g, &m), SX_OK);
    for (int i = 0; i < 400; i++) assert_true(sx_gmatch_accept(m, "ab", 2));
    assert_false(sx_gmatch_accept(m, "!", 1));
    assert_false(sx_gmatch_failed(m)); /* a refusal */
    sx_gmatch_destroy(m);
    sx_grammar_destroy(g);
}

static void test_match_utf8(void **state) {
    (void)state;
    sx_grammar *g = compile("root ::= [\\u03b1-\\u03c9]+ \"!\"\n"); /* Greek small letters */
    assert_int_equal(match(g, "\xce\xb1\xce\xb2!", 1), 1);          /* byte by byte: each character split */
    assert_int_equal(match(g, "\xce\xb1\xce\xb2!", 3), 1);
    sx_gmatch *m;
    assert_int_equal(sx_gmatch_create(g, &m), SX_OK);
    assert_false(sx_gmatch_allows(m, "\xe4", 1));     /* a 3-byte lead: U+4000..U+4FFF, no Greek there */
    assert_false(sx_gmatch_allows(m, "\x80", 1));     /* a stray continuation byte */
    assert_true(sx_gmatch_accept(m, "\xce", 1));      /* U+0380..U+03BF: some are Greek letters */
    assert_false(sx_gmatch_can_end(m));
    assert_false(sx_gmatch_allows(m, "\x80", 1));     /* U+0380: not in the class */
    assert_true(sx_gmatch_accept(m, "\xb1!", 2));
    assert_true(sx_gmatch_can_end(m));
    sx_gmatch_destroy(m);
    sx_grammar_destroy(g);
    /* only well-formed UTF-8: no overlong forms (a vocabulary of byte tokens could spell '{' as F0 80 81 BB), no surrogates */
    g = compile("root ::= \"{\" [^\"]*\n");
    assert_int_equal(match(g, "{\xc3\xa9", 1), 1);
    assert_int_equal(match(g, "\xf0\x80\x81\xbb", 4), -1);
    assert_int_equal(match(g, "\xf0\x80", 2), -1);   /* already overlong as a prefix: F0 needs a second byte >= 0x90 */
    assert_int_equal(match(g, "\xc1\xbb", 1), -1);
    assert_int_equal(match(g, "{\xed\xa0\x80", 1), -1); /* U+D800 */
    assert_int_equal(match(g, "{\xf4\x90\x80\x80", 1), -1); /* above U+10FFFF */
    assert_int_equal(match(g, "{\xf0\x9f\x98", 1), 0);  /* an emoji in progress */
    sx_grammar_destroy(g);
}

static void test_json_object(void **state) {
    (void)state;
    sx_grammar *g = compile(sx_grammar_json());
    assert_int_equal(match(g, "{\"a\": [1, 2.5e3, \"x\\n\\u00e9\", true, null, {}], \"b\": -0}", 3), 1);
    assert_int_equal(match(g, "{}", 1), 1);
    assert_int_equal(match(g, "{\n  \"k\": \"v\"\n}", 1), 1);
    assert_int_equal(match(g, "{\"a\" 1}", 1), -1);
    assert_int_equal(match(g, "{'a': 1}", 1), -1);
    assert_int_equal(match(g, "[1]", 1), -1);      /* an object, not any value */
    assert_int_equal(match(g, "{\"a\": 01}", 1), -1);
    assert_int_equal(match(g, "{\"a\": \"\x01\"}", 1), -1); /* control characters must be escaped */
    assert_int_equal(match(g, "{\"a\": [1,", 1), 0);
    sx_grammar_destroy(g);
}

static sx_grammar *from_schema(const char *schema) {
    char *gbnf = NULL;
    const sx_status st = sx_json_schema_to_grammar(schema, &gbnf);
    if (st != SX_OK) fprintf(stderr, "schema error: %s\n", sx_last_error());
    assert_int_equal(st, SX_OK);
    sx_grammar *g = compile(gbnf);
    free(gbnf);
    return g;
}

static void test_json_schema(void **state) {
    (void)state;
    sx_grammar *g = from_schema(
        "{\"type\": \"object\", \"title\": \"person\","
        " \"properties\": {"
        "   \"name\": {\"type\": \"string\", \"maxLength\": 5, \"description\": \"short\"},"
        "   \"age\": {\"type\": \"integer\"},"
        "   \"tags\": {\"type\": \"array\", \"items\": {\"enum\": [\"a\", \"b\"]}, \"minItems\": 1, \"maxItems\": 2},"
        "   \"kid\": {\"$ref\": \"#/$defs/node\"},"
        "   \"score\": {\"type\": [\"number\", \"null\"]}},"
        " \"required\": [\"name\", \"age\"],"
        " \"$defs\": {\"node\": {\"type\": \"object\", \"properties\": {\"next\": {\"anyOf\": [{\"$ref\": \"#/$defs/node\"}, {\"type\": \"null\"}]}},"
        "                       \"required\": [\"next\"]}}}");
    assert_int_equal(match(g, "{\"name\": \"bob\", \"age\": 3}", 1), 1);
    assert_int_equal(match(g, "{\"name\":\"bob\",\"age\":-3,\"tags\":[\"a\", \"b\"]}", 2), 1);
    assert_int_equal(match(g, "{\"name\": \"\", \"age\": 0, \"kid\": {\"next\": {\"next\": null}}, \"score\": 1.5}", 1), 1);
    assert_int_equal(match(g, "{\"name\": \"b\", \"age\": 1, \"score\": null}", 1), 1);
    assert_int_equal(match(g, "{\"name\": \"toolong\", \"age\": 1}", 1), -1);
    assert_int_equal(match(g, "{\"name\": \"b\", \"age\": 1.5}", 1), -1);
    assert_int_equal(match(g, "{\"name\": \"b\", \"age\": 1, \"tags\": []}", 1), -1);
    assert_int_equal(match(g, "{\"name\": \"b\", \"age\": 1, \"tags\": [\"a\", \"a\", \"a\"]}", 1), -1);
    assert_int_equal(match(g, "{\"name\": \"b\", \"age\": 1, \"tags\": [\"c\"]}", 1), -1);
    assert_int_equal(match(g, "{\"name\": \"b\"}", 1), -1);           /* age is required */
    assert_int_equal(match(g, "{\"name\": \"b\", \"age\": 1, \"x\": 1}", 1), -1); /* no other keys */
    assert_int_equal(match(g, "{\"age\": 1, \"name\": \"b\"}", 1), -1); /* properties come in the schema's order */
    sx_grammar_destroy(g);

    g = from_schema("{\"type\": \"array\", \"prefixItems\": [{\"const\": \"x\"}, {\"type\": \"boolean\"}]}");
    assert_int_equal(match(g, "[\"x\", false]", 1), 1);
    assert_int_equal(match(g, "[\"y\", false]", 1), -1);
    sx_grammar_destroy(g);

    g = from_schema("{\"additionalProperties\": {\"type\": \"integer\"}, \"type\": \"object\"}");
    assert_int_equal(match(g, "{\"anything\": 1, \"else\": 2}", 1), 1);
    assert_int_equal(match(g, "{\"anything\": \"1\"}", 1), -1);
    sx_grammar_destroy(g);

    g = from_schema("{}");
    assert_int_equal(match(g, "[1, {\"a\": null}]", 1), 1);
    sx_grammar_destroy(g);

    char *out = NULL;
    assert_int_equal(sx_json_schema_to_grammar("{\"type\": \"string\", \"pattern\": \"a+\"}", &out), SX_ERR_UNSUPPORTED);
    assert_non_null(strstr(sx_last_error(), "pattern"));
    assert_int_equal(sx_json_schema_to_grammar("{\"type\": \"integer\", \"minimum\": 3}", &out), SX_ERR_UNSUPPORTED);
    assert_int_equal(sx_json_schema_to_grammar("{\"type\": \"object\"", &out), SX_ERR_INVALID_ARG);
    assert_int_equal(sx_json_schema_to_grammar("{\"type\": \"strin\"}", &out), SX_ERR_INVALID_ARG);
    assert_int_equal(sx_json_schema_to_grammar("{\"$ref\": \"#/$defs/none\"}", &out), SX_ERR_INVALID_ARG);
    assert_int_equal(sx_json_schema_to_grammar("{\"$ref\": \"https://example.com/s.json\"}", &out), SX_ERR_UNSUPPORTED);
    assert_int_equal(sx_json_schema_to_grammar("{\"properties\": {\"a\": {}}, \"required\": [\"b\"]}", &out), SX_ERR_INVALID_ARG);
    assert_null(out);
}

static void test_tools_grammar(void **state) {
    (void)state;
    const char *tools = "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
                        "\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}},"
                        "{\"type\":\"function\",\"function\":{\"name\":\"now\"}}]";
    const char *weather = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
    const char *now = "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>";
    char *gbnf = NULL, both[512];
    snprintf(both, sizeof both, "%s\n%s", weather, now);
    assert_int_equal(sx_tools_grammar(tools, NULL, true, &gbnf), SX_OK);
    sx_grammar *g = compile(gbnf);
    free(gbnf);
    assert_int_equal(match(g, weather, 3), 1);
    assert_int_equal(match(g, now, 1), 1);
    assert_int_equal(match(g, both, 2), 1); /* parallel calls */
    assert_int_equal(match(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>", 1), -1); /* city is required */
    assert_int_equal(match(g, "<tool_call>\n{\"name\": \"other\", \"arguments\": {}}\n</tool_call>", 1), -1);
    assert_int_equal(match(g, "Sure! <tool_call>", 1), -1);
    sx_grammar_destroy(g);
    assert_int_equal(sx_tools_grammar(tools, "now", false, &gbnf), SX_OK); /* one named function, one call */
    g = compile(gbnf);
    free(gbnf);
    assert_int_equal(match(g, now, 1), 1);
    assert_int_equal(match(g, weather, 1), -1);
    snprintf(both, sizeof both, "%s\n%s", now, now);
    assert_int_equal(match(g, both, 1), -1);
    sx_grammar_destroy(g);
    assert_int_equal(sx_tools_call_grammar(tools, &gbnf), SX_OK); /* a lazy grammar's: one call's body after <tool_call> */
    g = compile(gbnf);
    free(gbnf);
    assert_int_equal(match(g, weather + strlen("<tool_call>"), 1), 1);
    assert_int_equal(match(g, weather, 1), -1);
    sx_grammar_destroy(g);
    assert_int_equal(sx_tools_grammar(tools, "missing", true, &gbnf), SX_ERR_INVALID_ARG);
    assert_int_equal(sx_tools_grammar("[]", NULL, true, &gbnf), SX_ERR_INVALID_ARG);
    assert_int_equal(sx_tools_grammar("[{\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"string\",\"pattern\":\"x\"}}}]", NULL, true, &gbnf),
                     SX_ERR_UNSUPPORTED);
    assert_null(gbnf);
}

/* ---- the filtered sampler ---- */
static bool even_only(void *ctx, int32_t t) {
    (*(int *)ctx)++;
    return t % 2 == 0;
}

static bool none_allowed(void *ctx, int32_t t) {
    (void)ctx, (void)t;
    return false;
}

static void test_sampler_filtered(void **state) {
    (void)state;
    enum { V = 300 };
    float logits[V], masked[V];
    uint64_t x = 12345;
    for (int i = 0; i < V; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        logits[i] = (float)((x >> 40) % 64) / 8.0f; /* many ties */
        masked[i] = i % 2 == 0 ? logits[i] : -INFINITY;
    }
    const int top_ks[] = {0, 1, 5, 40, 299};
    const float temps[] = {0.0f, 0.7f, 1.3f};
    for (size_t a = 0; a < sizeof top_ks / sizeof *top_ks; a++)
        for (size_t b = 0; b < sizeof temps / sizeof *temps; b++) {
            sx_sampler_params p;
            sx_sampler_params_init(&p);
            p.top_k = top_ks[a], p.temp = temps[b], p.top_p = 0.9f, p.min_p = 0.02f, p.seed = 7;
            sx_sampler *s1, *s2;
            assert_int_equal(sx_sampler_create(&p, V, &s1), SX_OK);
            assert_int_equal(sx_sampler_create(&p, V, &s2), SX_OK);
            const int32_t *i1, *i2;
            const float *p1, *p2;
            int n1, n2, calls = 0;
            assert_int_equal(sx_sampler_distribution_filtered(s1, logits, NULL, 0, even_only, &calls, &i1, &p1, &n1), SX_OK);
            assert_int_equal(sx_sampler_distribution(s2, masked, NULL, 0, &i2, &p2, &n2), SX_OK);
            assert_int_equal(n1, n2);
            for (int i = 0; i < n1; i++) {
                assert_int_equal(i1[i], i2[i]);
                assert_memory_equal(&p1[i], &p2[i], sizeof(float));
            }
            /* the cost follows the refused tokens: top-k stops once k are allowed */
            if (top_ks[a] > 0 && top_ks[a] < 100) assert_true(calls <= 2 * top_ks[a] + 2);
            sx_sampler_destroy(s1);
            sx_sampler_destroy(s2);
        }
    sx_sampler_params p;
    sx_sampler_params_init(&p);
    sx_sampler *s;
    assert_int_equal(sx_sampler_create(&p, V, &s), SX_OK);
    int32_t tok;
    assert_int_equal(sx_sampler_sample_filtered(s, logits, NULL, 0, none_allowed, NULL, &tok), SX_ERR_INVALID_ARG);
    sx_sampler_destroy(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors), cmocka_unit_test(test_match_basic),  cmocka_unit_test(test_match_recursion),
        cmocka_unit_test(test_match_utf8),   cmocka_unit_test(test_match_ambiguous),   cmocka_unit_test(test_json_object),  cmocka_unit_test(test_json_schema),
        cmocka_unit_test(test_tools_grammar),      cmocka_unit_test(test_sampler_filtered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
