"""How varied, and how repetitive, text is: distinct-n, BLEU / self-BLEU, repetition.

* **distinct-n** (Li et al. 2016, "A Diversity-Promoting Objective Function for Neural
  Conversation Models", arXiv:1510.03055): distinct n-grams / all n-grams over a set of samples
  (we divide by the number of n-grams, the common form; the paper divides by the number of
  generated tokens, which is the same for n = 1). 1 = nothing repeats, near 0 = the same few
  n-grams again and again.
* **BLEU** (Papineni et al. 2002): the geometric mean of *modified* (clipped) n-gram precisions
  ``p_1..p_N`` of a hypothesis against references, times a brevity penalty
  ``BP = exp(1 - r / c)`` when the hypothesis (length ``c``) is not longer than the reference
  whose length ``r`` is closest to it. A zero precision zeroes the whole score, so short
  sentences are smoothed, in one of two ways (Chen & Cherry 2014, "A Systematic Comparison of
  Smoothing Techniques for Sentence-Level BLEU"):

  - ``"epsilon"`` (their method 1, the one Texygen uses for self-BLEU): a zero match count of
    an order ``n >= 2`` becomes ``epsilon``;
  - ``"add_one"`` (their method 2, from Lin & Och 2004): every order ``n >= 2`` adds 1 to both
    the match count and the n-gram count, ``(m + 1) / (t + 1)``.

  Under both a hypothesis with no unigram match scores 0.
* **self-BLEU** (Zhu et al. 2018, "Texygen", arXiv:1802.01886): each sample is scored by BLEU
  against all *other* samples as references, then averaged: high = the samples resemble each
  other (low diversity).
* **repetition within one sequence**: ``rep-n = 1 - distinct n-grams / n-grams`` of a single
  sequence (seq-rep-n of Welleck et al. 2019, arXiv:1908.04319), and the length of the longest
  span that occurs twice (the loop a degenerate greedy decoder falls into).

Worked example (tested): hypothesis ``the cat sat on the mat`` against ``the cat is on the mat``
has unigram precision 5/6 (``sat`` misses) and bigram precision 3/5 (``the cat``, ``on the``,
``the mat``); the lengths are equal, so BLEU-2 = ``sqrt(5/6 * 3/5)`` = 0.707. With add-one
smoothing the bigram precision is (3 + 1) / (5 + 1) and BLEU-2 = ``sqrt(5/6 * 4/6)`` = 0.745.

Everything works on sequences of hashable tokens (ids or words).

Left out: corpus-level BLEU, other smoothing methods, tokenization of raw text.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Literal

__all__ = [
    "bleu",
    "distinct_n",
    "longest_repeated_span",
    "modified_precision",
    "ngrams",
    "repetition_rate",
    "self_bleu",
]

Seq = Sequence[Hashable]
Smoothing = Literal["epsilon", "add_one"]


def ngrams(seq: Seq, n: int) -> list[tuple]:
    """All contiguous ``n``-grams of ``seq`` as tuples (``len(seq) - n + 1`` of them, or none)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]


def distinct_n(samples: Sequence[Seq], n: int) -> float:
    """Distinct ``n``-grams / total ``n``-grams over all samples (0 when there are none)."""
    grams = [g for s in samples for g in ngrams(s, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def modified_precision(hypothesis: Seq, references: Sequence[Seq], n: int) -> tuple[int, int]:
    """``(clipped matches, hypothesis n-grams)``: each n-gram counts at most as often as it
    occurs in the single reference that holds it most often."""
    counts = Counter(ngrams(hypothesis, n))
    max_ref: Counter = Counter()
    for ref in references:
        for gram, c in Counter(ngrams(ref, n)).items():
            max_ref[gram] = max(max_ref[gram], c)
    matches = sum(min(c, max_ref[gram]) for gram, c in counts.items())
    return matches, sum(counts.values())


def bleu(hypothesis: Seq, references: Sequence[Seq], max_n: int = 4, epsilon: float = 0.1, *,
         smoothing: Smoothing = "epsilon") -> float:
    """Sentence BLEU with uniform weights ``1/max_n``.

    Args:
        hypothesis: the tokens scored.
        references: one or more reference token sequences.
        max_n: highest n-gram order (4 = BLEU-4).
        epsilon: with ``smoothing="epsilon"``, a zero match count becomes ``epsilon`` (0 = no
            smoothing: any zero precision gives BLEU 0). Unused by ``"add_one"``.
        smoothing: ``"epsilon"`` (Chen & Cherry's method 1) or ``"add_one"`` (their method 2:
            ``(m + 1) / (t + 1)`` for every order ``n >= 2``, also where the hypothesis is shorter
            than ``n``).

    Returns:
        BLEU in ``[0, 1]``; 0 for an empty hypothesis or when no unigram matches.
    """
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    if not references:
        raise ValueError("bleu needs at least one reference")
    if smoothing not in ("epsilon", "add_one"):
        raise ValueError(f"smoothing must be 'epsilon' or 'add_one', got {smoothing!r}")
    c = len(hypothesis)
    if c == 0:
        return 0.0
    log_sum = 0.0
    for n in range(1, max_n + 1):
        matches, total = modified_precision(hypothesis, references, n)
        if n == 1 and matches == 0:
            return 0.0
        if smoothing == "add_one" and n > 1:
            matches, total = matches + 1, total + 1
        elif matches == 0:
            if epsilon <= 0:
                return 0.0
            matches = epsilon
        log_sum += math.log(matches / max(total, 1)) / max_n
    # Brevity penalty against the closest reference length (the shorter one on a tie).
    r = min((abs(len(ref) - c), len(ref)) for ref in references)[1]
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(log_sum)


def self_bleu(samples: Sequence[Seq], max_n: int = 4, epsilon: float = 0.1) -> float:
    """Mean BLEU (``"epsilon"`` smoothing) of each sample against all the others (needs at least
    two samples)."""
    if len(samples) < 2:
        raise ValueError(f"self_bleu needs at least 2 samples, got {len(samples)}")
    scores = [bleu(s, [o for j, o in enumerate(samples) if j != i], max_n, epsilon)
              for i, s in enumerate(samples)]
    return sum(scores) / len(scores)


def repetition_rate(seq: Seq, n: int) -> float:
    """``1 - distinct n-grams / n-grams`` within one sequence (0 = no n-gram repeats)."""
    grams = ngrams(seq, n)
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def longest_repeated_span(seq: Seq) -> int:
    """Length of the longest contiguous span that occurs at least twice (occurrences may overlap).

    A loop ``a b c a b c a b c`` gives 6 (``a b c a b c`` starts at positions 0 and 3).
    O(len^2): for every shift ``d``, the longest run of ``seq[i] == seq[i + d]``.
    """
    best = 0
    n = len(seq)
    for d in range(1, n):
        run = 0
        for i in range(n - d):
            run = run + 1 if seq[i] == seq[i + d] else 0
            best = max(best, run)
    return best
