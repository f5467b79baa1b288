/* core/grammar.c — GBNF parser and the matcher (see grammar.h).
 *
 * Compiled form: every alternative of every rule is a run of elements in
 * one array, ended by G_END. An element is a character class (sorted,
 * disjoint code point ranges; negation is resolved at parse time) or a
 * reference to a rule. Repetition and groups become generated rules.
 *
 * Matcher: a parse stack is an array of element positions, the top (last)
 * one a character class to match next, the others where to go on when the
 * rule above them ends. References are expanded eagerly, so advancing by a
 * code point is: for each stack whose top class holds it, step past the
 * class and expand again. An empty stack means the root rule ended. A
 * reference that ends its alternative does not push a continuation (a tail
 * call), so repetition (x ::= y x | ) runs in constant depth. */
#include "core/grammar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/status.h"

enum { G_END = 0, G_CHAR, G_REF };

typedef struct gel {
    int type;
    int a, b; /* G_CHAR: first range, count; G_REF: rule */
} gel;

typedef struct gseq {
    gel *v;
    int n, cap;
} gseq;

typedef struct grule {
    char *name;
    gseq *alts;
    int n_alts, cap_alts;
    bool defined;
    int use_off; /* text offset of the first reference (for "undefined rule") */
} grule;

struct sx_grammar {
    gel *el;            /* [n_el] all alternatives, each ended by G_END */
    int n_el;
    uint32_t *ranges;   /* [2 * n_ranges] lo, hi inclusive */
    int n_ranges;
    int *alt_start;     /* [n_alts] element index */
    int *rule_first;    /* [n_rules] first alternative */
    int *rule_n;        /* [n_rules] alternatives */
    char **names;
    int n_rules;
    int root;
};

/* ---------------------------------------------------------------- parser */

typedef struct parser {
    const char *text, *p;
    grule *rules;
    int n_rules, cap_rules;
    uint32_t *ranges;
    int n_ranges, cap_ranges;
    sx_status err;
} parser;

static sx_status perr(parser *P, const char *at, const char *fmt, const char *arg) {
    if (P->err != SX_OK) return P->err;
    int line = 1, col = 1;
    for (const char *q = P->text; q < at && *q; q++) {
        if (*q == '\n') line++, col = 1;
        else col++;
    }
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg ? arg : "");
    return P->err = sx_set_error(SX_ERR_INVALID_ARG, "grammar: line %d col %d: %s", line, col, msg);
}

static bool grow(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap) return true;
    int c = *cap ? *cap : 8;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

static sx_status oom(parser *P) {
    if (P->err == SX_OK) P->err = sx_set_error(SX_ERR_OUT_OF_MEMORY, "grammar: out of memory");
    return P->err;
}

static sx_status seq_push(parser *P, gseq *s, gel e) {
    if (!grow((void **)&s->v, &s->cap, s->n + 1, sizeof(gel))) return oom(P);
    s->v[s->n++] = e;
    return SX_OK;
}

static int rule_new(parser *P, const char *name, size_t len) {
    if (!grow((void **)&P->rules, &P->cap_rules, P->n_rules + 1, sizeof(grule))) return oom(P), -1;
    grule *r = &P->rules[P->n_rules];
    memset(r, 0, sizeof *r);
    r->name = malloc(len + 1);
    if (!r->name) return oom(P), -1;
    memcpy(r->name, name, len);
    r->name[len] = 0;
    r->use_off = -1;
    return P->n_rules++;
}

static int rule_find(parser *P, const char *name, size_t len) {
    for (int i = 0; i < P->n_rules; i++)
        if (strlen(P->rules[i].name) == len && !memcmp(P->rules[i].name, name, len)) return i;
    return rule_new(P, name, len);
}

/* a generated rule: parent name + "-" + number */
static int rule_gen(parser *P, int parent) {
    char buf[160];
    snprintf(buf, sizeof buf, "%.120s-%d", P->rules[parent].name, P->n_rules);
    const int r = rule_new(P, buf, strlen(buf));
    if (r >= 0) P->rules[r].defined = true;
    return r;
}

static gseq *alt_new(parser *P, int rule) {
    grule *r = &P->rules[rule];
    if (!grow((void **)&r->alts, &r->cap_alts, r->n_alts + 1, sizeof(gseq))) return oom(P), NULL;
    gseq *s = &r->alts[r->n_alts++];
    memset(s, 0, sizeof *s);
    return s;
}

static bool is_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; }

