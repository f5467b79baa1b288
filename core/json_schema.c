/* core/json_schema.c — JSON Schema -> GBNF (sx_json_schema_to_grammar; the
 * supported keywords are listed in core/grammar.h).
 *
 * Every schema becomes a rule matching one JSON value followed by optional
 * whitespace (`ws`, at most one line break and 20 indent characters, so a
 * model cannot loop on blanks). Object properties are written in the
 * schema's order: required ones always, optional ones may be left out. The
 * shared rules (json-string, json-value, ...) are the generic JSON grammar. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/grammar.h"

typedef struct conv {
    char *out;
    size_t len, cap;
    const cJSON *root;
    int n_rules;
    struct ref_rule {
        char *ref;
        char name[48];
    } *refs;
    int n_refs;
    int depth;
    sx_status err;
} conv;

static void put(conv *c, const char *fmt, ...) {
    if (c->err != SX_OK) return;
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (c->len + (size_t)n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4096;
        while (cap < c->len + (size_t)n + 1) cap *= 2;
        char *p = realloc(c->out, cap);
        if (!p) {
            c->err = sx_set_error(SX_ERR_OUT_OF_MEMORY, "json schema: out of memory");
            return;
        }
        c->out = p, c->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(c->out + c->len, c->cap - c->len, fmt, ap);
    va_end(ap);
    c->len += (size_t)n;
}

/* a GBNF literal for the bytes of s */
static void put_literal(conv *c, const char *s) {
    put(c, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') put(c, "\\%c", *p);
        else if (*p == '\n') put(c, "\\n");
        else if (*p < 0x20) put(c, "\\x%02x", *p);
        else put(c, "%c", *p);
    }
    put(c, "\"");
}

static sx_status fail(conv *c, sx_status code, const char *msg, const char *arg) {
    if (c->err == SX_OK) c->err = sx_set_error(code, "json schema: %s%s%s", msg, arg ? " " : "", arg ? arg : "");
    return c->err;
}

/* a new rule name from a hint */
static void new_name(conv *c, const char *hint, char name[48]) {
    char h[24];
    int k = 0;
    for (const char *p = hint; *p && k < 20; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) h[k++] = *p;
        else if (k && h[k - 1] != '-') h[k++] = '-';
    h[k] = 0;
    snprintf(name, 48, "%s-%d", k ? h : "v", c->n_rules++);
}

static const char *const g_known[] = {"type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems",
                                      "maxItems", "minLength", "maxLength", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs",
                                      "definitions", "title", "description", "default", "examples", "$schema", "$id", "$comment",
                                      "format", "readOnly", "writeOnly", "deprecated"};

static sx_status gen(conv *c, const cJSON *s, const char *hint, char name[48]);

static int get_int(conv *c, const cJSON *s, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, key);
    if (!v) return dflt;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 100000 || v->valuedouble != (double)(int)v->valuedouble) {
        fail(c, SX_ERR_INVALID_ARG, "expected a whole number from 0 to 100000 for", key);
        return dflt;
    }
    return (int)v->valuedouble;
}

/* name ::= alternatives of the JSON values in arr (const / enum) */
static sx_status gen_literals(conv *c, const cJSON *arr, bool single, const char *hint, char name[48]) {
    new_name(c, hint, name);
    put(c, "%s ::= (", name);
    int k = 0;
    const cJSON *v = arr;
    if (!single) v = arr->child;
    for (; v; v = single ? NULL : v->next) {
        char *txt = cJSON_PrintUnformatted(v);
        if (!txt) return fail(c, SX_ERR_OUT_OF_MEMORY, "out of memory", NULL);
        put(c, k++ ? " | " : " ");
        put_literal(c, txt);
        cJSON_free(txt);
    }
    if (!k) return fail(c, SX_ERR_INVALID_ARG, "'enum' is empty", NULL);
    put(c, " ) ws\n");
    return c->err;
}

