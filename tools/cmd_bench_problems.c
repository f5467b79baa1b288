/* tools/cmd_bench_problems.c — `specexit bench --problems FILE.jsonl --modes ...`:
 * accuracy, tokens and time of the ways to end a reasoning model's thinking,
 * side by side on the same problems, modes interleaved per problem.
 *
 * Modes: plain (no speculation, full thinking), eagle3 (EAGLE-3, full
 * thinking), budget (EAGLE-3 + a hard thinking budget), first-answer (EAGLE-3,
 * end the thinking after the first paragraph that states "answer is"),
 * specexit (EAGLE-3 + the draft's exit signals), ngram (prompt lookup, no
 * draft, full thinking; not in the default list). Problems are JSON lines
 * {"prompt": "...", "answer": "..."}; the answer is read from the last
 * "answer is N" in the text after the thinking. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"

#define MAX_MODES 6

typedef struct {
    char name[24];
    sx_spec_kind spec;
    sx_exit_kind exit;
    int correct, n;
    double gen_tokens, think_tokens, accept_sum, seconds, exited;
    int accept_n;
} mode_stats;

typedef struct {
    char *text;
    size_t len, cap;
} textbuf;

static bool collect(int32_t token, const char *piece, size_t len, void *user) {
    (void)token;
    textbuf *t = user;
    if (t->len + len + 1 > t->cap) {
        size_t cap = (t->cap + len + 1) * 2;
        char *p = realloc(t->text, cap);
        if (!p) return false;
        t->text = p, t->cap = cap;
    }
    memcpy(t->text + t->len, piece, len);
    t->len += len;
    t->text[t->len] = 0;
    return true;
}

/* The number after the last "answer is" in the text after </think> (or in all
 * of it when there is no </think>); "" when absent. */
static void extract_answer(const char *text, char *out, size_t cap) {
    out[0] = 0;
    const char *start = strstr(text, "</think>");
    start = start ? start : text;
    const char *hit = NULL;
    for (const char *p = start; (p = strstr(p, "answer is")) != NULL; p++) hit = p;
    if (!hit) return;
    hit += strlen("answer is");
    while (*hit == ' ') hit++;
    size_t n = 0;
    if (*hit == '-' && n + 1 < cap) out[n++] = *hit++;
    while (isdigit((unsigned char)*hit) && n + 1 < cap) out[n++] = *hit++;
    out[n] = 0;
}

static bool parse_mode(const char *name, mode_stats *m) {
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    if (!strcmp(name, "plain")) m->spec = SX_SPEC_NONE, m->exit = SX_EXIT_NONE;
    else if (!strcmp(name, "eagle3")) m->spec = SX_SPEC_EAGLE3, m->exit = SX_EXIT_NONE;
    else if (!strcmp(name, "budget")) m->spec = SX_SPEC_EAGLE3, m->exit = SX_EXIT_BUDGET;
    else if (!strcmp(name, "first-answer")) m->spec = SX_SPEC_EAGLE3, m->exit = SX_EXIT_FIRST_ANSWER;
    else if (!strcmp(name, "specexit")) m->spec = SX_SPEC_EAGLE3, m->exit = SX_EXIT_SPECEXIT;
    else if (!strcmp(name, "ngram")) m->spec = SX_SPEC_NGRAM, m->exit = SX_EXIT_NONE;
    else return false;
    return true;
}