static void skip_space(parser *P, bool newlines) {
    for (;;) {
        const char c = *P->p;
        if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) P->p++;
        else if (c == '#')
            while (*P->p && *P->p != '\n') P->p++;
        else break;
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* one UTF-8 character; -1 on invalid bytes */
static int32_t utf8_next(const char **pp) {
    const unsigned char *s = (const unsigned char *)*pp;
    int n;
    uint32_t c = s[0];
    if (c < 0x80) n = 0;
    else if ((c & 0xE0) == 0xC0) c &= 0x1F, n = 1;
    else if ((c & 0xF0) == 0xE0) c &= 0x0F, n = 2;
    else if ((c & 0xF8) == 0xF0) c &= 0x07, n = 3;
    else return -1;
    for (int i = 1; i <= n; i++) {
        if ((s[i] & 0xC0) != 0x80) return -1;
        c = c << 6 | (s[i] & 0x3F);
    }
    *pp += n + 1;
    return (int32_t)c;
}

/* a character of a literal or class, with escapes; -1 on error */
static int32_t parse_char(parser *P) {
    const char *at = P->p;
    if (*P->p == '\\') {
        P->p++;
        const char e = *P->p++;
        int digits = 0;
        switch (e) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case '0': return 0;
        case '\\': case '"': case '\'': case '[': case ']': case '-': case '/': case '^': case '.': return e;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default: perr(P, at, "unknown escape '\\%s'", (char[]){e ? e : '?', 0}); return -1;
        }
        uint32_t v = 0;
        for (int i = 0; i < digits; i++) {
            const int h = hexval(*P->p);
            if (h < 0) return perr(P, at, "bad hex escape%s", NULL), -1;
            v = v << 4 | (uint32_t)h;
            P->p++;
        }
        if (v > 0x10FFFF) return perr(P, at, "code point out of range%s", NULL), -1;
        return (int32_t)v;
    }
    if (!*P->p || *P->p == '\n') return perr(P, at, "unterminated literal or class%s", NULL), -1;
    const int32_t c = utf8_next(&P->p);
    if (c < 0) perr(P, at, "invalid UTF-8%s", NULL);
    return c;
}

static int cmp_range(const void *a, const void *b) {
    const uint32_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : (x[1] < y[1] ? -1 : x[1] > y[1]);
}

/* sorts and merges ranges[from..] in P->ranges (pairs), negates if asked;
 * returns the element for them */
static sx_status class_finish(parser *P, int from, bool negate, const char *at, gel *out) {
    uint32_t *r = P->ranges ? P->ranges + 2 * from : NULL;
    int n = P->n_ranges - from;
    if (n > 1) qsort(r, (size_t)n, 2 * sizeof(uint32_t), cmp_range);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m > 0 && r[2 * i] <= r[2 * (m - 1) + 1] + 1) {
            if (r[2 * i + 1] > r[2 * (m - 1) + 1]) r[2 * (m - 1) + 1] = r[2 * i + 1];
        } else {
            r[2 * m] = r[2 * i], r[2 * m + 1] = r[2 * i + 1];
            m++;
        }
    }
    if (negate) {
        uint32_t tmp[2 * 512 + 2];
        if (m > 512) return perr(P, at, "character class too long to negate%s", NULL);
        int k = 0;
        uint32_t next = 0;
        for (int i = 0; i < m; i++) {
            if (r[2 * i] > next) tmp[2 * k] = next, tmp[2 * k + 1] = r[2 * i] - 1, k++;
            next = r[2 * i + 1] + 1;
        }
        if (next <= 0x10FFFF) tmp[2 * k] = next, tmp[2 * k + 1] = 0x10FFFF, k++;
        P->n_ranges = from;
        if (!grow((void **)&P->ranges, &P->cap_ranges, 2 * (from + k), sizeof(uint32_t))) return oom(P);
        memcpy(P->ranges + 2 * from, tmp, sizeof(uint32_t) * 2 * (size_t)k);
        m = k;
    }
    P->n_ranges = from + m;
    if (m == 0) return perr(P, at, "character class matches nothing%s", NULL);
    *out = (gel){G_CHAR, from, m};
    return SX_OK;
}

static sx_status add_range(parser *P, uint32_t lo, uint32_t hi) {
    if (!grow((void **)&P->ranges, &P->cap_ranges, 2 * (P->n_ranges + 1), sizeof(uint32_t))) return oom(P);
    P->ranges[2 * P->n_ranges] = lo;
    P->ranges[2 * P->n_ranges + 1] = hi;
    P->n_ranges++;
    return SX_OK;
}

static sx_status parse_alternatives(parser *P, int rule, bool nested);

/* the item seq->v[from..n) made one element (a generated rule when it is several) */
static sx_status item_single(parser *P, int rule, gseq *seq, int from, gel *out) {
    if (seq->n - from == 1) {
        *out = seq->v[from];
        return SX_OK;
    }
    gel items[64];
    const int n = seq->n - from;
    gel *copy = n <= 64 ? items : malloc(sizeof(gel) * (size_t)n);
    if (!copy) return oom(P);
    memcpy(copy, seq->v + from, sizeof(gel) * (size_t)n);
    const int w = rule_gen(P, rule);
    gseq *a = w >= 0 ? alt_new(P, w) : NULL;
    sx_status st = P->err;
    for (int i = 0; i < n && a && st == SX_OK; i++) st = seq_push(P, a, copy[i]);
    if (copy != items) free(copy);
    *out = (gel){G_REF, w, 0};
    return st;
}

