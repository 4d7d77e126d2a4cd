"""Normalization layers by hand: LayerNorm and RMSNorm.

Deep residual stacks keep adding to the same residual stream, so its scale drifts with depth;
a normalization layer before each sub-layer (the "pre-norm" placement, Xiong et al. 2020,
arXiv:2002.04745) hands every attention and MLP block an input of controlled scale, which is
what lets transformers train stably at high learning rates.

- :class:`LayerNorm` (Ba, Kiros & Hinton 2016, arXiv:1607.06450): per token, subtract the mean
  over features and divide by the standard deviation, then apply a learned gain and bias:
  ``y = (x - mean) / sqrt(var + eps) * weight + bias`` (biased variance, as torch does).
- :class:`RMSNorm` (Zhang & Sennrich 2019, arXiv:1910.07467): skip the mean, divide by the
  root mean square: ``y = x / sqrt(mean(x^2) + eps) * weight``. The paper's finding is that the
  re-centering is not what helps; re-scaling alone trains as well and costs less. Llama uses it.
- :class:`IdentityNorm` ("none"): the ablation.

Worked example (LayerNorm, no affine, eps=0): ``x = [1, 2, 3, 6]`` has mean 3 and variance
``(4 + 1 + 0 + 9) / 4 = 3.5``, so ``y = [-2, -1, 0, 3] / 1.8708 = [-1.069, -0.535, 0, 1.604]``.
RMSNorm of the same ``x``: ``rms = sqrt((1 + 4 + 9 + 36) / 4) = 3.536``, so
``y = [0.283, 0.566, 0.849, 1.697]`` -- same direction as x, unit root-mean-square.

Dimension legend: B batch, T tokens, C features (the normalized last dimension).

Left out: BatchNorm (statistics across the batch do not suit variable-length text), DeepNorm,
partial RMSNorm (pRMSNorm, the paper's p% variant), and fused kernels (``F.layer_norm`` /
``F.rms_norm``, used only as the parity oracles in the tests).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["NORMS", "IdentityNorm", "LayerNorm", "RMSNorm", "build_norm"]


class LayerNorm(nn.Module):
    """LayerNorm over the last dimension, by hand.

    Args:
        dim: C, the size of the normalized dimension.
        eps: added to the variance for numerical safety.
        bias: learn an additive bias (``False`` as in some modern GPTs).
    """

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        """Normalize ``(..., C)`` to zero mean and unit variance per position, then scale/shift."""
        mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
        centered = x - mean
        var = (centered * centered).mean(dim=-1, keepdim=True)  # (..., 1), biased as in torch
        y = centered * torch.rsqrt(var + self.eps) * self.weight
        return y + self.bias if self.bias is not None else y


class RMSNorm(nn.Module):
    """RMSNorm over the last dimension, by hand.

    Args:
        dim: C, the size of the normalized dimension.
        eps: added to the mean square for numerical safety.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        """Scale ``(..., C)`` to unit root-mean-square per position, then apply the gain."""
        ms = x.pow(2).mean(dim=-1, keepdim=True)  # (..., 1): mean square, no centering
        return x * torch.rsqrt(ms + self.eps) * self.weight


class IdentityNorm(nn.Module):
    """No normalization: the ablation (``build_norm("none", dim)``)."""

    def __init__(self, dim: int = 0, eps: float = 0.0) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


NORMS = ("layernorm", "rmsnorm", "none")


def build_norm(name: str, dim: int, eps: float | None = None, bias: bool = True) -> nn.Module:
    """Build a normalization layer by registry name.

    Args:
        name: ``"layernorm"``, ``"rmsnorm"`` or ``"none"``.
        dim: C.
        eps: override the layer's default epsilon (1e-5 LayerNorm, 1e-6 RMSNorm).
        bias: LayerNorm only: learn a bias.

    Returns:
        The norm module.

    Raises:
        ValueError: on an unknown name.
    """
    if name == "layernorm":
        return LayerNorm(dim, 1e-5 if eps is None else eps, bias=bias)
    if name == "rmsnorm":
        return RMSNorm(dim, 1e-6 if eps is None else eps)
    if name == "none":
        return IdentityNorm(dim)
    raise ValueError(f"unknown norm {name!r}; choose one of {NORMS}")
