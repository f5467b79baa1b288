/* tests/test_spec.c — invariants of speculative decoding and the exit.
 *
 *   test_spec BACKEND TARGET.gguf EAGLE3.gguf [EAGLE3_D2T.gguf] [--other-draft M.gguf]
 *             [--bad-draft FILE:SUBSTRING ...] [--kv TYPE] [--ngl N]
 *
 *  1. greedy speculative output == plain greedy output, token for token, for
 *     chain and tree drafts of several depths/widths, EAGLE-3 and classic
 *     drafts, the draft on BACKEND and on another backend (cpu-ref);
 *  2. with an exit policy, every token equals the target's own greedy choice
 *     given the tokens before it, except the one forced </think>;
 *  3. sampling acceptance keeps the target distribution (chi-square test of
 *     the first verified token, fixed seed, many draws);
 *  4. bad drafts are rejected at load with a message naming the problem;
 *  5. a conversation continued on the same session (a second sx_generate)
 *     gives the same tokens with speculation as without: the context left by
 *     a speculative turn holds its tokens in order (KV moves applied).
 * --ngl N: the target's last N blocks on BACKEND, the rest on the CPU (-ngl);
 * every invariant still holds.
 * Exit 77 when BACKEND has no device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/grammar.h"
#include "core/sampler.h"
#include "core/specexit.h"
#include "tests/check.h"

typedef struct {
    int32_t v[2048];
    int n;
} toklist;

static bool collect(int32_t tok, const char *piece, size_t len, void *user) {
    (void)piece, (void)len;
    toklist *l = user;
    if (l->n < 2048) l->v[l->n++] = tok;
    return true;
}

static int g_ngl = -1; /* --ngl N: the target's -ngl */

static sx_engine *open_engine(const char *backend, const char *target, const char *draft, const char *draft_backend) {
    sx_engine_options eo;
    sx_engine_options_init(&eo);
    eo.n_gpu_layers = g_ngl;
    eo.model_path = target;
    eo.backend = backend;
    eo.n_threads = 2;
    eo.draft_path = draft;
    eo.draft_backend = draft_backend;
    sx_engine *e = NULL;
    sx_status st = sx_engine_create(&eo, &e);
    if (st != SX_OK) printf("FAIL: open %s (draft %s on %s): %s\n", target, draft ? draft : "-", draft_backend ? draft_backend : backend, sx_last_error()), g_failed++;
    return e;
}

static sx_kv_type g_kv;    /* --kv TYPE: the target's KV cache (q8_0: quantized cache, same invariants) */

static sx_status run(sx_engine *e, const int32_t *prompt, int n_prompt, const sx_generate_params *p, toklist *out, sx_generate_stats *gs) {
    sx_session *s;
    sx_session_options so;
    sx_session_options_init(&so);
    so.n_ctx = 512;
    so.kv_type = g_kv;
    SX_RETURN_IF_ERROR(sx_session_create(e, &so, &s));
    out->n = 0;
    sx_status st = sx_generate(s, prompt, n_prompt, p, collect, out, gs);
    sx_session_destroy(s);
    return st;
}

static int32_t g_prompt[] = {40, 71, 99, 3, 17, 250, 12, 88, 5, 200, 31};
#define N_PROMPT (int)(sizeof g_prompt / sizeof g_prompt[0])

static bool g_quick;       /* GPU backends on slow emulators: fewer configurations, no sampling draws */
static bool g_no_sampling; /* skip the sampling draws (covered on the tiny models) */
static const char *g_only; /* --only NAME: that group of checks alone (debugging) */
static bool want(const char *name) { return !g_only || !strcmp(g_only, name); }

static void greedy_invariants(const char *backend, const char *target, const char *const *drafts, int n_drafts) {
    sx_engine *plain = open_engine(backend, target, NULL, NULL);
    if (!plain) return;
    sx_generate_params gp;
    sx_generate_params_init(&gp);
    gp.n_predict = 48;
    gp.sampling.temp = 0;
    gp.ignore_eos = true;
    toklist ref;
    sx_generate_stats gs;
    sx_status st = run(plain, g_prompt, N_PROMPT, &gp, &ref, &gs);
    CHECK(st == SX_OK && ref.n == 48, "plain greedy on %s: %s", target, sx_last_error());
    sx_engine_destroy(plain);
    typedef struct { int d, k, t; float p_min; bool lookup; } tree_cfg; /* p_min -1: the device's default; lookup: --draft-lookup */
    static const tree_cfg cfg_all[] = {{1, 1, 1, -1, 0}, {3, 1, 3, 0, 0}, {3, 2, 6, 0.05f, 0}, {6, 3, 30, 0.9f, 0}, {3, 4, 40, 0, 1},
                                       {4, 8, 40, 0, 0},  {5, 4, 16, -1, 0}};
    const int n_cfg = g_quick ? 2 : (int)(sizeof cfg_all / sizeof cfg_all[0]);
    const tree_cfg *cfg = g_quick ? cfg_all + 5 : cfg_all;
    const char *dbacks[2] = {NULL, "cpu-ref"};
    for (int di = 0; di < n_drafts; di++)
        for (int b = 0; b < 2; b++) {
            if (b == 1 && (!strcmp(backend, "cpu-ref") || (g_quick && di > 0))) continue;
            sx_engine *e = open_engine(backend, target, drafts[di], dbacks[b]);
            if (!e) continue;
            sx_engine_info info;
            sx_engine_get_info(e, &info);
            for (int c = 0; c < n_cfg; c++) {
                sx_generate_params sp = gp;
                sp.spec.kind = !strcmp(info.draft, "eagle3") ? SX_SPEC_EAGLE3 : SX_SPEC_DRAFT;
                sp.spec.draft_max = cfg[c].d, sp.spec.draft_topk = cfg[c].k, sp.spec.draft_nodes = cfg[c].t, sp.spec.p_min = cfg[c].p_min;
                sp.spec.lookup = cfg[c].lookup, sp.spec.ngram_min = 1;
                toklist got;
                st = run(e, g_prompt, N_PROMPT, &sp, &got, &gs);
                if (st == SX_OK && cfg[c].p_min > 0.5f) { /* the same tree verifies fewer nodes under a high p_min */
                    sx_generate_params all = sp;
                    all.spec.p_min = 0;
                    toklist got0;
                    sx_generate_stats gs0;
                    if (run(e, g_prompt, N_PROMPT, &all, &got0, &gs0) == SX_OK)
                        CHECK(gs.n_drafted < gs0.n_drafted, "%s: --draft-p-min %.2f verified %d nodes, not fewer than the %d of p_min 0", target,
                              cfg[c].p_min, gs.n_drafted, gs0.n_drafted);
                }
                int first_diff = -1;
                for (int i = 0; i < ref.n && first_diff < 0; i++)
                    if (i >= got.n || got.v[i] != ref.v[i]) first_diff = i;
                CHECK(st == SX_OK && got.n == ref.n && first_diff < 0, "%s + %s (%s, draft on %s) D=%d K=%d T=%d: %s; first difference at token %d",
                      target, drafts[di], info.draft, dbacks[b] ? dbacks[b] : backend, cfg[c].d, cfg[c].k, cfg[c].t,
                      st == SX_OK ? "ok" : sx_last_error(), first_diff);
                if (c == n_cfg - 1)
                    printf("ok   %s + %s (%s, draft on %s): greedy identical for %d configs; D=5 K=4 T=16: %.2f tokens/pass, %d/%d accepted\n",
                           target, drafts[di], info.draft, dbacks[b] ? dbacks[b] : backend, n_cfg, gs.accept_len_mean, gs.n_accepted,
                           gs.n_drafted);
            }
            sx_engine_destroy(e);
        }
}

