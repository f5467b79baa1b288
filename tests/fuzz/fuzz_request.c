/* tests/fuzz/fuzz_request.c — libFuzzer target for the server's request
 * parser (tools/server_req.c) and text assembler (tools/server_text.c):
 * any bytes must parse or fail with a message, never crash or leak, and a
 * parsed request must hold what the server relies on. The input is also cut
 * into pieces and fed to the assembler with the request's stop strings; the
 * released text must be valid UTF-8 and the deltas must add up. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/server_req.h"
#include "tools/server_text.h"

static void require(int cond) {
    if (!cond) abort();
}

static void assemble(const uint8_t *data, size_t size, const sx_req *r, bool thinking) {
    sx_text_asm a;
    sx_text_init(&a, thinking, r->stops, r->n_stops);
    sx_sbuf dr = {0}, dc = {0};
    for (size_t i = 0; i < size;) {
        size_t n = 1 + data[i] % 7;
        if (n > size - i) n = size - i;
        if (!sx_text_push(&a, (const char *)data + i, n, &dr, &dc)) break;
        i += n;
    }
    sx_text_finish(&a, &dr, &dc);
    require(dr.len == a.reasoning_text.len && (!dr.len || !memcmp(dr.s, a.reasoning_text.s, dr.len)));
    require(dc.len == a.content_text.len && (!dc.len || !memcmp(dc.s, a.content_text.s, dc.len)));
    require(sx_utf8_complete_len(dr.s ? dr.s : "", dr.len) == dr.len && sx_utf8_complete_len(dc.s ? dc.s : "", dc.len) == dc.len);
    sx_sbuf_free(&dr);
    sx_sbuf_free(&dc);
    sx_text_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sx_generate_params def;
    sx_generate_params_init(&def);
    def.spec.kind = SX_SPEC_EAGLE3;
    def.exit.kind = SX_EXIT_SPECEXIT;
    for (int kind = 0; kind < 2; kind++) {
        sx_req r;
        char err[256], param[64];
        const bool ok = sx_req_parse((const char *)data, size, (sx_req_kind)kind, &def, &r, err, sizeof err, param, sizeof param);
        if (ok) {
            if (kind == SX_REQ_CHAT) {
                require(r.n_msgs >= 1);
                for (int i = 0; i < r.n_msgs; i++) require(r.msgs[i].role && r.msgs[i].role[0] && r.msgs[i].content);
            } else { /* text, or token ids */
                require((r.prompt && r.prompt[0] && !r.prompt_ids) || (!r.prompt && r.prompt_ids && r.n_prompt_ids >= 1));
                for (int i = 0; i < r.n_prompt_ids; i++) require(r.prompt_ids[i] >= 0);
            }
            require(r.gp.top_logprobs >= 0 && r.gp.top_logprobs <= SX_MAX_TOP_LOGPROBS && (r.gp.logprobs || !r.gp.top_logprobs));
            require(!r.echo || kind == SX_REQ_COMPLETION);
            require(r.gp.sampling.temp >= 0 && r.gp.sampling.top_p > 0 && r.gp.sampling.top_p <= 1 && r.gp.n_predict >= -1);
            require(r.gp.spec.draft_nodes >= 1 && r.gp.spec.draft_nodes <= 63 && r.gp.exit.alpha > 0 && r.gp.exit.alpha <= 1);
            require(r.gp.exit.kind != SX_EXIT_SPECEXIT || r.gp.spec.kind == SX_SPEC_EAGLE3);
            require(r.n_stops >= 0 && r.n_stops <= SX_TEXT_MAX_STOPS);
        } else {
            require(err[0] != 0);
        }
        assemble(data, size, &r, kind == 0);
        sx_req_free(&r);
    }
    return 0;
}
