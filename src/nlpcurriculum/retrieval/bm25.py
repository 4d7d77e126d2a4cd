"""BM25 from scratch over a scipy sparse term matrix: three variants, batched search, persistence.

For a query ``q`` (terms with repeats) and a document ``d`` of length ``|d|`` tokens, in a corpus
of ``N`` documents with mean length ``avgdl``, where term ``t`` occurs ``tf`` times in ``d`` and
in ``df`` documents::

    score(q, d) = sum over the terms t of q (repeats counted) of  idf(t) * tf_part(t, d)
    norm        = k1 * (1 - b + b * |d| / avgdl)

=============  ==============================================  ============================
variant        idf(t)                                          tf_part(t, d)
=============  ==============================================  ============================
``lucene``     ``log(1 + (N - df + 0.5) / (df + 0.5))``        ``tf / (tf + norm)``
``robertson``  ``log(max(1, (N - df + 0.5) / (df + 0.5)))``    ``tf / (tf + norm)``
``okapi``      ``log(N - df + 0.5) - log(df + 0.5)``; below 0  ``tf (k1 + 1) / (tf + norm)``
               it becomes ``epsilon * mean idf`` (rank-bm25)
=============  ==============================================  ============================

``lucene`` and ``robertson`` are bm25s' ``method="lucene"`` / ``"robertson"`` (Kamphuis et al.
2020 drop the constant ``k1 + 1``, which changes no ranking); ``okapi`` is rank-bm25's
``BM25Okapi`` with its idf floor. ``tests/retrieval/test_bm25.py`` checks every score against
those libraries (<= 1e-6) and the top 10 documents per query.

The index stores the per-(term, document) weight ``w[t, d] = idf(t) * tf_part(t, d)`` as a
``(V, N)`` CSR matrix (only pairs with ``tf > 0``: eager scoring, as bm25s does), so scoring a
batch of queries is one sparse product ``Q @ W``: ``Q`` is the ``(n_queries, V)`` matrix of query
term counts. Terms not in the vocabulary score nothing.

Hand-worked example (checked in the tests): documents ``["a b", "b c c"]`` (as terms), Lucene,
k1 = 1.2, b = 0.75: N = 2, avgdl = 2.5; ``c`` has df = 1, idf = log(1 + 1.5/1.5) = log 2 =
0.6931; in document 1, tf = 2, |d| = 3, norm = 1.2 (0.25 + 0.75 * 1.2) = 1.38, tf_part = 2/3.38
= 0.5917; so score("c", doc 1) = 0.4101 and score("c", doc 0) = 0.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

__all__ = ["BM25Index", "BM25Params", "FORMAT", "VARIANTS", "VERSION", "idf_weights", "topk"]

VARIANTS = ("lucene", "robertson", "okapi")
FORMAT = "nlpcurriculum.bm25"
VERSION = 1


@dataclass(frozen=True)
class BM25Params:
    """The scoring function.

    Attributes:
        k1: term-frequency saturation (larger: repeats count for longer).
        b: length normalisation (0: none, 1: full).
        variant: one of :data:`VARIANTS`.
        epsilon: ``okapi`` only: a negative idf becomes ``epsilon`` x the mean idf.
        dtype: ``"float64"`` or ``"float32"`` weights (float32 halves memory and is faster; its
            scores agree with float64 to ~1e-6 relative).
    """

    k1: float = 1.2
    b: float = 0.75
    variant: str = "lucene"
    epsilon: float = 0.25
    dtype: str = "float64"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown BM25 variant {self.variant!r}: use one of {VARIANTS}")
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={self.k1}, b={self.b}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"BM25 dtype must be float32 or float64, got {self.dtype!r}")


def idf_weights(df: np.ndarray, n_docs: int, params: BM25Params) -> np.ndarray:
    """The idf of every term from its document frequency ``df`` (shape ``(V,)``), per variant."""
    df = df.astype(np.float64)
    if params.variant == "lucene":
        return np.log1p((n_docs - df + 0.5) / (df + 0.5))
    if params.variant == "robertson":
        return np.log(np.maximum(1.0, (n_docs - df + 0.5) / (df + 0.5)))
    idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
    floor = params.epsilon * idf.mean() if idf.size else 0.0
    return np.where(idf < 0, floor, idf)


def topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of each row of ``scores`` ``(n, D)``: best first, ties by index.

    Returns:
        ``(indices, values)``, both ``(n, min(k, D))``.
    """
    n, n_docs = scores.shape
    k = min(k, n_docs)
    if k < n_docs:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]          # (n, k), unordered
    else:
        part = np.broadcast_to(np.arange(n_docs), (n, n_docs))
    vals = np.take_along_axis(scores, part, axis=1)
    # order by score descending, then by index ascending (lexsort: last key is the primary)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(vals, order, axis=1)


