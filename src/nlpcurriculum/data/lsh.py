"""Locality-sensitive hashing over MinHash signatures, and near-duplicate removal built on it.

Implements the banding technique of Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets*,
ch. 3.4 (http://www.mmds.org/), as used for corpus deduplication by e.g. Lee et al. 2021,
"Deduplicating Training Data Makes Language Models Better" (arXiv:2107.06499).

Banding. Cut each P-long signature into b bands of r rows (b * r <= P). Two documents become a
*candidate pair* when all r values of at least one band agree. If their Jaccard similarity is s,
one band agrees with probability s^r, so

    P(candidate | s) = 1 - (1 - s^r)^b,

an S-shaped curve that rises steepest near s ~ (1/b)^(1/r). Choosing (b, r) for a threshold t
trades the false-positive area (the curve below t) against the false-negative area (one minus the
curve above t); :func:`optimal_params` minimises their weighted sum over every (b, r) with
b * r <= P, as datasketch's ``MinHashLSH`` does. The integrand is a polynomial in s of degree
b * r <= P, so Gauss-Legendre quadrature with ceil((P + 1) / 2) nodes integrates it *exactly*
(n nodes are exact up to degree 2n - 1): no step-size question at all.

Buckets. Within a band, documents with equal band values fall in one bucket (we hash the r values
to 64 bits and sort; a false 64-bit collision among N = 10^5 documents has probability ~ 10^-10
and would only add a candidate pair). A bucket of m documents implies m(m-1)/2 pairs, which is
quadratic for a corpus of copies, but clustering needs only connectivity: linking every member to
the bucket's first member (a "star", m - 1 edges) gives the same connected components. Union-find
(with path halving and union by size) turns the edges into clusters.

Deduplication (:func:`deduplicate`): exact duplicates first (SHA-1 of the text; cheap, and it
makes a corpus of copies trivial), then MinHash + LSH on one representative per exact group, then
a keep-one policy per cluster. Every dropped document records why and which document it duplicates.

Dimension legend: N documents, P permutations, b bands, r rows per band, E edges.

Left out: LSH Forest / LSH Ensemble (containment), persistent or distributed indices, suffix-array
exact-substring dedup (Lee et al. 2021), and semantic dedup with embeddings (SemDeDup).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from nlpcurriculum.data.minhash import MinHashConfig, MinHasher, estimate_jaccard, fmix64, to_text

#: Reason codes of :class:`DedupResult` (None means kept).
EXACT_DUPLICATE = "exact_duplicate"
NEAR_DUPLICATE = "near_duplicate"


# ---------------------------------------------------------------------------------------------
# The S-curve and the choice of (b, r)
# ---------------------------------------------------------------------------------------------


def s_curve(s: np.ndarray | float, bands: int, rows: int) -> np.ndarray | float:
    """Theoretical probability that a pair of Jaccard similarity ``s`` becomes a candidate.

    P(candidate | s) = 1 - (1 - s^r)^b. Example: b = 20, r = 5 at s = 0.8 gives
    1 - (1 - 0.32768)^20 = 0.99964, at s = 0.3 gives 1 - (1 - 0.00243)^20 = 0.04749.
    """
    s = np.asarray(s, dtype=np.float64)
    out = 1.0 - (1.0 - s**rows) ** bands
    return float(out) if out.ndim == 0 else out


def _gauss_legendre(lo: float, hi: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of n-point Gauss-Legendre quadrature on [lo, hi]."""
    x, w = np.polynomial.legendre.leggauss(n)
    half = 0.5 * (hi - lo)
    return lo + half * (x + 1.0), half * w


def lsh_error_areas(threshold: float, bands: int, rows: int) -> tuple[float, float]:
    """False-positive and false-negative areas of the S-curve around ``threshold``.

    FP = integral_0^t P(candidate | s) ds, FN = integral_t^1 (1 - P(candidate | s)) ds.
    """
    n = (bands * rows) // 2 + 1  # exact for the degree-(b*r) polynomial integrand
    xs, ws = _gauss_legendre(0.0, threshold, n)
    fp = float(np.dot(ws, s_curve(xs, bands, rows)))
    xs, ws = _gauss_legendre(threshold, 1.0, n)
    fn = float(np.dot(ws, 1.0 - s_curve(xs, bands, rows)))
    return fp, fn