static sx_status gen_object(conv *c, const cJSON *s, const char *hint, char name[48]) {
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    if (req && !cJSON_IsArray(req)) return fail(c, SX_ERR_INVALID_ARG, "'required' must be an array", NULL);
    if (!props || !props->child) { /* any keys; values of additionalProperties' schema */
        if (cJSON_IsFalse(addl)) {
            new_name(c, hint, name);
            put(c, "%s ::= \"{\" ws \"}\" ws\n", name);
            return c->err;
        }
        char val[48] = "json-value";
        if (addl && cJSON_IsObject(addl)) SX_RETURN_IF_ERROR(gen(c, addl, "value", val));
        new_name(c, hint, name);
        put(c, "%s ::= \"{\" ws ( json-string \":\" ws %s (\",\" ws json-string \":\" ws %s)* )? \"}\" ws\n", name, val, val);
        return c->err;
    }
    if (!cJSON_IsObject(props)) return fail(c, SX_ERR_INVALID_ARG, "'properties' must be an object", NULL);
    int n = 0;
    for (const cJSON *p = props->child; p; p = p->next) n++;
    char(*kv)[48] = malloc(sizeof(char[48]) * (size_t)n);
    bool *required = calloc((size_t)n, 1);
    if (!kv || !required) {
        free(kv), free(required);
        return fail(c, SX_ERR_OUT_OF_MEMORY, "out of memory", NULL);
    }
    int i = 0;
    for (const cJSON *p = props->child; p && c->err == SX_OK; p = p->next, i++) {
        char val[48];
        if (gen(c, p, p->string, val) != SX_OK) break;
        for (const cJSON *r = req ? req->child : NULL; r; r = r->next)
            if (cJSON_IsString(r) && !strcmp(r->valuestring, p->string)) required[i] = true;
        new_name(c, p->string, kv[i]);
        put(c, "%s ::= ", kv[i]);
        char *key = cJSON_PrintUnformatted(&(cJSON){.type = cJSON_String, .valuestring = p->string});
        if (!key) {
            fail(c, SX_ERR_OUT_OF_MEMORY, "out of memory", NULL);
            break;
        }
        put_literal(c, key);
        cJSON_free(key);
        put(c, " ws \":\" ws %s\n", val);
    }
    for (const cJSON *r = req ? req->child : NULL; r && c->err == SX_OK; r = r->next)
        if (!cJSON_IsString(r) || !cJSON_GetObjectItemCaseSensitive(props, r->valuestring))
            fail(c, SX_ERR_INVALID_ARG, "a 'required' name is not in 'properties':", cJSON_IsString(r) ? r->valuestring : "(not a string)");
    /* first_i: nothing written yet, from property i on; rest_i: something written */
    const int base = c->n_rules;
    c->n_rules += 2 * (n + 1);
    put(c, "obj%d-first-%d ::= \"\"\nobj%d-rest-%d ::= \"\"\n", base, n, base, n);
    for (i = n - 1; i >= 0 && c->err == SX_OK; i--) {
        if (required[i]) {
            put(c, "obj%d-rest-%d ::= \",\" ws %s obj%d-rest-%d\n", base, i, kv[i], base, i + 1);
            put(c, "obj%d-first-%d ::= %s obj%d-rest-%d\n", base, i, kv[i], base, i + 1);
        } else {
            put(c, "obj%d-rest-%d ::= (\",\" ws %s)? obj%d-rest-%d\n", base, i, kv[i], base, i + 1);
            put(c, "obj%d-first-%d ::= %s obj%d-rest-%d | obj%d-first-%d\n", base, i, kv[i], base, i + 1, base, i + 1);
        }
    }
    free(kv), free(required);
    new_name(c, hint, name);
    put(c, "%s ::= \"{\" ws obj%d-first-0 \"}\" ws\n", name, base);
    return c->err;
}

static sx_status gen_array(conv *c, const cJSON *s, const char *hint, char name[48]) {
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(s, "prefixItems");
    if (prefix) { /* a tuple */
        if (!cJSON_IsArray(prefix)) return fail(c, SX_ERR_INVALID_ARG, "'prefixItems' must be an array", NULL);
        if (items && !cJSON_IsFalse(items)) return fail(c, SX_ERR_UNSUPPORTED, "'items' after 'prefixItems' is not supported", NULL);
        char parts[64][48];
        int n = 0;
        for (const cJSON *p = prefix->child; p; p = p->next) {
            if (n == 64) return fail(c, SX_ERR_UNSUPPORTED, "more than 64 'prefixItems'", NULL);
            SX_RETURN_IF_ERROR(gen(c, p, "item", parts[n++]));
        }
        new_name(c, hint, name);
        put(c, "%s ::= \"[\" ws", name);
        for (int i = 0; i < n; i++) put(c, "%s %s", i ? " \",\" ws" : "", parts[i]);
        put(c, " \"]\" ws\n");
        return c->err;
    }
    char item[48] = "json-value";
    if (items && !cJSON_IsTrue(items)) SX_RETURN_IF_ERROR(gen(c, items, "item", item));
    const int lo = get_int(c, s, "minItems", 0), hi = get_int(c, s, "maxItems", -1);
    if (c->err != SX_OK) return c->err;
    if (hi >= 0 && hi < lo) return fail(c, SX_ERR_INVALID_ARG, "maxItems < minItems", NULL);
    new_name(c, hint, name);
    put(c, "%s ::= \"[\" ws ", name);
    if (hi == 0) put(c, "\"]\" ws\n");
    else {
        char more[32];
        if (hi < 0) snprintf(more, sizeof more, "{%d,}", lo > 1 ? lo - 1 : 0);
        else snprintf(more, sizeof more, "{%d,%d}", lo > 1 ? lo - 1 : 0, hi - 1);
        put(c, "%s%s (\",\" ws %s)%s%s \"]\" ws\n", lo == 0 ? "( " : "", item, item, more, lo == 0 ? " )?" : "");
    }
    return c->err;
}

