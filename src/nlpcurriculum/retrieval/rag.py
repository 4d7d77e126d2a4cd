"""Retrieval-augmented generation: prompt assembly under a token budget, truncation, reranking.

A RAG reader sees ``context: P1 | P2 | ... question: Q answer:`` and writes the answer (Lewis et
al. 2020, arXiv 2005.11401; here the reader is a language model trained in this project). Two
pieces sit between the retriever and the reader, and both are written here:

**Prompt assembly** (:func:`assemble`): the retrieved passages, best first, joined by
:data:`SEP`, inside a window of ``window`` tokens. When ``k`` passages do not fit, a *truncation
strategy* decides what goes (the question and the markers are never cut):

* ``"head"``: keep the first tokens of the joined context (the best-ranked passages survive; the
  last one kept may be cut mid-way);
* ``"tail"``: keep the last tokens (the lowest-ranked passages survive: what a left-truncating
  tokenizer does to an over-long prompt);
* ``"per_passage"``: every passage gets an equal share of the budget and keeps its beginning;
* ``"passages"``: whole passages, best first, as many as fit (no passage is cut).

Hand-worked example (the tests check it): passages ``[a b c]`` and ``[d e f]``, question ``[q]``,
window 11: the markers and the question take 4 tokens (``context:``, ``question:``, ``q``,
``answer:``), so the context budget is 7 of the 7 tokens ``a b c | d e f``: everything fits.
With window 9 (budget 5): head ``a b c | d``, tail ``c | d e f``, per_passage (2 each, with the
separator counted in the share) ``a b | d e`` -- a passage's share is ``(budget + 1) // k - 1``
tokens plus its separator --, passages ``a b c``.

**Reranking** (:class:`LexicalReranker`): a learned term-translation reranker (Berger & Lafferty
1999, the statistical-translation view of retrieval): from training (question, gold passage)
pairs it learns ``w(q, p) = log P(p in gold | q in question) / P(p in a passage)`` (clipped at
0: only associations stronger than chance count), so that a question word can vouch for a
different passage word (a synonym). A passage's score is ``sum over question terms of the max
w(q, p) over its terms``; it reorders a first stage's top candidates.

Left out: generation of multi-token answers (the reader here writes one token), learned dense
rerankers (the cross-encoder section), "lost in the middle" orderings.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

__all__ = ["CONTEXT", "QUESTION", "ANSWER", "SEP", "STRATEGIES", "LexicalReranker", "assemble",
           "context_budget"]

CONTEXT, QUESTION, ANSWER, SEP = "context:", "question:", "answer:", "|"
STRATEGIES = ("head", "tail", "per_passage", "passages")


def context_budget(question: Sequence[str], window: int) -> int:
    """Context tokens left in a ``window`` once the three markers and the question are placed."""
    budget = window - len(question) - 3
    if budget < 0:
        raise ValueError(f"a question of {len(question)} tokens does not fit a window of {window}")
    return budget


def assemble(passages: Sequence[Sequence[str]], question: Sequence[str], window: int,
             strategy: str = "head") -> list[str]:
    """The prompt ``context: <passages> question: <question> answer:`` in at most ``window`` tokens.

    Args:
        passages: the retrieved passages' tokens, best first (may be empty: closed-book).
        question: the question's tokens.
        window: the reader's context length.
        strategy: how to cut the context when it does not fit, one of :data:`STRATEGIES`.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown truncation strategy {strategy!r}: use one of {STRATEGIES}")
    budget = context_budget(question, window)
    joined: list[str] = []
    for i, p in enumerate(passages):
        joined += ([SEP] if i else []) + list(p)
    if len(joined) <= budget:
        context = joined
    elif strategy == "head":
        context = joined[:budget]
    elif strategy == "tail":
        context = joined[len(joined) - budget:] if budget else []
    elif strategy == "per_passage":
        share = (budget + 1) // len(passages) - 1                 # tokens per passage, after its separator
        context = []
        for i, p in enumerate(passages):
            if share <= 0:
                break
            context += ([SEP] if i else []) + list(p)[:share]
    else:                                                          # whole passages, best first
        context = []
        for i, p in enumerate(passages):
            piece = ([SEP] if context else []) + list(p)
            if len(context) + len(piece) > budget:
                break
            context += piece
    prompt = [CONTEXT, *context, QUESTION, *question, ANSWER]
    assert len(prompt) <= window, (len(prompt), window)
    return prompt


class LexicalReranker:
    """Question-term -> passage-term association weights learned from (question, gold) pairs.

    Args:
        questions: the training questions' tokens.
        gold: each question's gold passage's tokens.
        passages: the corpus's passages' tokens (the background rate of each passage term).
    """

    def __init__(self, questions: Sequence[Sequence[str]], gold: Sequence[Sequence[str]],
                 passages: Sequence[Sequence[str]]) -> None:
        background = Counter(t for p in passages for t in set(p))
        n_passages = max(len(passages), 1)
        q_count: Counter = Counter()
        pair: dict[str, Counter] = defaultdict(Counter)
        for q, g in zip(questions, gold):
            gset = set(g)
            for qt in set(q):
                q_count[qt] += 1
                pair[qt].update(gset)
        self.weights: dict[str, dict[str, float]] = {}
        for qt, counts in pair.items():
            row = {}
            for pt, c in counts.items():
                lift = (c / q_count[qt]) / (background[pt] / n_passages)
                if lift > 1.0:
                    row[pt] = math.log(lift)
            self.weights[qt] = row

    def score(self, question: Sequence[str], passage: Sequence[str]) -> float:
        """``sum over question terms q of max over passage terms p of w(q, p)`` (0 if none)."""
        pset = set(passage)
        total = 0.0
        for qt in question:
            row = self.weights.get(qt)
            if row:
                total += max((row.get(pt, 0.0) for pt in pset), default=0.0)
        return total

    def rerank(self, question: Sequence[str], candidates: Sequence[int],
               passages: Sequence[Sequence[str]]) -> np.ndarray:
        """``candidates`` (passage indices, first-stage order) reordered by :meth:`score`, best
        first; ties keep the first stage's order."""
        scores = [self.score(question, passages[c]) for c in candidates]
        order = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))
        return np.array([candidates[i] for i in order], dtype=np.int64)
