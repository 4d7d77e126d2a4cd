"""Language-model batches from one long stream of token ids.

Pretraining corpora are tokenized once and concatenated (documents separated by an end-of-text
token) into a single 1-D array; a batch is then B windows of T+1 consecutive tokens, the first T
as input and the last T (shifted by one) as next-token targets. No padding is ever needed.

Two ways to pick windows:

- ``"random"``: B start offsets drawn uniformly from the whole stream, every batch (nanoGPT's
  ``get_batch``). Windows overlap and repeat; with enough steps each token is seen about
  ``steps * B * T / N`` times.
- ``"sequential"``: non-overlapping windows in stream order, wrapping around at the end (one
  wrap = one epoch). Every token is seen once per epoch.

The batcher owns its random generator and its cursor, and both go into :meth:`state_dict`, so a
resumed run draws exactly the batches the uninterrupted run would have.

Worked example: tokens ``[0..10]`` (N=11), T=4, sequential: window starts are 0, 4 (stride T,
needing T+1 tokens each, so start 8 would need token 12 and does not exist); the first window is
``x=[0,1,2,3], y=[1,2,3,4]``.

Dimension legend: N stream length, B batch, T sequence length.

Left out: document-aware packing and masking, multi-worker loading, sharded streams.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from nlpcurriculum.data.errors import CorpusTooSmallError

__all__ = ["BATCH_MODES", "TokenBatcher"]

BATCH_MODES = ("random", "sequential")


class TokenBatcher:
    """Random or sequential ``(x, y)`` windows over a 1-D token stream, with resumable state.

    Args:
        tokens: 1-D integer token ids (a tensor or a sequence of ints).
        seq_len: T, tokens per input window.
        mode: ``"random"`` or ``"sequential"``.
        seed: seed of the batcher's own generator (random mode).
    """

    def __init__(
        self, tokens: Tensor | Sequence[int], seq_len: int, *, mode: str = "random", seed: int = 0
    ) -> None:
        tokens = torch.as_tensor(tokens)
        integer = not (tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool)
        if tokens.dim() != 1 or not integer:
            raise ValueError(
                f"tokens must be a 1-D integer tensor, got {tokens.dtype} {tuple(tokens.shape)}"
            )
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        if tokens.numel() < seq_len + 1:  # a user's small corpus: a stage error, one line
            raise CorpusTooSmallError(
                f"a stream of {tokens.numel()} tokens is too short for seq_len={seq_len} "
                "(needs seq_len + 1): add documents to the corpus (ingest.path), raise "
                "splits.val_fraction / splits.test_fraction, or lower this stage's seq_len"
            )
        if mode not in BATCH_MODES:
            raise ValueError(f"mode must be one of {BATCH_MODES}, got {mode!r}")
        self.tokens = tokens.long()
        self.seq_len, self.mode, self.seed = seq_len, mode, seed
        self.generator = torch.Generator().manual_seed(seed)
        self.position = 0  # next sequential window
        self.epoch = 0  # completed passes in sequential mode

    @property
    def n_windows(self) -> int:
        """Number of non-overlapping windows (one sequential epoch)."""
        return (self.tokens.numel() - 1) // self.seq_len

    def _windows(self, starts: Tensor) -> tuple[Tensor, Tensor]:
        offsets = torch.arange(self.seq_len + 1)  # (T+1,)
        chunk = self.tokens[starts[:, None] + offsets[None, :]]  # (B, T+1): gather, no Python loop
        return chunk[:, :-1], chunk[:, 1:]  # x (B, T), y (B, T): y is x shifted left by one

    def next_batch(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """The next ``(x, y)`` batch, each ``(batch_size, T)`` int64; advances the state."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self.mode == "random":
            n_starts = self.tokens.numel() - self.seq_len  # a window needs T+1 tokens
            starts = torch.randint(0, n_starts, (batch_size,), generator=self.generator)
        else:
            idx = torch.arange(self.position, self.position + batch_size)  # (B,) window indices
            self.epoch += (self.position + batch_size) // self.n_windows
            self.position = (self.position + batch_size) % self.n_windows
            starts = (idx % self.n_windows) * self.seq_len
        return self._windows(starts)

    def eval_batches(self, batch_size: int, n_batches: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The first ``n_batches`` sequential batches, the same every call; the state is untouched.

        Stops early (the last batch possibly smaller) when the stream has fewer windows, so no
        window is counted twice.
        """
        total = min(batch_size * n_batches, self.n_windows)
        for lo in range(0, total, batch_size):
            idx = torch.arange(lo, min(lo + batch_size, total))  # (b,)
            yield self._windows(idx * self.seq_len)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the exact batch sequence."""
        return {
            "mode": self.mode,
            "seq_len": self.seq_len,
            "n_tokens": self.tokens.numel(),
            "position": self.position,
            "epoch": self.epoch,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the stream, T and mode must match."""
        mine = {"mode": self.mode, "seq_len": self.seq_len, "n_tokens": self.tokens.numel()}
        theirs = {k: state.get(k) for k in mine}
        if mine != theirs:
            raise ValueError(f"batcher state is for {theirs}, this batcher is {mine}")
        self.position, self.epoch = int(state["position"]), int(state["epoch"])
        self.generator.set_state(state["generator"])