/* x* as a rule: S ::= x S | (empty) */
static sx_status star_rule(parser *P, int rule, gel x, int *out) {
    const int s = rule_gen(P, rule);
    if (s < 0) return P->err;
    gseq *a = alt_new(P, s);
    if (!a) return P->err;
    SX_RETURN_IF_ERROR(seq_push(P, a, x));
    a = &P->rules[s].alts[0];
    SX_RETURN_IF_ERROR(seq_push(P, a, (gel){G_REF, s, 0}));
    if (!alt_new(P, s)) return P->err;
    *out = s;
    return SX_OK;
}

/* applies a repetition operator to the last item seq->v[from..n) */
static sx_status repeat(parser *P, int rule, int seq_idx, int from, int min, int max /* -1: unbounded */) {
    gseq *seq = &P->rules[rule].alts[seq_idx];
    gel x;
    SX_RETURN_IF_ERROR(item_single(P, rule, seq, from, &x));
    seq = &P->rules[rule].alts[seq_idx]; /* item_single may have moved the rules */
    seq->n = from;
    for (int i = 0; i < min; i++) SX_RETURN_IF_ERROR(seq_push(P, seq, x));
    if (max < 0) {
        int s = -1;
        SX_RETURN_IF_ERROR(star_rule(P, rule, x, &s));
        return seq_push(P, &P->rules[rule].alts[seq_idx], (gel){G_REF, s, 0});
    }
    /* up to max - min more: R1 ::= x | ; Rk ::= x R(k-1) | */
    int prev = -1;
    for (int k = 0; k < max - min; k++) {
        const int r = rule_gen(P, rule);
        if (r < 0) return P->err;
        gseq *a = alt_new(P, r);
        if (!a) return P->err;
        SX_RETURN_IF_ERROR(seq_push(P, a, x));
        if (prev >= 0) SX_RETURN_IF_ERROR(seq_push(P, &P->rules[r].alts[0], (gel){G_REF, prev, 0}));
        if (!alt_new(P, r)) return P->err;
        prev = r;
    }
    if (prev >= 0) SX_RETURN_IF_ERROR(seq_push(P, &P->rules[rule].alts[seq_idx], (gel){G_REF, prev, 0}));
    return SX_OK;
}

static int parse_int(parser *P) {
    if (*P->p < '0' || *P->p > '9') return -1;
    long v = 0;
    while (*P->p >= '0' && *P->p <= '9') {
        v = v * 10 + (*P->p++ - '0');
        if (v > 100000) return -2;
    }
    return (int)v;
}

