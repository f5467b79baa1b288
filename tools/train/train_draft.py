#!/usr/bin/env python3
"""Trains the sumchain EAGLE-3 draft with the three SpecExit signal rows.

Data: the target's own greedy generations on training prompts (the target
with its weights rounded exactly as the exported GGUF stores them). A
generation is first checked with one teacher-forced pass over the reference
trace: if the target's argmax equals the next reference token at every
completion position, its greedy generation *is* the reference trace;
otherwise it is decoded greedily for real. Then one forward pass gives the
features (residual stream entering layers 2, L/2, L-3) of every token.

Draft loss (core/eagle3.h, SPECEXIT.md): draft position j pairs the target
feature of x_j with the embedding of x_(j+1) and predicts x_(j+2) (step 1).
Steps 2..K unroll training-time test as EAGLE-3 does: position j then pairs
the draft's own output hidden of step k-1 with the embedding of x_(j+k) and
predicts x_(j+k+1); its query sees the real pairs 0..j and its own chain.
Loss weight 0.8^(k-1). Only completion tokens are predicted.

Signal rows (rows H..H+2 of fc on the raw 3*Ht features of thinking token t,
t = 0..T-1 counted from the first token after "<think>\\n"):
confidence: BCE vs 1 from the token completing the statement of the correct
final answer (0 everywhere if the generation's final answer is wrong);
progress: BCE vs t/T; remain: MSE of the raw row vs log(T - t + 1).

Usage: train_draft.py --work DIR --seed 1
Reads DIR/target.pt, writes DIR/draft.pt and DIR/draft_data_*.pt caches.
"""

import argparse
import json
import math
import os
import random
import re
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate  # noqa: E402
import gguf_export  # noqa: E402
import models  # noqa: E402
import prepare_data  # noqa: E402
import sumchain  # noqa: E402
import sumchain_tokenizer as stok  # noqa: E402


def load_target(work, qtype=gguf_export.Q.Q8_0):
    st = torch.load(os.path.join(work, "target.pt"), weights_only=False)
    cfg = models.TargetConfig(**st["config"])
    m = models.Target(cfg)
    m.load_state_dict(st["model"])
    if qtype is not None:
        gguf_export.load_roundtrip_(m, qtype)
    m.eval()
    return m


def conf_labels(V, comp, T):
    """Confidence labels for the T thinking tokens of completion ids comp."""
    text = V.decode(comp)
    lab = torch.zeros(T)
    ans = sumchain.final_answer(text)
    if ans is None:
        return lab
    pieces = [V.decode([t]) for t in comp[:T]]
    offs, o = [], 0
    for p in pieces:
        offs.append(o)
        o += len(p)
    thinking = "".join(pieces)
    m = None
    for mm in re.finditer(r"answer is (?:actually )?(\d+)\.", thinking):
        if mm.group(1) == ans:
            m = mm
            break
    if m is None:
        return lab
    dot = m.end() - 1
    k = max(i for i, s in enumerate(offs) if s <= dot)
    lab[k:] = 1.0
    return lab


@torch.no_grad()
def build_data(model, V, problems, batch=32):
    """List of dicts: ids (prompt + completion), n_prompt, T, features [N, 3H],
    labels. Uses the reference trace where it is the greedy generation."""
    items, need_gen = [], []
    for p in problems:
        pr, c, T, _ = V.encode_example(p)
        items.append({"nums": p, "prompt": pr, "comp": c})
    # teacher-forced check in length-sorted batches
    order = sorted(range(len(items)), key=lambda i: len(items[i]["prompt"]) + len(items[i]["comp"]))
    for b0 in range(0, len(order), batch):
        idx = order[b0:b0 + batch]
        seqs = [items[i]["prompt"] + items[i]["comp"] for i in idx]
        L = max(len(s) for s in seqs)
        x = torch.full((len(idx), L), V.pad, dtype=torch.long)
        for r, s in enumerate(seqs):
            x[r, : len(s)] = torch.tensor(s)
        logits, feats = model(x, want_features=True)
        am = logits.float().argmax(-1)
        for r, i in enumerate(idx):
            s, npr = seqs[r], len(items[i]["prompt"])
            ok = bool((am[r, npr - 1: len(s) - 1] == x[r, npr: len(s)]).all())
            if ok:
                items[i]["ids"] = s
                items[i]["feats"] = feats[r, : len(s)].clone()
            else:
                need_gen.append(i)
    if need_gen:
        gens = generate.greedy(model, [items[i]["prompt"] for i in need_gen], [V.eos], model.c.ctx - 40)
        for i, g in zip(need_gen, gens):
            s = items[i]["prompt"] + g
            _, f = model(torch.tensor([s]), want_features=True)
            items[i]["ids"], items[i]["comp"], items[i]["feats"] = s, g, f[0].clone()
    out = []
    for it in items:
        comp, npr = it["comp"], len(it["prompt"])
        T = comp.index(V.think_close) if V.think_close in comp else len(comp)
        t = torch.arange(T, dtype=torch.float32)
        out.append({
            "ids": torch.tensor(it["ids"]), "n_prompt": npr, "T": T,
            "feats": it["feats"].to(torch.bfloat16),
            "progress": t / max(T, 1), "remain": torch.log(T - t + 1),
            "conf": conf_labels(V, comp, T), "reference": it["ids"] == it["prompt"] + V.encode_example(it["nums"])[1],
        })
    return out, len(need_gen)


