"""Corpus cleaning at the table level: deduplicate and quality-filter a ``documents`` table.

The algorithms live in :mod:`.lsh` (MinHash + LSH), :mod:`.filters` (Gopher / C4 heuristics)
and :mod:`.ngram_lm` (Kneser-Ney perplexity, CCNet-style, Wenzek et al. 2019, arXiv:1911.00359).
This module applies them to the pipeline's ``documents`` table (``doc_id, text, source,
provenance, n_chars``) and returns three things: the kept rows (same contract), the dropped rows
with a reason code and, for duplicates, the document each one duplicates (so every drop can be
inspected), and per-reason counts (docs/CONVENTIONS.md, convention 12).

Policies for bad input, stated once here:

* *Nothing left.* Deduplication always keeps one document per cluster, so a corpus of copies
  leaves one document (and :class:`DedupTables` says how many clusters collapsed). Filtering can
  drop everything; then :class:`NothingLeftError` names the per-reason counts instead of handing
  an empty table downstream. An empty *input* table is refused the same way.
* *Invalid UTF-8.* Parquet strings are valid UTF-8 by construction, so damage arrives as U+FFFD
  (``ingest.on_decode_error: replace``). Dedup hashes such text as is; the filter's
  ``invalid_utf8`` rule drops documents whose U+FFFD share exceeds
  ``max_replacement_char_frac``. Lone surrogates (``str`` that is not encodable) are hashed with
  ``surrogatepass`` and then filtered like U+FFFD: they are replaced before the share is counted.
* *Huge documents.* MinHash reads at most ``minhash.max_doc_chars`` characters in pieces of
  ``piece_chars``; the length rule drops a document over ``max_chars`` before splitting it into
  words; the dropped table keeps a ``preview`` of at most :data:`PREVIEW_CHARS` characters. So a
  50 MB document costs a hash of its bytes and one bounded pass, never a word list of it.

Cross-fitted perplexity. The LM must not score the text it was trained on (its own training
documents look optimistically fluent). The clean reference (documents of ``reference_sources``
that pass the heuristic rules) is cut into two folds by a hash of ``doc_id``; model A trains on
fold 1 and scores fold 0, model B the reverse. The threshold is the ``percentile`` of these
held-out reference perplexities, and every other document is scored by model A (trained on the
same amount of reference text as the one that set the threshold).

Left out: line-level cleaning, language identification and model-based quality classifiers.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nlpcurriculum.data.filters import QualityFilterConfig, Reason, TextStats, build_filters
from nlpcurriculum.data.lsh import DedupConfig, DedupResult, deduplicate
from nlpcurriculum.data.ngram_lm import PerplexityFilter, PerplexityFilterConfig
from nlpcurriculum.data.schemas import ContractError

#: Characters of a dropped document kept in the dropped-rows table.
PREVIEW_CHARS = 200
DROPPED_COLUMNS = ["doc_id", "source", "provenance", "n_chars", "reason", "kept_doc_id",
                   "similarity", "perplexity", "preview"]  # fmt: skip


class NothingLeftError(ContractError):
    """A cleaning step would hand an empty table downstream."""


def _check_not_empty(docs: pd.DataFrame, step: str) -> None:
    if len(docs) == 0:
        raise NothingLeftError(f"{step}: the input table has no documents (check ingest)")


def _preview(texts: pd.Series) -> pd.Series:
    return texts.map(lambda t: t[:PREVIEW_CHARS])


def _safe_text(text: str) -> str:
    """A ``str`` with lone surrogates replaced by U+FFFD (they cannot be written as UTF-8)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# Deduplication
# ---------------------------------------------------------------------------------------------


@dataclass
class DedupTables:
    """What :func:`dedup_documents` returns.

    Attributes:
        kept: the kept rows, input columns and order.
        dropped: one row per dropped document (:data:`DROPPED_COLUMNS`): ``reason`` is
            ``exact_duplicate`` or ``near_duplicate``, ``kept_doc_id`` the survivor of its
            cluster, ``similarity`` the estimated Jaccard with it.
        counts: ``kept``, ``exact_duplicate``, ``near_duplicate``, ``clusters_collapsed``
            (clusters of two or more documents).
        result: the full :class:`DedupResult` (bands, rows, per-document cluster).
    """

    kept: pd.DataFrame
    dropped: pd.DataFrame
    counts: dict[str, int]
    result: DedupResult


