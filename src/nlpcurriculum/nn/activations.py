"""Activations and feed-forward blocks by hand: ReLU, GELU (exact and tanh), SiLU, SwiGLU.

The position-wise feed-forward network is where most of a transformer's parameters live:
``down(act(up(x)))`` expands each token to ``d_ff`` (usually 4C) features, applies a
nonlinearity, and projects back. Attention moves information between tokens; the MLP
transforms it within a token.

- ReLU ``max(0, x)``: the original transformer's choice.
- GELU (Hendrycks & Gimpel 2016, arXiv:1606.08415): ``x * Phi(x)`` with ``Phi`` the standard
  normal CDF, i.e. ``0.5 x (1 + erf(x / sqrt 2))``: a smooth ReLU that weights inputs by how
  likely they are to be positive. GPT-2 used the tanh approximation
  ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, which differs by < 1e-3 but is a
  different function; a checkpoint should be run with the one it was trained with.
- SiLU / Swish ``x * sigmoid(x)`` (Ramachandran et al. 2017, arXiv:1710.05941).
- SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer", arXiv:2002.05202): a *gated* MLP,
  ``down(silu(gate(x)) * up(x))``. One branch decides how much of the other passes, per
  feature. It has three matrices instead of two, so to keep the parameter count of a 4C ReLU
  MLP the hidden size is shrunk to about ``(2/3) * 4C`` (Llama's choice, see :func:`swiglu_hidden`).

Worked example (GELU exact at x = 1): ``Phi(1) = 0.8413``, so ``gelu(1) = 0.8413``; the tanh
form gives ``0.5 (1 + tanh(0.7979 * 1.044715)) = 0.8412``. ``silu(1) = 1 / (1 + e^-1) = 0.7311``.

Dimension legend: B batch, T tokens, C = d_model, H = d_ff hidden size.

Left out: GeGLU / ReGLU (the other GLU variants of the paper: swap the gate activation),
squared ReLU, mixture-of-experts feed-forwards (a later module).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nlpcurriculum.nn.linear import Linear

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "MLP_KINDS",
    "GELU",
    "ReLU",
    "SiLU",
    "SwiGLU",
    "build_activation",
    "build_mlp",
    "gelu",
    "relu",
    "silu",
    "silu_derivative",
    "swiglu",
    "swiglu_hidden",
]


def relu(x: Tensor) -> Tensor:
    """``max(0, x)``."""
    return x.clamp_min(0.0)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU by hand: exact (erf) or the tanh approximation.

    Args:
        x: any shape.
        approximate: ``"none"`` (exact) or ``"tanh"``, the names ``F.gelu`` uses.

    Returns:
        Tensor of x's shape.
    """
    if approximate == "none":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if approximate == "tanh":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))
    raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(x: Tensor) -> Tensor:
    """``x * sigmoid(x)`` with ``sigmoid(x) = 1 / (1 + exp(-x))``."""
    return x * torch.sigmoid(x)


def silu_derivative(x: Tensor, s: Tensor | None = None) -> Tensor:
    """``d silu / dx = s (1 + x (1 - s))`` with ``s = sigmoid(x)`` (pass ``s`` if already known).

    Product rule on ``x s``: ``s + x s'`` and ``s' = s (1 - s)``. Worked example at x = 0:
    ``s = 0.5``, so the slope is ``0.5 (1 + 0) = 0.5``; at x = 1: ``0.7311 (1 + 0.2689) = 0.9277``.
    """
    if s is None:
        s = torch.sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


class ReLU(nn.Module):
    """Module wrapper of :func:`relu`."""

    def forward(self, x: Tensor) -> Tensor:
        return relu(x)


class GELU(nn.Module):
    """Module wrapper of :func:`gelu`.

    Args:
        approximate: ``"none"`` or ``"tanh"``.
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return gelu(x, self.approximate)


class SiLU(nn.Module):
    """Module wrapper of :func:`silu`."""

    def forward(self, x: Tensor) -> Tensor:
        return silu(x)


ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu")


def build_activation(name: str) -> nn.Module:
    """Build an activation module: ``"relu"``, ``"gelu"``, ``"gelu_tanh"`` or ``"silu"``."""
    if name == "relu":
        return ReLU()
    if name == "gelu":
        return GELU("none")
    if name == "gelu_tanh":
        return GELU("tanh")
    if name == "silu":
        return SiLU()
    raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")


class MLP(nn.Module):
    """The classic two-layer feed-forward: ``down(act(up(x)))``.

    The input of ``down`` is the hidden activation;
    :func:`nlpcurriculum.models.miniformer.record_activations` hooks it there for
    activation-distribution plots (same place in :class:`SwiGLU`).

    Args:
        dim: C.
        hidden: H.
        activation: a registry name for :func:`build_activation`.
        bias: biases on both projections.
    """

    def __init__(self, dim: int, hidden: int, activation: str = "gelu", bias: bool = True) -> None:
        super().__init__()
        self.up = Linear(dim, hidden, bias=bias)
        self.act = build_activation(activation)
        self.down = Linear(hidden, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, C) -> (B, T, H) -> (B, T, C)``."""
        return self.down(self.act(self.up(x)))


