/* tools/cmd_serve.c — `specexit serve`: an OpenAI-compatible HTTP server
 * (libmicrohttpd + cJSON) with speculative decoding and the SpecExit policy
 * per request.
 *
 * Endpoints: POST /v1/chat/completions, /v1/completions (streaming as
 * server-sent events, like OpenAI and llama-server), /tokenize, /detokenize;
 * GET /health, /v1/models, /metrics (Prometheus text), /slots.
 *
 * Threads:
 *  - libmicrohttpd runs a thread per connection: it reads the body, parses
 *    and validates the request (tools/server_req.c), formats and tokenizes
 *    the prompt (the tokenizer is pure), rejects what cannot run (400 with an
 *    OpenAI-style error object) and queues a job; it then waits for the
 *    job's result, or streams its events as the worker produces them.
 *  - one worker thread per slot (-np N), each with its own session (KV
 *    cache); a queued job goes to the idle slot whose context shares the
 *    longest prefix with the prompt (the matching KV is reused, as
 *    llama-server's cache_prompt), else waits in FIFO order.
 *  - the workers share one engine (weights, devices). With continuous
 *    batching (the default) they generate at the same time and the engine
 *    combines their target passes into one forward pass per step (core/
 *    batch.c): every request still gets exactly its tokens alone. With
 *    -nocb they take turns through a fair ticket lock instead: a worker
 *    holds the turn for its prompt and yields it after every emitted token,
 *    so concurrent requests advance token by token.
 * A failing request (bad JSON, context exceeded, a device error in its
 * generation) answers that client with an error and a non-zero status; the
 * other requests and the server go on. A client that disconnects during
 * streaming cancels its generation at the next token. SIGINT/SIGTERM stop
 * the server cleanly. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/cli.h"
#include "tools/server_logprobs.h"
#include "tools/server_req.h"
#include "tools/server_text.h"

#define MAX_BODY (16u << 20)
#define PING_SECONDS 10     /* an idle stream sends an SSE comment this often (keeps proxies and MHD's timeout at bay) */
#define DRAIN_SECONDS 10    /* at shutdown, how long answers in flight may take to reach their clients */
#define FINGERPRINT "specexit-" SPECEXIT_VERSION

typedef struct job job;
typedef struct server server;

typedef struct slot {
    server *S;
    int id;
    sx_session *s;
    pthread_t thread;
    job *job; /* assigned, under S->mu */
    int n_tokens; /* in its KV cache (a finished request's stay for prompt caching), under S->mu */
} slot;

struct server {
    sx_engine *e;
    sx_engine_info info;
    sx_generate_params defaults;
    bool default_think;
    bool tool_call_token; /* "<tool_call>" is one token of the vocabulary (lazy tool-call grammars) */
    const char *alias, *api_key;
    int n_ctx, n_slots;
    double kv_bytes;     /* all slots' KV caches */
    const char *kv_type; /* their type */
    slot *slots;
    pthread_mutex_t mu; /* jobs, queue, slots, metrics */
    pthread_cond_t work_cv; /* a slot got a job, or the server stops */
    job *qhead, *qtail;
    int n_queued, n_running;
    int n_conns;            /* requests whose connection has not completed */
    pthread_cond_t conns_cv;
    bool stopping;
    bool take_turns;     /* -nocb: no continuous batching, the slots take turns */
    pthread_mutex_t tmu; /* the engine turn: a fair ticket lock */
    pthread_cond_t tcv;
    unsigned long next_ticket, serving;
    unsigned long long next_id;
    /* metrics, under mu */
    unsigned long long m_requests, m_errors, m_prompt, m_cached, m_generated, m_thinking, m_exits, m_steps, m_committed;
    double m_prompt_ms, m_decode_ms;
};

struct job {
    server *S;
    int refs; /* connection + worker, under S->mu */
    pthread_cond_t cv;
    sx_req req;
    int32_t *ids;
    int n_ids;
    bool thinking_open;
    char id[48];
    long long created;
    int fd; /* the client's socket (to notice a client that left), -1 unknown */
    /* state, under S->mu */
    bool queued, done, cancelled, failed;
    int slot, n_cached;
    int fail_status;
    char err[512];
    sx_sbuf sse; /* events not yet sent */
    size_t sse_off;
    /* the worker's */
    sx_text_asm text;
    sx_sbuf d_reasoning, d_content;
    bool stop_hit;
    cJSON *tool_calls; /* the answer's tool calls (tools in play), else NULL */
    sx_sbuf answer;    /* and the text outside them */
    sx_generate_stats gs;
    sx_lp_list lps;         /* logprobs: the generated tokens' */
    bool lp_oom;
    int lp_sent;            /* those streamed so far */
    sx_token_logprob *plps; /* echo with logprobs: prompt token k's at k - 1 */
    const char *echo_text;  /* echo: the prompt's text (the request's, or echo_buf) */
    char *echo_buf;
    bool echo_pending;      /* a stream's first chunk still owes the echoed prompt */
    size_t text_bytes;      /* bytes of the completion's text before the next token (text_offset) */
    double wait_ms; /* time spent waiting for other slots' turns inside the generation */
    int cur;               /* the choice being generated (n > 1: one after another) */
    cJSON *done_choices;   /* not streamed: the finished choices */
    long long sum_generated, sum_thinking; /* usage over the choices */
    job *next;
};

/* ---- the engine turn (-nocb) ---- */
static void turn_acquire(server *S) {
    if (!S->take_turns) return;
    pthread_mutex_lock(&S->tmu);
    const unsigned long t = S->next_ticket++;
    while (S->serving != t) pthread_cond_wait(&S->tcv, &S->tmu);
    pthread_mutex_unlock(&S->tmu);
}

static void turn_release(server *S) {
    if (!S->take_turns) return;
    pthread_mutex_lock(&S->tmu);
    S->serving++;
    pthread_cond_broadcast(&S->tcv);
    pthread_mutex_unlock(&S->tmu);
}

/* Lets every worker already waiting go first; returns holding the turn. */
static void turn_yield(server *S) {
    if (!S->take_turns) return;
    pthread_mutex_lock(&S->tmu);
    if (S->next_ticket - S->serving > 1) {
        S->serving++;
        const unsigned long t = S->next_ticket++;
        pthread_cond_broadcast(&S->tcv);
        while (S->serving != t) pthread_cond_wait(&S->tcv, &S->tmu);
    }
    pthread_mutex_unlock(&S->tmu);
}

/* ---- jobs ---- */
static void job_release_locked(job *j) {
    if (--j->refs > 0) return;
    sx_req_free(&j->req);
    free(j->ids);
    sx_sbuf_free(&j->sse);
    sx_text_free(&j->text);
    sx_sbuf_free(&j->d_reasoning);
    sx_sbuf_free(&j->d_content);
    sx_sbuf_free(&j->answer);
    cJSON_Delete(j->tool_calls);
    cJSON_Delete(j->done_choices);
    sx_lp_free(&j->lps);
    free(j->plps);
    free(j->echo_buf);
    sx_generate_stats_free(&j->gs);
    pthread_cond_destroy(&j->cv);
    free(j);
}

static void job_release(job *j) {
    server *S = j->S;
    pthread_mutex_lock(&S->mu);
    job_release_locked(j);
    pthread_mutex_unlock(&S->mu);
}

