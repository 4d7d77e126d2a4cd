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
from typing import Iterable

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


#: The ``filter.quality`` keys that set each heuristic rule, for messages that say what to relax.
RULE_KEYS: dict[str, str] = {
    Reason.TOO_SHORT: "filter.quality.min_words",
    Reason.TOO_LONG: "filter.quality.max_words / max_chars",
    Reason.MEAN_WORD_LENGTH: "filter.quality.min_mean_word_length / max_mean_word_length "
                             "(text without spaces between words has very long 'words')",
    Reason.SYMBOL_RATIO: "filter.quality.max_symbol_word_ratio",
    Reason.BULLET_LINES: "filter.quality.max_bullet_line_frac",
    Reason.ELLIPSIS_LINES: "filter.quality.max_ellipsis_line_frac",
    Reason.FEW_ALPHA_WORDS: "filter.quality.min_alpha_word_frac",
    Reason.NON_ALPHA_CHARS: "filter.quality.max_non_alpha_char_frac",
    Reason.NO_STOP_WORDS: "filter.quality.min_stop_words (the stop words are English; 0 turns "
                          "the rule off)",
    Reason.DUPLICATE_LINES: "filter.quality.max_dup_line_frac",
    Reason.DUPLICATE_LINE_CHARS: "filter.quality.max_dup_line_char_frac",
    Reason.TOP_NGRAM: "filter.quality.top_ngram_max",
    Reason.DUPLICATE_NGRAM: "filter.quality.dup_ngram_max",
    Reason.LOREM_IPSUM: "filter.quality.c4_rules",
    Reason.CURLY_BRACKET: "filter.quality.c4_rules",
    Reason.REPLACEMENT_CHARS: "filter.quality.max_replacement_char_frac",
    Reason.PERPLEXITY: "filter.perplexity.percentile (or filter.perplexity.enabled: false)",
}  # fmt: skip


def _relax_hint(counts: dict[str, int]) -> str:
    """``most were dropped as X: relax <key>`` for the commonest drop reason of ``counts``."""
    drops = {r: n for r, n in counts.items() if r != "kept" and n}
    if not drops:
        return ""
    top = max(drops, key=drops.get)
    return f"; most were dropped as {top!r}: relax {RULE_KEYS.get(top, 'filter.quality')}"


def _check_not_empty(docs: pd.DataFrame, step: str) -> None:
    if len(docs) == 0:
        raise NothingLeftError(f"{step}: the input table has no documents (check ingest)")


def _dropped_rows(
    docs: pd.DataFrame, drop: np.ndarray, reason: list[str], kept_doc_id: list[str | None],
    similarity: np.ndarray, perplexity: np.ndarray,
) -> pd.DataFrame:
    """The dropped-rows table (:data:`DROPPED_COLUMNS`) of ``docs``' rows ``drop`` (k,).

    Every column gets its dtype explicitly, so an empty table (nothing dropped: a corpus with no
    duplicates) has the same schema as a full one instead of pandas' float64 for empty lists.
    """
    rows = docs.loc[drop, ["doc_id", "source", "provenance", "n_chars"]].reset_index(drop=True)
    return rows.assign(
        reason=pd.array(reason, dtype="str"),
        kept_doc_id=pd.array(kept_doc_id, dtype="str"),
        similarity=np.asarray(similarity, dtype=np.float64),
        perplexity=np.asarray(perplexity, dtype=np.float64),
        preview=pd.array([_safe_text(t[:PREVIEW_CHARS]) for t in docs["text"].to_numpy()[drop]],
                         dtype="str"),
    )[DROPPED_COLUMNS]


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
    dropped = _dropped_rows(
        docs, drop,
        reason=[result.reason[i] for i in drop],
        kept_doc_id=docs["doc_id"].to_numpy()[result.cluster[drop]].tolist(),
        similarity=result.similarity[drop],
        perplexity=np.full(len(drop), np.nan),
    )  # fmt: skip
    sizes = np.bincount(result.cluster, minlength=len(docs))
    counts = {**result.counts, "clusters_collapsed": int((sizes > 1).sum())}
    kept = docs[result.keep].reset_index(drop=True)
    return DedupTables(kept, dropped, counts, result)


# ---------------------------------------------------------------------------------------------
# Filtering
# ---------------------------------------------------------------------------------------------


