"""Autoregressive generation: greedy and temperature / top-k sampling, one token at a time.

Each step feeds the last ``max_seq_len`` tokens to the model, takes the logits of the final
position, and picks the next id: the arg-max (greedy, ``temperature == 0``), or a draw from
``softmax(logits / temperature)`` restricted to the ``top_k`` most likely ids (Fan et al. 2018,
arXiv:1805.04833). Temperature below 1 sharpens the distribution, above 1 flattens it.

Every step recomputes the whole window: simple and exact, O(T^2) per token. Left out: the KV
cache (:mod:`nlpcurriculum.nn.kv_cache`), nucleus (top-p) sampling, beam search, repetition
penalties.

Dimension legend: B batch (1 here), T tokens in the window, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


@torch.no_grad()
def generate(
    model: nn.Module,
    prompt: Sequence[int],
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    stop_id: int | None = None,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Continue ``prompt`` by up to ``max_new_tokens`` ids; returns only the new ids.

    Args:
        model: returns ``.logits`` of shape ``(B, T, V)``; needs ``model.config.max_seq_len``.
        prompt: token ids to continue (at least one).
        max_new_tokens: how many ids to add at most.
        temperature: 0 for greedy decoding; otherwise the softmax temperature.
        top_k: sample only among the ``top_k`` most likely ids (``None``: all).
        stop_id: stop after producing this id (e.g. end-of-text); it is included.
        generator: the random generator for sampling (seed it for reproducible samples).
    """
    if not prompt:
        raise ValueError("prompt must hold at least one token id")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    was_training = model.training
    model.eval()
    window = model.config.max_seq_len
    ids = torch.tensor([list(prompt)], dtype=torch.long)  # (1, T)
    new: list[int] = []
    for _ in range(max_new_tokens):
        logits = model(ids[:, -window:]).logits[0, -1]  # (V,) scores of the next token
        if temperature == 0:
            nxt = int(logits.argmax())
        else:
            logits = logits / temperature
            if top_k is not None and top_k < logits.numel():
                kth = torch.topk(logits, top_k).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits, dim=-1)
            nxt = int(torch.multinomial(probs, 1, generator=generator))
        new.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)  # (1, T+1)
        if stop_id is not None and nxt == stop_id:
            break
    model.train(was_training)
    return new
