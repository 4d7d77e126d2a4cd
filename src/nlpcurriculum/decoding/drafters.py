"""Drafters for speculative decoding: who proposes the ``gamma`` tokens the target verifies.

:func:`~nlpcurriculum.decoding.speculative.speculative_generate` asks a :class:`Drafter` for a
block of proposed ids, scores them with one target pass and keeps a prefix by the rejection rule.
A drafter has three methods:

* ``start(prompt)``: a new sequence begins (reset any per-sequence state, e.g. a KV cache);
* ``propose(tokens, gamma, temperature, generator) -> (ids, q)``: up to ``gamma`` ids to append
  to ``tokens`` (fewer, even none, is allowed), and ``q``, the ``(len(ids), V)`` distributions they
  were sampled from, or ``None`` for a *deterministic* drafter (its ``q`` is one-hot on each id);
* ``rollback(n)``: verification kept the first ``n`` tokens of the sequence; forget the rest.

Four drafters:

* :class:`ModelDrafter`: a small language model (a mini-former with its own KV cache, or the
  cache-less :class:`~nlpcurriculum.models.bigram.BigramLM`), run ``gamma`` times (Leviathan et
  al. 2023, arXiv:2211.17192; Chen et al. 2023, arXiv:2302.01318).
* :class:`ContextDrafter`: prompt lookup decoding (Saxena 2023, "Prompt Lookup Decoding",
  github.com/apoorvumang/prompt-lookup-decoding; the copy drafts of LLMA, Yang et al. 2023,
  "Inference with Reference", arXiv:2304.04487): find the most recent earlier occurrence of the
  last ``n`` tokens of the sequence (``n`` from ``max_ngram`` down to ``min_ngram``) and propose
  what followed it. No model at all; it shines when the output repeats its context (code,
  quotes, and the loops small models fall into under greedy decoding).
* :class:`NgramTableDrafter`: the target distilled into a lookup table (cf. REST, He et al. 2023,
  arXiv:2311.08252, which retrieves drafts from a datastore): run the target teacher-forced over
  a token stream, record its arg-max next token at every position, keyed on the last ``k``
  tokens (``k = 1..order``); each key keeps the majority vote and its vote share. The target's
  own greedy continuations can vote too (every generated token under the keys before it): the
  contexts the table then meets at decoding time are the target's outputs, not the corpus's
  (on-policy data, as DistillSpec, Zhou et al. 2023, arXiv:2310.08461, argues). Drafting chains
  lookups, backing off to shorter keys, and stops when the product of the vote shares (a crude
  estimate of "all accepted so far") falls under ``min_confidence`` (a dynamic draft length, as
  in DISCO, Mamou et al. 2024, arXiv:2405.04304, here from table statistics).
* :class:`ChainDrafter`: one deterministic drafter first, another for the rest of the block
  (context lookup, then the table).

A deterministic draft is a one-hot ``q``: the rejection rule keeps working unchanged (accept
``x`` with probability ``min(1, p(x) / 1) = p(x)``; on rejection sample from
``norm(max(0, p - onehot(x)))``, i.e. ``p`` with ``x`` removed), so sampling stays exact at any
temperature, and at temperature 0 the output is still the target's greedy output.

Dimension legend: G drafted tokens, V vocabulary, T tokens.

Left out: tree / multi-candidate drafts (REST and SpecInfer verify a trie of candidates at once),
suffix-array datastores (REST's index; a dict of n-grams is enough at curriculum sizes), learned
draft-length heads.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlpcurriculum.nn.kv_cache import KVCache

__all__ = [
    "ChainDrafter",
    "ContextDrafter",
    "Drafter",
    "ModelDrafter",
    "NgramTableDrafter",
    "as_drafter",
    "count_votes",
    "teacher_forced_argmax_stream",
]


class Drafter:
    """The interface :func:`~nlpcurriculum.decoding.speculative.speculative_generate` drafts with.

    Attributes:
        vocab_size: the vocabulary the proposals come from (``None``: any, e.g. copied ids).
        deterministic: ``propose`` returns ``q = None`` (one-hot on each proposed id).
    """

    vocab_size: int | None = None
    deterministic: bool = True

    def start(self, prompt: Sequence[int]) -> None:
        """A new sequence starts with ``prompt``. Stateless drafters do nothing."""

    def propose(self, tokens: Sequence[int], gamma: int, temperature: float = 0.0,
                generator: torch.Generator | None = None) -> tuple[list[int], Tensor | None]:
        """Up to ``gamma`` ids to follow ``tokens``, and their ``(G, V)`` distributions (or None)."""
        raise NotImplementedError

    def rollback(self, n_tokens: int) -> None:
        """Verification kept ``tokens[:n_tokens]``; forget anything seen after them."""


class ModelDrafter(Drafter):
    """A language model as the drafter, sampled (or arg-maxed) one token at a time.

    A mini-former keeps a KV cache across calls with the invariant of the decoding loop: it
    holds every token of the sequence but the last; after verification it is cropped back to
    the accepted prefix, and the next call first feeds what it has not seen (the pending token,
    after a full acceptance also the last drafted one). A model without ``blocks`` (the bigram)
    has no cache and predicts from the last token only.

    Args:
        model: a :class:`~nlpcurriculum.models.miniformer.MiniFormer` or a ``BigramLM``.
    """

    deterministic = False

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()
        self.cached = hasattr(model, "blocks")
        self.vocab_size = model.lm_head.out_features if self.cached else model.vocab_size
        self.cache: KVCache | None = None

    def start(self, prompt: Sequence[int]) -> None:
        self.cache = KVCache(len(self.model.blocks)) if self.cached else None

    @torch.no_grad()
    def propose(self, tokens: Sequence[int], gamma: int, temperature: float = 0.0,
                generator: torch.Generator | None = None) -> tuple[list[int], Tensor | None]:
        if self.cached and self.cache is None:
            self.start(tokens)
        feed = list(tokens[self.cache.seq_len(0):]) if self.cached else [tokens[-1]]
        drafted: list[int] = []
        qs: list[Tensor] = []
        for _ in range(gamma):
            x = torch.tensor([feed])  # (1, T_new)
            out = self.model(x, kv_cache=self.cache) if self.cached else self.model(x)
            logits = out.logits[0, -1]  # (V,)
            if temperature == 0.0:
                tok = int(logits.argmax())
            else:
                q = F.softmax(logits.float() / temperature, dim=-1)  # (V,)
                tok = int(torch.multinomial(q, 1, generator=generator))
                qs.append(q)
            drafted.append(tok)
            feed = [tok]
        # at temperature 0 the draft's q is one-hot on its arg-max: deterministic
        return drafted, (torch.stack(qs) if qs else None)

    def rollback(self, n_tokens: int) -> None:
        if self.cache is not None:
            self.cache.crop(n_tokens)


class ContextDrafter(Drafter):
    """Prompt lookup decoding: copy what followed the last earlier occurrence of the suffix.

    For ``n`` from ``max_ngram`` down to ``min_ngram``: find the most recent start ``s < T - n``
    with ``tokens[s:s+n] == tokens[T-n:]`` and propose ``tokens[s+n], tokens[s+n+1], ...``. The
    copy reads from the sequence extended by its own proposals, so a loop of period ``P`` is
    continued for as many tokens as asked, not just ``P``. No match: nothing is proposed (the
    call is then a plain one-token target step).

    Args:
        max_ngram: longest suffix tried (longer = fewer, more reliable matches).
        min_ngram: shortest suffix tried.
    """

    vocab_size = None

    def __init__(self, max_ngram: int = 3, min_ngram: int = 1) -> None:
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError(f"need 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}")
        self.max_ngram, self.min_ngram = max_ngram, min_ngram

    def match(self, tokens: Sequence[int]) -> tuple[int, int]:
        """``(start of the copy, n)`` for the longest matching suffix, or ``(-1, 0)``."""
        T = len(tokens)
        for n in range(min(self.max_ngram, T - 1), self.min_ngram - 1, -1):
            suffix = list(tokens[T - n:])
            for s in range(T - n - 1, -1, -1):  # most recent first
                if list(tokens[s:s + n]) == suffix:
                    return s + n, n
        return -1, 0

    def propose(self, tokens: Sequence[int], gamma: int, temperature: float = 0.0,
                generator: torch.Generator | None = None) -> tuple[list[int], None]:
        start, _ = self.match(tokens)
        if start < 0:
            return [], None
        ext = list(tokens)
        for j in range(gamma):  # start + j < len(ext): the copy may read its own proposals
            ext.append(ext[start + j])
        return ext[len(tokens):], None


def count_votes(stream: Sequence[int], next_ids: Sequence[int], order: int,
                counts: dict[tuple[int, ...], Counter] | None = None,
                first: int = 0) -> dict[tuple[int, ...], Counter]:
    """Count, for every key of ``k = 1..order`` tokens, which next id followed it.

    Position ``i >= first`` of ``stream`` votes for ``next_ids[i]`` under the keys
    ``stream[i-k+1 : i+1]``. For a distilled table ``next_ids`` is the target's arg-max after
    each position (teacher forcing), or the next token of the target's own greedy output.

    Args:
        stream: token ids, ``(T,)``.
        next_ids: the id to vote for after each position, ``(T,)``.
        order: longest key.
        counts: add to these counts (else start empty).
        first: skip the votes of positions before it (e.g. a generation's prompt).
    """
    if len(stream) != len(next_ids):
        raise ValueError(f"stream ({len(stream)}) and next_ids ({len(next_ids)}) differ in length")
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    counts = counts if counts is not None else defaultdict(Counter)
    stream, next_ids = [int(t) for t in stream], [int(t) for t in next_ids]
    for i in range(first, len(stream)):
        for k in range(1, min(order, i + 1) + 1):
            counts[tuple(stream[i - k + 1: i + 1])][next_ids[i]] += 1
    return counts


@torch.no_grad()
def teacher_forced_argmax_stream(target: nn.Module, stream: np.ndarray | Sequence[int], seq_len: int,
                                 batch_size: int = 16) -> np.ndarray:
    """The target's arg-max next token at every position of ``stream``, teacher-forced.

    The stream is cut into consecutive windows of ``seq_len`` (the tail shorter than one window is
    dropped); each window is one uncached forward pass, so position ``i`` sees the tokens from the
    start of its window up to ``i``.

    Returns:
        ``(T',)`` int64 arg-max ids, ``T' = seq_len * (T // seq_len)``, aligned with ``stream``.
    """
    ids = torch.as_tensor(np.asarray(stream, dtype=np.int64))
    n = (ids.numel() // seq_len) * seq_len
    windows = ids[:n].view(-1, seq_len)  # (W, seq_len)
    target.eval()
    out = [target(windows[i: i + batch_size]).logits.argmax(-1).flatten()  # (b * seq_len,)
           for i in range(0, windows.size(0), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


class NgramTableDrafter(Drafter):
    """The target distilled into an n-gram lookup table: a nearly free deterministic draft.

    ``table`` maps a key (the last ``k <= order`` tokens) to ``(majority next id, its vote
    share)``. Proposing looks up the longest key that is in the table (backing off to shorter
    ones), appends the id, and repeats, while the product of the vote shares stays
    ``>= min_confidence``.

    Args:
        table: key tuple -> ``(next id, vote share in (0, 1])``.
        order: longest key in the table.
        min_confidence: stop drafting when the product of vote shares drops below it (0: draft
            all ``gamma`` while keys are found).
        vocab_size: the vocabulary of the ids (for the speculative loop's check).
    """

    def __init__(self, table: dict[tuple[int, ...], tuple[int, float]], order: int,
                 min_confidence: float = 0.0, vocab_size: int | None = None) -> None:
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        self.table, self.order = table, order
        self.min_confidence = min_confidence
        self.vocab_size = vocab_size

    @classmethod
    def from_votes(cls, counts: dict[tuple[int, ...], Counter], order: int, min_confidence: float = 0.0,
                   vocab_size: int | None = None) -> "NgramTableDrafter":
        """Majority vote per key (ties: the id counted first), with its share of the votes."""
        table = {}
        for key, c in counts.items():
            tok, n = c.most_common(1)[0]
            table[key] = (tok, n / sum(c.values()))
        return cls(table, order, min_confidence, vocab_size)

    def lookup(self, tokens: Sequence[int]) -> tuple[int, float] | None:
        """``(next id, vote share)`` under the longest known key ending ``tokens``, or None."""
        for k in range(min(self.order, len(tokens)), 0, -1):
            hit = self.table.get(tuple(tokens[len(tokens) - k:]))
            if hit is not None:
                return hit
        return None

    def propose(self, tokens: Sequence[int], gamma: int, temperature: float = 0.0,
                generator: torch.Generator | None = None) -> tuple[list[int], None]:
        ext = list(tokens[max(0, len(tokens) - self.order):])  # only the last `order` matter
        drafted: list[int] = []
        confidence = 1.0
        while len(drafted) < gamma:
            hit = self.lookup(ext)
            if hit is None:
                break
            confidence *= hit[1]
            if confidence < self.min_confidence:
                break
            drafted.append(hit[0])
            ext.append(hit[0])
        return drafted, None

    def __len__(self) -> int:
        return len(self.table)


class ChainDrafter(Drafter):
    """Deterministic drafters in turn: the first proposes what it can, the next continues.

    E.g. ``ChainDrafter(ContextDrafter(), table)``: copy from the context where the sequence
    repeats itself, fall back to the distilled table where it does not (and after the copy).
    """

    def __init__(self, *drafters: Drafter) -> None:
        if not drafters or not all(d.deterministic for d in drafters):
            raise ValueError("ChainDrafter needs one or more deterministic drafters")
        self.drafters = drafters
        sizes = {d.vocab_size for d in drafters} - {None}
        if len(sizes) > 1:
            raise ValueError(f"the drafters' vocabularies differ: {sorted(sizes)}")
        self.vocab_size = sizes.pop() if sizes else None

    def start(self, prompt: Sequence[int]) -> None:
        for d in self.drafters:
            d.start(prompt)

    def propose(self, tokens: Sequence[int], gamma: int, temperature: float = 0.0,
                generator: torch.Generator | None = None) -> tuple[list[int], None]:
        drafted: list[int] = []
        for d in self.drafters:
            if len(drafted) == gamma:
                break
            more, _ = d.propose(list(tokens) + drafted, gamma - len(drafted), temperature, generator)
            drafted += more
        return drafted, None

    def rollback(self, n_tokens: int) -> None:
        for d in self.drafters:
            d.rollback(n_tokens)


def as_drafter(draft: nn.Module | Drafter) -> Drafter:
    """A :class:`Drafter` as is; a model (mini-former or bigram) wrapped in :class:`ModelDrafter`."""
    if isinstance(draft, Drafter):
        return draft
    if isinstance(draft, nn.Module):
        return ModelDrafter(draft)
    raise TypeError(f"draft must be an nn.Module or a Drafter, got {type(draft).__name__}")
