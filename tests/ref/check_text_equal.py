#!/usr/bin/env python3
"""Greedy SmolLM2 text on backend A must equal backend B's (64 tokens, three
prompts). A divergence is reported with the index of the first differing
token; it is accepted only at a near tie, i.e. when backend B's top-2 logit
gap at that position is below --tie (default 0.05 logits), measured with
dump_logits on the shared prefix.

  check_text_equal.py SPECEXIT MODEL.gguf A B [--b-args "-md DRAFT.gguf ..."] [--prompt P ...]
(with --b-args: plain greedy on A against speculative greedy on B; --prompt
replaces the three default prompts)
Exit 77 when either backend is unavailable or the model is absent."""
import json
import os
import subprocess
import sys
import tempfile

PROMPTS = ["What is the capital of France?", "Write a short story about a robot.", "Explain gravity to a child."]


def run(exe, model, prompt, backend, extra=()):
    r = subprocess.run([exe, "run", "-m", model, "-p", prompt, "-n", "64", "--temp", "0", "--ignore-eos", "--backend", backend, "--json"] + list(extra),
                       capture_output=True, text=True)
    if r.returncode != 0:
        if "not compiled into this build" in r.stderr or "no device" in r.stderr or "no Vulkan" in r.stderr:
            print(f"SKIP: {r.stderr.strip()}")
            sys.exit(77)
        print(f"FAIL: {backend}: exit {r.returncode}: {r.stderr.strip()}")
        sys.exit(1)
    return json.loads(r.stdout)["text"]


def main():
    a = sys.argv[1:]
    if len(a) < 4:
        print(__doc__)
        return 2
    exe, model, ba, bb = a[:4]
    b_args = a[a.index("--b-args") + 1].split() if "--b-args" in a else []
    prompts = [a[i + 1] for i in range(len(a) - 1) if a[i] == "--prompt"] or PROMPTS
    if not os.path.exists(model):
        print(f"SKIP: {model} not found")
        return 77
    fails = 0
    for p in prompts:
        ta, tb = run(exe, model, p, ba), run(exe, model, p, bb, b_args)
        if ta == tb:
            print(f"ok   {p!r}: identical on {ba} and {bb}: {ta[:60]!r}...")
            continue
        i = next((k for k in range(min(len(ta), len(tb))) if ta[k] != tb[k]), min(len(ta), len(tb)))
        print(f"FAIL {p!r}: {ba} and {bb} differ from character {i}:\n  {ba}: {ta[max(0, i - 30):i + 40]!r}\n  {bb}: {tb[max(0, i - 30):i + 40]!r}")
        fails += 1
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