static sx_status gen_type(conv *c, const cJSON *s, const char *t, const char *hint, char name[48]) {
    if (!strcmp(t, "object")) return gen_object(c, s, hint, name);
    if (!strcmp(t, "array")) return gen_array(c, s, hint, name);
    if (!strcmp(t, "string")) {
        const int lo = get_int(c, s, "minLength", 0), hi = get_int(c, s, "maxLength", -1);
        if (c->err != SX_OK) return c->err;
        if (lo == 0 && hi < 0) return snprintf(name, 48, "json-string"), SX_OK;
        if (hi >= 0 && hi < lo) return fail(c, SX_ERR_INVALID_ARG, "maxLength < minLength", NULL);
        new_name(c, hint, name);
        if (hi < 0) put(c, "%s ::= \"\\\"\" json-char{%d,} \"\\\"\" ws\n", name, lo);
        else put(c, "%s ::= \"\\\"\" json-char{%d,%d} \"\\\"\" ws\n", name, lo, hi);
        return c->err;
    }
    static const char *const prim[][2] = {{"number", "json-number"}, {"integer", "json-integer"}, {"boolean", "json-boolean"},
                                          {"null", "json-null"}};
    for (int i = 0; i < 4; i++)
        if (!strcmp(t, prim[i][0])) return snprintf(name, 48, "%s", prim[i][1]), SX_OK;
    return fail(c, SX_ERR_INVALID_ARG, "unknown type", t);
}

static sx_status gen_ref(conv *c, const char *ref, char name[48]) {
    for (int i = 0; i < c->n_refs; i++)
        if (!strcmp(c->refs[i].ref, ref)) return snprintf(name, 48, "%s", c->refs[i].name), SX_OK;
    const cJSON *target = NULL;
    if (!strcmp(ref, "#")) target = c->root;
    else if (!strncmp(ref, "#/$defs/", 8)) target = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c->root, "$defs"), ref + 8);
    else if (!strncmp(ref, "#/definitions/", 14))
        target = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c->root, "definitions"), ref + 14);
    else return fail(c, SX_ERR_UNSUPPORTED, "only local references (#/$defs/NAME, #/definitions/NAME) are supported, not", ref);
    if (!target) return fail(c, SX_ERR_INVALID_ARG, "unresolved $ref", ref);
    void *p = realloc(c->refs, sizeof *c->refs * (size_t)(c->n_refs + 1));
    if (!p) return fail(c, SX_ERR_OUT_OF_MEMORY, "out of memory", NULL);
    c->refs = p;
    struct ref_rule *r = &c->refs[c->n_refs];
    if (!(r->ref = strdup(ref))) return fail(c, SX_ERR_OUT_OF_MEMORY, "out of memory", NULL);
    c->n_refs++;
    const char *slash = strrchr(ref, '/');
    new_name(c, slash ? slash + 1 : "root", r->name);
    snprintf(name, 48, "%s", r->name);
    /* the rule is named before its body is made, so recursive schemas refer to it */
    char body[48];
    SX_RETURN_IF_ERROR(gen(c, target, r->name, body));
    put(c, "%s ::= %s\n", name, body);
    return c->err;
}

/* name ::= parts[0] | parts[1] | ... */
static sx_status put_alternatives(conv *c, const char *hint, char (*parts)[48], int n, char name[48]) {
    new_name(c, hint, name);
    put(c, "%s ::=", name);
    for (int i = 0; i < n; i++) put(c, "%s %s", i ? " |" : "", parts[i]);
    put(c, "\n");
    return c->err;
}

