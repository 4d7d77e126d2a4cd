"""Batched greedy decoding with a KV cache, and its check against uncached forward passes.

:mod:`nlpcurriculum.decoding.kv_decode` decodes one sequence at a time. Serving decodes many at
once: B prompts of the same length are prefilled in one forward pass, then every step feeds the
B newest tokens ``(B, 1)`` and reads the whole cache ``(B, nkv, T, hs)`` per layer. At large B
the step is dominated by reading the cache (weights are read once per step for all B rows, the
cache once per row), which is what grouped-query attention shrinks (Ainslie et al. 2023,
arXiv:2305.13245; Pope et al. 2022, arXiv:2211.05102, section 3.1).

Dimension legend: B batch, P prompt length, n new tokens, V vocabulary.

Left out: prompts of different lengths (left padding + position offsets), stop tokens, sampling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nlpcurriculum.nn.kv_cache import KVCache

__all__ = ["DecodeRun", "greedy_batched", "teacher_forced_argmax", "timed_greedy_batched"]


@dataclass(frozen=True)
class DecodeRun:
    """One batched cached greedy decode.

    Attributes:
        tokens: the new ids, ``(B, n)``.
        logits: the logits each new id was picked from, ``(B, n, V)`` (if requested).
        prefill_s: seconds of the prefill pass.
        decode_s: seconds of the ``n - 1`` single-token steps after it.
        cache_bytes: ``KVCache.memory_bytes()`` at the end (keys and values, all layers).
    """

    tokens: Tensor
    logits: Tensor | None
    prefill_s: float
    decode_s: float
    cache_bytes: int


@torch.no_grad()
def greedy_batched(model: nn.Module, prompts: Tensor, max_new_tokens: int,
                   keep_logits: bool = False) -> DecodeRun:
    """Greedy-decode ``max_new_tokens`` ids for every row of ``prompts`` with one KV cache.

    Args:
        model: a MiniFormer (its forward takes ``kv_cache=``).
        prompts: ``(B, P)`` token ids, all rows the same length.
        max_new_tokens: n >= 1.
        keep_logits: also return the ``(B, n, V)`` logits.
    """
    if prompts.dim() != 2 or prompts.size(1) < 1:
        raise ValueError(f"prompts must be (B, P) with P >= 1, got {tuple(prompts.shape)}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    model.eval()
    cache = KVCache(len(model.blocks), capacity=prompts.size(1) + max_new_tokens)
    out, kept = [], []
    t0 = time.perf_counter()
    logits = model(prompts, kv_cache=cache).logits[:, -1]  # prefill: (B, V) at the last position
    t1 = time.perf_counter()
    for step in range(max_new_tokens):
        nxt = logits.argmax(-1, keepdim=True)  # (B, 1)
        out.append(nxt)
        if keep_logits:
            kept.append(logits)
        if step + 1 < max_new_tokens:
            logits = model(nxt, kv_cache=cache).logits[:, -1]  # (B, V): one new position per row
    t2 = time.perf_counter()
    return DecodeRun(torch.cat(out, dim=1), torch.stack(kept, dim=1) if keep_logits else None,
                     t1 - t0, t2 - t1, cache.memory_bytes())


@torch.no_grad()
def teacher_forced_argmax(model: nn.Module, prompts: Tensor, new: Tensor) -> tuple[Tensor, Tensor]:
    """One uncached forward pass over ``prompts + new``: the argmax and logits at the positions
    that produced ``new`` (``(B, n)`` and ``(B, n, V)``). Equal to ``new`` iff the cached decode
    computed what the plain model computes."""
    P, n = prompts.size(1), new.size(1)
    logits = model(torch.cat([prompts, new], dim=1)).logits[:, P - 1: P - 1 + n]  # (B, n, V)
    return logits.argmax(-1), logits


def timed_greedy_batched(model: nn.Module, prompts: Tensor, max_new_tokens: int,
                         repeats: int) -> DecodeRun:
    """The run with the fastest decode phase among ``repeats`` identical runs (best of)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    best = None
    for _ in range(repeats):
        run = greedy_batched(model, prompts, max_new_tokens)
        if best is None or run.decode_s < best.decode_s:
            best = run
    return best
