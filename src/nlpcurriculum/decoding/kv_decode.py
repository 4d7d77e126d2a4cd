"""Greedy decoding with and without a key/value cache, and what the cache does at each step.

Without a cache, step ``t`` runs the model over the whole sequence so far (prompt + ``t`` new
tokens) and keeps only the last position's logits: every earlier key and value is recomputed,
so ``n`` new tokens cost O(n * T) token-projections. The output head, the widest matrix of a
small model, is applied to the last position only (:func:`last_position_head`), as the cached
decoder applies it to its one new position: the baseline recomputes what a cache saves (keys,
values, the blocks' work on earlier positions), not logits nobody reads. With a
:class:`~nlpcurriculum.nn.kv_cache.KVCache` (Pope et al. 2022, "Efficiently Scaling Transformer
Inference", arXiv:2211.05102, section 2), the prompt is run once (*prefill*) and each later step
feeds only the newest token: its key and value are computed (a cache *miss*) and appended, and
every earlier one is read back from the cache (a *hit*). Causal masking makes both paths compute
the same logits, so greedy decoding gives the same tokens; :func:`greedy_cached` can record the
cache's sizes around every forward pass so that this can be measured, not assumed.

Unlike :func:`nlpcurriculum.decoding.generate`, neither function slides a window: the whole
sequence is attended. Past ``max_seq_len`` a RoPE model extrapolates positions (the text gets
worse, but the two paths still compute the same thing); a learned-position model cannot.

Both run under ``torch.inference_mode``, not just ``no_grad``: nothing they make is ever used for
training (they return Python ints), so torch can also skip the version counters and view
bookkeeping that ``no_grad`` still keeps, about 15% of a one-token step of the base model here.
And both multiply by transposed copies of the weights
(:func:`~nlpcurriculum.nn.fast.decode_layout.decode_layout`), about 25% more.

Dimension legend: B batch (1 here), T tokens, V vocabulary.

Left out: sampling (greedy only: identical output is then a sharp test), batching, stop tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.nn.fast.decode_layout import decode_layout

__all__ = ["CacheStep", "LastPositionHead", "greedy_cached", "greedy_no_cache", "last_position_head",
           "no_cache_logits"]


@dataclass(frozen=True)
class CacheStep:
    """What one forward pass of cached decoding did, read from the cache itself.

    Attributes:
        step: 0 for the prefill, then 1, 2, ... for each decoding step.
        cached_before: positions in the cache before the pass (all reused: hits).
        cached_after: positions in the cache after it.
        token: the id the pass produced (the arg-max of its last logits).
    """

    step: int
    cached_before: int
    cached_after: int
    token: int

    @property
    def hits(self) -> int:
        """Key/value positions read back from the cache instead of recomputed."""
        return self.cached_before

    @property
    def misses(self) -> int:
        """Key/value positions computed (and appended) by this pass."""
        return self.cached_after - self.cached_before


class LastPositionHead(nn.Module):
    """An output head applied to the last position only: ``(B, T, C) -> (B, 1, V)``."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h[:, -1:])  # (B, 1, C) -> (B, 1, V)


@contextmanager
def last_position_head(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``model``'s ``lm_head`` computes the last position's logits only
    (``logits`` is then ``(B, 1, V)``); the head is put back afterwards."""
    head = model.lm_head
    model.lm_head = LastPositionHead(head)
    try:
        yield model
    finally:
        model.lm_head = head


def no_cache_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """One step without a cache: run all of ``ids`` ``(1, T)``, the head on the last position
    only; returns its ``(V,)`` logits. Call inside :func:`last_position_head`."""
    return model(ids).logits[0, -1]  # (1, 1, V) -> (V,)


def _check(model: nn.Module, prompt: Sequence[int], max_new_tokens: int) -> None:
    if not prompt:
        raise ValueError("prompt must hold at least one token id")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if not hasattr(model, "blocks"):
        raise TypeError("model must be a MiniFormer (it needs .blocks and the kv_cache argument)")


@torch.inference_mode()
def greedy_no_cache(model: nn.Module, prompt: Sequence[int], max_new_tokens: int) -> list[int]:
    """Greedy decoding that re-runs the whole sequence at every step (the output head on the
    last position only); returns the new ids."""
    _check(model, prompt, max_new_tokens)
    model.eval()
    with decode_layout(model), last_position_head(model):
        ids = torch.tensor([list(prompt)], dtype=torch.long)  # (1, T)
        new: list[int] = []
        for _ in range(max_new_tokens):
            nxt = int(no_cache_logits(model, ids).argmax())  # (V,) at the last position
            new.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)  # (1, T+1)
    return new


@torch.inference_mode()
def greedy_cached(
    model: nn.Module,
    prompt: Sequence[int],
    max_new_tokens: int,
    trace: list[CacheStep] | None = None,
) -> list[int]:
    """Greedy decoding with a KV cache: prefill the prompt once, then one token per pass.

    Args:
        model: a MiniFormer (its forward takes ``kv_cache=``).
        prompt: token ids to continue.
        max_new_tokens: how many ids to produce.
        trace: if given, one :class:`CacheStep` per forward pass is appended to it.

    Returns:
        The ``max_new_tokens`` new ids.
    """
    _check(model, prompt, max_new_tokens)
    model.eval()
    with decode_layout(model):
        cache = KVCache(len(model.blocks), capacity=len(prompt) + max_new_tokens)
        x = torch.tensor([list(prompt)], dtype=torch.long)  # (1, T_prompt): the prefill
        new: list[int] = []
        for step in range(max_new_tokens):
            before = cache.seq_len(0)
            nxt = int(model(x, kv_cache=cache).logits[0, -1].argmax())  # (V,) at the last position
            if trace is not None:
                trace.append(CacheStep(step, before, cache.seq_len(0), nxt))
            new.append(nxt)
            x = torch.tensor([[nxt]])  # (1, 1): only the newest token is fed from now on
    return new
