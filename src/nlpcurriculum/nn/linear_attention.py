"""Attention in linear time: Performer (FAVOR+), Linformer and FNet, beside softmax attention.

Softmax attention, ``softmax(Q K^T / sqrt(d)) V``, costs ``O(T^2 d)``: every query meets every key.
Three ways around it, each an approximation or a replacement:

* **Performer** (Choromanski et al. 2021, arXiv:2009.14794). The softmax kernel is an expectation
  over random features: for ``w ~ N(0, I_d)``,
  ``exp(q . k) = E_w[ exp(w . q - |q|^2 / 2) exp(w . k - |k|^2 / 2) ]``.
  With ``m`` draws stacked in ``W (m, d)``, ``phi(x) = exp(W x - |x|^2 / 2) / sqrt(m)`` is a positive
  feature map and ``exp(q . k) ~= phi(q) . phi(k)``. Then attention regroups:
  ``out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / phi(q_i)^T (sum_j phi(k_j))``, computed as
  ``(m, d)`` sums once: ``O(T m d)``. Drawing the rows of ``W`` orthogonal (FAVOR+'s "OR")
  lowers the estimator's variance. Queries and keys are scaled by ``d^-1/4`` each so that
  ``q . k`` carries the usual ``1 / sqrt(d)``.
* **Linformer** (Wang et al. 2020, arXiv:2006.04768). The ``(T, T)`` weight matrix is close to low
  rank, so keys and values are projected along the *sequence* to ``k`` rows by learned
  ``E, F (k, T)``: ``softmax(Q (E K)^T / sqrt(d)) (F V)`` costs ``O(T k d)``. The projections tie
  the model to one sequence length, and they mix future into past: it is an encoder, not a
  decoder.
* **FNet** (Lee-Thorp et al. 2022, arXiv:2105.03824). No attention at all: mix tokens with a
  2-D discrete Fourier transform over (sequence, hidden) and keep the real part,
  ``Re(FFT_seq(FFT_hidden(x)))``, ``O(T d log T)`` and no parameters.

All three here are non-causal (bidirectional) mixers; :func:`softmax_attention` is their exact
reference. Left out: causal (prefix-sum) Performer, feature redrawing during training, and
Linformer's shared projections across heads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["fnet_mixing", "linformer_attention", "orthogonal_features", "performer_attention",
           "positive_features", "softmax_attention"]


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Exact bidirectional attention ``(..., T, d)`` through torch's fused kernel: the reference."""
    return F.scaled_dot_product_attention(q, k, v)


def orthogonal_features(m: int, d: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(m, d)`` random projections: blocks of ``d`` orthogonal rows, each row's norm drawn as a
    Gaussian vector's (chi with ``d`` degrees of freedom), so each row is marginally ``N(0, I_d)``."""
    blocks = []
    for _ in range(math.ceil(m / d)):
        gaussian = torch.randn(d, d, generator=generator)
        q, _ = torch.linalg.qr(gaussian)                                   # (d, d) orthonormal columns
        blocks.append(q.T)
    rows = torch.cat(blocks)[:m]                                          # (m, d) unit rows
    norms = torch.randn(m, d, generator=generator).norm(dim=1, keepdim=True)
    return rows * norms


def positive_features(x: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """FAVOR+'s ``phi(x) = exp(W x - |x|^2 / 2) / sqrt(m)``: ``(..., T, d) -> (..., T, m)``.

    The exponent is shifted by its maximum over the last dimension of the *whole* tensor for
    stability; the shift cancels between numerator and denominator of the attention.
    """
    m = projection.shape[0]
    wx = x @ projection.T                                                 # (..., T, m)
    exponent = wx - x.square().sum(-1, keepdim=True) / 2
    return torch.exp(exponent - exponent.amax(dim=(-1, -2), keepdim=True)) / math.sqrt(m)


def performer_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        projection: torch.Tensor) -> torch.Tensor:
    """Bidirectional softmax attention estimated with ``m = projection.shape[0]`` positive random
    features, in ``O(T m d)``: ``(..., T, d)`` in and out."""
    d = q.shape[-1]
    scale = d ** -0.25                                                    # q . k / sqrt(d)
    phi_q = positive_features(q * scale, projection)                      # (..., T, m)
    phi_k = positive_features(k * scale, projection)                      # (..., T, m)
    kv = phi_k.transpose(-2, -1) @ v                                      # (..., m, d)
    normaliser = phi_q @ phi_k.sum(dim=-2).unsqueeze(-1)                  # (..., T, 1)
    return (phi_q @ kv) / normaliser


def linformer_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, e: torch.Tensor,
                        f: torch.Tensor) -> torch.Tensor:
    """Attention over ``k`` projected keys and values: ``e, f (k, T)``; ``(..., T, d)`` in and out."""
    keys = e @ k                                                          # (..., k, d)
    values = f @ v                                                        # (..., k, d)
    return F.scaled_dot_product_attention(q, keys, values)


def fnet_mixing(x: torch.Tensor) -> torch.Tensor:
    """FNet's token mixing: the real part of the 2-D DFT over (sequence, hidden), ``(B, T, d)``."""
    return torch.fft.fft2(x, dim=(-2, -1)).real
