"""A semantic cache for repeated and near-repeated queries, with invalidation when documents change.

A retrieval service sees the same question many times, worded a little differently. An exact
cache (keyed by the query string) misses every rewording; a **semantic cache** keys entries by
the query's embedding and serves a cached result when the new query's cosine to a cached query
reaches a ``threshold`` (cf. GPTCache; Bang 2023). The threshold trades hits against *false
hits*: a served result that differs from what fresh retrieval would have returned.

**Lookup** (:meth:`SemanticCache.lookup`): cosines of the unit query vector ``q`` ``(dim,)``
against the live cached vectors ``(M, dim)``; the best one at or above the threshold is a hit.

**Invalidation.** A cached result goes stale when the corpus changes under it. Every entry keeps
the *version stamps* of the documents its result used (the top-k); the store bumps a document's
version on each update. Two rules, chosen by ``policy``:

* ``"versions"``: a hit whose stamps differ from the current versions is evicted and served as a
  miss. This catches an updated document *inside* the result, but not a document that, after its
  update, should now *enter* the top-k.
* ``"versions+bound"``: in addition, :meth:`SemanticCache.on_update` evicts every entry whose
  k-th score is not above the updated document's new score for the entry's query (one inner
  product per entry): for a retriever whose document vectors are independent of each other (a
  bi-encoder with a fixed encoder), the result of a surviving entry is then exactly the fresh
  result of its query.
* ``"none"``: no invalidation: the control that serves stale results.

Hand-worked example (the tests check it): cached unit vectors ``a = (1, 0)`` with result
``[3, 5]`` (scores ``0.9, 0.7``) and threshold 0.9; the query ``(0.96, 0.28)`` has cosine 0.96 to
``a``: a hit. After document 7 is updated to a vector whose score for ``a`` is 0.8 >= 0.7, the
``versions+bound`` cache evicts ``a`` (7 would now rank second), ``versions`` keeps it.

Dimensions: M cached entries, dim the embedding size, k the result length.

Left out: eviction by size or age (LRU/TTL), approximate search over the cache (FAISS would
serve a cache of millions), caching generated answers rather than retrieval results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["POLICIES", "CacheStats", "DocStore", "Lookup", "SemanticCache"]

POLICIES = ("none", "versions", "versions+bound")


class DocStore:
    """Unit document vectors ``(N, dim)`` with a version per document; exact inner-product search.

    The fresh retrieval a cache stands in front of: :meth:`search` is the exact top-k, and
    :meth:`update` replaces one document's vector and bumps its version.
    """

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)      # (N, dim)
        self.versions = np.zeros(len(self.vectors), dtype=np.int64)        # (N,)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(indices, scores)`` of one query ``(dim,)`` or a batch ``(n, dim)``; best
        first, ties by lower index."""
        from nlpcurriculum.retrieval.bm25 import topk

        scores = np.atleast_2d(q) @ self.vectors.T                          # (n, N)
        idx, val = topk(scores, k)
        return (idx[0], val[0]) if q.ndim == 1 else (idx, val)

    def update(self, doc: int, vector: np.ndarray) -> None:
        """Document ``doc`` now has ``vector`` (its text changed): a new version."""
        self.vectors[doc] = vector
        self.versions[doc] += 1


@dataclass
class CacheStats:
    """Counts over a cache's life: hits, misses, evictions at lookup (stale stamps) and at update."""

    hits: int = 0
    misses: int = 0
    stale_evictions: int = 0
    update_evictions: int = 0


@dataclass(frozen=True)
class Lookup:
    """One lookup: ``hit``, the cached result (``None`` on a miss), the best cosine and its entry."""

    hit: bool
    ids: np.ndarray | None
    scores: np.ndarray | None
    similarity: float
    entry: int