def optimal_params(
    threshold: float, num_perm: int, weights: tuple[float, float] = (0.5, 0.5)
) -> tuple[int, int]:
    """(bands, rows) minimising w_fp * FP + w_fn * FN over all b * r <= num_perm.

    Same search space, objective and tie-breaking (first minimum, b ascending then r ascending)
    as datasketch's ``MinHashLSH``; the quadrature is exact rather than adaptive.

    Args:
        threshold: Jaccard threshold t in (0, 1).
        num_perm: signature length P.
        weights: (false-positive weight, false-negative weight).

    Returns:
        (b, r).
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if num_perm < 2:
        raise ValueError(f"num_perm must be >= 2, got {num_perm}")
    w_fp, w_fn = weights
    n = num_perm // 2 + 1
    lo_x, lo_w = _gauss_legendre(0.0, threshold, n)  # (n,)
    hi_x, hi_w = _gauss_legendre(threshold, 1.0, n)
    best, best_err = (0, 0), np.inf
    for b in range(1, num_perm + 1):
        r = np.arange(1, num_perm // b + 1, dtype=np.float64)[:, None]  # (n_r, 1)
        fp = ((1.0 - (1.0 - lo_x**r) ** b) @ lo_w)  # (n_r,)
        fn = (((1.0 - hi_x**r) ** b) @ hi_w)
        err = w_fp * fp + w_fn * fn
        i = int(np.argmin(err))
        # A strict '<' with a relative tolerance keeps the first minimum despite rounding.
        if err[i] < best_err * (1.0 - 1e-12):
            best, best_err = (b, i + 1), float(err[i])
    return best


# ---------------------------------------------------------------------------------------------
# Bands, buckets, candidate pairs
# ---------------------------------------------------------------------------------------------


def band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Hash each band of each signature to one 64-bit key.

    Args:
        signatures: (N, P) uint32.

    Returns:
        (N, b) uint64; equal band values give equal keys.
    """
    n, p = signatures.shape
    if bands * rows > p:
        raise ValueError(f"bands * rows = {bands * rows} exceeds signature length {p}")
    keys = np.empty((n, bands), dtype=np.uint64)  # (N, b)
    for band in range(bands):
        # One band at a time keeps temporaries at (N,): a (N, b, r) uint64 copy of the signatures
        # would be 100 MB for 100k documents.
        h = np.full(n, 0x243F6A8885A308D3, dtype=np.uint64)
        for j in range(band * rows, (band + 1) * rows):
            h = fmix64(h ^ signatures[:, j].astype(np.uint64))  # chained: order-sensitive
        keys[:, band] = h
    return keys