static sx_status gen(conv *c, const cJSON *s, const char *hint, char name[48]) {
    if (c->err != SX_OK) return c->err;
    if (cJSON_IsTrue(s)) return snprintf(name, 48, "json-value"), SX_OK;
    if (!cJSON_IsObject(s)) return fail(c, SX_ERR_INVALID_ARG, "a schema must be an object or true, at", hint);
    if (++c->depth > 64) return fail(c, SX_ERR_UNSUPPORTED, "schema nested deeper than 64", NULL);
    for (const cJSON *k = s->child; k; k = k->next) {
        bool known = false;
        for (size_t i = 0; i < sizeof g_known / sizeof *g_known && !known; i++) known = !strcmp(k->string, g_known[i]);
        if (!known) return fail(c, SX_ERR_UNSUPPORTED, "keyword not supported (it would not be enforced):", k->string);
    }
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref"), *cst = cJSON_GetObjectItemCaseSensitive(s, "const");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum"), *type = cJSON_GetObjectItemCaseSensitive(s, "type");
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(s, "anyOf");
    if (!any) any = cJSON_GetObjectItemCaseSensitive(s, "oneOf");
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(s, "allOf");
    sx_status st = SX_OK;
    if (ref) st = cJSON_IsString(ref) ? gen_ref(c, ref->valuestring, name) : fail(c, SX_ERR_INVALID_ARG, "'$ref' must be a string", NULL);
    else if (cst) st = gen_literals(c, cst, true, hint, name);
    else if (en) st = cJSON_IsArray(en) ? gen_literals(c, en, false, hint, name) : fail(c, SX_ERR_INVALID_ARG, "'enum' must be an array", NULL);
    else if (all) {
        if (!cJSON_IsArray(all) || cJSON_GetArraySize(all) != 1)
            st = fail(c, SX_ERR_UNSUPPORTED, "'allOf' with other than one schema is not supported", NULL);
        else st = gen(c, all->child, hint, name);
    } else if (any) {
        if (!cJSON_IsArray(any) || !any->child) return fail(c, SX_ERR_INVALID_ARG, "'anyOf' / 'oneOf' must be a non-empty array", NULL);
        char parts[32][48];
        int n = 0;
        for (const cJSON *a = any->child; a && st == SX_OK; a = a->next) {
            if (n == 32) st = fail(c, SX_ERR_UNSUPPORTED, "more than 32 alternatives in anyOf / oneOf", NULL);
            else st = gen(c, a, hint, parts[n++]);
        }
        if (st == SX_OK) st = put_alternatives(c, hint, parts, n, name);
    } else if (cJSON_IsArray(type)) {
        char parts[8][48];
        int n = 0;
        for (const cJSON *t = type->child; t && st == SX_OK; t = t->next) {
            if (!cJSON_IsString(t) || n == 8) st = fail(c, SX_ERR_INVALID_ARG, "'type' must be a string or a list of type names", NULL);
            else st = gen_type(c, s, t->valuestring, hint, parts[n++]);
        }
        if (st == SX_OK && !n) st = fail(c, SX_ERR_INVALID_ARG, "'type' is an empty list", NULL);
        if (st == SX_OK) st = put_alternatives(c, hint, parts, n, name);
    } else if (cJSON_IsString(type)) st = gen_type(c, s, type->valuestring, hint, name);
    else if (type) st = fail(c, SX_ERR_INVALID_ARG, "'type' must be a string or a list of type names", NULL);
    else if (cJSON_GetObjectItemCaseSensitive(s, "properties")) st = gen_object(c, s, hint, name);
    else if (cJSON_GetObjectItemCaseSensitive(s, "items") || cJSON_GetObjectItemCaseSensitive(s, "prefixItems")) st = gen_array(c, s, hint, name);
    else snprintf(name, 48, "json-value");
    c->depth--;
    return st;
}

static const char g_base_rules[] =
    "ws ::= | \" \" | \"\\n\" [ \\t]{0,20}\n"
    "json-char ::= [^\"\\\\\\x00-\\x1f] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})\n"
    "json-string ::= \"\\\"\" json-char* \"\\\"\" ws\n"
    "json-integer ::= \"-\"? (\"0\" | [1-9] [0-9]{0,15}) ws\n"
    "json-number ::= \"-\"? (\"0\" | [1-9] [0-9]{0,15}) (\".\" [0-9]+)? ([eE] [-+]? [0-9]+)? ws\n"
    "json-boolean ::= (\"true\" | \"false\") ws\n"
    "json-null ::= \"null\" ws\n"
    "json-value ::= json-object | json-array | json-string | json-number | json-boolean | json-null\n"
    "json-object ::= \"{\" ws ( json-string \":\" ws json-value (\",\" ws json-string \":\" ws json-value)* )? \"}\" ws\n"
    "json-array ::= \"[\" ws ( json-value (\",\" ws json-value)* )? \"]\" ws\n";

