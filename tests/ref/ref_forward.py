#!/usr/bin/env python3
"""Independent numpy reference forward pass for llama / qwen2 / qwen3 / qwen3moe GGUF models.

Reads a GGUF with gguf.GGUFReader, dequantises every tensor once with
gguf.quants.dequantize and runs a causal forward pass in float32 (or float64
with --f64). Conventions follow llama.cpp (checked against the llama.cpp
sources vendored in llama-cpp-python 0.3.36: src/models/llama.cpp,
src/models/qwen2.cpp, src/models/qwen3.cpp, src/llama-graph.cpp build_qkv,
src/llama-model.cpp llama_model_rope_type, ggml/src/ggml-cpu/ops.cpp rope):

  * Tensors: GGUF shape [n_in, n_out] = numpy (n_out, n_in); y = x @ W.T.
    token_embd [n_embd, n_vocab]; output.weight absent => tied to token_embd.
  * RMSNorm: x / sqrt(mean(x^2) + eps) * w, eps = {arch}.attention.layer_norm_rms_epsilon.
  * Q/K/V: separate attn_q/k/v or fused attn_qkv; optional biases (qwen2
    has them); qwen3: attn_q_norm / attn_k_norm = RMSNorm over head_dim per
    head (same eps), applied BEFORE RoPE.
  * RoPE: theta_i = pos * base^(-2i/n_rot) * freq_scale / freq_factor_i,
    i < n_rot/2; dims past n_rot untouched.
    llama: NORMAL mode (rotate adjacent pairs (2i, 2i+1)) - the HF->GGUF
    converter permutes q/k rows for it. qwen2/qwen3: NEOX mode (pairs
    (i, i + n_rot/2)).  rope_freqs.weight (llama3 factors) and linear
    {arch}.rope.scaling.factor are honoured; YaRN is not (refused).
  * Attention: scale 1/sqrt(head_dim) (llama: {arch}.attention.scale if set),
    causal, softmax in float64, GQA: q head h uses kv head h // (n_head/n_head_kv)
    (ggml mul_mat broadcast).
  * FFN: down(silu(gate(x)) * up(x)), optional biases; output.bias (qwen2).
  * qwen3moe (Hugging Face Qwen3MoeSparseMoeBlock, llama.cpp build_moe_ffn
    with softmax gating and norm_w): router probabilities = softmax of
    ffn_gate_inp(x) over all experts (float64 here); the k =
    {arch}.expert_used_count largest (ties: lower expert index) renormalised
    to sum 1; output = sum of weight * expert FFN, each expert
    down_e(silu(gate_e(x)) * up_e(x)) from the [n_expert, ...] stacks
    ffn_{gate,up,down}_exps.
  * Residual stream "entering layer L" = llama.cpp's t_layer_inp[L]
    (L = 0 is the embedding). L = n_layer gives the final pre-norm stream.

Validation (by hand, with llama-cpp-python 0.3.36 built from source):
  * SmolLM2-135M-Instruct Q4_1 dequantised to an all-F32 GGUF, llama.cpp with
    an F32 KV cache: final logits within 1e-6..4e-6 relative L2 of this
    script for 4 chat prompts, identical 64-token greedy continuations.
  * Random-weight llama / qwen2 (q/k/v biases) / qwen3 (q/k norms,
    key_length 32 != n_embd/n_head) GGUFs: all 40 positions' logits within
    2e-6 relative of llama.cpp; flipping the RoPE mode gives ~1 relative.
  * float32 vs --f64: < 4e-6 relative.

--sim-llamacpp imitates llama.cpp's CPU rounding (activations rounded to
Q8 blocks of 32 before quantised matmuls, F16 q/K/V and attention weights);
it is a rough model of a fast path, not a bit-exact one.

CLI:
  ref_forward.py MODEL.gguf --tokens 1,2,3 [--out logits.npy|logits.f32]
      [--json out.json] [--all-positions] [--hidden-layers 2,15,27]
      [--hidden-out hidden.npz] [--greedy N] [--f64]
  .f32 output = raw little-endian float32 (row-major (T, n_vocab) with
  --all-positions, else (n_vocab,)).
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

SUPPORTED_ARCHS = ("llama", "qwen2", "qwen3", "qwen3moe")


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    v = f.contents()
    return v


class RefModel:
    def __init__(self, path, dtype=np.float32, verbose=False, sim_llamacpp=False):
        import gguf
        from gguf.quants import dequantize
        t0 = time.time()
        self.path = path
        self.dtype = dtype
        r = gguf.GGUFReader(path)
        self.reader = r
        arch = _field(r, "general.architecture")
        if arch not in SUPPORTED_ARCHS:
            raise SystemExit(f"ref_forward: architecture {arch!r} not supported ({', '.join(SUPPORTED_ARCHS)})")
        self.arch = arch

        def kv(name, default=None):
            return _field(r, f"{arch}.{name}", default)

        self.n_embd = int(kv("embedding_length"))
        self.n_layer = int(kv("block_count"))
        self.n_head = int(kv("attention.head_count"))
        self.n_head_kv = int(kv("attention.head_count_kv", self.n_head))
        self.eps = float(kv("attention.layer_norm_rms_epsilon"))
        self.head_dim_k = int(kv("attention.key_length", self.n_embd // self.n_head))
        self.head_dim_v = int(kv("attention.value_length", self.head_dim_k))
        if self.head_dim_k != self.head_dim_v:
            raise SystemExit("ref_forward: key_length != value_length not supported")
        self.head_dim = self.head_dim_k
        self.n_rot = int(kv("rope.dimension_count", self.head_dim))
        self.freq_base = float(kv("rope.freq_base", 10000.0))
        scaling_type = kv("rope.scaling.type", "none")
        if scaling_type not in ("none", "linear"):
            raise SystemExit(f"ref_forward: rope scaling {scaling_type!r} not supported")
        factor = float(kv("rope.scaling.factor", 0.0) or 0.0)
        self.freq_scale = 1.0 / factor if (scaling_type == "linear" and factor > 0) else 1.0
        attn_scale = float(kv("attention.scale", 0.0) or 0.0) if arch == "llama" else 0.0
        self.kq_scale = attn_scale if attn_scale != 0.0 else 1.0 / math.sqrt(self.head_dim)
        self.rope_neox = arch in ("qwen2", "qwen3", "qwen3moe")
        self.n_expert_used = int(kv("expert_used_count", 0) or 0)

        self.sim = sim_llamacpp
        self._quantized = set()   # id() of weights stored quantised in the file
        W = {}
        for t in r.tensors:
            a = dequantize(t.data, t.tensor_type)
            # numpy shape is the GGUF shape reversed
            a = np.asarray(a).reshape([int(d) for d in reversed(t.shape)])
            W[t.name] = np.ascontiguousarray(a, dtype=dtype)
            if t.tensor_type.name not in ("F32", "F16", "BF16", "F64"):
                self._quantized.add(id(W[t.name]))
        self.W = W
        self.tok_embd = W["token_embd.weight"]
        self.n_vocab = self.tok_embd.shape[0]
        self.output = W.get("output.weight", self.tok_embd)
        self.output_b = W.get("output.bias")
        self.output_norm = W["output_norm.weight"]
        ff = W.get("rope_freqs.weight")
        i = np.arange(self.n_rot // 2, dtype=np.float64)
        inv = self.freq_base ** (-2.0 * i / self.n_rot) * self.freq_scale
        if ff is not None:
            inv = inv / ff.astype(np.float64)
        self.inv_freq = inv
        self.layers = []
        for il in range(self.n_layer):
            g = lambda n, il=il: W.get(f"blk.{il}.{n}")
            L = {k: g(k) for k in (
                "attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_qkv.weight",
                "attn_q.bias", "attn_k.bias", "attn_v.bias", "attn_qkv.bias",
                "attn_output.weight", "attn_output.bias", "attn_q_norm.weight", "attn_k_norm.weight",
                "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight",
                "ffn_gate.bias", "ffn_up.bias", "ffn_down.bias",
                "ffn_gate_inp.weight", "ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight")}
            if arch == "qwen3moe":
                if L["ffn_gate_inp.weight"] is None or L["ffn_down_exps.weight"] is None or self.n_expert_used < 1:
                    raise SystemExit("ref_forward: qwen3moe layer without router / experts / expert_used_count")
            elif L["ffn_gate.weight"] is None:
                raise SystemExit("ref_forward: gate-less FFN not supported")
            if arch in ("qwen3", "qwen3moe") and (L["attn_q_norm.weight"] is None or L["attn_k_norm.weight"] is None):
                raise SystemExit("ref_forward: qwen3 without attn_q_norm/attn_k_norm")
            self.layers.append(L)
        if verbose:
            print(f"[ref] loaded {os.path.basename(path)} arch={arch} n_layer={self.n_layer} n_embd={self.n_embd} "
                  f"heads={self.n_head}/{self.n_head_kv} head_dim={self.head_dim} n_rot={self.n_rot} "
                  f"base={self.freq_base} rope={'neox' if self.rope_neox else 'normal'} vocab={self.n_vocab} "
                  f"tied={'output.weight' not in W} in {time.time() - t0:.1f}s", file=sys.stderr)

    # ---- pieces -------------------------------------------------------
    def rmsnorm(self, x, w):
        x64 = x.astype(np.float64)
        ms = np.mean(x64 * x64, axis=-1, keepdims=True)
        return (x64 / np.sqrt(ms + self.eps)).astype(self.dtype) * w

    def rope(self, x, pos):
        """x: (T, H, D); pos: (T,) absolute positions."""
        ang = pos.astype(np.float64)[:, None] * self.inv_freq[None, :]       # (T, n_rot/2)
        cos = np.cos(ang).astype(self.dtype)[:, None, :]
        sin = np.sin(ang).astype(self.dtype)[:, None, :]
        out = x.copy()
        n = self.n_rot
        if self.rope_neox:
            x0 = x[..., : n // 2]
            x1 = x[..., n // 2: n]
            out[..., : n // 2] = x0 * cos - x1 * sin
            out[..., n // 2: n] = x0 * sin + x1 * cos
        else:
            x0 = x[..., 0:n:2]
            x1 = x[..., 1:n:2]
            out[..., 0:n:2] = x0 * cos - x1 * sin
            out[..., 1:n:2] = x0 * sin + x1 * cos
        return out

    @staticmethod
    def _q8(x):
        """Round-trip through Q8_0-style blocks of 32 (d = amax/127), as
        llama.cpp's CPU backend does to activations before a quantised dot."""
        sh = x.shape
        xb = x.reshape(-1, 32).astype(np.float32)
        d = np.abs(xb).max(axis=1, keepdims=True) / 127.0
        d16 = d.astype(np.float16).astype(np.float32)
        inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0)
        q = np.round(xb * inv)
        return (q * d16).reshape(sh)

    @staticmethod
    def _f16(x):
        return x.astype(np.float16).astype(x.dtype)

    def _lin(self, x, w, b=None):
        if self.sim and id(w) in self._quantized and x.shape[-1] % 32 == 0:
            x = self._q8(x).astype(self.dtype)
        y = x @ w.T
        if b is not None:
            y = y + b
        return y

    # ---- forward --------------------------------------------------------
    def _moe(self, h, L):
        """Routed experts for rows h (T, n_embd), see the module docstring."""
        logits = (h.astype(np.float64) @ L["ffn_gate_inp.weight"].astype(np.float64).T)    # (T, E)
        p = np.exp(logits - logits.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        k = self.n_expert_used
        out = np.zeros_like(h)
        for t in range(h.shape[0]):
            sel = np.argsort(-p[t], kind="stable")[:k]
            w = p[t, sel] / p[t, sel].sum()
            for e, we in zip(sel, w):
                ht = h[t:t + 1]
                g = (ht @ L["ffn_gate_exps.weight"][e].T).astype(np.float64)
                u = ht @ L["ffn_up_exps.weight"][e].T
                a = (g / (1.0 + np.exp(-g))).astype(self.dtype) * u
                out[t] += (we * (a @ L["ffn_down_exps.weight"][e].T)[0]).astype(self.dtype)
        return out

    def new_cache(self):
        return {"k": [None] * self.n_layer, "v": [None] * self.n_layer, "n": 0}

    def forward(self, tokens, cache=None, hidden_layers=(), all_positions=False):
        """Run tokens (appended after cache contents, if any).

        Returns (logits, hidden) where logits is (T, n_vocab) if all_positions
        else (n_vocab,) for the last token, hidden = {L: (T, n_embd)}.
        """
        tokens = np.asarray(tokens, dtype=np.int64)
        T = len(tokens)
        if T == 0:
            raise ValueError("no tokens")
        if np.any(tokens < 0) or np.any(tokens >= self.n_vocab):
            raise ValueError(f"token id out of range [0, {self.n_vocab})")
        p0 = cache["n"] if cache is not None else 0
        pos = np.arange(p0, p0 + T)
        H, Hkv, D = self.n_head, self.n_head_kv, self.head_dim
        grp = H // Hkv
        hidden = {}
        want = set(int(h) for h in hidden_layers)
        x = self.tok_embd[tokens].astype(self.dtype)
        for il, L in enumerate(self.layers):
            if il in want:
                hidden[il] = x.copy()
            h = self.rmsnorm(x, L["attn_norm.weight"])
            if L["attn_qkv.weight"] is not None:
                qkv = self._lin(h, L["attn_qkv.weight"], L["attn_qkv.bias"])
                if L["attn_qkv.bias"] is None and L["attn_q.bias"] is not None:
                    qkv = qkv + np.concatenate([L["attn_q.bias"], L["attn_k.bias"], L["attn_v.bias"]])
                q = qkv[:, : H * D]
                k = qkv[:, H * D: H * D + Hkv * D]
                v = qkv[:, H * D + Hkv * D:]
            else:
                q = self._lin(h, L["attn_q.weight"], L["attn_q.bias"])
                k = self._lin(h, L["attn_k.weight"], L["attn_k.bias"])
                v = self._lin(h, L["attn_v.weight"], L["attn_v.bias"])
            q = q.reshape(T, H, D)
            k = k.reshape(T, Hkv, D)
            v = v.reshape(T, Hkv, D)
            if L["attn_q_norm.weight"] is not None:
                q = self.rmsnorm(q, L["attn_q_norm.weight"])
            if L["attn_k_norm.weight"] is not None:
                k = self.rmsnorm(k, L["attn_k_norm.weight"])
            q = self.rope(q, pos)
            k = self.rope(k, pos)
            if self.sim:   # F16 KV cache, F16 q and probabilities in the KQ / KQV products
                q, k, v = self._f16(q), self._f16(k), self._f16(v)
            if cache is not None:
                if cache["k"][il] is not None:
                    k = np.concatenate([cache["k"][il], k], axis=0)
                    v = np.concatenate([cache["v"][il], v], axis=0)
                cache["k"][il] = k
                cache["v"][il] = v
            S = k.shape[0]  # total keys
            # scores (H, T, S)
            qh = q.transpose(1, 0, 2).reshape(Hkv, grp, T, D)
            kh = k.transpose(1, 0, 2)                      # (Hkv, S, D)
            vh = v.transpose(1, 0, 2)                      # (Hkv, S, D)
            sc = np.einsum("gatd,gsd->gats", qh.astype(np.float64), kh.astype(np.float64)) * self.kq_scale
            kpos = np.arange(S)
            mask = kpos[None, :] > pos[:, None]            # (T, S)
            sc = np.where(mask[None, None], -np.inf, sc)
            sc = sc - sc.max(axis=-1, keepdims=True)
            pr = np.exp(sc)
            pr /= pr.sum(axis=-1, keepdims=True)
            if self.sim:
                pr = pr.astype(np.float16).astype(np.float64)
            o = np.einsum("gats,gsd->gatd", pr, vh.astype(np.float64))   # (Hkv, grp, T, D)
            o = o.reshape(H, T, D).transpose(1, 0, 2).reshape(T, H * D).astype(self.dtype)
            o = self._lin(o, L["attn_output.weight"], L["attn_output.bias"])
            x = x + o
            h = self.rmsnorm(x, L["ffn_norm.weight"])
            if L.get("ffn_gate_inp.weight") is not None:
                x = x + self._moe(h, L)
                continue
            gt = self._lin(h, L["ffn_gate.weight"], L["ffn_gate.bias"])
            up = self._lin(h, L["ffn_up.weight"], L["ffn_up.bias"])
            gt64 = gt.astype(np.float64)
            act = (gt64 / (1.0 + np.exp(-gt64))).astype(self.dtype) * up
            x = x + self._lin(act, L["ffn_down.weight"], L["ffn_down.bias"])
        if self.n_layer in want:
            hidden[self.n_layer] = x.copy()
        if cache is not None:
            cache["n"] = p0 + T
        xo = x if all_positions else x[-1:]
        xo = self.rmsnorm(xo, self.output_norm)
        logits = self._lin(xo, self.output, self.output_b)
        if not all_positions:
            logits = logits[0]
        return logits, hidden

    def greedy(self, tokens, n, stop=()):
        cache = self.new_cache()
        logits, _ = self.forward(tokens, cache)
        out = []
        for _ in range(n):
            t = int(np.argmax(logits))
            out.append(t)
            if t in stop:
                break
            logits, _ = self.forward([t], cache)
        return out


def parse_ids(s):
    return [int(x) for x in s.replace(" ", "").split(",") if x != ""]


def save_array(path, a):
    a = np.asarray(a, dtype=np.float32)
    if path.endswith(".f32"):
        a.astype("<f4").tofile(path)
    else:
        np.save(path, a)


def topk(v, k):
    idx = np.argsort(-v, kind="stable")[:k]
    return [(int(i), float(v[i])) for i in idx]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--tokens", help="comma-separated token ids")
    ap.add_argument("--text", help="text to tokenise with gguf_tokenize (control tokens parsed)")
    ap.add_argument("--out", help="write logits: .npy, or .f32 = raw little-endian float32")
    ap.add_argument("--json", help="write tokens, logits, top-10 (and hidden states) as JSON")
    ap.add_argument("--all-positions", action="store_true", help="logits for every position, not only the last")
    ap.add_argument("--hidden-layers", default="", help="comma-separated layer indices: dump residual stream entering them")
    ap.add_argument("--hidden-out", help="hidden states .npz (default: next to --out, or only in --json)")
    ap.add_argument("--greedy", type=int, default=0, metavar="N", help="also greedy-decode N tokens and print the text")
    ap.add_argument("--f64", action="store_true", help="compute in float64 throughout")
    ap.add_argument("--sim-llamacpp", action="store_true",
                    help="imitate llama.cpp CPU rounding (Q8 activations into quantised matmuls, F16 KV/q/probs) "
                         "to estimate how far a fast-path engine may legitimately drift")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)

    model = RefModel(a.model, dtype=np.float64 if a.f64 else np.float32, verbose=not a.quiet,
                     sim_llamacpp=a.sim_llamacpp)
    vocab = None
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        from gguf_tokenize import GGUFVocab
        vocab = GGUFVocab(a.model, reader=model.reader)
    except (SystemExit, ImportError, TypeError, KeyError) as e:
        if a.text is not None or a.greedy:
            raise SystemExit(f"ref_forward: no usable vocabulary for --text/--greedy: {e}")
    if a.tokens is not None:
        ids = parse_ids(a.tokens)
    elif a.text is not None:
        ids = vocab.encode(a.text, special=True)
    else:
        ap.error("--tokens or --text is required")
    hl = parse_ids(a.hidden_layers) if a.hidden_layers else []
    for h in hl:
        if not 0 <= h <= model.n_layer:
            ap.error(f"--hidden-layers: {h} outside 0..{model.n_layer}")

    t0 = time.time()
    logits, hidden = model.forward(ids, hidden_layers=hl, all_positions=a.all_positions)
    dt = time.time() - t0
    last = logits[-1] if a.all_positions else logits
    if not a.quiet:
        print(f"[ref] forward of {len(ids)} tokens in {dt:.2f}s", file=sys.stderr)
    print(f"tokens: {len(ids)}  argmax: {int(np.argmax(last))}")
    for i, v in topk(last, 10):
        tok = repr(vocab.decode([i])) if vocab is not None else ""
        print(f"  {i:7d} {v:12.6f} {tok}")

    if a.out:
        save_array(a.out, logits)
    if hl:
        hpath = a.hidden_out
        if hpath is None and a.out:
            hpath = os.path.splitext(a.out)[0] + ".hidden.npz"
        if hpath:
            np.savez(hpath, **{f"layer_{L}": hidden[L].astype(np.float32) for L in hl})
    if a.json:
        doc = {
            "model": os.path.basename(a.model),
            "arch": model.arch,
            "tokens": ids,
            "n_vocab": model.n_vocab,
            "argmax": int(np.argmax(last)),
            "top10": topk(last, 10),
            "logits": np.asarray(logits, dtype=np.float32).tolist(),
        }
        if hl:
            doc["hidden"] = {str(L): hidden[L].astype(np.float32).tolist() for L in hl}
        with open(a.json, "w") as f:
            json.dump(doc, f)
    if a.greedy:
        eos = {int(vocab.eos_id)} if vocab.eos_id is not None else set()
        t0 = time.time()
        gen = model.greedy(ids, a.greedy, stop=eos)
        dt = time.time() - t0
        print(f"greedy ({len(gen)} tokens, {dt:.2f}s): {','.join(map(str, gen))}")
        print(vocab.decode(gen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
