/* tools/cmd_chat.c — `specexit chat`: a conversation in the terminal.
 *
 * Each line read is a user turn; the answer streams back (a reasoning
 * model's thinking dimmed on a terminal). Every turn formats the whole
 * conversation with the model's chat template; the session keeps its KV
 * cache between turns and only the part of the prompt it does not already
 * hold is evaluated (sx_session_common_prefix). Speculation and the exit
 * policy work as in `run`. Commands: /exit (or end of input), /reset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/cli.h"
#include "tools/server_text.h"

typedef struct {
    sx_text_asm text;
    sx_sbuf dr, dc;
    bool tty, shown_reasoning, shown_content;
} chat_out;

static void show(chat_out *o) {
    if (o->dr.len) {
        if (o->tty && !o->shown_reasoning) fputs("\033[2m", stdout);
        fwrite(o->dr.s, 1, o->dr.len, stdout);
        o->shown_reasoning = true;
    }
    if (o->dc.len) {
        if (o->shown_reasoning && !o->shown_content) fputs(o->tty ? "\033[0m\n" : "\n", stdout);
        fwrite(o->dc.s, 1, o->dc.len, stdout);
        o->shown_content = true;
    }
    fflush(stdout);
    sx_sbuf_clear(&o->dr);
    sx_sbuf_clear(&o->dc);
}

static bool on_token(int32_t token, const char *piece, size_t len, void *user) {
    (void)token;
    chat_out *o = user;
    sx_text_push(&o->text, piece, len, &o->dr, &o->dc);
    show(o);
    return true;
}

static void help(void) {
    printf("usage: specexit chat [-m MODEL.gguf] [options]\n\n"
           "A conversation: each line is a user turn, the answer streams back. /reset forgets the\n"
           "conversation, /exit (or end of input) quits. Statistics of each turn go to stderr.\n\n");
    sx_cli_print_common_help(stdout);
}

typedef struct {
    sx_chat_message *m;
    int n, cap;
} conversation;

static bool conv_add(conversation *c, const char *role, const char *content) {
    if (c->n == c->cap) {
        const int cap = c->cap ? 2 * c->cap : 16;
        sx_chat_message *p = realloc(c->m, sizeof *p * (size_t)cap);
        if (!p) return false;
        c->m = p, c->cap = cap;
    }
    char *copy = strdup(content);
    if (!copy) return false;
    c->m[c->n++] = (sx_chat_message){role, copy};
    return true;
}

static void conv_trim(conversation *c, int n) {
    while (c->n > n) free((char *)c->m[--c->n].content);
}

int sx_cmd_chat(int argc, char **argv) {
    sx_cli c;
    const int begun = sx_cli_begin(&c, argc, argv, "chat", -1, help);
    if (begun >= 0) return begun;
    sx_engine_options eo;
    sx_cli_engine_options(&c, &eo);
    sx_engine *e = NULL;
    sx_session *s = NULL;
    sx_status st = sx_engine_create(&eo, &e);
    if (st != SX_OK) return sx_cli_fail("loading model", st);
    sx_session_options so;
    sx_cli_session_options(&c, &so);
    if ((st = sx_session_create(e, &so, &s)) != SX_OK) {
        sx_engine_destroy(e);
        return sx_cli_fail("creating session", st);
    }
    sx_engine_info info;
    sx_engine_get_info(e, &info);
    sx_generate_params gp;
    sx_cli_generate_params(&c, &info, &gp);
    const bool tty_in = isatty(STDIN_FILENO), tty_out = isatty(STDOUT_FILENO);
    conversation conv = {0};
    if (c.system && !conv_add(&conv, "system", c.system)) {
        fprintf(stderr, "error: out of memory\n");
        sx_session_destroy(s);
        sx_engine_destroy(e);
        return 1;
    }
    const int n_fixed = conv.n;
    fprintf(stderr, "[specexit] chat with %s (%s, %s) on %s; draft %s, spec %s, exit %s. /reset forgets, /exit quits.\n", info.model_name,
            info.arch, info.quant, info.backend, info.draft, sx_spec_kind_name(gp.spec.kind), sx_exit_kind_name(gp.exit.kind));
    char *line = NULL;
    size_t line_cap = 0;
    int rc = 0;
    for (;;) {
        if (tty_in) fputs("> ", stdout), fflush(stdout);
        const ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0) break;
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!len) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            conv_trim(&conv, n_fixed);
            sx_session_reset(s);
            fprintf(stderr, "[specexit] conversation forgotten\n");
            continue;
        }
        if (!conv_add(&conv, "user", line)) {
            rc = 1;
            fprintf(stderr, "error: out of memory\n");
            break;
        }
        char *prompt = NULL;
        int32_t *ids = NULL;
        int n_ids = 0;
        st = sx_chat_apply(e, conv.m, conv.n, true, !c.no_think, &prompt);
        if (st == SX_OK) st = sx_tokenize(e, prompt, true, true, &ids, &n_ids);
        free(prompt);
        if (st != SX_OK) {
            sx_cli_fail("formatting the conversation", st);
        } else if (n_ids >= sx_session_n_ctx(s)) {
            fprintf(stderr, "error: the conversation has %d tokens, the context %d: /reset, or raise --ctx-size\n", n_ids, sx_session_n_ctx(s));
            st = SX_ERR_CONTEXT_FULL;
        }
        if (st != SX_OK) { /* this turn is dropped; the conversation goes on */
            conv_trim(&conv, conv.n - 1);
            free(ids);
            continue;
        }
        int keep = sx_session_common_prefix(s, ids, n_ids);
        if (keep >= n_ids) keep = n_ids - 1;
        sx_session_truncate(s, keep);
        chat_out out = {.tty = tty_out};
        sx_text_init(&out.text, info.thinking && !c.no_think, NULL, 0);
        sx_generate_stats gs;
        st = sx_generate(s, ids + keep, n_ids - keep, &gp, on_token, &out, &gs);
        if (st == SX_OK) {
            sx_text_finish(&out.text, &out.dr, &out.dc);
            show(&out);
        }
        if (out.tty && out.shown_reasoning && !out.shown_content) fputs("\033[0m", stdout);
        fputs("\n", stdout);
        fflush(stdout);
        free(ids);
        if (st != SX_OK) {
            sx_cli_fail("generating", st);
            sx_session_reset(s);
            conv_trim(&conv, conv.n - 1);
        } else {
            fprintf(stderr, "[specexit] prompt %d tokens (%d cached), %.1f ms; generated %d tokens, %.1f tok/s, %.2f tokens/pass", n_ids, keep,
                    gs.prefill_ms, gs.n_generated_tokens, gs.decode_tok_s, gs.accept_len_mean);
            if (gs.thinking_tokens) fprintf(stderr, "; thinking %d tokens%s%s", gs.thinking_tokens, gs.exited_early ? ", ended by " : "",
                                            gs.exited_early ? gs.exit_reason : "");
            fprintf(stderr, "\n");
            /* the answer joins the conversation (the template drops earlier turns' thinking itself) */
            if (!conv_add(&conv, "assistant", out.text.content_text.s ? out.text.content_text.s : "")) rc = 1;
            sx_generate_stats_free(&gs);
        }
        sx_text_free(&out.text);
        sx_sbuf_free(&out.dr);
        sx_sbuf_free(&out.dc);
        if (rc) break;
    }
    free(line);
    conv_trim(&conv, 0);
    free(conv.m);
    sx_session_destroy(s);
    sx_engine_destroy(e);
    return rc;
}
