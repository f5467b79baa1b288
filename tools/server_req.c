/* tools/server_req.c — see server_req.h. */
#include "tools/server_req.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pctx {
    char *err, *param;
    size_t err_cap, param_cap;
} pctx;

static bool fail(pctx *c, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->err_cap, fmt, ap);
    va_end(ap);
    snprintf(c->param, c->param_cap, "%s", param);
    return false;
}

static const cJSON *field(const cJSON *o, const char *name) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return f && !cJSON_IsNull(f) ? f : NULL; /* null means "not given", as OpenAI's SDKs send it */
}

/* A number in [lo, hi]; *set stays false when absent. */
static bool get_num(pctx *c, const cJSON *o, const char *name, double lo, double hi, double *out, bool *set) {
    const cJSON *f = field(o, name);
    if (set) *set = false;
    if (!f) return true;
    if (!cJSON_IsNumber(f) || !(f->valuedouble >= lo && f->valuedouble <= hi))
        return fail(c, name, "'%s' must be a number in [%g, %g]", name, lo, hi);
    *out = f->valuedouble;
    if (set) *set = true;
    return true;
}

static bool get_int(pctx *c, const cJSON *o, const char *name, double lo, double hi, int *out, bool *set) {
    const cJSON *f = field(o, name);
    if (set) *set = false;
    if (!f) return true;
    if (!cJSON_IsNumber(f) || !(f->valuedouble >= lo && f->valuedouble <= hi) || f->valuedouble != floor(f->valuedouble))
        return fail(c, name, "'%s' must be an integer in [%.0f, %.0f]", name, lo, hi);
    *out = (int)f->valuedouble;
    if (set) *set = true;
    return true;
}

static bool get_bool(pctx *c, const cJSON *o, const char *name, bool *out) {
    const cJSON *f = field(o, name);
    if (!f) return true;
    if (!cJSON_IsBool(f)) return fail(c, name, "'%s' must be true or false", name);
    *out = cJSON_IsTrue(f);
    return true;
}

static bool get_float(pctx *c, const cJSON *o, const char *name, double lo, double hi, float *out) {
    double v;
    bool set;
    if (!get_num(c, o, name, lo, hi, &v, &set)) return false;
    if (set) *out = (float)v;
    return true;
}

/* content: a string, or an array of {"type":"text","text":...} parts */
static bool message_content(pctx *c, sx_req *r, const cJSON *m, int i, const char **out) {
    const cJSON *ct = field(m, "content");
    char name[48];
    snprintf(name, sizeof name, "messages[%d].content", i);
    if (!ct) return *out = "", true; /* an assistant turn that only called tools */
    if (cJSON_IsString(ct)) return *out = ct->valuestring, true;
    if (!cJSON_IsArray(ct)) return fail(c, name, "'%s' must be a string or an array of text parts", name);
    sx_sbuf b = {0};
    sx_sbuf_adds(&b, "");
    const cJSON *part;
    cJSON_ArrayForEach(part, ct) {
        const cJSON *type = field(part, "type"), *text = field(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(text)) {
            sx_sbuf_free(&b);
            return fail(c, name, "'%s': only parts of type \"text\" with a \"text\" string are supported", name);
        }
        sx_sbuf_adds(&b, text->valuestring);
    }
    if (b.oom) {
        sx_sbuf_free(&b);
        return fail(c, name, "out of memory");
    }
    r->joined[i] = b.s;
    *out = b.s;
    return true;
}

static bool assistant_calls(pctx *c, sx_req *r, const cJSON *m, int i);