/* Greedy with a repetition penalty: the penalised argmax, which the device's
 * argmax does not know, so speculation must take it from the rows (a bug
 * before: the penalty was ignored under speculation). */
static void penalty_invariants(const char *backend, const char *target, const char *draft) {
    sx_engine *plain = open_engine(backend, target, NULL, NULL), *spec = open_engine(backend, target, draft, NULL);
    sx_engine *self = open_engine(backend, target, target, NULL);
    if (plain && spec && self) {
        sx_generate_params gp;
        sx_generate_params_init(&gp);
        gp.n_predict = 48;
        gp.sampling.temp = 0;
        gp.sampling.repeat_penalty = 1.8f;
        gp.ignore_eos = true;
        toklist ref, unpenalised, got;
        sx_generate_stats gs;
        sx_generate_params np = gp;
        np.sampling.repeat_penalty = 1.0f;
        sx_status st = run(plain, g_prompt, N_PROMPT, &np, &unpenalised, &gs);
        /* a window shorter than the output (it slides), widened when the
         * model's loop is longer than 24 tokens (a q4_0 cache's is 26) */
        for (int w = 0; w < 2 && st == SX_OK; w++) {
            gp.sampling.repeat_last_n = w ? 40 : 24;
            st = run(plain, g_prompt, N_PROMPT, &gp, &ref, &gs);
            if (st == SX_OK && memcmp(ref.v, unpenalised.v, sizeof(int32_t) * (size_t)ref.n) != 0) break;
        }
        CHECK(st == SX_OK, "penalised plain greedy: %s", sx_last_error());
        /* the penalty must matter here, or the comparison proves nothing */
        CHECK(st != SX_OK || memcmp(ref.v, unpenalised.v, sizeof(int32_t) * (size_t)ref.n) != 0, "%s: the repetition penalty changed nothing", target);
        for (int c = 0; c < 3 && st == SX_OK; c++) {
            sx_generate_params sp = gp;
            sp.spec.kind = c < 2 ? SX_SPEC_EAGLE3 : SX_SPEC_DRAFT;
            sp.spec.draft_max = c == 0 ? 3 : 5, sp.spec.draft_topk = c == 0 ? 1 : 4, sp.spec.draft_nodes = c == 0 ? 3 : 16;
            const sx_status s2 = run(c < 2 ? spec : self, g_prompt, N_PROMPT, &sp, &got, &gs);
            CHECK(s2 == SX_OK && got.n == ref.n && !memcmp(got.v, ref.v, sizeof(int32_t) * (size_t)ref.n),
                  "%s: greedy with a repetition penalty, %s config %d: speculative differs from plain (%s)", target, sx_spec_kind_name(sp.spec.kind),
                  c, s2 == SX_OK ? "tokens" : sx_last_error());
        }
        /* and with a logit bias that bans plain greedy's own tokens */
        const int32_t ban[] = {unpenalised.v[0], unpenalised.v[1], unpenalised.v[2]};
        const float minus_inf[] = {-INFINITY, -INFINITY, -5.0f};
        sx_generate_params bp = np;
        bp.sampling.n_logit_bias = 3, bp.sampling.bias_ids = ban, bp.sampling.bias_vals = minus_inf;
        toklist bref;
        if (st == SX_OK) st = run(plain, g_prompt, N_PROMPT, &bp, &bref, &gs);
        CHECK(st == SX_OK && bref.v[0] != ban[0] && bref.v[0] != ban[1], "logit bias: plain greedy kept a banned token (%s)",
              st == SX_OK ? "tokens" : sx_last_error());
        for (int c = 0; c < 2 && st == SX_OK; c++) {
            sx_generate_params sp = bp;
            sp.spec.kind = c == 0 ? SX_SPEC_EAGLE3 : SX_SPEC_DRAFT;
            const sx_status s2 = run(c == 0 ? spec : self, g_prompt, N_PROMPT, &sp, &got, &gs);
            CHECK(s2 == SX_OK && got.n == bref.n && !memcmp(got.v, bref.v, sizeof(int32_t) * (size_t)bref.n),
                  "%s: greedy with a logit bias, %s: speculative differs from plain (%s)", target, sx_spec_kind_name(sp.spec.kind),
                  s2 == SX_OK ? "tokens" : sx_last_error());
        }
        printf("ok   %s: greedy with a repetition penalty or a logit bias: speculative == plain\n", target);
    }
    sx_engine_destroy(plain);
    sx_engine_destroy(spec);
    sx_engine_destroy(self);
}

/* Prompt lookup (--spec ngram, no draft model): greedy output == plain greedy
 * output for chains and trees of continuations, all verified or only the best. */
static void ngram_invariants(const char *backend, const char *target) {
    sx_engine *e = open_engine(backend, target, NULL, NULL);
    if (!e) return;
    sx_generate_params gp;
    sx_generate_params_init(&gp);
    gp.n_predict = 64;
    gp.sampling.temp = 0;
    gp.ignore_eos = true;
    toklist ref, got;
    sx_generate_stats gs;
    sx_status st = run(e, g_prompt, N_PROMPT, &gp, &ref, &gs);
    CHECK(st == SX_OK, "plain greedy: %s", sx_last_error());
    static const struct { int d, k, lo, hi; float p_min; } cfg[] = {{3, 1, 1, 3, 0}, {5, 4, 2, 4, 0}, {8, 3, 1, 1, 0}, {6, 4, 1, 4, -1}};
    int accepted = 0, drafted = 0;
    for (size_t c = 0; c < sizeof cfg / sizeof *cfg && st == SX_OK; c++) {
        sx_generate_params sp = gp;
        sp.spec.kind = SX_SPEC_NGRAM;
        sp.spec.draft_max = cfg[c].d, sp.spec.draft_topk = cfg[c].k, sp.spec.draft_nodes = 16;
        sp.spec.ngram_min = cfg[c].lo, sp.spec.ngram_max = cfg[c].hi, sp.spec.p_min = cfg[c].p_min;
        const sx_status s2 = run(e, g_prompt, N_PROMPT, &sp, &got, &gs);
        int diff = -1;
        for (int i = 0; i < ref.n && diff < 0; i++)
            if (i >= got.n || got.v[i] != ref.v[i]) diff = i;
        CHECK(s2 == SX_OK && got.n == ref.n && diff < 0, "%s ngram D=%d K=%d n=%d..%d: %s; first difference at %d", target, cfg[c].d, cfg[c].k,
              cfg[c].lo, cfg[c].hi, s2 == SX_OK ? "ok" : sx_last_error(), diff);
        accepted += gs.n_accepted, drafted += gs.n_drafted;
    }
    /* the tiny models' greedy text repeats itself: lookups must find and land some of it */
    CHECK(accepted > 0, "%s ngram: no drafted token accepted (%d drafted)", target, drafted);
    printf("ok   %s: prompt lookup greedy identical to plain for %d configs; %d of %d looked-up tokens accepted\n", target,
           (int)(sizeof cfg / sizeof *cfg), accepted, drafted);
    sx_engine_destroy(e);
}