/* one alternative: a sequence of items, into a new alternative of `rule` */
static sx_status parse_sequence(parser *P, int rule, bool nested) {
    if (!alt_new(P, rule)) return P->err;
    const int si = P->rules[rule].n_alts - 1;
    int last = -1; /* start of the last item in the sequence */
    for (;;) {
        skip_space(P, nested);
        const char c = *P->p;
        const char *at = P->p;
#define SEQ (&P->rules[rule].alts[si])
        if (c == '"') {
            P->p++;
            last = SEQ->n;
            while (*P->p != '"') {
                const int32_t ch = parse_char(P);
                if (ch < 0) return P->err;
                SX_RETURN_IF_ERROR(add_range(P, (uint32_t)ch, (uint32_t)ch));
                SX_RETURN_IF_ERROR(seq_push(P, SEQ, (gel){G_CHAR, P->n_ranges - 1, 1}));
            }
            P->p++;
            if (SEQ->n == last) last = -1; /* "" is nothing to repeat */
        } else if (c == '[') {
            P->p++;
            bool neg = false;
            if (*P->p == '^') neg = true, P->p++;
            const int from = P->n_ranges;
            while (*P->p != ']') {
                const int32_t lo = parse_char(P);
                if (lo < 0) return P->err;
                int32_t hi = lo;
                if (P->p[0] == '-' && P->p[1] != ']') {
                    P->p++;
                    if ((hi = parse_char(P)) < 0) return P->err;
                    if (hi < lo) return perr(P, at, "range out of order in character class%s", NULL);
                }
                SX_RETURN_IF_ERROR(add_range(P, (uint32_t)lo, (uint32_t)hi));
            }
            P->p++;
            gel e;
            SX_RETURN_IF_ERROR(class_finish(P, from, neg, at, &e));
            last = SEQ->n;
            SX_RETURN_IF_ERROR(seq_push(P, SEQ, e));
        } else if (c == '.') {
            P->p++;
            const int from = P->n_ranges;
            gel e;
            SX_RETURN_IF_ERROR(class_finish(P, from, true, at, &e));
            last = SEQ->n;
            SX_RETURN_IF_ERROR(seq_push(P, SEQ, e));
        } else if (c == '(') {
            P->p++;
            const int g = rule_gen(P, rule);
            if (g < 0) return P->err;
            SX_RETURN_IF_ERROR(parse_alternatives(P, g, true));
            skip_space(P, true);
            if (*P->p != ')') return perr(P, P->p, "expected ')'%s", NULL);
            P->p++;
            last = SEQ->n;
            SX_RETURN_IF_ERROR(seq_push(P, SEQ, (gel){G_REF, g, 0}));
        } else if (is_name_char(c)) {
            const char *s = P->p;
            while (is_name_char(*P->p)) P->p++;
            const char *after = P->p;
            skip_space(P, false);
            if (!nested && !strncmp(P->p, "::=", 3)) { /* the next rule: this sequence ended at a line break that was skipped */
                P->p = s;
                return perr(P, s, "expected a line break before the next rule%s", NULL);
            }
            P->p = after;
            const int r = rule_find(P, s, (size_t)(after - s));
            if (r < 0) return P->err;
            if (P->rules[r].use_off < 0) P->rules[r].use_off = (int)(s - P->text);
            last = SEQ->n;
            SX_RETURN_IF_ERROR(seq_push(P, SEQ, (gel){G_REF, r, 0}));
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (last < 0) return perr(P, at, "'%s' has nothing to repeat", (char[]){c, 0});
            P->p++;
            int min = 0, max = -1;
            if (c == '+') min = 1;
            else if (c == '?') max = 1;
            else if (c == '{') {
                skip_space(P, false);
                min = parse_int(P);
                if (min < 0) return perr(P, at, "expected {m}, {m,} or {m,n} with numbers up to 100000%s", NULL);
                skip_space(P, false);
                max = min;
                if (*P->p == ',') {
                    P->p++;
                    skip_space(P, false);
                    max = *P->p == '}' ? -1 : parse_int(P);
                    if (max == -2 || (max < 0 && *P->p != '}')) return perr(P, at, "expected {m}, {m,} or {m,n}%s", NULL);
                    skip_space(P, false);
                }
                if (*P->p != '}') return perr(P, at, "expected '}'%s", NULL);
                P->p++;
                if (max >= 0 && max < min) return perr(P, at, "{m,n} with n < m%s", NULL);
                if (min > 10000 || max > 10000) return perr(P, at, "repetition count above 10000%s", NULL);
            }
            SX_RETURN_IF_ERROR(repeat(P, rule, si, last, min, max));
            last = -1;
        } else {
            break;
        }
#undef SEQ
    }
    return SX_OK;
}

static sx_status parse_alternatives(parser *P, int rule, bool nested) {
    SX_RETURN_IF_ERROR(parse_sequence(P, rule, nested));
    for (;;) {
        const char *at = P->p;
        skip_space(P, true); /* a line may start with '|' to go on with the rule (a rule never starts with it) */
        if (*P->p != '|') {
            P->p = at;
            return SX_OK;
        }
        P->p++;
        skip_space(P, true);
        SX_RETURN_IF_ERROR(parse_sequence(P, rule, nested));
    }
}

static sx_status parse_rules(parser *P) {
    for (;;) {
        skip_space(P, true);
        if (!*P->p) return SX_OK;
        const char *s = P->p;
        if (!is_name_char(*s)) return perr(P, s, "expected a rule name%s", NULL);
        while (is_name_char(*P->p)) P->p++;
        const size_t len = (size_t)(P->p - s);
        skip_space(P, false);
        if (strncmp(P->p, "::=", 3)) return perr(P, P->p, "expected '::=' after the rule name%s", NULL);
        P->p += 3;
        skip_space(P, true);
        const int r = rule_find(P, s, len);
        if (r < 0) return P->err;
        if (P->rules[r].defined) return perr(P, s, "rule '%s' defined twice", P->rules[r].name);
        P->rules[r].defined = true;
        SX_RETURN_IF_ERROR(parse_alternatives(P, r, false));
        skip_space(P, false);
        if (*P->p && *P->p != '\n') return perr(P, P->p, "unexpected '%s'", (char[]){*P->p, 0});
    }
}

/* ---- checks and flattening ---- */

