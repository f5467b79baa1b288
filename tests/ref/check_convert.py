#!/usr/bin/env python3
"""`specexit convert eagle3` on a checkpoint written by make_eagle3_checkpoint.py
with the exact AngelSlim tensor names: every converted tensor must carry the
checkpoint's values (sum, sum of squares, first values), d2t its offsets,
the converted draft must decode exactly like the target alone (greedy), and
a checkpoint missing a tensor must be refused with its name.

  check_convert.py SPECEXIT TARGET.gguf WORKDIR
Exit 77 without numpy/gguf."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

MAP = {
    "fc.weight": "fc.weight", "fc.bias": "fc.bias",
    "midlayer.hidden_norm.weight": "hidden_norm.weight", "midlayer.input_layernorm.weight": "input_norm.weight",
    "midlayer.self_attn.q_proj.weight": "attn_q.weight", "midlayer.self_attn.k_proj.weight": "attn_k.weight",
    "midlayer.self_attn.v_proj.weight": "attn_v.weight", "midlayer.self_attn.o_proj.weight": "attn_output.weight",
    "midlayer.post_attention_layernorm.weight": "ffn_norm.weight", "midlayer.mlp.gate_proj.weight": "ffn_gate.weight",
    "midlayer.mlp.up_proj.weight": "ffn_up.weight", "midlayer.mlp.down_proj.weight": "ffn_down.weight",
    "norm.weight": "output_norm.weight", "lm_head.weight": "output.weight", "embed_tokens.weight": "token_embd.weight",
}


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    exe, target, work = sys.argv[1:]
    try:
        import numpy as np
        from gguf import GGUFReader
    except ImportError as e:
        print(f"SKIP: {e}")
        return 77
    os.makedirs(work, exist_ok=True)
    ck = os.path.join(work, "ckpt")
    sums = os.path.join(work, "checksums.json")
    out = os.path.join(work, "converted.gguf")
    r = subprocess.run([sys.executable, os.path.join(HERE, "make_eagle3_checkpoint.py"), "--out", ck, "--hidden", "64", "--target-hidden", "64",
                        "--vocab", "277", "--draft-vocab", "200", "--heads", "4", "--kv-heads", "2", "--head-dim", "16", "--ffn", "96",
                        "--dtype", "bf16", "--fc-bias", "--seed", "5", "--checksums", sums], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL: make_eagle3_checkpoint: {r.stderr}")
        return 1
    r = subprocess.run([exe, "convert", "eagle3", ck, "-o", out, "--target", target], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL: convert: {r.stderr}")
        return 1
    print(r.stderr.strip())
    fails = 0
    want = json.load(open(sums))["tensors"]
    rd = GGUFReader(out)
    tensors = {t.name: t for t in rd.tensors}
    for src, dst in MAP.items():
        if src not in want:
            continue
        w = want[src]
        if dst not in tensors:
            print(f"FAIL: {dst} (from {src}) missing")
            fails += 1
            continue
        t = tensors[dst]
        a = np.asarray(t.data)
        if t.tensor_type.name == "BF16":  # raw bfloat16 bits
            a = (np.ascontiguousarray(a).view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        a = a.astype(np.float64).reshape(-1)
        shape_ok = list(reversed([int(x) for x in t.shape])) == w["shape"] or [int(x) for x in t.shape] == list(reversed(w["shape"]))
        ok = shape_ok and abs(a.sum() - w["sum"]) <= 1e-3 * (1 + abs(w["sum"])) and abs((a * a).sum() - w["sum_sq"]) <= 1e-3 * (1 + w["sum_sq"])
        ok = ok and np.allclose(a[:8], np.array(w["first"], dtype=np.float64), rtol=1e-3, atol=1e-6)
        print(f"{'ok  ' if ok else 'FAIL'} {src} -> {dst} {t.tensor_type.name} {list(t.shape)}")
        fails += not ok
    d2t = np.asarray(tensors["d2t"].data).astype(np.int64)
    ok = d2t.sum() == want["d2t"]["sum"] and list(d2t[:8]) == [int(x) for x in want["d2t"]["first"]]
    print(f"{'ok  ' if ok else 'FAIL'} d2t -> d2t (int32 offsets)")
    fails += not ok
    # greedy with the converted draft == greedy without one
    texts = []
    for extra in ([], ["-md", out, "--draft-topk", "3", "--draft-nodes", "10"]):
        r = subprocess.run([exe, "run", "-m", target, "-p", "hello there", "-n", "40", "--temp", "0", "--raw", "--ignore-eos", "--json"] + extra,
                           capture_output=True)
        if r.returncode != 0:
            print(f"FAIL: run {extra}: {r.stderr.decode(errors='replace')}")
            return 1
        texts.append(json.loads(r.stdout.decode("utf-8", errors="surrogateescape"))["text"])
    ok = texts[0] == texts[1]
    print(f"{'ok  ' if ok else 'FAIL'} greedy with the converted draft equals greedy without it")
    fails += not ok
    # a checkpoint without lm_head.weight is refused by name
    bad = os.path.join(work, "bad")
    r = subprocess.run([sys.executable, os.path.join(HERE, "make_eagle3_checkpoint.py"), "--out", bad, "--vocab", "277", "--draft-vocab", "277"],
                       capture_output=True, text=True)
    raw = open(os.path.join(bad, "model.safetensors"), "rb").read().replace(b"lm_head.weight", b"lm_head.weighx")
    open(os.path.join(bad, "model.safetensors"), "wb").write(raw)
    r = subprocess.run([exe, "convert", "eagle3", bad, "-o", os.path.join(work, "bad.gguf")], capture_output=True, text=True)
    ok = r.returncode == 1 and "missing tensor lm_head.weight" in r.stderr
    print(f"{'ok  ' if ok else 'FAIL'} a checkpoint without lm_head.weight is refused: {r.stderr.strip()}")
    fails += not ok
    print(f"{'FAILED' if fails else 'all conversion checks passed'}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
