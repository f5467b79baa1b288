#!/usr/bin/env python3
"""tests/ref/check_perplexity.py — `specexit perplexity` on a real model and
a real text, against an independent implementation:

    check_perplexity.py SPECEXIT SMOLLM2.gguf [BACKEND]

The text is the GPL-3 of Debian's base-files (/usr/share/common-licenses,
on every Debian system; the test skips with 77 where it is missing).
- SmolLM2-135M-Instruct Q4_1, -c 512, the first 4 chunks: llama.cpp
  (llama-cpp-python 0.3.36, logits_all, the same chunks and scored halves,
  f16 KV cache) gives PPL 18.2422 over the same 7639 tokens; ours must be
  within 2% (quantized-activation matmuls and f16 caches differ in the last
  bits; a wrong position, a missing BOS rule or a bad row moves it far more);
- the same words shuffled read as nonsense: PPL at least 3x higher;
- KL divergence in one run: zero between two identical configurations
  (f16 and f16), small for a q8_0 KV cache and larger for q4_0, and q4_0
  rotated (the default) well below q4_0 unrotated (SPECEXIT_KV_NO_ROTATE);
- with BACKEND (e.g. vulkan), that backend and the CPU reference in one run
  (A/B, one 256-token chunk): perplexities within 0.5%, the same most likely
  token at >= 98% of the positions and a mean KL divergence under 1e-3
  (lavapipe: 0.01%, 100% and 3e-7; the CPU's fast path, whose matmuls round
  activations to int8 as llama.cpp's do, is at a mean KLD of 0.003 and its
  perplexity up to 1.7% away on one chunk, too noisy a measure for it).
"""
import json
import os
import random
import subprocess
import sys
import tempfile

GPL = "/usr/share/common-licenses/GPL-3"
LLAMA_CPP_PPL, LLAMA_CPP_TOKENS = 18.2422, 7639


def ppl(exe, model, path, *extra, ctx=512, env=None):
    r = subprocess.run([exe, "perplexity", "-m", model, "-f", path, "-c", str(ctx), "-t", "2", "--json", *extra],
                       capture_output=True, text=True, timeout=1200, env=dict(os.environ, **(env or {})))
    if r.returncode != 0 and "no usable device" in r.stderr:
        print(f"SKIP: {r.stderr.strip()}")
        raise SystemExit(77)
    if r.returncode != 0:
        print(r.stderr[-2000:])
        raise SystemExit(f"FAIL: specexit perplexity {' '.join(extra)} exited {r.returncode}")
    return json.loads(r.stdout)


def main():
    exe, model = sys.argv[1:3]
    backend = sys.argv[3] if len(sys.argv) > 3 else None
    if not os.path.exists(GPL):
        print(f"SKIP: {GPL} is missing")
        return 77
    failed = 0

    def check(cond, what):
        nonlocal failed
        print(("ok   " if cond else "FAIL: ") + what, flush=True)
        failed += not cond

    if backend:
        o = ppl(exe, model, GPL, "--chunks", "1", "--backend", f"cpu-ref,{backend}", ctx=256)  # cpu-ref and lavapipe: ~8 tokens/s
        a, b = o["configs"]
        check(abs(b["ppl_ratio"] - 1) < 0.005 and b["same_top1"] >= 0.98 and b["mean_kld"] < 1e-3,
              f"{backend} against the CPU reference: PPL {b['ppl']:.4f} vs {a['ppl']:.4f}, same top 1 {100 * b['same_top1']:.1f}%, "
              f"mean KLD {b['mean_kld']:.2g}, mean |dlogprob| {b['mean_abs_dlogprob']:.4f}")
        return 1 if failed else 0
    o = ppl(exe, model, GPL, "--chunks", "4")
    c = o["configs"][0]
    check(o["n_tokens"] == LLAMA_CPP_TOKENS and o["n_chunks"] == 4 and c["tokens_scored"] == 4 * 255,
          f"{o['n_tokens']} tokens (llama.cpp's tokenizer: {LLAMA_CPP_TOKENS}), 4 chunks of 255 scored tokens")
    check(abs(c["ppl"] / LLAMA_CPP_PPL - 1) < 0.02 and c["ppl_stderr"] > 0,
          f"PPL {c['ppl']:.4f} +/- {c['ppl_stderr']:.4f}, llama.cpp {LLAMA_CPP_PPL} ({100 * (c['ppl'] / LLAMA_CPP_PPL - 1):+.2f}%)")
    # KL divergence between configurations of one run: none between identical ones, more for a coarser KV cache
    k = ppl(exe, model, GPL, "--chunks", "1", "-ctk", "f16,f16,q8_0,q4_0")["configs"]
    check(k[1]["mean_kld"] == 0 and k[1]["max_kld"] == 0 and k[1]["same_top1"] == 1 and k[1]["ppl"] == k[0]["ppl"],
          f"f16 against f16: KLD {k[1]['mean_kld']}, max {k[1]['max_kld']}, same top 1 {k[1]['same_top1']} (deterministic)")
    check(0 < k[2]["mean_kld"] < 0.05 and k[2]["mean_kld"] < k[3]["mean_kld"] and k[2]["p99_kld"] < k[3]["p99_kld"]
          and k[2]["median_kld"] <= k[2]["p99_kld"] <= k[2]["max_kld"] and k[3]["same_top1"] < k[2]["same_top1"] < 1,
          f"q8_0 cache: mean KLD {k[2]['mean_kld']:.4f} (99% {k[2]['p99_kld']:.4f}, same top 1 {100 * k[2]['same_top1']:.1f}%) "
          f"< q4_0: {k[3]['mean_kld']:.4f} (99% {k[3]['p99_kld']:.4f}, {100 * k[3]['same_top1']:.1f}%)")
    # the rotation of quantized caches (Walsh-Hadamard): q4_0 much nearer to f16 than unrotated
    u = ppl(exe, model, GPL, "--chunks", "1", "-ctk", "f16,q4_0", env={"SPECEXIT_KV_NO_ROTATE": "1"})["configs"][1]
    check(k[3]["mean_kld"] < 0.6 * u["mean_kld"] and k[3]["same_top1"] > u["same_top1"],
          f"rotated q4_0 cache: mean KLD {k[3]['mean_kld']:.4f}, same top 1 {100 * k[3]['same_top1']:.1f}%; "
          f"unrotated {u['mean_kld']:.4f}, {100 * u['same_top1']:.1f}%")
    words = open(GPL, encoding="utf-8").read().split()
    random.Random(0).shuffle(words)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(" ".join(words))
    try:
        s = ppl(exe, model, f.name, "--chunks", "2")["configs"][0]
    finally:
        os.unlink(f.name)
    check(s["ppl"] > 3 * c["ppl"], f"shuffled words: PPL {s['ppl']:.1f}, against {c['ppl']:.1f} for the text")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