static sx_status check_left_recursion(parser *P, const sx_grammar *g) {
    const int R = g->n_rules;
    bool *nullable = calloc((size_t)R, 1);
    int *state = calloc((size_t)R, sizeof(int));
    int *stack = malloc(sizeof(int) * (size_t)R * 2);
    if (!nullable || !state || !stack) {
        free(nullable), free(state), free(stack);
        return oom(P);
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (int r = 0; r < R; r++) {
            if (nullable[r]) continue;
            for (int a = 0; a < g->rule_n[r] && !nullable[r]; a++) {
                int i = g->alt_start[g->rule_first[r] + a];
                while (g->el[i].type == G_REF && nullable[g->el[i].a]) i++;
                if (g->el[i].type == G_END) nullable[r] = changed = true;
            }
        }
    }
    /* depth-first search over "r may start with s" edges; a back edge is left recursion */
    sx_status st = SX_OK;
    for (int r0 = 0; r0 < R && st == SX_OK; r0++) {
        if (state[r0]) continue;
        int sp = 0;
        stack[sp++] = r0, stack[sp++] = 0; /* rule, next edge index (alternative*1024 + position) */
        state[r0] = 1;
        while (sp && st == SX_OK) {
            const int r = stack[sp - 2];
            int *k = &stack[sp - 1];
            int next = -1;
            while (next < 0 && *k < g->rule_n[r] * 1024) {
                const int a = *k / 1024, pos = *k % 1024;
                const int i = g->alt_start[g->rule_first[r] + a];
                (*k)++;
                /* the position-th element is reachable if all before it are nullable references */
                bool reach = true;
                for (int j = 0; j < pos && reach; j++) reach = g->el[i + j].type == G_REF && nullable[g->el[i + j].a];
                if (!reach || g->el[i + pos].type != G_REF) {
                    *k = (a + 1) * 1024;
                    continue;
                }
                next = g->el[i + pos].a;
            }
            if (next < 0) {
                state[r] = 2;
                sp -= 2;
            } else if (state[next] == 1) {
                st = sx_set_error(SX_ERR_INVALID_ARG, "grammar: rule '%s' is left-recursive (it can reach itself without reading a character)",
                                  g->names[next]);
            } else if (state[next] == 0) {
                state[next] = 1;
                stack[sp++] = next, stack[sp++] = 0;
            }
        }
    }
    free(nullable), free(state), free(stack);
    return P->err = st;
}

void sx_grammar_destroy(sx_grammar *g) {
    if (!g) return;
    for (int i = 0; i < g->n_rules; i++) free(g->names ? g->names[i] : NULL);
    free(g->names), free(g->el), free(g->ranges), free(g->alt_start), free(g->rule_first), free(g->rule_n);
    free(g);
}

static void parser_free(parser *P) {
    for (int i = 0; i < P->n_rules; i++) {
        free(P->rules[i].name);
        for (int a = 0; a < P->rules[i].n_alts; a++) free(P->rules[i].alts[a].v);
        free(P->rules[i].alts);
    }
    free(P->rules);
    free(P->ranges);
}

sx_status sx_grammar_parse(const char *text, sx_grammar **out) {
    *out = NULL;
    if (!text) return sx_set_error(SX_ERR_INVALID_ARG, "grammar: no text");
    parser P = {.text = text, .p = text};
    sx_status st = parse_rules(&P);
    int root = -1;
    for (int r = 0; r < P.n_rules && st == SX_OK; r++) {
        if (!P.rules[r].defined) st = perr(&P, P.text + P.rules[r].use_off, "undefined rule '%s'", P.rules[r].name);
        if (!strcmp(P.rules[r].name, "root")) root = r;
    }
    if (st == SX_OK && root < 0) st = sx_set_error(SX_ERR_INVALID_ARG, "grammar: no 'root' rule");
    sx_grammar *g = st == SX_OK ? calloc(1, sizeof *g) : NULL;
    if (st == SX_OK && !g) st = oom(&P);
    if (st == SX_OK) {
        int n_el = 0, n_alts = 0;
        for (int r = 0; r < P.n_rules; r++) {
            n_alts += P.rules[r].n_alts;
            for (int a = 0; a < P.rules[r].n_alts; a++) n_el += P.rules[r].alts[a].n + 1;
        }
        g->n_rules = P.n_rules;
        g->root = root;
        g->el = malloc(sizeof(gel) * (size_t)(n_el + 1));
        g->alt_start = malloc(sizeof(int) * (size_t)(n_alts + 1));
        g->rule_first = malloc(sizeof(int) * (size_t)P.n_rules);
        g->rule_n = malloc(sizeof(int) * (size_t)P.n_rules);
        g->names = calloc((size_t)P.n_rules, sizeof(char *));
        if (!g->el || !g->alt_start || !g->rule_first || !g->rule_n || !g->names) st = oom(&P);
        int e = 0, k = 0;
        for (int r = 0; r < P.n_rules && st == SX_OK; r++) {
            g->rule_first[r] = k;
            g->rule_n[r] = P.rules[r].n_alts;
            g->names[r] = P.rules[r].name;
            P.rules[r].name = NULL;
            for (int a = 0; a < P.rules[r].n_alts; a++) {
                g->alt_start[k++] = e;
                for (int i = 0; i < P.rules[r].alts[a].n; i++) g->el[e++] = P.rules[r].alts[a].v[i];
                g->el[e++] = (gel){G_END, 0, 0};
            }
        }
        g->n_el = e;
        g->ranges = P.ranges;
        g->n_ranges = P.n_ranges;
        P.ranges = NULL;
    }
    if (st == SX_OK) st = check_left_recursion(&P, g);
    parser_free(&P);
    if (st != SX_OK) {
        sx_grammar_destroy(g);
        return st;
    }
    *out = g;
    return SX_OK;
}

/* --------------------------------------------------------------- matcher */