def dedup_documents(docs: pd.DataFrame, cfg: DedupConfig | None = None) -> DedupTables:
    """Exact + near-duplicate removal over a ``documents`` table; one document per cluster stays.

    Raises:
        NothingLeftError: the input table is empty.
    """
    cfg = cfg or DedupConfig()
    _check_not_empty(docs, "dedup")
    docs = docs.reset_index(drop=True)
    result = deduplicate(docs["text"].tolist(), cfg)
    drop = np.flatnonzero(~result.keep)
    dropped = docs.loc[drop, ["doc_id", "source", "provenance", "n_chars"]].assign(
        reason=[result.reason[i] for i in drop],
        kept_doc_id=docs["doc_id"].to_numpy()[result.cluster[drop]],
        similarity=result.similarity[drop],
        perplexity=np.nan,
        preview=_preview(docs.loc[drop, "text"]).map(_safe_text),
    )
    sizes = np.bincount(result.cluster, minlength=len(docs))
    counts = {**result.counts, "clusters_collapsed": int((sizes > 1).sum())}
    kept = docs[result.keep].reset_index(drop=True)
    return DedupTables(kept, dropped.reset_index(drop=True)[DROPPED_COLUMNS], counts, result)


# ---------------------------------------------------------------------------------------------
# Filtering
# ---------------------------------------------------------------------------------------------


@dataclass
class PerplexityStageConfig(PerplexityFilterConfig):
    """The perplexity filter plus where its clean reference comes from.

    Attributes:
        enabled: run the perplexity filter after the heuristic rules.
        reference_sources: ``source`` values whose documents (after the heuristic rules) form
            the clean reference the LM is trained and calibrated on.
        seed: salts the hash that assigns reference documents to the two folds.
    """

    enabled: bool = True
    reference_sources: list[str] = field(default_factory=lambda: ["pydoc_topics"])
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.enabled and not self.reference_sources:
            raise ValueError("reference_sources: the perplexity filter needs a clean reference")


@dataclass
class FilterTables:
    """What :func:`filter_documents` returns.

    Attributes:
        kept, dropped: as in :class:`DedupTables`; ``reason`` is a :class:`Reason` value and
            ``perplexity`` is filled for documents the LM scored.
        counts: ``kept`` plus documents dropped per reason.
        perplexity: (N,) perplexity of every input document (NaN where not scored: documents
            the heuristic rules dropped).
        threshold: the perplexity threshold (inf when the filter is off).
        reference_perplexities: the held-out reference perplexities that set the threshold.
        is_reference: (N,) whether each document belongs to the clean reference.
        fold_filters: the two fitted perplexity filters (fold 0, fold 1); empty when off.
        fold: (N,) the fold of each reference document the LM scored (``fold_filters[k]`` held
            fold k out), -1 for every other document.
    """

    kept: pd.DataFrame
    dropped: pd.DataFrame
    counts: dict[str, int]
    perplexity: np.ndarray
    threshold: float
    reference_perplexities: np.ndarray
    is_reference: np.ndarray
    fold_filters: list[PerplexityFilter]
    fold: np.ndarray


def reference_fold(doc_ids: pd.Series, seed: int) -> np.ndarray:
    """(N,) fold 0 or 1 of each document, from ``sha256(seed:doc_id)`` (stable across runs)."""
    return np.fromiter(
        (hashlib.sha256(f"{seed}:{d}".encode()).digest()[0] & 1 for d in doc_ids),
        dtype=np.int64, count=len(doc_ids),
    )  # fmt: skip


def heuristic_reasons(texts: list[str], cfg: QualityFilterConfig) -> list[str | None]:
    """The first failing heuristic rule per document (None when it passes them all)."""
    rules = build_filters(cfg)
    reasons: list[str | None] = []
    for text in texts:
        stats = TextStats(_safe_text(text))
        reason = None
        for rule in rules:
            result = rule.check(stats)
            if not result.keep:
                reason = str(result.reason)
                break
        reasons.append(reason)
    return reasons


