"""Statistics of distributions and rankings: entropy, mutual information, Spearman's rho.

* :func:`entropy`: Shannon entropy ``H(p) = -sum_i p_i log p_i`` in nats over the last axis,
  with ``0 * log 0 = 0`` (an id with probability 0 adds nothing).
* :func:`normalized_entropy`: the entropy of a histogram divided by its maximum ``log(K)`` over
  ``K`` bins: 1 = uniform (e.g. a router that spreads tokens evenly), 0 = one bin.
* :func:`mutual_information_bits`: ``I(A; B) = sum_ab p(a, b) log2(p(a, b) / (p(a) p(b)))`` of
  two aligned label sequences under their empirical joint distribution: how many bits knowing
  ``A`` tells about ``B``.
* :func:`spearman`: Spearman's rank correlation, the Pearson correlation of the ranks.

Worked examples (tested): ``entropy([0.5, 0.5]) = log 2 = 0.693`` nats; ``normalized_entropy``
of counts ``[7, 0, 0]`` is 0 and of ``[5, 5, 5, 5]`` is 1; two identical fair binary labels
share ``I = 1`` bit; ``spearman([1, 2, 3, 4], [1, 3, 2, 4]) = 1 - 6 * 2 / (4 * 15) = 0.8``.

Left out: confidence intervals, Kendall's tau, estimators of entropy that correct for small
samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

__all__ = ["entropy", "mutual_information_bits", "normalized_entropy", "spearman"]


def entropy(probs: Tensor) -> Tensor:
    """Shannon entropy in nats over the last axis (``0 * log 0`` counted as 0).

    Args:
        probs: ``(..., V)`` probabilities, each row summing to 1.

    Returns:
        ``(...)`` entropies, in ``[0, log V]``.
    """
    logp = torch.where(probs > 0, probs.log(), torch.zeros_like(probs))
    return -(probs * logp).sum(dim=-1)


def normalized_entropy(counts: Tensor) -> float:
    """Entropy of ``counts / counts.sum()`` divided by ``log(len(counts))``: 1 uniform, 0 one-hot.

    A single bin counts as uniform (1.0).
    """
    p = counts.double() / counts.sum()
    nz = p[p > 0]
    return float(-(nz * nz.log()).sum() / math.log(len(counts))) if len(counts) > 1 else 1.0


def mutual_information_bits(a: Tensor, b: Tensor) -> float:
    """``I(A; B)`` in bits of two aligned 1-D non-negative integer label tensors (empirical
    distribution)."""
    na, nb = int(a.max()) + 1, int(b.max()) + 1
    joint = torch.bincount(a * nb + b, minlength=na * nb).view(na, nb).double()  # (na, nb)
    joint /= joint.sum()
    pa, pb = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)  # (na, 1), (1, nb)
    mask = joint > 0
    return float((joint[mask] * (joint[mask] / (pa * pb)[mask]).log2()).sum())


def _average_ranks(v: Sequence[float]) -> np.ndarray:
    """0-based ranks; tied values share the mean of the ranks they span."""
    v = np.asarray(v, dtype=float)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(len(v), dtype=float)
    for value in np.unique(v):  # average the ranks of ties
        tied = v == value
        r[tied] = r[tied].mean()
    return r


def spearman(x: Sequence[float], y: Sequence[float], *,
             ties: Literal["average", "ordinal"] = "average") -> float:
    """Spearman's rank correlation of ``x`` and ``y``; nan for fewer than 2 points or when a
    side's ranks are constant.

    Args:
        x, y: paired values.
        ties: ``"average"`` (the standard definition, as ``scipy.stats.spearmanr``): tied values
            get the mean of their ranks; ``"ordinal"``: every value gets its own rank, ties in
            the order ``np.argsort`` leaves them. The two agree when there are no ties.
    """
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if ties == "average":
        rx, ry = _average_ranks(x), _average_ranks(y)
    elif ties == "ordinal":
        rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    else:
        raise ValueError(f"ties must be 'average' or 'ordinal', got {ties!r}")
    if len(x) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])
