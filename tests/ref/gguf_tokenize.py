#!/usr/bin/env python3
"""Tokenise text with the BPE vocabulary stored in a GGUF file.

An independent tokenizer for tests: it builds a Hugging Face `tokenizers`
BPE tokenizer from tokenizer.ggml.tokens / tokenizer.ggml.merges and mirrors
the pre-tokenizer that llama.cpp selects from tokenizer.ggml.pre
(src/llama-vocab.cpp, llm_tokenizer_bpe regex_exprs):

  smollm (also starcoder, refact, command-r, codeshell, ...):
      "\\p{N}"  (every digit its own piece), then the GPT-2 regex
  gpt2 / default:  the GPT-2 regex
  qwen2:           the Qwen2 regex (single digits)
  llama-bpe:       the Llama-3 regex (digits in groups of up to 3)

followed by GPT-2 byte-level mapping (no prefix space). llama.cpp applies the
regexes in sequence, each one splitting the pieces of the previous one, and
keeps unmatched text as its own piece: that is `Split(..., "isolated")`.

Special tokens: llama.cpp only parses CONTROL tokens (token_type 3) when
asked to (parse_special), while USER_DEFINED tokens (type 4) are always
matched. --special mirrors parse_special=true.

CLI:  gguf_tokenize.py MODEL.gguf "text" [--special] [--bos]
      prints comma-separated ids.
      gguf_tokenize.py MODEL.gguf --decode 1,2,3   prints the text.
"""

import argparse
import sys

import numpy as np

GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
QWEN2_RE = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
            r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_RE = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
             r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")

PRE_REGEXES = {
    "smollm": [r"\p{N}", GPT2_RE],
    "starcoder": [r"\p{N}", GPT2_RE],
    "refact": [r"\p{N}", GPT2_RE],
    "codeshell": [r"\p{N}", GPT2_RE],
    "gpt-2": [GPT2_RE],
    "gpt2": [GPT2_RE],
    "default": [GPT2_RE],
    "qwen2": [QWEN2_RE],
    "llama-bpe": [LLAMA3_RE],
    "llama3": [LLAMA3_RE],
}

TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4


def _bytes_to_unicode():
    """GPT-2's reversible byte <-> printable-unicode table."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
          + list(range(ord("\xae"), ord("\xff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


BYTE_TO_UNI = _bytes_to_unicode()
UNI_TO_BYTE = {v: k for k, v in BYTE_TO_UNI.items()}


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


class GGUFVocab:
    def __init__(self, model_path, reader=None):
        import gguf
        r = reader if reader is not None else gguf.GGUFReader(model_path)
        model = _field(r, "tokenizer.ggml.model")
        if model != "gpt2":
            raise SystemExit(f"gguf_tokenize: tokenizer.ggml.model={model!r}; only gpt2 (byte-level BPE) is supported")
        self.tokens = list(_field(r, "tokenizer.ggml.tokens"))
        self.types = list(_field(r, "tokenizer.ggml.token_type", [1] * len(self.tokens)))
        self.merges = list(_field(r, "tokenizer.ggml.merges", []))
        self.pre = _field(r, "tokenizer.ggml.pre", "default")
        self.bos_id = _field(r, "tokenizer.ggml.bos_token_id")
        self.eos_id = _field(r, "tokenizer.ggml.eos_token_id")
        self.add_bos = bool(_field(r, "tokenizer.ggml.add_bos_token", False))
        self._tok = {}

    def _build(self, special):
        from tokenizers import Tokenizer, AddedToken, Regex, models, pre_tokenizers, decoders
        if self.pre not in PRE_REGEXES:
            raise SystemExit(f"gguf_tokenize: pre-tokenizer {self.pre!r} not mirrored here "
                             f"(known: {', '.join(sorted(PRE_REGEXES))})")
        vocab = {t: i for i, t in enumerate(self.tokens)}
        merges = [tuple(m.split(" ", 1)) for m in self.merges]
        bpe = models.BPE(vocab=vocab, merges=merges, fuse_unk=False, ignore_merges=False)
        tok = Tokenizer(bpe)
        pts = [pre_tokenizers.Split(Regex(rx), behavior="isolated") for rx in PRE_REGEXES[self.pre]]
        pts.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
        tok.pre_tokenizer = pre_tokenizers.Sequence(pts)
        tok.decoder = decoders.ByteLevel()
        added = []
        for i, (t, ty) in enumerate(zip(self.tokens, self.types)):
            if ty == TOKEN_TYPE_USER_DEFINED or (special and ty == TOKEN_TYPE_CONTROL):
                added.append(AddedToken(t, special=(ty == TOKEN_TYPE_CONTROL), normalized=False))
        if added:
            tok.add_tokens(added)
        return tok

    def encode(self, text, special=False, bos=None):
        if special not in self._tok:
            self._tok[special] = self._build(special)
        ids = self._tok[special].encode(text, add_special_tokens=False).ids
        if bos is None:
            bos = self.add_bos
        if bos and self.bos_id is not None:
            ids = [int(self.bos_id)] + ids
        return ids

    def token_bytes(self, i):
        t = self.tokens[i]
        if self.types[i] in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED):
            return t.encode("utf-8")
        try:
            return bytes(UNI_TO_BYTE[c] for c in t)
        except KeyError:
            return t.encode("utf-8")

    def decode(self, ids):
        return b"".join(self.token_bytes(int(i)) for i in ids).decode("utf-8", errors="replace")


def chatml(user, system="You are a helpful AI assistant named SmolLM, trained by Hugging Face"):
    """SmolLM2's chat template (tokenizer.chat_template) with add_generation_prompt."""
    s = ""
    if system is not None:
        s += f"<|im_start|>system\n{system}<|im_end|>\n"
    s += f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    return s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("text", nargs="?")
    ap.add_argument("--special", action="store_true", help="parse control tokens such as <|im_start|>")
    ap.add_argument("--bos", action="store_true", help="prepend BOS (default: tokenizer.ggml.add_bos_token)")
    ap.add_argument("--chat", action="store_true", help="wrap TEXT in SmolLM2's ChatML template (implies --special)")
    ap.add_argument("--decode", metavar="IDS", help="comma-separated ids to turn back into text")
    a = ap.parse_args(argv)
    v = GGUFVocab(a.model)
    if a.decode is not None:
        sys.stdout.write(v.decode([int(x) for x in a.decode.split(",") if x.strip()]) + "\n")
        return 0
    if a.text is None:
        ap.error("TEXT is required unless --decode is given")
    text = chatml(a.text) if a.chat else a.text
    ids = v.encode(text, special=a.special or a.chat, bos=True if a.bos else None)
    print(",".join(str(i) for i in ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
