"""Precision-recall curves of a ranking, per query, in trec_eval's conventions.

A run and qrels are as in :mod:`~.evaluate` (``{query: {doc: score}}``, ``{query: {doc: rel}}``),
ranked by :func:`~.evaluate.rank` (score, then doc id descending: trec_eval's order); a document
is relevant when its judgment is >= 1, and ``R`` is the number of relevant documents *judged* for
the query (retrieved or not).

* :func:`precision_recall_at_ranks`: the curve over rank cutoffs. At rank k (k = 1..depth),
  ``P@k = hits(k) / k`` and ``recall@k = hits(k) / R`` (trec_eval's ``P_k`` and ``recall_k``: a
  list shorter than k counts as if padded with non-relevant documents).
* :func:`interpolated_precision`: the 11-point interpolated curve, ``iprec(r) = max{P@k :
  recall@k >= r}`` over the retrieved list (0 when the list never reaches recall r), at
  ``r = 0, 0.1, ..., 1`` (trec_eval's ``iprec_at_recall``). "Reaches recall r" is trec_eval's
  count: ``hits(k) >= int(r * R + 0.9)`` in double precision, which rounds some levels down (R =
  3: ``0.7 * 3 + 0.9`` is 2.9999999999999996, so two hits reach recall 0.7). An empty list gets
  0 at every level (trec_eval: NaN at recall 0, from 0 / 0).
* :func:`average_precision`: ``AP@k = sum over relevant documents at ranks i <= k of P@i / R``,
  the area under the non-interpolated curve (trec_eval's ``map_cut_k``).

``tests/retrieval/test_pr_curves.py`` checks all three against ``pytrec_eval`` on the same run.

Hand-worked example (tested): qrels ``{d1: 1, d3: 1}`` (R = 2), ranking ``d2, d3, d1``: P@1..3 =
0, 1/2, 2/3; recall@1..3 = 0, 1/2, 1; AP@3 = (1/2 + 2/3) / 2 = 0.5833; iprec at recall 0 .. 0.5 is
2/3 (the best precision at recall >= r is reached at rank 3), and at 0.6 .. 1.0 also 2/3.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from nlpcurriculum.retrieval.evaluate import rank

__all__ = ["RECALL_LEVELS", "average_precision", "interpolated_precision", "precision_recall_at_ranks"]

#: the 11 standard recall levels of the interpolated curve
RECALL_LEVELS = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])


def _hits(run: Mapping[str, Mapping[str, float]], q: str, rel: Mapping[str, int]) -> np.ndarray:
    """``(len(ranking),)`` 1.0 where the ranked document is relevant, else 0.0."""
    return np.array([1.0 if rel.get(d, 0) > 0 else 0.0 for d in rank(run.get(q, {}))])


def _n_rel(rel: Mapping[str, int]) -> int:
    return sum(1 for s in rel.values() if s > 0)


def precision_recall_at_ranks(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
                              depth: int) -> tuple[np.ndarray, np.ndarray]:
    """``(precision, recall)``, both ``(n_queries, depth)``: column ``k - 1`` holds P@k and
    recall@k of each judged query (qrels order)."""
    P = np.zeros((len(qrels), depth))
    R = np.zeros((len(qrels), depth))
    ks = np.arange(1, depth + 1)
    for i, (q, rel) in enumerate(qrels.items()):
        hits = np.zeros(depth)
        h = _hits(run, q, rel)[:depth]
        hits[:h.size] = h
        found = np.cumsum(hits)                                      # (depth,)
        P[i] = found / ks
        R[i] = found / max(_n_rel(rel), 1)
    return P, R


def interpolated_precision(run: Mapping[str, Mapping[str, float]],
                           qrels: Mapping[str, Mapping[str, int]]) -> np.ndarray:
    """``(n_queries, 11)`` interpolated precision at :data:`RECALL_LEVELS` over each whole
    retrieved list."""
    out = np.zeros((len(qrels), len(RECALL_LEVELS)))
    for i, (q, rel) in enumerate(qrels.items()):
        h = _hits(run, q, rel)
        n_rel = _n_rel(rel)
        if not h.size or not n_rel:
            continue
        found = np.cumsum(h)
        precision = found / np.arange(1, h.size + 1)                 # (n_retrieved,)
        for j, level in enumerate(RECALL_LEVELS):
            reached = found >= int(float(level) * n_rel + 0.9)       # trec_eval's rounding
            out[i, j] = precision[reached].max() if reached.any() else 0.0
    return out


def average_precision(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
                      k: int) -> np.ndarray:
    """``(n_queries,)`` AP@k of each judged query (qrels order)."""
    out = np.zeros(len(qrels))
    for i, (q, rel) in enumerate(qrels.items()):
        h = _hits(run, q, rel)[:k]
        n_rel = _n_rel(rel)
        if h.size and n_rel:
            precision = np.cumsum(h) / np.arange(1, h.size + 1)
            out[i] = float((precision * h).sum() / n_rel)
    return out
