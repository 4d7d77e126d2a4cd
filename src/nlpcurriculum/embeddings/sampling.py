"""The three sampling tricks of word2vec, and the training examples they produce.

Mikolov et al., "Distributed Representations of Words and Phrases and their Compositionality"
(arXiv:1310.4546) and the word2vec.c code that came with it:

1. **Subsampling of frequent words** (paper section 2.3). Each occurrence of word ``w`` is discarded
   with probability ``P_discard(w) = 1 - sqrt(t / f(w))``, where ``f(w)`` is the word's relative
   frequency and ``t`` a threshold (1e-5 in the paper, for billion-word corpora). Words rarer than
   ``t`` are always kept. "the" carries little information about its neighbours, so dropping most
   of its occurrences both speeds training and lets rarer words enter each other's windows.
   word2vec.c (and gensim) use a slightly gentler keep probability, ``sqrt(t/f) + t/f``; both are
   here (``variant="paper"`` / ``"word2vec"``).

   Hand-worked example: counts ``[90, 9, 1]``, ``t = 0.01``, so ``f = [0.9, 0.09, 0.01]``:
   paper keep = ``[sqrt(1/90), sqrt(1/9), 1] = [0.1054, 0.3333, 1.0]``;
   word2vec keep = ``[0.1054 + 0.0111, 0.3333 + 0.1111, min(1, 2)] = [0.1165, 0.4444, 1.0]``.

2. **Negative sampling** (section 2.2). Instead of a softmax over the vocabulary, the model tells
   the true (input, output) pair from ``k`` "noise" words drawn from the unigram distribution raised
   to the 3/4 power, ``P_n(w) ∝ count(w)^0.75``. The power flattens the distribution, so rare words
   are drawn more often than their frequency. Hand-worked: counts ``[16, 1]`` -> ``[16^0.75, 1] =
   [8, 1]`` -> ``P_n = [8/9, 1/9]`` (instead of ``[16/17, 1/17]``).

3. **Dynamic window** (arXiv:1301.3781 section 3.2; word2vec.c's ``b = rand() % window``). For each
   centre word the window size ``R`` is drawn uniformly from ``1..W``, so a context word at distance
   ``d`` is used with probability ``P(R >= d) = (W - d + 1) / W``: near words weigh more than far
   ones. Hand-worked, ``W = 5``: distances 1..5 are used with probabilities 1, 0.8, 0.6, 0.4, 0.2,
   and a centre word gets on average ``2 * (1 + 0.8 + 0.6 + 0.4 + 0.2) = 6 = W + 1`` context words.

Subsampling happens before windows are taken (as in word2vec.c), so windows span the surviving
words and effectively reach further.

Dimension names: ``N`` tokens in the (subsampled) stream, ``P`` skip-gram pairs, ``M`` CBOW
examples, ``W`` the maximum window, ``V`` vocabulary size.

Left out: word2vec.c's 1e8-entry unigram table (``torch.multinomial`` samples the same
distribution exactly) and its hierarchical-softmax alternative to negative sampling.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

__all__ = [
    "keep_probabilities",
    "noise_distribution",
    "sample_window_sizes",
    "context_inclusion_probability",
    "skipgram_pairs",
    "cbow_examples",
]


def keep_probabilities(
    counts: np.ndarray, t: float, variant: Literal["paper", "word2vec"] = "word2vec"
) -> np.ndarray:
    """Probability of keeping each occurrence of each word under frequent-word subsampling.

    Args:
        counts: word counts, shape ``(V,)``.
        t: threshold; ``0`` disables subsampling (everything kept).
        variant: ``"paper"`` for ``min(1, sqrt(t/f))`` (arXiv:1310.4546 eq. 5 as a keep
            probability), ``"word2vec"`` for word2vec.c/gensim's ``min(1, sqrt(t/f) + t/f)``.

    Returns:
        float64 array of shape ``(V,)`` with values in ``(0, 1]``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or (counts <= 0).any():
        raise ValueError("counts must be a 1-D array of positive numbers")
    if t < 0:
        raise ValueError(f"subsampling threshold t must be >= 0, got {t}")
    if t == 0:
        return np.ones_like(counts)
    ratio = t / (counts / counts.sum())  # t / f(w)
    if variant == "paper":
        keep = np.sqrt(ratio)
    elif variant == "word2vec":
        keep = np.sqrt(ratio) + ratio
    else:
        raise ValueError(f"variant must be 'paper' or 'word2vec', got {variant!r}")
    return np.minimum(keep, 1.0)


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """The negative-sampling distribution ``count^power / sum(count^power)``, shape ``(V,)``."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or (counts <= 0).any():
        raise ValueError("counts must be a 1-D array of positive numbers")
    weights = counts**power
    return weights / weights.sum()


def sample_window_sizes(n: int, window: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw each centre word's effective window ``R`` uniformly from ``1..window``; int64 ``(n,)``."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    return torch.randint(1, window + 1, (n,), generator=generator)


def context_inclusion_probability(distance: int | np.ndarray, window: int) -> np.ndarray:
    """``P(R >= d) = (W - d + 1) / W`` for ``1 <= d <= W`` and 0 beyond: how often a context word
    at distance ``d`` is used under the dynamic window."""
    d = np.asarray(distance, dtype=np.float64)
    if (d < 1).any():
        raise ValueError("distance must be >= 1")
    return np.where(d <= window, (window - d + 1) / window, 0.0)


def _check_stream(ids: torch.Tensor, sentence_ids: torch.Tensor, window_sizes: torch.Tensor) -> None:
    if not (ids.shape == sentence_ids.shape == window_sizes.shape) or ids.ndim != 1:
        raise ValueError(f"ids, sentence_ids and window_sizes must be 1-D of the same length, got "
                         f"{tuple(ids.shape)}, {tuple(sentence_ids.shape)}, {tuple(window_sizes.shape)}")


def skipgram_pairs(
    ids: torch.Tensor, sentence_ids: torch.Tensor, window_sizes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """All (centre, context) pairs of a token stream under per-centre window sizes.

    Vectorised over the stream: for each distance ``d`` one boolean mask picks the centres whose
    window reaches ``d`` and whose neighbour at ``±d`` is in the same sentence.

    Hand-worked: ids ``[0, 1, 2, 3]`` in one sentence with window sizes ``[1, 2, 1, 1]`` give the
    distance-1 pairs (0,1) (1,2) (2,3) (1,0) (2,1) (3,2) and, since only centre 1 reaches
    distance 2, the pair (1,3): 7 pairs.

    Args:
        ids: word ids, int64 ``(N,)``.
        sentence_ids: sentence of each token, ``(N,)``.
        window_sizes: effective window of each centre, ``(N,)``, from :func:`sample_window_sizes`.

    Returns:
        ``(centres, contexts)``, int64 ``(P,)`` each.
    """
    _check_stream(ids, sentence_ids, window_sizes)
    centres, contexts = [], []
    max_window = int(window_sizes.max()) if len(ids) else 0
    for d in range(1, min(max_window, len(ids) - 1) + 1):
        same = sentence_ids[:-d] == sentence_ids[d:]  # (N-d,): token i and i+d share a sentence
        right = same & (window_sizes[:-d] >= d)  # centre i, context i+d
        centres.append(ids[:-d][right])
        contexts.append(ids[d:][right])
        left = same & (window_sizes[d:] >= d)  # centre i+d, context i
        centres.append(ids[d:][left])
        contexts.append(ids[:-d][left])
    if not centres:
        empty = torch.empty(0, dtype=torch.int64)
        return empty, empty.clone()
    return torch.cat(centres), torch.cat(contexts)


def cbow_examples(
    ids: torch.Tensor, sentence_ids: torch.Tensor, window_sizes: torch.Tensor, pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """CBOW examples: each centre word with its (padded) context words.

    Args:
        ids: word ids, int64 ``(N,)``.
        sentence_ids: sentence of each token, ``(N,)``.
        window_sizes: effective window of each centre, ``(N,)``.
        pad: the id that fills unused context slots (the model's padding row, usually ``V``).

    Returns:
        ``(centres, contexts)``: int64 ``(M,)`` and ``(M, 2W)``; centres without any context
        word (a one-word sentence) are dropped. Slots are ordered by offset ``-W..-1, 1..W``.
    """
    _check_stream(ids, sentence_ids, window_sizes)
    n = len(ids)
    if n == 0:
        return torch.empty(0, dtype=torch.int64), torch.empty(0, 0, dtype=torch.int64)
    w = int(window_sizes.max())
    offsets = torch.cat([torch.arange(-w, 0), torch.arange(1, w + 1)])  # (2W,)
    pos = torch.arange(n).unsqueeze(1) + offsets  # (N, 2W) position of each context slot
    inside = (pos >= 0) & (pos < n)
    pos_c = pos.clamp(0, n - 1)
    valid = (
        inside
        & (sentence_ids[pos_c] == sentence_ids.unsqueeze(1))
        & (offsets.abs() <= window_sizes.unsqueeze(1))
    )  # (N, 2W)
    contexts = torch.where(valid, ids[pos_c], torch.full_like(pos_c, pad))  # (N, 2W)
    has_context = valid.any(dim=1)
    return ids[has_context], contexts[has_context]
