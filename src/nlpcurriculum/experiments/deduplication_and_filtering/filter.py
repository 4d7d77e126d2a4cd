"""Experiment of stage ``filter``: item ``deduplication-and-filtering/2``, the filters checked.

:func:`run` reports the Gopher heuristics (Rae et al. 2021, arXiv:2112.11446) and a
CCNet-style Kneser-Ney perplexity filter (arXiv:1911.00359) on the real corpus, plus injected junk
made from held-out clean documents (word-shuffled, character garbage, one line repeated): the rank
AUC of perplexity (junk vs clean) and the drop rates of each filter family.

It takes the stage's already-computed tables (:func:`~nlpcurriculum.data.cleaning.filter_documents`)
for the real-corpus numbers and builds its benchmark itself; it returns an
:class:`~nlpcurriculum.results.ItemResult`. Left out: the downstream effect of filtering on a
model (item 3 of the section, :mod:`.dedup_impact`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nlpcurriculum.data.cleaning import (
    FilterTables,
    PerplexityStageConfig,
    heuristic_reasons,
    resolve_sources,
)
from nlpcurriculum.data.filters import QualityFilterConfig
from nlpcurriculum.data.synthetic.base import as_rng
from nlpcurriculum.results import Finding, ItemResult

__all__ = ["ITEMS", "JUNK_KINDS", "FilterStageConfig", "Inputs", "make_junk", "rank_auc", "run"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("deduplication-and-filtering/2",)


@dataclass
class FilterChecks:
    """Bounds of the findings that no knob above sets (params ``filter.checks``).

    Attributes:
        min_clean_keep_rate: share of the clean documents (``clean_sources``) the heuristic rules
            keep.
        min_shuffled_perplexity_auc: rank AUC of word-shuffled junk's perplexity over the clean
            documents'.
        min_combined_drop_rate: share of all injected junk that heuristics + perplexity drop.
        min_loud_junk_drop_rate: share of garbage and repeated-line junk the heuristic rules drop.
    """

    min_clean_keep_rate: float = 0.85
    min_shuffled_perplexity_auc: float = 0.9
    min_combined_drop_rate: float = 0.9
    min_loud_junk_drop_rate: float = 0.9


@dataclass
class FilterStageConfig:
    """The ``filter`` section of params/deduplication_and_filtering.yaml.

    Attributes:
        quality: the heuristic rules' thresholds.
        perplexity: the Kneser-Ney perplexity filter and its clean reference.
        clean_sources: sources of curated prose; the share of their documents the heuristic
            rules keep is the "clean keep rate" finding. ``[]``: every source of the corpus; a
            list none of whose sources the corpus has (the built-in corpus's names on a user's
            own corpus) also falls back to every source, with a warning
            (:func:`~nlpcurriculum.data.cleaning.resolve_sources`).
        junk_per_kind: injected junk documents per kind (made from held-out clean reference
            documents) for the benchmark.
        seed: seeds the junk.
        checks: the other bounds of the findings.
    """

    quality: QualityFilterConfig = field(default_factory=QualityFilterConfig)
    perplexity: PerplexityStageConfig = field(default_factory=PerplexityStageConfig)
    clean_sources: list[str] = field(default_factory=lambda: ["pydoc_topics"])
    junk_per_kind: int = 50
    seed: int = 0
    checks: FilterChecks = field(default_factory=FilterChecks)

    def __post_init__(self) -> None:
        if self.junk_per_kind < 1:
            raise ValueError(f"junk_per_kind must be >= 1, got {self.junk_per_kind}")


JUNK_KINDS = ("shuffled", "garbage", "repeated_line")
_GARBAGE_CHARS = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789#@$%&*/=+<>|~^_"))


def make_junk(text: str, kind: str, rng: np.random.Generator) -> str:
    """A junk version of ``text`` with the same word count.

    ``shuffled``: the same words in random order (every heuristic statistic is unchanged, only
    word order is broken); ``garbage``: random strings of letters, digits and symbols;
    ``repeated_line``: the first 12 words repeated (boilerplate, spam).
    """
    words = text.split()
    n = len(words)
    if kind == "shuffled":
        return " ".join(words[i] for i in rng.permutation(n))
    if kind == "garbage":
        lengths = rng.integers(1, 11, size=n)
        chars = _GARBAGE_CHARS[rng.integers(len(_GARBAGE_CHARS), size=int(lengths.sum()))]
        out, pos = [], 0
        for length in lengths.tolist():
            out.append("".join(chars[pos : pos + length]))
            pos += length
        return " ".join(out)
    if kind == "repeated_line":
        line = " ".join(words[:12])
        return "\n".join([line] * max(1, n // 12))
    raise ValueError(f"unknown junk kind {kind!r} (known: {JUNK_KINDS})")


def rank_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counted half (Mann-Whitney U)."""
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        texts: the filter stage's input texts (same order as ``tables``' arrays).
        sources: their sources.
        tables: the filter stage's result.
    """

    texts: list[str]
    sources: list[str]
    tables: FilterTables


def run(cfg: FilterStageConfig, inputs: Inputs) -> list[ItemResult]:
    """Filter the real corpus's report plus the injected-junk benchmark.

    Args:
        cfg: the stage configuration.
        inputs: the real corpus and the filter stage's result on it.

    Returns:
        ``[item 2]``.
    """
    docs_texts, sources, real = inputs.texts, inputs.sources, inputs.tables
    import matplotlib.pyplot as plt

    res = ItemResult(ITEMS[0])
    n = len(docs_texts)
    res.metrics.update({f"real.{k}": int(v) for k, v in real.counts.items()})
    res.metrics["real.documents"] = n
    res.metrics["real.kept_fraction"] = real.counts["kept"] / n
    res.metrics["perplexity.threshold"] = real.threshold

    # Clean keep rate: curated prose (clean_sources); how much of it do the rules keep?
    ref_mask = real.is_reference
    clean_sources, note = resolve_sources(cfg.clean_sources, sources, "filter.clean_sources")
    if note:
        real.warnings.append(note)
    clean_mask = np.isin(np.asarray(sources), clean_sources)
    heur = np.array([r is None for r in heuristic_reasons(
        [t for t, m in zip(docs_texts, clean_mask) if m], cfg.quality)])
    clean_keep = float(heur.mean()) if heur.size else float("nan")
    res.metrics["clean.documents"] = int(clean_mask.sum())
    res.metrics["clean.heuristic_keep_rate"] = clean_keep
    res.findings.append(Finding.at_least(
        f"the heuristic rules keep >= {cfg.checks.min_clean_keep_rate:.0%} of the clean documents "
        f"({', '.join(clean_sources)})", "clean.heuristic_keep_rate", clean_keep,
        cfg.checks.min_clean_keep_rate))

    # Junk benchmark: junk made from held-out reference documents, scored by the fold model
    # that never saw the source document, so clean and junk are judged by the same model.
    rng = as_rng(cfg.seed)
    ref_idx = np.flatnonzero(ref_mask & np.isfinite(real.perplexity))
    pick = rng.permutation(ref_idx)[: cfg.junk_per_kind]
    clean_ppl = real.perplexity[pick]
    junk_heur_drop: dict[str, float] = {}
    junk_ppl: dict[str, np.ndarray] = {}
    folds = {int(i): int(real.fold[i]) for i in pick} if real.fold_filters else None
    for kind in JUNK_KINDS:
        junk = [make_junk(docs_texts[i], kind, rng) for i in pick.tolist()]
        reasons = heuristic_reasons(junk, cfg.quality)
        dropped = np.array([r is not None for r in reasons])
        junk_heur_drop[kind] = float(dropped.mean()) if len(junk) else float("nan")
        res.metrics[f"junk.{kind}.heuristic_drop_rate"] = junk_heur_drop[kind]
        if folds is not None:
            ppl = np.array([real.fold_filters[folds[int(i)]].doc_perplexity(t)
                            for i, t in zip(pick.tolist(), junk)])
            junk_ppl[kind] = ppl
            auc = rank_auc(ppl, clean_ppl)
            res.metrics[f"junk.{kind}.perplexity_auc"] = auc
            combined = dropped | ~(ppl <= real.threshold)
            res.metrics[f"junk.{kind}.combined_drop_rate"] = float(combined.mean())
    res.metrics["junk.per_kind"] = int(len(pick))
    if folds is not None:
        res.findings.append(Finding.at_least(
            "word-shuffled documents get higher Kneser-Ney perplexity than the clean documents "
            "they came from (rank AUC)", "junk.shuffled.perplexity_auc",
            res.metrics["junk.shuffled.perplexity_auc"], cfg.checks.min_shuffled_perplexity_auc))
        combined_all = np.mean([res.metrics[f"junk.{k}.combined_drop_rate"] for k in JUNK_KINDS])
        res.metrics["junk.all.combined_drop_rate"] = float(combined_all)
        res.findings.append(Finding.at_least(
            f"heuristics + perplexity drop >= {cfg.checks.min_combined_drop_rate:.0%} of all injected "
            "junk", "junk.all.combined_drop_rate", combined_all, cfg.checks.min_combined_drop_rate))
    loud = np.mean([junk_heur_drop[k] for k in ("garbage", "repeated_line")])
    res.metrics["junk.garbage_and_repeated.heuristic_drop_rate"] = float(loud)
    res.findings.append(Finding.at_least(
        f"the heuristic rules drop >= {cfg.checks.min_loud_junk_drop_rate:.0%} of garbage and "
        "repeated-line junk", "junk.garbage_and_repeated.heuristic_drop_rate", loud,
        cfg.checks.min_loud_junk_drop_rate))

    # Figures: drops per reason, and the perplexity histogram with the threshold.
    fig, ax = plt.subplots(figsize=(6, 4))
    items = sorted(((k, v) for k, v in real.counts.items() if k != "kept"), key=lambda kv: -kv[1])
    ax.barh([k for k, _ in items][::-1], [v for _, v in items][::-1])
    ax.set(xlabel="documents dropped", title=f"filter: drops per reason ({real.counts['kept']} of "
           f"{n} kept)")
    res.figures["drops_per_reason.png"] = fig

    fig, ax = plt.subplots(figsize=(6, 4))
    scored = np.isfinite(real.perplexity)
    all_ppl = [real.perplexity[scored & ref_mask], real.perplexity[scored & ~ref_mask],
               *junk_ppl.values()]
    scored_parts = [x[np.isfinite(x)] for x in all_ppl if len(x)]  # none with the LM off
    finite = np.concatenate(scored_parts) if scored_parts else np.zeros(0)
    if finite.size:
        edges = np.geomspace(max(finite.min(), 1.0), finite.max() * 1.01, 40)
        ax.hist(all_ppl[0], bins=edges, alpha=0.6, label="reference (held-out fold)")
        if len(all_ppl[1]):
            ax.hist(all_ppl[1], bins=edges, alpha=0.6, label="other sources")
        for kind, ppl in junk_ppl.items():
            ax.hist(ppl[np.isfinite(ppl)], bins=edges, alpha=0.4, histtype="step", lw=2,
                    label=f"junk: {kind}")
        ax.set_xscale("log")
    if np.isfinite(real.threshold):
        ax.axvline(real.threshold, c="k", ls="--",
                   label=f"threshold (p{cfg.perplexity.percentile:g} of reference)")
    ax.set(xlabel="Kneser-Ney perplexity", ylabel="documents", title="perplexity filter")
    if ax.get_legend_handles_labels()[0]:  # nothing to label with the filter off
        ax.legend(fontsize=7)
    res.figures["perplexity_hist.png"] = fig
    return [res]
