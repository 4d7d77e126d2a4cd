"""Instruction/response pairs over several task types whose correct response is computable.

A small stand-in for instruction-tuning data (in the spirit of Self-Instruct, Wang et al. 2022,
arXiv:2212.10560, but with programmatic ground truth): every record has an instruction, an input
and the one correct response, and :func:`reference_response` / :func:`is_correct` recompute it, so
fine-tuning and preference experiments can be scored exactly.

Task types (several paraphrased instruction templates each):
* ``first_sentence``: "summarise" a passage by returning its first sentence;
* ``uppercase``: the input in upper case;
* ``count_words``: the number of whitespace-separated words;
* ``sort_list``: a comma-separated list of words or numbers, sorted ascending;
* ``arithmetic``: the sum or product of two numbers;
* ``reverse_words``: the words of a sentence in reverse order.

Left out: open-ended generation tasks, multi-turn dialogue and tool use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nlpcurriculum.data.synthetic.base import NOUNS, as_rng, make_paragraph, make_sentence

TASK_TYPES = (
    "first_sentence", "uppercase", "count_words", "sort_list", "arithmetic", "reverse_words"
)

TEMPLATES = {
    "first_sentence": ["Summarize the passage in one sentence.",
                       "Give a one-sentence summary of the text below.",
                       "What is the main point of this passage? Answer with its first sentence."],
    "uppercase": ["Convert the text to uppercase.", "Rewrite the following in capital letters.",
                  "Make every letter of this sentence uppercase."],
    "count_words": ["How many words are in the text?", "Count the words in the following sentence.",
                    "Return the number of words below."],
    "sort_list": ["Sort the list in ascending order.",
                  "Arrange these items from smallest to largest.",
                  "Put the following items in sorted order."],
    "arithmetic": ["Compute the result.", "Calculate the following.",
                   "What is the answer to this problem?"],
    "reverse_words": ["Reverse the order of the words.",
                      "Write the words of this sentence backwards.",
                      "List the words in reverse order."],
}


def _sorted_items(text: str) -> list[str]:
    items = [s.strip() for s in text.split(",")]
    if all(s.lstrip("-").isdigit() for s in items):
        return [str(v) for v in sorted(int(s) for s in items)]
    return sorted(items)


def reference_response(task_type: str, text: str) -> str:
    """The one correct response for ``task_type`` on input ``text``."""
    if task_type == "first_sentence":
        end = text.find(". ")
        return text if end < 0 else text[: end + 1]
    if task_type == "uppercase":
        return text.upper()
    if task_type == "count_words":
        return str(len(text.split()))
    if task_type == "sort_list":
        return ", ".join(_sorted_items(text))
    if task_type == "arithmetic":
        a, op, b = text.split()
        return str(int(a) + int(b) if op == "+" else int(a) * int(b))
    if task_type == "reverse_words":
        return " ".join(text.split()[::-1])
    raise ValueError(f"unknown task type {task_type!r} (known: {', '.join(TASK_TYPES)})")


def is_correct(record: dict, response: str) -> bool:
    """Whether ``response`` equals the reference (after stripping surrounding whitespace)."""
    return response.strip() == reference_response(record["task_type"], record["input"]).strip()


def _make_input(task_type: str, rng: np.random.Generator) -> str:
    if task_type == "first_sentence":
        return make_paragraph(rng, int(rng.integers(2, 5)))
    if task_type in ("uppercase", "count_words", "reverse_words"):
        return make_sentence(rng)
    if task_type == "sort_list":
        k = int(rng.integers(3, 8))
        if rng.random() < 0.5:
            return ", ".join(str(v) for v in rng.integers(0, 1000, size=k).tolist())
        return ", ".join(NOUNS[i] for i in rng.choice(len(NOUNS), size=k, replace=False).tolist())
    if task_type == "arithmetic":
        a, b = rng.integers(0, 1000, size=2).tolist()
        return f"{a} {'+' if rng.random() < 0.5 else '*'} {b}"
    raise ValueError(f"unknown task type {task_type!r}")


@dataclass
class InstructionConfig:
    """Attributes:
        n: number of records.
        task_types: which task types to draw from (uniformly).
    """

    n: int = 1000
    task_types: tuple[str, ...] = TASK_TYPES

    def __post_init__(self) -> None:
        self.task_types = tuple(self.task_types)
        unknown = set(self.task_types) - set(TASK_TYPES)
        if not self.task_types or unknown:
            raise ValueError(
                f"task_types must be a non-empty subset of {TASK_TYPES}, got {self.task_types}"
            )
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")


def format_prompt(record: dict) -> str:
    """The prompt a model sees: instruction, then the input."""
    return f"{record['instruction']}\n\n{record['input']}"


def generate(
    cfg: InstructionConfig | None = None, seed: int | np.random.Generator = 0
) -> list[dict]:
    """Instruction records ``{"task_type", "instruction", "input", "prompt", "response"}``."""
    cfg = cfg or InstructionConfig()
    rng = as_rng(seed)
    out = []
    for _ in range(cfg.n):
        t = cfg.task_types[int(rng.integers(len(cfg.task_types)))]
        templates = TEMPLATES[t]
        rec = {"task_type": t, "instruction": templates[int(rng.integers(len(templates)))],
               "input": _make_input(t, rng)}
        rec["prompt"] = format_prompt(rec)
        rec["response"] = reference_response(t, rec["input"])
        out.append(rec)
    return out