def resolve_sources(
    requested: list[str], present: Iterable[str], key: str
) -> tuple[list[str], str | None]:
    """The ``source`` values a ``*_sources`` knob selects in this corpus, plus a warning or None.

    ``[]`` selects every source present. A list selects those of its sources that are present;
    when none is (a list written for the built-in corpus, run on a user's own corpus, whose
    documents all have source ``files``), every source is selected and the warning says so,
    naming ``key`` (the params key to set) and the sources the corpus has.
    """
    present = sorted(set(present))
    if not requested:
        return present, None
    chosen = [s for s in requested if s in present]
    if chosen:
        return chosen, None
    return present, (f"{key} {list(requested)} names no source of this corpus; using all of its "
                     f"sources {present} (set {key} to some of these, or [] for all)")


@dataclass
class PerplexityStageConfig(PerplexityFilterConfig):
    """The perplexity filter plus where its clean reference comes from.

    Attributes:
        enabled: run the perplexity filter after the heuristic rules.
        reference_sources: ``source`` values whose documents (after the heuristic rules) form
            the clean reference the LM is trained and calibrated on; ``[]`` (the default): every
            source of the corpus (see :func:`resolve_sources`).
        seed: salts the hash that assigns reference documents to the two folds.
    """

    enabled: bool = True
    reference_sources: list[str] = field(default_factory=list)
    seed: int = 0


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
        reference_sources: the sources the reference was drawn from (``reference_sources``
            resolved against the corpus).
        warnings: one line per default that had to adapt to the corpus (the stage prints them).
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
    reference_sources: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


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
    if finite.size == 0:
        raise NothingLeftError(
            f"filter: none of the {len(texts)} reference documents gets a finite perplexity from "
            "the model trained on the other fold (too little or too repetitive text): add "
            "documents, or set filter.perplexity.enabled: false")
    threshold = float(np.percentile(finite, cfg.percentile))
    for pf in filters:
        pf.threshold = threshold
    return filters, held_out, np.asarray(threshold)


def _counts(reasons: list[str | None]) -> dict[str, int]:
    """Documents per drop reason (None: kept, not counted), reasons sorted by name."""
    return {r: sum(1 for x in reasons if x == r) for r in sorted({r for r in reasons if r})}


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
    ref_sources, note = resolve_sources(
        perplexity.reference_sources, docs["source"], "filter.perplexity.reference_sources")
    warnings = [note] if note else []
    is_ref = docs["source"].isin(ref_sources).to_numpy()
    filters: list[PerplexityFilter] = []
    threshold, ref_ppl = math.inf, np.zeros(0)
    doc_fold = np.full(n, -1, dtype=np.int64)
    if perplexity.enabled:
        passed = np.array([r is None for r in reasons])
        ref_idx = np.flatnonzero(passed & is_ref)
        fold = reference_fold(docs["doc_id"].iloc[ref_idx], perplexity.seed)
        if not (fold == 0).any() or not (fold == 1).any():
            ref_counts = {"kept": len(ref_idx)} | _counts([reasons[i] for i in np.flatnonzero(is_ref)])
            raise NothingLeftError(
                f"filter: the perplexity filter's clean reference (sources {ref_sources}, set by "
                f"filter.perplexity.reference_sources) has {len(ref_idx)} of {int(is_ref.sum())} "
                "documents left after the heuristic rules, and needs at least one in each of its "
                f"two folds{_relax_hint(ref_counts)}; or set filter.perplexity.enabled: false"
            )
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
    counts: dict[str, int] = {"kept": int(keep.sum())} | _counts(reasons)
    if not keep.any():
        raise NothingLeftError(
            f"filter: every one of {n} documents was dropped ({counts}){_relax_hint(counts)}")
    drop = np.flatnonzero(~keep)
    dropped = _dropped_rows(
        docs, drop,
        reason=[reasons[i] for i in drop],
        kept_doc_id=[None] * len(drop),
        similarity=np.full(len(drop), np.nan),
        perplexity=ppl[drop],
    )  # fmt: skip
    return FilterTables(
        kept=docs[keep].reset_index(drop=True),
        dropped=dropped,
        counts=counts,
        perplexity=ppl,
        threshold=threshold,
        reference_perplexities=ref_ppl,
        is_reference=is_ref,
        fold_filters=filters,
        fold=doc_fold,
        reference_sources=ref_sources,
        warnings=warnings,
    )