/* Two turns on one session: the second turn reads the KV the first one left. */
static void multi_turn(const char *backend, const char *target, const char *const *drafts, int n_drafts) {
    static const int32_t turn2[] = {7, 19, 64, 2, 33};
    sx_generate_params gp;
    sx_generate_params_init(&gp);
    gp.n_predict = 24;
    gp.sampling.temp = 0;
    gp.ignore_eos = true;
    toklist ref[2], got[2];
    for (int di = -1; di < n_drafts; di++) {
        sx_engine *e = open_engine(backend, target, di < 0 ? NULL : drafts[di], NULL);
        if (!e) continue;
        sx_engine_info info;
        sx_engine_get_info(e, &info);
        sx_generate_params p = gp;
        p.spec.kind = di < 0 ? SX_SPEC_NONE : !strcmp(info.draft, "eagle3") ? SX_SPEC_EAGLE3 : SX_SPEC_DRAFT;
        toklist *out = di < 0 ? ref : got;
        sx_session_options so;
        sx_session_options_init(&so);
        so.n_ctx = 512;
        so.kv_type = g_kv;
        sx_session *s = NULL;
        sx_generate_stats gs;
        sx_status st = sx_session_create(e, &so, &s);
        out[0].n = out[1].n = 0;
        if (st == SX_OK) st = sx_generate(s, g_prompt, N_PROMPT, &p, collect, &out[0], &gs);
        if (st == SX_OK) st = sx_generate(s, turn2, 5, &p, collect, &out[1], &gs);
        CHECK(st == SX_OK, "two turns on %s (%s): %s", target, sx_spec_kind_name(p.spec.kind), sx_last_error());
        sx_session_destroy(s);
        sx_engine_destroy(e);
        if (di < 0 || st != SX_OK) continue;
        int diff = -1;
        for (int t = 0; t < 2 && diff < 0; t++)
            for (int i = 0; i < ref[t].n && diff < 0; i++)
                if (i >= got[t].n || got[t].v[i] != ref[t].v[i]) diff = t * 1000 + i;
        CHECK(diff < 0 && got[1].n == ref[1].n, "two turns, %s + %s (%s): first difference in turn %d at token %d", target, drafts[di],
              info.draft, diff / 1000 + 1, diff % 1000);
        if (diff < 0) printf("ok   two turns on one session, %s + %s (%s): both turns identical to plain greedy\n", target, drafts[di], info.draft);
    }
}

/* Every generated token must be the target's own greedy choice, except the
 * forced </think>. */
static const char *g_chat_prompt; /* --chat-prompt: a real question for a trained pair */

static void exit_only_forced_token(const char *backend, const char *target, const char *draft) {
    sx_engine *e = open_engine(backend, target, draft, NULL);
    if (!e) return;
    int32_t think = -1;
    {
        int32_t *ids;
        int n;
        if (sx_tokenize(e, "</think>", false, true, &ids, &n) == SX_OK && n == 1) think = ids[0];
        free(ids);
    }
    int32_t open_id = -1;
    {
        int32_t *ids;
        int n;
        if (sx_tokenize(e, "<think>", false, true, &ids, &n) == SX_OK && n == 1) open_id = ids[0];
        free(ids);
    }
    CHECK(think >= 0 && open_id >= 0, "%s: the vocabulary lacks <think> / </think>", target);
    if (think < 0 || open_id < 0) {
        sx_engine_destroy(e);
        return;
    }
    int32_t prompt_buf[N_PROMPT + 1], *prompt = prompt_buf, *chat_ids = NULL;
    int n_prompt = N_PROMPT + 1;
    memcpy(prompt_buf, g_prompt, sizeof g_prompt);
    prompt_buf[N_PROMPT] = open_id; /* the prompt opens a thinking section */
    if (g_chat_prompt) {
        char *text = NULL;
        if (sx_chat_prompt(e, NULL, g_chat_prompt, true, &text) == SX_OK && sx_tokenize(e, text, true, true, &chat_ids, &n_prompt) == SX_OK)
            prompt = chat_ids;
        free(text);
    }
    for (int mode = 0; mode < (g_chat_prompt ? 3 : 2); mode++) {
        sx_generate_params gp;
        sx_generate_params_init(&gp);
        gp.n_predict = 40;
        gp.sampling.temp = 0;
        gp.ignore_eos = true;
        gp.spec.kind = SX_SPEC_EAGLE3;
        if (mode == 0) { /* hard budget with speculation */
            gp.exit.kind = SX_EXIT_BUDGET;
            gp.exit.reasoning_budget = 13;
        } else if (mode == 1) { /* signals with thresholds that are always met: cut at the first accepted delimiter */
            gp.exit.kind = SX_EXIT_SPECEXIT;
            gp.exit.conf = 0, gp.exit.progress = 0, gp.exit.remain = 1e30f;
        } else { /* a trained draft with the default thresholds must exit on its own */
            gp.exit.kind = SX_EXIT_SPECEXIT;
            gp.n_predict = 1024;
            gp.ignore_eos = false;
        }
        toklist got;
        sx_generate_stats gs;
        sx_status st = run(e, prompt, n_prompt, &gp, &got, &gs);
        CHECK(st == SX_OK, "exit mode %d: %s", mode, sx_last_error());
        if (st != SX_OK) continue;
        if (mode == 0) { /* a <think> the model writes itself is not a thinking token: the forced </think> comes that much later */
            int marks = 0;
            for (int i = 0; i < gs.exit_token_index && i < got.n; i++) marks += got.v[i] == open_id;
            CHECK(gs.exited_early && gs.thinking_tokens == 13 && gs.exit_token_index == 13 + marks && got.v[gs.exit_token_index] == think,
                  "budget 13: exited %d, thinking %d, exit index %d (%d <think> written)", gs.exited_early, gs.thinking_tokens,
                  gs.exit_token_index, marks);
        }
        /* teacher-force the target over prompt + generated tokens */
        sx_session *s;
        sx_session_options so;
        sx_session_options_init(&so);
        so.n_ctx = 512;
        so.kv_type = g_kv;
        int diffs = 0, forced_ok = 1;
        float *logits = malloc(sizeof(float) * 4096 * 64);
        sx_engine_info info;
        sx_engine_get_info(e, &info);
        st = sx_session_create(e, &so, &s);
        if (st == SX_OK) st = sx_session_eval(s, prompt, n_prompt, logits);
        for (int i = 0; i < got.n && st == SX_OK; i++) {
            int best = 0;
            for (int v = 1; v < info.n_vocab; v++)
                if (logits[v] > logits[best]) best = v;
            if (got.v[i] != best) {
                diffs++;
                if (!(got.v[i] == think && i == gs.exit_token_index)) forced_ok = 0;
            }
            st = sx_session_eval(s, &got.v[i], 1, logits);
        }
        sx_session_destroy(s);
        free(logits);
        if (mode == 2) CHECK(gs.exited_early, "the trained draft's signals never ended the thinking (%d thinking tokens)", gs.thinking_tokens);
        CHECK(st == SX_OK && forced_ok && diffs <= 1 && (diffs == 1) == gs.exited_early,
              "exit mode %d: %d tokens differ from the target's choice (exit at %d, exited %d)", mode, diffs, gs.exit_token_index,
              gs.exited_early);
        printf("ok   exit mode %s: %d generated, %d thinking, forced </think> at %d (%s); all other tokens are the target's own\n",
               mode == 0 ? "budget" : mode == 1 ? "specexit (thresholds always met)" : "specexit (default thresholds)", got.n, gs.thinking_tokens,
               gs.exit_token_index, gs.exit_reason);
    }
    free(chat_ids);
    sx_engine_destroy(e);
}

