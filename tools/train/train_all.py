#!/usr/bin/env python3
"""Regenerates the embedded sumchain models from a seed, end to end:

  1. prepare_data.py   held-out / dev problem files, the tokenizer
  2. train_target.py   the qwen3 target on the traces
  3. train_draft.py    the EAGLE-3 draft + signal rows on the target's own
                       greedy generations
  4. export_models.py  OUT/target.gguf, OUT/draft.gguf, validation report
  5. export_angelslim.py  the draft as an AngelSlim checkpoint (WORK/../sumchain-angelslim)

Usage (from the repository root):
  python tools/train/train_all.py --seed 1 --out models/sumchain \\
      [--work /opt/specexit-train-work/s1] [--engine /tmp/build-train/specexit] \\
      [--target-steps 1900]

Steps whose outputs exist in WORK are skipped (delete WORK to start over).
Everything is seeded; on the same machine type and torch version the files
come out identical (torch.use_deterministic_algorithms, fixed thread count).
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def run(args):
    print("+", " ".join(args), flush=True)
    subprocess.run([sys.executable] + args, check=True)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "sumchain"))
    ap.add_argument("--work", default=None)
    ap.add_argument("--engine", default=None)
    ap.add_argument("--target-steps", type=int, default=1900)
    ap.add_argument("--target-decay", type=int, default=600)
    ap.add_argument("--draft-epochs", type=int, default=6)
    ap.add_argument("--draft-n-train", type=int, default=1000)
    a = ap.parse_args(argv)
    work = a.work or f"/opt/specexit-train-work/s{a.seed}"
    os.makedirs(work, exist_ok=True)
    t0 = time.time()
    s = str(a.seed)
    if not os.path.exists(os.path.join(work, "tokenizer.json")):
        run([os.path.join(HERE, "prepare_data.py"), "--work", work, "--seed", s,
             "--heldout-out", os.path.join(ROOT, "tests", "data", "sumchain_heldout.jsonl"),
             "--dev-out", os.path.join(ROOT, "tests", "data", "sumchain_dev.jsonl")])
    if not os.path.exists(os.path.join(work, "target.pt")):
        run([os.path.join(HERE, "train_target.py"), "--work", work, "--seed", s, "--resume",
             "--steps", str(a.target_steps), "--decay", str(a.target_decay)])
    if not os.path.exists(os.path.join(work, "draft.pt")):
        run([os.path.join(HERE, "train_draft.py"), "--work", work, "--seed", s,
             "--epochs", str(a.draft_epochs), "--n-train", str(a.draft_n_train)])
    exp = [os.path.join(HERE, "export_models.py"), "--work", work, "--out", a.out]
    if a.engine:
        exp += ["--engine", a.engine]
    run(exp)
    run([os.path.join(HERE, "export_angelslim.py"), "--work", work,
         "--out", os.path.join(os.path.dirname(os.path.abspath(work)), "sumchain-angelslim")])
    print(f"train_all: done in {(time.time() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
