/* core/chat.c — the chat template families of core/chat.h, written out in C.
 * Each formatter mirrors its family's Jinja template (quoted in chat.h);
 * tests/test_tokenizer.c checks the exact strings. */
#include "core/chat.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DS_USER "<\xef\xbd\x9cUser\xef\xbd\x9c>"                 /* <｜User｜> */
#define DS_ASSISTANT "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>"   /* <｜Assistant｜> */
#define DS_EOS "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>" /* <｜end▁of▁sentence｜> */

/* ---- a growable string ---- */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_add(sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }

/* ---- names and detection ---- */

sx_chat_template_kind sx_chat_detect(const char *tmpl) {
    if (!tmpl) return SX_CHAT_UNKNOWN;
    if (strstr(tmpl, DS_ASSISTANT) || strstr(tmpl, DS_USER)) return SX_CHAT_DEEPSEEK_R1;
    if (strstr(tmpl, "<|start_header_id|>")) return SX_CHAT_LLAMA3;
    if (strstr(tmpl, "<|im_start|>")) return strstr(tmpl, "<think>") ? SX_CHAT_CHATML_THINK : SX_CHAT_CHATML;
    return SX_CHAT_UNKNOWN;
}

const char *sx_chat_kind_name(sx_chat_template_kind kind) {
    switch (kind) {
    case SX_CHAT_CHATML: return "chatml";
    case SX_CHAT_CHATML_THINK: return "chatml-think";
    case SX_CHAT_LLAMA3: return "llama3";
    case SX_CHAT_DEEPSEEK_R1: return "deepseek-r1";
    case SX_CHAT_UNKNOWN: break;
    }
    return "unknown";
}

sx_status sx_chat_kind_from_name(const char *name, sx_chat_template_kind *out) {
    static const struct {
        const char *name;
        sx_chat_template_kind kind;
    } names[] = {
        {"chatml", SX_CHAT_CHATML},           {"chatml-think", SX_CHAT_CHATML_THINK},
        {"qwen3", SX_CHAT_CHATML_THINK},      {"llama3", SX_CHAT_LLAMA3},
        {"deepseek-r1", SX_CHAT_DEEPSEEK_R1}, {"deepseek", SX_CHAT_DEEPSEEK_R1},
    };
    if (!out) return sx_set_error(SX_ERR_INVALID_ARG, "chat: out is NULL");
    *out = SX_CHAT_UNKNOWN;
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].kind;
            return SX_OK;
        }
    }
    return sx_set_error(SX_ERR_INVALID_ARG,
                        "chat: unknown template '%s' (chatml, chatml-think, qwen3, llama3, deepseek-r1)",
                        name ? name : "(null)");
}

sx_status sx_chat_default_system(const char *tmpl, char **out) {
    static const char head[] = "<|im_start|>system";
    if (!out) return sx_set_error(SX_ERR_INVALID_ARG, "chat: out is NULL");
    *out = NULL;
    if (!tmpl) return SX_OK;
    for (const char *p = strstr(tmpl, head); p; p = strstr(p + 1, head)) {
        if (p == tmpl || (p[-1] != '\'' && p[-1] != '"')) continue; /* must open a string literal */
        char quote = p[-1];
        const char *q = p + sizeof head - 1;
        if (q[0] == '\n') {
            q += 1;
        } else if (q[0] == '\\' && q[1] == 'n') {
            q += 2;
        } else {
            continue;
        }
        const char *end = strstr(q, "<|im_end|>");
        if (!end || end == q) continue;
        /* the text must stay inside the literal: no unescaped closing quote */
        bool inside = true;
        for (const char *r = q; r < end; r++) {
            if (*r == '\\' && r + 1 < end) {
                r++;
            } else if (*r == quote) {
                inside = false;
                break;
            }
        }
        if (!inside) continue;
        sbuf b = {0};
        for (const char *r = q; r < end; r++) {
            if (*r == '\\' && r + 1 < end) {
                r++;
                char c = *r == 'n' ? '\n' : *r == 't' ? '\t' : *r;
                sb_addn(&b, &c, 1);
            } else {
                sb_addn(&b, r, 1);
            }
        }
        if (b.oom) {
            free(b.s);
            return sx_set_error(SX_ERR_OUT_OF_MEMORY, "chat: out of memory");
        }
        *out = b.s;
        return SX_OK;
    }
    return SX_OK;
}

/* ---- formatting helpers ---- */

static bool is_role(const sx_chat_msg *m, const char *role) { return strcmp(m->role, role) == 0; }

/* Index of the last occurrence of needle in s, or NULL. */
static const char *find_last(const char *s, const char *needle) {
    const char *last = NULL;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) last = p;
    return last;
}

