"""The curriculum experiments for CBOW, Skip-gram and "one-hot vs learned embeddings".

Each function runs one item's experiment on objects handed in and returns an
:class:`~nlpcurriculum.results.ItemResult` (metrics, curves, figures, checked findings); the stage
script does the I/O and the logging. The data are the rule-generated stories of
:mod:`nlpcurriculum.data.synthetic.stories`, whose word relations are known, so the findings can
be checked against ground truth:

* CBOW / Skip-gram (arXiv:1301.3781): trained vectors answer the story analogies
  (``king : queen :: man : ?``) far better than an untrained embedding table, and their cosine
  similarity separates related from unrelated word pairs (ROC AUC near 1).
* One-hot vs learned: one-hot vectors put every pair of distinct words at cosine distance exactly 1
  (AUC exactly 0.5: they cannot tell related from unrelated), while learned vectors put related
  words closer than unrelated ones.

Left out: comparison with published vectors (nothing is downloaded) and human similarity ratings.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from nlpcurriculum.data.synthetic import stories
from nlpcurriculum.embeddings.evaluate import evaluate_relations, similarity_auc
from nlpcurriculum.embeddings.plots import plot_cosine_distance_heatmaps, plot_pca_relations
from nlpcurriculum.embeddings.vectors import (
    WordVectors,
    cosine_distance_matrix,
    one_hot_vectors,
    random_vectors,
)
from nlpcurriculum.embeddings.word2vec import TrainLog, Word2VecConfig, train_word2vec
from nlpcurriculum.results import Finding, ItemResult

__all__ = ["PROBE_WORDS", "word2vec_item", "one_hot_vs_learned_item"]

#: Words shown in the distance heatmaps: four relations, two pairs each.
PROBE_WORDS: tuple[str, ...] = (
    "king", "queen", "man", "woman", "boy", "girl",
    "cat", "cats", "dog", "dogs",
    "walk", "walked", "run", "ran",
    "france", "paris", "spain", "madrid",
    "big", "bigger", "small", "smaller",
)


def word2vec_item(
    item: str,
    sentences: Sequence[Sequence[str]],
    cfg: Word2VecConfig,
    relations: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    pairs: Sequence[tuple[str, str, bool]] | None = None,
    min_analogy_gain: float = 0.2,
    min_auc: float = 0.9,
) -> tuple[WordVectors, ItemResult]:
    """Train CBOW or Skip-gram (``cfg.arch``) and check what the vectors learned.

    Args:
        item: the curriculum item id the result is for.
        sentences: tokenised training text (one list of words per story).
        cfg: word2vec hyper-parameters.
        relations: analogy tables; defaults to ``stories.RELATIONS``.
        pairs: labelled similarity pairs; defaults to ``stories.similarity_pairs()``.
        min_analogy_gain: required analogy-accuracy gain over an untrained (random) table.
        min_auc: required similarity ROC AUC.

    Returns:
        The trained vectors and the item's result.
    """
    relations = dict(relations if relations is not None else stories.RELATIONS)
    pairs = list(pairs if pairs is not None else stories.similarity_pairs())
    log = TrainLog()
    vectors = train_word2vec(sentences, cfg, log)
    report = evaluate_relations(vectors, relations, pairs)
    baseline = evaluate_relations(random_vectors(vectors.words, cfg.dim, seed=cfg.seed), relations, pairs)
    acc, base_acc = report.overall.accuracy, baseline.overall.accuracy  # type: ignore[union-attr]
    name = "skip-gram" if cfg.arch == "skipgram" else "CBOW"

    metrics = report.metrics()
    metrics.update({
        "random_init/analogy_acc": base_acc,
        "random_init/similarity_auc": baseline.similarity_auc,
        "analogy_questions": float(report.overall.total),  # type: ignore[union-attr]
        "vocab_size": float(len(vectors)),
        "train_words": float(log.train_words),
        "words_per_second": log.words_per_second,
        "final_loss": log.losses[-1][1] if log.losses else float("nan"),
    })
    figures = {}
    for rel in ("gender", "capital", "tense"):
        if rel in relations and all(w in vectors for p in relations[rel] for w in p):
            figures[f"pca_{rel}.png"] = plot_pca_relations(
                vectors, relations[rel], title=f"{name}: {rel} pairs, PCA (arrows a -> b)")
    lines = []
    for w in ("queen", "cats", "paris", "walked", "bigger"):
        if w in vectors:
            lines.append(f"{w}: " + ", ".join(f"{n} ({s:.2f})" for n, s in vectors.most_similar(w, 5)))
    for a, b, c in (("king", "queen", "man"), ("france", "paris", "spain"), ("walk", "walked", "run")):
        if all(w in vectors for w in (a, b, c)):
            lines.append(f"{a} : {b} :: {c} : {vectors.analogy(a, b, c)[0][0]}")
    findings = [
        Finding.at_least(
            f"{name} vectors answer the story analogies (3CosAdd) better than an untrained table "
            f"(random init: {base_acc:.3f})",
            "analogy_acc_gain", acc - base_acc, min_analogy_gain),
        Finding.at_least(
            f"{name} cosine similarity separates related from unrelated word pairs",
            "similarity_auc", report.similarity_auc, min_auc),
    ]
    result = ItemResult(item=item, metrics=metrics, series={"loss": list(log.losses)},
                        figures=figures, texts={"neighbours.txt": "\n".join(lines) + "\n"},
                        findings=findings)
    return vectors, result


def _mean_pair_distance(vectors: WordVectors, pairs: Sequence[tuple[str, str, bool]], related: bool) -> float:
    d = [1.0 - vectors.similarity(a, b) for a, b, r in pairs if r == related and a in vectors and b in vectors]
    return float(np.mean(d)) if d else float("nan")


def one_hot_vs_learned_item(
    item: str,
    learned: Mapping[str, WordVectors],
    words: Sequence[str] = PROBE_WORDS,
    pairs: Sequence[tuple[str, str, bool]] | None = None,
    min_distance_gap: float = 0.2,
) -> ItemResult:
    """Compare cosine distances under one-hot vectors and learned vectors.

    Args:
        item: the curriculum item id.
        learned: ``{name: vectors}``, e.g. ``{"skip-gram": ..., "CBOW": ...}``.
        words: the words of the heatmaps; all must be in every learned table.
        pairs: labelled similarity pairs; defaults to ``stories.similarity_pairs()``.
        min_distance_gap: required (unrelated - related) mean cosine distance for learned vectors.

    Raises:
        KeyError: a heatmap word is missing from a learned table.
    """
    if not learned:
        raise ValueError("need at least one learned embedding")
    pairs = list(pairs if pairs is not None else stories.similarity_pairs())
    vocab = sorted(set.intersection(*(set(v.words) for v in learned.values())))
    onehot = one_hot_vectors(vocab)
    tables: dict[str, WordVectors] = {"one-hot": onehot, **learned}
    matrices = {name: cosine_distance_matrix(v, words) for name, v in tables.items()}

    metrics: dict[str, float] = {}
    findings = []
    off_diag = ~np.eye(len(words), dtype=bool)
    onehot_dev = float(np.abs(matrices["one-hot"][off_diag] - 1.0).max())
    metrics["one-hot/max_abs_distance_minus_1"] = onehot_dev
    findings.append(Finding.at_most(
        "one-hot vectors put every pair of distinct words at cosine distance exactly 1",
        "one-hot/max_abs_distance_minus_1", onehot_dev, 1e-6))
    for name, v in tables.items():
        rel = _mean_pair_distance(v, pairs, True)
        unrel = _mean_pair_distance(v, pairs, False)
        metrics[f"{name}/mean_distance_related"] = rel
        metrics[f"{name}/mean_distance_unrelated"] = unrel
        metrics[f"{name}/similarity_auc"] = similarity_auc(v, pairs)
    findings.append(Finding.at_most(
        "one-hot similarity cannot tell related from unrelated pairs (AUC = 0.5)",
        "one-hot/abs_auc_minus_half", abs(metrics["one-hot/similarity_auc"] - 0.5), 1e-9))
    for name in learned:
        gap = metrics[f"{name}/mean_distance_unrelated"] - metrics[f"{name}/mean_distance_related"]
        metrics[f"{name}/distance_gap"] = gap
        findings.append(Finding.at_least(
            f"{name} vectors put related words closer than unrelated ones",
            f"{name}/distance_gap", gap, min_distance_gap))
    fig = plot_cosine_distance_heatmaps(words, matrices, title="Cosine distance: one-hot vs learned")
    return ItemResult(item=item, metrics=metrics, figures={"cosine_distances.png": fig}, findings=findings)
