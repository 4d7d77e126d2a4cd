"""Bottleneck adapters (Houlsby et al. 2019): small residual MLPs inserted after each sublayer.

"Parameter-Efficient Transfer Learning for NLP" (Houlsby et al. 2019, arXiv:1902.00751) keeps the
pretrained transformer frozen and inserts, after the attention sublayer and after the
feed-forward sublayer of every block, a bottleneck with its own skip connection:

    adapter(h) = h + W_up act(W_down h + b_down) + b_up,   W_down: (m, C), W_up: (C, m)

``m << C`` sets the budget: ``2 m C + m + C`` trainable numbers per adapter. ``W_up`` and
``b_up`` start at zero, so every adapter starts as the identity and the adapted model starts as
the base model exactly (the paper's near-identity initialisation, made exact).

In the pre-norm block of :mod:`nlpcurriculum.nn.block` a sublayer's output ``y`` is added to the
residual stream; the adapter sits between the two: ``x + adapter(attn(norm1(x)))`` and
``x + adapter(mlp(norm2(x)))``. The block's code is not changed: :func:`inject_bottleneck` wraps
its ``attn`` and ``mlp`` parts (:class:`AdaptedAttention`, :class:`AdaptedMLP`).

Worked example (tested): ``C = 2``, ``m = 1``, ReLU, ``W_down = [[1, 1]]``, ``b_down = [0]``,
``W_up = [[1], [-1]]``, ``b_up = [0, 0]``: on ``h = [1, 2]`` the bottleneck is
``relu(3) = 3`` and the adapter returns ``[1 + 3, 2 - 3] = [4, -1]``.

The ``adapters`` package (the library that implements these) cannot be installed next to this
project's transformers, so the tests check this module against the formula written out by hand
and against the zero-initialised identity, not against that library.

Dimension legend: B batch, T tokens, C model width, m bottleneck width.

Left out: the paper's trainable layer norms, Pfeiffer's single-adapter placement, AdapterFusion,
and parallel / scaled adapters (He et al. 2022).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from nlpcurriculum.nn.block import Block

__all__ = ["ACTIVATIONS", "AdaptedAttention", "AdaptedMLP", "BottleneckAdapter",
           "inject_bottleneck"]

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "tanh": F.tanh}


class BottleneckAdapter(nn.Module):
    """``h + up(act(down(h)))``, the up projection zero-initialised (the identity at the start).

    Args:
        d_model: C.
        bottleneck: m.
        activation: ``"relu"``, ``"gelu"`` or ``"tanh"``.
        init_std: std of the down projection's normal init.
    """

    def __init__(self, d_model: int, bottleneck: int, activation: str = "gelu",
                 init_std: float = 0.02) -> None:
        super().__init__()
        if bottleneck < 1:
            raise ValueError(f"bottleneck must be >= 1, got {bottleneck}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        self.down = nn.Linear(d_model, bottleneck)
        self.up = nn.Linear(bottleneck, d_model)
        nn.init.normal_(self.down.weight, std=init_std)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:
        """``(..., C) -> (..., C)``."""
        return h + self.up(ACTIVATIONS[self.activation](self.down(h)))  # (..., m) inside


class AdaptedAttention(nn.Module):
    """An attention part whose output goes through an adapter; same call and return shape."""

    def __init__(self, attn: nn.Module, adapter: BottleneckAdapter) -> None:
        super().__init__()
        self.attn, self.adapter = attn, adapter

    def forward(self, x: Tensor, **kwargs) -> tuple[Tensor, Tensor | None]:
        y, weights = self.attn(x, **kwargs)  # (B, T, C)
        return self.adapter(y), weights


class AdaptedMLP(nn.Module):
    """A feed-forward part whose output goes through an adapter."""

    def __init__(self, mlp: nn.Module, adapter: BottleneckAdapter) -> None:
        super().__init__()
        self.mlp, self.adapter = mlp, adapter

    def forward(self, x: Tensor) -> Tensor:
        return self.adapter(self.mlp(x))  # (B, T, C)


def inject_bottleneck(model: nn.Module, d_model: int, bottleneck: int,
                      where: tuple[str, ...] = ("attn", "mlp"), activation: str = "gelu",
                      init_std: float = 0.02) -> int:
    """Insert an adapter after the named sublayers (``"attn"``, ``"mlp"``) of every block.

    Returns:
        The number of adapters inserted.
    """
    if not where or set(where) - {"attn", "mlp"}:
        raise ValueError(f"where must name 'attn' and/or 'mlp', got {where}")
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    if not blocks:
        raise ValueError("the model has no transformer Block to insert adapters into")
    for block in blocks:
        if "attn" in where:
            block.attn = AdaptedAttention(
                block.attn, BottleneckAdapter(d_model, bottleneck, activation, init_std))
        if "mlp" in where:
            block.mlp = AdaptedMLP(block.mlp, BottleneckAdapter(d_model, bottleneck, activation,
                                                                init_std))
    return len(blocks) * len(where)