/* the grammar made so far must parse: a failure is this converter's bug, reported as such */
static sx_status finish_grammar(conv *c, char **out_gbnf) {
    for (int i = 0; i < c->n_refs; i++) free(c->refs[i].ref);
    free(c->refs);
    c->refs = NULL, c->n_refs = 0;
    sx_status st = c->err != SX_OK ? c->err : sx_grammar_validate(c->out);
    if (st != SX_OK) {
        free(c->out);
        return st;
    }
    *out_gbnf = c->out;
    return SX_OK;
}

/* body: the call after its <tool_call> token (a lazy grammar's), else whole calls */
static sx_status tools_grammar(const char *tools_json, const char *only, bool parallel, bool body, char **out_gbnf) {
    *out_gbnf = NULL;
    cJSON *tools = tools_json ? cJSON_Parse(tools_json) : NULL;
    if (!cJSON_IsArray(tools) || !tools->child) {
        cJSON_Delete(tools);
        return sx_set_error(SX_ERR_INVALID_ARG, "tools: a non-empty JSON array is needed");
    }
    conv c = {0};
    put(&c, "%s", g_base_rules);
    char calls[64][48];
    int n = 0;
    for (const cJSON *t = tools->child; t && c.err == SX_OK; t = t->next) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name"), *params = cJSON_GetObjectItemCaseSensitive(f, "parameters");
        if (!cJSON_IsString(name)) {
            fail(&c, SX_ERR_INVALID_ARG, "tools: each tool needs function.name", NULL);
            break;
        }
        if (only && strcmp(only, name->valuestring) != 0) continue;
        if (n == 64) {
            fail(&c, SX_ERR_UNSUPPORTED, "tools: more than 64 tools", NULL);
            break;
        }
        char args[48] = "json-object";
        for (int i = 0; i < c.n_refs; i++) free(c.refs[i].ref); /* $refs are the tool's own */
        c.n_refs = 0;
        c.root = params;
        if (params && gen(&c, params, name->valuestring, args) != SX_OK) break;
        new_name(&c, name->valuestring, calls[n]);
        put(&c, "%s ::= \"%s\\n{\\\"name\\\": \" ", calls[n], body ? "" : "<tool_call>");
        char *quoted = cJSON_PrintUnformatted(name);
        if (!quoted) {
            fail(&c, SX_ERR_OUT_OF_MEMORY, "out of memory", NULL);
            break;
        }
        put_literal(&c, quoted);
        cJSON_free(quoted);
        put(&c, " \", \\\"arguments\\\": \" %s \"}\\n</tool_call>\"\n", args);
        n++;
    }
    if (c.err == SX_OK && !n) fail(&c, SX_ERR_INVALID_ARG, "tool_choice names a function that is not in 'tools':", only ? only : "");
    if (c.err == SX_OK) {
        put(&c, "tool-call ::=");
        for (int i = 0; i < n; i++) put(&c, "%s %s", i ? " |" : "", calls[i]);
        put(&c, parallel && !body ? "\nroot ::= tool-call (\"\\n\" tool-call)*\n" : "\nroot ::= tool-call\n");
    }
    cJSON_Delete(tools);
    return finish_grammar(&c, out_gbnf);
}

sx_status sx_tools_grammar(const char *tools_json, const char *only, bool parallel, char **out_gbnf) {
    return tools_grammar(tools_json, only, parallel, false, out_gbnf);
}

sx_status sx_tools_call_grammar(const char *tools_json, char **out_gbnf) { return tools_grammar(tools_json, NULL, false, true, out_gbnf); }

sx_status sx_json_schema_to_grammar(const char *schema_json, char **out_gbnf) {
    *out_gbnf = NULL;
    if (!schema_json) return sx_set_error(SX_ERR_INVALID_ARG, "json schema: no text");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(schema_json, &end, true);
    if (!root) return sx_set_error(SX_ERR_INVALID_ARG, "json schema: not valid JSON (at byte %ld)", (long)(end ? end - schema_json : 0));
    conv c = {.root = root};
    char top[48];
    put(&c, "%s", g_base_rules);
    if (gen(&c, root, "root", top) == SX_OK) put(&c, "root ::= %s\n", top);
    cJSON_Delete(root);
    return finish_grammar(&c, out_gbnf);
}
