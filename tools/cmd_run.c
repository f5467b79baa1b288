/* tools/cmd_run.c — `specexit run`: one generation, text streamed to stdout,
 * statistics to stderr (or one JSON object on stdout with --json). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"

typedef struct {
    bool json;
    char *text; /* accumulated output */
    size_t len, cap;
} run_out;

static bool on_token(int32_t token, const char *piece, size_t len, void *user) {
    (void)token;
    run_out *o = user;
    if (o->len + len + 1 > o->cap) {
        size_t cap = (o->cap + len + 1) * 2;
        char *p = realloc(o->text, cap);
        if (!p) return false;
        o->text = p;
        o->cap = cap;
    }
    memcpy(o->text + o->len, piece, len);
    o->len += len;
    o->text[o->len] = 0;
    if (!o->json) {
        fwrite(piece, 1, len, stdout);
        fflush(stdout);
    }
    return true;
}

static void help(void) {
    printf("usage: specexit run -m MODEL.gguf -p PROMPT [options]\n\nGenerates text; streams it to stdout, statistics to stderr.\n\n");
    sx_cli_print_common_help(stdout);
}

int sx_cmd_run(int argc, char **argv) {
    sx_cli c;
    const int begun = sx_cli_begin(&c, argc, argv, "run", 128, help);
    if (begun >= 0) return begun;
    char *file_prompt = NULL;
    if (c.prompt_file) {
        file_prompt = sx_cli_read_file(c.prompt_file);
        if (!file_prompt) {
            fprintf(stderr, "error: cannot read prompt file '%s'\n", c.prompt_file);
            return 1;
        }
        c.prompt = file_prompt;
    }
    if (!c.prompt) {
        fprintf(stderr, "error: no prompt given (-p TEXT or -f FILE)\n");
        free(file_prompt);
        return 1;
    }
    sx_engine_options eo;
    sx_cli_engine_options(&c, &eo);
    sx_engine *e = NULL;
    sx_session *s = NULL;
    char *formatted = NULL;
    int32_t *ids = NULL;
    int n_ids = 0, rc = 0;
    run_out out = {.json = c.json};
    sx_status st = sx_engine_create(&eo, &e);
    if (st != SX_OK) {
        rc = sx_cli_fail("loading model", st);
        goto done;
    }
    sx_session_options so;
    sx_cli_session_options(&c, &so);
    if ((st = sx_session_create(e, &so, &s)) != SX_OK) {
        rc = sx_cli_fail("creating session", st);
        goto done;
    }
    const char *text = c.prompt;
    if (c.chat) {
        if ((st = sx_chat_prompt(e, c.system, c.prompt, !c.no_think, &formatted)) != SX_OK) {
            rc = sx_cli_fail("chat template", st);
            goto done;
        }
        text = formatted;
    }
    if ((st = sx_tokenize(e, text, true, c.chat, &ids, &n_ids)) != SX_OK) {
        rc = sx_cli_fail("tokenizing the prompt", st);
        goto done;
    }
    sx_engine_info info;
    sx_engine_get_info(e, &info);
    sx_generate_params gp;
    sx_cli_generate_params(&c, &info, &gp);
    sx_generate_stats gs;
    st = sx_generate(s, ids, n_ids, &gp, on_token, &out, &gs);
    if (st != SX_OK) {
        rc = sx_cli_fail("generating", st);
        goto done;
    }
    if (c.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "text", out.text ? out.text : "");
        cJSON_AddStringToObject(j, "model", info.model_name);
        cJSON_AddStringToObject(j, "arch", info.arch);
        cJSON_AddStringToObject(j, "quant", info.quant);
        cJSON_AddStringToObject(j, "backend", info.backend);
        cJSON_AddStringToObject(j, "device", info.device);
        cJSON_AddNumberToObject(j, "n_layer", info.n_layer);
        cJSON_AddNumberToObject(j, "n_gpu_layers", info.n_gpu_layers);
        cJSON_AddBoolToObject(j, "output_on_device", info.output_on_device);
        cJSON_AddNumberToObject(j, "n_cpu_moe", info.n_cpu_moe);
        cJSON_AddNumberToObject(j, "device_weight_bytes", (double)info.device_weight_bytes);
        cJSON_AddNumberToObject(j, "n_prompt_tokens", gs.n_prompt_tokens);
        cJSON_AddNumberToObject(j, "n_generated_tokens", gs.n_generated_tokens);
        cJSON_AddNumberToObject(j, "prefill_ms", gs.prefill_ms);
        cJSON_AddNumberToObject(j, "decode_ms", gs.decode_ms);
        cJSON_AddNumberToObject(j, "prefill_tok_s", gs.prefill_tok_s);
        cJSON_AddNumberToObject(j, "decode_tok_s", gs.decode_tok_s);
        cJSON_AddStringToObject(j, "stop_reason", sx_stop_reason_str(gs.stop_reason));
        sx_cli_add_spec_json(j, &gp, &gs);
        cJSON_AddNumberToObject(j, "peak_rss_bytes", (double)sx_cli_peak_rss());
        cJSON_AddStringToObject(j, "kv_type", sx_kv_type_name(so.kv_type));
        cJSON_AddNumberToObject(j, "n_ctx", sx_session_n_ctx(s));
        cJSON_AddNumberToObject(j, "kv_cache_bytes", (double)sx_session_kv_bytes(s));
        char *str = cJSON_Print(j);
        printf("%s\n", str);
        free(str);
        cJSON_Delete(j);
    } else {
        printf("\n");
        fprintf(stderr,
                "\n[specexit] model %s (%s, %s) on %s (%s); KV cache %s, %d tokens, %.1f MiB\n"
                "[specexit] prompt %d tokens in %.1f ms (%.1f tok/s); generated %d tokens in %.1f ms (%.1f tok/s); stop: %s\n",
                info.model_name, info.arch, info.quant, info.backend, info.device, sx_kv_type_name(so.kv_type), sx_session_n_ctx(s),
                (double)sx_session_kv_bytes(s) / (1 << 20), gs.n_prompt_tokens, gs.prefill_ms, gs.prefill_tok_s,
                gs.n_generated_tokens, gs.decode_ms, gs.decode_tok_s, sx_stop_reason_str(gs.stop_reason));
        if (info.n_gpu_layers < info.n_layer || !info.output_on_device)
            fprintf(stderr, "[specexit] offloaded %d/%d layers to %s (%.1f of %.1f MiB of weights); the rest runs on the CPU\n",
                    info.n_gpu_layers + info.output_on_device, info.n_layer + 1, info.device, (double)info.device_weight_bytes / (1 << 20),
                    (double)info.weight_bytes / (1 << 20));
        if (info.n_cpu_moe)
            fprintf(stderr, "[specexit] the experts of %d of %d blocks run on the CPU (--n-cpu-moe); %.1f of %.1f MiB of weights on %s\n",
                    info.n_cpu_moe, info.n_layer, (double)info.device_weight_bytes / (1 << 20), (double)info.weight_bytes / (1 << 20), info.device);
        if (gp.spec.kind != SX_SPEC_NONE)
            fprintf(stderr, "[specexit] speculation %s: %d target passes, %.2f tokens per pass, %d of %d drafted tokens accepted; draft %.1f ms, verify %.1f ms\n",
                    sx_spec_kind_name(gp.spec.kind), gs.n_steps, gs.accept_len_mean, gs.n_accepted, gs.n_drafted, gs.draft_ms, gs.verify_ms);
        if (gs.thinking_tokens > 0 || gp.exit.kind != SX_EXIT_NONE)
            fprintf(stderr, "[specexit] thinking %d tokens; exit %s: %s%s", gs.thinking_tokens, sx_exit_kind_name(gp.exit.kind),
                    gs.exited_early ? "thinking ended early by " : "thinking ended: ", gs.exit_reason);
        if (gs.exited_early && gs.exit_token_index >= 0) fprintf(stderr, " (</think> forced at generated token %d)", gs.exit_token_index);
        if (gs.thinking_tokens > 0 || gp.exit.kind != SX_EXIT_NONE) fprintf(stderr, "\n");
    }
    if (c.compare && gp.exit.kind != SX_EXIT_NONE) {
        /* the same generation with full thinking: what the exit saved. The first run above paid the
         * warm-up (allocations, caches, page faults), so the exit run is timed once more after the
         * full-thinking one and the two warm runs are compared. */
        sx_session *s2 = NULL, *s3 = NULL;
        sx_generate_params full = gp;
        full.exit.kind = SX_EXIT_NONE;
        full.exit.reasoning_budget = -1;
        full.trace_signals = false;
        run_out out2 = {.json = true};
        sx_generate_stats g2, g3;
        st = sx_session_create(e, &so, &s2);
        if (st == SX_OK) st = sx_generate(s2, ids, n_ids, &full, on_token, &out2, &g2);
        const bool have2 = st == SX_OK;
        sx_session_destroy(s2);
        sx_generate_params again = gp;
        again.trace_signals = false;
        if (st == SX_OK) st = sx_session_create(e, &so, &s3);
        if (st == SX_OK) st = sx_generate(s3, ids, n_ids, &again, NULL, NULL, &g3);
        sx_session_destroy(s3);
        if (st != SX_OK && have2) sx_generate_stats_free(&g2);
        if (st != SX_OK) {
            rc = sx_cli_fail("generating the full-thinking comparison", st);
        } else {
            const double t1 = g3.prefill_ms + g3.decode_ms, t2 = g2.prefill_ms + g2.decode_ms;
            fprintf(stderr,
                    "[specexit] full thinking (--exit none) for comparison: %d generated tokens, %d thinking, %.1f ms\n"
                    "[specexit] saved by --exit %s: %d tokens (%.0f%%), %.1f ms (%.2fx faster end to end; both timed warm)\n",
                    g2.n_generated_tokens, g2.thinking_tokens, t2, sx_exit_kind_name(gp.exit.kind), g2.n_generated_tokens - gs.n_generated_tokens,
                    g2.n_generated_tokens ? 100.0 * (g2.n_generated_tokens - gs.n_generated_tokens) / g2.n_generated_tokens : 0.0, t2 - t1,
                    t1 > 0 ? t2 / t1 : 0.0);
            if (!c.json) {
                const char *ans = out2.text ? strstr(out2.text, "</think>") : NULL;
                fprintf(stderr, "[specexit] full-thinking answer: %s\n", ans ? ans + 8 + strspn(ans + 8, "\n") : "(none)");
            }
            sx_generate_stats_free(&g2);
            sx_generate_stats_free(&g3);
        }
        free(out2.text);
    }
    sx_generate_stats_free(&gs);
done:
    free(out.text);
    free(ids);
    free(formatted);
    free(file_prompt);
    sx_session_destroy(s);
    sx_engine_destroy(e);
    return rc;
}