def draft_forward(draft, emb, ids, feats, n_steps):
    """ids [N], feats [N, 3H] of one sequence. Returns list over steps k of
    logits [N-1-k, Vd] (position j predicts x_(j+k+1)), and signal rows [N, 3]."""
    N = ids.shape[0]
    h, _ = draft.fuse(feats[None].float())          # [1, N, H]
    outs = []
    n = N - 1                                        # pairs (f_j, x_{j+1}), j = 0..N-2
    hk = h[:, :n]
    e = emb(ids[1:])[None]                           # embeddings of x_{j+1}
    pos = torch.arange(n)
    ks, vs = [], []
    for k in range(1, n_steps + 1):
        m = n - (k - 1)                              # positions j = 0..m-1 still have a target
        if m <= 1:
            break
        if k == 1:
            h2, logits, (kk, vv) = draft.step(hk, e, pos)
            ks.append(kk)
            vs.append(vv)
        else:
            # query j (rope position j + k - 1) sees real pairs 0..j and chain keys of j
            q_h = hk[:, :m]
            q_e = emb(ids[k:k + m])[None]
            # mask over [K1 (n), K2..K_{k-1} (m each, truncated), own (m)]
            mask_real = torch.ones(m, n, dtype=torch.bool).tril()
            eye = torch.eye(m, dtype=torch.bool)
            pref_k = torch.cat([ks[0]] + [kx[:, :, :m] for kx in ks[1:]], dim=2)
            pref_v = torch.cat([vs[0]] + [vx[:, :, :m] for vx in vs[1:]], dim=2)
            mask = torch.cat([mask_real] + [eye] * (k - 2) + [eye], dim=1)
            h2, logits, (kk, vv) = draft.step(q_h, q_e, pos[:m] + (k - 1), mask=mask, kv_prefix=(pref_k, pref_v))
            ks.append(kk)
            vs.append(vv)
        outs.append(logits[0, : m - 1] if k == 1 else logits[0, : m - 1])
        hk = h2
    return outs


def losses(draft, emb, item, n_steps, step_w=0.8):
    ids, feats, npr = item["ids"], item["feats"], item["n_prompt"]
    outs = draft_forward(draft, emb, ids, feats, n_steps)
    tok_loss, stats = 0.0, []
    for k, lg in enumerate(outs, start=1):
        # row j predicts x_(j+k+1); keep completion targets only
        tgt = ids[k + 1: k + 1 + lg.shape[0]]
        j0 = max(0, npr - (k + 1))
        lg, tgt = lg[j0:], tgt[j0:]
        if tgt.numel() == 0:
            continue
        tok_loss = tok_loss + step_w ** (k - 1) * F.cross_entropy(lg.float(), tgt)
        stats.append((int((lg.argmax(-1) == tgt).sum()), tgt.numel()))
    T = item["T"]
    sig = draft.signals(feats[npr: npr + T].float())   # [T, 3]
    l_conf = F.binary_cross_entropy_with_logits(sig[:, 0], item["conf"])
    l_prog = F.binary_cross_entropy_with_logits(sig[:, 1], item["progress"])
    l_rem = F.mse_loss(sig[:, 2], item["remain"])
    return tok_loss, l_conf, l_prog, l_rem, stats


