#!/usr/bin/env python3
"""`specexit convert eagle3` on a checkpoint written by make_eagle3_checkpoint.py
with the exact AngelSlim tensor names: every converted tensor must carry the
checkpoint's values (sum, sum of squares, first values), d2t its offsets,
the converted draft must decode exactly like the target alone (greedy), and
a checkpoint missing a tensor must be refused with its name.

RoPE (--rope angelslim|config, see tools/cmd_convert.c): the base and
scaling keys each mode writes; llama3 rope_scaling ("rope_type" and "type"
keys) must give the divisors computed here independently (transformers'
_compute_llama3_parameters), linear its factor, an unknown type a refusal
naming it; the draft graph must use the divisors and the linear factor (a sampled run
with them differs from the same draft without them, while two runs with
them agree),
a draft with them still decodes exactly like the target alone, and a draft
whose rope_freqs.weight has the wrong shape is refused.

  check_convert.py SPECEXIT TARGET.gguf WORKDIR
Exit 77 without numpy/gguf."""
import json
import os
import struct
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
    fails += rope_checks(exe, target, work, np, GGUFReader)
    print(f"{'FAILED' if fails else 'all conversion checks passed'}")
    return 1 if fails else 0


def field(rd, key):
    """A GGUF key's value (str or number), None when absent; gguf-py old and new."""
    f = rd.fields.get(key)
    if f is None:
        return None
    if hasattr(f, "contents"):
        return f.contents()
    v = f.parts[f.data[0]]
    return bytes(v).decode() if f.types and f.types[0].name == "STRING" else v[0]


def llama3_divisors(np, base, hd, factor, low, high, orig):
    """Per-pair frequency divisors (1 / (scaled inv_freq / inv_freq)), as in
    transformers' _compute_llama3_parameters (float64 here)."""
    inv = 1.0 / base ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    wl = 2 * np.pi / inv
    scaled = np.where(wl > orig / low, inv / factor, inv)
    smooth = (orig / wl - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wl < orig / high) & ~(wl > orig / low)
    scaled = np.where(medium, smoothed, scaled)
    return inv / scaled


