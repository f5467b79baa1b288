#!/usr/bin/env python3
"""Checks that the engine's tokenizer (core/tokenizer, pre = "qwen2") gives
the same ids as the trainer's HF tokenizer, on 100 traces plus edge cases.

Build the helper first (not part of the meson build):
  cc -O1 -I. tools/train/tokcheck.c -L BUILD -lspecexit -Wl,-rpath,BUILD -o /tmp/tokcheck
Usage: verify_tokenizer.py --work DIR --gguf models/sumchain/target.gguf --tokcheck /tmp/tokcheck
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sumchain  # noqa: E402
import sumchain_tokenizer as stok  # noqa: E402

EDGE = ["\n\n", "\n\n\n", ".\n\n", ".\n\n\n", " \n\n", " \n\n\n", "What is 1+2?", "x  \n\n  y\t\tz",
        "Hello, world! 12345 \u00fcn\u00efc\u00f6d\u00e9 caf\u00e9 \u4e2d\u6587 \U0001F600", "it's we'll I'M",
        "<think>\n1+2=3.\n\n</think>\n\nThe answer is 3.<|im_end|>"]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--tokcheck", required=True)
    ap.add_argument("--n", type=int, default=100)
    a = ap.parse_args(argv)
    V = stok.Vocab.from_json(os.path.join(a.work, "tokenizer.json"))
    texts = []
    for p in sumchain.make_problems(424242, a.n):
        t = sumchain.Trace(p)
        texts.append(t.prompt + t.completion)
    texts += EDGE
    r = subprocess.run([a.tokcheck, a.gguf], input="\x1e".join(texts).encode(), capture_output=True, check=True)
    lines = r.stdout.decode().split("\n")[: len(texts)]
    bad = 0
    for t, line in zip(texts, lines):
        want = V.encode(t)
        got = [int(x) for x in line.split()] if line else []
        if want != got:
            bad += 1
            print(f"MISMATCH {t[:50]!r}: trainer {want[:16]} engine {got[:16]}")
    print(f"tokenizer check: {len(texts) - bad}/{len(texts)} texts give identical ids")
    for s in ["\n\n", "\n\n\n", ".\n\n", ".\n\n\n", " \n\n", " \n\n\n"]:
        ids = V.encode(s)
        print(f"  {s!r}: {'single token ' + str(ids[0]) if len(ids) == 1 else str(len(ids)) + ' tokens ' + str(ids)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
