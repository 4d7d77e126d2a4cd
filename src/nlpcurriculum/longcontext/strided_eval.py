"""Perplexity with a strided sliding evaluation, and the context length where it collapses.

A model of context ``L`` cannot score a long document in one pass. Cutting the document into
disjoint windows of ``L`` tokens (**no overlap**, stride ``S = L``) is cheap, but the first token
of every window is predicted with no context and the average token sees only ``L / 2``. The
strided evaluation of the Hugging Face perplexity guide ("Perplexity of fixed-length models")
slides the window by ``S < L`` and scores only the tokens it has not scored yet, the last
``S`` of the window (the first window scores all of its own): every target is scored exactly once,
each (after the first window) with at least ``L - S`` tokens of context. Smaller strides cost
``L / S`` forward passes per token and give lower, more faithful perplexities.

Windows never cross a document boundary (:func:`documents`): a document's first token is not
predicted (nothing precedes it), every other token is.

Worked example (a document of 7 tokens, so 6 targets, ``L = 4``, ``S = 2``): window 1 covers
inputs 0..3 and scores targets 1..4 (all four); window 2 covers inputs 2..5 and scores targets 5
and 6, the last two, with inputs 2..4 as context. Targets scored: 6, each once.

The **collapse point** of a perplexity curve over context lengths ``L_1 < L_2 < ...`` (the
first being the training context): the first ``L_i`` whose perplexity exceeds ``factor`` times
the first length's, or ``None`` when none does within the lengths measured.

Dimension legend: B windows in a batch, L window length, S stride, V vocabulary.

Left out: batching windows of different documents together (windows of one document and one
length are batched), and bits per byte (the caller converts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["StridedScore", "collapse_point", "documents", "strided_loss"]


def documents(tokens: np.ndarray, eos_id: int, min_length: int = 2) -> list[np.ndarray]:
    """The documents of an end-of-text-separated stream, each with at least ``min_length`` tokens
    (the end-of-text token left out)."""
    ends = np.flatnonzero(np.asarray(tokens) == eos_id)
    starts = np.r_[0, ends[:-1] + 1]
    return [np.asarray(tokens[a:b], dtype=np.int64) for a, b in zip(starts, ends) if b - a >= min_length]


@dataclass
class StridedScore:
    """Attributes:
        loss: mean next-token loss (nats) over every scored target.
        perplexity: ``exp(loss)``.
        n_targets: targets scored (each document's length minus one, summed).
        n_forward_tokens: input tokens run through the model (the cost).
    """

    loss: float
    perplexity: float
    n_targets: int
    n_forward_tokens: int


def _windows(n: int, length: int, stride: int) -> list[tuple[int, int, int]]:
    """``(begin, end, first_scored)`` over inputs ``0 .. n - 2`` (targets ``1 .. n - 1``)."""
    out, prev_end, begin = [], 0, 0
    while prev_end < n - 1:
        end = min(begin + length, n - 1)
        out.append((begin, end, prev_end - begin))  # score targets of inputs prev_end .. end - 1
        prev_end = end
        begin += stride
    return out


@torch.no_grad()
def strided_loss(model: nn.Module, docs: Sequence[np.ndarray], length: int, stride: int,
                 batch_size: int = 16) -> StridedScore:
    """Mean loss of ``model`` over ``docs`` with windows of ``length`` tokens moved by ``stride``.

    Args:
        model: maps ``(B, L)`` ids to an output with ``.logits`` ``(B, L, V)``.
        docs: documents as int arrays.
        length: L, the window (context) length.
        stride: S, ``1 <= S <= L``; ``S = L`` is the no-overlap evaluation.
        batch_size: windows per forward pass.
    """
    if not 1 <= stride <= length:
        raise ValueError(f"need 1 <= stride <= length, got stride {stride}, length {length}")
    total, count, forward = 0.0, 0, 0
    for doc in docs:
        ids = torch.from_numpy(np.asarray(doc, dtype=np.int64))
        spans = _windows(len(ids), length, stride)
        full = [s for s in spans if s[1] - s[0] == length]
        short = [s for s in spans if s[1] - s[0] != length]
        groups = [full[i:i + batch_size] for i in range(0, len(full), batch_size)] + [[s] for s in short]
        for group in groups:
            x = torch.stack([ids[a:b] for a, b, _ in group])  # (B, L)
            y = torch.stack([ids[a + 1:b + 1] for a, b, _ in group]).clone()  # (B, L): next tokens
            for row, (_, _, first) in enumerate(group):
                y[row, :first] = -100  # context only: scored by an earlier window
            logits = model(x).logits  # (B, L, V)
            total += float(F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1),
                                           ignore_index=-100, reduction="sum"))
            count += int((y != -100).sum())
            forward += x.numel()
    loss = total / count
    return StridedScore(loss, math.exp(loss), count, forward)


def collapse_point(lengths: Sequence[int], perplexities: Sequence[float | None],
                   factor: float) -> int | None:
    """The first length whose perplexity exceeds ``factor`` x the first length's (see the module
    docstring); a ``None`` perplexity (the model cannot run there) counts as collapsed.

    Example: lengths ``[32, 64, 128]``, perplexities ``[100, 150, 260]``, factor 2: 260 > 200,
    so the collapse point is 128.
    """
    if len(lengths) != len(perplexities) or not lengths or perplexities[0] is None:
        raise ValueError("need one perplexity per length, the first one measured")
    base = perplexities[0]
    for L, p in zip(lengths[1:], perplexities[1:]):
        if p is None or not math.isfinite(p) or p > factor * base:
            return L
    return None
