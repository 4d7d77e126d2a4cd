"""Intrinsic evaluation of word vectors: analogy accuracy and similarity AUC.

* **Analogy accuracy** (arXiv:1301.3781 section 4.1): for each question ``a : b :: c : d`` the
  answer is the vocabulary word nearest (cosine) to ``b - a + c`` with ``a``, ``b``, ``c`` excluded
  (3CosAdd); the question counts as correct only on an exact match with ``d``. Questions with a word
  outside the vocabulary are skipped and counted, as in the paper's evaluation script.
* **Similarity AUC**: given word pairs labelled related / unrelated, the area under the ROC curve of
  the cosine similarity as a score. It is the probability that a random related pair scores higher
  than a random unrelated one (ties count 1/2), the Mann-Whitney U statistic over ``n_pos * n_neg``.
  0.5 means chance; one-hot vectors score exactly 0.5 since every distinct pair has cosine 0.

  Hand-worked AUC: scores ``[0.9, 0.4 | 0.5, 0.1]`` with labels ``[1, 1 | 0, 0]``: of the 4
  (related, unrelated) comparisons, 0.9 beats both and 0.4 beats 0.1 only, so AUC = 3/4.

Left out: Spearman correlation against human similarity ratings (no rated data set ships here;
the story relations give binary labels only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from nlpcurriculum.embeddings.vectors import WordVectors

__all__ = ["AnalogyScore", "RelationReport", "analogy_accuracy", "roc_auc", "similarity_auc", "evaluate_relations"]


@dataclass(frozen=True)
class AnalogyScore:
    """Result of an analogy evaluation.

    Attributes:
        accuracy: correct / answered (NaN when nothing could be answered).
        correct: questions answered exactly.
        total: questions answered (all four words in the vocabulary).
        skipped: questions with an out-of-vocabulary word.
    """

    accuracy: float
    correct: int
    total: int
    skipped: int


def analogy_accuracy(
    vectors: WordVectors, questions: Sequence[tuple[str, str, str, str]], batch_size: int = 1024
) -> AnalogyScore:
    """3CosAdd accuracy over ``(a, b, c, d)`` questions, searching the whole vocabulary."""
    known = [q for q in questions if all(w in vectors for w in q)]
    skipped = len(questions) - len(known)
    if not known:
        return AnalogyScore(float("nan"), 0, 0, skipped)
    unit = vectors.unit()  # (V, D)
    ids = np.array([[vectors.index[w] for w in q] for q in known])  # (Q, 4)
    correct = 0
    for lo in range(0, len(ids), batch_size):
        chunk = ids[lo : lo + batch_size]  # (q, 4)
        target = unit[chunk[:, 1]] - unit[chunk[:, 0]] + unit[chunk[:, 2]]  # (q, D)
        scores = target @ unit.T  # (q, V); the target's norm does not change the argmax
        rows = np.arange(len(chunk))
        for col in range(3):  # a, b, c may not be the answer
            scores[rows, chunk[:, col]] = -np.inf
        correct += int((scores.argmax(axis=1) == chunk[:, 3]).sum())
    return AnalogyScore(correct / len(known), correct, len(known), skipped)


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve via average ranks (Mann-Whitney U), ties counted 1/2.

    Raises:
        ValueError: if there is no positive or no negative label.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError("scores and labels must be 1-D of the same length")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need both labels, got {n_pos} positive and {n_neg} negative")
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # Average rank (1-based) for each run of tied scores.
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def similarity_auc(vectors: WordVectors, pairs: Sequence[tuple[str, str, bool]]) -> float:
    """ROC AUC of cosine similarity separating related from unrelated pairs.

    Pairs with an out-of-vocabulary word are skipped.
    """
    known = [(a, b, r) for a, b, r in pairs if a in vectors and b in vectors]
    return roc_auc([vectors.similarity(a, b) for a, b, _ in known], [r for _, _, r in known])


@dataclass
class RelationReport:
    """Per-relation analogy accuracy plus the overall numbers (for metrics JSON / MLflow)."""

    analogy: dict[str, AnalogyScore] = field(default_factory=dict)
    overall: AnalogyScore | None = None
    similarity_auc: float = float("nan")

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat ``{name: value}`` metrics, e.g. ``analogy_acc/gender``."""
        out = {f"{prefix}analogy_acc/{k}": v.accuracy for k, v in self.analogy.items()}
        if self.overall is not None:
            out[f"{prefix}analogy_acc"] = self.overall.accuracy
        out[f"{prefix}similarity_auc"] = self.similarity_auc
        return out


def evaluate_relations(
    vectors: WordVectors,
    relations: dict[str, Sequence[tuple[str, str]]],
    pairs: Sequence[tuple[str, str, bool]],
) -> RelationReport:
    """Analogy accuracy per relation table and overall, and the similarity AUC of ``pairs``.

    Args:
        vectors: the vectors to evaluate.
        relations: ``{name: [(a, b), ...]}``, e.g. ``stories.RELATIONS``; each table yields every
            ``(a_i, b_i, a_j, b_j)`` question with ``i != j``.
        pairs: labelled word pairs, e.g. ``stories.similarity_pairs()``.
    """
    report = RelationReport()
    all_q = []
    for name, table in relations.items():
        qs = [(a, b, c, d) for i, (a, b) in enumerate(table) for j, (c, d) in enumerate(table) if i != j]
        report.analogy[name] = analogy_accuracy(vectors, qs)
        all_q.extend(qs)
    report.overall = analogy_accuracy(vectors, all_q)
    report.similarity_auc = similarity_auc(vectors, pairs)
    return report