static bool parse_messages(pctx *c, sx_req *r) {
    const cJSON *ms = field(r->root, "messages");
    if (!ms) return fail(c, "messages", "'messages' is required");
    if (!cJSON_IsArray(ms)) return fail(c, "messages", "'messages' must be an array");
    const int n = cJSON_GetArraySize(ms);
    if (n < 1) return fail(c, "messages", "'messages' must hold at least one message");
    r->msgs = calloc((size_t)n, sizeof *r->msgs);
    r->joined = calloc((size_t)n, sizeof *r->joined);
    if (!r->msgs || !r->joined) return fail(c, "messages", "out of memory");
    r->n_joined = n;
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, ms) {
        char name[48];
        snprintf(name, sizeof name, "messages[%d]", i);
        if (!cJSON_IsObject(m)) return fail(c, name, "'%s' must be an object with \"role\" and \"content\"", name);
        const cJSON *role = field(m, "role");
        if (!cJSON_IsString(role) || !role->valuestring[0]) return fail(c, name, "'%s.role' must be a non-empty string", name);
        for (const char *p = role->valuestring; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
                return fail(c, name, "'%s.role' may only hold letters, digits, '_' and '-'", name);
        r->msgs[i].role = role->valuestring;
        if (!message_content(c, r, m, i, &r->msgs[i].content)) return false;
        if (!strcmp(role->valuestring, "assistant") && !assistant_calls(c, r, m, i)) return false;
        i++;
    }
    r->n_msgs = n;
    return true;
}

/* a string, token ids, or an array of one of them (OpenAI's batch of one; lm-eval sends [[ids]]) */
static bool parse_prompt(pctx *c, sx_req *r) {
    const cJSON *p = field(r->root, "prompt");
    if (!p) return fail(c, "prompt", "'prompt' is required");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && (cJSON_IsString(p->child) || cJSON_IsArray(p->child))) p = p->child;
    if (cJSON_IsArray(p) && cJSON_IsNumber(p->child)) {
        const int n = cJSON_GetArraySize(p);
        if (!(r->prompt_ids = malloc(sizeof(int32_t) * (size_t)n))) return fail(c, "prompt", "out of memory");
        const cJSON *t;
        cJSON_ArrayForEach(t, p) {
            if (!cJSON_IsNumber(t) || !(t->valuedouble >= 0 && t->valuedouble <= INT32_MAX) || t->valuedouble != floor(t->valuedouble))
                return fail(c, "prompt", "'prompt': token ids must be non-negative integers");
            r->prompt_ids[r->n_prompt_ids++] = (int32_t)t->valuedouble;
        }
        return true;
    }
    if (!cJSON_IsString(p))
        return fail(c, "prompt", "'prompt' must be a string or an array of token ids (one prompt per request: several are not supported)");
    if (!p->valuestring[0]) return fail(c, "prompt", "'prompt' is empty");
    r->prompt = p->valuestring;
    return true;
}

static bool parse_stop(pctx *c, sx_req *r) {
    const cJSON *s = field(r->root, "stop");
    if (!s) return true;
    if (cJSON_IsString(s)) {
        if (s->valuestring[0]) r->stops[r->n_stops++] = s->valuestring;
        return true;
    }
    if (!cJSON_IsArray(s)) return fail(c, "stop", "'stop' must be a string or an array of strings");
    const cJSON *e;
    cJSON_ArrayForEach(e, s) {
        if (!cJSON_IsString(e)) return fail(c, "stop", "'stop' must be a string or an array of strings");
        if (!e->valuestring[0]) continue;
        if (r->n_stops == SX_TEXT_MAX_STOPS) return fail(c, "stop", "'stop' holds more than %d strings", SX_TEXT_MAX_STOPS);
        r->stops[r->n_stops++] = e->valuestring;
    }
    return true;
}

/* Fields a client may send that this server cannot honour: refused, not ignored. */
static bool unsupported(pctx *c, const cJSON *o) {
    double v;
    bool set;
    const char *zero[] = {"presence_penalty", "frequency_penalty"};
    for (int i = 0; i < 2; i++) {
        if (!get_num(c, o, zero[i], -2, 2, &v, &set)) return false;
        if (set && v != 0) return fail(c, zero[i], "'%s' is not supported (use repeat_penalty)", zero[i]);
    }
    /* llama-server's other samplers and probabilities: refused unless at their neutral values */
    if (!get_num(c, o, "typical_p", 0, 1, &v, &set)) return false;
    if (set && v != 1) return fail(c, "typical_p", "'typical_p' is not supported (use top_p / min_p)");
    if (!get_num(c, o, "mirostat", 0, 2, &v, &set)) return false;
    if (set && v != 0) return fail(c, "mirostat", "'mirostat' is not supported");
    return true;
}

