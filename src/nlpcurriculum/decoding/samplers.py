"""Samplers: turning next-token logits into a (filtered) distribution, and drawing from it.

A sampler is a chain of *logits processors*, each taking the scores of the next token and
returning new scores, with the tokens it rules out set to ``-inf`` (so ``softmax`` gives them
probability 0 and renormalizes the rest). :func:`process_logits` applies, in this order (the
order Hugging Face ``generate`` uses, so the two agree):

1. **repetition penalty** (Keskar et al. 2019, CTRL, arXiv:1909.05858, section 4.1): every id
   already in the sequence (prompt and generated) has its logit divided by ``penalty`` when
   positive and multiplied by it when negative, i.e. made less likely for ``penalty > 1``;
2. **temperature**: ``logits / T``. ``T < 1`` sharpens the distribution, ``T > 1`` flattens it;
   ``T = 0`` is the limit, arg-max (greedy) decoding: only the best id survives;
3. **top-k** (Fan et al. 2018, arXiv:1805.04833): keep the ``k`` highest scores (ties with the
   ``k``-th score are kept too);
4. **top-p / nucleus** (Holtzman et al. 2019, "The Curious Case of Neural Text Degeneration",
   arXiv:1904.09751): keep the smallest set of most likely ids whose probability mass is
   ``>= p``: an id survives when the mass of the ids ranked above it is still ``< p``;
5. **min-p** (Nguyen et al. 2024, arXiv:2407.01082): keep the ids whose probability is at least
   ``min_p`` times the top id's probability, a cut that tightens when the model is confident.

Every filter keeps at least ``min_tokens_to_keep`` ids. :func:`next_token_distribution` is the
softmax of the processed scores; :func:`sample` decodes with the model's key/value cache (the
same cached forward as :func:`nlpcurriculum.decoding.kv_decode.greedy_cached`: prefill the
prompts once, then one token per pass), a batch of prompts x samples at a time, and records each
step's entropy before and after filtering.

Dimension legend: B batch (prompts x samples), T tokens, V vocabulary, S generated steps.

Left out: typical / eta / epsilon sampling, frequency and presence penalties (OpenAI-style),
beam search, ragged prompts (all prompts of one call have the same length).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nlpcurriculum.metrics.stats import entropy
from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.nn.fast.decode_layout import decode_layout

__all__ = [
    "SampleOutput",
    "SamplerConfig",
    "apply_min_p",
    "apply_repetition_penalty",
    "apply_temperature",
    "apply_top_k",
    "apply_top_p",
    "as_prompt_batch",
    "next_token_distribution",
    "process_logits",
    "sample",
]

NEG_INF = float("-inf")


@dataclass(frozen=True)
class SamplerConfig:
    """The knobs of a sampler; the neutral value of each switches it off.

    Attributes:
        temperature: ``>= 0``; 0 means arg-max (greedy), 1 leaves the logits as they are.
        top_k: keep the ``k`` most likely ids; 0 = off.
        top_p: nucleus mass in ``(0, 1]``; 1 = off.
        min_p: in ``[0, 1]``; keep ids with ``p >= min_p * max p``; 0 = off.
        repetition_penalty: ``> 0``; 1 = off, ``> 1`` discourages ids already in the sequence.
        min_tokens_to_keep: every filter keeps at least this many ids (``>= 1``).

    Raises:
        ValueError: a value out of range; the message names the field.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    min_tokens_to_keep: int = 1

    def __post_init__(self) -> None:
        for name in ("temperature", "top_p", "min_p", "repetition_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        for name in ("top_k", "min_tokens_to_keep"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an int, got {value!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = argmax), got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
        if not 0 <= self.min_p <= 1:
            raise ValueError(f"min_p must be in [0, 1] (0 = off), got {self.min_p}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0 (1 = off), got {self.repetition_penalty}")
        if self.min_tokens_to_keep < 1:
            raise ValueError(f"min_tokens_to_keep must be >= 1, got {self.min_tokens_to_keep}")

    @property
    def greedy(self) -> bool:
        """True when this config is arg-max decoding (``temperature == 0``)."""
        return self.temperature == 0

    def label(self) -> str:
        """A short name of the settings that are on, e.g. ``"T=0.7 k=40 p=0.9"``."""
        parts = ["argmax" if self.greedy else f"T={self.temperature:g}"]
        if self.top_k:
            parts.append(f"k={self.top_k}")
        if self.top_p < 1:
            parts.append(f"p={self.top_p:g}")
        if self.min_p > 0:
            parts.append(f"min_p={self.min_p:g}")
        if self.repetition_penalty != 1:
            parts.append(f"rep={self.repetition_penalty:g}")
        return " ".join(parts)


# --- the processors: scores (B, V) in, scores (B, V) out ------------------------------------


def apply_repetition_penalty(scores: Tensor, prev_ids: Tensor, penalty: float) -> Tensor:
    """CTRL's penalty on every id in ``prev_ids`` (each id once, however often it occurred).

    Args:
        scores: ``(B, V)`` logits.
        prev_ids: ``(B, T)`` the ids so far (prompt + generated), per row.
        penalty: ``> 1`` lowers those ids' scores: positive ones are divided by it, negative ones
            multiplied (dividing a negative logit would *raise* it).
    """
    if penalty == 1 or prev_ids.numel() == 0:
        return scores
    seen = scores.gather(1, prev_ids)  # (B, T) the scores of the ids already used
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return scores.scatter(1, prev_ids, seen)


def apply_temperature(scores: Tensor, temperature: float) -> Tensor:
    """``scores / T`` for ``T > 0``; for ``T == 0`` only the arg-max of each row stays finite."""
    if temperature == 0:
        best = scores.argmax(dim=-1, keepdim=True)  # (B, 1)
        out = torch.full_like(scores, NEG_INF)
        return out.scatter(1, best, scores.gather(1, best))
    if temperature == 1:
        return scores
    return scores / temperature


def apply_top_k(scores: Tensor, k: int, min_tokens_to_keep: int = 1) -> Tensor:
    """Keep the ``k`` highest scores per row (and any tied with the ``k``-th); ``k == 0``: off."""
    if k <= 0:
        return scores
    k = min(max(k, min_tokens_to_keep), scores.size(-1))
    kth = torch.topk(scores, k, dim=-1).values[..., -1:]  # (B, 1) the k-th highest score
    return scores.masked_fill(scores < kth, NEG_INF)


def apply_top_p(scores: Tensor, p: float, min_tokens_to_keep: int = 1) -> Tensor:
    """Nucleus filter: keep the smallest most-likely set whose probability mass reaches ``p``.

    Sorted by probability (descending), an id is kept while the mass ranked strictly above it is
    below ``p``; the id that carries the running mass past ``p`` is the last one kept.
    """
    if p >= 1:
        return scores
    sorted_scores, order = torch.sort(scores, dim=-1, descending=True)  # (B, V), (B, V)
    probs = sorted_scores.softmax(dim=-1)
    mass_above = probs.cumsum(dim=-1) - probs  # (B, V) mass of the ids ranked above each id
    drop_sorted = mass_above >= p
    drop_sorted[..., :min_tokens_to_keep] = False
    drop = drop_sorted.scatter(1, order, drop_sorted)  # back to vocabulary order
    return scores.masked_fill(drop, NEG_INF)


def apply_min_p(scores: Tensor, min_p: float, min_tokens_to_keep: int = 1) -> Tensor:
    """Keep ids with ``p >= min_p * max p`` (and at least the ``min_tokens_to_keep`` best)."""
    if min_p <= 0:
        return scores
    probs = scores.softmax(dim=-1)  # (B, V)
    drop = probs < min_p * probs.max(dim=-1, keepdim=True).values
    if min_tokens_to_keep > 1:
        best = torch.topk(scores, min(min_tokens_to_keep, scores.size(-1)), dim=-1).indices
        drop = drop.scatter(1, best, False)
    return scores.masked_fill(drop, NEG_INF)


def process_logits(scores: Tensor, prev_ids: Tensor | None, cfg: SamplerConfig) -> Tensor:
    """The whole chain: repetition penalty, temperature, top-k, top-p, min-p.

    Args:
        scores: ``(B, V)`` or ``(V,)`` next-token logits.
        prev_ids: ``(B, T)`` / ``(T,)`` ids so far (for the repetition penalty), or ``None``.
        cfg: the sampler.

    Returns:
        Scores of the same shape, ``-inf`` where an id was filtered out.
    """
    squeeze = scores.dim() == 1
    if squeeze:
        scores = scores[None]
        prev_ids = None if prev_ids is None else prev_ids.reshape(1, -1)
    scores = scores.float()
    if prev_ids is not None:
        scores = apply_repetition_penalty(scores, prev_ids.long(), cfg.repetition_penalty)
    scores = apply_temperature(scores, cfg.temperature)
    if not cfg.greedy:  # after arg-max only one id is left: nothing to filter
        scores = apply_top_k(scores, cfg.top_k, cfg.min_tokens_to_keep)
        scores = apply_top_p(scores, cfg.top_p, cfg.min_tokens_to_keep)
        scores = apply_min_p(scores, cfg.min_p, cfg.min_tokens_to_keep)
    return scores[0] if squeeze else scores


def next_token_distribution(scores: Tensor, prev_ids: Tensor | None, cfg: SamplerConfig) -> Tensor:
    """The distribution the next id is drawn from: ``softmax(process_logits(...))``, rows sum to 1."""
    return process_logits(scores, prev_ids, cfg).softmax(dim=-1)


# --- generation with the KV cache -------------------------------------------------------------


@dataclass
class SampleOutput:
    """What :func:`sample` produced.

    Attributes:
        tokens: ``B`` lists of new ids (cut after ``stop_id`` where it occurred); row
            ``i * n_samples + j`` is sample ``j`` of prompt ``i``.
        entropy_model: ``(B, S)`` entropy (nats) of the model's own distribution
            ``softmax(logits)`` at each step.
        entropy_sampled: ``(B, S)`` entropy of the distribution actually sampled from (after
            penalty, temperature and filters; 0 for arg-max).
        kept: ``(B, S)`` number of ids the filters left.
        model_probs: ``(B, S, V)`` ``softmax(logits)`` per step, when ``keep_distributions``.
        tempered_probs: ``(B, S, V)`` after penalty and temperature, before the truncating
            filters (for ``T == 0``: after the penalty only), when ``keep_distributions``.
        sampled_probs: ``(B, S, V)`` the final distribution, when ``keep_distributions``.
    """

    tokens: list[list[int]]
    entropy_model: Tensor
    entropy_sampled: Tensor
    kept: Tensor
    model_probs: Tensor | None = None
    tempered_probs: Tensor | None = None
    sampled_probs: Tensor | None = None


def as_prompt_batch(prompts: Sequence[int] | Sequence[Sequence[int]] | Tensor) -> tuple[Tensor, bool]:
    """One prompt (ids) or several of equal length as a ``(P, T)`` int64 batch, and whether it
    was one prompt.

    Raises:
        ValueError: no prompt, an empty one, or prompts of different lengths.
    """
    if len(prompts) == 0:
        raise ValueError("prompt must hold at least one token id")
    first = prompts[0]
    single = isinstance(first, numbers.Integral) or (isinstance(first, Tensor) and first.dim() == 0)
    rows = [[int(t) for t in p] for p in ([prompts] if single else prompts)]
    lengths = {len(r) for r in rows}
    if 0 in lengths:
        raise ValueError("prompt must hold at least one token id")
    if len(lengths) > 1:
        raise ValueError(f"all prompts of one call must have the same length, got {sorted(lengths)}")
    return torch.tensor(rows, dtype=torch.long), single  # (P, T)


@torch.no_grad()
def sample(
    model: nn.Module,
    prompts: Sequence[int] | Sequence[Sequence[int]],
    max_new_tokens: int,
    cfg: SamplerConfig,
    *,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
    stop_id: int | None = None,
    keep_distributions: bool = False,
) -> SampleOutput:
    """Sample ``n_samples`` continuations of each prompt with the KV cache.

    Args:
        model: a MiniFormer (its forward takes ``kv_cache=``).
        prompts: one prompt (ids) or several of equal length.
        max_new_tokens: steps to generate; ``len(prompt) + max_new_tokens`` must fit
            ``model.config.max_seq_len``.
        cfg: the sampler.
        n_samples: continuations per prompt (all decoded in one batch).
        generator: seeds the draws (same seed, same settings -> same samples).
        stop_id: end-of-text id: a row stops after emitting it (decoding ends when all have).
        keep_distributions: also return the per-step distributions (``(B, S, V)`` each).
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if not hasattr(model, "blocks"):
        raise TypeError("model must be a MiniFormer (it needs .blocks and the kv_cache argument)")
    prompt = as_prompt_batch(prompts)[0].repeat_interleave(n_samples, dim=0)  # (B, T)
    limit = model.config.max_seq_len
    if prompt.size(1) + max_new_tokens > limit:
        raise ValueError(f"prompt ({prompt.size(1)} tokens) + max_new_tokens ({max_new_tokens}) "
                         f"exceeds the model's max_seq_len ({limit})")
    model.eval()
    B = prompt.size(0)
    cache = KVCache(len(model.blocks), capacity=prompt.size(1) + max_new_tokens)
    seq = prompt  # (B, T) everything so far, for the repetition penalty
    x = prompt  # the prefill, then (B, 1) per step
    done = torch.zeros(B, dtype=torch.bool)
    new, h_model, h_sampled, kept = [], [], [], []
    dists: list[tuple[Tensor, Tensor, Tensor]] = []
    with decode_layout(model):  # decode-time weight copies (nn/fast/): faster small products
        for _ in range(max_new_tokens):
            logits = model(x, kv_cache=cache).logits[:, -1].float()  # (B, V) at the last position
            scores = process_logits(logits, seq, cfg)
            probs = scores.softmax(dim=-1)  # (B, V)
            model_probs = logits.softmax(dim=-1)
            if cfg.greedy:
                nxt = probs.argmax(dim=-1)  # (B,)
            else:
                nxt = torch.multinomial(probs, 1, generator=generator)[:, 0]  # (B,)
            h_model.append(entropy(model_probs))
            h_sampled.append(entropy(probs))
            kept.append(torch.isfinite(scores).sum(dim=-1))
            if keep_distributions:
                pre = apply_repetition_penalty(logits, seq, cfg.repetition_penalty)
                if not cfg.greedy:
                    pre = pre / cfg.temperature
                dists.append((model_probs, pre.softmax(dim=-1), probs))
            new.append(nxt)
            done = done | (nxt == stop_id) if stop_id is not None else done
            x = nxt[:, None]  # (B, 1): only the newest token is fed from now on
            seq = torch.cat([seq, x], dim=1)  # (B, T+1)
            if bool(done.all()):
                break
    ids = torch.stack(new, dim=1)  # (B, S)
    tokens = []
    for row in ids.tolist():
        if stop_id is not None and stop_id in row:
            row = row[: row.index(stop_id) + 1]
        tokens.append(row)
    out = SampleOutput(tokens, torch.stack(h_model, 1), torch.stack(h_sampled, 1), torch.stack(kept, 1))
    if keep_distributions:
        out.model_probs, out.tempered_probs, out.sampled_probs = (torch.stack(d, 1) for d in zip(*dists))
    return out
