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

**Controls** (:func:`run_controls`, findings of items 5 and 6). The similarity evaluation above is
saturated: an unrelated pair is drawn from two relation tables, whose words never share a context
by construction. The controls evaluate on :func:`shared_context_stories` instead: the same stories
plus *frame sentences* ("the sign at the station said king and cats.") that put each unrelated
pair of the evaluation side by side, so unrelated words do share contexts (each other and the
frame words), while related words (``king``/``queen``) share their topic words and rarely meet.
On fresh seeds (each seed its own stories and model seed), our CBOW and skip-gram, gensim's
``Word2Vec`` with the same settings (its own defaults for the learning rate) and a count-based
PPMI-SVD baseline (:mod:`nlpcurriculum.embeddings.ppmi`) are trained on the same stories and
scored on the same pairs. Findings, each :meth:`Finding.compare` over the seeds: related pairs
score a higher mean cosine than the co-occurring unrelated pairs (by ``checks.min_shared_context_gap``;
a model of first-order co-occurrence, or related words that share no context, fails it: see
``tests/``), and ours is not worse than gensim's by more than a margin on that gap and on analogy
accuracy (an untrained or broken implementation fails it).

The stage runs all three from one :class:`WordEmbeddingsConfig` (the ``word_embeddings`` section of
params/tokenization_and_embeddings.yaml) with :func:`run`. It can also train skip-gram on real text (the
project's corpus) and list nearest neighbours of a few words there: shown, not checked, because real
text comes with no list of true relations.

Left out: comparison with published vectors (nothing is downloaded) and human similarity ratings.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

import numpy as np

from nlpcurriculum.data.synthetic import stories
from nlpcurriculum.embeddings.evaluate import analogy_accuracy, evaluate_relations, similarity_auc
from nlpcurriculum.embeddings.ppmi import PPMIConfig, ppmi_svd_vectors
from nlpcurriculum.embeddings.plots import (
    plot_cosine_distance_heatmaps,
    plot_loss_curves,
    plot_pca_relations,
)
from nlpcurriculum.embeddings.vectors import (
    WordVectors,
    cosine_distance_matrix,
    one_hot_vectors,
    random_vectors,
)
from nlpcurriculum.embeddings.vocab import simple_word_tokenize
from nlpcurriculum.embeddings.word2vec import TrainLog, Word2VecConfig, train_word2vec
from nlpcurriculum.results import INVARIANT, Finding, ItemResult

__all__ = [
    "PROBE_WORDS", "CORPUS_PROBE_WORDS", "ITEM", "ITEMS", "ARCH_NAMES", "WordEmbeddingsConfig",
    "word2vec_item", "one_hot_vs_learned_item", "neighbours_text", "Inputs", "Outputs", "run",
    "ControlsConfig", "shared_context_stories", "gensim_word2vec", "run_controls", "controls_item_parts",
]

#: The curriculum item id of each result :func:`run` returns, by short name.
ITEM = {
    "cbow": "tokenization-and-embeddings/5",
    "skipgram": "tokenization-and-embeddings/6",
    "one_hot_vs_learned": "tokenization-and-embeddings/8",
}
#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(ITEM.values())

#: Display names of the architectures (figure titles, item 8's panels and metric prefixes).
ARCH_NAMES = {"cbow": "CBOW", "skipgram": "skip-gram"}

#: Words whose neighbours are listed for the real corpus (the standard library's documentation).
CORPUS_PROBE_WORDS: tuple[str, ...] = (
    "list", "string", "file", "thread", "socket", "error", "dictionary", "class", "integer", "read",
)

#: Words shown in the distance heatmaps: four relations, two pairs each.
PROBE_WORDS: tuple[str, ...] = (
    "king", "queen", "man", "woman", "boy", "girl",
    "cat", "cats", "dog", "dogs",
    "walk", "walked", "run", "ran",
    "france", "paris", "spain", "madrid",
    "big", "bigger", "small", "smaller",
)


@dataclass
class WordEmbeddingsChecks:
    """Bounds of the findings that no knob above sets (params ``word_embeddings.checks``).

    Attributes:
        max_onehot_distance_error: item 8: max |cosine distance - 1| between one-hot vectors of
            distinct words.
        max_onehot_auc_error: item 8: |one-hot similarity AUC - 0.5|.
        min_shared_context_gap: items 5, 6 (controls): mean cosine of related pairs minus that of
            unrelated pairs that co-occur in frame sentences, over seeds.
        max_gap_below_gensim: items 5, 6 (controls): how far our gap may fall below gensim's
            (non-inferiority margin), over seeds.
        max_analogy_below_gensim: items 5, 6 (controls): the same for analogy accuracy.
    """

    max_onehot_distance_error: float = 1e-6
    max_onehot_auc_error: float = 1e-9
    min_shared_context_gap: float = 0.05
    max_gap_below_gensim: float = 0.1
    max_analogy_below_gensim: float = 0.1


@dataclass
class ControlsConfig:
    """The controls of items 5 and 6 (params ``word_embeddings.controls``).

    Attributes:
        seeds: one run per seed: its own stories (:func:`shared_context_stories`) and model seed.
            At least 3 (a standard error needs them); fresh, i.e. not the items' ``seed``.
        stories: stories per seed.
        frames_per_story: frame sentences added per story (a fraction adds one with that
            probability); each puts one unrelated evaluation pair side by side.
    """

    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    stories: int = 1000
    frames_per_story: float = 1.0

    def __post_init__(self) -> None:
        if len(set(self.seeds)) < 3:
            raise ValueError(f"controls.seeds needs >= 3 distinct seeds, got {self.seeds}")
        if self.stories < 1:
            raise ValueError(f"controls.stories must be >= 1, got {self.stories}")
        if self.frames_per_story < 0:
            raise ValueError(f"controls.frames_per_story must be >= 0, got {self.frames_per_story}")


@dataclass
class WordEmbeddingsConfig:
    """The ``word_embeddings`` section of params/tokenization_and_embeddings.yaml.

    The data, the two models, the finding bounds.

    Attributes:
        stories: generated stories to train on (about 60 words each); they carry the relations
            the findings are checked against.
        seed: seed of the story generator (each model's own ``seed`` drives its training).
        extra_seeds: items 5 and 6 again on these seeds (each its own stories and model seed):
            their findings are paired over ``[model seed, *extra_seeds]``.
        cbow: CBOW hyper-parameters (item 5); ``arch`` must be ``"cbow"``.
        skipgram: skip-gram hyper-parameters (item 6); ``arch`` must be ``"skipgram"``. Two sections
            rather than one shared one because the architectures want different settings: CBOW
            makes one example per word instead of about ``window + 1``, so at the same batch size
            it takes several times fewer optimiser steps per epoch.
        corpus_epochs: epochs of skip-gram (the ``skipgram`` settings otherwise) on the real
            corpus, whose neighbour lists are shown but not checked; 0 skips the corpus.
        corpus_documents: use the first this many corpus documents; 0 uses all.
        corpus_min_count: ``min_count`` on the real corpus (rare identifiers get noisy vectors).
        corpus_words: words whose corpus neighbours are listed (missing ones are said so).
        neighbours: neighbours listed per corpus word.
        min_analogy_gain: items 5 and 6: the analogy accuracy the trained vectors must gain over
            an untrained (random) table.
        min_auc: items 5 and 6: the similarity ROC AUC the trained vectors must reach (0.5 is chance).
        min_distance_gap: item 8: the (unrelated - related) mean cosine distance the learned
            vectors must show (one-hot vectors have 0).
        controls: ours vs gensim vs PPMI-SVD on stories where unrelated words share contexts.
        checks: the other bounds of the findings.
    """

    stories: int = 4000
    seed: int = 0
    extra_seeds: list[int] = field(default_factory=lambda: [4, 5])
    cbow: Word2VecConfig = field(default_factory=lambda: Word2VecConfig(arch="cbow"))
    skipgram: Word2VecConfig = field(default_factory=lambda: Word2VecConfig(arch="skipgram"))
    corpus_epochs: int = 2
    corpus_documents: int = 0
    corpus_min_count: int = 5
    corpus_words: list[str] = field(default_factory=lambda: list(CORPUS_PROBE_WORDS))
    neighbours: int = 8
    min_analogy_gain: float = 0.2
    min_auc: float = 0.9
    min_distance_gap: float = 0.2
    controls: ControlsConfig = field(default_factory=ControlsConfig)
    checks: WordEmbeddingsChecks = field(default_factory=WordEmbeddingsChecks)

    def __post_init__(self) -> None:
        for arch in ("cbow", "skipgram"):
            got = getattr(self, arch).arch
            if got != arch:
                raise ValueError(f"{arch}.arch must be {arch!r}, got {got!r}")
        if self.stories < 1:
            raise ValueError(f"stories must be >= 1, got {self.stories}")
        if self.seed in self.extra_seeds or len(set(self.extra_seeds)) != len(self.extra_seeds):
            raise ValueError(f"extra_seeds={self.extra_seeds} must be distinct and differ from seed={self.seed}")
        for name in ("corpus_epochs", "corpus_documents"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("corpus_min_count", "neighbours"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.min_auc <= 1.0:
            raise ValueError(f"min_auc must be in [0, 1], got {self.min_auc}")


@dataclass(frozen=True)
class SeedScores:
    """One trained model's scores on the story evaluation, and an untrained table's analogy score."""

    analogy_acc: float
    untrained_analogy_acc: float
    similarity_auc: float


def seed_scores(
    sentences: Sequence[Sequence[str]],
    cfg: Word2VecConfig,
    relations: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    pairs: Sequence[tuple[str, str, bool]] | None = None,
) -> SeedScores:
    """Train word2vec (``cfg``, its ``seed``) on ``sentences`` and score it as :func:`word2vec_item` does."""
    relations = dict(relations if relations is not None else stories.RELATIONS)
    pairs = list(pairs if pairs is not None else stories.similarity_pairs())
    vectors = train_word2vec(sentences, cfg)
    report = evaluate_relations(vectors, relations, pairs)
    baseline = evaluate_relations(random_vectors(vectors.words, cfg.dim, seed=cfg.seed), relations, pairs)
    return SeedScores(report.overall.accuracy, baseline.overall.accuracy,  # type: ignore[union-attr]
                      report.similarity_auc)


def word2vec_item(
    item: str,
    sentences: Sequence[Sequence[str]],
    cfg: Word2VecConfig,
    relations: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    pairs: Sequence[tuple[str, str, bool]] | None = None,
    min_analogy_gain: float = 0.2,
    min_auc: float = 0.9,
    replicates: Sequence[SeedScores] = (),
) -> tuple[WordVectors, ItemResult]:
    """Train CBOW or Skip-gram (``cfg.arch``) and check what the vectors learned.

    The findings are paired comparisons over this model and ``replicates`` (the same setup on
    other seeds, from :func:`seed_scores`): with none, a single sample never passes.

    Args:
        item: the curriculum item id the result is for.
        sentences: tokenised training text (one list of words per story).
        cfg: word2vec hyper-parameters.
        relations: analogy tables; defaults to ``stories.RELATIONS``.
        pairs: labelled similarity pairs; defaults to ``stories.similarity_pairs()``.
        min_analogy_gain: required analogy-accuracy gain over an untrained (random) table.
        min_auc: required similarity ROC AUC.
        replicates: the scores of the same setup trained on other seeds.

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
        "train_examples": float(log.examples),
        "final_loss": log.losses[-1][1] if log.losses else float("nan"),
    })
    # Speed is not a metric: metrics/<stage>.json must be deterministic (an unchanged rerun leaves
    # the same dvc.lock), so wall time and words/s go to the run's text artifact only.
    timing = (f"{name}: {cfg.epochs} epochs, {log.train_words} words, {log.examples} examples "
              f"in {log.seconds:.1f} s ({log.words_per_second:,.0f} words/s)\n")
    figures = {"loss.png": plot_loss_curves({name: log.losses}, title=f"{name}: training loss")}
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
    samples = [SeedScores(acc, base_acc, report.similarity_auc), *replicates]
    for i, r in enumerate(replicates, start=1):
        metrics[f"replicate{i}/analogy_acc"] = r.analogy_acc
        metrics[f"replicate{i}/similarity_auc"] = r.similarity_auc
    findings = [
        Finding.compare(
            f"{name} vectors answer the story analogies (3CosAdd) better than an untrained table "
            f"of the same words (paired over {len(samples)} seeds of stories and model)",
            "analogy_acc_gain", [s.analogy_acc for s in samples],
            [s.untrained_analogy_acc for s in samples], margin=min_analogy_gain),
        Finding.compare(
            f"{name} cosine similarity separates related from unrelated word pairs (ROC AUC, "
            f"{len(samples)} seeds)",
            "similarity_auc", [s.similarity_auc for s in samples], margin=min_auc),
    ]
    result = ItemResult(item=item, metrics=metrics, series={"loss": list(log.losses)},
                        figures=figures,
                        texts={"neighbours.txt": "\n".join(lines) + "\n", "training.txt": timing},
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
    max_onehot_distance_error: float = 1e-6,
    max_onehot_auc_error: float = 1e-9,
) -> ItemResult:
    """Compare cosine distances under one-hot vectors and learned vectors.

    Args:
        item: the curriculum item id.
        learned: ``{name: vectors}``, e.g. ``{"skip-gram": ..., "CBOW": ...}``.
        words: the words of the heatmaps; all must be in every learned table.
        pairs: labelled similarity pairs; defaults to ``stories.similarity_pairs()``.
        min_distance_gap: required (unrelated - related) mean cosine distance for learned vectors.
        max_onehot_distance_error: allowed max |one-hot cosine distance - 1| (distinct words).
        max_onehot_auc_error: allowed |one-hot similarity AUC - 0.5|.

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
        "one-hot/max_abs_distance_minus_1", onehot_dev, max_onehot_distance_error, kind=INVARIANT))
    for name, v in tables.items():
        rel = _mean_pair_distance(v, pairs, True)
        unrel = _mean_pair_distance(v, pairs, False)
        metrics[f"{name}/mean_distance_related"] = rel
        metrics[f"{name}/mean_distance_unrelated"] = unrel
        metrics[f"{name}/similarity_auc"] = similarity_auc(v, pairs)
    findings.append(Finding.at_most(
        "one-hot similarity cannot tell related from unrelated pairs (AUC = 0.5)",
        "one-hot/abs_auc_minus_half", abs(metrics["one-hot/similarity_auc"] - 0.5),
        max_onehot_auc_error, kind=INVARIANT))
    for name in learned:
        gap = metrics[f"{name}/mean_distance_unrelated"] - metrics[f"{name}/mean_distance_related"]
        metrics[f"{name}/distance_gap"] = gap
        findings.append(Finding.at_least(
            f"{name} vectors put related words closer than unrelated ones",
            f"{name}/distance_gap", gap, min_distance_gap))
    fig = plot_cosine_distance_heatmaps(words, matrices, title="Cosine distance: one-hot vs learned")
    return ItemResult(item=item, metrics=metrics, figures={"cosine_distances.png": fig}, findings=findings)


def neighbours_text(vectors: WordVectors, words: Sequence[str], k: int = 8) -> str:
    """One line per word: its ``k`` nearest neighbours by cosine, or a note that it is unknown."""
    lines = []
    for w in words:
        if w in vectors:
            lines.append(f"{w}: " + ", ".join(f"{n} ({s:.2f})" for n, s in vectors.most_similar(w, k)))
        else:
            lines.append(f"{w}: (not in the vocabulary)")
    return "\n".join(lines) + "\n"


# ============================================================================ controls
FRAME_TEMPLATES = (
    "the sign at the {place} said {x} and {y}.",
    "someone wrote {x} and {y} on the wall of the {place}.",
    "the children shouted {x} and {y} at the {place}.",
)
"""Frame sentences: any two words side by side, amid frame words every pair shares."""
FRAME_PLACES = ("station", "fair", "gate", "corner")


def shared_context_stories(n: int, seed: int, frames_per_story: float = 1.0
                           ) -> tuple[list[str], list[tuple[str, str, bool]]]:
    """Stories in which the unrelated pairs of the evaluation co-occur, and those pairs.

    The pairs are ``stories.similarity_pairs(seed)``: every relation pair (related) and, one for
    one, a word of it with a word of another table (unrelated). Each story of
    ``stories.generate_stories(n, seed)`` gets ``frames_per_story`` frame sentences appended (the
    fraction as a probability), each naming one unrelated pair, drawn uniformly, in random order.

    Example (seed 0): a story ends "... The sign at the gate said paris and cats." when
    ``(paris, cats)`` is one of the seed's unrelated pairs.

    Returns:
        ``(stories, pairs)``: ``pairs`` as ``[(a, b, related), ...]``.
    """
    pairs = stories.similarity_pairs(seed)
    unrelated = [(a, b) for a, b, related in pairs if not related]
    rng = random.Random(f"frames-{seed}")  # apart from the generator's own stream
    whole, part = int(frames_per_story), frames_per_story - int(frames_per_story)
    out = []
    for story in stories.generate_stories(n, seed):
        frames = []
        for _ in range(whole + (rng.random() < part)):
            x, y = rng.choice(unrelated)
            if rng.random() < 0.5:
                x, y = y, x
            text = rng.choice(FRAME_TEMPLATES).format(x=x, y=y, place=rng.choice(FRAME_PLACES))
            frames.append(text[0].upper() + text[1:])
        out.append(" ".join([story, *frames]))
    return out, pairs


def _stable_hash(text: str) -> int:
    # gensim seeds per-word vectors from hash(word) in some paths; Python's hash changes per process.
    return zlib.crc32(text.encode("utf-8"))


def gensim_word2vec(sentences: Sequence[Sequence[str]], cfg: Word2VecConfig) -> WordVectors:
    """gensim's ``Word2Vec`` with our settings: architecture, size, window, negatives, counts, epochs.

    The learning rate is gensim's own default (``alpha`` 0.025 decaying to 1e-4, plain SGD):
    ``cfg.lr`` is a SparseAdam step size and means nothing to SGD. One worker and a fixed hash make
    it deterministic for a given seed.
    """
    from gensim.models import Word2Vec as GensimWord2Vec

    model = GensimWord2Vec(
        sentences=[list(s) for s in sentences], vector_size=cfg.dim, window=cfg.window,
        negative=cfg.negatives, min_count=cfg.min_count, sample=cfg.sample, ns_exponent=cfg.ns_exponent,
        epochs=cfg.epochs, sg=int(cfg.arch == "skipgram"), hs=0, cbow_mean=1, seed=cfg.seed, workers=1,
        hashfxn=_stable_hash)
    return WordVectors(list(model.wv.index_to_key), model.wv.vectors)


#: A control's trainer: (sentences, seed) -> vectors.
Trainer = Callable[[Sequence[Sequence[str]], int], WordVectors]


def default_trainers(cfg: WordEmbeddingsConfig) -> dict[str, Trainer]:
    """``ours/<arch>``, ``gensim/<arch>`` for both architectures, and ``ppmi``, with the items' settings."""
    trainers: dict[str, Trainer] = {}
    for arch in ("cbow", "skipgram"):
        w2v = getattr(cfg, arch)
        trainers[f"ours/{arch}"] = lambda s, seed, w2v=w2v: train_word2vec(s, replace(w2v, seed=seed))
        trainers[f"gensim/{arch}"] = lambda s, seed, w2v=w2v: gensim_word2vec(s, replace(w2v, seed=seed))
    sg = cfg.skipgram
    ppmi = PPMIConfig(dim=sg.dim, window=sg.window, min_count=sg.min_count)
    trainers["ppmi"] = lambda s, seed: ppmi_svd_vectors(s, ppmi)
    return trainers


def _mean_pair_similarity(vectors: WordVectors, pairs: Sequence[tuple[str, str, bool]], related: bool) -> float:
    s = [vectors.similarity(a, b) for a, b, r in pairs if r == related and a in vectors and b in vectors]
    return float(np.mean(s)) if s else float("nan")


def control_scores(vectors: WordVectors, pairs: Sequence[tuple[str, str, bool]]) -> dict[str, float]:
    """One model's numbers on one seed: mean cosine of related / co-occurring unrelated pairs, their
    gap, the AUC of the pairs and analogy accuracy over every story relation."""
    rel, unrel = _mean_pair_similarity(vectors, pairs, True), _mean_pair_similarity(vectors, pairs, False)
    return {"related_similarity": rel, "unrelated_similarity": unrel, "shared_context_gap": rel - unrel,
            "shared_context_auc": similarity_auc(vectors, pairs),
            "analogy_acc": analogy_accuracy(vectors, stories.analogy_questions()).accuracy}


def run_controls(cfg: WordEmbeddingsConfig, trainers: Mapping[str, Trainer] | None = None
                 ) -> dict[str, dict[str, list[float]]]:
    """Every control on every seed of ``cfg.controls``: ``{model: {score: [one value per seed]}}``.

    Args:
        cfg: the section (``controls`` and the ``cbow`` / ``skipgram`` settings).
        trainers: ``{model: trainer}``; default :func:`default_trainers` (a test swaps one for a
            null model).
    """
    c = cfg.controls
    trainers = default_trainers(cfg) if trainers is None else trainers
    out: dict[str, dict[str, list[float]]] = {name: {} for name in trainers}
    for seed in c.seeds:
        texts, pairs = shared_context_stories(c.stories, seed, c.frames_per_story)
        sentences = [simple_word_tokenize(t) for t in texts]
        for name, train in trainers.items():
            for key, value in control_scores(train(sentences, seed), pairs).items():
                out[name].setdefault(key, []).append(value)
    return out


def _mean_se(xs: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(xs, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")


def controls_table(scores: Mapping[str, Mapping[str, Sequence[float]]]) -> str:
    """Mean +- standard error over seeds of every score, one row per model."""
    keys = ("related_similarity", "unrelated_similarity", "shared_context_gap", "shared_context_auc", "analogy_acc")
    lines = ["model\t" + "\t".join(keys)]
    for name, s in scores.items():
        lines.append(name + "\t" + "\t".join("%.3f +- %.3f" % _mean_se(s[k]) for k in keys))
    return "\n".join(lines) + "\n"


def controls_item_parts(arch: str, scores: Mapping[str, Mapping[str, Sequence[float]]],
                        checks: WordEmbeddingsChecks) -> tuple[dict[str, float], list[Finding]]:
    """Metrics (mean and SE per model and score, prefix ``controls/``) and the three findings of
    ``arch``'s item: the shared-context gap, and non-inferiority to gensim on it and on analogies."""
    ours, ref = scores[f"ours/{arch}"], scores[f"gensim/{arch}"]
    name = ARCH_NAMES[arch]
    n = len(ours["shared_context_gap"])
    metrics: dict[str, float] = {"controls/seeds": float(n)}
    for model in (f"ours/{arch}", f"gensim/{arch}"):  # PPMI goes to item 8, beside one-hot
        label = model.split("/")[0]
        for key, values in scores[model].items():
            metrics[f"controls/{label}/{key}"], metrics[f"controls/{label}/{key}_se"] = _mean_se(values)
    findings = [
        Finding.compare(
            f"{name}: on stories where each unrelated pair co-occurs in frame sentences, related pairs "
            f"score a higher mean cosine than those unrelated pairs (margin {checks.min_shared_context_gap:g}, "
            f"{n} seeds; fails for first-order co-occurrence or related words with no shared context)",
            "controls/shared_context_gap", ours["related_similarity"], ours["unrelated_similarity"],
            margin=checks.min_shared_context_gap),
        Finding.compare(
            f"{name}: our shared-context gap is not below gensim's Word2Vec (same stories, settings and "
            f"seeds) by more than {checks.max_gap_below_gensim:g} (an untrained table fails it)",
            "controls/gap_minus_gensim", ours["shared_context_gap"], ref["shared_context_gap"],
            margin=-checks.max_gap_below_gensim),
        Finding.compare(
            f"{name}: our analogy accuracy is not below gensim's Word2Vec by more than "
            f"{checks.max_analogy_below_gensim:g} (same stories, settings and seeds)",
            "controls/analogy_minus_gensim", ours["analogy_acc"], ref["analogy_acc"],
            margin=-checks.max_analogy_below_gensim),
    ]
    return metrics, findings


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        corpus: real text, one list of words per document (e.g. ``simple_word_tokenize`` of each
            training document); skip-gram is trained on it for ``cfg.corpus_epochs`` epochs and
            item 6 gets its neighbour lists (``corpus_neighbours.txt``). ``None`` skips it, and so
            does ``cfg.corpus_epochs == 0``; ``cfg.corpus_documents`` caps how many are used.
    """

    corpus: Sequence[Sequence[str]] | None = None


@dataclass
class Outputs:
    """What :func:`run` builds besides the items, for the stage to save.

    Attributes:
        vectors: ``"cbow"``, ``"skipgram"`` and, with a corpus, ``"corpus_skipgram"``.
        warnings: one line per setting that had to adapt to a small corpus (the stage prints
            them).
    """

    vectors: dict[str, WordVectors] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def corpus_min_count(corpus: Sequence[Sequence[str]], wanted: int, outputs: Outputs | None = None) -> int:
    """``wanted``, or 1 when fewer than two words of ``corpus`` occur ``wanted`` times.

    A small corpus (a user's own, a few documents) may have no word, or a single one,
    ``corpus_min_count`` times, and word2vec needs pairs of words; the corpus vectors (which the
    augmentation stage reads) are then trained on every word instead of failing, and a warning
    goes to ``outputs.warnings``.
    """
    counts: dict[str, int] = {}
    for doc in corpus:
        for word in doc:
            counts[word] = counts.get(word, 0) + 1
    if sum(c >= wanted for c in counts.values()) >= 2 or wanted == 1:
        return wanted
    if outputs is not None:
        outputs.warnings.append(
            f"word_embeddings: fewer than two words of the train split occur "
            f"word_embeddings.corpus_min_count={wanted} times ({len(counts)} distinct words, "
            f"{sum(counts.values())} in all); the corpus vectors use every word (min_count 1): "
            "lower the key or add documents")
    return 1


def run(cfg: WordEmbeddingsConfig, inputs: Inputs, outputs: Outputs | None = None) -> list[ItemResult]:
    """Items 5, 6 and 8 end to end: stories -> CBOW and skip-gram -> compared with one-hot.

    Args:
        cfg: the ``word_embeddings`` section.
        inputs: the real corpus (optional).
        outputs: when given, receives the trained vectors as ``outputs.vectors``.

    Returns:
        The results of items 5, 6 and 8, in that order.
    """
    corpus = inputs.corpus
    sentences = [simple_word_tokenize(s) for s in stories.generate_stories(cfg.stories, cfg.seed)]
    vectors: dict[str, WordVectors] = {}
    results: dict[str, ItemResult] = {}
    replicate_sentences = {seed: [simple_word_tokenize(s) for s in stories.generate_stories(cfg.stories, seed)]
                           for seed in cfg.extra_seeds}
    for arch in ("cbow", "skipgram"):
        w2v = getattr(cfg, arch)
        replicates = [seed_scores(replicate_sentences[seed], replace(w2v, seed=seed)) for seed in cfg.extra_seeds]
        vectors[arch], results[arch] = word2vec_item(
            ITEM[arch], sentences, w2v, min_analogy_gain=cfg.min_analogy_gain, min_auc=cfg.min_auc,
            replicates=replicates)
        results[arch].metrics["stories"] = float(cfg.stories)

    if corpus is not None and cfg.corpus_epochs > 0:
        corpus = list(corpus)[: cfg.corpus_documents or None]
        min_count = corpus_min_count(corpus, cfg.corpus_min_count, outputs)
        corpus_cfg = replace(cfg.skipgram, epochs=cfg.corpus_epochs, min_count=min_count)
        log = TrainLog()
        found = vectors["corpus_skipgram"] = train_word2vec(corpus, corpus_cfg, log)
        skipgram = results["skipgram"]
        skipgram.metrics.update({
            "corpus/documents": float(len(corpus)),
            "corpus/vocab_size": float(len(found)),
            "corpus/train_words": float(log.train_words),
            "corpus/final_loss": log.losses[-1][1] if log.losses else float("nan"),
        })
        header = (f"skip-gram on the real corpus: {len(corpus)} documents, {len(found)} words seen "
                  f">= {min_count} times, {cfg.corpus_epochs} epochs. Nearest neighbours "
                  f"by cosine (no ground truth: read, not checked).\n\n")
        skipgram.texts["corpus_neighbours.txt"] = header + neighbours_text(found, cfg.corpus_words, cfg.neighbours)

    import gensim

    controls = run_controls(cfg)
    table = (f"# mean +- standard error over seeds {cfg.controls.seeds}, {cfg.controls.stories} stories each, "
             f"{cfg.controls.frames_per_story:g} frame sentences per story; gensim {gensim.__version__}\n"
             + controls_table(controls))
    for arch in ("cbow", "skipgram"):
        metrics, findings = controls_item_parts(arch, controls, cfg.checks)
        results[arch].metrics.update(metrics)
        results[arch].findings += findings
        results[arch].texts["controls.tsv"] = table

    learned = {ARCH_NAMES[a]: vectors[a] for a in ("cbow", "skipgram")}
    onehot = one_hot_vs_learned_item(
        ITEM["one_hot_vs_learned"], learned, min_distance_gap=cfg.min_distance_gap,
        max_onehot_distance_error=cfg.checks.max_onehot_distance_error,
        max_onehot_auc_error=cfg.checks.max_onehot_auc_error)
    for key, values in controls["ppmi"].items():  # the count-based representation, beside one-hot
        onehot.metrics[f"controls/ppmi/{key}"], onehot.metrics[f"controls/ppmi/{key}_se"] = _mean_se(values)
    if outputs is not None:
        outputs.vectors = vectors
    return [results["cbow"], results["skipgram"], onehot]