/* Log-probabilities: chat's "logprobs": true with "top_logprobs": N, the completions' "logprobs": N (the
 * sampled token's and the N most likely; true = 0), llama-server's "n_probs": N; and the completions'
 * "echo" (the prompt before the text; with logprobs, the prompt's tokens scored too) */
static bool parse_logprobs(pctx *c, sx_req *r) {
    const cJSON *o = r->root, *lp = field(o, "logprobs");
    sx_generate_params *g = &r->gp;
    int top = 0;
    bool set;
    if (lp && cJSON_IsBool(lp)) {
        g->logprobs = cJSON_IsTrue(lp);
    } else if (lp) {
        if (r->kind == SX_REQ_CHAT) return fail(c, "logprobs", "'logprobs' must be true or false (use top_logprobs for alternatives)");
        if (!get_int(c, o, "logprobs", 0, SX_MAX_TOP_LOGPROBS, &top, NULL)) return false;
        g->logprobs = true;
    }
    int tl = 0, np = 0; /* each field alone: a 0 in one (clients forward llama-server's n_probs: 0) does not undo another */
    if (!get_int(c, o, "top_logprobs", 0, SX_MAX_TOP_LOGPROBS, &tl, &set)) return false;
    if (tl > 0 && !g->logprobs) return fail(c, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
    if (!get_int(c, o, "n_probs", 0, SX_MAX_TOP_LOGPROBS, &np, &set)) return false;
    if (np > 0) g->logprobs = true;
    if (tl > top) top = tl;
    if (np > top) top = np;
    g->top_logprobs = g->logprobs ? top : 0;
    if (!get_bool(c, o, "echo", &r->echo)) return false;
    if (!get_bool(c, o, "return_tokens_as_token_ids", &r->token_ids)) return false;
    if (r->echo && r->kind == SX_REQ_CHAT) return fail(c, "echo", "'echo' belongs to /v1/completions");
    return true;
}

/* Function calling: "tools" (functions with JSON Schema parameters),
 * "tool_choice" ("auto", "none", "required" or one function) and
 * "parallel_tool_calls". A call that must happen is forced by a grammar. */
static bool parse_tools(pctx *c, sx_req *r) {
    const cJSON *o = r->root, *tools = field(o, "tools"), *tc = field(o, "tool_choice");
    r->parallel_tool_calls = true;
    if (!get_bool(c, o, "parallel_tool_calls", &r->parallel_tool_calls)) return false;
    if (tools && !cJSON_IsArray(tools)) return fail(c, "tools", "'tools' must be an array of {\"type\": \"function\", \"function\": {...}}");
    if (tools && !tools->child) tools = NULL; /* [] = none, as OpenAI */
    if (tools && r->kind != SX_REQ_CHAT) return fail(c, "tools", "'tools' belongs to /v1/chat/completions");
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        char name[48];
        snprintf(name, sizeof name, "tools[%d]", i++);
        const cJSON *type = field(t, "type"), *f = field(t, "function");
        const cJSON *fn = f ? field(f, "name") : NULL, *params = f ? field(f, "parameters") : NULL;
        if (!cJSON_IsObject(t) || (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "function") != 0)) || !cJSON_IsObject(f))
            return fail(c, name, "'%s' must be {\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": {...}}}", name);
        if (!cJSON_IsString(fn) || !fn->valuestring[0] || strlen(fn->valuestring) > 64 ||
            strspn(fn->valuestring, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != strlen(fn->valuestring))
            return fail(c, name, "'%s.function.name' must be 1 to 64 of [A-Za-z0-9_.-]", name);
        if (params && !cJSON_IsObject(params)) return fail(c, name, "'%s.function.parameters' must be a JSON Schema object", name);
    }
    r->tool_choice = SX_TOOLS_AUTO;
    if (tc) {
        const cJSON *f = cJSON_IsObject(tc) ? field(tc, "function") : NULL, *fn = f ? field(f, "name") : NULL;
        if (cJSON_IsString(tc) && !strcmp(tc->valuestring, "auto")) r->tool_choice = SX_TOOLS_AUTO;
        else if (cJSON_IsString(tc) && !strcmp(tc->valuestring, "none")) r->tool_choice = SX_TOOLS_NONE;
        else if (cJSON_IsString(tc) && !strcmp(tc->valuestring, "required")) r->tool_choice = SX_TOOLS_REQUIRED;
        else if (cJSON_IsString(fn)) r->tool_choice = SX_TOOLS_NAMED, r->tool_name = fn->valuestring;
        else return fail(c, "tool_choice", "'tool_choice' must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
        if (!tools && r->tool_choice >= SX_TOOLS_REQUIRED) return fail(c, "tool_choice", "'tool_choice' asks for a call but there are no 'tools'");
    }
    if (!tools) return true;
    if (!(r->tools_json = cJSON_PrintUnformatted(tools))) return fail(c, "tools", "out of memory");
    if (r->tool_choice == SX_TOOLS_AUTO && !r->gp.grammar) { /* the model chooses; a call it starts is made well-formed (where <tool_call> is a token) */
        if (sx_tools_call_grammar(r->tools_json, &r->tools_call_grammar) != SX_OK) return fail(c, "tools", "'tools': %s", sx_last_error());
        return true;
    }
    if (r->tool_choice < SX_TOOLS_REQUIRED) return true;
    if (r->gp.grammar) return fail(c, "tool_choice", "a 'tool_choice' that forces a call cannot be combined with 'grammar', 'json_schema' or 'response_format'");
    if (sx_tools_grammar(r->tools_json, r->tool_choice == SX_TOOLS_NAMED ? r->tool_name : NULL, r->parallel_tool_calls, &r->grammar) != SX_OK)
        return fail(c, "tool_choice", "'tool_choice': %s", sx_last_error());
    r->gp.grammar = r->grammar;
    return true;
}