/* Hands queued jobs to idle slots (the one with the longest matching prefix). Under mu. */
static void dispatch_locked(server *S) {
    while (S->qhead) {
        job *j = S->qhead;
        int best = -1, best_len = -1;
        for (int i = 0; i < S->n_slots; i++) {
            if (S->slots[i].job) continue;
            const sx_session *s = S->slots[i].s;
            const int len = j->req.cache_prompt ? sx_session_common_prefix(s, j->ids, j->n_ids) : 0;
            if (len > best_len) best = i, best_len = len;
        }
        if (best < 0) return;
        S->qhead = j->next;
        if (!S->qhead) S->qtail = NULL;
        j->next = NULL;
        j->queued = false;
        S->n_queued--;
        S->n_running++;
        j->slot = best;
        S->slots[best].job = j;
        pthread_cond_broadcast(&S->work_cv);
    }
}

/* The peer closed its end (or the socket failed). */
static bool client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return true;
    char c;
    const ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void push_event_locked(job *j, const char *data);
static cJSON *error_object(unsigned status, const char *type, const char *msg, const char *param);

/* Ends a job that has not started: out of the queue, answered with `status`
 * (a stream gets an error event and [DONE]); drops the worker's reference.
 * Under mu. */
static void fail_queued_locked(server *S, job *j, unsigned status, const char *msg) {
    if (!j->queued) return;
    job **pp = &S->qhead;
    while (*pp && *pp != j) pp = &(*pp)->next;
    if (*pp) *pp = j->next;
    S->qtail = NULL;
    for (job *q = S->qhead; q; q = q->next) S->qtail = q;
    j->next = NULL;
    j->queued = false;
    S->n_queued--;
    j->failed = true, j->fail_status = (int)status, j->done = true;
    snprintf(j->err, sizeof j->err, "%s", msg);
    if (j->req.stream) {
        cJSON *o = error_object(status, status == 503 ? "unavailable_error" : "server_error", msg, NULL);
        char *ev = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (ev) push_event_locked(j, ev);
        free(ev);
        push_event_locked(j, "[DONE]");
    }
    pthread_cond_broadcast(&j->cv);
    job_release_locked(j);
}

/* Events for the client, under mu: wakes its connection. */
static void push_event_locked(job *j, const char *data) {
    sx_sbuf_adds(&j->sse, "data: ");
    sx_sbuf_adds(&j->sse, data);
    sx_sbuf_adds(&j->sse, "\n\n");
    pthread_cond_broadcast(&j->cv);
}

/* Prints o (and deletes it) as one event. */
static void push_json(job *j, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    pthread_mutex_lock(&j->S->mu);
    if (s) push_event_locked(j, s);
    pthread_mutex_unlock(&j->S->mu);
    free(s);
}

/* OpenAI's error object: {"error": {"code", "message", "type", "param"}} */
static cJSON *error_object(unsigned status, const char *type, const char *msg, const char *param) {
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddNumberToObject(e, "code", status);
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    if (param && param[0]) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    return o;
}

static cJSON *chunk_base(const job *j) {
    const server *S = j->S;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", j->req.kind == SX_REQ_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", S->alias);
    cJSON_AddStringToObject(o, "system_fingerprint", FINGERPRINT);
    return o;
}

/* One streamed chunk: a delta (chat) or a piece of text (completion). */
static void push_delta(job *j, const char *role, const sx_sbuf *reasoning, const sx_sbuf *content, const char *finish, cJSON *extra) {
    cJSON *o = chunk_base(j);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", j->cur);
    if (j->req.kind == SX_REQ_CHAT) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role) cJSON_AddStringToObject(d, "role", role), cJSON_AddStringToObject(d, "content", "");
        if (reasoning && reasoning->len) cJSON_AddStringToObject(d, "reasoning_content", reasoning->s);
        if (content && content->len) cJSON_AddStringToObject(d, "content", content->s);
    } else {
        sx_sbuf t = {0};
        if (j->echo_pending) sx_sbuf_adds(&t, j->echo_text);
        if (content && content->len) sx_sbuf_add(&t, content->s, content->len);
        cJSON_AddStringToObject(c, "text", t.s ? t.s : "");
        sx_sbuf_free(&t);
    }
    /* the tokens' logprobs since the last chunk (and the echoed prompt's in the first) */
    if (!j->req.gp.logprobs) cJSON_AddNullToObject(c, "logprobs");
    else if (j->req.kind == SX_REQ_CHAT) cJSON_AddItemToObject(c, "logprobs", sx_lp_chat_json(j->S->e, j->req.token_ids, &j->lps, j->lp_sent, j->lps.n));
    else
        cJSON_AddItemToObject(c, "logprobs", sx_lp_completion_json(j->S->e, j->req.token_ids, j->echo_pending ? j->ids : NULL, j->n_ids, j->echo_text, j->plps, &j->lps,
                                                                   j->lp_sent, j->lps.n));
    j->lp_sent = j->lps.n;
    j->echo_pending = false;
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(choices, c);
    if (j->req.include_usage) cJSON_AddNullToObject(o, "usage"); /* as OpenAI: null on every chunk but the last */
    if (extra) {
        cJSON *it = extra->child;
        while (it) {
            cJSON *nx = it->next;
            cJSON_AddItemToObject(o, it->string, cJSON_DetachItemViaPointer(extra, it));
            it = nx;
        }
    }
    push_json(j, o);
}

static bool on_token(int32_t token, const char *piece, size_t len, void *user) {
    (void)token;
    job *j = user;
    server *S = j->S;
    const sx_token_logprob *lp = sx_generate_logprob(S->slots[j->slot].s); /* this worker's own session */
    if (lp && !sx_lp_push(&j->lps, lp, (int)j->text_bytes)) {
        j->lp_oom = true; /* the choice fails (not a truncated answer) */
        return false;
    }
    j->text_bytes += len;
    sx_sbuf_clear(&j->d_reasoning);
    sx_sbuf_clear(&j->d_content);
    const bool go = sx_text_push(&j->text, piece, len, &j->d_reasoning, &j->d_content);
    if (!go) j->stop_hit = true;
    /* with tools, the answer is held back until it is known to be text or tool calls */
    const sx_sbuf *content = sx_req_tools(&j->req) ? NULL : &j->d_content;
    if (j->req.stream && (j->d_reasoning.len || (content && content->len))) push_delta(j, NULL, &j->d_reasoning, content, NULL, NULL);
    pthread_mutex_lock(&S->mu);
    const bool cancel = j->cancelled || S->stopping;
    S->slots[j->slot].n_tokens = sx_session_n_past(S->slots[j->slot].s); /* this worker's own session */
    pthread_mutex_unlock(&S->mu);
    if (cancel) return false;
    const double t0 = sx_cli_now_ms();
    turn_yield(S);
    j->wait_ms += sx_cli_now_ms() - t0; /* not this request's decoding time */
    return go;
}

static const char *finish_reason(const job *j) {
    if (j->tool_calls) return "tool_calls";
    if (j->stop_hit) return "stop";
    return j->gs.stop_reason == SX_STOP_EOG ? "stop" : "length";
}

