#!/usr/bin/env python3
"""Reference cases for tests/test_tokenizer.c, computed with HF `tokenizers`.

Two jobs:

  gen_tokenizer_cases.py cases --gguf SmolLM2-135M-Instruct.Q4_1.gguf \
        --out tests/data/tokenizer_cases.h
      Writes the committed C header with
       - smollm2_cases: text -> ids from an HF ByteLevel BPE tokenizer built
         from the GGUF's vocabulary and merges with SmolLM2's pre-tokenizer
         (Digits(individual_digits) + ByteLevel(use_regex), no prefix space)
         and its CONTROL tokens as special added tokens;
       - split_*_cases: piece boundaries of the pre-tokenizer regexes (gpt2,
         smollm, llama3, qwen2) from HF's Split(Regex(...), "isolated");
       - synth_*: a small qwen2-style byte-level vocabulary (256 byte tokens,
         specials, merges trained by HF's BpeTrainer on sumchain-like text,
         seeded) and text -> ids cases for it.
      Needs: pip packages `gguf` and `tokenizers`.

  gen_tokenizer_cases.py dump-vocab --gguf MODEL.gguf --out vocab.bin
      Writes the GGUF's tokenizer arrays in the simple binary form the C test
      reads from $SX_SMOLLM2_VOCAB (so the test does not need a GGUF reader):
        "SXVOCAB1" u32 kind(0 bpe, 1 spm) u32 len + pre
        u32 n_tokens, n_tokens x { u32 len, bytes, i32 type, f32 score }
        u32 n_merges, n_merges x { u32 len, bytes }
        i32 bos, eos, eot, pad, unk; u8 add_bos, add_space_prefix
      all little-endian. Needs only `gguf`.

Everything is deterministic (fixed seeds).
"""
import argparse
import random
import struct
import sys

GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
             r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
            r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

CURATED = [
    "", "a", "Hello world", "Hello, world!", "  leading spaces", "trailing spaces   ",
    "a   b\n\n\nc", "tab\there\t\tand\t", "line1\r\nline2\r\n\r\n", "12345", "3.14159 and 2,718",
    "x=42; y = -7 ", "What is 17+5+38+9?", "17+5=22.\n\nSo the answer is 69.",
    "don't I'LL we've they'RE", "'s 't 'm 'd 'll 're 've", "naïve café résumé", "Straße ÆØÅ œ",
    "日本語のテキストです。", "中文分词测试，好的！", "한국어 텍스트", "Привет, мир!", "مرحبا بالعالم",
    "नमस्ते दुनिया", "emoji 😀👍🏽 family 👨\u200d👩\u200d👧", "ⅠⅡⅢ ¹²³ ½ ١٢٣ ٤", "fullwidth １２３ ＡＢＣ",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|><|endoftext|>", "text<|im_end|>more", "<|im_start", "<|im_end|>",
    "def f(x):\n    return x * 2\n", "    indented\n\tcode();", "if (a && b) { return; }",
    "https://example.com/path?q=1&r=2#frag", "email@example.org", "   ", "\n", "\n\n", " \n ",
    "!!!???...", "multiple     spaces     here", "\u00a0nbsp\u00a0\u3000ideographic\u3000",
    "zero\u200bwidth", "combining e\u0301 a\u0308", "ſ 'ſ 'S", "\x1c\x1d sep \x85 nel",
    "The quick brown fox jumps over the lazy dog.", "</think>\n\nThe answer is 69.",
    "Wait, let me check. 17+5=22. Yes, 69.", "$hello !world ?x", " 'quoted' \"double\"",
    "a\u2028b\u2029c", "\t\t\n\t", "ABC123def456", "1,000,000.00", "x\r\r\ny",
    "'\u017fx I'\u017ft", "don'Tx 'REal", " \t\n x", "x  \n", "a \r\n b", "'", "''s", "1'2", "$$$hello",
    "   \u00a0x", "\u00a0\u00a0", "a\n\n", "x!!\n\n\ny", "x !\r\n", "\u0660\u0661 \u00b2\u00b3",
]

POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    " ", "   ", "\t", "\n", "\r\n", "\u00a0", "\u3000",
    "'s", "'T", "'re", "'LL", "'",
    "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~",
    "éèêëàâäôöûüçñßøåæ", "αβγδεζηθ", "абвгдежз", "日本語中文字", "한국어",
    "😀👍🏽🎉", "\u0301\u0308", "ⅠⅡ¹²½", "١٢٣", "１２３", "ſ", "\u200b", "\x1c",
]


def c_string(b):
    """bytes -> C string literal (octal escapes, no trigraphs)."""
    out = ['"']
    for c in b:
        ch = chr(c)
        if ch == '"' or ch == '\\':
            out.append('\\' + ch)
        elif ch == '?':
            out.append('\\?')
        elif 0x20 <= c < 0x7f:
            out.append(ch)
        else:
            out.append('\\%03o' % c)
    out.append('"')
    return "".join(out)


def random_texts(n, seed):
    rnd = random.Random(seed)
    texts = []
    for _ in range(n):
        parts = []
        for _ in range(rnd.randint(1, 14)):
            pool = rnd.choice(POOLS)
            if len(pool) > 4 and not pool.startswith("'"):
                parts.append("".join(rnd.choice(pool) for _ in range(rnd.randint(1, 5))))
            else:
                parts.append(pool)
        texts.append("".join(parts))
    return texts


def read_gguf_vocab(path):
    from gguf import GGUFReader
    r = GGUFReader(path)

    def get(key, default=None):
        f = r.fields.get(key)
        return f.contents() if f is not None else default

    v = {
        "model": get("tokenizer.ggml.model"),
        "pre": get("tokenizer.ggml.pre", "default"),
        "tokens": get("tokenizer.ggml.tokens"),
        "types": get("tokenizer.ggml.token_type"),
        "scores": get("tokenizer.ggml.scores"),
        "merges": get("tokenizer.ggml.merges", []),
        "bos": get("tokenizer.ggml.bos_token_id", -1),
        "eos": get("tokenizer.ggml.eos_token_id", -1),
        "eot": get("tokenizer.ggml.eot_token_id", -1),
        "pad": get("tokenizer.ggml.padding_token_id", -1),
        "unk": get("tokenizer.ggml.unknown_token_id", -1),
        "add_bos": bool(get("tokenizer.ggml.add_bos_token", False)),
        "add_space_prefix": bool(get("tokenizer.ggml.add_space_prefix", False)),
    }
    if v["types"] is None:
        v["types"] = [1] * len(v["tokens"])
    if v["scores"] is None:
        v["scores"] = [0.0] * len(v["tokens"])
    return v


def dump_vocab(args):
    v = read_gguf_vocab(args.gguf)
    kind = 0 if v["model"] == "gpt2" else 1
    with open(args.out, "wb") as f:
        f.write(b"SXVOCAB1")
        pre = v["pre"].encode()
        f.write(struct.pack("<II", kind, len(pre)) + pre)
        f.write(struct.pack("<I", len(v["tokens"])))
        for t, ty, sc in zip(v["tokens"], v["types"], v["scores"]):
            b = t.encode("utf-8", "surrogatepass")
            f.write(struct.pack("<I", len(b)) + b + struct.pack("<if", int(ty), float(sc)))
        f.write(struct.pack("<I", len(v["merges"])))
        for m in v["merges"]:
            b = m.encode()
            f.write(struct.pack("<I", len(b)) + b)
        f.write(struct.pack("<iiiiiBB", v["bos"], v["eos"], v["eot"], v["pad"], v["unk"],
                            v["add_bos"], v["add_space_prefix"]))