/* An assistant message's tool_calls, appended to its content as the model writes them (Qwen3's template) */
static bool assistant_calls(pctx *c, sx_req *r, const cJSON *m, int i) {
    const cJSON *calls = field(m, "tool_calls");
    if (!calls) return true;
    char name[48];
    snprintf(name, sizeof name, "messages[%d].tool_calls", i);
    if (!cJSON_IsArray(calls)) return fail(c, name, "'%s' must be an array", name);
    sx_sbuf b = {0};
    sx_sbuf_adds(&b, r->msgs[i].content);
    int k = 0;
    const cJSON *call;
    cJSON_ArrayForEach(call, calls) {
        const cJSON *f = field(call, "function"), *fn = f ? field(f, "name") : NULL, *args = f ? field(f, "arguments") : NULL;
        if (!cJSON_IsString(fn) || (args && !cJSON_IsString(args) && !cJSON_IsObject(args))) {
            sx_sbuf_free(&b);
            return fail(c, name, "'%s[%d]' must be {\"function\": {\"name\": ..., \"arguments\": \"{...}\"}}", name, k);
        }
        char *a = args && cJSON_IsObject(args) ? cJSON_PrintUnformatted(args) : NULL;
        if (k++ > 0 || r->msgs[i].content[0]) sx_sbuf_adds(&b, "\n");
        sx_sbuf_adds(&b, "<tool_call>\n{\"name\": \"");
        sx_sbuf_adds(&b, fn->valuestring);
        sx_sbuf_adds(&b, "\", \"arguments\": ");
        sx_sbuf_adds(&b, a ? a : cJSON_IsString(args) ? args->valuestring : "{}");
        sx_sbuf_adds(&b, "}\n</tool_call>");
        cJSON_free(a);
    }
    if (b.oom) {
        sx_sbuf_free(&b);
        return fail(c, name, "out of memory");
    }
    free(r->joined[i]);
    r->joined[i] = b.s;
    r->msgs[i].content = b.s;
    return true;
}

