"""Numbers that describe what attention heads do: how different, how focused, how far they look.

A row ``w[t, :]`` of a causal attention map is a probability distribution over the keys
``0..t``. Comparing distributions gives a vocabulary for heads:

- :func:`js_divergence` (Jensen-Shannon; Lin 1991): ``JS(p, q) = (KL(p||m) + KL(q||m)) / 2``
  with ``m = (p + q) / 2``. Symmetric, finite even where one distribution has zeros, between 0
  (identical) and ``ln 2 = 0.693`` nats (disjoint supports). :func:`head_js_matrix` averages it
  over query rows for every pair of heads: if multi-head attention learned several *different*
  ways of reading the context, the off-diagonal entries are well above 0.
- :func:`attention_entropy`: ``-sum w log w`` per row, averaged. 0 means a head reads exactly one
  token; ``log(t + 1)`` means it averages uniformly over the prefix.
- :func:`mean_attention_distance`: ``sum_j w[t, j] (t - j)``: how many tokens back a head reads.
- :func:`previous_token_weight`: the mean of ``w[t, t - 1]``, the signature of a previous-token
  head (the first half of an induction circuit, Olsson et al. 2022, arXiv:2209.11895).

Row 0 of a causal map is always ``[1]`` for every head, so the averages skip it (it would pull
every head towards looking alike and focused).

Dimension legend: B batch, nh heads, T query positions, T_k key positions.

Left out: attention rollout / flow across layers (Abnar & Zuidema 2020), gradient-weighted
attributions, head pruning scores.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "attention_entropy",
    "head_js_matrix",
    "js_divergence",
    "mean_attention_distance",
    "mean_pairwise_js",
    "previous_token_weight",
]


def _xlogy_ratio(p: Tensor, q: Tensor) -> Tensor:
    """``p * log(p / q)`` with ``0 log 0 = 0`` (where ``p = 0`` the term vanishes)."""
    return torch.where(p > 0, p * (p.clamp_min(1e-30).log() - q.clamp_min(1e-30).log()), 0.0)


def js_divergence(p: Tensor, q: Tensor, dim: int = -1) -> Tensor:
    """Jensen-Shannon divergence in nats between distributions along ``dim``.

    Worked example: ``p = [1, 0]``, ``q = [0, 1]`` (disjoint) give ``m = [0.5, 0.5]``,
    ``KL(p||m) = log 2``, so ``JS = ln 2 = 0.6931``; ``p = q`` gives 0.

    Args:
        p: probabilities, any shape.
        q: probabilities, broadcastable to ``p``.
        dim: the distribution dimension.

    Returns:
        The divergence, with ``dim`` reduced.
    """
    m = 0.5 * (p + q)
    return 0.5 * (_xlogy_ratio(p, m).sum(dim) + _xlogy_ratio(q, m).sum(dim))


def _check(weights: Tensor) -> None:
    if weights.dim() != 4 or weights.size(-2) < 2:
        raise ValueError(
            f"expected attention weights (B, nh, T, T_k) with T >= 2, got {tuple(weights.shape)}"
        )


def head_js_matrix(weights: Tensor) -> Tensor:
    """Mean JS divergence between every pair of heads' attention rows.

    Args:
        weights: ``(B, nh, T, T_k)`` attention weights of one layer.

    Returns:
        ``(nh, nh)``, symmetric, zero diagonal; averaged over batch and query rows ``t >= 1``.
    """
    _check(weights)
    w = weights[:, :, 1:]  # (B, nh, T-1, T_k): row 0 is [1, 0, ...] for every head
    js = js_divergence(w[:, :, None], w[:, None, :])  # (B, nh, nh, T-1) by broadcasting
    return js.mean(dim=(0, 3))  # (nh, nh)


def mean_pairwise_js(weights: Tensor) -> float:
    """The mean off-diagonal entry of :func:`head_js_matrix` (0 when there is one head)."""
    m = head_js_matrix(weights)
    nh = m.size(0)
    if nh < 2:
        return 0.0
    return float(m.sum() / (nh * (nh - 1)))  # the diagonal is 0


def attention_entropy(weights: Tensor) -> Tensor:
    """Mean entropy (nats) of each head's attention rows ``t >= 1``: ``(nh,)``."""
    _check(weights)
    w = weights[:, :, 1:]  # (B, nh, T-1, T_k)
    ent = -torch.where(w > 0, w * w.clamp_min(1e-30).log(), 0.0).sum(-1)  # (B, nh, T-1)
    return ent.mean(dim=(0, 2))


def mean_attention_distance(weights: Tensor) -> Tensor:
    """Mean number of positions each head looks back, ``sum_j w[t, j] (t - j)``: ``(nh,)``.

    Assumes query ``t`` and key ``j`` index the same sequence (self-attention, no KV cache).
    """
    _check(weights)
    T, T_k = weights.shape[-2:]
    dist = (torch.arange(T)[:, None] - torch.arange(T_k)[None, :]).clamp_min(0).to(weights)  # (T, T_k)
    per_row = (weights * dist).sum(-1)  # (B, nh, T)
    return per_row[:, :, 1:].mean(dim=(0, 2))


def previous_token_weight(weights: Tensor) -> Tensor:
    """Mean weight each head puts on the immediately preceding token, ``w[t, t-1]``: ``(nh,)``."""
    _check(weights)
    prev = torch.diagonal(weights, offset=-1, dim1=-2, dim2=-1)  # (B, nh, T-1): w[t, t-1]
    return prev.mean(dim=(0, 2))