def rope_checks(exe, target, work, np, GGUFReader):
    fails = 0
    hd = 16
    shape = ["--hidden", "64", "--target-hidden", "64", "--vocab", "277", "--draft-vocab", "200", "--heads", "4", "--kv-heads", "2",
             "--head-dim", str(hd), "--ffn", "96", "--seed", "9"]

    def check(ok, what):
        nonlocal fails
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
        fails += not ok

    def make(name, theta, scaling):
        d = os.path.join(work, name)
        args = [sys.executable, os.path.join(HERE, "make_eagle3_checkpoint.py"), "--out", d, "--rope-theta", str(theta)] + shape
        if scaling is not None:
            args += ["--rope-scaling", json.dumps(scaling)]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"make_eagle3_checkpoint: {r.stderr}")
        return d

    def convert(ck, name, *extra):
        out = os.path.join(work, name + ".gguf")
        r = subprocess.run([exe, "convert", "eagle3", ck, "-o", out, "--target", target, *extra], capture_output=True, text=True)
        return out, r

    def rope_of(path):
        rd = GGUFReader(path)
        t = {x.name: x for x in rd.tensors}
        ff = np.asarray(t["rope_freqs.weight"].data, dtype=np.float64).reshape(-1) if "rope_freqs.weight" in t else None
        ftype = t["rope_freqs.weight"].tensor_type.name if ff is not None else None
        return rd, ff, ftype

    llama31 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    # Llama 3.1's rope_scaling with rope_theta 500000 (yuhuili/EAGLE3-LLaMA3.1-Instruct-8B's config)
    ck = make("ck_llama31", 500000.0, llama31)
    out, r = convert(ck, "llama31_config", "--rope", "config")
    check(r.returncode == 0, f"convert --rope config of a llama3 checkpoint: {r.stderr.strip()}")
    if r.returncode == 0:
        rd, ff, ftype = rope_of(out)
        want = llama3_divisors(np, 500000.0, hd, 8.0, 1.0, 4.0, 8192)
        check(field(rd, "eagle3.rope.freq_base") == 500000.0, f"--rope config: freq_base = rope_theta ({field(rd, 'eagle3.rope.freq_base')})")
        check(field(rd, "eagle3.rope.scaling.type") == "llama3" and field(rd, "eagle3.rope.scaling.factor") == 8.0
              and field(rd, "eagle3.rope.scaling.original_context_length") == 8192, "--rope config: llama3 scaling keys")
        ok = ff is not None and ftype == "F32" and ff.shape == (hd // 2,) and np.allclose(ff, want, rtol=1e-5, atol=0)
        check(ok, f"rope_freqs.weight = independent llama3 divisors {np.round(want, 4).tolist()} (got {None if ff is None else np.round(ff, 4).tolist()})")
        check(want.min() == 1.0 and want.max() == 8.0 and ((want > 1) & (want < 8)).any(), "the case covers kept, divided and blended pairs")
    # the default (angelslim): base 10000, llama3 not applied, no new keys
    out, r = convert(ck, "llama31_default")
    check(r.returncode == 0 and "llama3 rope_scaling not applied" in r.stderr, f"default --rope angelslim says it leaves llama3 out: {r.stderr.strip()}")
    if r.returncode == 0:
        rd, ff, _ = rope_of(out)
        check(field(rd, "eagle3.rope.freq_base") == 10000.0 and field(rd, "eagle3.rope.scaling.type") is None and ff is None,
              "default: freq_base 10000, no scaling keys, no rope_freqs.weight (as before)")
    out, r = convert(ck, "llama31_base", "--rope", "config", "--rope-base", "250000")
    if r.returncode == 0:
        rd, ff, _ = rope_of(out)
        ok = field(rd, "eagle3.rope.freq_base") == 250000.0 and ff is not None and np.allclose(ff, llama3_divisors(np, 250000.0, hd, 8.0, 1.0, 4.0, 8192), rtol=1e-5)
    check(r.returncode == 0 and ok, "--rope-base overrides rope_theta, divisors follow the base used")
    # linear ("type" key, the older spelling), applied in both modes
    ck_lin = make("ck_linear", 10000.0, {"type": "linear", "factor": 4.0})
    for mode in ("angelslim", "config"):
        out, r = convert(ck_lin, "linear_" + mode, "--rope", mode)
        ok = r.returncode == 0
        if ok:
            rd, ff, _ = rope_of(out)
            ok = field(rd, "eagle3.rope.scaling.type") == "linear" and field(rd, "eagle3.rope.scaling.factor") == 4.0 and ff is None
        check(ok, f"--rope {mode}: linear scaling recorded with its factor")
    # unknown types are refused by name, in both modes
    ck_yarn = make("ck_yarn", 1000000.0, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768})
    for mode in ("angelslim", "config"):
        out, r = convert(ck_yarn, "yarn_" + mode, "--rope", mode)
        check(r.returncode == 1 and "'yarn'" in r.stderr and not os.path.exists(out), f"--rope {mode}: yarn refused: {r.stderr.strip()}")

    # the draft graph uses the divisors: strong ones (factor 64 from wavelength 8 up), so the draft's
    # attention changes within 60 positions; same weights with and without them
    strong = {"type": "llama3", "factor": 64.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    with_ff, r1 = convert(make("ck_strong", 10000.0, strong), "strong", "--rope", "config")
    without, r2 = convert(make("ck_plain", 10000.0, None), "plain", "--rope", "config")
    if r1.returncode != 0 or r2.returncode != 0:
        check(False, f"convert strong/plain: {r1.stderr.strip()} {r2.stderr.strip()}")
        return fails

    def run(draft, temp):
        args = [exe, "run", "-m", target, "-p", "hello there", "-n", "48", "--temp", str(temp), "--seed", "7", "--raw", "--ignore-eos", "--json",
                "-md", draft, "--draft-topk", "3", "--draft-nodes", "10", "--draft-p-min", "0"] if draft else \
               [exe, "run", "-m", target, "-p", "hello there", "-n", "48", "--temp", str(temp), "--raw", "--ignore-eos", "--json"]
        r = subprocess.run(args, capture_output=True)
        if r.returncode != 0:
            raise RuntimeError(f"run {draft}: {r.stderr.decode(errors='replace')}")
        j = json.loads(r.stdout.decode("utf-8", errors="surrogateescape"))
        return j["text"], j.get("n_drafted"), j.get("n_accepted")

    a1, a2, b = run(with_ff, 1.0), run(with_ff, 1.0), run(without, 1.0)
    check(a1 == a2, "sampling with the llama3 draft is repeatable (same seed)")
    check(a1 != b, f"the draft graph uses rope_freqs.weight: sampled run differs without it (accepted {a1[2]} vs {b[2]} of {a1[1]} / {b[1]})")
    check(run(with_ff, 0)[0] == run(None, 0)[0], "greedy with the llama3 draft equals greedy without a draft")
    lin = os.path.join(work, "linear_config.gguf")  # same weights as plain, positions / 4
    check(os.path.exists(lin) and run(lin, 1.0) != b, "the draft graph applies linear scaling: sampled run differs without it")

    # a wrong-shaped rope_freqs.weight is refused when the draft loads: patch its ne0 8 -> 4
    raw = bytearray(open(with_ff, "rb").read())
    name = b"rope_freqs.weight"
    at = raw.find(name) + len(name)
    n_dims, ne0 = struct.unpack_from("<IQ", raw, at)
    bad = os.path.join(work, "bad_freqs.gguf")
    if n_dims == 1 and ne0 == hd // 2:
        struct.pack_into("<Q", raw, at + 4, hd // 4)
        open(bad, "wb").write(raw)
        r = subprocess.run([exe, "run", "-m", target, "-md", bad, "-p", "hi", "-n", "4", "--temp", "0"], capture_output=True, text=True)
        check(r.returncode != 0 and f"rope_freqs.weight must be f32 [head_dim/2 = {hd // 2}]" in r.stderr, f"wrong-shaped rope_freqs.weight refused: {r.stderr.strip()[-160:]}")
    else:
        check(False, f"rope_freqs.weight tensor info not found as expected ({n_dims}, {ne0})")
    return fails


if __name__ == "__main__":
    sys.exit(main())