static bool is_space(char ch) { return ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r'; }

static void add_trimmed(sx_sbuf *b, const char *s, size_t n) {
    while (n && is_space(*s)) s++, n--;
    while (n && is_space(s[n - 1])) n--;
    if (!n) return;
    if (b->len) sx_sbuf_adds(b, "\n");
    sx_sbuf_add(b, s, n);
}

cJSON *sx_tool_calls_parse(const char *content, const char *id_prefix, sx_sbuf *text) {
    static const char open[] = "<tool_call>", close[] = "</tool_call>";
    cJSON *calls = cJSON_CreateArray();
    sx_sbuf out = {0};
    sx_sbuf_adds(&out, "");
    const char *p = content;
    bool ok = calls != NULL;
    for (const char *at; ok && (at = strstr(p, open));) {
        add_trimmed(&out, p, (size_t)(at - p));
        const char *body = at + sizeof open - 1, *end = strstr(body, close);
        char *json = end ? strndup(body, (size_t)(end - body)) : NULL;
        cJSON *call = json ? cJSON_Parse(json) : NULL;
        free(json);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(call, "name"), *args = cJSON_GetObjectItemCaseSensitive(call, "arguments");
        if (!cJSON_IsString(name) || (args && !cJSON_IsObject(args))) ok = false;
        else {
            char id[96], *a = args ? cJSON_PrintUnformatted(args) : NULL;
            snprintf(id, sizeof id, "call_%s_%d", id_prefix, cJSON_GetArraySize(calls));
            cJSON *tc = cJSON_CreateObject();
            cJSON_AddStringToObject(tc, "id", id);
            cJSON_AddStringToObject(tc, "type", "function");
            cJSON *f = cJSON_AddObjectToObject(tc, "function");
            cJSON_AddStringToObject(f, "name", name->valuestring);
            cJSON_AddStringToObject(f, "arguments", a ? a : "{}");
            cJSON_free(a);
            cJSON_AddItemToArray(calls, tc);
            p = end + sizeof close - 1;
        }
        cJSON_Delete(call);
    }
    if (ok && cJSON_GetArraySize(calls) > 0) {
        add_trimmed(&out, p, strlen(p));
        sx_sbuf_clear(text);
        sx_sbuf_adds(text, out.s ? out.s : "");
        sx_sbuf_free(&out);
        return calls;
    }
    cJSON_Delete(calls);
    sx_sbuf_free(&out);
    sx_sbuf_clear(text);
    sx_sbuf_adds(text, content);
    return NULL;
}

/* Constrained output: llama-server's "grammar" (GBNF) and "json_schema", and
 * OpenAI's response_format {"type": "json_object"} (any object; llama-server's
 * "schema" inside it too) or {"type": "json_schema", "json_schema": {"schema": ...}}. */
static bool parse_grammar(pctx *c, sx_req *r) {
    const cJSON *o = r->root, *gr = field(o, "grammar"), *js = field(o, "json_schema"), *rf = field(o, "response_format");
    const cJSON *schema = NULL;
    const char *from = NULL;
    if (rf) {
        const cJSON *t = cJSON_IsObject(rf) ? field(rf, "type") : NULL;
        if (!cJSON_IsString(t)) return fail(c, "response_format", "'response_format' must be an object with a 'type'");
        if (!strcmp(t->valuestring, "json_object")) {
            schema = field(rf, "schema");
            if (!schema) {
                r->gp.grammar = sx_grammar_json();
                from = "response_format";
            }
        } else if (!strcmp(t->valuestring, "json_schema")) {
            const cJSON *j = field(rf, "json_schema");
            schema = cJSON_IsObject(j) ? field(j, "schema") : NULL;
            if (!schema) return fail(c, "response_format", "'response_format': {\"type\": \"json_schema\"} needs {\"json_schema\": {\"schema\": {...}}}");
        } else if (strcmp(t->valuestring, "text") != 0) {
            return fail(c, "response_format", "'response_format' type must be \"text\", \"json_object\" or \"json_schema\"");
        }
        if (schema || from) from = "response_format";
    }
    if (gr || js) {
        if (from) return fail(c, gr ? "grammar" : "json_schema", "give one of 'grammar', 'json_schema' and 'response_format'");
        if (gr && js) return fail(c, "grammar", "give one of 'grammar', 'json_schema' and 'response_format'");
    }
    if (gr) {
        if (!cJSON_IsString(gr)) return fail(c, "grammar", "'grammar' must be a string (GBNF)");
        if (sx_grammar_validate(gr->valuestring) != SX_OK) return fail(c, "grammar", "'grammar': %s", sx_last_error());
        r->gp.grammar = gr->valuestring;
        return true;
    }
    if (js) schema = js, from = "json_schema";
    if (!schema) return true;
    if (!cJSON_IsObject(schema) && !cJSON_IsTrue(schema)) return fail(c, from, "'%s': the schema must be a JSON object", from);
    char *text = cJSON_PrintUnformatted(schema);
    if (!text) return fail(c, from, "out of memory");
    const sx_status st = sx_json_schema_to_grammar(text, &r->grammar);
    cJSON_free(text);
    if (st != SX_OK) return fail(c, from, "'%s': %s", from, sx_last_error());
    r->gp.grammar = r->grammar;
    return true;
}

static bool parse_sampling(pctx *c, sx_req *r) {
    const cJSON *o = r->root;
    sx_generate_params *g = &r->gp;
    bool set;
    int n = 0;
    /* max_tokens (OpenAI), max_completion_tokens (its newer name), n_predict (llama.cpp) */
    const char *lim[] = {"max_tokens", "max_completion_tokens", "n_predict"};
    for (int i = 0; i < 3; i++) {
        if (!get_int(c, o, lim[i], -1, 1 << 24, &n, &set)) return false;
        if (set) g->n_predict = n;
    }
    if (!get_float(c, o, "temperature", 0, 100, &g->sampling.temp)) return false;
    if (!get_float(c, o, "top_p", 0, 1, &g->sampling.top_p)) return false;
    if (g->sampling.top_p <= 0) return fail(c, "top_p", "'top_p' must be in (0, 1]");
    if (!get_int(c, o, "top_k", 0, 1 << 24, &g->sampling.top_k, NULL)) return false;
    if (!get_float(c, o, "min_p", 0, 1, &g->sampling.min_p)) return false;
    if (!get_float(c, o, "repeat_penalty", 1e-3, 100, &g->sampling.repeat_penalty)) return false;
    if (!get_int(c, o, "repeat_last_n", 0, 1 << 24, &g->sampling.repeat_last_n, NULL)) return false;
    double seed;
    if (!get_num(c, o, "seed", -1, 18446744073709549568.0, &seed, &set)) return false; /* below 2^64 */
    if (set) {
        if (seed != floor(seed)) return fail(c, "seed", "'seed' must be an integer");
        g->sampling.seed = seed < 0 ? SX_SEED_RANDOM : (uint64_t)seed;
    }
    /* logit_bias: OpenAI's {"TOKEN_ID": bias in [-100, 100]}, or llama-server's [[TOKEN_ID, bias or false], ...] (false bans) */
    const cJSON *lb = field(o, "logit_bias");
    if (lb) {
        const int n = cJSON_GetArraySize(lb);
        if ((!cJSON_IsObject(lb) && !cJSON_IsArray(lb)) || n > 1024)
            return fail(c, "logit_bias", "'logit_bias' must map token ids to biases ({\"15043\": -100} or [[15043, false]], at most 1024)");
        r->bias_ids = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
        r->bias_vals = malloc(sizeof(float) * (size_t)(n ? n : 1));
        if (!r->bias_ids || !r->bias_vals) return fail(c, "logit_bias", "out of memory");
        int k = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, lb) {
            const cJSON *bias = cJSON_IsArray(lb) ? cJSON_GetArrayItem(e, 1) : e, *idv = cJSON_IsArray(lb) ? cJSON_GetArrayItem(e, 0) : NULL;
            char *end = NULL;
            const double id = idv ? (cJSON_IsNumber(idv) ? idv->valuedouble : -1) : strtod(e->string, &end);
            if (!(id >= 0 && id <= INT32_MAX && id == floor(id)) || (end && *end) || (cJSON_IsArray(lb) && cJSON_GetArraySize(e) != 2))
                return fail(c, "logit_bias", "'logit_bias': keys are token ids (integers); text keys are not supported");
            if (!(cJSON_IsNumber(bias) && bias->valuedouble >= -100 && bias->valuedouble <= 100) && !cJSON_IsFalse(bias))
                return fail(c, "logit_bias", "'logit_bias': a bias is a number in [-100, 100] (or false to ban the token)");
            r->bias_ids[k] = (int32_t)id;
            r->bias_vals[k++] = cJSON_IsFalse(bias) ? -INFINITY : (float)bias->valuedouble;
        }
        g->sampling.n_logit_bias = k, g->sampling.bias_ids = r->bias_ids, g->sampling.bias_vals = r->bias_vals;
    }
    return get_bool(c, o, "ignore_eos", &g->ignore_eos);
}

