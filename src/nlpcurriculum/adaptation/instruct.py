"""Instruction tuning: prompts prepended to responses, the loss masked to the responses.

Instruction tuning (FLAN, Wei et al. 2021, arXiv:2109.01652; InstructGPT's supervised step,
Ouyang et al. 2022, arXiv:2203.02155) fine-tunes a language model on examples written as
``instruction + input`` (the prompt) followed by the wanted response, so that at inference a
prompt alone makes the model answer it. Here an example is encoded as

    ids = encode(prompt + separator) + encode(response) + [eos]      (L ids, P of them the prompt)

and trained with next-token targets ``x = ids[:-1]``, ``y = ids[1:]`` (``L - 1`` positions).
Position ``t`` predicts ``ids[t + 1]``, so the response's tokens (and the closing ``eos``) are the
targets of positions ``P - 1 .. L - 2``. **Response masking** sets the targets of positions
``0 .. P - 2`` (the prompt's own tokens) to ``IGNORE`` (-100), which the model's cross-entropy
skips: the loss is the mean over response tokens only, and the prompt's tokens receive no
gradient as targets (they still shape the response's loss as context). Without masking (the
ablation) every next token counts, as in pretraining.

Worked example (tested): prompt ids ``[5, 6, 7]`` (P = 3), response ids ``[8, 9]``, eos 0:
``ids = [5, 6, 7, 8, 9, 0]``, ``x = [5, 6, 7, 8, 9]``, masked ``y = [-100, -100, 8, 9, 0]``,
unmasked ``y = [6, 7, 8, 9, 0]``.

Batches (:class:`InstructionBatcher`) hold whole examples padded on the right to the longest in
the batch (``x`` with ``pad_id``, ``y`` with ``IGNORE``): with causal attention a padded position
comes after every real one, so it changes no real position's output, and its target is skipped.

Evaluation: :func:`response_nll` (teacher-forced loss per response token) and
:func:`greedy_responses` (arg-max decoding with the library's :func:`~nlpcurriculum.decoding.generate`
from the prompt until ``eos``), scored by exact match against the task's reference.

Dimension legend: B examples in a batch, L the longest example's ids - 1 (the batch's positions).

Left out: packing several examples into one window, chat templates with roles, multi-turn data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nlpcurriculum.decoding.generate import generate

__all__ = [
    "IGNORE",
    "InstructionBatcher",
    "InstructionExample",
    "encode_example",
    "greedy_responses",
    "response_nll",
    "shifted",
]

#: The target id the model's cross-entropy skips (``MiniFormer.forward``'s ``ignore_index``).
IGNORE = -100


@dataclass(frozen=True)
class InstructionExample:
    """One encoded example: ``ids`` = prompt ids + response ids + eos; the first ``n_prompt`` are the prompt."""

    ids: tuple[int, ...]
    n_prompt: int

    def __post_init__(self) -> None:
        if not 1 <= self.n_prompt < len(self.ids):
            raise ValueError(f"need 1 <= n_prompt < len(ids), got {self.n_prompt} and {len(self.ids)}")

    @property
    def prompt(self) -> list[int]:
        """The prompt's ids (what decoding starts from)."""
        return list(self.ids[: self.n_prompt])


def encode_example(encode: Any, prompt: str, response: str, eos: int,
                   separator: str = "\n\n") -> InstructionExample:
    """Encode ``prompt + separator`` and ``response`` separately, then append ``eos``.

    Args:
        encode: ``encode(text) -> list[int]`` (e.g. ``tokenizers.corpus.encode_text`` bound to
            the pipeline tokenizer).
        prompt: the instruction and its input.
        response: the wanted answer.
        eos: the end-of-text id that closes the response (decoding stops on it).
        separator: text between prompt and response, part of the prompt.
    """
    p = list(encode(prompt + separator))
    r = list(encode(response))
    return InstructionExample(tuple(p + r + [eos]), len(p))


def shifted(example: InstructionExample, masked: bool) -> tuple[list[int], list[int]]:
    """``(x, y)`` next-token pairs of one example, ``L - 1`` each; prompt targets ``IGNORE`` when masked."""
    ids = list(example.ids)
    x, y = ids[:-1], ids[1:]
    if masked:
        y[: example.n_prompt - 1] = [IGNORE] * (example.n_prompt - 1)
    return x, y