class BM25Index:
    """An eager BM25 index: the ``(V, N)`` weight matrix of a tokenised corpus.

    Build with :meth:`build`; search with :meth:`search` (top k) or :meth:`scores` (all
    documents); persist with :meth:`save` / :meth:`load`.

    Attributes:
        params: the scoring function.
        vocab: term -> row of ``weights``.
        weights: ``(V, N)`` CSR, ``w[t, d]`` as in the module docstring.
        doc_len: ``(N,)`` tokens per document.
        idf: ``(V,)`` the idf of each term.
        doc_ids: the documents' ids (default ``"0" .. "N-1"``).
    """

    def __init__(self, params: BM25Params, vocab: dict[str, int], weights: sp.csr_matrix,
                 doc_len: np.ndarray, idf: np.ndarray, doc_ids: Sequence[str]) -> None:
        self.params, self.vocab, self.weights = params, vocab, weights
        self.doc_len, self.idf, self.doc_ids = doc_len, idf, list(doc_ids)

    @property
    def n_docs(self) -> int:
        return self.weights.shape[1]

    @classmethod
    def build(cls, corpus: Sequence[Sequence[str]], params: BM25Params = BM25Params(),
              doc_ids: Sequence[str] | None = None) -> "BM25Index":
        """Index ``corpus``, one list of terms per document (e.g. :class:`~.text.Analyzer`)."""
        n_docs = len(corpus)
        if n_docs == 0:
            raise ValueError("cannot index an empty corpus")
        vocab: dict[str, int] = {}
        term_ids = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in corpus]
        doc_len = np.array([len(doc) for doc in term_ids], dtype=np.int64)           # (N,)
        rows = np.repeat(np.arange(n_docs), doc_len)
        cols = np.fromiter((t for doc in term_ids for t in doc), dtype=np.int64, count=int(doc_len.sum()))
        # (N, V) term counts: duplicates of a (doc, term) pair are summed by the conversion
        tf = sp.csr_matrix((np.ones(cols.size), (rows, cols)), shape=(n_docs, len(vocab)))
        tf.sum_duplicates()
        df = np.bincount(tf.indices, minlength=len(vocab))                           # (V,)
        idf = idf_weights(df, n_docs, params)
        avgdl = doc_len.sum() / n_docs
        norm = params.k1 * (1 - params.b + params.b * doc_len / avgdl)                # (N,)
        t = tf.data                                                                   # (nnz,)
        row_of = np.repeat(np.arange(n_docs), np.diff(tf.indptr))
        part = t / (t + norm[row_of])
        if params.variant == "okapi":
            part *= params.k1 + 1
        w = sp.csr_matrix((idf[tf.indices] * part, tf.indices, tf.indptr), shape=tf.shape)
        weights = w.T.tocsr().astype(params.dtype)                                   # (V, N)
        weights.sort_indices()
        ids = [str(i) for i in range(n_docs)] if doc_ids is None else list(doc_ids)
        if len(ids) != n_docs:
            raise ValueError(f"{len(ids)} doc ids for {n_docs} documents")
        return cls(params, vocab, weights, doc_len, idf, ids)

    def query_matrix(self, queries: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """``(n_queries, V)`` counts of each query's known terms (unknown terms dropped)."""
        vocab = self.vocab
        ids = [[vocab[t] for t in q if t in vocab] for q in queries]
        lens = np.array([len(q) for q in ids], dtype=np.int64)
        cols = np.fromiter((t for q in ids for t in q), dtype=np.int64, count=int(lens.sum()))
        rows = np.repeat(np.arange(len(ids)), lens)
        m = sp.csr_matrix((np.ones(cols.size, dtype=self.weights.dtype), (rows, cols)),
                          shape=(len(ids), len(vocab)))
        m.sum_duplicates()
        return m

    def scores(self, queries: Sequence[Sequence[str]]) -> np.ndarray:
        """``(n_queries, N)`` BM25 score of every document for every query."""
        return (self.query_matrix(queries) @ self.weights).toarray()

    def search(self, queries: Sequence[Sequence[str]], k: int = 10,
               batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """The top ``k`` documents of each query, best first (ties: lower index first).

        Queries are scored ``batch_size`` at a time (one sparse product per batch, a dense
        ``(batch, N)`` score block).

        Returns:
            ``(indices, scores)``, both ``(n_queries, min(k, N))``.
        """
        idx, vals = [], []
        for start in range(0, len(queries), batch_size):
            i, v = topk(self.scores(queries[start:start + batch_size]), k)
            idx.append(i)
            vals.append(v)
        if not idx:
            k = min(k, self.n_docs)
            return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=self.weights.dtype)
        return np.concatenate(idx), np.concatenate(vals)

    def header(self) -> dict:
        """The index's description: format, version, parameters, sizes."""
        return {"format": FORMAT, "version": VERSION, "params": asdict(self.params),
                "n_docs": self.n_docs, "n_terms": len(self.vocab), "nnz": int(self.weights.nnz),
                "avgdl": float(self.doc_len.mean())}

    def save(self, path: str | Path) -> None:
        """Write the index to ``path`` (``.npz``) and a readable ``path.json`` sidecar, atomically."""
        from nlpcurriculum.io import atomic_path, write_json

        path = Path(path)
        terms = np.array(sorted(self.vocab, key=self.vocab.__getitem__), dtype=str)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(
                    fh, header=np.array(json.dumps(self.header())), terms=terms,
                    data=self.weights.data, indices=self.weights.indices,
                    indptr=self.weights.indptr, doc_len=self.doc_len, idf=self.idf,
                    doc_ids=np.array(self.doc_ids, dtype=str))
        write_json(path.with_name(path.name + ".json"), self.header())

    @classmethod
    def load(cls, path: str | Path) -> "BM25Index":
        """Read an index :meth:`save` wrote.

        Raises:
            FileNotFoundError: no such file.
            ValueError: not a BM25 index of this format and version (naming the file).
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: BM25 index not found")
        try:
            z = np.load(path, allow_pickle=False)
            header = json.loads(str(z["header"]))
        except Exception as exc:  # a damaged or foreign file: zip, key or JSON errors
            raise ValueError(f"{path}: not a readable BM25 index ({exc})") from None
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise ValueError(f"{path}: format {header.get('format')!r} version "
                             f"{header.get('version')!r}, expected {FORMAT!r} version {VERSION}")
        params = BM25Params(**header["params"])
        terms = z["terms"].tolist()
        weights = sp.csr_matrix((z["data"], z["indices"], z["indptr"]),
                                shape=(len(terms), header["n_docs"]))
        return cls(params, {t: i for i, t in enumerate(terms)}, weights, z["doc_len"], z["idf"],
                   z["doc_ids"].tolist())