static bool starts_with(const char *s, const char *pre) { return strncmp(s, pre, strlen(pre)) == 0; }

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && memcmp(s + n - m, suf, m) == 0;
}

/* Appends s[a..b) after removing the characters of `set` from the left
 * (lstrip) and/or the right (rstrip). */
static void add_stripped(sbuf *b, const char *s, size_t len, const char *set, bool left, bool right) {
    size_t a = 0, e = len;
    while (left && a < e && strchr(set, s[a]) && s[a]) a++;
    while (right && e > a && strchr(set, s[e - 1]) && s[e - 1]) e--;
    sb_addn(b, s + a, e - a);
}

/* ---- tools (Qwen2.5 / Qwen3 / Hermes function calling) ---- */

/* JSON as Python's json.dumps (the templates' tojson): ", " and ": "
 * separators, non-ASCII kept, the shortest float that reads back */
static void py_json(sbuf *b, const cJSON *v) {
    char num[40];
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        const bool obj = cJSON_IsObject(v);
        sb_add(b, obj ? "{" : "[");
        for (const cJSON *c = v->child; c; c = c->next) {
            if (c != v->child) sb_add(b, ", ");
            if (obj) {
                py_json(b, &(cJSON){.type = cJSON_String, .valuestring = c->string});
                sb_add(b, ": ");
            }
            py_json(b, c);
        }
        sb_add(b, obj ? "}" : "]");
    } else if (cJSON_IsString(v)) {
        sb_add(b, "\"");
        for (const unsigned char *p = (const unsigned char *)v->valuestring; *p; p++) {
            const char *esc = *p == '"' ? "\\\"" : *p == '\\' ? "\\\\" : *p == '\n' ? "\\n" : *p == '\r' ? "\\r" : *p == '\t' ? "\\t"
                            : *p == '\b' ? "\\b" : *p == '\f' ? "\\f" : NULL;
            if (esc) sb_add(b, esc);
            else if (*p < 0x20) snprintf(num, sizeof num, "\\u%04x", *p), sb_add(b, num);
            else sb_addn(b, (const char *)p, 1);
        }
        sb_add(b, "\"");
    } else if (cJSON_IsNumber(v)) {
        const double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 1e15) snprintf(num, sizeof num, "%.0f", d);
        else {
            snprintf(num, sizeof num, "%.15g", d);
            if (strtod(num, NULL) != d) snprintf(num, sizeof num, "%.17g", d);
        }
        sb_add(b, num);
    } else {
        sb_add(b, cJSON_IsTrue(v) ? "true" : cJSON_IsFalse(v) ? "false" : "null");
    }
}

/* The tools section of the system turn; tools_json: OpenAI's tools array */
static sx_status tools_block(const char *tools_json, sbuf *b) {
    cJSON *tools = cJSON_Parse(tools_json);
    if (!cJSON_IsArray(tools)) {
        cJSON_Delete(tools);
        return sx_set_error(SX_ERR_INVALID_ARG, "chat: tools must be a JSON array");
    }
    sb_add(b, "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
              "You are provided with function signatures within <tools></tools> XML tags:\n<tools>");
    for (const cJSON *t = tools->child; t; t = t->next) {
        sb_add(b, "\n");
        py_json(b, t);
    }
    sb_add(b, "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> "
              "XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>");
    cJSON_Delete(tools);
    return SX_OK;
}

/* tool results: one user turn of <tool_response> blocks per run of tool messages */
static void tool_turn(sbuf *b, const sx_chat_msg *m, int i, int n) {
    if (i == 0 || strcmp(m[i - 1].role, "tool") != 0) sb_add(b, "<|im_start|>user");
    sb_add(b, "\n<tool_response>\n");
    sb_add(b, m[i].content);
    sb_add(b, "\n</tool_response>");
    if (i == n - 1 || strcmp(m[i + 1].role, "tool") != 0) sb_add(b, "<|im_end|>\n");
}

static void chatml_turn(sbuf *b, const char *role, const char *content) {
    sb_add(b, "<|im_start|>");
    sb_add(b, role);
    sb_add(b, "\n");
    sb_add(b, content);
    sb_add(b, "<|im_end|>\n");
}

static sx_status fmt_chatml(sbuf *b, const sx_chat_msg *m, int n) {
    for (int i = 0; i < n; i++) {
        if (is_role(&m[i], "tool")) tool_turn(b, m, i, n); /* Qwen2.5's template */
        else chatml_turn(b, m[i].role, m[i].content);
    }
    return SX_OK;
}