/* usage, timings and the engine's own statistics of a finished job */
static void add_stats(cJSON *o, const job *j, bool usage) {
    const sx_generate_stats *g = &j->gs;
    if (usage) {
        cJSON *u = cJSON_AddObjectToObject(o, "usage");
        cJSON_AddNumberToObject(u, "prompt_tokens", j->n_ids);
        cJSON_AddNumberToObject(u, "completion_tokens", (double)j->sum_generated); /* every choice's */
        cJSON_AddNumberToObject(u, "total_tokens", (double)(j->n_ids + j->sum_generated));
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "prompt_tokens_details"), "cached_tokens", j->n_cached);
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "completion_tokens_details"), "reasoning_tokens", (double)j->sum_thinking);
    }
    cJSON *t = cJSON_AddObjectToObject(o, "timings");
    cJSON_AddNumberToObject(t, "cache_n", j->n_cached);
    cJSON_AddNumberToObject(t, "prompt_n", g->n_prompt_tokens);
    cJSON_AddNumberToObject(t, "prompt_ms", g->prefill_ms);
    cJSON_AddNumberToObject(t, "prompt_per_second", g->prefill_tok_s);
    cJSON_AddNumberToObject(t, "predicted_n", g->n_generated_tokens);
    cJSON_AddNumberToObject(t, "predicted_ms", g->decode_ms);
    cJSON_AddNumberToObject(t, "predicted_per_second", g->decode_tok_s);
    cJSON *x = cJSON_AddObjectToObject(o, "specexit");
    cJSON_AddNumberToObject(x, "slot", j->slot);
    sx_cli_add_spec_json(x, &j->req.gp, g);
}

/* echo with logprobs: every prompt token is scored (no cached prefix: its rows are gone), all but the last,
 * which starts the generation, unless nothing is generated (max_tokens 0) */
static sx_status score_prompt(sx_session *s, job *j, int *n_left) {
    const sx_generate_params *g = &j->req.gp;
    const bool gen = g->n_predict != 0;
    const int n = j->n_ids - (gen ? 1 : 0);
    *n_left = j->n_ids - n;
    if (!(j->plps = calloc((size_t)j->n_ids, sizeof *j->plps))) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "out of memory");
    j->gs.n_prompt_tokens = j->n_ids;
    j->gs.stop_reason = SX_STOP_LENGTH; /* max_tokens 0: the prompt alone */
    if (n < 1) return SX_OK;
    const double t0 = sx_cli_now_ms();
    const sx_status st = sx_session_eval_logprobs(s, j->ids, n, gen ? j->ids[n] : -1, g->top_logprobs, j->plps);
    j->gs.prefill_ms = sx_cli_now_ms() - t0;
    return st;
}

/* one choice as a finished answer object (not streamed) */
static cJSON *choice_json(const job *j) {
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", j->cur);
    const char *content = j->text.content_text.s ? j->text.content_text.s : "";
    if (j->req.kind == SX_REQ_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        if (!j->tool_calls) cJSON_AddStringToObject(m, "content", content);
        else if (j->answer.len) cJSON_AddStringToObject(m, "content", j->answer.s);
        else cJSON_AddNullToObject(m, "content"); /* as OpenAI: only calls */
        if (j->tool_calls) cJSON_AddItemToObject(m, "tool_calls", cJSON_Duplicate(j->tool_calls, true));
        if (j->text.saw_reasoning) cJSON_AddStringToObject(m, "reasoning_content", j->text.reasoning_text.s ? j->text.reasoning_text.s : "");
    } else {
        sx_sbuf t = {0};
        if (j->req.echo) sx_sbuf_adds(&t, j->echo_text);
        sx_sbuf_adds(&t, content);
        cJSON_AddStringToObject(ch, "text", t.s ? t.s : "");
        sx_sbuf_free(&t);
    }
    if (!j->req.gp.logprobs) cJSON_AddNullToObject(ch, "logprobs");
    else if (j->req.kind == SX_REQ_CHAT) cJSON_AddItemToObject(ch, "logprobs", sx_lp_chat_json(j->S->e, j->req.token_ids, &j->lps, 0, j->lps.n));
    else
        cJSON_AddItemToObject(ch, "logprobs",
                              sx_lp_completion_json(j->S->e, j->req.token_ids, j->req.echo ? j->ids : NULL, j->n_ids, j->echo_text, j->plps, &j->lps, 0, j->lps.n));
    cJSON_AddStringToObject(ch, "finish_reason", finish_reason(j));
    return ch;
}