/* ---- logprobs ---- */
typedef struct {
    sx_session *s;
    toklist t;
    sx_token_logprob lp[160];
    int n_lp; /* tokens that came with their logprobs */
} lp_run;

static bool collect_lp(int32_t tok, const char *piece, size_t len, void *user) {
    lp_run *r = user;
    const sx_token_logprob *lp = sx_generate_logprob(r->s);
    if (lp && r->t.n < 160) r->lp[r->n_lp++] = *lp;
    return collect(tok, piece, len, &r->t);
}

static sx_status run_lp(sx_engine *e, const int32_t *prompt, int n_prompt, const sx_generate_params *p, lp_run *out, sx_generate_stats *gs) {
    sx_session_options so;
    sx_session_options_init(&so);
    so.n_ctx = 512;
    so.kv_type = g_kv;
    memset(out, 0, sizeof *out);
    SX_RETURN_IF_ERROR(sx_session_create(e, &so, &out->s));
    const sx_status st = sx_generate(out->s, prompt, n_prompt, p, collect_lp, out, gs);
    sx_session_destroy(out->s);
    out->s = NULL;
    return st;
}

/* a - b: the largest difference of the logprobs and alternatives, or INFINITY when ids differ */
static double lp_diff(const sx_token_logprob *a, const sx_token_logprob *b) {
    if (a->token != b->token || a->n_top != b->n_top) return INFINITY;
    double d = fabs((double)a->logprob - b->logprob);
    for (int k = 0; k < a->n_top; k++) {
        if (a->top_ids[k] != b->top_ids[k]) return INFINITY;
        d = fmax(d, fabs((double)a->top_logprobs[k] - b->top_logprobs[k]));
    }
    return d;
}

/* Scores prompt + the generated tokens in a fresh session (sx_session_eval_logprobs, chunks of 64 rows)
 * and compares with the logprobs the generation reported: the same rows, so the same values */
static double rescore(sx_engine *e, const int32_t *prompt, int n_prompt, const lp_run *r, int n_top) {
    const int n = n_prompt + r->t.n - 1;
    int32_t *all = malloc(sizeof(int32_t) * (size_t)n);
    sx_token_logprob *out = calloc((size_t)n, sizeof *out);
    sx_session *s = NULL;
    sx_session_options so;
    sx_session_options_init(&so);
    so.n_ctx = 512;
    so.kv_type = g_kv;
    double worst = INFINITY;
    if (all && out && sx_session_create(e, &so, &s) == SX_OK) {
        memcpy(all, prompt, sizeof(int32_t) * (size_t)n_prompt);
        memcpy(all + n_prompt, r->t.v, sizeof(int32_t) * (size_t)(r->t.n - 1));
        if (sx_session_eval_logprobs(s, all, n, r->t.v[r->t.n - 1], n_top, out) == SX_OK) {
            worst = 0;
            for (int i = 0; i < r->t.n; i++) worst = fmax(worst, lp_diff(&out[n_prompt - 1 + i], &r->lp[i]));
        } else {
            printf("FAIL: eval_logprobs: %s\n", sx_last_error()), g_failed++;
        }
    }
    sx_session_destroy(s);
    free(all), free(out);
    return worst;
}

/* Logprobs: plain greedy reports the argmax's log-softmax with sorted alternatives; greedy speculation
 * (EAGLE-3 / classic tree, prompt lookup) reports plain decoding's values (the verified rows are computed
 * bit for bit as decoded ones); a sampled speculative run, and one whose thinking the budget ends, report
 * what scoring their text gives (the row of each accepted token, the forced </think>'s too); and
 * asking for them changes no token. */
