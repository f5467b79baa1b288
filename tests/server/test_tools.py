#!/usr/bin/env python3
"""tests/server/test_tools.py — function calling through `specexit serve`, as
an OpenAI client uses it, on a real ChatML model (SmolLM2):

    test_tools.py SPECEXIT MODEL.gguf

- tool_choice "required" and a named function: the grammar forces a call,
  so the answer is `tool_calls` (finish_reason "tool_calls") whose arguments
  are JSON that follows the tool's parameters schema;
- the same request streamed: one tool_calls delta with the same calls;
- the conversation continued with the tool's result (a "tool" message and
  the assistant's earlier tool_calls) is accepted and answered;
- the official OpenAI SDK reads the calls (when the package is installed).
Greedy decoding, so streamed and whole answers are compared exactly.
"""
import json
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_server import Server, check  # noqa: E402
import test_server  # noqa: E402

EXE, MODEL = sys.argv[1:3]

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Get the current weather of a city",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40},
                                                                                      "unit": {"enum": ["celsius", "fahrenheit"]}},
                                                     "required": ["city"]}}},
    {"type": "function", "function": {"name": "add", "description": "Add two numbers",
                                      "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                                                     "required": ["a", "b"]}}},
]


def calls_of(r):
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in r["choices"][0]["message"].get("tool_calls") or []]


def main():
    s = Server("-np", "1", exe=EXE, model=["-m", MODEL])
    try:
        q = [{"role": "user", "content": "What is the weather like in Paris today?"}]
        body = {"messages": q, "tools": TOOLS, "tool_choice": "required", "parallel_tool_calls": False, "max_tokens": 120}
        st, r = s.json("POST", "/v1/chat/completions", body)
        ok = check(st == 200 and r["choices"][0]["finish_reason"] == "tool_calls", f"required: {st} {json.dumps(r)[:400]}")
        if ok:
            calls = calls_of(r)
            check(len(calls) == 1 and calls[0][0] in ("get_weather", "add"), f"one call of a known tool: {calls}")
            name, args = calls[0]
            if name == "get_weather":
                check(isinstance(args.get("city"), str) and len(args["city"]) <= 40 and set(args) <= {"city", "unit"},
                      f"get_weather arguments follow the schema: {args}")
            else:
                check(isinstance(args.get("a"), (int, float)) and isinstance(args.get("b"), (int, float)), f"add arguments: {args}")
            check(r["choices"][0]["message"]["content"] is None, f"only calls: content null ({r['choices'][0]['message']})")
            print(f"ok   tool_choice required: {calls}", flush=True)
            # streamed: the same calls, in one tool_calls delta
            st2, ctype, ev = s.stream("/v1/chat/completions", body)
            deltas = [e["choices"][0]["delta"] for e in ev if isinstance(e, dict) and e.get("choices")]
            tc = [d["tool_calls"] for d in deltas if "tool_calls" in d]
            fin = [e["choices"][0].get("finish_reason") for e in ev if isinstance(e, dict) and e.get("choices")]
            check(st2 == 200 and len(tc) == 1 and [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in tc[0]] == calls
                  and tc[0][0]["index"] == 0 and fin[-1] == "tool_calls" and ev[-1] == "[DONE]",
                  f"streamed tool calls: {tc} {fin[-3:]}")
            print("ok   streamed: one tool_calls delta, the same calls", flush=True)
            # the conversation goes on with the result
            call = r["choices"][0]["message"]["tool_calls"][0]
            more = q + [{"role": "assistant", "content": None, "tool_calls": [call]},
                        {"role": "tool", "tool_call_id": call["id"], "content": json.dumps({"temperature": 21, "sky": "clear"})}]
            st3, r3 = s.json("POST", "/v1/chat/completions", {"messages": more, "tools": TOOLS, "max_tokens": 40})
            check(st3 == 200 and r3["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls"), f"tool result turn: {st3} {r3}")
            print(f"ok   the tool's result answered: {json.dumps(r3['choices'][0]['message'])[:120]}", flush=True)
        # a named function
        st, r = s.json("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "What is 2 plus 40?"}], "tools": TOOLS,
                                                        "tool_choice": {"type": "function", "function": {"name": "add"}}, "max_tokens": 120})
        if check(st == 200 and r["choices"][0]["finish_reason"] == "tool_calls", f"named: {st} {json.dumps(r)[:300]}"):
            calls = calls_of(r)
            check(calls and all(n == "add" and isinstance(a["a"], (int, float)) and isinstance(a["b"], (int, float)) for n, a in calls),
                  f"named add: {calls}")
            print(f"ok   tool_choice add: {calls}", flush=True)
        # refused: a forced call without tools, tools on /v1/completions
        st, r = s.json("POST", "/v1/chat/completions", {"messages": q, "tool_choice": "required"})
        check(st == 400 and r["error"]["param"] == "tool_choice", f"required without tools: {st} {r}")
        st, r = s.json("POST", "/v1/completions", {"prompt": "hi", "tools": TOOLS})
        check(st == 400 and r["error"]["param"] == "tools", f"tools on completions: {st} {r}")
        try:
            import openai
        except ImportError:
            openai = None
            print("note: the openai package is not installed; the SDK check did not run", flush=True)
        if openai is not None:
            oc = openai.OpenAI(base_url=f"http://127.0.0.1:{s.port}/v1", api_key="unused")
            rr = oc.chat.completions.create(model="m", messages=q, tools=TOOLS, tool_choice="required", parallel_tool_calls=False, max_tokens=120)
            tcs = rr.choices[0].message.tool_calls
            check(tcs and rr.choices[0].finish_reason == "tool_calls" and json.loads(tcs[0].function.arguments) is not None,
                  f"OpenAI SDK: {rr}")
            print(f"ok   OpenAI SDK: {tcs[0].function.name}({tcs[0].function.arguments})", flush=True)
    except BaseException:
        s.stop()
        raise
    return test_server.stop_and_report(s)


if __name__ == "__main__":
    sys.exit(main())