/* One choice; false when it failed (the request ends there). */
static bool run_choice(server *S, slot *sl, job *j) {
    sx_session *s = sl->s;
    const bool last_choice = j->cur == j->req.n_choices - 1;
    /* a fresh answer: the previous choice's state goes */
    sx_text_free(&j->text);
    sx_sbuf_clear(&j->answer);
    cJSON_Delete(j->tool_calls);
    j->tool_calls = NULL;
    j->stop_hit = false;
    j->lps.n = j->lp_sent = 0;
    sx_generate_stats_free(&j->gs);
    memset(&j->gs, 0, sizeof j->gs);
    j->wait_ms = 0;
    turn_acquire(S);
    const bool scored = j->req.echo && j->req.gp.logprobs && j->cur == 0; /* later choices reuse the scored prompt */
    int keep = (j->req.cache_prompt || j->cur > 0) && !scored ? sx_session_common_prefix(s, j->ids, j->n_ids) : 0;
    if (keep >= j->n_ids) keep = j->n_ids - 1; /* at least one token is evaluated: its logits start the generation */
    sx_session_truncate(s, keep);
    if (j->cur == 0) j->n_cached = keep;
    sx_text_init(&j->text, j->thinking_open, j->req.stops, j->req.n_stops);
    j->echo_pending = j->req.echo && j->req.stream;
    j->text_bytes = j->req.echo ? strlen(j->echo_text) : 0;
    if (j->req.stream && j->req.kind == SX_REQ_CHAT) push_delta(j, "assistant", NULL, NULL, NULL, NULL);
    int n_left = j->n_ids - keep;
    sx_status st = scored ? score_prompt(s, j, &n_left) : SX_OK;
    const double score_ms = j->gs.prefill_ms;
    if (st == SX_OK && n_left > 0) {
        st = sx_generate(s, j->ids + j->n_ids - n_left, n_left, &j->req.gp, on_token, j, &j->gs);
        j->gs.prefill_ms += score_ms;
    }
    if (scored) j->gs.n_prompt_tokens = j->n_ids;
    if (st == SX_OK && j->lp_oom) st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "out of memory for the logprobs");
    char err[512];
    snprintf(err, sizeof err, "%s", sx_last_error());
    if (st != SX_OK) sx_session_reset(s); /* its context is unknown after a failure */
    turn_release(S);
    /* the decode time without the turns other slots had */
    sx_generate_stats *g = &j->gs;
    g->decode_ms = g->decode_ms > j->wait_ms ? g->decode_ms - j->wait_ms : 0.0;
    g->decode_tok_s = g->decode_ms > 0 && g->n_generated_tokens > 1 ? (g->n_generated_tokens - 1) / (g->decode_ms / 1e3) : 0.0;
    j->sum_generated += g->n_generated_tokens;
    j->sum_thinking += g->thinking_tokens;
    pthread_mutex_lock(&S->mu);
    const bool cut_by_stop = st == SX_OK && S->stopping && g->stop_reason == SX_STOP_CALLBACK && !j->stop_hit && !j->cancelled;
    pthread_mutex_unlock(&S->mu);
    unsigned fail_status = st == SX_ERR_INVALID_ARG || st == SX_ERR_UNSUPPORTED || st == SX_ERR_CONTEXT_FULL ? 400 : 500;
    if (cut_by_stop) { /* not a finished answer: say so instead of a 200 "length" */
        st = SX_ERR_CANCELLED;
        fail_status = 503;
        snprintf(err, sizeof err, "the server is shutting down");
    }
    sx_sbuf_clear(&j->d_reasoning);
    sx_sbuf_clear(&j->d_content);
    if (st == SX_OK) sx_text_finish(&j->text, &j->d_reasoning, &j->d_content);
    if (st == SX_OK && sx_req_tools(&j->req)) { /* the whole answer: text, or tool calls */
        j->tool_calls = sx_tool_calls_parse(j->text.content_text.s ? j->text.content_text.s : "", j->id, &j->answer);
        sx_sbuf_clear(&j->d_content);
        if (j->answer.len) sx_sbuf_adds(&j->d_content, j->answer.s); /* streamed: all of it now */
    }
    if (j->req.stream) {
        if (st != SX_OK) {
            push_json(j, error_object(fail_status, fail_status == 503 ? "unavailable_error" : "server_error", err, NULL));
        } else {
            if (j->tool_calls) { /* the text, then the calls (with their index, as OpenAI streams them) */
                push_delta(j, NULL, &j->d_reasoning, &j->d_content, NULL, NULL);
                sx_sbuf_clear(&j->d_reasoning);
                sx_sbuf_clear(&j->d_content);
                cJSON *o = chunk_base(j), *ch = cJSON_CreateObject(), *calls = cJSON_Duplicate(j->tool_calls, true);
                int k = 0;
                for (cJSON *tc = calls ? calls->child : NULL; tc; tc = tc->next) cJSON_AddNumberToObject(tc, "index", k++);
                cJSON_AddNumberToObject(ch, "index", j->cur);
                cJSON_AddItemToObject(cJSON_AddObjectToObject(ch, "delta"), "tool_calls", calls);
                cJSON_AddNullToObject(ch, "logprobs");
                cJSON_AddNullToObject(ch, "finish_reason");
                cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
                if (j->req.include_usage) cJSON_AddNullToObject(o, "usage");
                push_json(j, o);
            }
            cJSON *extra = cJSON_CreateObject();
            add_stats(extra, j, false);
            push_delta(j, NULL, &j->d_reasoning, &j->d_content, finish_reason(j), extra);
            cJSON_Delete(extra);
            if (j->req.include_usage && last_choice) {
                cJSON *o = chunk_base(j);
                cJSON_AddArrayToObject(o, "choices");
                add_stats(o, j, true);
                push_json(j, o);
            }
        }
        pthread_mutex_lock(&S->mu);
        if (last_choice || st != SX_OK) push_event_locked(j, "[DONE]");
        pthread_mutex_unlock(&S->mu);
    } else if (st == SX_OK) {
        if (!j->done_choices) j->done_choices = cJSON_CreateArray();
        cJSON_AddItemToArray(j->done_choices, choice_json(j));
    }
    pthread_mutex_lock(&S->mu);
    sl->n_tokens = sx_session_n_past(s);
    if (st != SX_OK) {
        j->failed = true;
        j->fail_status = (int)fail_status;
        snprintf(j->err, sizeof j->err, "%s", err);
        S->m_errors += !cut_by_stop;
    } else {
        S->m_prompt += (unsigned long long)g->n_prompt_tokens;
        S->m_cached += j->cur == 0 ? (unsigned long long)j->n_cached : 0; /* the prompt once, not per choice */
        S->m_generated += (unsigned long long)g->n_generated_tokens;
        S->m_thinking += (unsigned long long)g->thinking_tokens;
        S->m_exits += g->exited_early;
        S->m_steps += (unsigned long long)g->n_steps;
        S->m_committed += (unsigned long long)(g->accept_len_mean * g->n_steps + 0.5);
        S->m_prompt_ms += g->prefill_ms;
        S->m_decode_ms += g->decode_ms;
    }
    pthread_mutex_unlock(&S->mu);
    fprintf(stderr, "[serve] %s slot %d: prompt %d tokens (%d cached), generated %d in %.0f ms, %.2f tokens/pass%s%s%s\n", j->id, sl->id,
            j->n_ids, j->n_cached, j->gs.n_generated_tokens, j->gs.prefill_ms + j->gs.decode_ms, j->gs.accept_len_mean,
            j->gs.exited_early ? ", thinking ended by " : "", j->gs.exited_early ? j->gs.exit_reason : "", st != SX_OK ? ", FAILED" : "");
    return st == SX_OK;
}

/* The request's n choices, one after another on this slot: the prompt is evaluated once (the later
 * choices find it cached), each choice draws with seed + its index (a fresh random seed without one). */
static void run_job(server *S, slot *sl, job *j) {
    const uint64_t seed = j->req.gp.sampling.seed;
    for (j->cur = 0; j->cur < j->req.n_choices; j->cur++) {
        if (j->cur > 0) {
            pthread_mutex_lock(&S->mu);
            const bool cancel = j->cancelled || S->stopping;
            if (cancel && !j->cancelled) { /* shutting down: not a whole answer, and a stream gets its ending */
                j->failed = true, j->fail_status = 503;
                snprintf(j->err, sizeof j->err, "the server is shutting down");
                if (j->req.stream) {
                    push_event_locked(j, "{\"error\":{\"code\":503,\"message\":\"the server is shutting down\",\"type\":\"unavailable_error\"}}");
                    push_event_locked(j, "[DONE]");
                }
            }
            pthread_mutex_unlock(&S->mu);
            if (cancel) break;
            j->req.gp.sampling.seed = seed == SX_SEED_RANDOM ? SX_SEED_RANDOM : seed + (uint64_t)j->cur;
        }
        if (!run_choice(S, sl, j)) break;
    }
    if (j->cur > j->req.n_choices - 1) j->cur = j->req.n_choices - 1;
}

static void *worker_main(void *arg) {
    slot *sl = arg;
    server *S = sl->S;
    for (;;) {
        pthread_mutex_lock(&S->mu);
        while (!sl->job && !S->stopping) pthread_cond_wait(&S->work_cv, &S->mu);
        job *j = sl->job;
        pthread_mutex_unlock(&S->mu);
        if (!j) break; /* stopping, nothing assigned */
        pthread_mutex_lock(&S->mu);
        const bool gone = j->cancelled || S->stopping; /* its client left, or the server stops, before it began */
        if (gone) {
            j->failed = true, j->fail_status = 503;
            snprintf(j->err, sizeof j->err, "%s", S->stopping ? "the server is shutting down" : "the client left");
            if (j->req.stream) { /* whoever still reads gets an ending */
                push_event_locked(j, "{\"error\":{\"code\":503,\"message\":\"the request was not run\",\"type\":\"unavailable_error\"}}");
                push_event_locked(j, "[DONE]");
            }
        }
        pthread_mutex_unlock(&S->mu);
        if (!gone) run_job(S, sl, j);
        pthread_mutex_lock(&S->mu);
        j->done = true;
        pthread_cond_broadcast(&j->cv);
        sl->job = NULL;
        S->n_running--;
        job_release_locked(j);
        dispatch_locked(S);
        pthread_mutex_unlock(&S->mu);
    }
    return NULL;
}

