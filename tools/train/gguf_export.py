"""GGUF writers: the qwen3 target (llama.cpp-compatible keys and tensor
names, as core/model.c reads them) and the EAGLE-3 draft (core/eagle3.h).

Torch Linear weights are [out, in]; gguf-py writes numpy shapes reversed, so
a [out, in] array becomes a GGUF tensor with ne = [in, out], the layout the
engine expects. Norms are always F32.
"""

import numpy as np
import torch

import gguf
from gguf.quants import dequantize, quantize

Q = gguf.GGMLQuantizationType


def _np(t):
    return t.detach().float().cpu().numpy()


def roundtrip(a, qtype):
    """What the engine will see: a (float32, [out, in]) through qtype."""
    if qtype == Q.F32:
        return a.astype(np.float32)
    if qtype == Q.F16:
        return a.astype(np.float16).astype(np.float32)
    return dequantize(quantize(a, qtype), qtype).reshape(a.shape).astype(np.float32)


def _add_weight(w, name, a, qtype):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if qtype == Q.F32:
        w.add_tensor(name, a)
    elif qtype == Q.F16:
        w.add_tensor(name, a.astype(np.float16))
    else:
        w.add_tensor(name, quantize(a, qtype), raw_dtype=qtype)


def target_tensors(model):
    """name -> (float32 array [out, in] / [n], is_norm) in GGUF names."""
    out = {"token_embd.weight": (_np(model.tok_embd.weight), False)}
    for i, b in enumerate(model.blocks):
        p = f"blk.{i}."
        out[p + "attn_norm.weight"] = (_np(b.attn_norm.weight), True)
        out[p + "attn_q.weight"] = (_np(b.wq.weight), False)
        out[p + "attn_k.weight"] = (_np(b.wk.weight), False)
        out[p + "attn_v.weight"] = (_np(b.wv.weight), False)
        out[p + "attn_output.weight"] = (_np(b.wo.weight), False)
        if b.q_norm is not None:
            out[p + "attn_q_norm.weight"] = (_np(b.q_norm.weight), True)
            out[p + "attn_k_norm.weight"] = (_np(b.k_norm.weight), True)
        out[p + "ffn_norm.weight"] = (_np(b.ffn_norm.weight), True)
        out[p + "ffn_gate.weight"] = (_np(b.w_gate.weight), False)
        out[p + "ffn_up.weight"] = (_np(b.w_up.weight), False)
        out[p + "ffn_down.weight"] = (_np(b.w_down.weight), False)
    out["output_norm.weight"] = (_np(model.out_norm.weight), True)
    if model.output is not None:
        out["output.weight"] = (_np(model.output.weight), False)
    return out


def load_roundtrip_(model, qtype):
    """Replaces the model's weights by their qtype round trip (in place), so
    torch evaluates exactly what the GGUF holds (up to float rounding)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.copy_(torch.from_numpy(roundtrip(_np(p), qtype)))


def write_target(path, model, vocab, qtype=Q.Q8_0, name="sumchain", chat_template=None):
    c = model.c
    w = gguf.GGUFWriter(path, c.arch)
    w.add_string("general.name", name)
    w.add_uint32("general.file_type", {Q.F32: 0, Q.F16: 1, Q.Q8_0: 7}[qtype])
    w.add_uint32("general.quantization_version", 2)
    a = c.arch
    w.add_uint32(f"{a}.block_count", c.n_layer)
    w.add_uint32(f"{a}.context_length", c.ctx)
    w.add_uint32(f"{a}.embedding_length", c.hidden)
    w.add_uint32(f"{a}.feed_forward_length", c.ffn)
    w.add_uint32(f"{a}.attention.head_count", c.n_head)
    w.add_uint32(f"{a}.attention.head_count_kv", c.n_head_kv)
    w.add_uint32(f"{a}.attention.key_length", c.head_dim)
    w.add_uint32(f"{a}.attention.value_length", c.head_dim)
    w.add_float32(f"{a}.rope.freq_base", float(c.rope_base))
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", float(c.eps))
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "qwen2")
    w.add_array("tokenizer.ggml.tokens", vocab.tokens)
    w.add_array("tokenizer.ggml.token_type", vocab.types)
    w.add_array("tokenizer.ggml.merges", vocab.merges)
    w.add_uint32("tokenizer.ggml.eos_token_id", vocab.eos)
    w.add_uint32("tokenizer.ggml.padding_token_id", vocab.pad)
    w.add_uint32("tokenizer.ggml.bos_token_id", vocab.pad)
    w.add_bool("tokenizer.ggml.add_bos_token", False)
    if chat_template:
        w.add_string("tokenizer.chat_template", chat_template)
    for n, (arr, is_norm) in target_tensors(model).items():
        _add_weight(w, n, arr, Q.F32 if is_norm else qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def draft_tensors(draft):
    """name -> (array, kind) in the core/eagle3.h GGUF names; kind: 'w', 'norm'."""
    d = draft
    return {
        "fc.weight": (_np(d.fc.weight), "w"),
        "hidden_norm.weight": (_np(d.hidden_norm.weight), "norm"),
        "input_norm.weight": (_np(d.input_norm.weight), "norm"),
        "attn_q.weight": (_np(d.wq.weight), "w"),
        "attn_k.weight": (_np(d.wk.weight), "w"),
        "attn_v.weight": (_np(d.wv.weight), "w"),
        "attn_output.weight": (_np(d.wo.weight), "w"),
        "ffn_norm.weight": (_np(d.ffn_norm.weight), "norm"),
        "ffn_gate.weight": (_np(d.w_gate.weight), "w"),
        "ffn_up.weight": (_np(d.w_up.weight), "w"),
        "ffn_down.weight": (_np(d.w_down.weight), "w"),
        "output_norm.weight": (_np(d.out_norm.weight), "norm"),
        "output.weight": (_np(d.output.weight), "w"),
    }


def write_draft(path, draft, qtype=Q.F16, d2t=None, name="sumchain-eagle3", fc_f32=True):
    """fc stays F32 by default: its signal rows are read in fp32 by the engine
    and are small."""
    c = draft.c
    w = gguf.GGUFWriter(path, "eagle3")
    w.add_string("general.name", name)
    w.add_uint32("eagle3.embedding_length", c.hidden)
    w.add_uint32("eagle3.feed_forward_length", c.ffn)
    w.add_uint32("eagle3.attention.head_count", c.n_head)
    w.add_uint32("eagle3.attention.head_count_kv", c.n_head_kv)
    w.add_uint32("eagle3.attention.key_length", c.head_dim)
    w.add_float32("eagle3.attention.layer_norm_rms_epsilon", float(c.eps))
    w.add_float32("eagle3.rope.freq_base", float(c.rope_base))
    w.add_uint32("eagle3.vocab_size", c.draft_vocab)
    w.add_uint32("eagle3.target_vocab_size", c.vocab)
    w.add_uint32("eagle3.target_hidden_size", c.target_hidden)
    w.add_array("eagle3.target_layers", [int(x) for x in c.target_layers])
    w.add_uint32("eagle3.signal_rows", c.n_signals)
    for n, (arr, kind) in draft_tensors(draft).items():
        qt = Q.F32 if kind == "norm" or (n == "fc.weight" and fc_f32) else qtype
        _add_weight(w, n, arr, qt)
    if d2t is not None:
        w.add_tensor("d2t", np.asarray(d2t, dtype=np.int32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
