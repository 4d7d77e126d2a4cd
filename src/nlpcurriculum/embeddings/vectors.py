"""Word vectors and the geometry used to read them: cosine similarity, neighbours, analogies.

A :class:`WordVectors` is a frozen table ``word -> vector``. It answers the questions word2vec
(arXiv:1301.3781) made famous:

* ``similarity(a, b)``: cosine of the angle between the two vectors.
* ``most_similar(w, k)``: the ``k`` nearest words by cosine.
* ``analogy(a, b, c)``: "a is to b as c is to ?", answered with 3CosAdd: the word ``x`` (not one
  of a, b, c) maximising ``cos(x, b - a + c)`` over unit-normalised vectors (arXiv:1301.3781
  section 4.1; the normalisation before the offset follows Levy & Goldberg 2014).

It also holds the two baselines of the "one-hot vs learned embeddings" item: :func:`one_hot_vectors`
(the identity matrix: every pair of distinct words is orthogonal, cosine distance exactly 1, so
one-hot vectors know nothing about which words are alike) and :func:`random_vectors` (an untrained
embedding table: distances are random and near 1 in high dimension).

Dimension names: ``V`` words, ``D`` vector size, ``n`` words asked about.

Left out: 3CosMul and other analogy objectives; approximate nearest-neighbour search (the
brute-force ``(n, V)`` product is exact and small here).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from nlpcurriculum.io import atomic_path

__all__ = ["WordVectors", "one_hot_vectors", "random_vectors", "cosine_distance_matrix", "pca_2d"]

FORMAT = "nlpcurriculum.word_vectors"
VERSION = 1


class WordVectors:
    """An immutable ``word -> vector`` table.

    Args:
        words: the vocabulary, one entry per row of ``vectors``; unique.
        vectors: float array of shape ``(V, D)``.
    """

    def __init__(self, words: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.array(vectors, dtype=np.float32)  # a copy: it is made read-only below
        words = list(words)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"vectors must have shape (len(words), D) = ({len(words)}, D), "
                             f"got {vectors.shape}")
        if len(set(words)) != len(words):
            raise ValueError("words must be unique")
        self.words = words
        self.vectors = vectors
        self.vectors.setflags(write=False)
        self.index = {w: i for i, w in enumerate(words)}
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        # A zero vector has no direction; leave it zero so its cosines are 0, not NaN.
        self._unit = vectors / np.where(norms == 0, 1.0, norms)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self._id(word)]

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def _id(self, word: str) -> int:
        try:
            return self.index[word]
        except KeyError:
            raise KeyError(f"word {word!r} is not in the vocabulary ({len(self)} words)") from None

    def unit(self, words: Sequence[str] | None = None) -> np.ndarray:
        """Unit-normalised vectors of ``words`` (all words if ``None``), shape ``(n, D)``."""
        if words is None:
            return self._unit
        return self._unit[[self._id(w) for w in words]]

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words, in ``[-1, 1]``."""
        return float(self._unit[self._id(a)] @ self._unit[self._id(b)])

    def _nearest(self, query: np.ndarray, exclude: set[int], k: int) -> list[tuple[str, float]]:
        norm = np.linalg.norm(query)
        scores = self._unit @ (query / norm if norm > 0 else query)  # (V,)
        if exclude:
            scores[list(exclude)] = -np.inf
        k = min(k, len(self) - len(exclude))
        top = np.argpartition(-scores, k - 1)[:k] if k > 0 else np.array([], dtype=int)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.words[i], float(scores[i])) for i in top]

    def most_similar(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` words with the highest cosine similarity to ``word`` (itself excluded)."""
        i = self._id(word)
        return self._nearest(self._unit[i], {i}, k)

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]:
        """Answer "a is to b as c is to ?" with 3CosAdd; a, b and c are never answers.

        Returns:
            The ``k`` best ``(word, cosine to b - a + c)`` pairs, best first.
        """
        ia, ib, ic = self._id(a), self._id(b), self._id(c)
        target = self._unit[ib] - self._unit[ia] + self._unit[ic]  # (D,)
        return self._nearest(target, {ia, ib, ic}, k)

    def save(self, path: str | os.PathLike) -> None:
        """Write an ``.npz`` with a format/version header, atomically."""
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, format=np.array(FORMAT), version=np.array(VERSION),
                         words=np.array(self.words, dtype=str), vectors=self.vectors)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "WordVectors":
        """Read a file written by :meth:`save`.

        Raises:
            FileNotFoundError: the file does not exist.
            ValueError: the file is not a word-vector file of a known version, or is corrupt.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: word-vector file not found")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except Exception as exc:  # not a zip, truncated, pickled objects...
            raise ValueError(f"{path}: corrupt word-vector file ({type(exc).__name__}: {exc})") from exc
        fmt = str(arrays["format"]) if "format" in arrays else None
        if fmt != FORMAT:
            raise ValueError(f"{path}: not a word-vector file (format {fmt!r}, expected {FORMAT!r})")
        version = int(arrays["version"]) if "version" in arrays else None
        if version != VERSION:
            raise ValueError(f"{path}: word-vector format version {version} is not supported "
                             f"(this code reads version {VERSION})")
        if "words" not in arrays or "vectors" not in arrays:
            raise ValueError(f"{path}: corrupt word-vector file (missing 'words' or 'vectors')")
        return cls([str(w) for w in arrays["words"]], arrays["vectors"])


def one_hot_vectors(words: Sequence[str]) -> WordVectors:
    """One-hot vectors: word ``i`` is the ``i``-th unit vector of ``R^V`` (the identity matrix).

    Every pair of distinct words has cosine similarity exactly 0 (distance 1): one-hot vectors encode
    identity and nothing else, so "king" is as far from "queen" as from "apples".
    """
    return WordVectors(words, np.eye(len(words), dtype=np.float32))


def random_vectors(words: Sequence[str], dim: int, seed: int = 0) -> WordVectors:
    """Gaussian random vectors: what an embedding table knows before training."""
    rng = np.random.default_rng(seed)
    return WordVectors(words, rng.standard_normal((len(words), dim)).astype(np.float32))


def cosine_distance_matrix(vectors: WordVectors, words: Sequence[str]) -> np.ndarray:
    """``1 - cos(w_i, w_j)`` for every pair of ``words``, shape ``(n, n)``; 0 on the diagonal
    (for non-zero vectors), in ``[0, 2]``."""
    unit = vectors.unit(words)  # (n, D)
    dist = 1.0 - unit @ unit.T  # (n, n)
    np.fill_diagonal(dist, np.where(np.linalg.norm(unit, axis=1) > 0, 0.0, 1.0))
    return np.clip(dist, 0.0, 2.0)


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Project rows of ``x`` (shape ``(n, D)``) onto their first two principal components.

    Centre the rows, take the SVD ``X = U S V^T``; the projection is ``X V[:, :2] = U[:, :2] S[:2]``.
    Each component's sign is fixed so its largest-magnitude loading is positive (SVD signs are
    arbitrary; this makes plots reproducible).

    Returns:
        float64 array of shape ``(n, 2)``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need a (n >= 2, D) array, got shape {x.shape}")
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)  # vt: (min(n, D), D)
    components = vt[:2]  # (2, D)
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    components = components * np.where(signs == 0, 1.0, signs)[:, None]
    out = centred @ components.T  # (n, 2)
    if out.shape[1] < 2:  # D == 1: pad the missing axis with zeros
        out = np.hstack([out, np.zeros((len(out), 2 - out.shape[1]))])
    return out
