#!/usr/bin/env python3
"""tests/server/test_logprobs.py — log-probabilities through `specexit serve`,
as OpenAI clients and lm-evaluation-harness ask for them:

    test_logprobs.py SPECEXIT TARGET.gguf DRAFT.gguf

- chat `logprobs` / `top_logprobs`: one entry per generated token, greedy
  tokens are their position's most likely, alternatives sorted; EAGLE-3
  speculation reports plain decoding's values (the verified rows are
  computed bit for bit as decoded ones); streamed chunks carry the same
  entries as the whole answer;
- completions `logprobs: N` with `echo` (the prompt scored) and prompts as
  token ids: scoring prompt + generated text gives the generation's own
  values, and lm-eval's loglikelihood request (`[[ids]]`, max_tokens 1,
  echo, logprobs 1) gets one entry per prompt token plus the generated one;
- malformed logprob fields are 400s naming the field;
- the official OpenAI SDK parses both forms (when the package is installed).
"""
import json
import math
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import test_server  # noqa: E402
from test_server import Server, chat, check  # noqa: E402

EXE, TARGET, DRAFT = sys.argv[1:4]
Q = "What is 17+5+38+9?"


def entries(r):
    return r["choices"][0]["logprobs"]["content"]


def close(a, b, tol=1e-4):
    return abs(a - b) <= tol