/* Qwen3's template (reasoning_content taken from the content's <think> block). */
static sx_status fmt_chatml_think(sbuf *b, const sx_chat_msg *m, int n) {
    int last_query = n - 1;
    for (int i = n - 1; i >= 0; i--) {
        if (is_role(&m[i], "user") &&
            !(starts_with(m[i].content, "<tool_response>") && ends_with(m[i].content, "</tool_response>"))) {
            last_query = i;
            break;
        }
    }
    if (n > 0 && is_role(&m[0], "system")) chatml_turn(b, "system", m[0].content);
    for (int i = 0; i < n; i++) {
        const char *c = m[i].content;
        if (is_role(&m[i], "user") || (is_role(&m[i], "system") && i > 0)) {
            chatml_turn(b, m[i].role, c);
        } else if (is_role(&m[i], "system")) {
            continue; /* the first system message, written above */
        } else if (is_role(&m[i], "assistant")) {
            /* content = after the last </think>, lstrip \n;
             * reasoning = before the first </think>, rstrip \n, after the last <think>, lstrip \n */
            const char *answer = c, *rs = "", *re = rs;
            const char *close_last = find_last(c, "</think>");
            if (close_last) {
                answer = close_last + strlen("</think>");
                while (*answer == '\n') answer++;
                const char *close_first = strstr(c, "</think>");
                re = close_first;
                while (re > c && re[-1] == '\n') re--;
                rs = c;
                for (const char *p = c; (p = strstr(p, "<think>")) && p + 7 <= re; p++) rs = p + 7;
                if (rs > re) rs = re;
                while (rs < re && *rs == '\n') rs++;
            }
            sb_add(b, "<|im_start|>assistant\n");
            if (i > last_query && (i == n - 1 || re > rs)) {
                sb_add(b, "<think>\n");
                add_stripped(b, rs, (size_t)(re - rs), "\n", true, true);
                sb_add(b, "\n</think>\n\n");
                add_stripped(b, answer, strlen(answer), "\n", true, false);
            } else {
                sb_add(b, answer);
            }
            sb_add(b, "<|im_end|>\n");
        } else if (is_role(&m[i], "tool")) {
            tool_turn(b, m, i, n);
        } else {
            return sx_set_error(SX_ERR_INVALID_ARG, "chat: role '%s' (message %d) has no place in a %s template",
                                m[i].role, i, sx_chat_kind_name(SX_CHAT_CHATML_THINK));
        }
    }
    return SX_OK;
}

static sx_status fmt_llama3(sbuf *b, const sx_chat_msg *m, int n) {
    static const char ws[] = " \t\n\r\v\f";
    for (int i = 0; i < n; i++) {
        sb_add(b, "<|start_header_id|>");
        sb_add(b, m[i].role);
        sb_add(b, "<|end_header_id|>\n\n");
        add_stripped(b, m[i].content, strlen(m[i].content), ws, true, true);
        sb_add(b, "<|eot_id|>");
    }
    return SX_OK;
}

static sx_status fmt_deepseek_r1(sbuf *b, const sx_chat_msg *m, int n) {
    bool first_system = true;
    for (int i = 0; i < n; i++) {
        if (!is_role(&m[i], "system")) continue;
        if (!first_system) sb_add(b, "\n\n");
        sb_add(b, m[i].content);
        first_system = false;
    }
    for (int i = 0; i < n; i++) {
        const char *c = m[i].content;
        if (is_role(&m[i], "system")) continue;
        if (is_role(&m[i], "user")) {
            sb_add(b, DS_USER);
            sb_add(b, c);
        } else if (is_role(&m[i], "assistant")) {
            const char *close = find_last(c, "</think>");
            sb_add(b, DS_ASSISTANT);
            sb_add(b, close ? close + strlen("</think>") : c);
            sb_add(b, DS_EOS);
        } else {
            return sx_set_error(SX_ERR_INVALID_ARG, "chat: role '%s' (message %d) has no place in a %s template",
                                m[i].role, i, sx_chat_kind_name(SX_CHAT_DEEPSEEK_R1));
        }
    }
    return SX_OK;
}

static sx_status check_msgs(const sx_chat_msg *m, int n) {
    if (n < 0 || (n > 0 && !m)) return sx_set_error(SX_ERR_INVALID_ARG, "chat: bad message array (n = %d)", n);
    for (int i = 0; i < n; i++) {
        if (!m[i].role || !m[i].content)
            return sx_set_error(SX_ERR_INVALID_ARG, "chat: message %d has a NULL %s", i, m[i].role ? "content" : "role");
        if (!m[i].role[0]) return sx_set_error(SX_ERR_INVALID_ARG, "chat: message %d has an empty role", i);
        for (const char *r = m[i].role; *r; r++) {
            char c = *r;
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
                return sx_set_error(SX_ERR_INVALID_ARG, "chat: message %d: role may only hold [A-Za-z0-9_-]", i);
        }
    }
    return SX_OK;
}