def hf_bytelevel_tokenizer(tokens, merges, pre_tokenizer, specials):
    from tokenizers import AddedToken, Tokenizer, decoders, models
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == len(tokens), "duplicate tokens"
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs))
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    for s in specials:
        assert tok.token_to_id(s) == vocab[s]
    return tok


def byte_level_map():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
          + list(range(ord("\xae"), ord("\xff") + 1)))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def encode_cases(tok, texts):
    """text -> ids; checks the round trip unless the vocabulary lacks one of
    the text's byte-level characters (HF then drops that byte, as we do)."""
    bmap = byte_level_map()
    vocab = tok.get_vocab()
    cases = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids
        if all(bmap[b] in vocab for b in t.encode()):
            assert tok.decode(ids, skip_special_tokens=False) == t, (t, ids)
        cases.append((t.encode(), ids))
    return cases


def split_cases(pre, texts):
    cases = []
    for t in texts:
        pieces = pre.pre_tokenize_str(t)
        ends, pos = [], 0
        for piece, (a, b) in pieces:
            assert t[a:b] == piece
            pos += len(piece.encode())
            ends.append(pos)
        assert pos == len(t.encode()), t
        cases.append((t.encode(), ends))
    return cases


def synth_corpus(seed):
    rnd = random.Random(seed)
    lines = []
    for _ in range(600):
        nums = [rnd.randint(0, 99) for _ in range(rnd.randint(2, 6))]
        q = "What is " + "+".join(map(str, nums)) + "?"
        steps, s = [], nums[0]
        for x in nums[1:]:
            steps.append("%d+%d=%d." % (s, x, s + x))
            s += x
        trace = "\n\n".join(steps) + "\n\nSo the answer is %d." % s
        for _ in range(rnd.randint(0, 2)):
            trace += "\n\nWait, let me check. " + " ".join(steps) + " Yes, %d." % s
        lines.append(q)
        lines.append("<think>\n" + trace + "\n</think>\n\nThe answer is %d." % s)
    return lines