@torch.no_grad()
def evaluate(draft, emb, data, n_steps=3):
    draft.eval()
    acc = [[0, 0] for _ in range(n_steps)]
    sig_early, sig_late, sig_conf_pre, n_e, n_l = torch.zeros(3), torch.zeros(3), [], 0, 0
    conf_before, conf_after = [], []
    for it in data:
        _, _, _, _, st = losses(draft, emb, it, n_steps)
        for k, (a, n) in enumerate(st):
            acc[k][0] += a
            acc[k][1] += n
        T, npr = it["T"], it["n_prompt"]
        s = draft.signals(it["feats"][npr: npr + T].float())
        act = torch.stack([torch.sigmoid(s[:, 0]), torch.sigmoid(s[:, 1]), torch.exp(s[:, 2])], 1)
        e = max(1, T // 10)
        sig_early += act[:e].mean(0)
        sig_late += act[-e:].mean(0)
        n_e += 1
        c = it["conf"].bool()
        if c.any() and (~c).any():
            conf_before.append(float(act[~c, 0].mean()))
            conf_after.append(float(act[c, 0].mean()))
    draft.train()
    return {
        "step_acc": [a / max(n, 1) for a, n in acc],
        "signals_first10pct": (sig_early / n_e).tolist(),
        "signals_last10pct": (sig_late / n_e).tolist(),
        "conf_mean_before_answer": sum(conf_before) / max(1, len(conf_before)),
        "conf_mean_after_answer": sum(conf_after) / max(1, len(conf_after)),
    }


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-eval", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--steps-ttt", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(a.seed)
    t0 = time.time()
    V = stok.Vocab.from_json(os.path.join(a.work, "tokenizer.json"))
    target = load_target(a.work)
    heldout = sumchain.read_problem_file(os.path.join(a.work, "heldout.jsonl"))
    dev = sumchain.read_problem_file(os.path.join(a.work, "dev.jsonl"))
    cache = os.path.join(a.work, f"draft_data_{a.n_train}.pt")
    if os.path.exists(cache):
        train_data, eval_data = torch.load(cache, weights_only=False)
    else:
        probs = prepare_data.training_problems(a.seed + 500, a.n_train, set(heldout) | set(dev))
        train_data, n_gen = build_data(target, V, probs)
        print(f"train data: {len(train_data)} generations, {n_gen} differ from the reference trace "
              f"({time.time() - t0:.0f}s)", flush=True)
        eval_data, n_gen = build_data(target, V, heldout[: a.n_eval])
        print(f"held-out data: {len(eval_data)} generations, {n_gen} differ from the reference ({time.time() - t0:.0f}s)",
              flush=True)
        torch.save((train_data, eval_data), cache)
    tc = target.c
    dc = models.DraftConfig(hidden=tc.hidden, target_hidden=tc.hidden, n_head=tc.n_head, n_head_kv=tc.n_head_kv,
                            head_dim=tc.head_dim, ffn=tc.ffn, vocab=tc.vocab, rope_base=10000.0, eps=tc.eps,
                            target_layers=models.feature_layers(tc.n_layer))
    draft = models.Draft(dc)
    g = torch.Generator().manual_seed(a.seed + 17)
    with torch.no_grad():
        for n, p in draft.named_parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
        draft.output.weight.copy_(target.output.weight)
        draft.out_norm.weight.copy_(target.out_norm.weight)
        draft.fc.weight[dc.hidden:].zero_()
    emb = target.tok_embd
    emb.weight.requires_grad_(False)
    opt = torch.optim.AdamW(draft.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.01)
    rng = random.Random(a.seed + 99)
    n_total = a.epochs * math.ceil(len(train_data) / a.batch)
    step = 0
    for ep in range(a.epochs):
        order = list(range(len(train_data)))
        rng.shuffle(order)
        for b0 in range(0, len(order), a.batch):
            lr = a.lr * min(1.0, (step + 1) / 20) * (1.0 - 0.9 * step / n_total)
            for gp in opt.param_groups:
                gp["lr"] = lr
            opt.zero_grad(set_to_none=True)
            agg = torch.zeros(4)
            for i in order[b0:b0 + a.batch]:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    lt, lc, lp, lr_, _ = losses(draft, emb, train_data[i], a.steps_ttt)
                loss = lt + lc + lp + 0.1 * lr_
                (loss / a.batch).backward()
                agg += torch.tensor([float(x.detach()) for x in (lt, lc, lp, lr_)])
            torch.nn.utils.clip_grad_norm_(draft.parameters(), 1.0)
            opt.step()
            if step % 25 == 0:
                agg /= len(order[b0:b0 + a.batch])
                print(f"ep {ep} step {step}/{n_total} tok {agg[0]:.3f} conf {agg[1]:.3f} prog {agg[2]:.3f} "
                      f"remain {agg[3]:.3f} ({time.time() - t0:.0f}s)", flush=True)
            step += 1
        ev = evaluate(draft, emb, eval_data, a.steps_ttt)
        print(f"epoch {ep} held-out: {json.dumps(ev)}", flush=True)
    torch.save({"model": draft.state_dict(), "config": dc.to_dict(), "eval": ev}, os.path.join(a.work, "draft.pt"))
    print(f"done in {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