/* ---- HTTP ---- */
typedef struct conn_ctx {
    sx_sbuf body;
    bool too_large;
} conn_ctx;

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, const char *type, char *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    const enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return MHD_NO;
    return send_body(c, status, "application/json; charset=utf-8", s);
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *type, const char *msg, const char *param) {
    fprintf(stderr, "[serve] %u %s: %s\n", status, type, msg);
    return send_json(c, status, error_object(status, type, msg, param));
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    job *j = cls;
    server *S = j->S;
    static const char ping[] = ": ping\n\n"; /* an SSE comment: clients ignore it */
    pthread_mutex_lock(&S->mu);
    for (int idle = 0; j->sse_off == j->sse.len && !j->done;) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        if (pthread_cond_timedwait(&j->cv, &S->mu, &until) != ETIMEDOUT) continue;
        if (client_gone(j->fd)) { /* left while waiting (queued, or a long prefill): stop its work now */
            j->cancelled = true;
            fail_queued_locked(S, j, 499, "the client left");
            pthread_mutex_unlock(&S->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (++idle >= PING_SECONDS && max >= sizeof ping - 1) {
            pthread_mutex_unlock(&S->mu);
            memcpy(buf, ping, sizeof ping - 1);
            return (ssize_t)(sizeof ping - 1);
        }
    }
    if (j->sse_off == j->sse.len) {
        pthread_mutex_unlock(&S->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = j->sse.len - j->sse_off;
    if (n > max) n = max;
    memcpy(buf, j->sse.s + j->sse_off, n);
    j->sse_off += n;
    if (j->sse_off == j->sse.len) j->sse_off = 0, sx_sbuf_clear(&j->sse);
    pthread_mutex_unlock(&S->mu);
    return (ssize_t)n;
}

/* The stream's response is gone (finished, or the client disconnected). */
static void sse_free(void *cls) {
    job *j = cls;
    server *S = j->S; /* j may be freed below */
    pthread_mutex_lock(&S->mu);
    j->cancelled = true;
    job_release_locked(j);
    pthread_mutex_unlock(&S->mu);
}

static enum MHD_Result reply_completion(struct MHD_Connection *c, job *j) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", j->req.kind == SX_REQ_CHAT ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", j->S->alias);
    cJSON_AddStringToObject(o, "system_fingerprint", FINGERPRINT);
    cJSON_AddItemToObject(o, "choices", j->done_choices ? j->done_choices : cJSON_CreateArray());
    j->done_choices = NULL;
    add_stats(o, j, true);
    return send_json(c, 200, o);
}

/* POST /v1/chat/completions and /v1/completions */
static enum MHD_Result handle_generate(server *S, struct MHD_Connection *c, sx_req_kind kind, const sx_sbuf *body) {
    job *j = calloc(1, sizeof *j);
    if (!j) return send_error(c, 500, "server_error", "out of memory", NULL);
    j->S = S;
    j->refs = 1;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? (int)ci->connect_fd : -1;
    pthread_cond_init(&j->cv, NULL);
    char err[512], param[64];
    if (!sx_req_parse(body->s ? body->s : "", body->len, kind, &S->defaults, &j->req, err, sizeof err, param, sizeof param)) {
        job_release(j);
        return send_error(c, 400, "invalid_request_error", err, param);
    }
    /* the prompt */
    char *text = NULL;
    sx_status st = SX_OK;
    const bool think = j->req.think >= 0 ? j->req.think == 1 : S->default_think;
    if (kind == SX_REQ_CHAT) {
        st = sx_chat_apply_tools(S->e, j->req.msgs, j->req.n_msgs, sx_req_tools(&j->req) ? j->req.tools_json : NULL, true, think, &text);
        j->thinking_open = think && S->info.thinking;
        if (st == SX_ERR_UNSUPPORTED) {
            snprintf(err, sizeof err, "%s", sx_last_error());
            job_release(j);
            return send_error(c, 400, "invalid_request_error", err, "tools");
        }
        if (st == SX_OK && j->req.tools_call_grammar && S->tool_call_token) { /* tool_choice auto: a lazy grammar from <tool_call> on */
            j->req.gp.grammar = j->req.tools_call_grammar;
            j->req.gp.grammar_trigger = "<tool_call>";
        }
    }
    if (st == SX_OK && kind == SX_REQ_COMPLETION && j->req.prompt_ids) { /* token ids: checked against the vocabulary */
        j->n_ids = j->req.n_prompt_ids;
        if (!(j->ids = malloc(sizeof(int32_t) * (size_t)j->n_ids))) st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "out of memory");
        for (int i = 0; st == SX_OK && i < j->n_ids; i++)
            if ((j->ids[i] = j->req.prompt_ids[i]) >= S->info.n_vocab)
                st = sx_set_error(SX_ERR_INVALID_ARG, "'prompt': token id %d is not in the vocabulary (%d tokens)", j->ids[i], S->info.n_vocab);
        if (st == SX_OK && j->req.echo && !(j->echo_buf = sx_lp_prompt_text(S->e, j->ids, j->n_ids)))
            st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "out of memory");
    } else if (st == SX_OK) {
        st = sx_tokenize(S->e, kind == SX_REQ_CHAT ? text : j->req.prompt, true, true, &j->ids, &j->n_ids);
    }
    j->echo_text = j->echo_buf ? j->echo_buf : j->req.prompt;
    free(text);
    if (st != SX_OK) {
        snprintf(err, sizeof err, "%s", sx_last_error());
        job_release(j);
        return send_error(c, 400, "invalid_request_error", err, kind == SX_REQ_CHAT ? "messages" : "prompt");
    }
    if (j->n_ids < 1) {
        job_release(j);
        return send_error(c, 400, "invalid_request_error", "the prompt has no tokens", NULL);
    }
    if (j->n_ids >= S->n_ctx) {
        snprintf(err, sizeof err, "the request exceeds the available context size: the prompt has %d tokens, the context %d (raise --ctx-size)",
                 j->n_ids, S->n_ctx);
        job_release(j);
        return send_error(c, 400, "exceed_context_size_error", err, kind == SX_REQ_CHAT ? "messages" : "prompt");
    }
    const sx_generate_params *g = &j->req.gp;
    const char *need = g->spec.kind == SX_SPEC_EAGLE3 && strcmp(S->info.draft, "eagle3") ? "an EAGLE-3 draft"
                       : g->spec.kind == SX_SPEC_DRAFT && strcmp(S->info.draft, "draft") ? "a draft model"
                       : g->exit.kind == SX_EXIT_SPECEXIT && !S->info.draft_signals   ? "an EAGLE-3 draft with exit signals"
                                                                                      : NULL;
    if (need) {
        snprintf(err, sizeof err, "\"spec\": \"%s\" / \"exit\": \"%s\" needs %s; this server has %s (start it with -md DRAFT.gguf)",
                 sx_spec_kind_name(g->spec.kind), sx_exit_kind_name(g->exit.kind), need, strcmp(S->info.draft, "none") ? S->info.draft : "no draft");
        job_release(j);
        return send_error(c, 400, "invalid_request_error", err, "spec");
    }
    /* queue it */
    pthread_mutex_lock(&S->mu);
    if (S->stopping) {
        pthread_mutex_unlock(&S->mu);
        job_release(j);
        return send_error(c, 503, "unavailable_error", "the server is shutting down", NULL);
    }
    snprintf(j->id, sizeof j->id, "%s-%llu", kind == SX_REQ_CHAT ? "chatcmpl" : "cmpl", ++S->next_id);
    j->created = (long long)time(NULL);
    j->refs = 2; /* this connection and the worker */
    j->queued = true;
    S->m_requests++;
    if (S->qtail) S->qtail->next = j;
    else S->qhead = j;
    S->qtail = j;
    S->n_queued++;
    dispatch_locked(S);
    if (j->req.stream) {
        pthread_mutex_unlock(&S->mu);
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, j, sse_free);
        if (!r) {
            sse_free(j);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
        const enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    while (!j->done) { /* a client that leaves cancels its request (checked every second) */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        if (pthread_cond_timedwait(&j->cv, &S->mu, &until) == ETIMEDOUT && !j->cancelled && client_gone(j->fd)) {
            j->cancelled = true;
            fail_queued_locked(S, j, 499, "the client left");
        }
    }
    pthread_mutex_unlock(&S->mu);
    enum MHD_Result ret;
    if (j->failed) ret = send_error(c, (unsigned)j->fail_status, j->fail_status == 400 ? "invalid_request_error" : "server_error", j->err, NULL);
    else ret = reply_completion(c, j);
    job_release(j);
    return ret;
}

