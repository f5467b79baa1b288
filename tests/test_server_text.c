/* tests/test_server_text.c — the server's text assembler (UTF-8 completion,
 * reasoning split at </think>, stop strings) and its request parser. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "tools/server_req.h"
#include "tools/server_text.h"

/* Feeds `pieces` (NULL-terminated) and checks the totals and that the
 * deltas add up to them. */
typedef struct {
    sx_sbuf r, c; /* concatenated deltas */
    sx_text_asm a;
} feed;

static void run_feed(feed *f, bool thinking, const char *const *stops, int n_stops, const char *const *pieces) {
    memset(f, 0, sizeof *f);
    sx_text_init(&f->a, thinking, stops, n_stops);
    for (int i = 0; pieces[i]; i++)
        if (!sx_text_push(&f->a, pieces[i], strlen(pieces[i]), &f->r, &f->c)) break;
    sx_text_finish(&f->a, &f->r, &f->c);
    assert_int_equal(f->r.len, f->a.reasoning_text.len);
    assert_int_equal(f->c.len, f->a.content_text.len);
    if (f->r.len) assert_memory_equal(f->r.s, f->a.reasoning_text.s, f->r.len);
    if (f->c.len) assert_memory_equal(f->c.s, f->a.content_text.s, f->c.len);
}

static void free_feed(feed *f) {
    sx_sbuf_free(&f->r);
    sx_sbuf_free(&f->c);
    sx_text_free(&f->a);
}

static const char *str(const sx_sbuf *b) { return b->s ? b->s : ""; }

