#!/usr/bin/env python3
"""Problem files and the tokenizer.

  held-out: 200 problems from seed HELDOUT_SEED (independent of --seed, so
            the committed bench file stays the same for any training seed)
  dev:      100 problems from seed DEV_SEED, disjoint from held-out
  training problems are drawn by the trainers from --seed and never equal a
            held-out or dev problem (rejected on draw; checked again here)
  tokenizer: byte-level BPE trained on the traces of 3000 training problems

Usage: prepare_data.py --work DIR --seed 1 [--heldout-out tests/data/sumchain_heldout.jsonl]
"""

import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sumchain  # noqa: E402
import sumchain_tokenizer as stok  # noqa: E402

HELDOUT_SEED = 20250924
DEV_SEED = 20250925
N_HELDOUT = 200
N_DEV = 100
VOCAB_SIZE = 384


def training_problems(seed, count, exclude):
    rng = random.Random(seed * 1000 + 3)
    out = []
    while len(out) < count:
        p = sumchain.random_problem(rng)
        if p not in exclude:
            out.append(p)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--heldout-out")
    ap.add_argument("--dev-out")
    a = ap.parse_args(argv)
    os.makedirs(a.work, exist_ok=True)
    heldout = sumchain.make_problems(HELDOUT_SEED, N_HELDOUT)
    dev = sumchain.make_problems(DEV_SEED, N_DEV, exclude=set(heldout))
    assert not set(heldout) & set(dev)
    for path in (os.path.join(a.work, "heldout.jsonl"), a.heldout_out):
        if path:
            sumchain.write_problem_file(path, heldout)
    for path in (os.path.join(a.work, "dev.jsonl"), a.dev_out):
        if path:
            sumchain.write_problem_file(path, dev)
    n_slip = sum(sumchain.has_slip(p) for p in heldout)
    print(f"held-out: {len(heldout)} problems, {n_slip} with a slip ({100 * n_slip / len(heldout):.1f}%), "
          f"mean re-checks {sum(sumchain.n_rechecks(p) for p in heldout) / len(heldout):.2f}")
    probs = training_problems(a.seed, 3000, set(heldout) | set(dev))
    V = stok.Vocab(stok.train(probs, VOCAB_SIZE))
    V.to_json(os.path.join(a.work, "tokenizer.json"))
    print(f"tokenizer: {V.n} tokens, {len(V.merges)} merges")
    for s in ["\n\n", "\n\n\n", ".\n\n", ".\n\n\n", " \n\n", " \n\n\n"]:
        ids = V.encode(s)
        print(f"  {s!r}: {'single token ' + str(ids[0]) if len(ids) == 1 else 'ids ' + str(ids)}")


if __name__ == "__main__":
    main()
