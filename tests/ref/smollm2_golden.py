#!/usr/bin/env python3
"""SmolLM2-135M-Instruct Q4_1 golden logits: C engine vs independent numpy reference.

Contract with the C test program: for prompt i (token ids fixed below, no BOS:
the GGUF says add_bos_token=false) it runs one forward pass over all ids and
writes the logits of the LAST position as n_vocab (49152) raw little-endian
float32 values to DIR/prompt{i}.f32.

  smollm2_golden.py MODEL.gguf --c-logits-dir DIR      compare (exit 0 pass, 1 fail)
  smollm2_golden.py MODEL.gguf --write-ref DIR         write DIR/prompt{i}.f32 + DIR/tokens.json
  smollm2_golden.py [MODEL.gguf] --ref-dir DIR --c-logits-dir DIR2
                                                       compare against a cached reference
  smollm2_golden.py MODEL.gguf --check-tokens          re-tokenise the prompts (needs `tokenizers`)

Exit codes: 0 pass, 1 fail, 2 bad usage / missing or malformed files,
77 model file absent (meson's "skip").

Metrics per prompt: max |c - r|, relative L2 error ||c - r|| / ||r||, the
same after removing each vector's mean (softmax ignores a uniform shift),
KL(softmax r || softmax c), argmax equality with the reference's top-1/top-2
margin, top-5 overlap. The gate: rel L2 <= --tol-rel and argmax equal (and
top-5 overlap >= --min-top5).

Tolerance (measured on a 2-core Zen 4 with llama-cpp-python 0.3.36):
  * The reference itself: float32 vs float64 evaluation differ by < 4e-6
    relative. llama.cpp (0.3.36 build) on the same weights dequantised to F32
    with an F32 KV cache matches it to 1e-6..4e-6 relative and gives the
    same 64-token greedy text: that validates the reference. A C engine's
    exact "reference mode" path (F32 activations, F32 KV) should therefore
    pass with --tol-rel 1e-4.
  * A fast path that quantises activations to Q8 blocks before the Q4_1 /
    Q8_0 dot products (as llama.cpp's CPU backend does), with F16 K/V, moves
    the final logits of this small model a lot: llama.cpp itself shows
    0.7%..11% relative L2 over 21 chat prompts (typically 1..3%), and its
    argmax differs from the exact one on 4 of 21 prompts whose top-1/top-2 margin
    is < 0.35 logits ("What is the capital of France?" flips: margin 0.08).
    The three prompts below were chosen for large margins (0.82, 1.78, 0.85
    logits vs max |diff| <= 0.7 in llama.cpp) and llama.cpp errors of 0.7..1.2%;
    --tol-rel 0.03 (the default) leaves ~2.5x headroom for a llama.cpp-like
    engine and still catches real bugs (a wrong RoPE mode, a missing norm,
    off-by-one positions give rel L2 of 0.3..1).
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
N_VOCAB = 49152
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

# ChatML with SmolLM2's default system prompt and the generation prompt:
# "<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
# ids from tests/ref/gguf_tokenize.py --chat, identical to llama.cpp's
# llama_tokenize(parse_special=true, add_bos=false).
_PREFIX = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28,
           7018, 411, 407, 19712, 8182, 2, 198, 1, 4093, 198]
_SUFFIX = [2, 198, 1, 520, 9531, 198]
PROMPTS = [
    {"user": "What is 2+2?",
     "ids": _PREFIX + [1780, 314, 216, 34, 27, 34, 47] + _SUFFIX},
    {"user": "What color is the sky on a clear day?",
     "ids": _PREFIX + [1780, 2380, 314, 260, 6376, 335, 253, 2437, 1194, 47] + _SUFFIX},
    {"user": "Can you recommend a good book?",
     "ids": _PREFIX + [7306, 346, 3730, 253, 1123, 1863, 47] + _SUFFIX},
]


def chat_text(user):
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def read_f32(path, n=N_VOCAB):
    try:
        a = np.fromfile(path, dtype="<f4")
    except OSError as e:
        raise SystemExit2(f"cannot read {path}: {e}")
    if a.size != n:
        raise SystemExit2(f"{path}: {a.size} float32 values, expected {n} ({n * 4} bytes)")
    return a.astype(np.float32)


class SystemExit2(Exception):
    pass


def compute_ref(model_path, quiet=False):
    sys.path.insert(0, HERE)
    from ref_forward import RefModel
    m = RefModel(model_path, verbose=not quiet)
    if m.n_vocab != N_VOCAB:
        raise SystemExit2(f"{model_path}: n_vocab {m.n_vocab}, expected {N_VOCAB}")
    return [m.forward(p["ids"])[0].astype(np.float32) for p in PROMPTS]


def check_tokens(model_path):
    sys.path.insert(0, HERE)
    from gguf_tokenize import GGUFVocab
    v = GGUFVocab(model_path)
    ok = True
    for i, p in enumerate(PROMPTS):
        ids = v.encode(chat_text(p["user"]), special=True)
        if ids != p["ids"]:
            ok = False
            print(f"prompt{i}: tokeniser gives {ids}, script has {p['ids']}")
    print("token ids:", "match" if ok else "MISMATCH")
    return ok


def write_ref(dirpath, model_path, refs):
    os.makedirs(dirpath, exist_ok=True)
    for i, r in enumerate(refs):
        r.astype("<f4").tofile(os.path.join(dirpath, f"prompt{i}.f32"))
    doc = {
        "model": os.path.basename(model_path),
        "model_sha256": sha256(model_path),
        "n_vocab": N_VOCAB,
        "format": "prompt{i}.f32: last-position logits, n_vocab little-endian float32",
        "prompts": [{"user": p["user"], "text": chat_text(p["user"]), "ids": p["ids"],
                     "argmax": int(np.argmax(r))} for p, r in zip(PROMPTS, refs)],
    }
    with open(os.path.join(dirpath, "tokens.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def load_ref(dirpath):
    path = os.path.join(dirpath, "tokens.json")
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit2(f"cannot read {path}: {e}")
    got = [p.get("ids") for p in doc.get("prompts", [])]
    if got != [p["ids"] for p in PROMPTS]:
        raise SystemExit2(f"{path}: token ids differ from this script's prompts (stale cache?)")
    return [read_f32(os.path.join(dirpath, f"prompt{i}.f32")) for i in range(len(PROMPTS))]


def log_softmax(x):
    x = x.astype(np.float64)
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


def compare(c, r):
    d = c.astype(np.float64) - r.astype(np.float64)
    rc = r - r.mean()
    cc = c - c.mean()
    lr, lc = log_softmax(r), log_softmax(c)
    top_r = np.argsort(-r, kind="stable")
    top_c = np.argsort(-c, kind="stable")
    return {
        "max_abs": float(np.abs(d).max()),
        "rel_l2": float(np.linalg.norm(d) / np.linalg.norm(r)),
        "rel_l2_centered": float(np.linalg.norm(cc - rc) / np.linalg.norm(rc)),
        "kl": float(np.sum(np.exp(lr) * (lr - lc))),
        "argmax_c": int(top_c[0]),
        "argmax_ref": int(top_r[0]),
        "ref_margin": float(r[top_r[0]] - r[top_r[1]]),
        "top5_overlap": len(set(top_c[:5].tolist()) & set(top_r[:5].tolist())),
        "finite": bool(np.all(np.isfinite(c))),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--c-logits-dir", help="directory with the C engine's prompt{i}.f32")
    ap.add_argument("--ref-dir", help="use a cached reference written by --write-ref instead of recomputing")
    ap.add_argument("--write-ref", metavar="DIR", help="write reference logits and token ids to DIR")
    ap.add_argument("--check-tokens", action="store_true", help="re-tokenise the prompts and compare ids")
    ap.add_argument("--tol-rel", type=float, default=0.03,
                    help="max relative L2 error per prompt (default 0.03: Q8-activation fast path; "
                         "use 1e-4 for an exact F32 path)")
    ap.add_argument("--min-top5", type=int, default=3, help="min top-5 overlap per prompt (default 3)")
    ap.add_argument("--allow-argmax-mismatch", action="store_true", help="report, but do not fail on, argmax differences")
    ap.add_argument("--json-report", help="write the metrics as JSON")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)

    if not (a.c_logits_dir or a.write_ref or a.check_tokens):
        ap.error("nothing to do: give --c-logits-dir, --write-ref and/or --check-tokens")
    need_model = a.write_ref or a.check_tokens or (a.c_logits_dir and not a.ref_dir)
    if need_model:
        if not a.model:
            ap.error("MODEL.gguf is required here")
        if not os.path.exists(a.model):
            print(f"SKIP: model {a.model} not found")
            return 77
        if not a.quiet:
            s = sha256(a.model)
            if s != MODEL_SHA256:
                print(f"warning: {a.model} sha256 {s} is not the file the prompts were checked with ({MODEL_SHA256})")

    try:
        rc = 0
        if a.check_tokens and not check_tokens(a.model):
            rc = 1
        refs = None
        if a.ref_dir:
            refs = load_ref(a.ref_dir)
        elif a.write_ref or a.c_logits_dir:
            refs = compute_ref(a.model, quiet=a.quiet)
        if a.write_ref:
            write_ref(a.write_ref, a.model, refs)
            print(f"wrote {len(refs)} reference logit files and tokens.json to {a.write_ref}")
        if a.c_logits_dir:
            cs = [read_f32(os.path.join(a.c_logits_dir, f"prompt{i}.f32")) for i in range(len(PROMPTS))]
            results = []
            fails = 0
            print(f"{'prompt':<40} {'max_abs':>8} {'rel_l2':>9} {'rel_cent':>9} {'KL':>9} "
                  f"{'argmax c/ref':>13} {'margin':>7} {'top5':>4}  verdict")
            for i, (p, c, r) in enumerate(zip(PROMPTS, cs, refs)):
                m = compare(c, r)
                why = []
                if not m["finite"]:
                    why.append("non-finite")
                if not m["rel_l2"] <= a.tol_rel:
                    why.append(f"rel_l2>{a.tol_rel:g}")
                if m["argmax_c"] != m["argmax_ref"] and not a.allow_argmax_mismatch:
                    why.append("argmax")
                if m["top5_overlap"] < a.min_top5:
                    why.append(f"top5<{a.min_top5}")
                m["prompt"] = p["user"]
                m["pass"] = not why
                m["why"] = why
                results.append(m)
                fails += bool(why)
                print(f"{i}:{p['user'][:38]:<38} {m['max_abs']:8.3g} {m['rel_l2']:9.2e} {m['rel_l2_centered']:9.2e} "
                      f"{m['kl']:9.2e} {m['argmax_c']:>6}/{m['argmax_ref']:<6} {m['ref_margin']:7.3f} "
                      f"{m['top5_overlap']:>4}  {'ok' if not why else 'FAIL ' + ','.join(why)}")
            print(f"{len(PROMPTS) - fails} passed, {fails} failed (tol-rel {a.tol_rel:g})")
            if a.json_report:
                with open(a.json_report, "w") as f:
                    json.dump({"tol_rel": a.tol_rel, "min_top5": a.min_top5, "results": results}, f, indent=1)
            if fails:
                rc = 1
        return rc
    except SystemExit2 as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
