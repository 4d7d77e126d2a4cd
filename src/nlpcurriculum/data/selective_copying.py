"""Selective copying (Gu & Dao 2023, arXiv:2312.00752, section 4.1.1): a generated task that needs
content-based selection.

A context of ``context`` tokens, mostly the BLANK token, holds ``n_data`` data tokens at random
positions; ``n_data`` COPY tokens follow, at which a model must emit the data tokens in order.
Because the data move from sequence to sequence, a model must decide from each token's content
whether to keep it: a time-invariant mixer (fixed convolution, Fourier mixing) cannot.
"""

from __future__ import annotations

import torch

__all__ = ["BLANK", "COPY", "copy_batch"]

BLANK, COPY = 0, 1  # token ids; data tokens are 2 .. 2 + data_vocab - 1


def copy_batch(batch: int, context: int, n_data: int, data_vocab: int,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective-copying sequences: ``(batch, context + n_data)`` ids and ``(batch, n_data)`` targets.

    Data tokens sit at ``n_data`` distinct random positions of the context, in that order; the
    model reads the context and then ``n_data`` COPY tokens, at which it must emit them.
    """
    data = torch.randint(2, 2 + data_vocab, (batch, n_data), generator=generator)
    positions = torch.rand(batch, context, generator=generator).argsort(dim=1)[:, :n_data].sort(dim=1).values
    ctx = torch.full((batch, context), BLANK, dtype=torch.long).scatter_(1, positions, data)
    return torch.cat([ctx, torch.full((batch, n_data), COPY, dtype=torch.long)], dim=1), data