static enum MHD_Result handle_tokenize(server *S, struct MHD_Connection *c, const sx_sbuf *body, bool detok) {
    cJSON *in = cJSON_ParseWithLength(body->s ? body->s : "", body->len);
    if (!cJSON_IsObject(in)) {
        cJSON_Delete(in);
        return send_error(c, 400, "invalid_request_error", "the request body must be a JSON object", NULL);
    }
    cJSON *out = cJSON_CreateObject();
    sx_status st = SX_OK;
    const char *bad = NULL;
    if (!detok) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(in, "content");
        const cJSON *add = cJSON_GetObjectItemCaseSensitive(in, "add_special");
        const cJSON *parse = cJSON_GetObjectItemCaseSensitive(in, "parse_special");
        if (!cJSON_IsString(content)) bad = "'content' must be a string";
        int32_t *ids = NULL;
        int n = 0;
        if (!bad) st = sx_tokenize(S->e, content->valuestring, cJSON_IsTrue(add), parse ? cJSON_IsTrue(parse) : true, &ids, &n);
        if (!bad && st == SX_OK) {
            cJSON *arr = cJSON_AddArrayToObject(out, "tokens");
            for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
        }
        free(ids);
    } else {
        const cJSON *toks = cJSON_GetObjectItemCaseSensitive(in, "tokens"), *t;
        const int n = cJSON_IsArray(toks) ? cJSON_GetArraySize(toks) : -1;
        int32_t *ids = n >= 0 ? malloc(sizeof(int32_t) * (size_t)(n + 1)) : NULL;
        if (n < 0) bad = "'tokens' must be an array of token ids";
        else if (!ids) st = sx_set_error(SX_ERR_OUT_OF_MEMORY, "out of memory");
        int i = 0;
        if (!bad && ids)
            cJSON_ArrayForEach(t, toks) {
                if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble >= S->info.n_vocab || t->valuedouble != (int32_t)t->valuedouble) {
                    bad = "'tokens' must hold integer ids within the vocabulary";
                    break;
                }
                ids[i++] = (int32_t)t->valuedouble;
            }
        char *text = NULL;
        if (!bad && ids) st = sx_detokenize(S->e, ids, n, &text);
        if (!bad && st == SX_OK && text) {
            sx_sbuf clean = {0};
            sx_utf8_sanitize_into(&clean, text, strlen(text));
            cJSON_AddStringToObject(out, "content", clean.s ? clean.s : "");
            sx_sbuf_free(&clean);
        }
        free(text);
        free(ids);
    }
    cJSON_Delete(in);
    if (bad || st != SX_OK) {
        cJSON_Delete(out);
        return send_error(c, 400, "invalid_request_error", bad ? bad : sx_last_error(), detok ? "tokens" : "content");
    }
    return send_json(c, 200, out);
}

static enum MHD_Result handle_models(server *S, struct MHD_Connection *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", S->alias);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 0);
    cJSON_AddStringToObject(m, "owned_by", "specexit");
    cJSON *meta = cJSON_AddObjectToObject(m, "meta");
    cJSON_AddStringToObject(meta, "arch", S->info.arch);
    cJSON_AddStringToObject(meta, "quant", S->info.quant);
    cJSON_AddNumberToObject(meta, "n_params", (double)S->info.n_params);
    cJSON_AddNumberToObject(meta, "n_vocab", S->info.n_vocab);
    cJSON_AddNumberToObject(meta, "n_ctx", S->n_ctx);
    cJSON_AddNumberToObject(meta, "n_slots", S->n_slots);
    cJSON_AddStringToObject(meta, "backend", S->info.backend);
    cJSON_AddStringToObject(meta, "device", S->info.device);
    cJSON_AddNumberToObject(meta, "n_layer", S->info.n_layer);
    cJSON_AddNumberToObject(meta, "n_gpu_layers", S->info.n_gpu_layers + S->info.output_on_device); /* llama.cpp's count */
    if (S->info.n_expert) { /* mixture of experts */
        cJSON_AddNumberToObject(meta, "n_expert", S->info.n_expert);
        cJSON_AddNumberToObject(meta, "n_expert_used", S->info.n_expert_used);
        cJSON_AddNumberToObject(meta, "n_cpu_moe", S->info.n_cpu_moe);
    }
    cJSON_AddStringToObject(meta, "chat_template", S->info.chat_template);
    cJSON_AddBoolToObject(meta, "thinking", S->info.thinking);
    cJSON_AddStringToObject(meta, "draft", S->info.draft);
    cJSON_AddStringToObject(meta, "spec", sx_spec_kind_name(S->defaults.spec.kind));
    cJSON_AddStringToObject(meta, "exit", sx_exit_kind_name(S->defaults.exit.kind));
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "data"), m);
    return send_json(c, 200, o);
}

/* GET /slots (llama-server's monitoring endpoint): each slot, whether it is
 * generating, and the request it serves. */
static enum MHD_Result handle_slots(server *S, struct MHD_Connection *c) {
    cJSON *arr = cJSON_CreateArray();
    pthread_mutex_lock(&S->mu);
    for (int i = 0; i < S->n_slots; i++) {
        const job *j = S->slots[i].job;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", i);
        cJSON_AddNumberToObject(o, "n_ctx", S->n_ctx);
        cJSON_AddNumberToObject(o, "n_past", S->slots[i].n_tokens);
        cJSON_AddStringToObject(o, "cache_type_k", S->kv_type);
        cJSON_AddBoolToObject(o, "is_processing", j != NULL);
        if (j) {
            cJSON_AddStringToObject(o, "id_task", j->id);
            cJSON_AddNumberToObject(o, "n_prompt_tokens", j->n_ids);
            cJSON_AddBoolToObject(o, "stream", j->req.stream);
        }
        cJSON_AddItemToArray(arr, o);
    }
    pthread_mutex_unlock(&S->mu);
    return send_json(c, 200, arr);
}

