"""The BPE training loop as the textbook writes it: recount every pair after every merge.

This is the readable reference for :func:`~nlpcurriculum.tokenizers.bpe.learn_merges`, the fast
trainer that the tokenizers use, and the tests hold the fast one to it merge for merge. Same
arguments, same result (:class:`~nlpcurriculum.tokenizers.bpe.LearnedMerges`); only the cost
differs. Each round here:

1. counts every adjacent pair of symbols over the corpus, each chunk weighted by how often it
   occurs;
2. takes the most frequent pair (ties: the smaller pair ``(a, b)``, as ``tokenizers`` does) among
   those ``can_merge`` allows, and stops if it was seen fewer than ``min_frequency`` times;
3. gives the concatenation of the two symbols a new id, unless that content already is a token
   (the same bytes reached by another path: then the existing id is reused and no new id counts);
4. rewrites every chunk, replacing the pair left to right, non-overlapping (``a a a`` -> ``Z a``).

That is O(corpus size x merges): fine for tests and for reading, far too slow for the pipeline's
corpus, which is why :mod:`~nlpcurriculum.tokenizers.bpe` keeps incremental pair counts, an
inverted index of the chunks holding each pair and a lazy max-heap instead (Sennrich et al.
2016, arXiv:1508.07909, give this naive loop as their algorithm 1).

Worked example (Wikipedia's ``aaabdaaabac``, one chunk, ``min_frequency=1``)::

    round 1: (a,a)=4 (a,b)=2 (b,d)=1 (d,a)=1 (b,a)=1 (a,c)=1 -> 256 = "aa"
             chunk: aa a b d aa a b a c        (a a a: the first two merge, left to right)
    round 2: (aa,a)=2 (a,b)=2 (b,d)=1 (d,aa)=1 (b,a)=1 (a,c)=1 -> tie at 2, and
             (a,b)=(97,98) < (aa,a)=(256,97): 257 = "ab"; chunk: aa ab d aa ab a c
    round 3: (aa,ab)=2 -> 258 = "aaab"; chunk: aaab d aaab a c  (Wikipedia's "XdXac")

A run ``a a a`` holds the adjacent pair ``(a, a)`` twice and is counted twice, although one merge
replaces it only once; the fast trainer counts it the same way, and the tests check runs of
several lengths.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from nlpcurriculum.tokenizers.bpe import LearnedMerges

__all__ = ["learn_merges_reference"]


def learn_merges_reference(
    words: Sequence[Sequence[int]],
    counts: Sequence[int],
    tokens: Sequence[Any],
    num_new_tokens: int,
    min_frequency: int = 2,
    can_merge: Callable[[Any, Any], bool] | None = None,
) -> LearnedMerges:
    """Learn BPE merges by recounting every pair after every merge (see the module docstring).

    Args:
        words: the unique pre-token chunks as sequences of symbol ids.
        counts: how often each chunk occurs (same length as ``words``).
        tokens: the content of every existing id (``bytes`` or ``str``).
        num_new_tokens: stop after creating this many new ids.
        min_frequency: never merge a pair seen fewer times (stops early).
        can_merge: optional veto ``can_merge(content_a, content_b)`` on a pair.

    Returns:
        The merges in the order learned, the extended token list and the number of merges
        applied (a merge that re-creates an existing token is applied but adds no id).
    """
    if len(words) != len(counts):
        raise ValueError(f"{len(words)} words but {len(counts)} counts")
    tokens = list(tokens)
    index = {t: i for i, t in enumerate(tokens)}
    corpus: Counter[tuple[int, ...]] = Counter()
    for w, c in zip(words, counts):
        corpus[tuple(w)] += c
    merges: list[tuple[int, int]] = []
    applied = 0
    while len(merges) < num_new_tokens:
        pairs: Counter[tuple[int, int]] = Counter()  # 1. count every adjacent pair
        for w, c in corpus.items():
            for pair in zip(w, w[1:]):
                pairs[pair] += c
        allowed = [p for p in pairs if can_merge is None or can_merge(tokens[p[0]], tokens[p[1]])]
        if not allowed:
            break
        best = min(allowed, key=lambda p: (-pairs[p], p))  # 2. most frequent, then smallest
        if pairs[best] < min_frequency:
            break
        content = tokens[best[0]] + tokens[best[1]]  # 3. a new id, or the existing one
        z = index.get(content)
        if z is None:
            z = index[content] = len(tokens)
            tokens.append(content)
            merges.append(best)
        applied += 1
        rewritten: Counter[tuple[int, ...]] = Counter()  # 4. replace the pair in every chunk
        for w, c in corpus.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(z)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            rewritten[tuple(out)] += c
        corpus = rewritten
    return LearnedMerges(merges=merges, tokens=tokens, applied=applied)
