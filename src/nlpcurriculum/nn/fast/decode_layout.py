"""Decode-time weight layouts for ``Linear``, made by :func:`decode_layout`.

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

The copies exist only inside ``with decode_layout(model):``, which the decoders enter: each
``Linear`` of the model gets a :class:`DecodeWeights` in its ``decode`` slot. Weights do not
change while decoding, so a copy can never go stale, and there is nothing to invalidate: an
optimizer step does not even have to tell (torch's fused AdamW updates a parameter in place
without bumping its version counter). Outside the block, and whenever autograd is recording,
``Linear`` is exactly ``nn.Linear``: that plain product is the reference these copies are tested
against.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from nlpcurriculum.nn.linear import Linear

__all__ = ["PACK_MIN_ELEMENTS", "DecodeWeights", "decode_layout"]

# weights with at least this many numbers (1 MB in fp32) also get a oneDNN-packed copy
PACK_MIN_ELEMENTS = 1 << 18


class DecodeWeights:
    """Copies of one ``(out, in)`` weight for decoding, and the product that reads them.

    Attributes:
        transposed: ``(in, out)``, contiguous: a one-row product streams through it in order.
        packed: oneDNN's blocked layout for products of several rows, or ``None`` (a small
            weight, not fp32 on the CPU, or a torch without oneDNN).
    """

    def __init__(self, weight: Tensor) -> None:
        weight = weight.detach()
        self.transposed = weight.t().contiguous()
        self.packed = _onednn_packed(weight)

    def __call__(self, x: Tensor, bias: Tensor | None) -> Tensor:
        """``(..., in) -> (..., out)``, the same as ``F.linear(x, weight, bias)``."""
        if self.packed is not None and x.numel() > x.size(-1):  # two or more rows
            y = torch.ops.mkldnn._linear_pointwise(  # (rows, out); "none": no fused activation
                x.reshape(-1, x.size(-1)), self.packed, bias, "none", [], "")
            return y.view(*x.shape[:-1], -1)
        y = x @ self.transposed  # (..., in) @ (in, out)
        return y if bias is None else y + bias


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
    """Give every :class:`~nlpcurriculum.nn.linear.Linear` of ``models`` decode-time weight
    copies (:class:`DecodeWeights`) for the block's duration.

    Large weights (at least ``PACK_MIN_ELEMENTS`` numbers) also get a oneDNN-packed copy for
    products of several rows. Costs one weight-sized copy per layer while inside (6.8 MB for the
    base model, plus 2 MB for its packed head; 2-3 ms to make). Nested blocks reuse the outer
    block's copies.
    """
    fresh = [m for model in models for m in model.modules()
             if isinstance(m, Linear) and m.decode is None]
    for m in fresh:
        m.decode = DecodeWeights(m.weight)
    try:
        yield
    finally:
        for m in fresh:
            m.decode = None