def bucket_edges(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Star edges linking every document to the first document of each band bucket it shares.

    Returns:
        (E, 2) int64 pairs (i, leader) with leader < i, deduplicated. Their connected components
        equal those of all candidate pairs.
    """
    keys = band_hashes(signatures, bands, rows)  # (N, b)
    edges = []
    for band in range(bands):
        order = np.argsort(keys[:, band], kind="stable")  # ascending doc index within a key
        k = keys[order, band]
        new_bucket = np.r_[True, k[1:] != k[:-1]]  # (N,)
        leader = order[np.maximum.accumulate(np.where(new_bucket, np.arange(len(k)), 0))]
        member = ~new_bucket
        edges.append(np.stack([order[member], leader[member]], axis=1))
    if not edges:
        return np.zeros((0, 2), dtype=np.int64)
    e = np.concatenate(edges).astype(np.int64)  # (E, 2)
    return np.unique(e, axis=0) if e.size else e.reshape(0, 2)


def candidate_pairs(
    signatures: np.ndarray, bands: int, rows: int, max_pairs: int = 10_000_000
) -> set[tuple[int, int]]:
    """All candidate pairs (i < j) that share at least one band bucket.

    Quadratic in bucket size; meant for small corpora and for measuring the S-curve.

    Raises:
        ValueError: the buckets imply more than ``max_pairs`` pairs.
    """
    keys = band_hashes(signatures, bands, rows)
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        _, inverse, counts = np.unique(keys[:, band], return_inverse=True, return_counts=True)
        if int((counts * (counts - 1) // 2).sum()) + len(pairs) > max_pairs:
            raise ValueError(
                f"more than {max_pairs} candidate pairs; use bucket_edges for clustering"
            )
        for g in np.flatnonzero(counts > 1):
            members = np.flatnonzero(inverse == g)
            members = members.tolist()
            pairs.update((a, b) for ai, a in enumerate(members) for b in members[ai + 1 :])
    return pairs


def shares_a_band(sig_a: np.ndarray, sig_b: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Whether each pair (sig_a[i], sig_b[i]) agrees on all rows of at least one band.

    Args:
        sig_a, sig_b: (n, P) signatures of the two sides of n pairs.

    Returns:
        (n,) bool.
    """
    n = sig_a.shape[0]
    eq = (sig_a[:, : bands * rows] == sig_b[:, : bands * rows]).reshape(n, bands, rows)  # (n, b, r)
    return eq.all(axis=2).any(axis=1)


def empirical_s_curve(
    similarity: np.ndarray, collided: np.ndarray, bins: int | np.ndarray = 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Measured P(candidate | s): the fraction of pairs in each similarity bin that collided.

    Args:
        similarity: (n,) true Jaccard similarity of each pair.
        collided: (n,) whether the pair became a candidate (e.g. :func:`shares_a_band`).
        bins: number of equal-width bins on [0, 1] or explicit edges.

    Returns:
        centers (n_bins,), rate (n_bins,) (NaN for empty bins), counts (n_bins,).
    """
    edges = np.linspace(0.0, 1.0, bins + 1) if np.isscalar(bins) else np.asarray(bins, dtype=float)
    idx = np.clip(np.searchsorted(edges, similarity, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(idx, minlength=len(edges) - 1)
    hits = np.bincount(idx, weights=np.asarray(collided, dtype=float), minlength=len(edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
    return 0.5 * (edges[:-1] + edges[1:]), rate, counts


# ---------------------------------------------------------------------------------------------
# Union-find
# ---------------------------------------------------------------------------------------------


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size (near-constant per op)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving: point to the grandparent
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return ra

    def labels(self) -> np.ndarray:
        """(n,) int64: the smallest member of each element's set (a canonical cluster id)."""
        n = len(self.parent)
        roots = np.fromiter((self.find(i) for i in range(n)), dtype=np.int64, count=n)
        smallest = np.full(n, n, dtype=np.int64)
        np.minimum.at(smallest, roots, np.arange(n))
        return smallest[roots]


def clusters_from_edges(n: int, edges: np.ndarray) -> np.ndarray:
    """Connected components of ``edges`` over n nodes, labelled by their smallest member."""
    uf = UnionFind(n)
    for a, b in np.asarray(edges, dtype=np.int64).tolist():
        uf.union(a, b)
    return uf.labels()


# ---------------------------------------------------------------------------------------------
# Deduplication
# ---------------------------------------------------------------------------------------------


@dataclass
class DedupConfig:
    """Near-duplicate removal with MinHash + LSH.

    The defaults target "duplicates are pairs with word-5-shingle Jaccard >= 0.8": the S-curve is
    centred a notch lower (0.7) so pairs just above 0.8 are still found (at t = 0.8 about one
    in seven such pairs is missed), and verification against the signature estimate removes most
    of the extra false positives that the lower threshold lets in.

    Attributes:
        threshold: Jaccard similarity t the banding is tuned for.
        bands, rows: set both to bypass :func:`optimal_params`; 0 means "choose from threshold".
        weights: (false-positive, false-negative) weights of the (b, r) search.
        exact_first: remove byte-identical documents by SHA-1 before MinHash.
        verify: drop LSH edges whose estimated Jaccard (signature agreement) is below
            ``threshold`` (fewer false positives, slightly lower recall near t). Each document
            is checked against its bucket's first member only (the star edge), not every member.
        keep: which document of a cluster survives: ``"first"`` (lowest index) or ``"longest"``
            (most characters; ties to the lowest index).
        minhash: the signature configuration.
    """

    threshold: float = 0.7
    bands: int = 0
    rows: int = 0
    weights: tuple[float, float] = (0.5, 0.5)
    exact_first: bool = True
    verify: bool = True
    keep: Literal["first", "longest"] = "first"
    minhash: MinHashConfig = field(default_factory=MinHashConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if (self.bands == 0) != (self.rows == 0) or self.bands < 0 or self.rows < 0:
            raise ValueError(
                f"bands and rows must both be 0 or both positive, got {self.bands}, {self.rows}"
            )
        if self.bands * self.rows > self.minhash.num_perm:
            raise ValueError(
                f"bands * rows = {self.bands * self.rows} exceeds num_perm {self.minhash.num_perm}"
            )
        if len(self.weights) != 2 or min(self.weights) < 0 or abs(sum(self.weights) - 1.0) > 1e-9:
            raise ValueError(
                f"weights must be two non-negative numbers summing to 1, got {self.weights}"
            )
        if self.keep not in ("first", "longest"):
            raise ValueError(f"keep must be 'first' or 'longest', got {self.keep!r}")
        self.weights = tuple(self.weights)


@dataclass
class DedupResult:
    """Outcome of :func:`deduplicate`, one entry per input document.

    Attributes:
        keep: (N,) bool.
        cluster: (N,) int64 index of the kept document of each document's cluster (itself if kept).
        reason: None for kept documents, else :data:`EXACT_DUPLICATE` or :data:`NEAR_DUPLICATE`.
        similarity: (N,) estimated Jaccard with the kept document (1.0 for exact copies, NaN for
            kept documents). Clusters are transitive, so a member can sit below the threshold.
        counts: number of documents per reason, plus ``"kept"``.
        bands, rows: the banding used.
        n_edges: LSH edges that survived (after verification).
    """

    keep: np.ndarray
    cluster: np.ndarray
    reason: list[str | None]
    similarity: np.ndarray
    counts: dict[str, int]
    bands: int
    rows: int
    n_edges: int

    def explain(self, i: int) -> str:
        """A one-line, human-readable account of document ``i``."""
        if self.keep[i]:
            size = int(np.sum(self.cluster == i))
            what = "unique" if size == 1 else f"representative of {size} documents"
            return f"doc {i}: kept ({what})"
        return (
            f"doc {i}: dropped, {self.reason[i]} of doc {int(self.cluster[i])} "
            f"(estimated Jaccard {self.similarity[i]:.2f})"
        )


def _exact_groups(texts: Sequence[str]) -> np.ndarray:
    """(N,) index of the first document with identical text."""
    first: dict[bytes, int] = {}
    out = np.empty(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        out[i] = first.setdefault(hashlib.sha1(t.encode("utf-8", "surrogatepass")).digest(), i)
    return out


def deduplicate(docs: Sequence[str | bytes], cfg: DedupConfig | None = None) -> DedupResult:
    """Find exact and near duplicates and keep one document per cluster.

    Empty documents (and any without a single shingle) never join a near-duplicate cluster: their
    signatures carry no information. They are still exact duplicates of each other when
    ``exact_first`` is on (all empty strings are identical); filters are the place to drop them.

    Args:
        docs: documents as ``str`` or UTF-8 ``bytes`` (invalid bytes follow
            ``cfg.minhash.decode_errors``).
        cfg: configuration.

    Returns:
        A :class:`DedupResult`.
    """
    cfg = cfg or DedupConfig()
    n = len(docs)
    texts = [to_text(d, cfg.minhash.decode_errors) for d in docs]
    if cfg.bands:
        b, r = cfg.bands, cfg.rows
    else:
        b, r = optimal_params(cfg.threshold, cfg.minhash.num_perm, cfg.weights)

    exact_of = _exact_groups(texts) if cfg.exact_first else np.arange(n)
    reps = np.flatnonzero(exact_of == np.arange(n))  # one document per exact group
    hasher = MinHasher(cfg.minhash)
    sig = hasher.signatures([texts[i] for i in reps])  # (n_reps, P)
    has_shingles = np.any(sig != np.uint32(0xFFFFFFFF), axis=1)
    live = np.flatnonzero(has_shingles)  # positions in reps that take part in LSH
    live_sig = sig if live.size == len(sig) else sig[live]  # avoid a copy in the common case
    edges = bucket_edges(live_sig, b, r)  # (E, 2) positions in `live`
    if cfg.verify and len(edges):
        est = estimate_jaccard(sig[live[edges[:, 0]]], sig[live[edges[:, 1]]])
        edges = edges[est >= cfg.threshold]
    # Map edges back to document indices and attach exact copies to their representative.
    copies = np.flatnonzero(exact_of != np.arange(n))
    doc_edges = np.concatenate(
        [reps[live[edges]].reshape(-1, 2), np.stack([copies, exact_of[copies]], axis=1)]
    )  # (E + n_copies, 2)
    label = clusters_from_edges(n, doc_edges)  # (N,) smallest member of the cluster

    if cfg.keep == "first":
        kept_of_label = {int(c): int(c) for c in np.unique(label)}
    else:
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n)
        order = np.lexsort((np.arange(n), -lengths))  # longest first, then lowest index
        kept_of_label = {}
        for i in order.tolist():
            kept_of_label.setdefault(int(label[i]), i)
    cluster = np.fromiter((kept_of_label[int(c)] for c in label), dtype=np.int64, count=n)
    keep = cluster == np.arange(n)

    sig_pos = np.full(n, -1, dtype=np.int64)
    sig_pos[reps] = np.arange(len(reps))
    sig_of = sig_pos[exact_of]  # (N,) row of each document's signature
    similarity = np.full(n, np.nan)
    reason: list[str | None] = [None] * n
    dropped = np.flatnonzero(~keep)
    est = estimate_jaccard(sig[sig_of[dropped]], sig[sig_of[cluster[dropped]]])
    similarity[dropped] = np.reshape(est, -1)
    for i in dropped.tolist():
        reason[i] = EXACT_DUPLICATE if exact_of[i] == exact_of[cluster[i]] else NEAR_DUPLICATE
    counts = {"kept": int(keep.sum()), EXACT_DUPLICATE: 0, NEAR_DUPLICATE: 0}
    for x in reason:
        if x is not None:
            counts[x] += 1
    return DedupResult(keep, cluster, reason, similarity, counts, b, r, int(len(edges)))


# ---------------------------------------------------------------------------------------------
# Evaluation against ground truth
# ---------------------------------------------------------------------------------------------


def _pair_count(x: np.ndarray) -> int:
    x = x.astype(np.int64)
    return int((x * (x - 1) // 2).sum())


def pairwise_cluster_scores(predicted: Sequence[int], truth: Sequence[int]) -> dict[str, float]:
    """Pairwise precision, recall and F1 of a clustering against ground truth.

    A pair of documents is a positive when both share a cluster. With contingency counts n_ij
    (documents in predicted cluster i and true cluster j): TP = sum C(n_ij, 2), predicted pairs =
    sum C(a_i, 2), true pairs = sum C(b_j, 2). O(N), no pair enumeration. With no predicted (true)
    pairs, precision (recall) is defined as 1.0.

    Example: predicted [0, 0, 0, 3], truth [0, 0, 2, 2] -> predicted pairs {01, 02, 12}, true
    pairs {01, 23}, TP = {01}: precision 1/3, recall 1/2, F1 0.4.
    """
    p = np.asarray(predicted)
    t = np.asarray(truth)
    if p.shape != t.shape:
        raise ValueError(f"predicted and truth differ in length: {p.shape} vs {t.shape}")
    _, p_idx = np.unique(p, return_inverse=True)
    _, t_idx = np.unique(t, return_inverse=True)
    _, joint = np.unique(np.stack([p_idx, t_idx]), axis=1, return_counts=True)
    tp = _pair_count(joint)
    pred_pairs = _pair_count(np.bincount(p_idx))
    true_pairs = _pair_count(np.bincount(t_idx))
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp_pairs": tp,
            "predicted_pairs": pred_pairs, "true_pairs": true_pairs}