static void logprob_invariants(const char *backend, const char *target, const char *draft) {
    sx_engine *e = open_engine(backend, target, draft, NULL);
    if (!e) return;
    sx_engine_info info;
    sx_engine_get_info(e, &info);
    const int TOP = 5, N = 80; /* prompt + 80 tokens: scoring crosses a 64-row chunk */
    sx_generate_params gp;
    sx_generate_params_init(&gp);
    gp.n_predict = N;
    gp.sampling.temp = 0;
    gp.ignore_eos = true;
    toklist ref;
    sx_generate_stats gs;
    sx_status st = run(e, g_prompt, N_PROMPT, &gp, &ref, &gs);
    gp.logprobs = true, gp.top_logprobs = TOP;
    lp_run *plain = malloc(sizeof *plain), *got = malloc(sizeof *got);
    if (st == SX_OK) st = run_lp(e, g_prompt, N_PROMPT, &gp, plain, &gs);
    CHECK(st == SX_OK && plain->t.n == N && plain->n_lp == N && !memcmp(plain->t.v, ref.v, sizeof(int32_t) * N),
          "%s: plain greedy with logprobs: %s, %d tokens, %d logprobs, same tokens %d", target, st == SX_OK ? "ok" : sx_last_error(), plain->t.n,
          plain->n_lp, plain->t.n == N && !memcmp(plain->t.v, ref.v, sizeof(int32_t) * N));
    if (st != SX_OK || plain->n_lp != N) goto out;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        const sx_token_logprob *l = &plain->lp[i];
        double mass = 0;
        bool sorted = l->n_top == TOP;
        for (int k = 0; k < l->n_top; k++) mass += exp(l->top_logprobs[k]), sorted &= k == 0 || l->top_logprobs[k] <= l->top_logprobs[k - 1];
        if (!(l->token == plain->t.v[i] && l->top_ids[0] == l->token && l->logprob == l->top_logprobs[0] && l->logprob <= 0 && sorted &&
              mass <= 1 + 1e-5 && mass > 0))
            bad++;
    }
    CHECK(!bad, "%s: %d of %d greedy tokens' logprobs are not the argmax's with sorted alternatives", target, bad, N);
    double d = rescore(e, g_prompt, N_PROMPT, plain, TOP);
    CHECK(d <= 1e-5, "%s: scoring the greedy text gives logprobs %.3g away from the generation's", target, d);
    /* greedy speculation: plain decoding's values */
    const sx_spec_kind kinds[3] = {!strcmp(info.draft, "eagle3") ? SX_SPEC_EAGLE3 : SX_SPEC_DRAFT, SX_SPEC_NGRAM, SX_SPEC_DRAFT};
    for (int k = 0; k < (strcmp(info.draft, "eagle3") ? 2 : 3); k++) {
        sx_engine *ek = k == 2 ? open_engine(backend, target, target, NULL) : e; /* classic: the target as its own draft */
        if (!ek) continue;
        sx_generate_params sp = gp;
        sp.spec.kind = kinds[k];
        sp.spec.p_min = 0, sp.spec.ngram_min = 1;
        st = run_lp(ek, g_prompt, N_PROMPT, &sp, got, &gs);
        double worst = st == SX_OK && got->n_lp == N ? 0 : INFINITY;
        for (int i = 0; i < N && worst == 0; i++) worst = fmax(worst, lp_diff(&got->lp[i], &plain->lp[i]));
        CHECK(worst <= 1e-6, "%s: greedy %s speculation with logprobs: %s, %d logprobs, largest difference to plain %.3g", target,
              sx_spec_kind_name(kinds[k]), st == SX_OK ? "ok" : sx_last_error(), got->n_lp, worst);
        if (worst <= 1e-6) printf("ok   %s: greedy %s logprobs == plain's (%.2f tokens/pass)\n", target, sx_spec_kind_name(kinds[k]), gs.accept_len_mean);
        if (ek != e) sx_engine_destroy(ek);
    }
    /* sampled speculation, and a budget that forces </think>: the rows of what was emitted */
    for (int mode = 0; mode < (info.thinking ? 2 : 1); mode++) {
        sx_generate_params sp = gp;
        sp.spec.kind = kinds[0];
        sp.spec.p_min = 0;
        int32_t prompt[N_PROMPT + 1];
        memcpy(prompt, g_prompt, sizeof g_prompt);
        int n_prompt = N_PROMPT;
        if (mode == 0) {
            sp.sampling.temp = 0.9f, sp.sampling.seed = 7, sp.sampling.top_k = 0, sp.sampling.top_p = 1, sp.sampling.min_p = 0;
        } else {
            int32_t *ids;
            int n;
            if (sx_tokenize(e, "<think>", false, true, &ids, &n) != SX_OK || n != 1) {
                free(ids);
                continue;
            }
            prompt[n_prompt++] = ids[0];
            free(ids);
            sp.exit.kind = SX_EXIT_BUDGET, sp.exit.reasoning_budget = 9;
        }
        st = run_lp(e, prompt, n_prompt, &sp, got, &gs);
        d = st == SX_OK && got->n_lp == got->t.n && got->t.n == N ? rescore(e, prompt, n_prompt, got, TOP) : INFINITY;
        CHECK(d <= 1e-5 && (mode == 0 || gs.exit_token_index == 9),
              "%s: %s speculation with logprobs: %s, scoring its text differs by %.3g (exit at %d)", target, mode ? "budget-ended" : "sampled",
              st == SX_OK ? "ok" : sx_last_error(), d, gs.exit_token_index);
        if (d <= 1e-5) printf("ok   %s: %s logprobs == scoring the text\n", target, mode ? "forced </think>" : "sampled speculative");
    }
    /* bad arguments */
    gp.top_logprobs = SX_MAX_TOP_LOGPROBS + 1;
    st = run_lp(e, g_prompt, N_PROMPT, &gp, got, &gs);
    CHECK(st == SX_ERR_INVALID_ARG && strstr(sx_last_error(), "top_logprobs"), "top_logprobs 21: %s", sx_last_error());
out:
    free(plain), free(got);
    sx_engine_destroy(e);
}

/* chi-square critical value (Wilson-Hilferty), upper tail alpha = 0.001 */
/* Sampling reads each row's 64 largest logits instead of the row when they
 * decide the distribution (top-k <= 64, no penalty): seeded runs must give
 * the very tokens of the whole-row path (SPECEXIT_SAMPLE_FULL=1), plain and
 * speculative, for several top-k / top-p / min-p / temperatures. */
static void sampling_top_path(const char *backend, const char *target, const char *draft) {
    sx_engine *e = open_engine(backend, target, draft, NULL);
    if (!e) return;
    const struct { int top_k; float top_p, min_p, temp; } cfg[] = {{40, 0.95f, 0.05f, 0.8f}, {20, 0.95f, 0.0f, 0.6f}, {1, 1.0f, 0.0f, 1.0f},
                                                                   {64, 1.0f, 0.0f, 1.5f}, {5, 0.5f, 0.2f, 0.7f}};
    for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++)
        for (int spec = 0; spec < 2; spec++) {
            toklist a, b;
            sx_generate_params gp;
            sx_generate_params_init(&gp);
            gp.n_predict = 48;
            gp.ignore_eos = true;
            gp.sampling.top_k = cfg[c].top_k, gp.sampling.top_p = cfg[c].top_p, gp.sampling.min_p = cfg[c].min_p, gp.sampling.temp = cfg[c].temp;
            gp.sampling.seed = 1000 + c;
            gp.spec.kind = spec ? SX_SPEC_EAGLE3 : SX_SPEC_NONE;
            gp.spec.p_min = 0; /* drafted nodes to verify */
            gp.exit.kind = SX_EXIT_NONE;
            sx_generate_stats g1, g2;
            setenv("SPECEXIT_SAMPLE_TOP", "1", 1); /* the CPU backends take it only when asked */
            sx_status st = run(e, g_prompt, (int)(sizeof g_prompt / sizeof *g_prompt), &gp, &a, &g1);
            unsetenv("SPECEXIT_SAMPLE_TOP");
            setenv("SPECEXIT_SAMPLE_FULL", "1", 1);
            if (st == SX_OK) st = run(e, g_prompt, (int)(sizeof g_prompt / sizeof *g_prompt), &gp, &b, &g2);
            unsetenv("SPECEXIT_SAMPLE_FULL");
            CHECK(st == SX_OK && a.n == b.n && !memcmp(a.v, b.v, sizeof(int32_t) * (size_t)a.n),
                  "%s: sampled %s top-k %d: tokens from the top logits differ from the whole rows' (%s)", backend, spec ? "eagle3" : "plain",
                  cfg[c].top_k, st == SX_OK ? "tokens" : sx_last_error());
            if (st == SX_OK) sx_generate_stats_free(&g1), sx_generate_stats_free(&g2);
        }
    printf("ok   sampling from the top %d logits == from whole rows (5 settings, plain and eagle3)\n", SX_SAMPLER_TOP_MAX);
    sx_engine_destroy(e);
}

static double chi2_crit(int df) {
    const double z = 3.090232;
    const double a = 2.0 / (9.0 * df);
    return df * pow(1 - a + z * sqrt(a), 3);
}

/* The second generated token comes from speculative acceptance (accepted
 * draft token or bonus). Its expected counts are the sum over draws of the
 * target's exact distribution given [prompt, first token]; Pearson's
 * statistic against them must stay below the chi-square critical value
 * (alpha 0.001; conservative, as the draws' distributions differ). */