static enum MHD_Result handle_metrics(server *S, struct MHD_Connection *c) {
    sx_sbuf b = {0};
    char line[256];
    uint64_t b_passes, b_seqs;
    sx_engine_batch_stats(S->e, &b_passes, &b_seqs);
    pthread_mutex_lock(&S->mu);
    double kv_tokens = 0;
    for (int i = 0; i < S->n_slots; i++) kv_tokens += S->slots[i].n_tokens;
    const struct {
        const char *name, *type, *help;
        double v;
    } m[] = {
        {"requests_total", "counter", "Generation requests accepted.", (double)S->m_requests},
        {"requests_errors_total", "counter", "Generation requests that failed while running.", (double)S->m_errors},
        {"prompt_tokens_total", "counter", "Prompt tokens evaluated (cached ones excluded).", (double)S->m_prompt},
        {"prompt_tokens_cached_total", "counter", "Prompt tokens reused from a slot's context.", (double)S->m_cached},
        {"tokens_predicted_total", "counter", "Tokens generated.", (double)S->m_generated},
        {"thinking_tokens_total", "counter", "Generated tokens inside a thinking section.", (double)S->m_thinking},
        {"thinking_exits_total", "counter", "Generations whose thinking the exit policy ended early.", (double)S->m_exits},
        {"target_passes_total", "counter", "Target decode passes.", (double)S->m_steps},
        {"tokens_per_pass", "gauge", "Generated tokens committed per target pass (speculative acceptance).",
         S->m_steps ? (double)S->m_committed / (double)S->m_steps : 0.0},
        {"prompt_seconds_total", "counter", "Time spent evaluating prompts.", S->m_prompt_ms / 1e3},
        {"decode_seconds_total", "counter", "Time spent generating.", S->m_decode_ms / 1e3},
        {"batched_passes_total", "counter", "Target passes that combined the slots generating at the same time.", (double)b_passes},
        {"batched_sequences_total", "counter", "Sequences those passes carried (divided by the passes: the mean batch).", (double)b_seqs},
        {"requests_processing", "gauge", "Requests running in a slot.", (double)S->n_running},
        {"requests_deferred", "gauge", "Requests waiting for a slot.", (double)S->n_queued},
        {"kv_cache_tokens", "gauge", "Tokens in the slots' KV caches (finished requests' stay for prompt caching).", kv_tokens},
        {"kv_cache_usage_ratio", "gauge", "kv_cache_tokens over the slots' context sizes.", kv_tokens / ((double)S->n_ctx * S->n_slots)},
        {"kv_cache_bytes", "gauge", "Memory of the slots' KV caches.", S->kv_bytes},
    };
    pthread_mutex_unlock(&S->mu);
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        snprintf(line, sizeof line, "# HELP specexit:%s %s\n# TYPE specexit:%s %s\nspecexit:%s %.17g\n", m[i].name, m[i].help, m[i].name, m[i].type,
                 m[i].name, m[i].v);
        sx_sbuf_adds(&b, line);
    }
    if (b.oom) {
        sx_sbuf_free(&b);
        return send_error(c, 500, "server_error", "out of memory", NULL);
    }
    return send_body(c, 200, "text/plain; version=0.0.4", b.s);
}

static bool authorized(const server *S, struct MHD_Connection *c) {
    if (!S->api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    return h && !strncmp(h, "Bearer ", 7) && !strcmp(h + 7, S->api_key);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    server *S = cls;
    conn_ctx *cc = *con_cls;
    if (!cc) { /* first call: headers only */
        if (!(cc = calloc(1, sizeof *cc))) return MHD_NO;
        *con_cls = cc;
        pthread_mutex_lock(&S->mu);
        S->n_conns++;
        pthread_mutex_unlock(&S->mu);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > MAX_BODY) { /* refused before the body is read */
            char msg[96];
            snprintf(msg, sizeof msg, "the request body is larger than %u bytes", MAX_BODY);
            return send_error(c, 413, "invalid_request_error", msg, NULL);
        }
        return MHD_YES;
    }
    if (*upload_size) { /* body bytes */
        if (cc->body.len + *upload_size > MAX_BODY) cc->too_large = true;
        else sx_sbuf_add(&cc->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    const bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(method, "OPTIONS")) { /* CORS preflight */
        struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers", "Content-Type, Authorization");
        const enum MHD_Result ret = MHD_queue_response(c, 204, r);
        MHD_destroy_response(r);
        return ret;
    }
    static const struct {
        const char *path;
        int get; /* 1 GET, 0 POST */
    } routes[] = {{"/health", 1},           {"/v1/health", 1},     {"/v1/models", 1},    {"/models", 1},    {"/metrics", 1},    {"/slots", 1},
                  {"/v1/chat/completions", 0}, {"/chat/completions", 0}, {"/v1/completions", 0}, {"/completions", 0}, {"/tokenize", 0},
                  {"/detokenize", 0}};
    int route = -1;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(url, routes[i].path)) route = (int)i;
    if (route < 0) return send_error(c, 404, "not_found_error", "no such endpoint", NULL);
    if (routes[route].get ? !get : !post) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s takes %s", url, routes[route].get ? "GET" : "POST");
        return send_error(c, 405, "invalid_request_error", msg, NULL);
    }
    const char *path = routes[route].path;
    if (!strcmp(path, "/health") || !strcmp(path, "/v1/health")) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "ok");
        return send_json(c, 200, o);
    }
    if (!authorized(S, c)) return send_error(c, 401, "authentication_error", "invalid API key", NULL);
    if (cc->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "the request body is larger than %u bytes", MAX_BODY);
        return send_error(c, 413, "invalid_request_error", msg, NULL);
    }
    if (cc->body.oom) return send_error(c, 500, "server_error", "out of memory reading the request", NULL);
    if (strstr(path, "models")) return handle_models(S, c);
    if (!strcmp(path, "/metrics")) return handle_metrics(S, c);
    if (!strcmp(path, "/slots")) return handle_slots(S, c);
    if (!strcmp(path, "/tokenize")) return handle_tokenize(S, c, &cc->body, false);
    if (!strcmp(path, "/detokenize")) return handle_tokenize(S, c, &cc->body, true);
    return handle_generate(S, c, strstr(path, "chat") ? SX_REQ_CHAT : SX_REQ_COMPLETION, &cc->body);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode code) {
    (void)c, (void)code;
    server *S = cls;
    conn_ctx *cc = *con_cls;
    if (!cc) return;
    sx_sbuf_free(&cc->body);
    free(cc);
    *con_cls = NULL;
    pthread_mutex_lock(&S->mu);
    S->n_conns--;
    pthread_cond_broadcast(&S->conns_cv);
    pthread_mutex_unlock(&S->mu);
}

