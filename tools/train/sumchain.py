#!/usr/bin/env python3
"""sumchain: the synthetic overthinking task of the embedded default model.

Spec: shared/design/SYNTHETIC_TASK.md. This module owns the problems, the
exact trace text, the signal labels and the held-out / dev problem files.
It needs only the standard library.

Problem: 2..6 whole numbers 0..99 joined by '+', user message exactly
"What is 17+5+38+9?".

Trace (the assistant turn; the prompt already ends with "<think>\\n"):

    17+5=22.\\n\\n22+38=60.\\n\\n60+9=69.\\n\\nSo the answer is 69.\\n\\n
    Wait, let me check. 17+5=22. 22+38=60. 60+9=69. Yes, 69.\\n\\n
    Let me check again. 17+5=22. 22+38=60. 60+9=69. Yes, 69.\\n\\n
    </think>\\n\\nThe answer is 69.<|im_end|>

One paragraph per partial sum, every paragraph ends with "\\n\\n" (so the
thinking also ends with the delimiter right before </think>: a SpecExit cut
"after a delimiter, then </think>" produces text exactly like the training
data). Re-check paragraph k (1-based) opens with RECHECK_OPENERS[k-1], a
fixed phrase per index, so the model can tell how many re-checks it did.

Deterministic "randomness" (the engine's demo/bench decode greedily; a greedy
target reproduces the mode, never a coin flip, so slips and the amount of
overthinking are learnable functions of the problem):

  * Slip: iff the units digits of the first two numbers are both odd
    (exactly 25% of uniform problems). The first partial sum of the first
    pass is then written 10 too high ("17+5=32."), the rest of the first pass
    continues from the wrong value and states the wrong answer (answer + 10).
    The first re-check recomputes everything correctly and ends with
    "So the answer is actually 69."; later re-checks end "Yes, 69.".
  * Re-checks: R = min(units digit of the correct answer, 8), at least 1 for
    a slip (the correction needs one). R is in 0..8, mean about 4.4.

Signal labels per thinking token t (t = 0 is the first token after
"<think>\\n"; T = number of tokens before "</think>"):
  progress = t / T; remain = T - t (trained as log(remain + 1));
  confidence = 1 from the token that ends the paragraph stating the correct
  final answer (the "." after its number: "So the answer is 69." without a
  slip, "So the answer is actually 69." with one), else 0. Ending the
  thinking at any delimiter from there on gives the correct answer.
"""

import json
import random
import re

USER_TEMPLATE = "What is {}?"
THINK_OPEN = "<think>\n"
THINK_CLOSE = "</think>"
EOT = "<|im_end|>"
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
DELIMITER = "\n\n"

RECHECK_OPENERS = [
    "Wait, let me check.",
    "Let me check again.",
    "Hmm, once more.",
    "Let me verify.",
    "Checking again.",
    "One more check.",
    "Let me be sure.",
    "Just to be safe.",
]
MAX_RECHECKS = len(RECHECK_OPENERS)

# A Qwen3-style ChatML template with a <think> block: core/chat.c maps it to
# CHATML_THINK (it mentions <|im_start|> and <think>), so `specexit run`
# opens the assistant turn with "<think>\n". No default system prompt.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' and '</think>' in message.content %}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + message.content.split('</think>')[0].split('<think>')[-1].lstrip('\\n') "
    "+ '</think>\\n\\n' + message.content.split('</think>')[-1].lstrip('\\n') + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is not defined or enable_thinking %}{{- '<think>\\n' }}{%- endif %}"
    "{%- endif %}"
)


def chat_prompt(user):
    """The exact text `specexit run` feeds the model for one user turn."""
    return "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n" + THINK_OPEN


def problem_text(nums):
    return USER_TEMPLATE.format("+".join(str(n) for n in nums))


def parse_problem(user):
    m = re.fullmatch(r"What is (\d+(?:\+\d+)+)\?", user)
    if not m:
        raise ValueError(f"not a sumchain problem: {user!r}")
    return [int(x) for x in m.group(1).split("+")]


def has_slip(nums):
    return (nums[0] % 10) % 2 == 1 and (nums[1] % 10) % 2 == 1


def n_rechecks(nums):
    r = min(sum(nums) % 10, MAX_RECHECKS)
    return max(r, 1) if has_slip(nums) else r


def _chain(nums, slip):
    """Paragraph texts 'a+b=c.' of one pass; slip: the first sum is +10."""
    out, acc = [], nums[0]
    for i, b in enumerate(nums[1:]):
        s = acc + b + (10 if slip and i == 0 else 0)
        out.append(f"{acc}+{b}={s}.")
        acc = s
    return out, acc