static void test_utf8(void **state) {
    (void)state;
    assert_int_equal(sx_utf8_complete_len("a\xC3", 2), 1);
    assert_int_equal(sx_utf8_complete_len("\xE2\x82", 2), 0);
    assert_int_equal(sx_utf8_complete_len("\xE2\x82\xAC", 3), 3);
    assert_int_equal(sx_utf8_complete_len("x\xF0\x9F\x98", 4), 1);
    assert_int_equal(sx_utf8_complete_len("\xFF", 1), 1);     /* invalid, not incomplete: released (as U+FFFD) */
    assert_int_equal(sx_utf8_complete_len("\xE0\x80", 2), 2); /* overlong start: invalid */
    sx_sbuf b = {0};
    sx_utf8_sanitize_into(&b, "a\xFF" "b\xC0\x80\xED\xA0\x80\xE2\x82\xAC", 11);
    assert_string_equal(b.s, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xE2\x82\xAC");
    sx_sbuf_free(&b);
}

static void test_split_character(void **state) {
    (void)state;
    sx_text_asm a;
    sx_text_init(&a, false, NULL, 0);
    sx_sbuf c = {0};
    assert_true(sx_text_push(&a, "caf\xC3", 4, NULL, &c));
    assert_string_equal(str(&c), "caf"); /* the half character waits */
    sx_sbuf_clear(&c);
    assert_true(sx_text_push(&a, "\xA9!", 2, NULL, &c));
    assert_string_equal(str(&c), "\xC3\xA9!");
    sx_sbuf_clear(&c);
    assert_true(sx_text_push(&a, "\xE2\x82", 2, NULL, &c));
    sx_text_finish(&a, NULL, &c); /* cut off at the end: U+FFFD */
    assert_string_equal(str(&c), "\xEF\xBF\xBD");
    sx_sbuf_free(&c);
    sx_text_free(&a);
}

static void test_reasoning_split(void **state) {
    (void)state;
    feed f;
    const char *p1[] = {"17+5=22.", "\n\n", "So 22.\n\n", "</thi", "nk>", "\n\n", "The answer", " is 22.", NULL};
    run_feed(&f, true, NULL, 0, p1);
    assert_string_equal(str(&f.a.reasoning_text), "17+5=22.\n\nSo 22.\n\n");
    assert_string_equal(str(&f.a.content_text), "The answer is 22.");
    assert_true(f.a.saw_reasoning);
    free_feed(&f);
    /* not thinking: </think> is plain text, leading whitespace kept */
    const char *p2[] = {"\n a</think>b", NULL};
    run_feed(&f, false, NULL, 0, p2);
    assert_string_equal(str(&f.a.content_text), "\n a</think>b");
    assert_false(f.a.saw_reasoning);
    free_feed(&f);
    /* a partial </think> at the end of thinking that never completes */
    const char *p3[] = {"x </th", NULL};
    run_feed(&f, true, NULL, 0, p3);
    assert_string_equal(str(&f.a.reasoning_text), "x </th");
    free_feed(&f);
}

static void test_stops(void **state) {
    (void)state;
    feed f;
    const char *stops[] = {"STOP", "", "\n\n"};
    const char *p1[] = {"ab", "S", "T", "O", "Pcd", NULL};
    run_feed(&f, false, stops, 3, p1);
    assert_string_equal(str(&f.a.content_text), "ab");
    assert_true(f.a.stopped);
    free_feed(&f);
    const char *p2[] = {"abST", NULL}; /* a held prefix is released at the end */
    run_feed(&f, false, stops, 3, p2);
    assert_string_equal(str(&f.a.content_text), "abST");
    assert_false(f.a.stopped);
    free_feed(&f);
    const char *p3[] = {"one\n", "\ntwo", NULL}; /* inside the reasoning */
    run_feed(&f, true, stops, 3, p3);
    assert_string_equal(str(&f.a.reasoning_text), "one");
    assert_string_equal(str(&f.a.content_text), "");
    free_feed(&f);
    const char *p4[] = {"r</think>\n\nans", "wer\n", "\nmore", NULL}; /* after the reasoning, in the answer */
    run_feed(&f, true, stops, 3, p4);
    assert_string_equal(str(&f.a.reasoning_text), "r");
    assert_string_equal(str(&f.a.content_text), "answer");
    free_feed(&f);
}

/* Every way of cutting a text into two or three pieces gives the same totals. */
static void test_any_split(void **state) {
    (void)state;
    const char *text = "x\xC3\xA9y.\n\nz</think>\n  ans\xE2\x82\xACwer END tail";
    const char *stops[] = {"END"};
    const size_t n = strlen(text);
    for (size_t i = 0; i <= n; i++)
        for (size_t j = i; j <= n; j++) {
            char a[64], b[64], c[64];
            memcpy(a, text, i), a[i] = 0;
            memcpy(b, text + i, j - i), b[j - i] = 0;
            memcpy(c, text + j, n - j), c[n - j] = 0;
            const char *p[] = {a, b, c, NULL};
            feed f;
            run_feed(&f, true, stops, 1, p);
            assert_string_equal(str(&f.a.reasoning_text), "x\xC3\xA9y.\n\nz");
            assert_string_equal(str(&f.a.content_text), "ans\xE2\x82\xACwer ");
            free_feed(&f);
        }
}

static bool parse(const char *body, sx_req_kind kind, sx_req *r, char *err, char *param) {
    sx_generate_params def;
    sx_generate_params_init(&def);
    def.spec.kind = SX_SPEC_EAGLE3;
    def.exit.kind = SX_EXIT_SPECEXIT;
    def.n_predict = -1;
    return sx_req_parse(body, strlen(body), kind, &def, r, err, 256, param, 64);
}

static void test_request(void **state) {
    (void)state;
    sx_req r;
    char err[256], param[64];
    assert_true(parse("{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                      "{\"type\":\"text\",\"text\":\"b\"}]}],\"temperature\":0,\"max_tokens\":7,\"stop\":\"X\",\"stream\":true,"
                      "\"stream_options\":{\"include_usage\":true},\"exit_conf\":0.5,\"reasoning_budget\":9,\"seed\":42,\"model\":\"m\","
                      "\"presence_penalty\":0,\"user\":\"ignored\"}",
                      SX_REQ_CHAT, &r, err, param));
    assert_int_equal(r.n_msgs, 2);
    assert_string_equal(r.msgs[1].content, "ab");
    assert_true(r.gp.sampling.temp == 0.0f && r.gp.n_predict == 7 && r.gp.exit.conf == 0.5f && r.gp.exit.reasoning_budget == 9);
    assert_int_equal(r.gp.sampling.seed, 42);
    assert_int_equal(r.gp.exit.kind, SX_EXIT_SPECEXIT); /* the default stays */
    assert_true(r.stream && r.include_usage && r.cache_prompt && r.think == -1);
    assert_int_equal(r.n_stops, 1);
    sx_req_free(&r);
    /* spec none without an exit given: the default specexit exit falls back */
    assert_true(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"spec\":\"none\",\"reasoning_budget\":3}", SX_REQ_CHAT, &r, err, param));
    assert_int_equal(r.gp.exit.kind, SX_EXIT_BUDGET);
    sx_req_free(&r);
    /* reasoning_effort onto the exit; explicit exit fields win */
    assert_true(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"reasoning_effort\":\"high\"}", SX_REQ_CHAT, &r, err, param));
    assert_int_equal(r.gp.exit.kind, SX_EXIT_NONE);
    sx_req_free(&r);
    assert_true(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"reasoning_effort\":\"low\"}", SX_REQ_CHAT, &r, err, param));
    assert_true(r.gp.exit.kind == SX_EXIT_SPECEXIT && r.gp.exit.conf == SX_REQ_LOW_EFFORT_CONF);
    sx_req_free(&r);
    assert_true(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"reasoning_effort\":\"low\",\"spec\":\"none\"}", SX_REQ_CHAT, &r, err,
                      param));
    assert_true(r.gp.exit.kind == SX_EXIT_BUDGET && r.gp.exit.reasoning_budget == SX_REQ_LOW_EFFORT_BUDGET);
    sx_req_free(&r);
    assert_true(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"reasoning_effort\":\"minimal\"}", SX_REQ_CHAT, &r, err, param));
    assert_true(r.gp.exit.kind == SX_EXIT_BUDGET && r.gp.exit.reasoning_budget == 0);
    sx_req_free(&r);
    assert_true(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"reasoning_effort\":\"high\",\"exit\":\"budget\","
                      "\"reasoning_budget\":5}",
                      SX_REQ_CHAT, &r, err, param));
    assert_true(r.gp.exit.kind == SX_EXIT_BUDGET && r.gp.exit.reasoning_budget == 5);
    sx_req_free(&r);
    assert_true(parse("{\"prompt\":[\"hello\"],\"chat_template_kwargs\":{\"enable_thinking\":false}}", SX_REQ_COMPLETION, &r, err, param));
    assert_string_equal(r.prompt, "hello");
    assert_int_equal(r.think, 0);
    sx_req_free(&r);
    /* function calling: tools, tool_choice, assistant tool_calls written as the model writes them */
    const char *tools = "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
                        "\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]";
    char body[1024];
    snprintf(body, sizeof body,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c\","
             "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\": \\\"Paris\\\"}\"}}]},"
             "{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"21\"}],%s,\"tool_choice\":\"required\"}",
             tools);
    assert_true(parse(body, SX_REQ_CHAT, &r, err, param));
    assert_string_equal(r.msgs[1].content, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>");
    assert_true(r.tools_json && r.tool_choice == SX_TOOLS_REQUIRED && r.parallel_tool_calls && sx_req_tools(&r));
    assert_non_null(strstr(r.gp.grammar, "get_weather")); /* the call is forced */
    sx_req_free(&r);
    snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],%s}", tools); /* auto: a lazy call grammar */
    assert_true(parse(body, SX_REQ_CHAT, &r, err, param));
    assert_true(r.tool_choice == SX_TOOLS_AUTO && !r.gp.grammar && r.tools_call_grammar && !strstr(r.tools_call_grammar, "<tool_call>"));
    sx_req_free(&r);
    snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],%s,\"tool_choice\":\"none\"}", tools);
    assert_true(parse(body, SX_REQ_CHAT, &r, err, param));
    assert_true(!sx_req_tools(&r) && !r.gp.grammar);
    sx_req_free(&r);
    snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],%s,\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"x\"}}}",
             tools);
    assert_false(parse(body, SX_REQ_CHAT, &r, err, param));
    assert_string_equal(param, "tool_choice");
    assert_non_null(strstr(err, "not in 'tools'"));
    sx_req_free(&r);
    /* logit_bias: OpenAI's object and llama-server's pairs (false bans) */
    assert_true(parse("{\"prompt\":\"p\",\"logit_bias\":{\"15\":-100,\"7\":2.5}}", SX_REQ_COMPLETION, &r, err, param));
    assert_int_equal(r.gp.sampling.n_logit_bias, 2);
    assert_true(r.gp.sampling.bias_ids[0] == 15 && r.gp.sampling.bias_vals[0] == -100.0f && r.gp.sampling.bias_vals[1] == 2.5f);
    sx_req_free(&r);
    assert_true(parse("{\"prompt\":\"p\",\"logit_bias\":[[9,false],[4,1]]}", SX_REQ_COMPLETION, &r, err, param));
    assert_true(r.gp.sampling.n_logit_bias == 2 && r.gp.sampling.bias_ids[0] == 9 && isinf(r.gp.sampling.bias_vals[0]) &&
                r.gp.sampling.bias_vals[1] == 1.0f);
    sx_req_free(&r);
    /* prompt lookup */
    assert_true(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"spec\":\"ngram\",\"prompt_lookup_max\":6}", SX_REQ_CHAT, &r,
                      err, param));
    assert_true(r.gp.spec.kind == SX_SPEC_NGRAM && r.gp.spec.ngram_max == 6 && r.gp.spec.ngram_min == 2);
    assert_int_equal(r.gp.exit.kind, SX_EXIT_NONE); /* the default SpecExit needs the EAGLE-3 draft's signals */
    sx_req_free(&r);
    /* constrained output */
    assert_true(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"response_format\":{\"type\":\"json_object\"}}", SX_REQ_CHAT, &r,
                      err, param));
    assert_ptr_equal(r.gp.grammar, sx_grammar_json());
    sx_req_free(&r);
    assert_true(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"response_format\":{\"type\":\"text\"}}", SX_REQ_CHAT, &r, err,
                      param));
    assert_null(r.gp.grammar);
    sx_req_free(&r);
    assert_true(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
                      "{\"name\":\"x\",\"strict\":true,\"schema\":{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"}},"
                      "\"required\":[\"n\"]}}}}",
                      SX_REQ_CHAT, &r, err, param));
    assert_non_null(r.gp.grammar);
    assert_non_null(strstr(r.gp.grammar, "\"\\\"n\\\"\"")); /* the key as a literal: "\"n\"" */
    assert_int_equal(sx_grammar_validate(r.gp.grammar), SX_OK);
    sx_req_free(&r);
    assert_true(parse("{\"prompt\":\"p\",\"grammar\":\"root ::= [a-z]+\"}", SX_REQ_COMPLETION, &r, err, param));
    assert_string_equal(r.gp.grammar, "root ::= [a-z]+");
    sx_req_free(&r);
    assert_true(parse("{\"prompt\":\"p\",\"json_schema\":{\"enum\":[1,\"two\"]}}", SX_REQ_COMPLETION, &r, err, param));
    assert_non_null(strstr(r.gp.grammar, "\"\\\"two\\\"\""));
    sx_req_free(&r);
    const struct {
        const char *body, *param;
    } bad[] = {
        {"", ""}, {"null", ""}, {"{\"messages\":{}}", "messages"}, {"{\"messages\":[1]}", "messages[0]"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0].content"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"top_p\":0}", "top_p"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"stream\":1}", "stream"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"exit\":\"later\"}", "exit"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"draft_nodes\":64}", "draft_nodes"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"frequency_penalty\":0.5}", "frequency_penalty"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"response_format\":{\"type\":\"xml\"}}", "response_format"},
        {"{\"prompt\":\"q\",\"spec\":\"ngram\",\"prompt_lookup_min\":0}", "prompt_lookup_min"},
        {"{\"prompt\":\"q\",\"logit_bias\":{\"hello\":1}}", "logit_bias"}, {"{\"prompt\":\"q\",\"logit_bias\":{\"5\":101}}", "logit_bias"},
        {"{\"prompt\":\"q\",\"logit_bias\":[[5]]}", "logit_bias"}, {"{\"prompt\":\"q\",\"typical_p\":0.5}", "typical_p"},
        {"{\"prompt\":\"q\",\"mirostat\":2}", "mirostat"}, {"{\"prompt\":\"q\",\"n_probs\":21}", "n_probs"},
        {"{\"prompt\":\"q\",\"top_logprobs\":3}", "top_logprobs"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"tools\":{}}", "tools"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a b\"}}]}", "tools[0]"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"tools\":[{\"type\":\"retrieval\"}]}", "tools[0]"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"tool_choice\":\"required\"}", "tool_choice"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"tool_choice\":\"sometimes\"}", "tool_choice"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"arguments\":\"{}\"}}]}]}", "messages[0].tool_calls"},
        {"{\"prompt\":\"q\",\"prompt_lookup_min\":5,\"prompt_lookup_max\":3}", "prompt_lookup_max"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"response_format\":{\"type\":\"json_schema\"}}", "response_format"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"grammar\":\"root ::= foo\"}", "grammar"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"grammar\":7}", "grammar"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"grammar\":\"root ::= \\\"a\\\"\",\"json_schema\":{}}", "grammar"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"json_schema\":{\"type\":\"string\",\"pattern\":\"a\"}}", "json_schema"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"json_schema\":{},\"response_format\":{\"type\":\"json_object\"}}",
         "json_schema"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\","
         "\"14\",\"15\",\"16\",\"17\"]}",
         "stop"},
        {"{\"prompt\":\"\"}", "prompt"}, {"{\"prompt\":[\"a\",\"b\"]}", "prompt"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"reasoning_effort\":\"extreme\"}", "reasoning_effort"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const sx_req_kind kind = strstr(bad[i].body, "prompt") ? SX_REQ_COMPLETION : SX_REQ_CHAT;
        assert_false(parse(bad[i].body, kind, &r, err, param));
        assert_true(err[0] != 0);
        if (strcmp(param, bad[i].param) != 0) fail_msg("body %s: param '%s', wanted '%s' (%s)", bad[i].body, param, bad[i].param, err);
        sx_req_free(&r);
    }
}