sx_status sx_chat_format(sx_chat_template_kind kind, const sx_chat_msg *msgs, int n, bool add_generation_prompt,
                         bool think, const char *default_system, char **out) {
    return sx_chat_format_tools(kind, msgs, n, NULL, add_generation_prompt, think, default_system, out);
}

sx_status sx_chat_format_tools(sx_chat_template_kind kind, const sx_chat_msg *msgs, int n, const char *tools_json, bool add_generation_prompt,
                               bool think, const char *default_system, char **out) {
    if (!out) return sx_set_error(SX_ERR_INVALID_ARG, "chat: out is NULL");
    *out = NULL;
    if (kind != SX_CHAT_CHATML && kind != SX_CHAT_CHATML_THINK && kind != SX_CHAT_LLAMA3 &&
        kind != SX_CHAT_DEEPSEEK_R1)
        return sx_set_error(SX_ERR_INVALID_ARG, "chat: unknown template kind %d", (int)kind);
    SX_RETURN_IF_ERROR(check_msgs(msgs, n));
    if (tools_json && kind != SX_CHAT_CHATML && kind != SX_CHAT_CHATML_THINK)
        return sx_set_error(SX_ERR_UNSUPPORTED, "tools: the %s template family's tool format is not supported (ChatML models are: Qwen2.5, "
                                                "Qwen3, Hermes, SmolLM2)",
                            sx_chat_kind_name(kind));
    /* tools: the system turn gets the tools section (Qwen3: after the system prompt, if any;
     * Qwen2.5: after the system prompt or the template's default one) */
    char *sys_tools = NULL;
    sx_chat_msg *with_tools = NULL;
    if (tools_json) {
        sbuf t = {0};
        const bool has_sys = n > 0 && !strcmp(msgs[0].role, "system");
        const char *prefix = has_sys ? msgs[0].content : kind == SX_CHAT_CHATML ? default_system : NULL;
        if (prefix) sb_add(&t, prefix), sb_add(&t, "\n\n");
        sx_status st = tools_block(tools_json, &t);
        if (st == SX_OK && t.oom) st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "chat: out of memory");
        if (st == SX_OK && !(with_tools = malloc(((size_t)n + 1) * sizeof *with_tools))) st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "chat: out of memory");
        if (st != SX_OK) {
            free(t.s);
            return st;
        }
        sys_tools = t.s;
        with_tools[0] = (sx_chat_msg){"system", sys_tools};
        memcpy(with_tools + 1, msgs + has_sys, (size_t)(n - has_sys) * sizeof *msgs);
        msgs = with_tools;
        n = n - has_sys + 1;
    }
    /* the messages, with the default system prompt in front when it applies */
    const sx_chat_msg *m = msgs;
    sx_chat_msg *tmp = NULL;
    if (default_system && n > 0 && strcmp(msgs[0].role, "system") != 0) {
        if ((size_t)n + 1 > SIZE_MAX / sizeof *tmp || !(tmp = malloc(((size_t)n + 1) * sizeof *tmp)))
            return sx_set_error(SX_ERR_OUT_OF_MEMORY, "chat: out of memory");
        tmp[0] = (sx_chat_msg){"system", default_system};
        memcpy(tmp + 1, msgs, (size_t)n * sizeof *tmp);
        m = tmp;
        n++;
    }
    sbuf b = {0};
    sb_add(&b, ""); /* an empty conversation still gives a string */
    sx_status st;
    switch (kind) {
    case SX_CHAT_CHATML: st = fmt_chatml(&b, m, n); break;
    case SX_CHAT_CHATML_THINK: st = fmt_chatml_think(&b, m, n); break;
    case SX_CHAT_LLAMA3: st = fmt_llama3(&b, m, n); break;
    default: st = fmt_deepseek_r1(&b, m, n); break;
    }
    if (st == SX_OK && add_generation_prompt) {
        switch (kind) {
        case SX_CHAT_LLAMA3: sb_add(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n"); break;
        case SX_CHAT_DEEPSEEK_R1: sb_add(&b, DS_ASSISTANT); break;
        default: sb_add(&b, "<|im_start|>assistant\n"); break;
        }
        if (think) sb_add(&b, "<think>\n");
    }
    free(tmp);
    free(with_tools);
    free(sys_tools);
    if (st == SX_OK && b.oom) st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "chat: out of memory");
    if (st != SX_OK) {
        free(b.s);
        return st;
    }
    *out = b.s;
    return SX_OK;
}