typedef struct sset {
    int *data;        /* stacks' elements, bottom first */
    int n_data, cap_data;
    int *start, *len; /* [n] */
    uint32_t *hash;   /* [n] */
    int n, cap;
    int *table;       /* [tcap] open addressing: stack index + 1, 0 = free (dedup in O(1)) */
    int tcap;
} sset;

struct sx_gmatch {
    const sx_grammar *g;
    sset cur;
    uint32_t pval; /* an unfinished UTF-8 character: its bits so far */
    int prem;      /* the continuation bytes it still needs */
    int plen;      /* and its length in bytes */
    sset tmp[3];
    bool err;    /* the last call ran out of room: more stacks, depth or work than allowed */
    size_t work; /* stack elements written by the current call */
};

static void sset_free(sset *s) { free(s->data), free(s->start), free(s->len), free(s->hash), free(s->table); }
static void sset_clear(sset *s) {
    if (s->n && s->table) memset(s->table, 0, sizeof(int) * (size_t)s->tcap);
    s->n = s->n_data = 0;
}

/* the table slot of a stack equal to (base, nb, top, hash h), or of the free slot where it goes */
static int sset_slot(const sset *s, const int *base, int nb, int top, uint32_t h) {
    const int len = nb + (top >= 0);
    for (uint32_t k = h & (uint32_t)(s->tcap - 1);; k = (k + 1) & (uint32_t)(s->tcap - 1)) {
        const int i = s->table[k] - 1;
        if (i < 0) return (int)k;
        if (s->hash[i] != h || s->len[i] != len) continue;
        if (!len) return (int)k; /* two empty stacks */
        const int *d = s->data + s->start[i];
        if ((!nb || !memcmp(d, base, sizeof(int) * (size_t)nb)) && (top < 0 || d[nb] == top)) return (int)k;
    }
}

/* keeps the table at most half full */
static bool sset_reserve_table(sset *s, int n) {
    if (2 * n <= s->tcap) return true;
    int cap = s->tcap ? s->tcap : 64;
    while (2 * n > cap) cap *= 2;
    int *t = calloc((size_t)cap, sizeof(int));
    if (!t) return false;
    free(s->table);
    s->table = t;
    s->tcap = cap;
    for (int i = 0; i < s->n; i++) {
        uint32_t k = s->hash[i] & (uint32_t)(cap - 1);
        while (t[k]) k = (k + 1) & (uint32_t)(cap - 1);
        t[k] = i + 1;
    }
    return true;
}

static uint32_t hash_ints(const int *v, int n, int top) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < n; i++) h = (h ^ (uint32_t)v[i]) * 16777619u;
    return (h ^ (uint32_t)top) * 16777619u;
}

/* adds the stack base[0..nb) + top (top < 0: none), unless it is there */
static void sset_add(sx_gmatch *m, sset *s, const int *base, int nb, int top) {
    const int len = nb + (top >= 0);
    /* every stack made counts, duplicates too (hashing and comparing them is the cost): a pathologically ambiguous
     * grammar gets bounded time per call, and too many distinct stacks are refused as well */
    if ((m->work += (size_t)len + 1) > SX_GRAMMAR_MAX_WORK || s->n >= SX_GRAMMAR_MAX_STACKS || !sset_reserve_table(s, s->n + 1)) {
        m->err = true;
        return;
    }
    const uint32_t h = hash_ints(base, nb, top);
    const int slot = sset_slot(s, base, nb, top, h);
    if (s->table[slot]) return; /* already there */
    if (!grow((void **)&s->data, &s->cap_data, s->n_data + len, sizeof(int))) {
        m->err = true;
        return;
    }
    int c = s->cap;
    if (!grow((void **)&s->start, &c, s->n + 1, sizeof(int))) {
        m->err = true;
        return;
    }
    c = s->cap;
    if (!grow((void **)&s->len, &c, s->n + 1, sizeof(int))) {
        m->err = true;
        return;
    }
    c = s->cap;
    if (!grow((void **)&s->hash, &c, s->n + 1, sizeof(uint32_t))) {
        m->err = true;
        return;
    }
    s->cap = c;
    if (nb) memcpy(s->data + s->n_data, base, sizeof(int) * (size_t)nb);
    if (top >= 0) s->data[s->n_data + nb] = top;
    s->start[s->n] = s->n_data;
    s->len[s->n] = len;
    s->hash[s->n] = h;
    s->n++;
    s->table[slot] = s->n;
    s->n_data += len;
}

