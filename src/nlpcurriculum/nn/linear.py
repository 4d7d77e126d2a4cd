"""``Linear``: ``nn.Linear`` with a slot for faster decode-time weight copies.

Every projection of the models is a :class:`Linear`. It is ``nn.Linear`` (same parameters, same
state dict, ``y = x @ W.T + b``) with one addition: inside
:func:`~nlpcurriculum.nn.fast.decode_layout.decode_layout`, which the decoders enter, its
``decode`` slot holds copies of the weight laid out for products of one or a few rows, and a
forward pass without autograd multiplies by those instead. Outside that block, and whenever
autograd is recording, it is exactly ``nn.Linear``. Why a one-row product wants another layout,
and how much faster it is, is in :mod:`nlpcurriculum.nn.fast.decode_layout`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Linear"]


class Linear(nn.Linear):
    """``nn.Linear`` that decodes through weight copies when ``decode_layout`` has made them."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # ``(x, bias) -> y`` over decode-time copies of the weight; set by decode_layout
        self.decode: Callable[[Tensor, Tensor | None], Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in) -> (..., out)``."""
        if self.decode is not None and not torch.is_grad_enabled():
            return self.decode(x, self.bias)  # the same product, faster for a few rows
        return F.linear(x, self.weight, self.bias)