static void test_tool_calls_parse(void **state) {
    (void)state;
    sx_sbuf text = {0};
    cJSON *calls = sx_tool_calls_parse("Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
                                       "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>",
                                       "x", &text);
    assert_non_null(calls);
    assert_int_equal(cJSON_GetArraySize(calls), 2);
    const cJSON *f = cJSON_GetObjectItem(cJSON_GetArrayItem(calls, 1), "function");
    assert_string_equal(cJSON_GetObjectItem(f, "name")->valuestring, "add");
    assert_string_equal(cJSON_GetObjectItem(f, "arguments")->valuestring, "{\"a\":1,\"b\":2}");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(calls, 0), "id")->valuestring, "call_x_0");
    assert_string_equal(text.s, "Let me check.");
    cJSON_Delete(calls);
    /* not calls: a plain answer, an unfinished block, a block without a name: the whole answer stays text */
    const char *plain[] = {"It is sunny.", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {", "<tool_call>{\"arguments\": {}}</tool_call>",
                           "<tool_call>{\"name\": \"f\", \"arguments\": 3}</tool_call>"};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) {
        assert_null(sx_tool_calls_parse(plain[i], "x", &text));
        assert_string_equal(text.s, plain[i]);
    }
    sx_sbuf_free(&text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),  cmocka_unit_test(test_split_character), cmocka_unit_test(test_reasoning_split),
        cmocka_unit_test(test_stops), cmocka_unit_test(test_any_split),       cmocka_unit_test(test_request),
        cmocka_unit_test(test_tool_calls_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
