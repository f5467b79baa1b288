#!/usr/bin/env python3
"""Trains an EAGLE-3 draft (core/eagle3.h) for any llama / qwen2 / qwen3 GGUF
target the engine runs (e.g. SmolLM2-135M-Instruct), without the HF weights.

  1. The GGUF is dequantised (tests/ref/ref_forward.py RefModel, gguf package)
     into models.Target (torch; NORMAL RoPE for llama, NEOX for qwen).
  2. The target's own greedy continuations of 83 built-in chat prompts
     (ChatML, the template's default system prompt) are generated in torch
     with a KV cache (generate.greedy); one forward pass over prompt +
     continuation records the residual stream entering layers 2, L/2, L-3.
  3. The draft: hidden/heads/kv-heads/head_dim of the target, 1 layer, FFN the
     target's or smaller so the F16 file stays under --max-mb, draft vocab =
     the Vd most frequent tokens of the generated data (d2t offsets), lm_head
     untied (initialised from the target's rows), embedding = the target's
     (not stored), RoPE NEOX base 10000, no SpecExit signal rows
     (eagle3.signal_rows = 0: a non-thinking target has no thinking labels).
     Loss: step 1 (feature of x_j + embedding of x_(j+1) -> x_(j+2)) plus
     --steps-ttt - 1 unrolled steps (train_draft.draft_forward), completion
     targets only; targets outside the draft vocab are ignored.
  4. Export (gguf_export.write_draft): weights F16 (fc too), norms F32, d2t i32.

Usage:
  train_draft_gguf.py -m MODEL.gguf --out DRAFT.gguf [--vd 2048] [--gen-len 192]
      [--minutes 4] [--threads 1]
"""

import argparse
import json
import math
import os
import random
import re
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "ref"))
import generate  # noqa: E402
import gguf_export  # noqa: E402
import models  # noqa: E402
from train_draft import draft_forward  # noqa: E402
from gguf_tokenize import GGUFVocab, _field  # noqa: E402
from ref_forward import RefModel  # noqa: E402

PROMPTS = [
    "Write a short poem about the ocean.",
    "Explain how photosynthesis works in simple terms.",
    "What are three tips for staying productive when working from home?",
    "Tell me a short story about a dragon who is afraid of the dark.",
    "What is the difference between a list and a tuple in Python?",
    "Write a Python function that checks whether a number is prime.",
    "Summarize the causes of World War I in a few sentences.",
    "How do I make a cup of green tea?",
    "Give me a recipe for a simple tomato pasta.",
    "What is machine learning?",
    "Explain the water cycle to a ten-year-old.",
    "Write a haiku about autumn leaves.",
    "What are the benefits of regular exercise?",
    "Describe the planet Mars.",
    "How does a car engine work?",
    "Write an email to my manager asking for a day off next Friday.",
    "What is the capital of Australia, and what is it known for?",
    "List five fun facts about cats.",
    "Explain what a black hole is.",
    "Write a short story about a girl who finds a magic key.",
    "How can I improve my sleep?",
    "What is the Pythagorean theorem? Give an example.",
    "Translate 'Good morning, how are you?' into French and Spanish.",
    "Write a limerick about a cat who loves pizza.",
    "Why is the sky blue?",
    "Give me three ideas for a birthday party for a seven-year-old.",
    "Explain recursion with a simple example.",
    "What should I pack for a weekend camping trip?",
    "Describe a sunset over the mountains.",
    "How do vaccines work?",
    "Write a JavaScript function that reverses a string.",
    "What are the main differences between renewable and non-renewable energy?",
    "Tell me a fairy tale about a brave mouse.",
    "How do I start learning to play the guitar?",
    "Write a product description for a reusable water bottle.",
    "What is the history of the Eiffel Tower?",
    "Explain the rules of chess briefly.",
    "Write a motivational message for someone starting a new job.",
    "What is inflation and why does it happen?",
    "Describe your ideal city of the future.",
    "Write a story about a lighthouse keeper and a storm.",
    "How do bees make honey?",
    "What is the difference between weather and climate?",
    "Write a short speech for a school graduation.",
    "Explain how the internet works.",
    "Give me a weekly meal plan for a vegetarian.",
    "What are some good habits for learning a new language?",
    "Write a story about a painter who loses her colors.",
    "What is a neural network?",
    "How do I write a good cover letter?",
    "Describe the life cycle of a butterfly.",
    "Write a SQL query that finds the ten most recent orders.",
    "What are the pros and cons of electric cars?",
    "Explain the theory of evolution simply.",
    "Write a thank-you note to a friend who helped me move.",
    "What is the meaning of the word 'serendipity'? Use it in a sentence.",
    "How does the stock market work?",
    "Write a poem about a rainy day in the city.",
    "What causes earthquakes?",
    "Give me tips for a successful job interview.",
    "Explain what an API is to a beginner.",
    "Tell me a funny story about a penguin on vacation.",
    "What are the planets of the solar system?",
    "How can I reduce stress?",
    "Write a C function that computes the factorial of a number.",
    "What is democracy?",
    "Describe a day in the life of a medieval farmer.",
    "How do airplanes stay in the air?",
    "Write a short mystery story set on a train.",
    "What are the health benefits of drinking water?",
    "Explain the difference between a virus and a bacterium.",
    "Suggest five books for someone who loves science fiction.",
    "How do I bake chocolate chip cookies?",
    "What is climate change and what can we do about it?",
    "Write a dialogue between a teacher and a student about homework.",
    "Explain how a computer stores data.",
    "What are the seven wonders of the ancient world?",
    "Write a bedtime story about a sleepy bear.",
    "How do I save money on groceries?",
    "What is the role of the heart in the human body?",
    "Write an advertisement for a new smartphone.",
    "Explain what gravity is.",
    "Describe the culture of Japan in a few paragraphs.",
]