static void help(void) {
    printf("usage: specexit serve [-m MODEL.gguf] [options]\n\n"
           "An OpenAI-compatible HTTP server: POST /v1/chat/completions, /v1/completions (\"stream\": true for\n"
           "server-sent events), /tokenize, /detokenize; GET /health, /v1/models, /metrics, /slots.\n"
           "Requests may set the OpenAI fields (response_format, tools, tool_choice, parallel_tool_calls, logit_bias,\n"
           "logprobs, top_logprobs, echo, prompt as token ids, ...), llama-server's n_probs, vLLM's return_tokens_as_token_ids\n"
           "and llama-server's grammar and json_schema, and spec (eagle3, draft, ngram, none), draft_max, draft_topk,\n"
           "draft_nodes, draft_p_min, draft_lookup, prompt_lookup_min, prompt_lookup_max, exit, exit_conf, exit_progress,\n"
           "exit_remain, exit_alpha, reasoning_budget, cache_prompt, chat_template_kwargs.enable_thinking.\n\n"
           "server:\n"
           "      --host ADDR           address to listen on (default 127.0.0.1; 0.0.0.0 for all)\n"
           "      --port N              port (default 8080; 0 = any free port, printed at start)\n"
           "  -np, --parallel N         slots: requests generated at the same time (default 4)\n"
           "  -cb, --cont-batching      combine the slots' target passes into one forward pass (default)\n"
           "  -nocb, --no-cont-batching the slots take turns, one pass at a time\n"
           "      --api-key KEY         require \"Authorization: Bearer KEY\" (all but /health)\n"
           "      --alias NAME          model name reported by /v1/models (default: the model's)\n"
           "  -c, --ctx-size N          context per slot (default: min(model, 4096))\n"
           "  -n, --n-predict N         default max tokens per request (default -1: until the end or a full context)\n\n"
           "generation defaults (a request's fields override them):\n");
    sx_cli_print_common_help(stdout);
}

int sx_cmd_serve(int argc, char **argv) {
    sx_cli c;
    const int begun = sx_cli_begin(&c, argc, argv, "serve", -1, help);
    if (begun >= 0) return begun;
    /* the address first: a bad one fails before the model loads */
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    const bool v6 = strchr(c.host, ':') != NULL;
    if (v6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)c.port);
        if (inet_pton(AF_INET6, c.host, &a6->sin6_addr) != 1) {
            fprintf(stderr, "error: --host '%s' is not an IPv4 or IPv6 address\n", c.host);
            return 1;
        }
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)c.port);
        if (inet_pton(AF_INET, !strcmp(c.host, "localhost") ? "127.0.0.1" : c.host, &a4->sin_addr) != 1) {
            fprintf(stderr, "error: --host '%s' is not an IPv4 or IPv6 address\n", c.host);
            return 1;
        }
    }
    server S;
    memset(&S, 0, sizeof S);
    pthread_mutex_init(&S.mu, NULL);
    pthread_cond_init(&S.work_cv, NULL);
    pthread_cond_init(&S.conns_cv, NULL);
    pthread_mutex_init(&S.tmu, NULL);
    pthread_cond_init(&S.tcv, NULL);
    /* signals go to the main thread only (sigwait below): block them before any thread starts */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    sx_engine_options eo;
    sx_cli_engine_options(&c, &eo);
    eo.fit_ctx *= c.n_parallel; /* -ngl auto: every slot has its own cache */
    int rc = 0;
    sx_status st = sx_engine_create(&eo, &S.e);
    if (st != SX_OK) return sx_cli_fail("loading model", st);
    sx_engine_get_info(S.e, &S.info);
    sx_cli_generate_params(&c, &S.info, &S.defaults);
    S.default_think = !c.no_think;
    { /* Qwen2.5/Qwen3/Hermes vocabularies hold <tool_call> as one token: tool_choice auto then gets a lazy call grammar */
        int32_t *ids = NULL;
        int n = 0;
        S.tool_call_token = sx_tokenize(S.e, "<tool_call>", false, true, &ids, &n) == SX_OK && n == 1;
        free(ids);
    }
    S.api_key = c.api_key;
    sx_sbuf alias = {0}; /* the model's name may hold any bytes: valid UTF-8 for JSON */
    const char *name = c.alias ? c.alias : S.info.model_name && S.info.model_name[0] ? S.info.model_name : "specexit";
    sx_utf8_sanitize_into(&alias, name, strlen(name));
    S.alias = alias.s ? alias.s : "specexit";
    S.n_slots = c.n_parallel;
    S.take_turns = c.no_cont_batching;
    S.slots = calloc((size_t)S.n_slots, sizeof *S.slots);
    if (!S.slots) {
        sx_engine_destroy(S.e);
        sx_sbuf_free(&alias);
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    sx_session_options so;
    sx_cli_session_options(&c, &so);
    for (int i = 0; i < S.n_slots && st == SX_OK; i++) {
        S.slots[i].S = &S;
        S.slots[i].id = i;
        st = sx_session_create(S.e, &so, &S.slots[i].s);
    }
    if (st != SX_OK) {
        rc = sx_cli_fail("creating the slots' sessions", st);
        goto done_sessions;
    }
    S.n_ctx = sx_session_n_ctx(S.slots[0].s);
    for (int i = 0; i < S.n_slots; i++) S.kv_bytes += (double)sx_session_kv_bytes(S.slots[i].s);
    S.kv_type = sx_kv_type_name(so.kv_type);
    int started = 0;
    for (; started < S.n_slots; started++)
        if (pthread_create(&S.slots[started].thread, NULL, worker_main, &S.slots[started]) != 0) break;
    struct MHD_Daemon *d = NULL;
    if (started == S.n_slots)
        d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                                 (v6 ? MHD_USE_IPv6 : 0),
                             (uint16_t)c.port, NULL, NULL, on_request, &S, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                             MHD_OPTION_NOTIFY_COMPLETED, on_completed, &S, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "error: cannot listen on %s:%d (%s)\n", c.host, c.port,
                started < S.n_slots ? "cannot start the worker threads" : "address in use, or not allowed");
        rc = 1;
    } else {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        const int port = di ? (int)di->port : c.port;
        fprintf(stderr, "[serve] model %s (%s, %s) on %s (%s); draft %s; spec %s, exit %s; %d slots x %d context, %s\n", S.alias, S.info.arch,
                S.info.quant, S.info.backend, S.info.device, S.info.draft, sx_spec_kind_name(S.defaults.spec.kind),
                sx_exit_kind_name(S.defaults.exit.kind), S.n_slots, S.n_ctx, S.take_turns ? "slots take turns" : "continuous batching");
        fprintf(stderr, "[serve] listening on http://%s%s%s:%d\n", v6 ? "[" : "", c.host, v6 ? "]" : "", port);
        fflush(stderr);
        int sig = 0;
        sigwait(&sigs, &sig);
        fprintf(stderr, "[serve] %s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    /* stop: no new connections; fail what waits, cancel what runs; let the answers reach their clients; close */
    const MHD_socket listen_fd = d ? MHD_quiesce_daemon(d) : MHD_INVALID_SOCKET;
    pthread_mutex_lock(&S.mu);
    S.stopping = true;
    while (S.qhead) fail_queued_locked(&S, S.qhead, 503, "the server is shutting down");
    pthread_cond_broadcast(&S.work_cv);
    pthread_mutex_unlock(&S.mu);
    for (int i = 0; i < started; i++) pthread_join(S.slots[i].thread, NULL);
    if (d) {
        pthread_mutex_lock(&S.mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += DRAIN_SECONDS;
        while (S.n_conns > 0 && pthread_cond_timedwait(&S.conns_cv, &S.mu, &until) != ETIMEDOUT) {
        }
        if (S.n_conns > 0) fprintf(stderr, "[serve] %d connections still open after %d s; closing them\n", S.n_conns, DRAIN_SECONDS);
        pthread_mutex_unlock(&S.mu);
        MHD_stop_daemon(d);
        if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    }
done_sessions:
    for (int i = 0; i < S.n_slots; i++) sx_session_destroy(S.slots[i].s);
    free(S.slots);
    sx_engine_destroy(S.e);
    sx_sbuf_free(&alias);
    return rc;
}