def _pad(examples: Sequence[InstructionExample], masked: bool, pad_id: int) -> tuple[Tensor, Tensor]:
    pairs = [shifted(e, masked) for e in examples]
    L = max(len(x) for x, _ in pairs)
    x = torch.full((len(pairs), L), pad_id, dtype=torch.long)  # (B, L)
    y = torch.full((len(pairs), L), IGNORE, dtype=torch.long)  # (B, L)
    for i, (xi, yi) in enumerate(pairs):
        x[i, : len(xi)] = torch.tensor(xi)
        y[i, : len(yi)] = torch.tensor(yi)
    return x, y


class InstructionBatcher:
    """Padded batches of whole examples, drawn at random with replacement (a seeded generator).

    A :class:`~nlpcurriculum.training.trainer.BatchSource`: ``next_batch`` for training,
    ``eval_batches`` (the first examples in order, the same every call) for validation.

    Args:
        examples: the encoded examples.
        masked: mask the prompt's targets (response-only loss) or not (the ablation).
        pad_id: the id written in ``x`` after an example's end (its targets are ``IGNORE``).
        seed: seeds the draw of examples.
    """

    def __init__(self, examples: Sequence[InstructionExample], masked: bool, pad_id: int,
                 seed: int = 0) -> None:
        if not examples:
            raise ValueError("an InstructionBatcher needs at least one example")
        self.examples, self.masked, self.pad_id = list(examples), masked, pad_id
        self.generator = torch.Generator().manual_seed(seed)

    def next_batch(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """``batch_size`` random examples, padded: ``(x, y)``, ``(B, L)`` each."""
        idx = torch.randint(0, len(self.examples), (batch_size,), generator=self.generator)
        return _pad([self.examples[i] for i in idx.tolist()], self.masked, self.pad_id)

    def eval_batches(self, batch_size: int, n_batches: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The first ``batch_size * n_batches`` examples in order (fewer if there are fewer)."""
        total = min(batch_size * n_batches, len(self.examples))
        for lo in range(0, total, batch_size):
            yield _pad(self.examples[lo:min(lo + batch_size, total)], self.masked, self.pad_id)

    def state_dict(self) -> dict[str, Any]:
        return {"n_examples": len(self.examples), "masked": self.masked,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state["n_examples"], state["masked"]) != (len(self.examples), self.masked):
            raise ValueError(f"batcher state is for {state['n_examples']} examples (masked="
                             f"{state['masked']}), this batcher has {len(self.examples)} ({self.masked})")
        self.generator.set_state(state["generator"])


@torch.no_grad()
def response_nll(model: nn.Module, examples: Sequence[InstructionExample], pad_id: int,
                 batch_size: int = 32) -> np.ndarray:
    """Teacher-forced mean cross-entropy (nats) per response token (eos included), per example: ``(n,)``."""
    was_training = model.training
    model.eval()
    out = []
    for lo in range(0, len(examples), batch_size):
        x, y = _pad(examples[lo:lo + batch_size], True, pad_id)  # (B, L) each
        logits = model(x).logits  # (B, L, V)
        nll = nn.functional.cross_entropy(logits.transpose(1, 2), y, ignore_index=IGNORE,
                                          reduction="none")  # (B, L), 0 where ignored
        counts = (y != IGNORE).sum(dim=1)  # (B,)
        out.append((nll.double().sum(dim=1) / counts).numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def greedy_responses(model: nn.Module, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                     eos: int) -> list[list[int]]:
    """Arg-max continuations of each prompt up to ``eos`` (not included), in the prompts' order.

    Prompts of one length decode together as one batch (:func:`generate` advances a batch of
    equal-length prompts in lockstep) with the KV cache; each is given at most ``max_new_tokens``
    and never more than the model's window (``max_seq_len``) minus its length.
    """
    window = model.config.max_seq_len
    groups: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        groups[len(p)].append(i)
    out: list[list[int]] = [[] for _ in prompts]
    for length, idx in sorted(groups.items()):
        budget = min(max_new_tokens, window - length)
        if budget < 1:
            continue  # no room left to answer: the empty response
        rows = generate(model, [list(prompts[i]) for i in idx], budget, stop_id=eos, cache=True)
        for i, row in zip(idx, rows):
            out[i] = row[:-1] if row and row[-1] == eos else row
    return out