def load_target(path):
    """GGUF -> models.Target with the dequantised weights (float32)."""
    r = RefModel(path, verbose=True)
    c = models.TargetConfig(arch=r.arch, vocab=r.n_vocab, hidden=r.n_embd, n_layer=r.n_layer, n_head=r.n_head,
                            n_head_kv=r.n_head_kv, head_dim=r.head_dim,
                            ffn=r.layers[0]["ffn_gate.weight"].shape[0], ctx=4096, rope_base=r.freq_base,
                            eps=r.eps, tied="output.weight" not in r.W, n_rot=r.n_rot, freq_scale=r.freq_scale)
    if abs(r.kq_scale - 1.0 / math.sqrt(r.head_dim)) > 1e-9:
        raise SystemExit("train_draft_gguf: a custom attention scale is not supported")
    m = models.Target(c)
    W = r.W
    t = lambda a: torch.from_numpy(np.array(a, dtype=np.float32))  # noqa: E731
    with torch.no_grad():
        m.tok_embd.weight.copy_(t(W["token_embd.weight"]))
        for il, (b, L) in enumerate(zip(m.blocks, r.layers)):
            if L["attn_qkv.weight"] is not None:
                raise SystemExit("train_draft_gguf: fused attn_qkv not supported")
            b.attn_norm.weight.copy_(t(L["attn_norm.weight"]))
            for lin, n in ((b.wq, "attn_q"), (b.wk, "attn_k"), (b.wv, "attn_v")):
                lin.weight.copy_(t(L[n + ".weight"]))
                if lin.bias is not None:
                    lin.bias.copy_(t(L[n + ".bias"]))
                elif L[n + ".bias"] is not None:
                    raise SystemExit(f"train_draft_gguf: unexpected {n}.bias for {c.arch}")
            if L["attn_output.bias"] is not None or L["ffn_down.bias"] is not None:
                raise SystemExit("train_draft_gguf: output/FFN biases not supported")
            b.wo.weight.copy_(t(L["attn_output.weight"]))
            if b.q_norm is not None:
                b.q_norm.weight.copy_(t(L["attn_q_norm.weight"]))
                b.k_norm.weight.copy_(t(L["attn_k_norm.weight"]))
            b.ffn_norm.weight.copy_(t(L["ffn_norm.weight"]))
            b.w_gate.weight.copy_(t(L["ffn_gate.weight"]))
            b.w_up.weight.copy_(t(L["ffn_up.weight"]))
            b.w_down.weight.copy_(t(L["ffn_down.weight"]))
        m.out_norm.weight.copy_(t(W["output_norm.weight"]))
        if m.output is not None:
            m.output.weight.copy_(t(W["output.weight"]))
    if "rope_freqs.weight" in W:
        m.freq_factors = t(W["rope_freqs.weight"])
    if r.output_b is not None:
        raise SystemExit("train_draft_gguf: output.bias not supported")
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m, r