static void sampling_distribution(const char *backend, const char *target, const char *draft, sx_spec_kind kind, int K) {
    sx_engine *e = open_engine(backend, target, draft, NULL);
    if (!e) return;
    sx_engine_info info;
    sx_engine_get_info(e, &info);
    const int V = info.n_vocab;
    const float temp = 0.7f;
    double *expect = calloc((size_t)V, sizeof(double)), *cnt = calloc((size_t)V, sizeof(double));
    double **cache = calloc((size_t)V, sizeof(double *)); /* exact distribution given the first token */
    float *logits = malloc(sizeof(float) * (size_t)V);
    sx_generate_params gp;
    sx_generate_params_init(&gp);
    gp.n_predict = 2;
    gp.sampling.temp = temp, gp.sampling.top_k = 0, gp.sampling.top_p = 1, gp.sampling.min_p = 0;
    gp.spec.p_min = 0; /* every drafted node verified: the draws must exercise acceptance */
    gp.ignore_eos = true;
    gp.spec.kind = kind;
    gp.spec.draft_max = 3, gp.spec.draft_topk = K, gp.spec.draft_nodes = 3 * K;
    gp.spec.ngram_min = 1; /* prompt lookup: any earlier occurrence of the first token */
    const int draws = 3000;
    int n_acc = 0;
    sx_status st = SX_OK;
    /* prompt lookup finds continuations in the context: give it the model's own (repetitive) greedy text */
    int32_t prompt[N_PROMPT + 32];
    int n_prompt = N_PROMPT;
    memcpy(prompt, g_prompt, sizeof g_prompt);
    if (kind == SX_SPEC_NGRAM) {
        sx_generate_params g0 = gp;
        g0.sampling.temp = 0, g0.n_predict = 32, g0.spec.kind = SX_SPEC_NONE;
        toklist own;
        sx_generate_stats gs0;
        st = run(e, g_prompt, N_PROMPT, &g0, &own, &gs0);
        for (int i = 0; i < own.n && st == SX_OK; i++) prompt[n_prompt++] = own.v[i];
    }
    for (int i = 0; i < draws && st == SX_OK; i++) {
        toklist got;
        sx_generate_stats gs;
        gp.sampling.seed = 77 + (uint64_t)i;
        st = run(e, prompt, n_prompt, &gp, &got, &gs);
        if (st != SX_OK || got.n != 2) break;
        const int32_t t1 = got.v[0];
        if (!cache[t1]) {
            int32_t seq[N_PROMPT + 33];
            memcpy(seq, prompt, sizeof(int32_t) * (size_t)n_prompt);
            seq[n_prompt] = t1;
            sx_session *s;
            sx_session_options so;
            sx_session_options_init(&so);
            so.n_ctx = 64;
            so.kv_type = g_kv;
            st = sx_session_create(e, &so, &s);
            if (st == SX_OK) st = sx_session_eval(s, seq, n_prompt + 1, logits);
            sx_session_destroy(s);
            cache[t1] = calloc((size_t)V, sizeof(double));
            double mx = -1e30, sum = 0;
            for (int v = 0; v < V; v++) mx = fmax(mx, logits[v] / temp);
            for (int v = 0; v < V; v++) sum += cache[t1][v] = exp(logits[v] / temp - mx);
            for (int v = 0; v < V; v++) cache[t1][v] /= sum;
        }
        for (int v = 0; v < V; v++) expect[v] += cache[t1][v];
        cnt[got.v[1]] += 1;
        n_acc += gs.n_accepted;
    }
    CHECK(st == SX_OK, "sampling draws: %s", sx_last_error());
    /* Pearson over bins with expectation >= 5 (the rest pooled) */
    double chi = 0, pool_e = 0, pool_c = 0;
    int bins = 0;
    for (int v = 0; v < V; v++) {
        if (expect[v] >= 5) {
            chi += (cnt[v] - expect[v]) * (cnt[v] - expect[v]) / expect[v];
            bins++;
        } else {
            pool_e += expect[v], pool_c += cnt[v];
        }
    }
    if (pool_e >= 5) chi += (pool_c - pool_e) * (pool_c - pool_e) / pool_e, bins++;
    const double crit = chi2_crit(bins - 1);
    CHECK(st == SX_OK && bins > 3 && chi < crit && n_acc > (kind == SX_SPEC_DRAFT ? draws / 20 : 10),
          "sampling acceptance (%s, K=%d): chi2 %.1f over %d bins (critical %.1f at alpha 0.001), %d draft tokens accepted in %d draws",
          sx_spec_kind_name(kind), K, chi, bins, crit, n_acc, draws);
    printf("ok   sampling acceptance (%s, K=%d): chi2 %.1f, %d bins, critical %.1f; %d draft tokens accepted in %d draws\n",
           sx_spec_kind_name(kind), K, chi, bins, crit, n_acc, draws);
    for (int v = 0; v < V; v++) free(cache[v]);
    free(cache), free(expect), free(cnt), free(logits);
    sx_engine_destroy(e);
}

static int32_t single_token(sx_engine *e, const char *text) {
    int32_t *ids = NULL, id = -1;
    int n = 0;
    if (sx_tokenize(e, text, false, true, &ids, &n) == SX_OK && n == 1) id = ids[0];
    free(ids);
    return id;
}

/* Whether the generated tokens follow the grammar: the text after the first
 * `after` token (-1: all of it), leading whitespace skipped there, end tokens
 * left out; a generation ended by an end token must be a whole sentence. A
 * model may also end inside its thinking section: then there is no answer
 * for the grammar to shape. */
static bool follows(sx_engine *e, const char *gbnf, const toklist *t, int32_t after) {
    sx_grammar *g;
    sx_gmatch *m;
    if (sx_grammar_parse(gbnf, &g) != SX_OK) return false;
    if (sx_gmatch_create(g, &m) != SX_OK) return sx_grammar_destroy(g), false;
    bool ok = true, on = after < 0, started = false, ended = false, in_thought = false;
    for (int i = 0; i < t->n && ok && !in_thought; i++) {
        if (!on) {
            on = t->v[i] == after;
            if (sx_token_is_eog(e, t->v[i])) in_thought = on = true; /* ended while thinking */
            continue;
        }
        if (sx_token_is_eog(e, t->v[i])) {
            ended = true;
            break;
        }
        char buf[256];
        size_t len = 0;
        if (sx_token_to_piece(e, t->v[i], buf, sizeof buf, &len) != SX_OK) ok = false;
        const char *p = buf;
        if (after >= 0 && !started)
            while (len && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) p++, len--;
        if (len) ok = sx_gmatch_accept(m, p, len), started = true;
    }
    if (ok && ended) ok = sx_gmatch_can_end(m);
    sx_gmatch_destroy(m);
    sx_grammar_destroy(g);
    return ok && on;
}

/* Constrained generation: greedy speculative output under a grammar equals
 * plain greedy output under it (EAGLE-3 trees and a classic draft), with the
 * grammar from the start, after a forced </think> (budget exit) and, for a
 * trained pair, after the model's own </think> inside an accepted path; every
 * output, greedy or sampled, follows the grammar. */