/* the stacks that continue from base[0..nb) + pos, references expanded */
static void expand(sx_gmatch *m, sset *out, const int *base, int nb, int pos) {
    const sx_grammar *g = m->g;
    for (;;) {
        const gel *e = &g->el[pos];
        if (e->type == G_END) {
            if (nb == 0) {
                sset_add(m, out, base, 0, -1);
                return;
            }
            pos = base[--nb];
            continue;
        }
        if (e->type == G_CHAR) {
            sset_add(m, out, base, nb, pos);
            return;
        }
        const int cont = pos + 1;
        const int *nbase = base;
        int nn = nb;
        int local[32], *heap = NULL;
        if (g->el[cont].type != G_END) { /* else a tail call: nothing to come back to */
            if (nb + 1 > SX_GRAMMAR_MAX_DEPTH) {
                m->err = true;
                return;
            }
            int *buf = nb + 1 <= 32 ? local : (heap = malloc(sizeof(int) * (size_t)(nb + 1)));
            if (!buf) {
                m->err = true;
                return;
            }
            if (nb) memcpy(buf, base, sizeof(int) * (size_t)nb);
            buf[nb] = cont;
            nbase = buf;
            nn = nb + 1;
        }
        const int r = e->a;
        for (int a = 0; a < g->rule_n[r]; a++) expand(m, out, nbase, nn, g->alt_start[g->rule_first[r] + a]);
        free(heap);
        return;
    }
}

static bool class_has(const sx_grammar *g, const gel *e, uint32_t lo, uint32_t hi) {
    const uint32_t *r = g->ranges + 2 * e->a;
    for (int i = 0; i < e->b; i++)
        if (r[2 * i] <= hi && lo <= r[2 * i + 1]) return true;
    return false;
}

/* from -> to: the stacks after code point c */
static void advance(sx_gmatch *m, const sset *from, sset *to, uint32_t c) {
    sset_clear(to);
    for (int i = 0; i < from->n && !m->err; i++) {
        if (!from->len[i]) continue;
        const int *d = from->data + from->start[i];
        const int top = d[from->len[i] - 1];
        if (class_has(m->g, &m->g->el[top], c, c)) expand(m, to, d, from->len[i] - 1, top + 1);
    }
}

/* the smallest code point of a well-formed UTF-8 sequence of len bytes (shorter ones are overlong) */
static const uint32_t g_utf8_min[5] = {0, 0, 0x80, 0x800, 0x10000};

/* a well-formed character: not overlong, not a surrogate, at most U+10FFFF */
static bool utf8_valid(uint32_t c, int len) { return c >= g_utf8_min[len] && c <= 0x10FFFF && (c < 0xD800 || c > 0xDFFF); }

/* whether a stack of s could take a well-formed character that starts with the pending bits */
static bool partial_possible(const sx_gmatch *m, const sset *s, uint32_t pval, int prem, int plen) {
    uint32_t lo = pval << (6 * prem), hi = lo | ((1u << (6 * prem)) - 1);
    if (lo < g_utf8_min[plen]) lo = g_utf8_min[plen];
    if (hi > 0x10FFFF) hi = 0x10FFFF;
    if (lo > hi) return false;
    for (int i = 0; i < s->n; i++) {
        if (!s->len[i]) continue;
        const int top = s->data[s->start[i] + s->len[i] - 1];
        if (class_has(m->g, &m->g->el[top], lo, hi)) return true;
    }
    return false;
}

/* Runs bytes from the current state. Returns the resulting set (m->cur when
 * no character completed) and the pending UTF-8 state, or NULL if rejected. */
static const sset *run(sx_gmatch *m, const char *bytes, size_t n, uint32_t *pval, int *prem, int *plen) {
    const sset *cur = &m->cur;
    m->work = 0;
    int flip = 0;
    uint32_t v = m->pval;
    int rem = m->prem, len = m->plen;
    for (size_t i = 0; i < n; i++) {
        const unsigned char b = (unsigned char)bytes[i];
        if (rem == 0) {
            if (b < 0x80) v = b, len = 1;
            else if ((b & 0xE0) == 0xC0) v = b & 0x1F, rem = 1, len = 2;
            else if ((b & 0xF0) == 0xE0) v = b & 0x0F, rem = 2, len = 3;
            else if ((b & 0xF8) == 0xF0) v = b & 0x07, rem = 3, len = 4;
            else return NULL;
        } else {
            if ((b & 0xC0) != 0x80) return NULL;
            v = v << 6 | (b & 0x3F);
            rem--;
        }
        if (rem) continue;
        if (!utf8_valid(v, len)) return NULL; /* an overlong form would spell '{' as F0 80 81 BB */
        sset *next = &m->tmp[flip];
        flip = (flip + 1) % 2;
        advance(m, cur, next, v);
        if (m->err || next->n == 0) return NULL;
        cur = next;
    }
    if (rem && !partial_possible(m, cur, v, rem, len)) return NULL;
    *pval = v;
    *prem = rem;
    *plen = len;
    return cur;
}

sx_status sx_gmatch_create(const sx_grammar *g, sx_gmatch **out) {
    *out = NULL;
    sx_gmatch *m = calloc(1, sizeof *m);
    if (!m) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "grammar: out of memory");
    m->g = g;
    sx_gmatch_reset(m);
    if (m->err) {
        sx_gmatch_destroy(m);
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "grammar: out of memory or too deeply nested");
    }
    *out = m;
    return SX_OK;
}

