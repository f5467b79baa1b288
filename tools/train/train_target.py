#!/usr/bin/env python3
"""Trains the sumchain target (qwen3 architecture) on the traces.

Loss: next-token cross-entropy on the assistant tokens (the completion after
"<think>\\n"). Fresh problems every step (never a held-out or dev problem).
A fraction of the examples is cut after the first re-check paragraph: for a
causal LM the loss on a prefix is exactly part of the full-trace loss, so
these cheap prefixes spend more of the compute on the first pass (the
arithmetic, the slip, the correction) and less on the copied re-checks.
Examples of similar length are batched together (little padding).

Usage: train_target.py --work DIR --seed 1 [--steps N]
Writes DIR/target.pt (state dict + config) and logs to stdout.
"""

import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate  # noqa: E402
import models  # noqa: E402
import sumchain  # noqa: E402
import sumchain_tokenizer as stok  # noqa: E402


def make_example(V, nums, prefix):
    p, c, T, _ = V.encode_example(nums)
    if prefix:
        t = sumchain.Trace(nums)
        # paragraphs up to and including the first re-check, + 1 token
        n_par = len(nums) + min(t.rechecks, 1)
        delim = V.id[".\u010a\u010a"]  # ".\n\n"
        cnt = 0
        for i, tok in enumerate(c):
            if tok == delim:
                cnt += 1
                if cnt == n_par:
                    c = c[: i + 2]
                    break
    return p + c, len(p)


def batches_for_step(V, rng, exclude, tok_budget, prefix_frac, micro_tokens):
    exs, total = [], 0
    while total < tok_budget:
        nums = sumchain.random_problem(rng)
        if nums in exclude:
            continue
        ids, n_prompt = make_example(V, nums, rng.random() < prefix_frac)
        exs.append((ids, n_prompt))
        total += len(ids)
    exs.sort(key=lambda e: len(e[0]))
    micro, cur = [], []
    for e in exs:
        if cur and (len(cur) + 1) * len(e[0]) > micro_tokens:
            micro.append(cur)
            cur = []
        cur.append(e)
    if cur:
        micro.append(cur)
    out = []
    for mb in micro:
        L = max(len(e[0]) for e in mb)
        x = torch.full((len(mb), L - 1), V.pad, dtype=torch.long)
        y = torch.full((len(mb), L - 1), -100, dtype=torch.long)
        for r, (ids, npr) in enumerate(mb):
            t = torch.tensor(ids)
            x[r, : len(ids) - 1] = t[:-1]
            tgt = t[1:].clone()
            tgt[: npr - 1] = -100
            y[r, : len(ids) - 1] = tgt
        out.append((x, y))
    return out


def evaluate(model, V, problems, batch=64):
    prompts = [V.encode(sumchain.chat_prompt(sumchain.problem_text(p))) for p in problems]
    gens = generate.greedy(model, prompts, [V.eos], max_new=model.c.ctx - 40, batch=batch)
    stats = {"correct": 0, "exact": 0, "slip_ok": 0, "rechecks_ok": 0, "n": len(problems),
             "n_slip": 0, "slip_correct": 0}
    for p, g in zip(problems, gens):
        a = sumchain.analyse_generation(p, V.decode(g))
        for k in ("correct", "exact", "slip_ok", "rechecks_ok"):
            stats[k] += int(a[k])
        if a["slip_ref"]:
            stats["n_slip"] += 1
            stats["slip_correct"] += int(a["correct"])
    return stats, gens


def lr_at(step, steps, peak, warmup, decay):
    """Linear warmup, constant, then a linear decay to 10% over the last
    `decay` steps (so a checkpoint before the decay does not depend on
    --steps, and a run can be extended by resuming it)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - (steps - decay)) / max(1, decay)
    return peak if t < 0 else peak * (1.0 - 0.9 * t)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=1900)
    ap.add_argument("--tokens-per-step", type=int, default=3072)
    ap.add_argument("--micro-tokens", type=int, default=3072)
    ap.add_argument("--prefix-frac", type=float, default=0.7)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=40)
    ap.add_argument("--decay", type=int, default=600)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--kv-heads", type=int, default=1)
    ap.add_argument("--ffn", type=int, default=384)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--eval-every", type=int, default=150)
    ap.add_argument("--eval-n", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(a.seed)
    V = stok.Vocab.from_json(os.path.join(a.work, "tokenizer.json"))
    exclude = set(sumchain.read_problem_file(os.path.join(a.work, "heldout.jsonl")))
    dev = sumchain.read_problem_file(os.path.join(a.work, "dev.jsonl"))
    exclude |= set(dev)
    cfg = models.TargetConfig(vocab=V.n, hidden=a.hidden, n_layer=a.layers, n_head=a.heads, n_head_kv=a.kv_heads,
                              head_dim=64, ffn=a.ffn)
    model = models.Target(cfg)
    model.init_weights(torch.Generator().manual_seed(a.seed))
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.05)
    rng = random.Random(a.seed * 1000 + 7)
    start = 0
    ck = os.path.join(a.work, "target.pt")
    if a.resume and os.path.exists(ck + ".ckpt"):
        st = torch.load(ck + ".ckpt", weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        rng.setstate(st["rng"])
        start = st["step"]
    t0 = time.time()
    ntok = 0
    for step in range(start, a.steps):
        model.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.steps, a.lr, a.warmup, a.decay)
        mbs = batches_for_step(V, rng, exclude, a.tokens_per_step, a.prefix_frac, a.micro_tokens)
        n_loss = sum(int((y != -100).sum()) for _, y in mbs)
        opt.zero_grad(set_to_none=True)
        tot = 0.0
        for x, y in mbs:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits, _ = model(x)
            loss = F.cross_entropy(logits.float().reshape(-1, V.n), y.reshape(-1), ignore_index=-100, reduction="sum")
            (loss / n_loss).backward()
            tot += float(loss.detach())
            ntok += x.numel()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 20 == 0 or step == a.steps - 1:
            dt = time.time() - t0
            print(f"step {step} loss {tot / n_loss:.4f} lr {opt.param_groups[0]['lr']:.2e} "
                  f"{ntok / dt:.0f} tok/s elapsed {dt:.0f}s", flush=True)
        if (step + 1) % 50 == 0:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": rng.getstate(), "step": step + 1},
                       ck + ".ckpt")
            torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "step": step + 1},
                       ck + f".step{step + 1}")
        if (step + 1) % a.eval_every == 0 or step == a.steps - 1:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": rng.getstate(), "step": step + 1},
                       ck + ".ckpt")
            te = time.time()
            s, _ = evaluate(model, V, dev[: a.eval_n])
            print(f"eval step {step + 1}: {json.dumps(s)} ({time.time() - te:.0f}s)", flush=True)
    torch.save({"model": model.state_dict(), "config": cfg.to_dict()}, ck)
    print(f"done in {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
