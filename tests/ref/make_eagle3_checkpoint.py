#!/usr/bin/env python3
"""Writes a small random AngelSlim / EAGLE-3 draft checkpoint (config.json +
model.safetensors), to test the C converter (`specexit convert eagle3`).

Tensor names, shapes (torch [out, in] order) and dtypes as in
shared/design/SPECEXIT.md:
  fc.weight                          [H + 3, 3*Ht]   (3 SpecExit signal rows; --signals 0: [H, 3*Ht])
  fc.bias                            [H + 3]         only with --fc-bias
  midlayer.hidden_norm.weight        [H]
  midlayer.input_layernorm.weight    [H]
  midlayer.self_attn.q_proj.weight   [nh*hd, 2H]
  midlayer.self_attn.k_proj.weight   [nkv*hd, 2H]
  midlayer.self_attn.v_proj.weight   [nkv*hd, 2H]
  midlayer.self_attn.o_proj.weight   [H, nh*hd]
  midlayer.post_attention_layernorm.weight [H]
  midlayer.mlp.gate_proj.weight      [I, H]
  midlayer.mlp.up_proj.weight        [I, H]
  midlayer.mlp.down_proj.weight      [H, I]
  norm.weight                        [H]
  lm_head.weight                     [Vd, H]
  d2t                                int64 [Vd]   target_id = draft_id + d2t[draft_id]
  t2d                                bool  [V]    true for target ids in the draft vocab
  embed_tokens.weight                [V, H]       only with --embed
Weights are float32 by default (--dtype bf16 / f16 for the others); the
draft vocabulary is a random sorted subset of the target's that always holds
ids 0..min(Vd, 8)-1.

Only numpy is needed: the safetensors file is written by hand (8-byte
little-endian header length, JSON header with dtype/shape/data_offsets,
then the raw little-endian data in header order). --checksums FILE writes,
per tensor, dtype, shape, the sum and the sum of squares of its values (as
float64, after conversion to float for bf16/f16) and the first 8 values, so
a C test can compare what its converter wrote.

Usage:
  make_eagle3_checkpoint.py --out DIR [--hidden 64] [--target-hidden 64]
      [--vocab 512] [--draft-vocab 128] [--heads 4] [--kv-heads 2]
      [--head-dim H/heads] [--ffn 128] [--signals 3] [--embed] [--fc-bias]
      [--dtype f32|bf16|f16] [--seed 1] [--checksums FILE]
      [--rope-theta 1e6] [--rope-scaling JSON]
--rope-scaling writes config.json's rope_scaling as given, e.g.
'{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
"high_freq_factor": 4.0, "original_max_position_embeddings": 8192}'
(default null); the weights depend only on the seed and shapes.
"""

import argparse
import json
import os
import struct

import numpy as np

DTYPES = {"f32": "F32", "f16": "F16", "bf16": "BF16"}