def gen_cases(args):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    texts = CURATED + random_texts(40, 20240611)

    # --- SmolLM2 from the GGUF ---
    v = read_gguf_vocab(args.gguf)
    assert v["model"] == "gpt2" and v["pre"] == "smollm", (v["model"], v["pre"])
    specials = [t for t, ty in zip(v["tokens"], v["types"]) if ty in (3, 4)]
    smol_pre = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    smol = hf_bytelevel_tokenizer(v["tokens"], v["merges"], smol_pre, specials)
    smol_cases = encode_cases(smol, texts)

    # --- pre-tokenizer splits ---
    def split(pattern):
        return pre_tokenizers.Split(Regex(pattern), behavior="isolated")

    splits = {
        "gpt2": split_cases(split(GPT2_RE), texts),
        "smollm": split_cases(pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                       split(GPT2_RE)]), texts),
        "llama3": split_cases(split(LLAMA3_RE), texts),
        "qwen2": split_cases(split(QWEN2_RE), texts),
    }

    # --- synthetic qwen2-style vocabulary ---
    synth_specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    synth_user = ["<think>", "</think>"]
    tr = Tokenizer(models.BPE())
    tr.pre_tokenizer = pre_tokenizers.Sequence([
        split(QWEN2_RE), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=args.synth_vocab, special_tokens=synth_specials + synth_user,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tr.train_from_iterator(synth_corpus(7), trainer)
    import json
    model = json.loads(tr.to_str())["model"]
    vocab = model["vocab"]
    synth_tokens = [None] * len(vocab)
    for t, i in vocab.items():
        synth_tokens[i] = t
    assert None not in synth_tokens
    synth_merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    synth_types = [3 if t in synth_specials else 4 if t in synth_user else 1 for t in synth_tokens]
    synth = hf_bytelevel_tokenizer(synth_tokens, synth_merges, tr.pre_tokenizer, synth_specials + synth_user)
    synth_texts = synth_corpus(99)[:8] + [
        "What is 17+5+38+9?", "12345678901234567890", "<|im_start|>user\nWhat is 1+2?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n1+2=3.\n\nSo the answer is 3.\n</think>\n\nThe answer is 3.<|im_end|>",
        "héllo wörld 日本 😀", "  \n\n  spaces\t\ttabs", "I'LL DON'T we're", "</think><think>",
    ] + random_texts(12, 777)
    synth_cases = encode_cases(synth, synth_texts)

    # --- write the header ---
    o = []
    o.append("/* tests/data/tokenizer_cases.h -- GENERATED by tests/ref/gen_tokenizer_cases.py; do not edit.")
    o.append(" * Reference ids and splits from HF tokenizers %s (see the script). */"
             % __import__("tokenizers").__version__)
    o.append("#ifndef SX_TOKENIZER_CASES_H\n#define SX_TOKENIZER_CASES_H\n")
    o.append("#include <stddef.h>\n#include <stdint.h>\n")
    o.append("typedef struct sx_tc_encode { const char *text; size_t len; const int32_t *ids; int n_ids; } sx_tc_encode;")
    o.append("typedef struct sx_tc_split { const char *text; size_t len; const uint32_t *ends; int n; } sx_tc_split;\n")

    def emit_encode(name, cases):
        for k, (b, ids) in enumerate(cases):
            o.append("static const int32_t %s_ids_%d[] = {%s};" % (name, k, ", ".join(map(str, ids)) or "-1"))
        o.append("static const sx_tc_encode %s[] = {" % name)
        for k, (b, ids) in enumerate(cases):
            o.append("    {%s, %d, %s_ids_%d, %d}," % (c_string(b), len(b), name, k, len(ids)))
        o.append("};\n")

    def emit_split(name, cases):
        for k, (b, ends) in enumerate(cases):
            o.append("static const uint32_t %s_ends_%d[] = {%s};" % (name, k, ", ".join(map(str, ends)) or "0"))
        o.append("static const sx_tc_split %s[] = {" % name)
        for k, (b, ends) in enumerate(cases):
            o.append("    {%s, %d, %s_ends_%d, %d}," % (c_string(b), len(b), name, k, len(ends)))
        o.append("};\n")

    emit_encode("smollm2_cases", smol_cases)
    for fam, cases in splits.items():
        emit_split("split_%s_cases" % fam, cases)
    o.append("static const char *const synth_tokens[] = {")
    for t in synth_tokens:
        o.append("    %s," % c_string(t.encode()))
    o.append("};")
    o.append("static const int32_t synth_types[] = {%s};" % ", ".join(map(str, synth_types)))
    o.append("static const char *const synth_merges[] = {")
    for m in synth_merges:
        o.append("    %s," % c_string(m.encode()))
    o.append("};")
    o.append("#define SYNTH_IM_START %d" % vocab["<|im_start|>"])
    o.append("#define SYNTH_IM_END %d" % vocab["<|im_end|>"])
    o.append("#define SYNTH_ENDOFTEXT %d" % vocab["<|endoftext|>"])
    o.append("#define SYNTH_THINK_END %d\n" % vocab["</think>"])
    emit_encode("synth_cases", synth_cases)
    o.append("#endif")
    with open(args.out, "w") as f:
        f.write("\n".join(o) + "\n")
    print("wrote %s: %d smollm2 cases, %d split cases per family, synthetic vocab %d tokens / %d merges, "
          "%d synthetic cases" % (args.out, len(smol_cases), len(texts), len(synth_tokens), len(synth_merges),
                                  len(synth_cases)), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("cases")
    a.add_argument("--gguf", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--synth-vocab", type=int, default=400)
    b = sub.add_parser("dump-vocab")
    b.add_argument("--gguf", required=True)
    b.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.cmd == "cases":
        gen_cases(args)
    else:
        dump_vocab(args)


if __name__ == "__main__":
    main()