void sx_gmatch_destroy(sx_gmatch *m) {
    if (!m) return;
    sset_free(&m->cur);
    for (int i = 0; i < 3; i++) sset_free(&m->tmp[i]);
    free(m);
}

void sx_gmatch_reset(sx_gmatch *m) {
    sset_clear(&m->cur);
    m->pval = 0, m->prem = 0, m->plen = 0, m->err = false;
    const sx_grammar *g = m->g;
    for (int a = 0; a < g->rule_n[g->root]; a++) expand(m, &m->cur, NULL, 0, g->alt_start[g->rule_first[g->root] + a]);
}

static bool sset_copy(sset *d, const sset *s) {
    int c = d->cap_data;
    if (!grow((void **)&d->data, &c, s->n_data, sizeof(int))) return false;
    d->cap_data = c;
    c = d->cap;
    if (!grow((void **)&d->start, &c, s->n, sizeof(int))) return false;
    c = d->cap;
    if (!grow((void **)&d->len, &c, s->n, sizeof(int))) return false;
    c = d->cap;
    if (!grow((void **)&d->hash, &c, s->n, sizeof(uint32_t))) return false;
    d->cap = c;
    if (s->n_data) memcpy(d->data, s->data, sizeof(int) * (size_t)s->n_data);
    if (s->n) {
        memcpy(d->start, s->start, sizeof(int) * (size_t)s->n);
        memcpy(d->len, s->len, sizeof(int) * (size_t)s->n);
        memcpy(d->hash, s->hash, sizeof(uint32_t) * (size_t)s->n);
    }
    d->n = s->n, d->n_data = s->n_data;
    free(d->table); /* rebuilt from the hashes */
    d->table = NULL, d->tcap = 0;
    return sset_reserve_table(d, d->n > 0 ? d->n : 1);
}

sx_status sx_gmatch_copy(sx_gmatch *dst, const sx_gmatch *src) {
    if (dst == src) return SX_OK;
    if (dst->g != src->g) return sx_set_error(SX_ERR_INVALID_ARG, "grammar: copy between matchers of different grammars");
    if (!sset_copy(&dst->cur, &src->cur)) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "grammar: out of memory");
    dst->pval = src->pval, dst->prem = src->prem, dst->plen = src->plen, dst->err = false;
    return SX_OK;
}

sx_status sx_gmatch_clone(const sx_gmatch *src, sx_gmatch **out) {
    SX_RETURN_IF_ERROR(sx_gmatch_create(src->g, out));
    sx_status st = sx_gmatch_copy(*out, src);
    if (st != SX_OK) {
        sx_gmatch_destroy(*out);
        *out = NULL;
    }
    return st;
}

bool sx_gmatch_allows(sx_gmatch *m, const char *bytes, size_t n) {
    uint32_t v;
    int rem, len;
    m->err = false;
    return run(m, bytes, n, &v, &rem, &len) != NULL;
}

bool sx_gmatch_accept(sx_gmatch *m, const char *bytes, size_t n) {
    uint32_t v;
    int rem, len;
    m->err = false;
    const sset *r = run(m, bytes, n, &v, &rem, &len);
    if (!r) return false;
    if (r != &m->cur) { /* swap the result in */
        sset *t = (sset *)r, keep = m->cur;
        m->cur = *t;
        *t = keep;
    }
    m->pval = v, m->prem = rem, m->plen = len;
    return true;
}

bool sx_gmatch_failed(const sx_gmatch *m) { return m->err; }

bool sx_gmatch_can_end(const sx_gmatch *m) {
    if (m->prem) return false;
    for (int i = 0; i < m->cur.n; i++)
        if (!m->cur.len[i]) return true;
    return false;
}

bool sx_gmatch_must_end(const sx_gmatch *m) {
    if (m->prem || !m->cur.n) return false;
    for (int i = 0; i < m->cur.n; i++)
        if (m->cur.len[i]) return false;
    return true;
}

static const char json_object_gbnf[] =
    "root   ::= object\n"
    "value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
    "object ::= \"{\" ws ( string \":\" ws value (\",\" ws string \":\" ws value)* )? \"}\" ws\n"
    "array  ::= \"[\" ws ( value (\",\" ws value)* )? \"]\" ws\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1f] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4}) )* \"\\\"\" ws\n"
    "number ::= \"-\"? (\"0\" | [1-9] [0-9]{0,15}) (\".\" [0-9]+)? ([eE] [-+]? [0-9]+)? ws\n"
    "ws     ::= | \" \" | \"\\n\" [ \\t]{0,20}\n";

const char *sx_grammar_json(void) { return json_object_gbnf; }

sx_status sx_grammar_validate(const char *gbnf) {
    sx_grammar *g;
    SX_RETURN_IF_ERROR(sx_grammar_parse(gbnf, &g));
    sx_grammar_destroy(g);
    return SX_OK;
}
