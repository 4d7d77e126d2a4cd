"""Count-based word vectors: positive PMI of window co-occurrences, reduced by a truncated SVD.

The count-based baseline word2vec is measured against (Levy, Goldberg & Dagan 2015, "Improving
Distributional Similarity with Lessons Learned from Word Embeddings", TACL; Levy & Goldberg 2014,
"Neural Word Embedding as Implicit Matrix Factorization": skip-gram with negative sampling
factorises a shifted PMI matrix). Steps:

1. **Counts.** ``C[w, c]`` = how often context word ``c`` occurs within ``window`` words of ``w``
   in the same sentence (both directions, every offset weighted 1; word2vec's dynamic window
   would weight offset ``d`` by ``(W - d + 1) / W``).
2. **PPMI** with context distribution smoothing ``alpha`` (0.75, the noise distribution of
   word2vec's negative sampling): ``P(w, c) = C[w, c] / sum(C)``, ``P(w) = sum_c C[w, c] / sum(C)``,
   ``P_alpha(c) = (sum_w C[w, c])^alpha / sum_c' (sum_w C[w, c'])^alpha``, and
   ``PPMI = max(0, log(P(w, c) / (P(w) P_alpha(c))))``; a pair never seen scores 0.
3. **SVD.** ``PPMI = U S V^T``; the vectors are ``U_d S_d^eig`` (``eig = 0.5``, symmetric
   weighting, as the paper recommends over ``eig = 1``), ``d = dim``.

Dimension names: ``V`` vocabulary, ``D`` vector size.

Hand-worked example (``window=1``, ``alpha=1``, sentences ``["a b", "a c"]``): pairs (a,b), (b,a),
(a,c), (c,a), so ``C = [[0,1,1],[1,0,0],[1,0,0]]`` over (a, b, c), ``sum(C) = 4``, ``P(a) = 1/2``,
``P(b) = P(c) = 1/4``; ``PMI(a, b) = log((1/4) / (1/2 * 1/4)) = log 2``, likewise ``(b, a)``,
``(a, c)``, ``(c, a)``; every other cell is an unseen pair, 0. So ``PPMI = log 2 * C``: ``b`` and
``c`` get the same row, cosine 1 (they share their only context), while ``a`` and ``b`` share none
(cosine 0), although they occur side by side: second-order, not first-order, similarity.

Left out: sparse matrices and randomised SVD (the vocabulary is dense-sized here, at most
:data:`MAX_VOCAB` words), subsampling, dirty subsampling and the shift ``log k`` of SPPMI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from nlpcurriculum.embeddings.vectors import WordVectors
from nlpcurriculum.embeddings.vocab import Vocabulary

__all__ = ["MAX_VOCAB", "PPMIConfig", "cooccurrence_counts", "ppmi_matrix", "ppmi_svd_vectors"]

MAX_VOCAB = 8000
"""Largest vocabulary the dense ``V x V`` matrices are built for (8000^2 float64 = 512 MB)."""


@dataclass(frozen=True)
class PPMIConfig:
    """Options of :func:`ppmi_svd_vectors`.

    Attributes:
        dim: vector size ``D`` (at most ``V``).
        window: context words on each side.
        min_count: words seen fewer times are dropped before counting.
        alpha: context distribution smoothing exponent (1 = none).
        eig: power of the singular values in the vectors (0.5 symmetric, 1 = ``U S``, 0 = ``U``).
    """

    dim: int = 64
    window: int = 5
    min_count: int = 5
    alpha: float = 0.75
    eig: float = 0.5

    def __post_init__(self) -> None:
        for name in ("dim", "window", "min_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")


def cooccurrence_counts(ids: np.ndarray, sentence_ids: np.ndarray, vocab_size: int, window: int) -> np.ndarray:
    """``C[w, c]``: occurrences of ``c`` within ``window`` positions of ``w`` in the same sentence.

    Args:
        ids: word ids of the text, shape ``(N,)`` (from :meth:`Vocabulary.encode_sentences`).
        sentence_ids: the sentence of each position, shape ``(N,)``.
        vocab_size: ``V``.
        window: offsets ``1..window`` on each side.

    Returns:
        Symmetric float64 counts, shape ``(V, V)``.
    """
    flat = np.zeros(vocab_size * vocab_size, dtype=np.float64)  # (V * V,), row-major C
    for d in range(1, window + 1):
        same = sentence_ids[:-d] == sentence_ids[d:]  # (N - d,) pairs inside one sentence
        left, right = ids[:-d][same], ids[d:][same]
        both = np.concatenate([left * vocab_size + right, right * vocab_size + left])  # both directions
        flat += np.bincount(both, minlength=vocab_size * vocab_size)
    return flat.reshape(vocab_size, vocab_size)  # (V, V)


def ppmi_matrix(counts: np.ndarray, alpha: float = 0.75) -> np.ndarray:
    """Positive PMI of a ``(V, V)`` count matrix, contexts smoothed by ``alpha`` (module step 2)."""
    total = counts.sum()
    if total <= 0:
        raise ValueError("no co-occurrence to compute PMI from (every sentence has one word?)")
    p_w = counts.sum(axis=1, keepdims=True) / total  # (V, 1)
    ctx = counts.sum(axis=0) ** alpha  # (V,)
    p_c = (ctx / ctx.sum())[None, :]  # (1, V)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log((counts / total) / (p_w * p_c))
    return np.where(counts > 0, np.maximum(pmi, 0.0), 0.0)


def ppmi_svd_vectors(sentences: Sequence[Sequence[str]], config: PPMIConfig | None = None) -> WordVectors:
    """Word vectors ``U_d S_d^eig`` of the PPMI matrix of ``sentences`` (lists of words).

    Deterministic: no randomness anywhere (the SVD's sign per component is fixed so that each
    column of ``U`` has a positive largest entry).

    Raises:
        ValueError: no word reaches ``min_count``, or the vocabulary exceeds :data:`MAX_VOCAB`.
    """
    cfg = config or PPMIConfig()
    vocab = Vocabulary.build(sentences, cfg.min_count)
    if len(vocab) > MAX_VOCAB:
        raise ValueError(f"PPMI-SVD builds dense {len(vocab)} x {len(vocab)} matrices; at most {MAX_VOCAB} "
                         "words: raise min_count")
    ids, sent = vocab.encode_sentences(sentences)
    ppmi = ppmi_matrix(cooccurrence_counts(ids, sent, len(vocab), cfg.window), cfg.alpha)  # (V, V)
    u, s, _ = np.linalg.svd(ppmi, hermitian=False)  # u: (V, V), s: (V,)
    dim = min(cfg.dim, len(vocab))
    u, s = u[:, :dim], s[:dim]  # (V, D), (D,)
    flip = np.sign(u[np.abs(u).argmax(axis=0), np.arange(dim)])  # (D,) fix each component's sign
    return WordVectors(vocab.words, u * flip * s ** cfg.eig)
