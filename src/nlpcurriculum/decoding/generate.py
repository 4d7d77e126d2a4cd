"""Autoregressive generation: the one sampling loop every decoder of the library calls.

Each step takes the logits of the next token, turns them into the next id with a
:class:`~nlpcurriculum.decoding.samplers.SamplerConfig` (arg-max for ``temperature == 0``;
otherwise a draw from ``softmax(process_logits(logits))``: repetition penalty, temperature,
top-k, top-p, min-p, see :mod:`~nlpcurriculum.decoding.samplers`), appends it and goes on. A
batch of prompts of one length advances in lockstep, one id per row per step.

Two ways to get the next logits:

* ``cache=False`` (the default, the textbook loop): every step feeds the last
  ``model.config.max_seq_len`` ids to the model and keeps the last position: simple and exact,
  O(T^2) per token, and the window slides, so it never runs out of positions;
* ``cache=True``: the prompt is run once into a :class:`~nlpcurriculum.nn.kv_cache.KVCache`
  (prefill), then each step feeds only the newest id, with the decode-time weight layout
  (:func:`~nlpcurriculum.nn.linear.decode_layout`), as in
  :func:`~nlpcurriculum.decoding.kv_decode.greedy_cached`; nothing slides (a MiniFormer only).

A caller with its own forward (an attention mask, a slice of the vocabulary) passes
``next_logits(ids) -> (B, V)`` instead. The random draws come from ``generator``, one
``torch.multinomial`` call per step over the whole batch, so a seeded generator gives the same
samples every time.

Worked example (tested): a prompt ``[1, 2, 3]`` and ``max_new_tokens=12`` with a model of
``max_seq_len = 8``: step 6 feeds all 8 ids, from step 7 on (9 ids and more) the model sees only
the last 8; with ``stop_id=s`` the output ends at the first ``s``, which it includes.

Dimension legend: B batch (prompts), T tokens so far, V vocabulary.

Left out: beam search (:mod:`~nlpcurriculum.decoding.beam`), speculative decoding
(:mod:`~nlpcurriculum.decoding.speculative`), prompts of different lengths, per-step diagnostics
(entropies, kept ids: :func:`~nlpcurriculum.decoding.samplers.sample`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
from torch import Tensor, nn

from nlpcurriculum.decoding.samplers import SamplerConfig, as_prompt_batch, process_logits
from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.nn.fast.decode_layout import decode_layout

__all__ = ["GREEDY", "generate", "next_token"]

GREEDY = SamplerConfig(temperature=0.0)
"""Arg-max decoding: the sampler ``generate`` uses when none is given."""


def next_token(logits: Tensor, sampler: SamplerConfig, prev_ids: Tensor | None = None,
               generator: torch.Generator | None = None) -> Tensor:
    """One decoding step: ``(B, V)`` next-token logits -> ``(B,)`` ids.

    The arg-max of the processed scores for a greedy sampler, else one ``torch.multinomial`` draw
    per row from their softmax. ``prev_ids`` ``(B, T)`` are the ids so far (for the repetition
    penalty; ``None``: no penalty).
    """
    scores = process_logits(logits, prev_ids, sampler)  # (B, V), -inf where filtered out
    if sampler.greedy:
        return scores.argmax(dim=-1)
    return torch.multinomial(scores.softmax(dim=-1), 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(
    model: nn.Module,
    prompt_ids: Sequence[int] | Sequence[Sequence[int]] | Tensor,
    max_new_tokens: int,
    *,
    sampler: SamplerConfig | None = None,
    stop_id: int | None = None,
    cache: bool = False,
    generator: torch.Generator | None = None,
    banned: Sequence[int] = (),
    next_logits: Callable[[Tensor], Tensor] | None = None,
) -> list[int] | list[list[int]]:
    """Continue the prompt(s) by up to ``max_new_tokens`` ids; returns only the new ids.

    Args:
        model: returns ``.logits`` ``(B, T, V)``; needs ``model.config.max_seq_len`` (the window)
            unless ``next_logits`` is given, and ``.blocks`` and the ``kv_cache=`` argument (a
            MiniFormer) for ``cache=True``.
        prompt_ids: one prompt (ids, or a 1-D tensor) or several of equal length.
        max_new_tokens: how many ids to add at most.
        sampler: how logits become the next id; ``None`` is arg-max (:data:`GREEDY`).
        stop_id: end-of-text id: a row ends after producing it (included), and generation stops
            when every row has; a finished row is fed ``stop_id`` until then.
        cache: decode with a KV cache (see the module docstring) instead of re-running the
            window at every step.
        generator: the random generator for sampling (seed it for reproducible samples).
        banned: ids that are never produced (their logits are set to ``-inf`` first).
        next_logits: ``next_logits(ids)`` ``(B, T) -> (B, V)``: the next-token logits given all
            ids so far, in place of the model's windowed forward (not with ``cache=True``).

    Returns:
        The new ids: a list for one prompt, a list per prompt for several. The model's
        train/eval mode is restored afterwards.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if cache and next_logits is not None:
        raise ValueError("next_logits runs its own forward: it cannot be combined with cache=True")
    if cache and not hasattr(model, "blocks"):
        raise TypeError("cache=True needs a MiniFormer (its .blocks and the kv_cache argument)")
    sampler = GREEDY if sampler is None else sampler
    prompts, single = as_prompt_batch(prompt_ids)  # (B, P)
    B = prompts.size(0)
    banned_ids = torch.tensor(list(banned), dtype=torch.long)
    was_training = model.training
    model.eval()
    seq = prompts  # (B, T): every id so far (the window, the repetition penalty)
    x = prompts  # cache=True: the prefill, then (B, 1) per step
    kv = KVCache(len(model.blocks), capacity=prompts.size(1) + max_new_tokens) if cache else None
    window = model.config.max_seq_len if not cache and next_logits is None else 0
    done = torch.zeros(B, dtype=torch.bool)
    new: list[Tensor] = []
    try:
        with decode_layout(model) if cache else nullcontext():
            for _ in range(max_new_tokens):
                if kv is not None:
                    logits = model(x, kv_cache=kv).logits[:, -1]  # (B, V)
                elif next_logits is not None:
                    logits = next_logits(seq)  # (B, V)
                else:
                    logits = model(seq[:, -window:]).logits[:, -1]  # (B, V)
                if banned_ids.numel():
                    logits = logits.index_fill(-1, banned_ids, float("-inf"))
                nxt = next_token(logits, sampler, seq, generator)  # (B,)
                if stop_id is not None:
                    nxt = torch.where(done, torch.full_like(nxt, stop_id), nxt)
                    done = done | (nxt == stop_id)
                new.append(nxt)
                if bool(done.all()):
                    break
                x = nxt[:, None]  # (B, 1): all a cached step needs
                seq = torch.cat([seq, x], dim=1)  # (B, T+1)
    finally:
        model.train(was_training)
    rows = torch.stack(new, dim=1).tolist() if new else [[] for _ in range(B)]  # (B, S)
    if stop_id is not None:
        rows = [row[: row.index(stop_id) + 1] if stop_id in row else row for row in rows]
    return rows[0] if single else rows
