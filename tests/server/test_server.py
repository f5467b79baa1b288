#!/usr/bin/env python3
"""tests/server/test_server.py — `specexit serve` driven as a client would:
real HTTP requests (standard library only, and the official OpenAI SDK),
streaming, malformed requests, concurrent clients, clients that disconnect
(streaming, waiting for a whole answer, queued), prompt caching, the API
key, a clean shutdown with requests in flight, and `specexit chat`.

    test_server.py SPECEXIT TARGET.gguf DRAFT.gguf

Greedy generation on the embedded sumchain pair is deterministic, so the
server's answers are compared exactly: with `specexit run --json` (same
prompt, same settings), streamed against whole, concurrent against
sequential, cached prefix against a fresh one.
"""
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time

EXE, TARGET, DRAFT = (sys.argv[1:4] + [None] * 3)[:3] if __name__ == "__main__" else (None, None, None)
PASSED = FAILED = 0


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAIL:", what, flush=True)
    return cond


class Server:
    def __init__(self, *extra, exe=None, model=None):
        """model: the -m/-md arguments (default: the sumchain pair of the command line)"""
        self.proc = subprocess.Popen([exe or EXE, "serve", *(model or ["-m", TARGET, "-md", DRAFT]), "--port", "0", "--temp", "0", "-c", "1024",
                                      "-t", "1", *extra],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.log = []
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            raise SystemExit("server did not start:\n" + "".join(self.log))
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def request(self, method, path, body=None, headers=None, raw=None, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read()
        c.close()
        return r.status, payload, r.getheader("Content-Type") or ""

    def json(self, method, path, body=None, **kw):
        status, payload, _ = self.request(method, path, body, **kw)
        try:
            return status, json.loads(payload)
        except ValueError:
            return status, {"unparsable": payload[:200].decode("latin-1")}

    def stream(self, path, body):
        """All SSE events of a streamed request: parsed JSON objects, and '[DONE]'."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        c.request("POST", path, body=json.dumps(dict(body, stream=True)).encode(), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        ctype = r.getheader("Content-Type")
        events = []
        for line in r.read().decode().split("\n"):
            if line.startswith("data: "):
                d = line[6:]
                events.append(d if d == "[DONE]" else json.loads(d))
        c.close()
        return r.status, ctype, events

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = None
        self.drain.join(timeout=10) # the log's last lines: the reader may lag behind the exit (seen on a loaded CI run)
        return rc


def stop_and_report(s):
    """The end of a test script: a clean shutdown, the counts, the exit status."""
    rc = s.stop()
    check(rc == 0, f"server exit status {rc}")
    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


def chat(q, **kw):
    return dict({"messages": [{"role": "user", "content": q}]}, **kw)


def joined(events, key):
    return "".join(e["choices"][0]["delta"].get(key, "") for e in events if isinstance(e, dict) and e.get("choices"))


QUESTIONS = ["What is 17+5+38+9+64+23?", "What is 4+8?", "What is 51+7+30?", "What is 9+9+9+9?", "What is 33+44+11+2+5?", "What is 60+12+3?"]


def main():
    s = Server("-np", "2")
    try:
        # ---- basics ----
        st, h = s.json("GET", "/health")
        check(st == 200 and h.get("status") == "ok", f"/health: {st} {h}")
        st, m = s.json("GET", "/v1/models")
        check(st == 200 and m["data"][0]["meta"]["draft"] == "eagle3" and m["data"][0]["meta"]["thinking"], f"/v1/models: {st} {m}")

        # ---- one chat completion equals `specexit run` with the same settings ----
        q = QUESTIONS[0]
        st, r = s.json("POST", "/v1/chat/completions", chat(q))
        ok = check(st == 200, f"chat completion: {st} {r}")
        cli = json.loads(subprocess.run([EXE, "run", "-m", TARGET, "-md", DRAFT, "-p", q, "--temp", "0", "-n", "-1", "-c", "1024", "-t", "1", "--json"],
                                        capture_output=True, text=True, check=True).stdout)
        if ok:
            msg = r["choices"][0]["message"]
            reasoning, content = msg.get("reasoning_content"), msg["content"]
            m2 = re.fullmatch(r"(.*)</think>\s*(.*)", cli["text"], re.S)
            check(m2 is not None and m2.group(1) == reasoning and m2.group(2) == content,
                  f"server text equals `specexit run`: server {reasoning!r} / {content!r}, cli {cli['text']!r}")
            check(r["usage"]["completion_tokens"] == cli["n_generated_tokens"], f"completion tokens {r['usage']} vs cli {cli['n_generated_tokens']}")
            check(r["specexit"]["exited_early"] and r["specexit"]["exit_reason"] == "signals" and r["specexit"]["spec"] == "eagle3",
                  f"SpecExit ended the thinking: {r['specexit']}")
            check(r["usage"]["completion_tokens_details"]["reasoning_tokens"] == cli["thinking_tokens"], "reasoning tokens = thinking tokens")
            check(r["choices"][0]["finish_reason"] == "stop" and r["object"] == "chat.completion", "finish_reason stop")
            print(f"ok   chat completion == specexit run: {r['usage']['completion_tokens']} tokens, answer {content!r}", flush=True)
        full = r

        # ---- streaming gives the same bytes ----
        st, ctype, ev = s.stream("/v1/chat/completions", chat(q, stream_options={"include_usage": True}))
        check(st == 200 and ctype.startswith("text/event-stream"), f"stream status {st} {ctype}")
        check(ev and ev[-1] == "[DONE]" and ev[0]["choices"][0]["delta"].get("role") == "assistant", "stream starts with the role, ends with [DONE]")
        if ok:
            check(joined(ev, "reasoning_content") == full["choices"][0]["message"]["reasoning_content"] and
                  joined(ev, "content") == full["choices"][0]["message"]["content"], "streamed deltas == whole response")
            usage = [e for e in ev if isinstance(e, dict) and e.get("usage")]
            check(len(usage) == 1 and usage[0]["usage"]["completion_tokens"] == full["usage"]["completion_tokens"] and usage[0]["choices"] == [],
                  f"include_usage: one usage chunk, {len(usage)} found")
            check(all("usage" in e and e["usage"] is None for e in ev if isinstance(e, dict) and e is not usage[0]),
                  "include_usage: \"usage\": null on every other chunk (as OpenAI)")
            fin = [e for e in ev if isinstance(e, dict) and e.get("choices") and e["choices"][0].get("finish_reason")]
            check(len(fin) == 1 and fin[0]["choices"][0]["finish_reason"] == "stop", "one final chunk with finish_reason")
            print(f"ok   streaming: {len(ev)} events, identical text", flush=True)

        # ---- per-request speculation and exit settings ----
        st, r_none = s.json("POST", "/v1/chat/completions", chat(q, exit="none", cache_prompt=False))
        check(st == 200 and not r_none["specexit"]["exited_early"] and
              r_none["usage"]["completion_tokens"] > full["usage"]["completion_tokens"], f"exit none thinks longer: {r_none.get('usage')}")
        st, r_b = s.json("POST", "/v1/chat/completions", chat(q, exit="budget", reasoning_budget=20))
        check(st == 200 and r_b["specexit"]["exit_reason"] == "budget" and r_b["usage"]["completion_tokens_details"]["reasoning_tokens"] <= 21,
              f"reasoning_budget 20: {r_b.get('specexit')}")
        st, r_p = s.json("POST", "/v1/chat/completions", chat(q, spec="none", exit="none"))
        check(st == 200 and r_p["specexit"]["accept_len_mean"] == 1 and r_p["choices"][0]["message"] == r_none["choices"][0]["message"],
              "spec none == eagle3 without exit (greedy)")
        st, r_l = s.json("POST", "/v1/chat/completions", chat(q, max_tokens=10))
        check(st == 200 and r_l["choices"][0]["finish_reason"] == "length" and r_l["usage"]["completion_tokens"] == 10, f"max_tokens 10: {r_l}")
        if ok:
            first_par = full["choices"][0]["message"]["reasoning_content"].split("\n\n")[0]
            st, r_s = s.json("POST", "/v1/chat/completions", chat(q, stop=["\n\n"]))
            check(st == 200 and r_s["choices"][0]["finish_reason"] == "stop" and r_s["choices"][0]["message"]["reasoning_content"] == first_par
                  and r_s["choices"][0]["message"]["content"] == "", f"stop string: {r_s}")
            st, ctype, ev = s.stream("/v1/chat/completions", chat(q, stop=["\n\n"]))
            check(joined(ev, "reasoning_content") == first_par, "stop string, streamed")
        # OpenAI's reasoning_effort drives the exit: high = full thinking, low = an earlier SpecExit, minimal = no thinking
        st, r_hi = s.json("POST", "/v1/chat/completions", chat(q, reasoning_effort="high", cache_prompt=False))
        check(st == 200 and r_hi["choices"] == r_none["choices"] and not r_hi["specexit"]["exited_early"], "reasoning_effort high == exit none")
        efforts = {}
        for e in ("low", "medium"):
            st, efforts[e] = s.json("POST", "/v1/chat/completions", chat(q, reasoning_effort=e))
        check(efforts["medium"]["choices"] == full["choices"] and
              efforts["low"]["usage"]["completion_tokens"] <= efforts["medium"]["usage"]["completion_tokens"] and
              efforts["low"]["specexit"]["exit"] == "specexit", f"reasoning_effort low <= medium: {[efforts[e]['usage'] for e in efforts]}")
        st, r_min = s.json("POST", "/v1/chat/completions", chat(q, reasoning_effort="minimal"))
        check(st == 200 and r_min["specexit"]["exit_reason"] == "budget" and r_min["usage"]["completion_tokens_details"]["reasoning_tokens"] <= 1
              and r_min["choices"][0]["message"]["content"], f"reasoning_effort minimal: {r_min}")
        st, r_nt = s.json("POST", "/v1/chat/completions", chat(q, chat_template_kwargs={"enable_thinking": False}, max_tokens=30))
        check(st == 200 and "reasoning_content" not in r_nt["choices"][0]["message"], f"enable_thinking false: no reasoning {r_nt}")
        print("ok   per-request exit/spec/budget/stop/max_tokens/enable_thinking", flush=True)

        # ---- constrained output: the model thinks freely, its answer follows the grammar (as `specexit run --grammar`) ----
        gbnf, content = 'root ::= [0-9]+ "."', None
        st, r_g = s.json("POST", "/v1/chat/completions", chat(q, grammar=gbnf))
        cli_g = json.loads(subprocess.run([EXE, "run", "-m", TARGET, "-md", DRAFT, "-p", q, "--temp", "0", "-n", "-1", "-c", "1024", "-t", "1", "--json",
                                           "--grammar", gbnf], capture_output=True, text=True, check=True).stdout)
        if check(st == 200, f"grammar request: {st} {r_g}"):
            content = r_g["choices"][0]["message"]["content"]
            check(re.fullmatch(r"\d+\.", content) is not None and cli_g["text"].endswith("</think>\n\n" + content) or
                  cli_g["text"].endswith("</think>" + content), f"grammar: answer {content!r}, cli {cli_g['text'][-40:]!r}")
            check(r_g["choices"][0]["message"]["reasoning_content"] == full["choices"][0]["message"]["reasoning_content"],
                  "grammar: the thinking is unconstrained (the same as without a grammar)")
        st, r_e = s.json("POST", "/v1/chat/completions", chat(q, json_schema={"type": "string", "pattern": "x"}))
        check(st == 400 and r_e["error"]["param"] == "json_schema" and "pattern" in r_e["error"]["message"], f"unsupported schema keyword: {st} {r_e}")
        st, r_e = s.json("POST", "/v1/chat/completions", chat(q, grammar="root ::= undefined-rule"))
        check(st == 400 and "undefined rule" in r_e["error"]["message"], f"bad grammar: {st} {r_e}")
        print(f"ok   grammar: answer {content!r}; bad grammars and schemas refused with 400", flush=True)

        # ---- /v1/completions ----
        body = {"prompt": "<|im_start|>user\nWhat is 4+8?<|im_end|>\n<|im_start|>assistant\n<think>\n", "max_tokens": 40}
        st, rc = s.json("POST", "/v1/completions", body)
        check(st == 200 and rc["object"] == "text_completion" and len(rc["choices"][0]["text"]) > 0, f"completion: {rc}")
        st, _, ev = s.stream("/v1/completions", body)
        check(st == 200 and "".join(e["choices"][0]["text"] for e in ev if isinstance(e, dict)) == rc["choices"][0]["text"], "completion streamed == whole")

        # ---- n > 1: the choices one after another, choice k drawn with seed + k; streamed per index == whole ----
        nb = chat(QUESTIONS[1], max_tokens=24, temperature=1.0, seed=11, exit="none", spec="eagle3")
        st, rn = s.json("POST", "/v1/chat/completions", dict(nb, n=3))
        singles = [s.json("POST", "/v1/chat/completions", dict(nb, seed=11 + k))[1] for k in range(3)]
        if check(st == 200 and [c["index"] for c in rn["choices"]] == [0, 1, 2], f"n=3: three choices: {json.dumps(rn)[:300]}"):
            check(all(rn["choices"][k]["message"] == singles[k]["choices"][0]["message"] for k in range(3))
                  and len({json.dumps(c["message"]) for c in rn["choices"]}) > 1,
                  "choice k equals the single request with seed + k, and the choices differ")
            check(rn["usage"]["completion_tokens"] == sum(x["usage"]["completion_tokens"] for x in singles)
                  and rn["usage"]["prompt_tokens"] == singles[0]["usage"]["prompt_tokens"], f"usage counts every choice once: {rn['usage']}")
            st, _, ev = s.stream("/v1/chat/completions", dict(nb, n=3, stream_options={"include_usage": True}))
            per = {}
            for e in ev:
                for c in (e.get("choices") or []) if isinstance(e, dict) else []:
                    per.setdefault(c["index"], []).append(c)
            texts = {k: "".join(c["delta"].get("content", "") for c in v) for k, v in per.items()}
            usage = [e for e in ev if isinstance(e, dict) and e.get("usage")]
            check(st == 200 and sorted(per) == [0, 1, 2] and all(texts[k] == rn["choices"][k]["message"]["content"] for k in range(3))
                  and all([c["finish_reason"] for c in per[k] if c["finish_reason"]] == [rn["choices"][k]["finish_reason"]] for k in range(3))
                  and len(usage) == 1 and usage[0]["usage"]["completion_tokens"] == rn["usage"]["completion_tokens"] and ev[-1] == "[DONE]",
                  "n=3 streamed: each index's deltas give its choice, one finish each, one usage chunk, one [DONE]")
        st, rc2 = s.json("POST", "/v1/completions", dict(body, n=2, temperature=0))
        check(st == 200 and len(rc2["choices"]) == 2 and rc2["choices"][0]["text"] == rc2["choices"][1]["text"] == rc["choices"][0]["text"],
              "n=2 greedy completions: both choices are the greedy text")

        # ---- tokenize / detokenize / metrics ----
        st, t = s.json("POST", "/tokenize", {"content": "What is 4+8?"})
        st2, d = s.json("POST", "/detokenize", {"tokens": t.get("tokens", [])})
        check(st == 200 and st2 == 200 and d["content"] == "What is 4+8?" and len(t["tokens"]) > 1, f"tokenize round trip: {t} {d}")

        # ---- malformed requests: clear 4xx errors, the server goes on ----
        bad = [
            (b"{", 400, "not valid JSON"), (b"[]", 400, "JSON object"), (b'{"messages": 3}', 400, "messages"),
            (b'{"messages": []}', 400, "at least one"), (b'{"messages": [{"role": "user"}]}', 200, None),
            (b'{"messages": [{"content": "hi"}]}', 400, "role"), (b'{"messages": [{"role": "us er", "content": "hi"}]}', 400, "role"),
            (b'{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', 400, "text"),
            (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}', 400, "temperature"),
            (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": -1}', 400, "temperature"),
            (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1.5}', 400, "max_tokens"),
            (b'{"messages": [{"role": "user", "content": "hi"}], "n": 17}', 400, "'n'"),
            (b'{"messages": [{"role": "user", "content": "hi"}], "n": 0}', 400, "'n'"),
            (b'{"messages": [{"role": "user", "content": "hi"}], "logprobs": 2}', 400, "logprobs"),
            (b'{"messages": [{"role": "user", "content": "hi"}], "stop": [1]}', 400, "stop"),
            (b'{"messages": [{"role": "user", "content": "hi"}], "spec": "medusa"}', 400, "spec"),
            (b'{"messages": [{"role": "user", "content": "hi"}], "spec": "none", "exit": "specexit"}', 400, "specexit"),
            (b'{"messages": [{"role": "user", "content": "hi"}], "spec": "draft"}', 400, "draft"),
            (b'{"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}', 400, "tools"),
            (b'{"messages": [{"role": "user", "content": "hi"}], "seed": -5}', 400, "seed"),
            (b'\xff\xfe', 400, "JSON"),
        ]
        for raw, want, needle in bad:
            st, payload, _ = s.request("POST", "/v1/chat/completions", raw=raw)
            if want == 200:
                check(st == 200, f"{raw!r}: {st}")
                continue
            err = json.loads(payload).get("error", {})
            check(st == want and err.get("type") and needle in err.get("message", "") + str(err.get("param")),
                  f"{raw!r}: wanted {want} mentioning {needle!r}, got {st} {payload[:200]!r}")
        long_prompt = "+".join(["12"] * 1500)
        st, e = s.json("POST", "/v1/chat/completions", chat(long_prompt))
        check(st == 400 and e["error"]["type"] == "exceed_context_size_error", f"prompt over the context: {st} {e}")
        # a body over 16 MiB is refused from its Content-Length, before it is sent
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (17 << 20))
        head = sock.recv(4096)
        sock.close()
        check(head.startswith(b"HTTP/1.1 413"), f"17 MiB body: {head[:40]!r}")
        st, e = s.json("GET", "/v1/nothing")
        check(st == 404 and e["error"]["type"] == "not_found_error", f"unknown endpoint: {st}")
        st, e = s.json("GET", "/v1/chat/completions")
        check(st == 405, f"GET on a POST endpoint: {st}")
        st, r2 = s.json("POST", "/v1/chat/completions", chat(q))
        check(st == 200 and r2["choices"] == full["choices"], "after the bad requests the same answer")
        print(f"ok   {len(bad) + 4} malformed requests answered with clear errors; the server goes on", flush=True)

        # ---- concurrent clients == sequential ----
        seq = {}
        for qq in QUESTIONS:
            st, rr = s.json("POST", "/v1/chat/completions", chat(qq, cache_prompt=False))
            seq[qq] = rr["choices"][0]["message"] if st == 200 else None
        got, streamed = {}, {}

        def client(qq, stream):
            if stream:
                _, _, ev2 = s.stream("/v1/chat/completions", chat(qq, cache_prompt=False))
                streamed[qq] = {"reasoning_content": joined(ev2, "reasoning_content"), "content": joined(ev2, "content")}
            else:
                st3, rr3 = s.json("POST", "/v1/chat/completions", chat(qq, cache_prompt=False))
                got[qq] = rr3["choices"][0]["message"] if st3 == 200 else st3

        threads = [threading.Thread(target=client, args=(qq, i % 2 == 1)) for i, qq in enumerate(QUESTIONS)]
        threads += [threading.Thread(target=client, args=(qq, False)) for qq in QUESTIONS[:2]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, qq in enumerate(QUESTIONS):
            res = streamed.get(qq) if i % 2 == 1 else got.get(qq)
            want = {"reasoning_content": seq[qq]["reasoning_content"], "content": seq[qq]["content"]} if i % 2 == 1 else seq[qq]
            check(res == want, f"concurrent {qq!r}: {res} != sequential {want}")
        st, met, _ = s.request("GET", "/metrics")
        check(st == 200 and b"specexit:requests_total" in met, "metrics")
        mp = re.search(rb"^specexit:batched_passes_total (\S+)$", met, re.M)
        ms = re.search(rb"^specexit:batched_sequences_total (\S+)$", met, re.M)
        passes, seqs = (float(mp.group(1)), float(ms.group(1))) if mp and ms else (0, 0)
        check(passes > 0 and seqs > passes, f"the 2 slots shared target passes (continuous batching): {passes} passes, {seqs} sequences")
        st, slots = s.json("GET", "/slots")
        check(st == 200 and [x["id"] for x in slots] == [0, 1] and not any(x["is_processing"] for x in slots),
              f"/slots: two idle slots after the clients finished: {st} {slots}")
        # the KV caches: the finished requests' tokens stay for prompt caching
        kv_tok = re.search(rb"^specexit:kv_cache_tokens (\S+)$", met, re.M)
        kv_ratio = re.search(rb"^specexit:kv_cache_usage_ratio (\S+)$", met, re.M)
        kv_bytes = re.search(rb"^specexit:kv_cache_bytes (\S+)$", met, re.M)
        n_past = sum(x.get("n_past", -1) for x in slots) if st == 200 else -1
        check(kv_tok and kv_ratio and kv_bytes and float(kv_tok.group(1)) == n_past > 0 and
              abs(float(kv_ratio.group(1)) - n_past / sum(x["n_ctx"] for x in slots)) < 1e-9 and float(kv_bytes.group(1)) > 0 and
              all(x.get("cache_type_k") == "f16" for x in slots),
              f"KV cache metrics agree with /slots: tokens {kv_tok and kv_tok.group(1)}, ratio {kv_ratio and kv_ratio.group(1)}, "
              f"bytes {kv_bytes and kv_bytes.group(1)}, slots' n_past {n_past}")
        print(f"ok   {len(threads)} concurrent clients (2 slots) got exactly their sequential answers "
              f"({seqs / max(passes, 1):.2f} sequences per combined pass)", flush=True)

        # ---- a client that leaves mid-stream ----
        sock = socket.create_connection(("127.0.0.1", s.port))
        req = json.dumps(chat(QUESTIONS[0], stream=True, exit="none", cache_prompt=False)).encode()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(req) + req)
        sock.recv(512)
        sock.close()
        time.sleep(0.5)
        st, r3 = s.json("POST", "/v1/chat/completions", chat(QUESTIONS[1], cache_prompt=False))
        check(st == 200 and r3["choices"][0]["message"] == seq[QUESTIONS[1]], "after a client left mid-stream")
        for _ in range(50):
            _, met, _ = s.request("GET", "/metrics")
            if b"specexit:requests_processing 0" in met:
                break
            time.sleep(0.1)
        check(b"specexit:requests_processing 0" in met, "the abandoned generation was cancelled")
        print("ok   a client leaving mid-stream cancels only its own generation", flush=True)

        # ---- prompt cache: a follow-up turn reuses the slot's context ----
        conv = [{"role": "user", "content": QUESTIONS[2]}]
        st, a = s.json("POST", "/v1/chat/completions", {"messages": conv})
        conv += [{"role": "assistant", "content": a["choices"][0]["message"]["content"]}, {"role": "user", "content": QUESTIONS[3]}]
        st, b1 = s.json("POST", "/v1/chat/completions", {"messages": conv})
        st2, b2 = s.json("POST", "/v1/chat/completions", {"messages": conv, "cache_prompt": False})
        cached = b1["usage"]["prompt_tokens_details"]["cached_tokens"]
        check(st == 200 and st2 == 200 and cached > 10 and b2["usage"]["prompt_tokens_details"]["cached_tokens"] == 0 and
              b1["choices"] == b2["choices"], f"cached follow-up: cached {cached}, same answer {b1['choices'] == b2['choices']}")
        print(f"ok   follow-up turn reused {cached} of {b1['usage']['prompt_tokens']} prompt tokens, same answer as uncached", flush=True)
        # ---- the official OpenAI Python SDK as the client (installed by tools/setup.sh) ----
        try:
            import openai
        except ImportError:
            openai = None
            print("note: the openai package is not installed; the SDK checks did not run", flush=True)
        if openai is not None:
            oc = openai.OpenAI(base_url=f"http://127.0.0.1:{s.port}/v1", api_key="unused")
            check([m.id for m in oc.models.list().data] == [m["data"][0]["id"]], "SDK: models.list")
            r = oc.chat.completions.create(model="any", messages=[{"role": "user", "content": q}], temperature=0)
            check(r.choices[0].message.content == full["choices"][0]["message"]["content"] and
                  r.usage.completion_tokens_details.reasoning_tokens == full["usage"]["completion_tokens_details"]["reasoning_tokens"] and
                  getattr(r.choices[0].message, "reasoning_content", None) == full["choices"][0]["message"]["reasoning_content"],
                  "SDK: chat completion")
            parts, usage = [], None
            for ch in oc.chat.completions.create(model="any", messages=[{"role": "user", "content": q}], stream=True,
                                                 stream_options={"include_usage": True}):
                usage = ch.usage or usage
                if ch.choices and ch.choices[0].delta.content:
                    parts.append(ch.choices[0].delta.content)
            check("".join(parts) == full["choices"][0]["message"]["content"] and usage.completion_tokens == full["usage"]["completion_tokens"],
                  "SDK: streamed chat with usage")
            t = oc.completions.create(model="any", prompt=body["prompt"], max_tokens=40)
            check(t.choices[0].text == rc["choices"][0]["text"], "SDK: completions")
            two = oc.chat.completions.create(model="any", messages=[{"role": "user", "content": QUESTIONS[1]}], n=2, max_tokens=8)
            check([c.index for c in two.choices] == [0, 1], f"SDK: n=2 gives two choices: {two.choices}")
            try:
                oc.chat.completions.create(model="any", messages=[{"role": "user", "content": "hi"}], n=17)
                check(False, "SDK: n=17 must raise")
            except openai.BadRequestError as e:
                check(e.status_code == 400 and "'n'" in str(e), f"SDK: BadRequestError {e}")
            print(f"ok   the OpenAI Python SDK {openai.__version__}: models, chat, streaming with usage, completions, errors", flush=True)
    finally:
        rc = s.stop()
    check(rc == 0, f"SIGTERM: exit status {rc}")
    check(any("shutting down" in line for line in s.log), "shutdown logged")

    # ---- clients that leave, and a shutdown with requests in flight (one slot, long generations) ----
    LONG = chat(QUESTIONS[0], exit="none", ignore_eos=True, max_tokens=15000, cache_prompt=False)

    def metric(srv, name):
        _, met, _ = srv.request("GET", "/metrics")
        m = re.search(rb"^specexit:" + name.encode() + rb" (\S+)$", met, re.M)
        return float(m.group(1)) if m else None

    def wait_metric(srv, name, value, seconds=5.0):
        for _ in range(int(seconds * 10)):
            if metric(srv, name) == value:
                return True
            time.sleep(0.1)
        return False

    def raw_post(srv, body):
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        data = json.dumps(body).encode()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
        return sock

    def read_all(sock):
        out = b""
        try:
            while True:
                b = sock.recv(65536)
                if not b:
                    break
                out += b
        except OSError:
            pass
        sock.close()
        return out

    L = Server("-np", "1", "-c", "16384")
    try:
        a = raw_post(L, LONG)  # a long whole-response request: its client leaves
        check(wait_metric(L, "requests_processing", 1), "long request running")
        a.close()
        check(wait_metric(L, "requests_processing", 0), "a non-streamed request whose client left is cancelled within seconds")
        a = raw_post(L, LONG)  # occupies the slot
        check(wait_metric(L, "requests_processing", 1), "slot busy")
        st, slots = L.json("GET", "/slots")
        check(st == 200 and len(slots) == 1 and slots[0]["is_processing"] and slots[0]["id_task"].startswith("chatcmpl-"),
              f"/slots shows the busy slot and its request: {st} {slots}")
        b = raw_post(L, dict(LONG, stream=True))  # waits in the queue; its client leaves
        check(wait_metric(L, "requests_deferred", 1), "second request queued")
        b.close()
        check(wait_metric(L, "requests_deferred", 0) and metric(L, "requests_processing") == 1,
              "a queued stream whose client left is dropped from the queue (the running one goes on)")
        c = raw_post(L, dict(LONG, stream=True))  # queued when the server stops
        check(wait_metric(L, "requests_deferred", 1), "a stream queued before shutdown")
    finally:
        rc_l = L.stop()
    ra, rc_ = read_all(a), read_all(c)
    check(b" 503 " in ra.split(b"\r\n", 1)[0] and b"shutting down" in ra, f"shutdown: the running request gets a 503, not a cut connection: {ra[:120]!r}")
    check(b"unavailable_error" in rc_ and rc_.rstrip().endswith(b"[DONE]") or b"data: [DONE]" in rc_,
          f"shutdown: the queued stream gets an error event and [DONE]: {rc_[-200:]!r}")
    check(rc_l == 0, f"shutdown with requests in flight: exit status {rc_l}")
    print("ok   clients leaving (whole and queued stream) free their slot/queue place; shutdown answers 503 / error event + [DONE]", flush=True)

    # ---- API key ----
    k = Server("-np", "1", "--api-key", "sekrit", "-nocb")  # also the -nocb path (slots take turns)
    try:
        st, _ = k.json("GET", "/health")
        check(st == 200, "health needs no key")
        st, e = k.json("POST", "/v1/chat/completions", chat("What is 4+8?"))
        check(st == 401 and e["error"]["type"] == "authentication_error", f"no key: {st}")
        st, e = k.json("POST", "/v1/chat/completions", chat("What is 4+8?"), headers={"Authorization": "Bearer wrong"})
        check(st == 401, f"wrong key: {st}")
        st, e = k.json("POST", "/v1/chat/completions", chat("What is 4+8?"), headers={"Authorization": "Bearer sekrit"})
        check(st == 200, f"right key: {st}")
    finally:
        check(k.stop() == 0, "second server stops")
    # a bad address fails before the model loads
    p = subprocess.run([EXE, "serve", "-m", TARGET, "--host", "not-an-ip"], capture_output=True, text=True, timeout=60)
    check(p.returncode == 1 and "--host" in p.stderr, f"bad --host: {p.returncode} {p.stderr}")

    # ---- `specexit chat`: turns on one session, the cache, /reset, a turn too long for the context ----
    long_line = "+".join(["12"] * 200)
    p = subprocess.run([EXE, "chat", "-m", TARGET, "-md", DRAFT, "--temp", "0", "-c", "256", "-t", "1"], capture_output=True, text=True, timeout=120,
                       input=f"What is 4+8?\n{long_line}\nWhat is 51+7+30?\n/reset\nWhat is 4+8?\n/exit\nignored\n")
    turns = re.findall(r"prompt (\d+) tokens \((\d+) cached\)", p.stderr)
    check(p.returncode == 0 and p.stdout.count("The answer is 12.") == 2, f"chat: answers {p.stdout!r}")
    check(len(turns) == 3 and turns[0][1] == "0" and int(turns[1][1]) > 0 and turns[2][1] == "0", f"chat: cached prefixes {turns}")
    check("raise --ctx-size" in p.stderr, "chat: a turn longer than the context is refused, the chat goes on")
    print(f"ok   specexit chat: 3 turns, cached {turns[1][1] if len(turns) > 1 else '?'} tokens on the second, /reset, an oversized turn refused",
          flush=True)
    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
