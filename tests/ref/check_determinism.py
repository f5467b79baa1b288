#!/usr/bin/env python3
"""Greedy text must not depend on the run or the thread count.

  check_determinism.py SPECEXIT MODEL.gguf [--backend B]
Runs three chat prompts for 64 greedy tokens with -t 1, -t 2 and -t 2 again
and requires identical text. Exit 77 when the model file is absent."""
import json
import os
import subprocess
import sys

PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.", "Explain gravity to a child."]


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    exe, model = sys.argv[1], sys.argv[2]
    backend = sys.argv[sys.argv.index("--backend") + 1] if "--backend" in sys.argv else "cpu"
    if not os.path.exists(model):
        print(f"SKIP: {model} not found")
        return 77
    fails = 0
    for p in PROMPTS:
        texts = []
        for threads in (1, 2, 2):
            r = subprocess.run([exe, "run", "-m", model, "-p", p, "-n", "64", "--temp", "0", "--ignore-eos", "-t", str(threads),
                                "--backend", backend, "--json"], capture_output=True, text=True)
            if r.returncode != 0 and ("not compiled into this build" in r.stderr or "no device" in r.stderr):
                print(f"SKIP: {r.stderr.strip()}")
                return 77
            if r.returncode != 0:
                print(f"FAIL: exit {r.returncode}: {r.stderr.strip()}")
                return 1
            out = json.loads(r.stdout)
            if out["n_generated_tokens"] != 64:
                print(f"FAIL: {out['n_generated_tokens']} tokens generated, wanted 64")
                fails += 1
            texts.append(out["text"])
        same = texts[0] == texts[1] == texts[2]
        print(f"{'ok  ' if same else 'FAIL'} {p!r}: {texts[0][:70]!r}...")
        if not same:
            for t in texts:
                print("   ", repr(t))
            fails += 1
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