def to_bf16_bits(a):
    """float32 -> bfloat16 bit patterns (round to nearest even) as uint16."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    r = ((u >> 16) & 1) + 0x7FFF
    return ((u + r) >> 16).astype(np.uint16)


def bf16_bits_to_f32(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, st_dtype, shape, raw bytes) in file order."""
    header, off = {}, 0
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, raw in tensors:
            f.write(raw)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--target-hidden", type=int, default=None)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--draft-vocab", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=None)
    ap.add_argument("--ffn", type=int, default=128)
    ap.add_argument("--signals", type=int, default=3, choices=(0, 3))
    ap.add_argument("--embed", action="store_true", help="also write embed_tokens.weight")
    ap.add_argument("--fc-bias", action="store_true", help="also write fc.bias (config bias: true)")
    ap.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    ap.add_argument("--rope-theta", type=float, default=1000000.0)
    ap.add_argument("--rope-scaling", type=json.loads, default=None, help="config.json's rope_scaling, as JSON")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--checksums", help="write a JSON of per-tensor checksums here")
    a = ap.parse_args(argv)
    H = a.hidden
    Ht = a.target_hidden or H
    V, Vd = a.vocab, a.draft_vocab
    hd = a.head_dim or H // a.heads
    nh, nkv, I = a.heads, a.kv_heads, a.ffn
    if Vd > V or Vd < 1:
        ap.error("--draft-vocab must be in 1..--vocab")
    if nh % nkv:
        ap.error("--heads must be a multiple of --kv-heads")
    rng = np.random.default_rng(a.seed)

    def w(*shape, scale=0.05):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    # draft vocabulary: ids 0..k-1 plus a random sorted subset of the rest
    k = min(Vd, 8)
    rest = np.sort(rng.choice(np.arange(k, V), size=Vd - k, replace=False)) if Vd > k else np.zeros(0, np.int64)
    draft_ids = np.concatenate([np.arange(k), rest]).astype(np.int64)
    d2t = (draft_ids - np.arange(Vd)).astype(np.int64)
    t2d = np.zeros(V, dtype=bool)
    t2d[draft_ids] = True

    T = []  # (name, array float32 or exact-typed)
    T.append(("fc.weight", w(H + a.signals, 3 * Ht)))
    if a.fc_bias:
        T.append(("fc.bias", w(H + a.signals)))
    T.append(("midlayer.hidden_norm.weight", norm(H)))
    T.append(("midlayer.input_layernorm.weight", norm(H)))
    T.append(("midlayer.self_attn.q_proj.weight", w(nh * hd, 2 * H)))
    T.append(("midlayer.self_attn.k_proj.weight", w(nkv * hd, 2 * H)))
    T.append(("midlayer.self_attn.v_proj.weight", w(nkv * hd, 2 * H)))
    T.append(("midlayer.self_attn.o_proj.weight", w(H, nh * hd)))
    T.append(("midlayer.post_attention_layernorm.weight", norm(H)))
    T.append(("midlayer.mlp.gate_proj.weight", w(I, H)))
    T.append(("midlayer.mlp.up_proj.weight", w(I, H)))
    T.append(("midlayer.mlp.down_proj.weight", w(H, I)))
    T.append(("norm.weight", norm(H)))
    T.append(("lm_head.weight", w(Vd, H)))
    if a.embed:
        T.append(("embed_tokens.weight", w(V, H, scale=0.5)))
    T.append(("d2t", d2t))
    T.append(("t2d", t2d))

    os.makedirs(a.out, exist_ok=True)
    st, sums = [], {}
    for name, arr in T:
        if arr.dtype == np.int64:
            dt, raw, vals = "I64", arr.astype("<i8").tobytes(), arr.astype(np.float64)
        elif arr.dtype == np.bool_:
            dt, raw, vals = "BOOL", arr.astype(np.uint8).tobytes(), arr.astype(np.float64)
        elif a.dtype == "bf16":
            bits = to_bf16_bits(arr)
            dt, raw, vals = "BF16", bits.astype("<u2").tobytes(), bf16_bits_to_f32(bits).astype(np.float64)
        elif a.dtype == "f16":
            h16 = arr.astype("<f2")
            dt, raw, vals = "F16", h16.tobytes(), h16.astype(np.float64)
        else:
            dt, raw, vals = "F32", arr.astype("<f4").tobytes(), arr.astype(np.float64)
        st.append((name, dt, arr.shape, raw))
        flat = vals.reshape(-1)
        sums[name] = {"dtype": dt, "shape": list(arr.shape), "sum": float(flat.sum()),
                      "sum_sq": float((flat * flat).sum()), "first": [float(x) for x in flat[:8]]}
    write_safetensors(os.path.join(a.out, "model.safetensors"), st, {"format": "pt"})

    config = {
        "architectures": ["LlamaForCausalLMEagle3"],
        "model_type": "llama",
        "hidden_size": H,
        "intermediate_size": I,
        "num_attention_heads": nh,
        "num_key_value_heads": nkv,
        "head_dim": hd,
        "num_hidden_layers": 1,
        "rms_norm_eps": 1e-6,
        "rope_theta": a.rope_theta,
        "rope_scaling": a.rope_scaling,
        "max_position_embeddings": 4096,
        "vocab_size": V,
        "draft_vocab_size": Vd,
        "target_hidden_size": Ht,
        "bias": bool(a.fc_bias),
        "tie_word_embeddings": False,
        "hidden_act": "silu",
        "torch_dtype": {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[a.dtype],
        "num_signals": a.signals,
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if a.checksums:
        with open(a.checksums, "w") as f:
            json.dump({"config": config, "tensors": sums}, f, indent=1)
    print(f"wrote {a.out}/model.safetensors ({len(st)} tensors) and config.json")


if __name__ == "__main__":
    main()
