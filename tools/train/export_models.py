#!/usr/bin/env python3
"""Exports the trained target and draft to GGUF and validates them.

  OUT/target.gguf  qwen3, Q8_0 weights (F32 norms), tokenizer and chat template
  OUT/draft.gguf   eagle3 (core/eagle3.h), F16 weights, F32 fc and norms

Checks (printed, and written to WORK/export_report.json):
  * tests/ref/ref_forward.py (independent numpy forward pass) on the GGUF vs
    the torch target with the same Q8_0-rounded weights: max |logit diff|
    over every position of a full trace;
  * --engine BIN: `BIN run -m target.gguf -p PROMPT --temp 0` gives the
    reference trace for a few held-out problems.
  * held-out accuracy of the greedy (Q8_0-rounded) torch target.

Usage: export_models.py --work DIR --out models/sumchain [--engine /tmp/build-train/specexit]
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "ref"))
import gguf_export  # noqa: E402
import models  # noqa: E402
import sumchain  # noqa: E402
import sumchain_tokenizer as stok  # noqa: E402
import train_draft  # noqa: E402
import train_target  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--engine", help="specexit binary for the end-to-end check")
    ap.add_argument("--n-heldout", type=int, default=200)
    ap.add_argument("--skip-draft", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    os.makedirs(a.out, exist_ok=True)
    V = stok.Vocab.from_json(os.path.join(a.work, "tokenizer.json"))
    report = {}
    raw = train_draft.load_target(a.work, qtype=None)
    tpath = os.path.join(a.out, "target.gguf")
    gguf_export.write_target(tpath, raw, V, chat_template=sumchain.CHAT_TEMPLATE)
    target = train_draft.load_target(a.work)   # the Q8_0-rounded weights the GGUF holds
    report["target_bytes"] = os.path.getsize(tpath)

    # 1. independent reference forward pass on the GGUF
    import ref_forward
    ref = ref_forward.RefModel(tpath)
    nums = (17, 5, 38, 9)
    p, c, _, _ = V.encode_example(nums)
    ids = p + c
    lr, _ = ref.forward(ids, all_positions=True)
    with torch.no_grad():
        lt, _ = target(torch.tensor([ids]))
    lt = lt[0].float().numpy()
    diff = float(np.abs(lr - lt).max())
    report["ref_forward_max_abs_logit_diff"] = diff
    report["ref_forward_argmax_agree"] = float((lr.argmax(-1) == lt.argmax(-1)).mean())
    print(f"ref_forward vs torch: max |dlogit| {diff:.2e} over {len(ids)} positions "
          f"(logit range {lt.min():.1f}..{lt.max():.1f}), argmax agreement {report['ref_forward_argmax_agree']:.3f}",
          flush=True)

    # 2. held-out accuracy of the exported weights (greedy)
    heldout = sumchain.read_problem_file(os.path.join(a.work, "heldout.jsonl"))[: a.n_heldout]
    st, gens = train_target.evaluate(target, V, heldout)
    n = st["n"]
    report["heldout"] = st
    print(f"held-out greedy (Q8_0 weights): accuracy {st['correct'] / n:.3f}, exact trace {st['exact'] / n:.3f}, "
          f"slip pattern {st['slip_ok'] / n:.3f}, re-check count {st['rechecks_ok'] / n:.3f}, "
          f"slip cases correct {st['slip_correct']}/{st['n_slip']} ({time.time() - t0:.0f}s)", flush=True)
    think = [g.index(V.think_close) if V.think_close in g else len(g) for g in gens]
    report["heldout_mean_generated_tokens"] = sum(len(g) for g in gens) / n
    report["heldout_mean_thinking_tokens"] = sum(think) / n

    # 3. the engine end to end
    if a.engine:
        ok = 0
        for nums in heldout[:5]:
            user = sumchain.problem_text(nums)
            r = subprocess.run([a.engine, "run", "-m", tpath, "-p", user, "--temp", "0", "-n", "900"],
                               capture_output=True, text=True, errors="replace")
            ref_trace = sumchain.Trace(nums)
            got = r.stdout
            ok += int(sumchain.final_answer(got) == str(sum(nums)))
            print(f"engine {user}: answer {sumchain.final_answer(got)} (want {sum(nums)}), "
                  f"{'same text as torch greedy' if got.strip() == V.decode(gens[heldout.index(nums)]).replace('<|im_end|>', '').strip() else 'DIFFERS from torch greedy'}",
                  flush=True)
            if nums == heldout[0]:
                report["engine_example"] = got
        report["engine_correct_of_5"] = ok

    if not a.skip_draft:
        st = torch.load(os.path.join(a.work, "draft.pt"), weights_only=False)
        draft = models.Draft(models.DraftConfig(**st["config"]))
        draft.load_state_dict(st["model"])
        dpath = os.path.join(a.out, "draft.gguf")
        gguf_export.write_draft(dpath, draft)
        report["draft_bytes"] = os.path.getsize(dpath)
        report["draft_eval"] = st.get("eval")
    with open(os.path.join(a.work, "export_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"export done in {time.time() - t0:.0f}s: {json.dumps({k: v for k, v in report.items() if k != 'engine_example'})}")


if __name__ == "__main__":
    main()