int sx_cmd_bench_problems(sx_cli *c) {
    mode_stats modes[MAX_MODES];
    int n_modes = 0;
    char list[256];
    snprintf(list, sizeof list, "%s", c->modes ? c->modes : "plain,eagle3,budget,first-answer,specexit");
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n_modes == MAX_MODES || !parse_mode(tok, &modes[n_modes])) {
            fprintf(stderr, "error: unknown or too many modes at '%s' (plain, eagle3, budget, first-answer, specexit, ngram)\n", tok);
            return 1;
        }
        n_modes++;
    }
    char *data = sx_cli_read_file(c->problems);
    if (!data) {
        fprintf(stderr, "error: cannot read problems file '%s'\n", c->problems);
        return 1;
    }
    /* parse the JSON lines */
    int n_prob = 0, cap = 0;
    char **prompts = NULL, **answers = NULL;
    int line_no = 0;
    for (char *save = NULL, *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        while (isspace((unsigned char)*line)) line++;
        if (!*line) continue;
        cJSON *j = cJSON_Parse(line);
        const cJSON *p = j ? cJSON_GetObjectItemCaseSensitive(j, "prompt") : NULL, *a = j ? cJSON_GetObjectItemCaseSensitive(j, "answer") : NULL;
        if (!cJSON_IsString(p) || !(cJSON_IsString(a) || cJSON_IsNumber(a))) {
            fprintf(stderr, "error: %s line %d: expected {\"prompt\": \"...\", \"answer\": \"...\"}\n", c->problems, line_no);
            cJSON_Delete(j);
            free(data);
            return 1;
        }
        if (n_prob == cap) {
            cap = cap ? 2 * cap : 64;
            prompts = realloc(prompts, sizeof(char *) * (size_t)cap);
            answers = realloc(answers, sizeof(char *) * (size_t)cap);
        }
        prompts[n_prob] = strdup(p->valuestring);
        char num[64];
        if (cJSON_IsNumber(a)) snprintf(num, sizeof num, "%lld", (long long)a->valuedouble);
        answers[n_prob] = strdup(cJSON_IsString(a) ? a->valuestring : num);
        n_prob++;
        cJSON_Delete(j);
    }
    free(data);
    if (n_prob == 0) {
        fprintf(stderr, "error: %s has no problems\n", c->problems);
        return 1;
    }
    sx_engine_options eo;
    sx_cli_engine_options(c, &eo);
    sx_engine *e = NULL;
    int rc = 0;
    sx_status st = sx_engine_create(&eo, &e);
    if (st != SX_OK) rc = sx_cli_fail("loading model", st);
    sx_engine_info info;
    if (rc == 0) sx_engine_get_info(e, &info);
    for (int m = 0; rc == 0 && m < n_modes; m++)
        if (modes[m].spec == SX_SPEC_EAGLE3 && strcmp(info.draft, "eagle3") != 0) {
            fprintf(stderr, "error: mode %s needs an EAGLE-3 draft (-md DRAFT.gguf)\n", modes[m].name);
            rc = 1;
        }
    for (int i = 0; rc == 0 && i < n_prob; i++) {
        char *formatted = NULL;
        int32_t *ids = NULL;
        int n_ids = 0;
        st = sx_chat_prompt(e, c->system, prompts[i], !c->no_think, &formatted);
        if (st == SX_OK) st = sx_tokenize(e, formatted, true, true, &ids, &n_ids);
        free(formatted);
        for (int m = 0; st == SX_OK && m < n_modes; m++) {
            sx_session *s = NULL;
            sx_session_options so;
            sx_cli_session_options(c, &so); /* -b and -ctk apply here too */
            st = sx_session_create(e, &so, &s);
            sx_cli gc = *c;
            gc.spec_set = gc.exit_set = true;
            gc.spec.kind = modes[m].spec;
            gc.exit.kind = modes[m].exit;
            if (modes[m].exit != SX_EXIT_BUDGET) gc.exit.reasoning_budget = -1;
            else if (gc.exit.reasoning_budget < 0) gc.exit.reasoning_budget = 64;
            sx_generate_params gp;
            sx_cli_generate_params(&gc, &info, &gp);
            textbuf tb = {0};
            sx_generate_stats gs;
            if (st == SX_OK) st = sx_generate(s, ids, n_ids, &gp, collect, &tb, &gs);
            sx_session_destroy(s);
            if (st != SX_OK) {
                free(tb.text);
                break;
            }
            char got[64];
            extract_answer(tb.text ? tb.text : "", got, sizeof got);
            const bool ok = got[0] && !strcmp(got, answers[i]);
            mode_stats *ms = &modes[m];
            ms->n++;
            ms->correct += ok;
            ms->gen_tokens += gs.n_generated_tokens;
            ms->think_tokens += gs.thinking_tokens;
            ms->seconds += (gs.prefill_ms + gs.decode_ms) / 1e3;
            ms->exited += gs.exited_early;
            if (gs.n_steps > 0) ms->accept_sum += gs.accept_len_mean, ms->accept_n++;
            fprintf(stderr, "[bench] %d/%d %-12s %-4s answer %-6s (want %s) %4d tokens, %4d thinking%s, %.2f tok/pass, %.0f ms\n", i + 1, n_prob,
                    ms->name, ok ? "ok" : "MISS", got[0] ? got : "-", answers[i], gs.n_generated_tokens, gs.thinking_tokens,
                    gs.exited_early ? " (exited early)" : "", gs.accept_len_mean, gs.prefill_ms + gs.decode_ms);
            sx_generate_stats_free(&gs);
            free(tb.text);
        }
        free(ids);
        if (st != SX_OK) rc = sx_cli_fail("generating", st);
    }
    if (rc == 0) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "model", info.model_name);
        cJSON_AddStringToObject(root, "backend", info.backend);
        cJSON_AddStringToObject(root, "device", info.device);
        cJSON_AddStringToObject(root, "problems", c->problems);
        cJSON_AddNumberToObject(root, "n_problems", n_prob);
        cJSON *jm = cJSON_AddObjectToObject(root, "modes");
        const mode_stats *ref = NULL;
        for (int m = 0; m < n_modes; m++)
            if (!strcmp(modes[m].name, "eagle3")) ref = &modes[m];
        fprintf(stderr, "\n| mode | accuracy | mean generated tokens | mean thinking tokens | accept len | total s | tokens vs eagle3 | time vs eagle3 |\n"
                        "|---|---|---|---|---|---|---|---|\n");
        for (int m = 0; m < n_modes; m++) {
            const mode_stats *ms = &modes[m];
            cJSON *o = cJSON_AddObjectToObject(jm, ms->name);
            const double acc = ms->n ? (double)ms->correct / ms->n : 0, gen = ms->n ? ms->gen_tokens / ms->n : 0,
                         think = ms->n ? ms->think_tokens / ms->n : 0, al = ms->accept_n ? ms->accept_sum / ms->accept_n : 0;
            cJSON_AddNumberToObject(o, "accuracy", acc);
            cJSON_AddNumberToObject(o, "mean_generated_tokens", gen);
            cJSON_AddNumberToObject(o, "mean_thinking_tokens", think);
            cJSON_AddNumberToObject(o, "accept_len_mean", al);
            cJSON_AddNumberToObject(o, "total_seconds", ms->seconds);
            cJSON_AddNumberToObject(o, "exited_early_rate", ms->n ? ms->exited / ms->n : 0);
            const double tok_ratio = ref && ref->gen_tokens > 0 ? ms->gen_tokens / ref->gen_tokens : 0;
            const double time_ratio = ref && ref->seconds > 0 ? ms->seconds / ref->seconds : 0;
            if (ref) {
                cJSON_AddNumberToObject(o, "tokens_vs_eagle3", tok_ratio);
                cJSON_AddNumberToObject(o, "time_vs_eagle3", time_ratio);
            }
            fprintf(stderr, "| %s | %.1f%% | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f |\n", ms->name, 100 * acc, gen, think, al, ms->seconds, tok_ratio,
                    time_ratio);
        }
        char *str = cJSON_Print(root);
        printf("%s\n", str);
        free(str);
        cJSON_Delete(root);
    }
    for (int i = 0; i < n_prob; i++) free(prompts[i]), free(answers[i]);
    free(prompts), free(answers);
    sx_engine_destroy(e);
    return rc;
}