def main():
    s = Server("-np", "1", exe=EXE, model=["-m", TARGET, "-md", DRAFT])
    try:
        # ---- chat: greedy, speculative against plain ----
        base = chat(Q, max_tokens=48, temperature=0, logprobs=True, top_logprobs=3, exit="none")
        st, spec = s.json("POST", "/v1/chat/completions", dict(base, spec="eagle3"))
        st2, plain = s.json("POST", "/v1/chat/completions", dict(base, spec="none"))
        ok = check(st == 200 and st2 == 200, f"chat with logprobs: {st} {st2} {json.dumps(spec)[:300]}")
        if ok:
            e, p = entries(spec), entries(plain)
            n = spec["usage"]["completion_tokens"]
            check(len(e) == n and len(p) == n, f"one entry per generated token: {len(e)}, {len(p)}, {n}")
            check(all(len(x["top_logprobs"]) == 3 and x["token"] == x["top_logprobs"][0]["token"] and x["logprob"] == x["top_logprobs"][0]["logprob"]
                      and x["logprob"] <= 0 and x["top_logprobs"][0]["logprob"] >= x["top_logprobs"][1]["logprob"] >= x["top_logprobs"][2]["logprob"]
                      for x in e), "greedy: each token is its position's most likely, alternatives sorted")
            check(all(bytes(x["bytes"]).decode("utf-8", "replace") == x["token"] for x in e if x["token"] != "\ufffd"),
                  "bytes spell the token")
            same = len(e) == len(p) and all(a["token"] == b["token"] and close(a["logprob"], b["logprob"], 1e-6)
                                            and [t["token"] for t in a["top_logprobs"]] == [t["token"] for t in b["top_logprobs"]]
                                            for a, b in zip(e, p))
            check(same and spec["specexit"]["accept_len_mean"] > 1.5,
                  f"EAGLE-3 ({spec['specexit']['accept_len_mean']:.2f} tokens/pass) reports plain decoding's logprobs")
            text = spec["choices"][0]["message"].get("reasoning_content", "") + spec["choices"][0]["message"]["content"]
            check("".join(x["token"] for x in e).replace("</think>", "").replace("\n", "").startswith(text.replace("\n", "")[:20]),
                  "the tokens spell the answer")
            # streamed: the same entries, spread over the chunks
            st3, _, ev = s.stream("/v1/chat/completions", dict(base, spec="eagle3"))
            streamed = [x for v in ev if isinstance(v, dict) and v.get("choices") for x in (v["choices"][0].get("logprobs") or {}).get("content", [])]
            check(st3 == 200 and streamed == e, f"streamed logprobs == whole ({len(streamed)} vs {len(e)})")
            print(f"ok   chat logprobs: {n} tokens, EAGLE-3 == plain, streamed == whole", flush=True)
        st, r = s.json("POST", "/v1/chat/completions", chat(Q, max_tokens=4))
        check(st == 200 and r["choices"][0]["logprobs"] is None, "no logprobs asked: null")

        # ---- completions: the generation's values == scoring its text (echo) ----
        prompt = "12+30+7="
        st, g = s.json("POST", "/v1/completions", {"prompt": prompt, "max_tokens": 16, "temperature": 0, "logprobs": 2,
                                                   "return_tokens_as_token_ids": True, "spec": "eagle3"})
        st2, pe = s.json("POST", "/v1/completions", {"prompt": prompt, "max_tokens": 0, "logprobs": 0, "echo": True,
                                                      "return_tokens_as_token_ids": True})
        if check(st == 200 and st2 == 200, f"completions with logprobs: {st} {st2} {json.dumps(g)[:300]} {json.dumps(pe)[:300]}"):
            gl, pl = g["choices"][0]["logprobs"], pe["choices"][0]["logprobs"]
            ids = [int(t.split(":")[1]) for t in pl["tokens"]]
            gen = [int(t.split(":")[1]) for t in gl["tokens"]]
            check(pe["choices"][0]["text"] == prompt and pl["token_logprobs"][0] is None and pl["top_logprobs"][0] is None
                  and len(ids) == pe["usage"]["prompt_tokens"] and pe["usage"]["completion_tokens"] == 0,
                  f"echo, max_tokens 0: the prompt's tokens, the first without a logprob: {json.dumps(pe)[:400]}")
            check(len(gen) == 16 and all(len(t) in (2, 3) and f"token_id:{i}" in t for t, i in zip(gl["top_logprobs"], gen)),
                  "logprobs 2: the two most likely and the token itself")
            st3, sc = s.json("POST", "/v1/completions", {"prompt": ids + gen[:-1], "max_tokens": 1, "temperature": 0, "logprobs": 2, "echo": True,
                                                         "return_tokens_as_token_ids": True})
            if check(st3 == 200, f"scoring prompt + generated ids: {st3} {json.dumps(sc)[:300]}"):
                sl = sc["choices"][0]["logprobs"]
                k = len(ids)
                check(len(sl["tokens"]) == k + 16 and sl["tokens"][k:] == gl["tokens"], "echo + 1 generated token: every token listed")
                worst = max(abs(a - b) for a, b in zip(sl["token_logprobs"][k:], gl["token_logprobs"]))
                check(worst <= 1e-4 and [sorted(a) for a in sl["top_logprobs"][k:]] == [sorted(b) for b in gl["top_logprobs"]],
                      f"scoring the generated text gives the generation's logprobs (largest difference {worst:.2g})")
                print(f"ok   completions: echo scoring == generation ({worst:.1g}), speculative generation", flush=True)
        # text_offset: each token's place in the echoed text; a control token takes no bytes there
        cp = "<|im_start|>" + prompt
        st, r = s.json("POST", "/v1/completions", {"prompt": cp, "max_tokens": 2, "temperature": 0, "logprobs": 0, "echo": True})
        if check(st == 200, f"echo of a prompt with a control token: {st} {json.dumps(r)[:300]}"):
            c = r["choices"][0]
            lp, text = c["logprobs"], c["text"]
            spans = [(t, o) for t, o in zip(lp["tokens"], lp["text_offset"])]
            check(text.startswith(cp) and spans[0] == ("<|im_start|>", 0) and spans[1][1] == len("<|im_start|>") and
                  all(t == "<|im_start|>" or text[o:o + len(t)] == t for t, o in spans) and lp["text_offset"] == sorted(lp["text_offset"]),
                  f"each token sits at its text_offset: {spans} in {text!r}")
        # lm-eval's loglikelihood request: [[ids]], max_tokens 1, echo, logprobs 1 -> token_logprobs[ctxlen:-1]
        st, r = s.json("POST", "/v1/completions", {"prompt": [[1, 2, 3, 4, 5]], "max_tokens": 1, "temperature": 0, "logprobs": 1, "echo": True})
        if check(st == 200, f"lm-eval request: {st} {json.dumps(r)[:300]}"):
            lp = r["choices"][0]["logprobs"]
            check(len(lp["token_logprobs"]) == 6 and lp["token_logprobs"][0] is None and all(isinstance(v, float) for v in lp["token_logprobs"][1:])
                  and all(isinstance(d, dict) and 1 <= len(d) <= 2 for d in lp["top_logprobs"][1:]) and lp["text_offset"] == sorted(lp["text_offset"]),
                  f"five prompt tokens scored and one generated: {lp}")
        st, r = s.json("POST", "/v1/completions", {"prompt": "1+1=", "max_tokens": 3, "echo": True})
        check(st == 200 and r["choices"][0]["text"].startswith("1+1=") and r["choices"][0]["logprobs"] is None, f"echo alone: {r}")
        # streamed echo: the prompt first
        st, _, ev = s.stream("/v1/completions", {"prompt": prompt, "max_tokens": 4, "temperature": 0, "logprobs": 1, "echo": True})
        texts = [v["choices"][0]["text"] for v in ev if isinstance(v, dict) and v.get("choices")]
        toks = [t for v in ev if isinstance(v, dict) and v.get("choices") for t in v["choices"][0]["logprobs"]["tokens"]]
        check(st == 200 and texts and texts[0].startswith(prompt) and len(toks) == len(ids) + 4, f"streamed echo: {texts}, {len(toks)} tokens")

        # a zero in one field does not undo another (clients forward llama-server's n_probs: 0)
        st, r = s.json("POST", "/v1/completions", {"prompt": prompt, "max_tokens": 2, "temperature": 0, "logprobs": 2, "n_probs": 0})
        check(st == 200 and all(len(d) >= 2 for d in r["choices"][0]["logprobs"]["top_logprobs"]), f"logprobs 2 with n_probs 0: {r}")

        # ---- errors ----
        for body, field, path in [(chat(Q, logprobs=True, top_logprobs=21), "top_logprobs", "chat"),
                                  (chat(Q, top_logprobs=2), "top_logprobs", "chat"),
                                  (chat(Q, logprobs=3), "logprobs", "chat"),
                                  (chat(Q, echo=True), "echo", "chat"),
                                  ({"prompt": "x", "logprobs": 21}, "logprobs", "completions"),
                                  ({"prompt": "x", "logprobs": "yes"}, "logprobs", "completions"),
                                  ({"prompt": [1, 2, 999999]}, "prompt", "completions"),
                                  ({"prompt": [1, -2]}, "prompt", "completions"),
                                  ({"prompt": ["a", "b"]}, "prompt", "completions")]:
            st, r = s.json("POST", "/v1/chat/completions" if path == "chat" else "/v1/completions", body)
            err = r.get("error", {}) if isinstance(r, dict) else {}
            check(st == 400 and err.get("param") == field, f"{json.dumps(body)[:80]}: 400 naming '{field}', got {st} {err}")
        st, h = s.json("GET", "/health")
        check(st == 200, "the server lives on after the bad requests")

        # ---- the OpenAI SDK ----
        try:
            import openai
        except ImportError:
            openai = None
            print("note: the openai package is not installed; SDK checks skipped", flush=True)
        if openai:
            c = openai.OpenAI(base_url=f"http://127.0.0.1:{s.port}/v1", api_key="none")
            r = c.chat.completions.create(model="x", messages=[{"role": "user", "content": Q}], max_tokens=8, temperature=0, logprobs=True,
                                          top_logprobs=2)
            lp = r.choices[0].logprobs.content
            check(len(lp) == 8 and all(len(t.top_logprobs) == 2 and math.isfinite(t.logprob) for t in lp), f"SDK chat logprobs: {lp[:2]}")
            r = c.completions.create(model="x", prompt="12+30+7=", max_tokens=2, temperature=0, logprobs=1, echo=True)
            lp = r.choices[0].logprobs
            check(lp.token_logprobs[0] is None and len(lp.tokens) == len(ids) + 2, f"SDK completion logprobs: {lp}")
            print("ok   the OpenAI SDK reads both forms", flush=True)
    except BaseException:
        s.stop()
        raise
    return test_server.stop_and_report(s)


if __name__ == "__main__":
    sys.exit(main())
