"""Ranking metrics per query (trec_eval's conventions) and bootstrap intervals over queries.

A *run* is ``{query_id: {doc_id: score}}`` (the retriever's top documents per query, scored), and
*qrels* ``{query_id: {doc_id: relevance}}``, as ``pytrec_eval`` takes them. Each run is ranked as
trec_eval ranks it: by score, highest first, ties broken by doc id in *descending* string order,
so our numbers and ``pytrec_eval``'s agree on tied scores too (``tests/retrieval/test_evaluate.py``
checks it, ties included). A document is relevant when its relevance is >= 1.

* ``ndcg@k``: DCG@k / ideal DCG@k with linear gain (trec_eval's ``ndcg_cut``, which BEIR reports):
  ``DCG@k = sum_{i=1..k} rel_i / log2(i + 1)``, the ideal from the judged relevances sorted.
* ``recall@k``: relevant documents in the top k / relevant documents judged.
* ``mrr@k``: 1 / rank of the first relevant document within the top k, else 0 (BEIR's MRR@k).

Hand-worked example (``tests`` checks it): qrels ``{d1: 1, d3: 2}``, ranking ``d2, d3, d1``:
DCG@3 = 0/1 + 2/log2(3) + 1/log2(4) = 1.2619 + 0.5 = 1.7619; ideal = 2/1 + 1/log2(3) = 2.6309;
nDCG@3 = 0.6697; recall@1 = 0, recall@2 = 0.5; MRR@3 = 1/2.

:func:`evaluate` returns one value per judged query (an array in the qrels' query order), so that
:func:`bootstrap_ci` and :func:`paired_bootstrap` can resample queries: the intervals say how much
a mean over this query set would move over another draw of queries like them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "bootstrap_ci", "evaluate", "mean_metrics", "metric_key", "paired_bootstrap",
           "rank", "run_from_topk"]

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


def rank(scores: Mapping[str, float]) -> list[str]:
    """Doc ids by score, highest first; ties by doc id, descending (trec_eval's order)."""
    by_id = sorted(scores, reverse=True)             # secondary key first (stable sorts)
    return sorted(by_id, key=lambda d: -scores[d])


def _ndcg(ranked: Sequence[str], rel: Mapping[str, int], k: int) -> float:
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if rel.get(d, 0) > 0)
    ideal = sorted((r for r in rel.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def _recall(ranked: Sequence[str], rel: Mapping[str, int], k: int) -> float:
    relevant = {d for d, r in rel.items() if r > 0}
    if not relevant:
        return 0.0
    return sum(1 for d in ranked[:k] if d in relevant) / len(relevant)


def _mrr(ranked: Sequence[str], rel: Mapping[str, int], k: int) -> float:
    for i, d in enumerate(ranked[:k]):
        if rel.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


_METRICS = {"ndcg": _ndcg, "recall": _recall, "mrr": _mrr}


def evaluate(run: Run, qrels: Qrels, measures: Sequence[str] = ("ndcg@10",)) -> dict[str, np.ndarray]:
    """Per-query values of each measure (``"ndcg@10"``, ``"recall@100"``, ``"mrr@10"``).

    Every judged query of ``qrels`` gets a value, in the qrels' order; a query the run lacks
    scores 0 (it retrieved nothing).

    Returns:
        ``{measure: array of shape (n_queries,)}``.
    """
    parsed = []
    for m in measures:
        name, _, k = m.partition("@")
        if name not in _METRICS or not k.isdigit() or int(k) < 1:
            raise ValueError(f"unknown measure {m!r}: use ndcg@k, recall@k or mrr@k")
        parsed.append((m, _METRICS[name], int(k)))
    out = {m: np.zeros(len(qrels)) for m, _, _ in parsed}
    for i, (q, rel) in enumerate(qrels.items()):
        ranked = rank(run.get(q, {}))
        for m, fn, k in parsed:
            out[m][i] = fn(ranked, rel, k)
    return out


def mean_metrics(per_query: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The mean over queries of each measure."""
    return {m: float(np.mean(v)) if len(v) else 0.0 for m, v in per_query.items()}


def metric_key(name: str) -> str:
    """A measure's name as an MLflow metric key, which may not hold ``@``: ``"ndcg@10"`` ->
    ``"ndcg_at_10"`` (also inside longer keys: ``"bm25.recall@100"`` -> ``"bm25.recall_at_100"``)."""
    return name.replace("@", "_at_")


def run_from_topk(query_ids: Sequence[str], doc_ids: Sequence[str], top: np.ndarray,
                  scores: np.ndarray, ignore_identical_ids: bool = True) -> dict[str, dict[str, float]]:
    """A run from a retriever's top-k arrays.

    Args:
        query_ids: ``(n_queries,)`` ids.
        doc_ids: the corpus' ids, indexed by ``top``.
        top: ``(n_queries, k)`` document indices, best first.
        scores: ``(n_queries, k)`` their scores.
        ignore_identical_ids: drop a document whose id equals the query's id (BEIR's default
            ``ignore_identical_ids=True``: in some sets queries are also documents).
    """
    run: dict[str, dict[str, float]] = {}
    for q, row, srow in zip(query_ids, top, scores):
        run[q] = {doc_ids[j]: float(s) for j, s in zip(row, srow)
                  if not (ignore_identical_ids and doc_ids[j] == q)}
    return run


@dataclass(frozen=True)
class Interval:
    """A mean over queries with its bootstrap percentile interval.

    Attributes:
        mean: the mean over the queries (for a paired comparison: of the differences).
        low, high: the ``level`` percentile interval of the bootstrap means.
        se: the standard deviation of the bootstrap means (the mean's standard error).
        n: number of queries.
    """

    mean: float
    low: float
    high: float
    se: float
    n: int


def bootstrap_ci(values: Sequence[float], n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> Interval:
    """Percentile bootstrap interval of the mean of per-query ``values`` (queries resampled)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("bootstrap over no queries")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))      # (n_boot, n_queries)
    means = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(x.mean()), float(lo), float(hi), float(means.std(ddof=1)), int(x.size))


def paired_bootstrap(treatment: Sequence[float], control: Sequence[float], n_boot: int = 2000,
                     seed: int = 0, level: float = 0.95) -> Interval:
    """Bootstrap interval of the mean per-query difference ``treatment - control``.

    Both arms are scored on the same queries, so the queries are resampled once for both (a
    paired bootstrap): the spread of query difficulty, shared by the arms, cancels.
    """
    t, c = np.asarray(treatment, dtype=np.float64), np.asarray(control, dtype=np.float64)
    if t.shape != c.shape:
        raise ValueError(f"paired arms differ in length: {t.shape} vs {c.shape}")
    return bootstrap_ci(t - c, n_boot=n_boot, seed=seed, level=level)
