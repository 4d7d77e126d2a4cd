"""Chunkers (sentence, paragraph, sliding window), chunk -> document scores, a hierarchical index.

Chunkers cut one document's text into pieces that are indexed on their own:

* :func:`split_sentences`: after ``.``, ``!`` or ``?`` followed by white space and an upper-case
  letter, a digit or an opening bracket (a rule, not a parser: "et al. Smith" splits wrongly).
* :func:`split_paragraphs`: at blank lines; a text without any (every SciFact abstract) is cut
  before the section headings of a structured abstract ("... cells. METHODS We ..."): an
  upper-case word of 4+ letters, optionally more upper-case words, then a capitalised word, right
  after a sentence end. A text with neither is one paragraph.
* :func:`window_chunks`: windows of ``size`` white-space words, each starting ``size - overlap``
  words after the previous one; the last window ends at the text's end or earlier. For ``n >
  overlap`` words that makes ``ceil((n - overlap) / (size - overlap))`` windows, and every word
  is in at least one (``tests/retrieval/test_chunking.py`` checks both).

Example: ``window_chunks("a b c d e f g h i j", size=4, overlap=2)`` ->
``["a b c d", "c d e f", "e f g h", "g h i j"]`` (10 words: ceil(8 / 2) = 4 windows).

A chunked corpus (:func:`chunk_corpus`) keeps which document each chunk came from
(``chunk_doc``, non-decreasing), and :func:`max_per_doc` turns chunk scores into document scores
by the best chunk (MaxP, Dai & Callan 2019).

:class:`HierarchicalIndex`: document -> section -> sentence, searched coarse to fine. BM25 over
whole documents picks ``coarse_k`` candidates; the finer levels score only the candidates'
sections and sentences, and a candidate's score is ``doc + sum_l weight_l * best unit of level l``
(a document's evidence at several granularities, cf. Callan 1994's passage + document scores).
With ``coarse_k`` = the corpus and weight 1 on one level and 0 on the document it is that level's
flat MaxP search; the tests check it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nlpcurriculum.retrieval.bm25 import BM25Index, BM25Params, topk

__all__ = ["CHUNKERS", "ChunkedCorpus", "HierarchicalIndex", "chunk_corpus", "max_per_doc",
           "doc_scores_maxp", "split_paragraphs", "split_sentences", "window_chunks",
           "window_count"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")
_HEADING = re.compile(r"(?<=[.!?])\s+(?=[A-Z]{4,}(?:\s+[A-Z]{2,})*\s+[A-Z][a-z])")
_BLANK_LINE = re.compile(r"\n\s*\n")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (see the module docstring); an empty text gives ``[]``."""
    return [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs: blank-line separated, else structured-abstract sections, else the whole text."""
    parts = [p.strip() for p in _BLANK_LINE.split(text)]
    if len([p for p in parts if p]) <= 1:
        parts = [p.strip() for p in _HEADING.split(text)]
    return [p for p in parts if p]


def window_count(n_words: int, size: int, overlap: int) -> int:
    """How many windows :func:`window_chunks` makes of ``n_words`` words."""
    if n_words == 0:
        return 0
    return max(1, math.ceil((n_words - overlap) / (size - overlap)))


def window_chunks(text: str, size: int, overlap: int) -> list[str]:
    """Sliding windows of ``size`` words, consecutive windows sharing ``overlap`` words."""
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"a window needs size >= 1 and 0 <= overlap < size, got {size}, {overlap}")
    words = text.split()
    step = size - overlap
    return [" ".join(words[s:s + size]) for s in range(0, max(len(words) - overlap, 1), step)
            if words[s:s + size]]


CHUNKERS: dict[str, Callable[..., list[str]]] = {
    "sentence": lambda text, **kw: split_sentences(text),
    "paragraph": lambda text, **kw: split_paragraphs(text),
    "window": lambda text, size=64, overlap=32, **kw: window_chunks(text, size, overlap),
}
"""Chunker by name; ``window`` takes ``size`` and ``overlap``."""


@dataclass(frozen=True)
class ChunkedCorpus:
    """Chunks of a corpus and the document each came from.

    Attributes:
        texts: ``(C,)`` chunk texts (with the title in front when asked).
        chunk_doc: ``(C,)`` the document index of each chunk, non-decreasing; every document
            has at least one chunk.
        n_docs: documents in the corpus.
    """

    texts: list[str]
    chunk_doc: np.ndarray
    n_docs: int


def chunk_corpus(titles: Sequence[str], texts: Sequence[str], method: str,
                 title_in_chunks: bool = True, **kw) -> ChunkedCorpus:
    """Chunk every document with ``CHUNKERS[method]``; ``title + " " + chunk`` if asked.

    A document whose text gives no chunk (an empty abstract) gets one chunk: its title.
    """
    if method not in CHUNKERS:
        raise ValueError(f"unknown chunker {method!r}: use one of {sorted(CHUNKERS)}")
    out, owner = [], []
    for d, (title, text) in enumerate(zip(titles, texts)):
        chunks = CHUNKERS[method](text, **kw) or [""]
        for c in chunks:
            out.append(f"{title} {c}".strip() if title_in_chunks else (c or title))
            owner.append(d)
    return ChunkedCorpus(out, np.asarray(owner, dtype=np.int64), len(texts))


def max_per_doc(chunk_scores: np.ndarray, chunk_doc: np.ndarray) -> np.ndarray:
    """``(n, C)`` chunk scores -> ``(n, D)`` document scores, each the best of its chunks."""
    starts = np.flatnonzero(np.r_[True, np.diff(chunk_doc) != 0])      # first chunk of each doc
    return np.maximum.reduceat(chunk_scores, starts, axis=1)


class HierarchicalIndex:
    """BM25 at several levels of one corpus: documents, then finer units (sections, sentences).

    Args:
        doc_tokens: the terms of each whole document (the coarse level).
        levels: ``{name: (unit terms, unit -> document index)}``, finer levels, each unit's
            document index non-decreasing and every document with at least one unit.
        params: BM25 parameters (each level has its own statistics: idf and average length are
            those of its units).
    """

    def __init__(self, doc_tokens: Sequence[Sequence[str]],
                 levels: dict[str, tuple[Sequence[Sequence[str]], np.ndarray]],
                 params: BM25Params = BM25Params()) -> None:
        self.docs = BM25Index.build(doc_tokens, params)
        self.levels = {name: (BM25Index.build(units, params), np.asarray(owner))
                       for name, (units, owner) in levels.items()}
        # (units, V) unit-major copies: the rows of the candidates' units are sliced per query
        self.unit_major = {name: index.weights.T.tocsr() for name, (index, _) in self.levels.items()}
        # unit ranges per document: units of doc d are starts[d]:starts[d + 1]
        self.ranges = {name: np.searchsorted(owner, np.arange(self.docs.n_docs + 1))
                       for name, (_, owner) in self.levels.items()}

    def evidence(self, queries: Sequence[Sequence[str]], coarse_k: int
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], int]:
        """The coarse step and every finer level's best unit within each candidate.

        Returns:
            ``(candidates, doc_scores, best, units_scored)``: the top ``coarse_k`` documents per
            query ``(n, K)`` and their document scores ``(n, K)``; per level, the best unit score
            of each candidate ``(n, K)``; and how many finer units were scored in all (the work
            the coarse step saves: a flat search scores every unit for every query).
        """
        cand, doc_scores = self.docs.search(queries, min(coarse_k, self.docs.n_docs))   # (n, K)
        best, units_scored = {}, 0
        for name, (index, _) in self.levels.items():
            starts, by_unit = self.ranges[name], self.unit_major[name]
            qm = index.query_matrix(queries)                                     # (n, V_l)
            level_best = np.zeros(cand.shape)
            for i in range(len(queries)):
                lo, hi = starts[cand[i]], starts[cand[i] + 1]                    # (K,) unit ranges
                units = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)])
                s = (by_unit[units] @ qm[i].T).toarray()[:, 0]                    # (units,)
                units_scored += units.size
                level_best[i] = np.maximum.reduceat(s, np.r_[0, np.cumsum(hi - lo)[:-1]])
            best[name] = level_best
        return cand, doc_scores, best, units_scored

    @staticmethod
    def combine(cand: np.ndarray, doc_scores: np.ndarray, best: dict[str, np.ndarray],
                weights: dict[str, float], k: int, doc_weight: float = 1.0
                ) -> tuple[np.ndarray, np.ndarray]:
        """Rank the candidates by ``doc_weight * doc + sum_l weights[l] * best[l]``; top ``k``."""
        total = doc_weight * doc_scores
        for name, w in weights.items():
            total = total + w * best[name]
        order = np.lexsort((cand, -total), axis=1)[:, :k]
        return np.take_along_axis(cand, order, axis=1), np.take_along_axis(total, order, axis=1)

    def search(self, queries: Sequence[Sequence[str]], k: int, coarse_k: int,
               weights: dict[str, float], doc_weight: float = 1.0
               ) -> tuple[np.ndarray, np.ndarray, int]:
        """Coarse to fine: the top ``coarse_k`` documents, rescored with their best units.

        Returns:
            ``(indices, scores, units_scored)``: the top ``k`` documents per query (best first,
            ``(n, min(k, coarse_k))``) and the finer units scored (:meth:`evidence`).
        """
        sub = HierarchicalIndex.__new__(HierarchicalIndex)
        sub.docs = self.docs
        keep = [n for n, w in weights.items() if w != 0]
        sub.levels = {n: self.levels[n] for n in keep}
        sub.ranges = {n: self.ranges[n] for n in keep}
        sub.unit_major = {n: self.unit_major[n] for n in keep}
        cand, doc_scores, best, scored = sub.evidence(queries, coarse_k)
        idx, val = self.combine(cand, doc_scores, best, {n: weights[n] for n in keep}, k, doc_weight)
        return idx, val, scored


def doc_scores_maxp(index: BM25Index, chunk_doc: np.ndarray, queries: Sequence[Sequence[str]],
                    batch_size: int = 128) -> np.ndarray:
    """``(n_queries, D)`` document scores of a chunk index: each document's best chunk (MaxP)."""
    out = [max_per_doc(index.scores(queries[s:s + batch_size]), chunk_doc)
           for s in range(0, len(queries), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, int(chunk_doc.max()) + 1))
