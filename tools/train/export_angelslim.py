#!/usr/bin/env python3
"""Exports a trained draft (DIR/draft.pt) as an AngelSlim / EAGLE-3
checkpoint: config.json + model.safetensors with the tensor names of
shared/design/SPECEXIT.md (torch [out, in] order):

  fc.weight [H+3, 3*Ht], midlayer.hidden_norm.weight, midlayer.input_layernorm.weight,
  midlayer.self_attn.{q,k,v,o}_proj.weight, midlayer.post_attention_layernorm.weight,
  midlayer.mlp.{gate,up,down}_proj.weight, norm.weight, lm_head.weight,
  d2t int64 [Vd] and t2d bool [V] (identity here: Vd == V, written so
  converters see the usual layout).

The embedding is the target's (no embed_tokens.weight). This is what
`specexit convert eagle3` reads, so converting this checkpoint must give
back models/sumchain/draft.gguf's tensors.

Usage: export_angelslim.py --work DIR --out /opt/specexit-train-work/sumchain-angelslim
"""

import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

NAMES = {
    "fc.weight": "fc.weight",
    "hidden_norm.weight": "midlayer.hidden_norm.weight",
    "input_norm.weight": "midlayer.input_layernorm.weight",
    "wq.weight": "midlayer.self_attn.q_proj.weight",
    "wk.weight": "midlayer.self_attn.k_proj.weight",
    "wv.weight": "midlayer.self_attn.v_proj.weight",
    "wo.weight": "midlayer.self_attn.o_proj.weight",
    "ffn_norm.weight": "midlayer.post_attention_layernorm.weight",
    "w_gate.weight": "midlayer.mlp.gate_proj.weight",
    "w_up.weight": "midlayer.mlp.up_proj.weight",
    "w_down.weight": "midlayer.mlp.down_proj.weight",
    "out_norm.weight": "norm.weight",
    "output.weight": "lm_head.weight",
}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    a = ap.parse_args(argv)
    st = torch.load(os.path.join(a.work, "draft.pt"), weights_only=False)
    c = models.DraftConfig(**st["config"])
    sd = st["model"]
    dt = getattr(torch, a.dtype)
    out = {NAMES[k]: v.detach().to(dt).contiguous() for k, v in sd.items()}
    Vd, V = c.draft_vocab, c.vocab
    out["d2t"] = torch.zeros(Vd, dtype=torch.int64)
    t2d = torch.zeros(V, dtype=torch.bool)
    t2d[:Vd] = True
    out["t2d"] = t2d
    os.makedirs(a.out, exist_ok=True)
    save_file(out, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["LlamaForCausalLMEagle3"],
        "model_type": "llama",
        "hidden_size": c.hidden,
        "intermediate_size": c.ffn,
        "num_attention_heads": c.n_head,
        "num_key_value_heads": c.n_head_kv,
        "head_dim": c.head_dim,
        "num_hidden_layers": 1,
        "rms_norm_eps": c.eps,
        "rope_theta": c.rope_base,
        "rope_scaling": None,
        "vocab_size": V,
        "draft_vocab_size": Vd,
        "target_hidden_size": c.target_hidden,
        "bias": False,
        "tie_word_embeddings": False,
        "hidden_act": "silu",
        "torch_dtype": a.dtype,
        "eagle_config": {"eagle_aux_hidden_state_layer_ids": list(c.target_layers)},
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"wrote {a.out}: {len(out)} tensors")


if __name__ == "__main__":
    main()