class SwiGLUFunction(torch.autograd.Function):
    """``silu(gate) * up`` from the fused ``(..., 2H)`` projection, with a hand-written backward.

    Call it through :func:`swiglu`. With ``s = sigmoid(g)`` and ``silu(g) = g s``:

        d out / d up   = silu(g)
        d out / d gate = up * silu'(g),   silu'(g) = s (1 + g (1 - s))   (:func:`silu_derivative`)

    SiLU and its derivative are written out here from ``torch.sigmoid`` and elementwise products;
    torch's own kernels (``F.silu``, ``aten.silu_backward``) are their oracle in the tests, to
    fp32 rounding. The forward keeps ``s`` and ``silu(g)`` for the backward (``exp`` runs once),
    which computes the derivative expanded as ``s + silu(g) (1 - s)`` (equal to
    ``s (1 + g (1 - s))`` since ``silu(g) = g s``) in two passes. The backward writes both halves
    straight into one ``(..., 2H)`` gradient, the layout of the fused projection, so autograd does
    not have to concatenate them. Forward + backward on the pretrain model's MLP activations
    (16 x 128 x 352, one thread) take ~1.1x the time of torch's one-pass SiLU kernels.
    """

    @staticmethod
    def forward(ctx, gate_up: Tensor) -> Tensor:
        gate, up = gate_up.chunk(2, dim=-1)  # (..., H) each, views
        s = torch.sigmoid(gate)  # (..., H)
        act = torch.mul(gate, s)  # silu(gate), (..., H)
        ctx.save_for_backward(gate_up, s, act)
        return act * up

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> Tensor:
        gate_up, s, act = ctx.saved_tensors
        gate, up = gate_up.chunk(2, dim=-1)  # (..., H) each
        d_gate_up = torch.empty_like(gate_up)  # (..., 2H)
        d_gate, d_up = d_gate_up.chunk(2, dim=-1)  # views into it
        torch.mul(grad, act, out=d_up)  # d out / d up = grad * silu(gate)
        slope = torch.addcmul(act, act, s, value=-1.0).add_(s)  # silu'(gate) = act - act s + s
        torch.mul(grad, up, out=d_gate)
        d_gate.mul_(slope)  # d out / d gate = grad * up * silu'(gate)
        return d_gate_up


def swiglu(gate_up: Tensor) -> Tensor:
    """``silu(gate) * up`` where ``gate, up = gate_up.chunk(2, -1)``: ``(..., 2H) -> (..., H)``."""
    if gate_up.size(-1) % 2:
        raise ValueError(f"swiglu needs an even last dim (gate and up), got {tuple(gate_up.shape)}")
    return SwiGLUFunction.apply(gate_up)


class SwiGLU(nn.Module):
    """Gated feed-forward ``down(silu(gate(x)) * up(x))`` (Shazeer 2020).

    ``gate`` and ``up`` are stored as one fused ``Linear(C, 2H)`` (rows ``[W_gate; W_up]``): one
    matmul instead of two, identical math. The gating itself is :func:`swiglu`.

    Args:
        dim: C.
        hidden: H (see :func:`swiglu_hidden` for the parameter-matched size).
        bias: biases on the projections (Llama has none).
    """

    def __init__(self, dim: int, hidden: int, bias: bool = False) -> None:
        super().__init__()
        self.hidden = hidden
        self.gate_up = Linear(dim, 2 * hidden, bias=bias)
        self.down = Linear(hidden, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, C) -> (B, T, 2H) -> (B, T, H) -> (B, T, C)``."""
        return self.down(swiglu(self.gate_up(x)))


def swiglu_hidden(dim: int, multiple_of: int = 32) -> int:
    """Parameter-matched SwiGLU hidden size: ``2/3 * 4 * dim`` rounded up to ``multiple_of``.

    Three ``C x H`` matrices with ``H = 8C/3`` hold ``8 C^2`` weights, the same as the two
    ``C x 4C`` matrices of a plain MLP. Worked example: ``dim=64`` gives ``170.7 -> 192``.
    """
    hidden = int(8 * dim / 3)
    return multiple_of * math.ceil(hidden / multiple_of)


MLP_KINDS = ("relu", "gelu", "gelu_tanh", "silu", "swiglu")


def build_mlp(kind: str, dim: int, hidden: int, bias: bool = True) -> nn.Module:
    """Build a feed-forward block by registry name.

    Args:
        kind: ``"swiglu"`` or an activation name for a plain :class:`MLP`.
        dim: C.
        hidden: H.
        bias: biases on the projections.

    Returns:
        An :class:`MLP` or :class:`SwiGLU`.
    """
    if kind == "swiglu":
        return SwiGLU(dim, hidden, bias=bias)
    if kind in ACTIVATIONS:
        return MLP(dim, hidden, kind, bias=bias)
    raise ValueError(f"unknown mlp kind {kind!r}; choose one of {MLP_KINDS}")
