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

RMSNorm's backward pass is written out by hand too (:class:`RMSNormFunction`), because it is short,
worth deriving once, and cheaper than the one autograd assembles from the forward's six ops: per
position, with ``r = 1/sqrt(mean(x^2) + eps)``, ``x_hat = x * r`` and ``g = dL/dy``,

    dL/dw = sum over positions of g * x_hat
    dL/dx = r * (g*w - x_hat * mean(g*w * x_hat))

(the second term is the gradient flowing through ``r``: ``dr/dx_j = -r^3 x_j / C``). Autograd
would replay the backward of each of the forward's six ops, about a dozen full-size kernels;
this runs seven, which makes a training step of the llama-like model a few percent faster
(``benchmarks/bench_model.py``). The tests check it with ``torch.autograd.gradcheck`` and
against ``F.rms_norm``'s gradients.

Left out: BatchNorm (statistics across the batch do not suit variable-length text), DeepNorm,
partial RMSNorm (pRMSNorm, the paper's p% variant), and fused kernels (``F.layer_norm`` /
``F.rms_norm``, used only as the parity oracles in the tests).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["NORMS", "IdentityNorm", "LayerNorm", "RMSNorm", "RMSNormFunction", "build_norm", "rms_norm"]


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


class RMSNormFunction(torch.autograd.Function):
    """``y = x / sqrt(mean(x^2) + eps) * w`` with the backward pass derived by hand (see module doc).

    Call it through :func:`rms_norm`. Shapes: ``x (..., C)``, ``w (C,)``, ``y (..., C)``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, eps: float) -> Tensor:
        r = torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps)  # (..., 1): 1 / rms
        x_hat = x * r  # (..., C): unit root-mean-square
        ctx.save_for_backward(x_hat, r, weight)
        return x_hat * weight

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        x_hat, r, weight = ctx.saved_tensors
        dx = dw = None
        if ctx.needs_input_grad[0]:
            gw = g * weight  # (..., C): the gradient arriving at x_hat
            # x_hat's direction is fixed by the normalization: remove the component along it
            dx = r * (gw - x_hat * (gw * x_hat).mean(dim=-1, keepdim=True))  # (..., C)
        if ctx.needs_input_grad[1]:
            dw = (g * x_hat).reshape(-1, x_hat.size(-1)).sum(dim=0)  # (C,): summed over positions
        return dx, dw, None


def rms_norm(x: Tensor, weight: Tensor, eps: float = 1e-6) -> Tensor:
    """RMSNorm of ``(..., C)`` with gain ``weight (C,)``: the by-hand forward and backward.

    Without autograd recording (decoding), the same formula runs directly: an
    ``autograd.Function`` call costs more than the six tiny ops of one decoded token's norm.
    """
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return RMSNormFunction.apply(x, weight, eps)
    return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps) * weight


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
        # ms = mean(x^2) over the last dim (no centering); y = x / sqrt(ms + eps) * weight
        return rms_norm(x, self.weight, self.eps)


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