static void grammar_invariants(const char *backend, const char *target, const char *draft) {
    static const char *const grammars[] = {
        "root ::= \"{\" ws \"\\\"\" [a-z]{1,8} \"\\\"\" ws \":\" ws [0-9]{1,6} ws \"}\"\nws ::= \" \"?\n",
        "root ::= ([a-z] | [0-9] \" \")+\n",
        "root ::= \"The answer is \" [0-9]+ \".\"\n",
        "root ::= [0-9]+ \".\"\n", /* not what the trained model says after </think>: its own next tokens are refused */
    };
    sx_engine *plain = open_engine(backend, target, NULL, NULL);
    sx_engine *eagle = open_engine(backend, target, draft, NULL);
    sx_engine *self = open_engine(backend, target, target, NULL);
    const int32_t open_id = plain ? single_token(plain, "<think>") : -1, close_id = plain ? single_token(plain, "</think>") : -1;
    int32_t think_prompt[N_PROMPT + 1], *chat_ids = NULL;
    int n_chat = 0;
    memcpy(think_prompt, g_prompt, sizeof g_prompt);
    think_prompt[N_PROMPT] = open_id;
    if (g_chat_prompt && plain) {
        char *text = NULL;
        if (sx_chat_prompt(plain, NULL, g_chat_prompt, true, &text) != SX_OK || sx_tokenize(plain, text, true, true, &chat_ids, &n_chat) != SX_OK)
            n_chat = 0;
        free(text);
    }
    int n_ok = 0;
    for (int gi = 0; gi < 4 && plain && eagle && self; gi++)
        for (int variant = 0; variant < 3; variant++) {
            /* 0: the grammar from the start; 1: after </think> forced by a budget; 2: after the model's own </think> (chat prompt) */
            if (variant == 1 && (open_id < 0 || close_id < 0)) continue;
            if (variant == 2 && (!n_chat || gi < 2)) continue;
            if (gi >= 2 && variant != 2) continue; /* words the trained pair knows */
            const int32_t *prompt = variant == 0 ? g_prompt : variant == 1 ? think_prompt : chat_ids;
            const int n_prompt = variant == 0 ? N_PROMPT : variant == 1 ? N_PROMPT + 1 : n_chat;
            sx_generate_params gp;
            sx_generate_params_init(&gp);
            gp.n_predict = variant == 2 ? 400 : 40;
            gp.sampling.temp = 0;
            gp.grammar = grammars[gi];
            if (variant == 1) gp.exit.kind = SX_EXIT_BUDGET, gp.exit.reasoning_budget = 9;
            const int32_t after = variant == 0 ? -1 : close_id;
            toklist ref, got;
            sx_generate_stats gs;
            sx_status st = run(plain, prompt, n_prompt, &gp, &ref, &gs);
            CHECK(st == SX_OK && follows(plain, grammars[gi], &ref, after), "grammar %d variant %d, plain greedy: %s; output follows it: %d", gi,
                  variant, st == SX_OK ? "ok" : sx_last_error(), st == SX_OK && follows(plain, grammars[gi], &ref, after));
            if (st != SX_OK) continue;
            static const int cfg[][3] = {{3, 1, 3}, {5, 4, 16}, {4, 1, 4}};
            for (int c = 0; c < 3; c++) {
                sx_generate_params sp = gp;
                sp.spec.kind = c < 2 ? SX_SPEC_EAGLE3 : SX_SPEC_DRAFT;
                sp.spec.draft_max = cfg[c][0], sp.spec.draft_topk = cfg[c][1], sp.spec.draft_nodes = cfg[c][2];
                st = run(c < 2 ? eagle : self, prompt, n_prompt, &sp, &got, &gs);
                int diff = -1;
                for (int i = 0; i < ref.n && diff < 0; i++)
                    if (i >= got.n || got.v[i] != ref.v[i]) diff = i;
                CHECK(st == SX_OK && got.n == ref.n && diff < 0, "grammar %d variant %d, %s D=%d K=%d T=%d: %s; %d vs %d tokens, first difference at %d",
                      gi, variant, c < 2 ? "eagle3" : "draft", cfg[c][0], cfg[c][1], cfg[c][2], st == SX_OK ? "ok" : sx_last_error(), got.n, ref.n, diff);
                n_ok += st == SX_OK && diff < 0;
            }
            if (g_no_sampling || g_quick) continue;
            sx_generate_params smp = gp; /* sampled, speculative: every output follows the grammar */
            smp.sampling.temp = 0.9f, smp.sampling.top_k = 20;
            smp.spec.kind = SX_SPEC_EAGLE3;
            for (uint64_t seed = 1; seed <= 4; seed++) {
                smp.sampling.seed = seed;
                st = run(eagle, prompt, n_prompt, &smp, &got, &gs);
                const bool ok = st == SX_OK && follows(eagle, grammars[gi], &got, after);
                CHECK(ok, "grammar %d variant %d, sampled seed %llu: %s", gi, variant, (unsigned long long)seed,
                      st == SX_OK ? "does not follow the grammar" : sx_last_error());
                if (!ok && st == SX_OK && getenv("SX_DEBUG_GRAMMAR"))
                    for (int i = 0; i < got.n; i++) {
                        char buf[64];
                        size_t len = 0;
                        if (sx_token_to_piece(eagle, got.v[i], buf, sizeof buf - 1, &len) == SX_OK) buf[len] = 0;
                        printf("  %d: %d '%s'\n", i, got.v[i], buf);
                    }
            }
        }
    /* a lazy grammar (grammar_trigger, as tool_choice auto's after <tool_call>): free text, the grammar after the trigger
     * until its text is complete, free again; here the trigger is a forced </think> */
    if (plain && eagle && open_id >= 0 && close_id >= 0) {
        sx_generate_params gp;
        sx_generate_params_init(&gp);
        gp.n_predict = 40;
        gp.sampling.temp = 0;
        gp.grammar = "root ::= [0-9]{1,3} \".\"\n";
        gp.grammar_trigger = "</think>";
        gp.exit.kind = SX_EXIT_BUDGET, gp.exit.reasoning_budget = 9;
        gp.ignore_eos = true; /* the budget, not an end token, ends the thinking: the trigger always comes */
        toklist ref, got;
        sx_generate_stats gs;
        sx_status st = run(plain, think_prompt, N_PROMPT + 1, &gp, &ref, &gs);
        /* after the trigger: the grammar's text, then anything */
        bool ok = st == SX_OK;
        int at = -1;
        for (int i = 0; i < ref.n && at < 0; i++)
            if (ref.v[i] == close_id) at = i;
        if (ok && at >= 0) {
            sx_grammar *g = NULL;
            sx_gmatch *m = NULL;
            ok = sx_grammar_parse(gp.grammar, &g) == SX_OK && sx_gmatch_create(g, &m) == SX_OK;
            for (int i = at + 1; ok && i < ref.n && !sx_gmatch_must_end(m); i++) {
                char buf[64];
                size_t len = 0;
                ok = !sx_token_is_eog(plain, ref.v[i]) && sx_token_to_piece(plain, ref.v[i], buf, sizeof buf, &len) == SX_OK &&
                     (len == 0 || sx_gmatch_accept(m, buf, len));
            }
            ok = ok && (sx_gmatch_must_end(m) || ref.n == gp.n_predict);
            sx_gmatch_destroy(m);
            sx_grammar_destroy(g);
        }
        CHECK(ok && at >= 0, "lazy grammar: plain greedy %s; the trigger at %d; the text after it follows the grammar: %d",
              st == SX_OK ? "ok" : sx_last_error(), at, ok);
        for (int c = 0; c < 2 && st == SX_OK; c++) {
            sx_generate_params sp = gp;
            sp.spec.kind = SX_SPEC_EAGLE3;
            sp.spec.draft_max = c ? 5 : 3, sp.spec.draft_topk = c ? 4 : 1, sp.spec.draft_nodes = c ? 16 : 3;
            const sx_status s2 = run(eagle, think_prompt, N_PROMPT + 1, &sp, &got, &gs);
            CHECK(s2 == SX_OK && got.n == ref.n && !memcmp(got.v, ref.v, sizeof(int32_t) * (size_t)ref.n),
                  "lazy grammar, eagle3 config %d: speculative differs from plain (%s)", c, s2 == SX_OK ? "tokens" : sx_last_error());
            n_ok += s2 == SX_OK;
        }
        sx_generate_params bad = gp;
        bad.grammar_trigger = "<no such token>";
        CHECK(run(plain, think_prompt, N_PROMPT + 1, &bad, &got, &gs) == SX_ERR_INVALID_ARG && strstr(sx_last_error(), "not one token"),
              "lazy grammar with an unknown trigger: %s", sx_last_error());
    }
    printf("ok   %s: greedy speculation under a grammar identical to plain in %d runs\n", target, n_ok);
    free(chat_ids);
    sx_engine_destroy(plain);
    sx_engine_destroy(eagle);
    sx_engine_destroy(self);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_spec BACKEND TARGET.gguf EAGLE3.gguf [EAGLE3_D2T.gguf] [--other-draft M.gguf] [--bad-draft FILE:SUBSTRING ...]\n"
                        "  [--quick] [--kv TYPE] [--ngl N] [--no-sampling] [--chat-prompt TEXT] [--only greedy|ngram|penalty|exit|multi-turn|grammar|\n"
                        "   logprobs|bad-draft|top-path|distribution]\n");
        return 2;
    }
    const char *backend = argv[1], *target = argv[2];
    const char *drafts[8];
    int n_drafts = 0;
    const char *other = NULL;
    const char *bad[16];
    int n_bad = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--other-draft") && i + 1 < argc) other = argv[++i];
        else if (!strcmp(argv[i], "--quick")) g_quick = true;
        else if (!strcmp(argv[i], "--kv") && i + 1 < argc) {
            if (sx_kv_type_from_name(argv[++i], &g_kv) != SX_OK) return printf("FAIL: %s\n", sx_last_error()), 2;
        }
        else if (!strcmp(argv[i], "--ngl") && i + 1 < argc) g_ngl = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-sampling")) g_no_sampling = true;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) g_only = argv[++i];
        else if (!strcmp(argv[i], "--chat-prompt") && i + 1 < argc) g_chat_prompt = argv[++i];
        else if (!strcmp(argv[i], "--bad-draft") && i + 1 < argc && n_bad < 16) bad[n_bad++] = argv[++i];
        else if (n_drafts < 6) drafts[n_drafts++] = argv[i];
    }
    /* skip when the backend is absent */
    sx_engine_options eo;
    sx_engine_options_init(&eo);
    eo.model_path = target;
    eo.backend = backend;
    sx_engine *probe;
    sx_status st = sx_engine_create(&eo, &probe);
    if (st == SX_ERR_NO_DEVICE || st == SX_ERR_UNSUPPORTED || st == SX_ERR_BACKEND) {
        printf("SKIP: backend %s: %s\n", backend, sx_last_error());
        return 77;
    }
    if (st != SX_OK) {
        printf("FAIL: open %s on %s: %s\n", target, backend, sx_last_error());
        return 1;
    }
    sx_engine_info pinfo;
    sx_engine_get_info(probe, &pinfo);
    for (int i = 0; i < N_PROMPT; i++) g_prompt[i] %= pinfo.n_vocab - 8; /* valid ids for any vocabulary */
    sx_engine_destroy(probe);
    drafts[n_drafts++] = target; /* the target as its own classic draft: long accepted chains */
    if (other && !g_quick) drafts[n_drafts++] = other;
    if (want("greedy")) greedy_invariants(backend, target, drafts, n_drafts);
    if (want("ngram")) ngram_invariants(backend, target);
    if (want("penalty")) penalty_invariants(backend, target, drafts[0]);
    if (want("exit")) exit_only_forced_token(backend, target, drafts[0]);
    if (want("multi-turn")) multi_turn(backend, target, drafts, n_drafts);
    if (want("grammar")) grammar_invariants(backend, target, drafts[0]);
    if (want("logprobs")) logprob_invariants(backend, target, drafts[0]);
    for (int i = 0; i < n_bad && want("bad-draft"); i++) {
        char spec[1024], patched[1100];
        snprintf(spec, sizeof spec, "%s", bad[i]);
        char *colon = strchr(spec, ':');
        if (!colon) continue;
        *colon = 0;
        eo.draft_path = spec;
        if (!strncmp(colon + 1, "missing tensor", 14)) { /* a copy of the draft with ffn_up renamed */
            FILE *f = fopen(spec, "rb");
            snprintf(patched, sizeof patched, "%s.missing.gguf", spec);
            FILE *o = fopen(patched, "wb");
            char buf[1 << 16];
            size_t n, total = 0;
            while (f && o && (n = fread(buf, 1, sizeof buf, f)) > 0) {
                if (total == 0)
                    for (size_t k = 0; k + 14 <= n; k++)
                        if (!memcmp(buf + k, "ffn_up.weight", 13)) buf[k + 12] = 'x';
                fwrite(buf, 1, n, o);
                total += n;
            }
            if (f) fclose(f);
            if (o) fclose(o);
            eo.draft_path = patched;
        }
        sx_engine *e = NULL;
        st = sx_engine_create(&eo, &e);
        CHECK(st != SX_OK && strstr(sx_last_error(), colon + 1), "bad draft %s: status %s, message '%s' (wanted '%s')", spec, sx_status_str(st),
              sx_last_error(), colon + 1);
        if (st != SX_OK) printf("ok   bad draft rejected: %s\n", sx_last_error());
        sx_engine_destroy(e);
    }
    if (n_drafts > 0 && want("top-path")) sampling_top_path(backend, target, drafts[0]);
    if (!g_quick && !g_no_sampling && want("distribution")) {
        sampling_distribution(backend, target, target, SX_SPEC_DRAFT, 1);
        sampling_distribution(backend, target, target, SX_SPEC_DRAFT, 3);
        sampling_distribution(backend, target, drafts[0], SX_SPEC_EAGLE3, 4);
        sampling_distribution(backend, target, NULL, SX_SPEC_NGRAM, 2);
    }
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