static bool parse_spec_exit(pctx *c, sx_req *r) {
    const cJSON *o = r->root;
    sx_generate_params *g = &r->gp;
    const cJSON *f = field(o, "spec");
    bool spec_set = false, exit_set = false, budget_set = false;
    if (f) {
        if (!cJSON_IsString(f) || sx_spec_kind_from_name(f->valuestring, &g->spec.kind) != SX_OK)
            return fail(c, "spec", "'spec' must be \"eagle3\", \"draft\", \"ngram\" or \"none\"");
        spec_set = true;
    }
    if (!get_int(c, o, "draft_max", 1, 32, &g->spec.draft_max, NULL)) return false;
    if (!get_int(c, o, "draft_topk", 1, 32, &g->spec.draft_topk, NULL)) return false;
    if (!get_int(c, o, "draft_nodes", 1, 63, &g->spec.draft_nodes, NULL)) return false;
    if (!get_float(c, o, "draft_p_min", 0, 1, &g->spec.p_min)) return false;
    if (!get_bool(c, o, "draft_lookup", &g->spec.lookup)) return false;
    if (!get_int(c, o, "prompt_lookup_min", 1, 64, &g->spec.ngram_min, NULL)) return false;
    if (!get_int(c, o, "prompt_lookup_max", 1, 64, &g->spec.ngram_max, NULL)) return false;
    if (g->spec.ngram_max < g->spec.ngram_min) return fail(c, "prompt_lookup_max", "'prompt_lookup_max' must be >= 'prompt_lookup_min'");
    if ((f = field(o, "exit"))) {
        if (!cJSON_IsString(f) || sx_exit_kind_from_name(f->valuestring, &g->exit.kind) != SX_OK)
            return fail(c, "exit", "'exit' must be \"specexit\", \"budget\", \"first-answer\" or \"none\"");
        exit_set = true;
    }
    if (!get_float(c, o, "exit_conf", 0, 1, &g->exit.conf)) return false;
    if (!get_float(c, o, "exit_progress", 0, 1, &g->exit.progress)) return false;
    if (!get_float(c, o, "exit_remain", 0, 1e9, &g->exit.remain)) return false;
    if (!get_float(c, o, "exit_alpha", 1e-6, 1, &g->exit.alpha)) return false;
    if (!get_int(c, o, "reasoning_budget", -1, 1 << 24, &g->exit.reasoning_budget, &budget_set)) return false;
    if (!get_bool(c, o, "trace_signals", &g->trace_signals)) return false;
    /* defaults that follow from the request's choices, as on the command line */
    if (!exit_set && spec_set && g->spec.kind != SX_SPEC_EAGLE3 && g->exit.kind == SX_EXIT_SPECEXIT)
        g->exit.kind = g->exit.reasoning_budget >= 0 ? SX_EXIT_BUDGET : SX_EXIT_NONE;
    if (!exit_set && budget_set && g->exit.reasoning_budget >= 0 && g->exit.kind == SX_EXIT_NONE) g->exit.kind = SX_EXIT_BUDGET;
    /* OpenAI's reasoning_effort, mapped onto the exit (explicit exit fields win):
     * high = think to the end; medium = the server's default (SpecExit with the
     * draft's thresholds); low = SpecExit firing at confidence 0.5 (or, without
     * exit signals, a 512-token budget); minimal = no thinking (budget 0) */
    if ((f = field(o, "reasoning_effort"))) {
        const char *e = cJSON_IsString(f) ? f->valuestring : "";
        if (!strcmp(e, "high")) {
            if (!exit_set) g->exit.kind = SX_EXIT_NONE, g->exit.reasoning_budget = -1;
        } else if (!strcmp(e, "low")) {
            if (!exit_set && g->exit.kind == SX_EXIT_SPECEXIT) {
                if (!field(o, "exit_conf")) g->exit.conf = SX_REQ_LOW_EFFORT_CONF;
            } else if (!exit_set && !budget_set) g->exit.kind = SX_EXIT_BUDGET, g->exit.reasoning_budget = SX_REQ_LOW_EFFORT_BUDGET;
        } else if (!strcmp(e, "minimal")) {
            if (!exit_set && !budget_set) g->exit.kind = SX_EXIT_BUDGET, g->exit.reasoning_budget = 0;
        } else if (strcmp(e, "medium") != 0) {
            return fail(c, "reasoning_effort", "'reasoning_effort' must be \"minimal\", \"low\", \"medium\" or \"high\"");
        }
    }
    if (g->exit.kind == SX_EXIT_SPECEXIT && g->spec.kind != SX_SPEC_EAGLE3)
        return fail(c, exit_set ? "exit" : "spec", "\"exit\": \"specexit\" needs \"spec\": \"eagle3\" (the signals come from the EAGLE-3 draft)");
    return true;
}