def fit_perplexity_folds(
    texts: list[str], fold: np.ndarray, cfg: PerplexityFilterConfig
) -> tuple[list[PerplexityFilter], np.ndarray, np.ndarray]:
    """Cross-fit two perplexity filters on a two-fold clean reference.

    Args:
        texts: the reference documents.
        fold: (n,) 0/1 fold of each.
        cfg: the filter configuration (``percentile`` sets the threshold).

    Returns:
        (filters, held-out perplexity of each reference document (n,), threshold as a 0-d array).
        ``filters[k]`` was trained on the other fold and scores fold k.

    Raises:
        NothingLeftError: a fold is empty (fewer than two reference documents).
    """
    filters, held_out = [], np.full(len(texts), np.nan)
    for k in (0, 1):
        train = [t for t, f in zip(texts, fold) if f != k]
        score = [t for t, f in zip(texts, fold) if f == k]
        if not train or not score:
            raise NothingLeftError(
                f"filter: the clean reference has {len(texts)} documents after the heuristic "
                "rules; the perplexity filter needs at least one in each of its two folds"
            )
        pf = PerplexityFilter(cfg).fit(train, score)
        held_out[fold == k] = [pf.doc_perplexity(t) for t in score]
        filters.append(pf)
    finite = held_out[np.isfinite(held_out)]
    threshold = float(np.percentile(finite, cfg.percentile))
    for pf in filters:
        pf.threshold = threshold
    return filters, held_out, np.asarray(threshold)


def filter_documents(
    docs: pd.DataFrame, quality: QualityFilterConfig, perplexity: PerplexityStageConfig
) -> FilterTables:
    """Heuristic rules, then (optionally) the cross-fitted perplexity filter.

    Raises:
        NothingLeftError: the input is empty, the reference is too small, or every document
            was dropped (the message lists the per-reason counts).
    """
    _check_not_empty(docs, "filter")
    docs = docs.reset_index(drop=True)
    texts = docs["text"].tolist()
    reasons = heuristic_reasons(texts, quality)
    n = len(docs)
    ppl = np.full(n, np.nan)
    is_ref = docs["source"].isin(perplexity.reference_sources).to_numpy()
    filters: list[PerplexityFilter] = []
    threshold, ref_ppl = math.inf, np.zeros(0)
    doc_fold = np.full(n, -1, dtype=np.int64)
    if perplexity.enabled:
        passed = np.array([r is None for r in reasons])
        ref_idx = np.flatnonzero(passed & is_ref)
        fold = reference_fold(docs["doc_id"].iloc[ref_idx], perplexity.seed)
        filters, ref_ppl, thr = fit_perplexity_folds([texts[i] for i in ref_idx], fold, perplexity)
        threshold = float(thr)
        ppl[ref_idx] = ref_ppl
        doc_fold[ref_idx] = fold
        for i in np.flatnonzero(passed & ~is_ref).tolist():
            ppl[i] = filters[0].doc_perplexity(texts[i])
        for i in np.flatnonzero(passed).tolist():
            if not ppl[i] <= threshold:  # NaN-safe: a document with no token has inf
                reasons[i] = str(Reason.PERPLEXITY)
    keep = np.array([r is None for r in reasons])
    counts: dict[str, int] = {"kept": int(keep.sum())}
    for r in sorted({r for r in reasons if r is not None}):
        counts[r] = sum(1 for x in reasons if x == r)
    if not keep.any():
        raise NothingLeftError(f"filter: every one of {n} documents was dropped ({counts})")
    drop = np.flatnonzero(~keep)
    dropped = docs.loc[drop, ["doc_id", "source", "provenance", "n_chars"]].assign(
        reason=[reasons[i] for i in drop],
        kept_doc_id=None,
        similarity=np.nan,
        perplexity=ppl[drop],
        preview=_preview(docs.loc[drop, "text"]).map(_safe_text),
    )
    return FilterTables(
        kept=docs[keep].reset_index(drop=True),
        dropped=dropped.reset_index(drop=True)[DROPPED_COLUMNS],
        counts=counts,
        perplexity=ppl,
        threshold=threshold,
        reference_perplexities=ref_ppl,
        is_reference=is_ref,
        fold_filters=filters,
        fold=doc_fold,
    )
