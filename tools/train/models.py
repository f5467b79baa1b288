"""PyTorch models of the trainer: a qwen3/qwen2/llama target and the EAGLE-3
draft with SpecExit signal rows.

Conventions are the engine's (core/model_graph.c, core/eagle3.h) and
llama.cpp's, so a GGUF export runs unchanged:
  * RMSNorm x / sqrt(mean(x^2) + eps) * w.
  * GQA: query head h uses kv head h // (n_head / n_head_kv).
  * qwen3: per-head RMSNorm of q and k over head_dim, before RoPE.
  * RoPE: NEOX (rotate-half) for qwen2/qwen3 and the draft; NORMAL (adjacent
    pairs) for llama GGUFs (the HF->GGUF converter permuted q/k for it).
  * SwiGLU FFN: down(silu(gate(x)) * up(x)).
  * Features for the draft: the residual stream *entering* layers 2, L/2, L-3.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def feature_layers(n_layer):
    return (2, n_layer // 2, n_layer - 3)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight.to(x.dtype)


def rope_cos_sin(pos, head_dim, base, n_rot=None, freq_scale=1.0, freq_factors=None):
    """cos, sin of shape [T, n_rot/2] for positions pos [T] (float64 math)."""
    n_rot = n_rot or head_dim
    i = torch.arange(n_rot // 2, dtype=torch.float64)
    inv = base ** (-2.0 * i / n_rot) * freq_scale
    if freq_factors is not None:
        inv = inv / freq_factors.double()
    ang = pos.double()[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x, cos, sin, neox=True):
    """x [B, nh, T, D]; cos/sin [T, n_rot/2] (or [B, T, n_rot/2])."""
    n = cos.shape[-1] * 2
    if cos.dim() == 2:
        cos, sin = cos[None, None], sin[None, None]
    else:
        cos, sin = cos[:, None], sin[:, None]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    xr, xp = x[..., :n], x[..., n:]
    if neox:
        x0, x1 = xr[..., : n // 2], xr[..., n // 2:]
        out = torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
    else:
        x0, x1 = xr[..., 0::2], xr[..., 1::2]
        out = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)
    return torch.cat([out, xp], dim=-1) if xp.shape[-1] else out


class TargetConfig:
    def __init__(self, arch="qwen3", vocab=0, hidden=256, n_layer=8, n_head=4, n_head_kv=2, head_dim=64, ffn=704,
                 ctx=1024, rope_base=10000.0, eps=1e-6, tied=False, n_rot=None, freq_scale=1.0):
        self.arch, self.vocab, self.hidden, self.n_layer = arch, vocab, hidden, n_layer
        self.n_head, self.n_head_kv, self.head_dim, self.ffn = n_head, n_head_kv, head_dim, ffn
        self.ctx, self.rope_base, self.eps, self.tied = ctx, rope_base, eps, tied
        self.n_rot = n_rot or head_dim
        self.freq_scale = freq_scale

    def to_dict(self):
        return dict(self.__dict__)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, nh, nkv, d = c.hidden, c.n_head, c.n_head_kv, c.head_dim
        bias = c.arch == "qwen2"
        self.attn_norm = RMSNorm(H, c.eps)
        self.wq = nn.Linear(H, nh * d, bias=bias)
        self.wk = nn.Linear(H, nkv * d, bias=bias)
        self.wv = nn.Linear(H, nkv * d, bias=bias)
        self.wo = nn.Linear(nh * d, H, bias=False)
        if c.arch == "qwen3":
            self.q_norm = RMSNorm(d, c.eps)
            self.k_norm = RMSNorm(d, c.eps)
        else:
            self.q_norm = self.k_norm = None
        self.ffn_norm = RMSNorm(H, c.eps)
        self.w_gate = nn.Linear(H, c.ffn, bias=False)
        self.w_up = nn.Linear(H, c.ffn, bias=False)
        self.w_down = nn.Linear(c.ffn, H, bias=False)
        self.c = c

    def forward(self, x, cos, sin, kv=None):
        c = self.c
        B, T, _ = x.shape
        nq, nk = c.n_head * c.head_dim, c.n_head_kv * c.head_dim
        h = F.rms_norm(x, (c.hidden,), self.attn_norm.weight.to(x.dtype), c.eps)
        # one matmul for q, k, v (fewer ops: this trains on a busy 2-core CPU)
        w = torch.cat([self.wq.weight, self.wk.weight, self.wv.weight])
        b = torch.cat([self.wq.bias, self.wk.bias, self.wv.bias]) if self.wq.bias is not None else None
        qkv = F.linear(h, w.to(h.dtype), None if b is None else b.to(h.dtype))
        q = qkv[..., :nq].view(B, T, c.n_head, c.head_dim)
        k = qkv[..., nq:nq + nk].view(B, T, c.n_head_kv, c.head_dim)
        v = qkv[..., nq + nk:].view(B, T, c.n_head_kv, c.head_dim)
        if self.q_norm is not None:
            q = F.rms_norm(q, (c.head_dim,), self.q_norm.weight.to(q.dtype), c.eps)
            k = F.rms_norm(k, (c.head_dim,), self.k_norm.weight.to(k.dtype), c.eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        neox = c.arch != "llama"
        q, k = apply_rope(q, cos, sin, neox), apply_rope(k, cos, sin, neox)
        if kv is not None:  # incremental decoding: kv = dict with "k", "v" tensors or None
            if kv.get("k") is not None:
                k = torch.cat([kv["k"], k], dim=2)
                v = torch.cat([kv["v"], v], dim=2)
            kv["k"], kv["v"] = k, v
        S = k.shape[2]
        gqa = c.n_head != c.n_head_kv
        if T == S:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        else:  # T new tokens after S - T cached ones
            mask = torch.ones(T, S, dtype=torch.bool).tril(S - T)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        o = o.transpose(1, 2).reshape(B, T, nq)
        x = x + self.wo(o)
        h = F.rms_norm(x, (c.hidden,), self.ffn_norm.weight.to(x.dtype), c.eps)
        g, u = F.linear(h, torch.cat([self.w_gate.weight, self.w_up.weight]).to(h.dtype)).chunk(2, dim=-1)
        return x + self.w_down(F.silu(g) * u)


class Target(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.tok_embd = nn.Embedding(c.vocab, c.hidden)
        self.blocks = nn.ModuleList([Block(c) for _ in range(c.n_layer)])
        self.out_norm = RMSNorm(c.hidden, c.eps)
        self.output = None if c.tied else nn.Linear(c.hidden, c.vocab, bias=False)
        self.feat_layers = feature_layers(c.n_layer)
        self.freq_factors = None

    def init_weights(self, gen):
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith("weight") and p.dim() == 2:
                s = std / math.sqrt(2 * self.c.n_layer) if ("wo." in name or "w_down." in name) else std
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=gen) * s)
            elif name.endswith("bias"):
                with torch.no_grad():
                    p.zero_()

    def forward(self, tokens, pos0=0, cache=None, want_features=False, logits_rows=None):
        """tokens [B, T]. cache: list of per-layer dicts (incremental) or None.
        Returns logits [B, T, V] (or of logits_rows) and features [B, T, 3H] or None."""
        B, T = tokens.shape
        pos = torch.arange(pos0, pos0 + T)
        cos, sin = rope_cos_sin(pos, self.c.head_dim, self.c.rope_base, self.c.n_rot, self.c.freq_scale, self.freq_factors)
        x = self.tok_embd(tokens)
        feats = []
        for il, blk in enumerate(self.blocks):
            if want_features and il in self.feat_layers:
                feats.append(x)
            x = blk(x, cos, sin, None if cache is None else cache[il])
        if logits_rows is not None:
            x = x[:, logits_rows]
        h = self.out_norm(x)
        w = self.output.weight if self.output is not None else self.tok_embd.weight
        logits = h @ w.t().to(h.dtype)
        f = torch.cat([feats[self.feat_layers.index(L)] for L in self.feat_layers], dim=-1) if want_features else None
        return logits, f

    def new_cache(self):
        return [dict() for _ in range(self.c.n_layer)]


class DraftConfig:
    def __init__(self, hidden=256, target_hidden=256, n_head=4, n_head_kv=2, head_dim=64, ffn=704, vocab=0,
                 draft_vocab=0, rope_base=10000.0, eps=1e-6, n_signals=3, target_layers=(2, 4, 5)):
        self.hidden, self.target_hidden = hidden, target_hidden
        self.n_head, self.n_head_kv, self.head_dim, self.ffn = n_head, n_head_kv, head_dim, ffn
        self.vocab, self.draft_vocab = vocab, draft_vocab or vocab
        self.rope_base, self.eps, self.n_signals = rope_base, eps, n_signals
        self.target_layers = tuple(target_layers)

    def to_dict(self):
        return dict(self.__dict__)


class Draft(nn.Module):
    """EAGLE-3 draft (core/eagle3.h). The token embedding is the target's
    (frozen, passed in); lm_head over the draft vocab (d2t maps to target)."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        H, Ht = c.hidden, c.target_hidden
        self.fc = nn.Linear(3 * Ht, H + c.n_signals, bias=False)
        self.hidden_norm = RMSNorm(H, c.eps)
        self.input_norm = RMSNorm(H, c.eps)
        self.wq = nn.Linear(2 * H, c.n_head * c.head_dim, bias=False)
        self.wk = nn.Linear(2 * H, c.n_head_kv * c.head_dim, bias=False)
        self.wv = nn.Linear(2 * H, c.n_head_kv * c.head_dim, bias=False)
        self.wo = nn.Linear(c.n_head * c.head_dim, H, bias=False)
        self.ffn_norm = RMSNorm(H, c.eps)
        self.w_gate = nn.Linear(H, c.ffn, bias=False)
        self.w_up = nn.Linear(H, c.ffn, bias=False)
        self.w_down = nn.Linear(c.ffn, H, bias=False)
        self.out_norm = RMSNorm(H, c.eps)
        self.output = nn.Linear(H, c.draft_vocab, bias=False)

    def fuse(self, feats):
        """feats [.., 3Ht] -> (h [.., H], signal rows [.., k_sig])."""
        y = self.fc(feats)
        H = self.c.hidden
        return y[..., :H], y[..., H:]

    def signals(self, feats):
        """Raw signal rows from target features, in fp32."""
        H = self.c.hidden
        return F.linear(feats.float(), self.fc.weight[H:].float())

    def step(self, h, emb, pos, mask=None, kv_prefix=None):
        """One draft layer over a sequence. h [B, T, H] hidden inputs, emb
        [B, T, H] embeddings of the paired tokens, pos [T] positions.
        kv_prefix: optional (k, v) [B, nkv, S0, d] of earlier unrolled steps
        (training-time test). mask: bool [T, S0 + T] (True = attend).
        Returns (h' [B, T, H], logits [B, T, Vd], (k, v) of this call)."""
        c = self.c
        B, T, H = h.shape
        x = torch.cat([self.input_norm(emb), self.hidden_norm(h)], dim=-1)
        q = self.wq(x).view(B, T, c.n_head, c.head_dim).transpose(1, 2)
        k = self.wk(x).view(B, T, c.n_head_kv, c.head_dim).transpose(1, 2)
        v = self.wv(x).view(B, T, c.n_head_kv, c.head_dim).transpose(1, 2)
        cos, sin = rope_cos_sin(pos, c.head_dim, c.rope_base)
        q, k = apply_rope(q, cos, sin, True), apply_rope(k, cos, sin, True)
        kk, vv = k, v
        if kv_prefix is not None:
            kk = torch.cat([kv_prefix[0], k], dim=2)
            vv = torch.cat([kv_prefix[1], v], dim=2)
        grp = c.n_head // c.n_head_kv
        ke, ve = kk.repeat_interleave(grp, dim=1), vv.repeat_interleave(grp, dim=1)
        if mask is None:
            o = F.scaled_dot_product_attention(q, ke, ve, is_causal=True)
        else:
            o = F.scaled_dot_product_attention(q, ke, ve, attn_mask=mask)
        o = o.transpose(1, 2).reshape(B, T, c.n_head * c.head_dim)
        r = h + self.wo(o)
        hn = self.ffn_norm(r)
        h2 = r + self.w_down(F.silu(self.w_gate(hn)) * self.w_up(hn))
        logits = self.output(self.out_norm(h2))
        return h2, logits, (k, v)
