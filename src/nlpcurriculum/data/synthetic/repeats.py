"""A toy sequence task that needs attention, and more than one layer of it: repeated random blocks.

Each sequence is a block of ``P`` distinct random tokens repeated until it fills the window, with
the period ``P`` drawn per sequence::

    P = 4:   17 3 29 8 | 17 3 29 8 | 17 3 29 8 | 17 3 ...
                         ^ from here on every next token is predictable

The first block is pure noise: nothing can predict it. From the first repeat on, the next token
is fully determined by the past: find the earlier occurrence of the current token and copy the
token that followed it. That is the *induction head* mechanism of Olsson et al. 2022
("In-context Learning and Induction Heads", arXiv:2209.11895), and it needs two attention layers
composed: one head that writes "my previous token was b" into each position, and a second head
whose query (the current token, a) matches keys that carry "my previous token was a", reading the
value there. A single layer cannot do it (its keys only know their own token and position), and a
bigram model cannot do it at all (a random token follows any token). That ordering, bigram <
1 block < 2 blocks, is what the "Transformers, QKV & Stacking" stage measures.

Targets of the unpredictable first block are set to ``ignore_index`` so the loss measures only
what can be learned: 0 is perfect, ``log(V)`` is uniform guessing.

Worked example: ``vocab_size=8``, period 3, block ``[5, 1, 6]``, ``seq_len=7``: the stream of
``seq_len + 1`` tokens is ``5 1 6 5 1 6 5 1``; ``x = 5 1 6 5 1 6 5`` and ``y = 1 6 5 1 6 5 1``
with ``y[0:3]`` ignored (position 2 holds ``6`` and predicts ``5``, the start of the repeat, which
the model cannot know before seeing the period), so the scored targets are ``1 6 5 1`` at
positions 3..6.

Dimension legend: B batch, T sequence length, V vocabulary.

Left out: noise inside the repeats, multiple different blocks per sequence, variable-length
padding (every sequence fills the window exactly).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["IGNORE_INDEX", "RepeatTask", "RepeatTaskConfig"]

IGNORE_INDEX = -100  # the default of F.cross_entropy and MiniFormer's loss


@dataclass
class RepeatTaskConfig:
    """Shape of the repeated-block task.

    Attributes:
        vocab_size: V, token ids ``0..V-1``; must be at least ``max_period`` (a block has distinct
            tokens).
        seq_len: T, tokens per input window.
        min_period: shortest block length P (>= 2: with P = 1 the sequence is one token repeated
            and a bigram model would solve it).
        max_period: longest block length; must leave room for repeats (``< seq_len``).
        eval_seed: seed of the fixed evaluation batches (the same every call).
    """

    vocab_size: int = 32
    seq_len: int = 32
    min_period: int = 3
    max_period: int = 10
    eval_seed: int = 12345

    def __post_init__(self) -> None:
        if self.min_period < 2:
            raise ValueError(f"min_period must be >= 2, got {self.min_period}")
        if self.max_period < self.min_period:
            raise ValueError(f"max_period={self.max_period} < min_period={self.min_period}")
        if self.max_period >= self.seq_len:
            raise ValueError(
                f"max_period={self.max_period} must be < seq_len={self.seq_len} (no room to repeat)"
            )
        if self.vocab_size < self.max_period:
            raise ValueError(
                f"vocab_size={self.vocab_size} is smaller than max_period={self.max_period}: "
                "a block holds distinct tokens"
            )


class RepeatTask:
    """Endless batches of the repeated-block task, with resumable state (a trainer ``BatchSource``).

    Args:
        cfg: the task's shape.
        seed: seed of this source's own generator (use different seeds for train and validation).
    """

    def __init__(self, cfg: RepeatTaskConfig, seed: int = 0) -> None:
        self.cfg, self.seed = cfg, seed
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw ``batch_size`` sequences with ``generator``.

        Returns:
            ``(x, y)``, both ``(B, T)`` int64; ``y`` is ``x`` shifted left by one, with
            :data:`IGNORE_INDEX` on the first block's targets.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        cfg = self.cfg
        B, T = batch_size, cfg.seq_len
        period = torch.randint(cfg.min_period, cfg.max_period + 1, (B,), generator=generator)
        # a random permutation per row; its first P entries are P distinct tokens
        perm = torch.rand(B, cfg.vocab_size, generator=generator).argsort(dim=1)  # (B, V)
        index = torch.arange(T + 1)[None, :] % period[:, None]  # (B, T+1): t mod P
        stream = perm.gather(1, index)  # (B, T+1): the block, repeated
        x, y = stream[:, :-1], stream[:, 1:].clone()  # (B, T) each
        unpredictable = torch.arange(T)[None, :] < period[:, None]  # (B, T): the first block
        y[unpredictable] = IGNORE_INDEX
        return x, y

    def next_batch(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """A fresh training batch; advances this source's generator."""
        return self.sample(batch_size, self.generator)

    def eval_batches(self, batch_size: int, n_batches: int) -> Iterator[tuple[Tensor, Tensor]]:
        """``n_batches`` batches drawn from ``cfg.eval_seed``: identical every call."""
        generator = torch.Generator().manual_seed(self.cfg.eval_seed)
        for _ in range(n_batches):
            yield self.sample(batch_size, generator)

    def state_dict(self) -> dict[str, Any]:
        """The generator state: a resumed run draws the batches the uninterrupted run would."""
        return {"seed": self.seed, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.seed = int(state["seed"])
        self.generator.set_state(state["generator"])
