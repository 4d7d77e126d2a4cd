"""Count n-gram language models over token ids (unigram, bigram) with add-k smoothing.

The control a trained language model has to beat: a model that predicts the next token from
counts alone. The unigram ignores context, the bigram looks at the current token only:

    p(w)         = (c(w) + k) / (N + k V)                     (order 1)
    p(w | v)     = (c(v w) + k) / (c(v .) + k V)              (order 2)

with ``c`` counts over the training stream, ``N`` its number of predicted tokens, ``c(v .)`` the
number of bigrams that start with ``v`` and ``V`` the vocabulary size. ``k > 0`` gives every
unseen pair some mass (Lidstone smoothing; ``k = 1`` is Laplace's add-one), so the loss on new
text is finite. How much mass to give is a choice: :func:`tune_add_k` picks ``k`` on a held-out
tail of the *training* stream, never on the evaluation data, then refits on the whole stream.

Counts are kept sparse (the distinct pair codes ``v * V + w``, sorted, and their counts), so a
4096-token vocabulary needs memory for the pairs seen, not for ``V^2`` cells.

Worked example: train ``[0, 1, 0, 1, 1]``, V = 2, k = 1. Pairs ``(0,1), (1,0), (0,1), (1,1)``:
``c(0 1) = 2, c(0 .) = 2``, so ``p(1 | 0) = (2 + 1) / (2 + 2) = 0.75``; ``p(0 | 0) = 0.25``.
Unigram over the predicted tokens ``[1, 0, 1, 1]``: ``p(1) = (3 + 1) / (4 + 2) = 0.667``.

Dimension legend: N stream length, V vocabulary.

Left out: Kneser-Ney and other discounting schemes (the word-level KN model is
:mod:`nlpcurriculum.data.ngram_lm`), orders above two, backoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ORDERS", "CountNgram", "fit_count_ngram", "tune_add_k"]

ORDERS = (1, 2)


@dataclass(frozen=True)
class CountNgram:
    """An add-k smoothed unigram or bigram model fitted on one token stream.

    Attributes:
        order: 1 (unigram) or 2 (bigram).
        vocab_size: V.
        k: the add-k pseudo-count (> 0).
        codes: order 2: sorted distinct pair codes ``v * V + w``; order 1: ``arange(V)``.
        counts: the count of each code (same length as ``codes``).
        totals: order 2: ``(V,)`` bigrams starting with each token; order 1: ``(1,)``, N.
    """

    order: int
    vocab_size: int
    k: float
    codes: np.ndarray
    counts: np.ndarray
    totals: np.ndarray

    def nll(self, prev: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Negative log-likelihood in nats of each ``target`` given the token before it.

        Args:
            prev: the preceding token of each target (ignored by the unigram), any shape.
            target: the predicted tokens, ``prev``'s shape.

        Returns:
            float64 array of ``target``'s shape.
        """
        prev = np.asarray(prev, dtype=np.int64)
        target = np.asarray(target, dtype=np.int64)
        if prev.shape != target.shape:
            raise ValueError(f"prev {prev.shape} and target {target.shape} differ in shape")
        V = self.vocab_size
        if self.order == 1:
            count = self.counts[target]
            total = self.totals[0]
        else:
            code = prev * V + target
            pos = np.searchsorted(self.codes, code)  # where the code would sit in the sorted list
            pos_in = np.minimum(pos, len(self.codes) - 1)
            seen = (pos < len(self.codes)) & (self.codes[pos_in] == code)
            count = np.where(seen, self.counts[pos_in], 0)
            total = self.totals[prev]
        return -np.log((count + self.k) / (total + self.k * V))


def fit_count_ngram(tokens: np.ndarray, order: int, vocab_size: int, k: float) -> CountNgram:
    """Count the n-grams of a 1-D token stream (``tokens[1:]`` are the predicted tokens).

    The unigram counts ``tokens[1:]`` (the same tokens the bigram predicts), so both models
    are fitted on the same predictions.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order}")
    if not k > 0:
        raise ValueError(f"k must be > 0 (add-k smoothing), got {k}")
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim != 1 or len(tokens) < 2:
        raise ValueError(f"tokens must be a 1-D stream of >= 2 ids, got shape {tokens.shape}")
    if tokens.min() < 0 or tokens.max() >= vocab_size:
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got [{tokens.min()}, {tokens.max()}]")
    V = vocab_size
    if order == 1:
        counts = np.bincount(tokens[1:], minlength=V)  # (V,)
        return CountNgram(1, V, float(k), np.arange(V), counts, np.array([len(tokens) - 1]))
    codes, counts = np.unique(tokens[:-1] * V + tokens[1:], return_counts=True)
    totals = np.bincount(tokens[:-1], minlength=V)  # (V,) c(v .)
    return CountNgram(2, V, float(k), codes, counts, totals)


def tune_add_k(
    tokens: np.ndarray, order: int, vocab_size: int, grid: Sequence[float], tuning_fraction: float = 0.1
) -> tuple[CountNgram, dict[float, float]]:
    """Pick ``k`` from ``grid`` on a held-out tail of the training stream, then refit on all of it.

    The stream's last ``tuning_fraction`` is held out; counts from the rest score it for each
    ``k`` (mean NLL per token); the best ``k`` is refitted on the whole stream.

    Returns:
        ``(model, {k: tuning loss})``.
    """
    if not 0 < tuning_fraction < 1:
        raise ValueError(f"tuning_fraction must be in (0, 1), got {tuning_fraction}")
    if not grid:
        raise ValueError("grid of k values is empty")
    tokens = np.asarray(tokens, dtype=np.int64)
    cut = int(len(tokens) * (1 - tuning_fraction))
    if cut < 2 or len(tokens) - cut < 2:
        raise ValueError(f"a stream of {len(tokens)} tokens is too short to hold out "
                         f"{tuning_fraction:g} of it for tuning k")
    head, tail = tokens[:cut], tokens[cut - 1:]  # the tail's first target follows the head's last
    losses = {}
    for k in grid:
        model = fit_count_ngram(head, order, vocab_size, k)
        losses[float(k)] = float(model.nll(tail[:-1], tail[1:]).mean())
    best = min(losses, key=losses.get)
    return fit_count_ngram(tokens, order, vocab_size, best), losses