bool sx_req_parse(const char *body, size_t len, sx_req_kind kind, const sx_generate_params *def, sx_req *r, char *err, size_t err_cap,
                  char *param, size_t param_cap) {
    pctx c = {err, param, err_cap, param_cap};
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->cache_prompt = true;
    r->think = -1;
    r->gp = *def;
    if (err_cap) err[0] = 0;
    if (param_cap) param[0] = 0;
    r->root = cJSON_ParseWithLength(body, len);
    if (!r->root) return fail(&c, "", "the request body is not valid JSON");
    if (!cJSON_IsObject(r->root)) return fail(&c, "", "the request body must be a JSON object");
    if (kind == SX_REQ_CHAT ? !parse_messages(&c, r) : !parse_prompt(&c, r)) return false;
    if (!get_bool(&c, r->root, "stream", &r->stream)) return false;
    const cJSON *so = field(r->root, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so)) return fail(&c, "stream_options", "'stream_options' must be an object");
        if (!get_bool(&c, so, "include_usage", &r->include_usage)) return false;
    }
    if (!get_bool(&c, r->root, "cache_prompt", &r->cache_prompt)) return false;
    const cJSON *kw = field(r->root, "chat_template_kwargs");
    if (kw) {
        if (!cJSON_IsObject(kw)) return fail(&c, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
        bool think = true;
        if (field(kw, "enable_thinking")) {
            if (!get_bool(&c, kw, "enable_thinking", &think)) return false;
            r->think = think;
        }
    }
    const cJSON *model = field(r->root, "model");
    if (model && !cJSON_IsString(model)) return fail(&c, "model", "'model' must be a string");
    r->n_choices = 1;
    if (!get_int(&c, r->root, "n", 1, SX_REQ_MAX_CHOICES, &r->n_choices, NULL)) return false;
    return unsupported(&c, r->root) && parse_logprobs(&c, r) && parse_stop(&c, r) && parse_sampling(&c, r) && parse_spec_exit(&c, r) && parse_grammar(&c, r) &&
           parse_tools(&c, r);
}

void sx_req_free(sx_req *r) {
    for (int i = 0; r->joined && i < r->n_joined; i++) free(r->joined[i]);
    free(r->joined);
    free(r->msgs);
    free(r->grammar);
    free(r->bias_ids), free(r->bias_vals);
    free(r->tools_call_grammar);
    free(r->prompt_ids);
    cJSON_free(r->tools_json);
    cJSON_Delete(r->root);
    memset(r, 0, sizeof *r);
}