def default_system(reader):
    tmpl = _field(reader, "tokenizer.chat_template", "") or ""
    mm = re.search(r"<\|im_start\|>system(?:\\n|\n)([^<'\"]*)<\|im_end\|>", tmpl)
    return mm.group(1) if mm else None


def chatml(user, system):
    s = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return s + f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


@torch.no_grad()
def build_data(model, vocab, reader, gen_len, log, texts):
    system = default_system(reader)
    log(f"system prompt: {system!r}")
    prompts = [vocab.encode(chatml(p, system), special=True) for p in texts]
    eos = {int(vocab.eos_id)}
    for name in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
        if name in vocab.tokens:
            eos.add(vocab.tokens.index(name))
    gens = generate.greedy(model, prompts, sorted(eos), gen_len)
    data = []
    for p, g in zip(prompts, gens):
        ids = p + g
        _, f = model(torch.tensor([ids]), want_features=True)
        data.append({"ids": torch.tensor(ids), "n_prompt": len(p), "feats": f[0].clone()})
    return data, gens


def draft_ffn(tc, vd, max_mb):
    """The target's FFN size, or the largest multiple of 64 keeping the F16 file < max_mb."""
    H, Ht, nq, nkv = tc.hidden, tc.hidden, tc.n_head * tc.head_dim, tc.n_head_kv * tc.head_dim
    fixed = 3 * Ht * H + 2 * H * (nq + 2 * nkv) + nq * H + H * vd
    budget = (max_mb * 1e6 - 4 * vd - 64 * 1024) / 2   # F16 elements; d2t, norms and header
    f = int((budget - fixed) // (3 * H)) // 64 * 64
    return max(64, min(tc.ffn, f))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vd", type=int, default=2048)
    ap.add_argument("--gen-len", type=int, default=192)
    ap.add_argument("--ffn", type=int, default=0, help="draft FFN size (0: the target's, capped by --max-mb)")
    ap.add_argument("--max-mb", type=float, default=9.8)
    ap.add_argument("--minutes", type=float, default=4.0, help="training time budget")
    ap.add_argument("--max-epochs", type=int, default=200)
    ap.add_argument("--steps-ttt", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--n-eval", type=int, default=6, help="prompts held out for the accuracy report")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default="", help="optional .pt cache of the generated data")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t0 = time.time()
    log = lambda s: print(f"[{time.time() - t0:6.0f}s] {s}", flush=True)  # noqa: E731

    target, ref = load_target(a.model)
    tc = target.c
    vocab = GGUFVocab(a.model, reader=ref.reader)
    log(f"target {tc.arch} L={tc.n_layer} H={tc.hidden} heads={tc.n_head}/{tc.n_head_kv} hd={tc.head_dim} "
        f"ffn={tc.ffn} V={tc.vocab} tied={tc.tied}")
    data, gens = [], []
    if a.cache and os.path.exists(a.cache):   # the first len(data) prompts, same order
        data, gens = torch.load(a.cache, weights_only=False)
    if len(data) < len(PROMPTS):
        d2, g2 = build_data(target, vocab, ref.reader, a.gen_len, log, PROMPTS[len(data):])
        data, gens = data + d2, gens + g2
        if a.cache:
            torch.save((data, gens), a.cache)
    log(f"data: {len(data)} sequences, {sum(len(g) for g in gens)} generated tokens; sample: "
        f"{vocab.decode(gens[0][:40])!r}")
    del ref

    # draft vocabulary: the Vd most frequent tokens of the data (prompt + completion)
    cnt = torch.bincount(torch.cat([d["ids"] for d in data]), minlength=tc.vocab)
    vd = min(a.vd, tc.vocab)
    top = torch.sort(torch.topk(cnt, vd).indices).values          # draft id -> target id, ascending
    d2t = (top - torch.arange(vd)).to(torch.int32)
    t2d = torch.full((tc.vocab,), -100, dtype=torch.long)
    t2d[top] = torch.arange(vd)
    comp = torch.cat([d["ids"][d["n_prompt"]:] for d in data])
    log(f"draft vocab {vd}: covers {float((t2d[comp] >= 0).float().mean()):.4f} of generated tokens")

    ffn = a.ffn or draft_ffn(tc, vd, a.max_mb)
    dc = models.DraftConfig(hidden=tc.hidden, target_hidden=tc.hidden, n_head=tc.n_head, n_head_kv=tc.n_head_kv,
                            head_dim=tc.head_dim, ffn=ffn, vocab=tc.vocab, draft_vocab=vd, rope_base=10000.0,
                            eps=tc.eps, n_signals=0, target_layers=models.feature_layers(tc.n_layer))
    draft = models.Draft(dc)
    g = torch.Generator().manual_seed(a.seed + 17)
    H = tc.hidden
    with torch.no_grad():
        for n, p in draft.named_parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
        # fc starts as "take the deepest feature" (+ noise); lm_head from the target's rows
        draft.fc.weight[:, 2 * H:3 * H] += torch.eye(H)
        w_out = target.output.weight if target.output is not None else target.tok_embd.weight
        draft.output.weight.copy_(w_out[top])
        draft.out_norm.weight.copy_(target.out_norm.weight)
    emb = target.tok_embd
    log(f"draft: ffn {ffn}, {sum(p.numel() for p in draft.parameters()) / 1e6:.2f}M params")

    rng = random.Random(a.seed + 99)
    order = list(range(len(data)))
    rng.shuffle(order)
    ev_idx, tr_idx = order[:a.n_eval], order[a.n_eval:]

    def seq_loss(item, n_steps):
        ids, npr = item["ids"], item["n_prompt"]
        outs = draft_forward(draft, emb, ids, item["feats"], n_steps)
        loss, st = 0.0, []
        for k, lg in enumerate(outs, start=1):
            tgt = ids[k + 1: k + 1 + lg.shape[0]]
            j0 = max(0, npr - (k + 1))
            lg, tgt = lg[j0:], t2d[tgt[j0:]]
            if tgt.numel() == 0:
                continue
            loss = loss + 0.8 ** (k - 1) * F.cross_entropy(lg, tgt, ignore_index=-100)
            st.append((int((lg.argmax(-1) == tgt).sum()), tgt.numel()))
        return loss, st

    @torch.no_grad()
    def evaluate(idx, n_steps=3):
        draft.eval()
        acc = [[0, 0] for _ in range(n_steps)]
        for i in idx:
            _, st = seq_loss(data[i], n_steps)
            for k, (c, n) in enumerate(st):
                acc[k][0] += c
                acc[k][1] += n
        draft.train()
        return [round(c / max(n, 1), 4) for c, n in acc]

    log(f"before training: held-out step acc {evaluate(ev_idx)}")
    opt = torch.optim.AdamW(draft.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=a.wd)
    budget = a.minutes * 60
    t_train = time.time()
    step, ep, batch = 0, 0, 4
    best = (-1.0, 0, None)
    while ep < a.max_epochs and time.time() - t_train < budget:
        rng.shuffle(tr_idx)
        for b0 in range(0, len(tr_idx), batch):
            frac = min(1.0, (time.time() - t_train) / budget)
            lr = a.lr * min(1.0, (step + 1) / 20) * (1.0 - 0.9 * frac)
            for gp in opt.param_groups:
                gp["lr"] = lr
            opt.zero_grad(set_to_none=True)
            tot = 0.0
            for i in tr_idx[b0:b0 + batch]:
                loss, _ = seq_loss(data[i], a.steps_ttt)
                (loss / batch).backward()
                tot += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(draft.parameters(), 1.0)
            opt.step()
            step += 1
        ep += 1
        if ep % 3 == 0:
            ev = evaluate(ev_idx)
            log(f"epoch {ep} step {step} loss {tot / batch:.3f} held-out step acc {ev}")
            if ev[0] > best[0]:
                best = (ev[0], ep, {k: v.clone() for k, v in draft.state_dict().items()})
    if best[2] is not None and evaluate(ev_idx)[0] < best[0]:
        draft.load_state_dict(best[2])
        log(f"keeping the epoch {best[1]} weights (best held-out step-1 accuracy)")
    ev, tr = evaluate(ev_idx), evaluate(tr_idx[:8])
    log(f"trained {ep} epochs, {step} steps; held-out step acc {ev}, train step acc {tr}")

    gguf_export.write_draft(a.out, draft, gguf_export.Q.F16, d2t=d2t.numpy(),
                            name=os.path.basename(a.model).rsplit(".gguf", 1)[0] + "-eagle3", fc_f32=False)
    size = os.path.getsize(a.out)
    log(f"wrote {a.out}: {size / 1e6:.2f} MB")
    print(json.dumps({"out": a.out, "bytes": size, "ffn": ffn, "vd": vd, "epochs": ep,
                      "heldout_step_acc": ev, "train_step_acc": tr, "seconds": round(time.time() - t0)}))


if __name__ == "__main__":
    main()
