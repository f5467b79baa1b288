"""Byte-level BPE for sumchain, trained with HF `tokenizers` on the traces.

The pre-tokenizer is Qwen2's regex (digits one per token) followed by the
GPT-2 byte-level mapping, i.e. what core/tokenizer_pretok.c implements for
tokenizer.ggml.pre = "qwen2". Special tokens (added after training, at the
end of the vocabulary): <|endoftext|>, <|im_start|>, <|im_end|> (CONTROL)
and <think>, </think> (USER_DEFINED, as in Qwen3).
"""

import json

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

import sumchain

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
CONTROL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
USER_DEFINED = ["<think>", "</think>"]
TOKEN_TYPE_NORMAL, TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED = 1, 3, 4


def _plain_pieces(text):
    """Text between special tokens (what BPE trains on)."""
    out = [text]
    for s in sumchain.SPECIAL_TOKENS:
        out = [q for p in out for q in p.split(s)]
    return [p for p in out if p]


def train(problems, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    n_special = len(CONTROL) + len(USER_DEFINED)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - n_special, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    texts = []
    for p in problems:
        t = sumchain.Trace(p)
        texts.extend(_plain_pieces(t.prompt + t.completion))
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in CONTROL])
    tok.add_tokens([AddedToken(s, special=False, normalized=False) for s in USER_DEFINED])
    return tok


class Vocab:
    """The trained tokenizer plus the GGUF tokenizer.ggml.* arrays."""

    def __init__(self, tok):
        self.tok = tok
        v = tok.get_vocab(with_added_tokens=True)
        self.n = len(v)
        self.tokens = [None] * self.n
        for s, i in v.items():
            self.tokens[i] = s
        assert all(t is not None for t in self.tokens), "vocabulary ids are not contiguous"
        self.types = [TOKEN_TYPE_CONTROL if t in CONTROL else TOKEN_TYPE_USER_DEFINED if t in USER_DEFINED
                      else TOKEN_TYPE_NORMAL for t in self.tokens]
        model = json.loads(tok.to_str())["model"]
        self.merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
        self.id = {s: i for i, s in enumerate(self.tokens)}
        self.eos = self.id["<|im_end|>"]
        self.pad = self.id["<|endoftext|>"]
        self.think_close = self.id["</think>"]
        self.think_open = self.id["<think>"]

    def encode(self, text):
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids):
        return self.tok.decode(ids, skip_special_tokens=False)

    def to_json(self, path):
        self.tok.save(path)

    @staticmethod
    def from_json(path):
        return Vocab(Tokenizer.from_file(path))

    def single_token(self, s):
        ids = self.encode(s)
        return ids[0] if len(ids) == 1 else None

    def encode_example(self, nums):
        """(prompt ids, completion ids, thinking length T, conf_from index):
        the prompt as `specexit run` builds it and the completion tokenised
        on their own (checked to equal tokenising the joined text)."""
        t = sumchain.Trace(nums)
        p = self.encode(t.prompt)
        c = self.encode(t.completion)
        assert p + c == self.encode(t.prompt + t.completion), nums
        th = self.encode(t.thinking)
        T = len(th)
        assert c[:T] == th and c[T] == self.think_close, nums
        # token holding character conf_from of the thinking text
        enc = self.tok.encode(t.thinking, add_special_tokens=False)
        conf_tok = next(i for i, (a, b) in enumerate(enc.offsets) if a <= t.conf_from < b)
        return p, c, T, conf_tok