@dataclass
class SemanticCache:
    """Query embedding -> cached top-k result, served when the cosine reaches ``threshold``.

    Attributes:
        dim: embedding size.
        threshold: the least cosine between a query and a cached query that serves the cache.
        policy: invalidation rule, one of :data:`POLICIES`.
    """

    dim: int
    threshold: float
    policy: str = "versions+bound"
    stats: CacheStats = field(default_factory=CacheStats)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown cache policy {self.policy!r}: use one of {POLICIES}")
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a cosine in [-1, 1], got {self.threshold}")
        self._vectors = np.zeros((16, self.dim), dtype=np.float32)          # (capacity, dim)
        self._alive = np.zeros(16, dtype=bool)
        self._ids: list[np.ndarray | None] = []
        self._scores: list[np.ndarray | None] = []
        self._stamps: list[np.ndarray | None] = []

    def __len__(self) -> int:
        return int(self._alive.sum())

    def insert(self, q: np.ndarray, ids: np.ndarray, scores: np.ndarray, versions: np.ndarray) -> int:
        """Cache the result ``(ids, scores)`` (best first) of unit query ``q`` ``(dim,)``, stamped
        with the current ``versions`` ``(N,)`` of its documents; returns the entry's number."""
        n = len(self._ids)
        if n == len(self._vectors):                                         # grow by doubling
            self._vectors = np.concatenate([self._vectors, np.zeros_like(self._vectors)])
            self._alive = np.concatenate([self._alive, np.zeros_like(self._alive)])
        self._vectors[n] = q
        self._alive[n] = True
        self._ids.append(np.array(ids, dtype=np.int64))
        self._scores.append(np.array(scores, dtype=np.float32))
        self._stamps.append(np.array(versions[ids], dtype=np.int64))
        return n

    def vector(self, entry: int) -> np.ndarray:
        """The cached query vector ``(dim,)`` of ``entry``."""
        return self._vectors[entry]

    def similarities(self, q: np.ndarray) -> np.ndarray:
        """Cosines ``(entries,)`` of unit ``q`` to every entry ever inserted; evicted ones -inf."""
        n = len(self._ids)
        sims = self._vectors[:n] @ q                                        # (n,)
        return np.where(self._alive[:n], sims, -np.inf)

    def lookup(self, q: np.ndarray, versions: np.ndarray) -> Lookup:
        """Serve unit query ``q`` ``(dim,)`` from the cache if a live entry is within the threshold
        and (unless ``policy`` is ``"none"``) its stamps equal the current ``versions``."""
        sims = self.similarities(q)
        if sims.size == 0:
            self.stats.misses += 1
            return Lookup(False, None, None, float("-inf"), -1)
        best = int(np.argmax(sims))
        sim = float(sims[best])
        if sim < self.threshold:
            self.stats.misses += 1
            return Lookup(False, None, None, sim, best)
        if self.policy != "none" and not np.array_equal(versions[self._ids[best]], self._stamps[best]):
            self._evict(best)
            self.stats.stale_evictions += 1
            self.stats.misses += 1
            return Lookup(False, None, None, sim, best)
        self.stats.hits += 1
        return Lookup(True, self._ids[best], self._scores[best], sim, best)

    def on_update(self, doc: int, vector: np.ndarray) -> int:
        """Document ``doc`` changed to unit ``vector``; returns the entries evicted now.

        Under ``"versions+bound"`` an entry is evicted when ``doc`` is in its result, or when
        ``doc``'s new score for the entry's query reaches the entry's k-th score (``doc`` could
        enter the result). Under ``"versions"`` stale entries are found lazily at lookup.
        """
        if self.policy != "versions+bound":
            return 0
        n = len(self._ids)
        new_scores = self._vectors[:n] @ vector                              # (n,)
        evicted = 0
        for e in np.flatnonzero(self._alive[:n]):
            if doc in self._ids[e] or new_scores[e] >= self._scores[e][-1]:
                self._evict(int(e))
                evicted += 1
        self.stats.update_evictions += evicted
        return evicted

    def _evict(self, e: int) -> None:
        self._alive[e] = False
        self._ids[e] = self._scores[e] = self._stamps[e] = None
