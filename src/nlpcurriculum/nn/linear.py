"""A ``Linear`` layer with a decode-time weight layout, switched on by :func:`decode_layout`.

``nn.Linear`` stores its weight as ``(out, in)`` and computes ``y = x @ W.T``. For a training
batch (thousands of rows) the BLAS library blocks the product and the layout hardly matters.
Decoding one token at a time is different: ``x`` is a single row, the product is a matrix-vector
product, and its cost is reading ``W`` once. Read as ``(out, in)``, that is ``out`` dot products
of ``in`` numbers each; read as a contiguous ``(in, out)`` copy, it is ``in`` scaled additions
of whole output rows, which streams through memory in the order it is laid out and vectorises
across the outputs.

On this project's 2-core CPU (fp32, one thread) the second form made a one-row product 1.2x
faster for a ``128 x 384`` weight and 1.7x for the ``128 x 4096`` output head. Inside a forward
pass of the base model (``models/base``, 100 tokens cached) it was faster for every number of new
rows measured (best of 7): 1.3x for one row, 1.06-1.3x for the 3 to 17 rows that speculative
decoding verifies, 1.01-1.07x for 32 to 128 rows.

A product of a few rows (a speculative verification pass, a prompt) is a different case
again. torch hands it to MKL's matrix-matrix kernel, which packs its operands into a blocked
layout on every call, the whole weight included; on this AMD CPU, for the ``128 x 4096`` head,
2 to 17 rows cost 88 to 316 us against 36 us for one. oneDNN can pack a weight once, ahead of time
(``torch.ops.mkldnn._reorder_linear_weight``; the kernel that reads it is
``torch.ops.mkldnn._linear_pointwise``, which torch's own compiler uses for frozen CPU models).
So ``decode_layout`` also packs every weight of at least ``PACK_MIN_ELEMENTS`` numbers (the
head, in our models) and products of two or more rows use it: 52 to 192 us for those 2 to 17
rows (best of 7, warm caches). Smaller weights gain nothing from it (``128 x 704``: 21 to 80 us
against MKL's 16 to 76 us for 2 to 32 rows), and a single row stays on the transposed copy (36
against 52 us for the head).
Where torch was built without oneDNN the packed copy is simply not made.

The copies exist only inside ``with decode_layout(model):``, which the decoders enter. Weights
do not change while decoding, so a copy can never go stale, and there is nothing to invalidate:
an optimizer step does not even have to tell (torch's fused AdamW updates a parameter in place
without bumping its version counter). Outside the block, and whenever autograd is recording,
``Linear`` is exactly ``nn.Linear``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PACK_MIN_ELEMENTS", "Linear", "decode_layout"]

# weights with at least this many numbers (1 MB in fp32) also get a oneDNN-packed copy
PACK_MIN_ELEMENTS = 1 << 18


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same state dict) that can decode with a transposed weight.

    See the module docstring for why.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.decode_weight: Tensor | None = None  # (in, out) contiguous, set by decode_layout
        self.packed_weight: Tensor | None = None  # oneDNN's blocked layout, set by decode_layout

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in) -> (..., out)``."""
        if self.decode_weight is None or torch.is_grad_enabled():
            return F.linear(x, self.weight, self.bias)
        if self.packed_weight is not None and x.numel() > x.size(-1):  # two or more rows
            y = torch.ops.mkldnn._linear_pointwise(  # (rows, out); "none": no fused activation
                x.reshape(-1, x.size(-1)), self.packed_weight, self.bias, "none", [], "")
            return y.view(*x.shape[:-1], -1)
        y = x @ self.decode_weight  # (..., in) @ (in, out)
        return y if self.bias is None else y + self.bias


def _onednn_packed(weight: Tensor) -> Tensor | None:
    """``weight (out, in)`` in oneDNN's blocked layout for few-row products, or None (too small,
    not fp32 on the CPU, or a torch without oneDNN)."""
    if weight.numel() < PACK_MIN_ELEMENTS or weight.dtype != torch.float32:
        return None
    if weight.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight, 8)  # laid out for about 8 rows
    except (AttributeError, RuntimeError):  # a torch build without the op
        return None


@contextmanager
def decode_layout(*models: nn.Module) -> Iterator[None]:
    """Give every :class:`Linear` of ``models`` a transposed weight copy for the block's duration.

    Large weights (at least ``PACK_MIN_ELEMENTS`` numbers) also get a oneDNN-packed copy for
    products of several rows. Costs one weight-sized copy per layer while inside (6.8 MB for the
    base model, plus 2 MB for its packed head; 2-3 ms to make). Nested blocks reuse the outer
    block's copies.
    """
    fresh = [m for model in models for m in model.modules()
             if isinstance(m, Linear) and m.decode_weight is None]
    for m in fresh:
        weight = m.weight.detach()
        m.decode_weight = weight.t().contiguous()
        m.packed_weight = _onednn_packed(weight)
    try:
        yield
    finally:
        for m in fresh:
            m.decode_weight = m.packed_weight = None