class Trace:
    """One worked trace. Attributes:
    thinking: text between "<think>\\n" and "</think>" (ends with "\\n\\n")
    answer_text: text after "</think>" up to the end-of-turn token
    completion: thinking + "</think>" + answer_text + "<|im_end|>"
    conf_from: character offset in `thinking` of the "." that completes the
        statement of the correct answer (confidence = 1 from that token on)
    """

    def __init__(self, nums):
        self.nums = list(nums)
        self.answer = sum(nums)
        self.slip = has_slip(nums)
        self.rechecks = n_rechecks(nums)
        paras, first = _chain(nums, self.slip)
        paras = list(paras)
        paras.append(f"So the answer is {first}.")
        conf_para = None if self.slip else len(paras) - 1
        correct, _ = _chain(nums, False)
        for k in range(self.rechecks):
            body = " ".join([RECHECK_OPENERS[k]] + correct)
            if self.slip and k == 0:
                paras.append(body + f" So the answer is actually {self.answer}.")
                conf_para = len(paras) - 1
            else:
                paras.append(body + f" Yes, {self.answer}.")
        assert conf_para is not None
        self.paragraphs = paras
        self.thinking = "".join(p + DELIMITER for p in paras)
        # offset of the final "." of the answer-stating paragraph
        off = sum(len(p) + len(DELIMITER) for p in paras[:conf_para])
        self.conf_from = off + len(paras[conf_para]) - 1
        self.answer_text = f"\n\nThe answer is {self.answer}."
        self.completion = self.thinking + THINK_CLOSE + self.answer_text + EOT
        self.user = problem_text(nums)
        self.prompt = chat_prompt(self.user)


def random_problem(rng, min_terms=2, max_terms=6):
    n = rng.randint(min_terms, max_terms)
    return tuple(rng.randint(0, 99) for _ in range(n))


def make_problems(seed, count, exclude=(), min_terms=2, max_terms=6):
    """`count` distinct problems from `seed`, none in `exclude`."""
    rng = random.Random(seed)
    seen, out = set(exclude), []
    while len(out) < count:
        p = random_problem(rng, min_terms, max_terms)
        if p in seen:
            continue
        seen.add(p)
        out.append(p)
    return out


def read_problem_file(path):
    """Problems of a JSON-lines file {"prompt": ..., "answer": ...}."""
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                nums = parse_problem(d["prompt"])
                assert str(sum(nums)) == d["answer"], d
                out.append(tuple(nums))
    return out


def write_problem_file(path, problems):
    with open(path, "w") as f:
        for p in problems:
            f.write(json.dumps({"prompt": problem_text(p), "answer": str(sum(p))}) + "\n")


ANSWER_RE = re.compile(r"The answer is (-?\d+)\.")


def final_answer(generated):
    """The N of the last "The answer is N." after </think> (else anywhere), or None."""
    tail = generated.split(THINK_CLOSE)[-1]
    m = ANSWER_RE.findall(tail)
    return m[-1] if m else None


def analyse_generation(nums, generated):
    """Compares a generated completion (text after "<think>\\n") with the
    reference trace: answer correct, thinking identical, slip reproduced
    (first-pass answer as the rule says), re-check count reproduced."""
    ref = Trace(nums)
    ans = final_answer(generated)
    thinking = generated.split(THINK_CLOSE)[0] if THINK_CLOSE in generated else generated
    first = re.search(r"So the answer is (\d+)\.", thinking)
    first_ans = int(first.group(1)) if first else None
    slipped = first_ans is not None and first_ans != ref.answer
    rechecks = sum(thinking.count(o) for o in RECHECK_OPENERS)
    return {
        "correct": ans == str(ref.answer),
        "exact": generated == ref.completion or generated == ref.completion[: -len(EOT)],
        "slip_ref": ref.slip,
        "slip_ok": slipped == ref.slip and (not ref.slip or first_ans == ref.answer + 10),
        "rechecks_ref": ref.rechecks,
        "rechecks": rechecks,
        "rechecks_ok": rechecks == ref.rechecks,
    }


if __name__ == "__main__":
    import sys
    t = Trace(parse_problem(sys.argv[1]) if len(sys.argv) > 1 else [17, 5, 38, 9])
    print(t.prompt + t.completion)
    print(f"slip={t.slip} rechecks={t.rechecks} conf_from={t.conf_from!r}: {t.thinking[t.conf_from - 5:t.conf_from + 1]!r}")
