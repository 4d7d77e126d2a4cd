"""PPMI-SVD word vectors: the module's hand-worked example, and what the SVD keeps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nlpcurriculum.embeddings.ppmi import PPMIConfig, cooccurrence_counts, ppmi_matrix, ppmi_svd_vectors
from nlpcurriculum.embeddings.vocab import Vocabulary


def test_the_docstring_example():
    sentences = [["a", "b"], ["a", "c"]]
    vocab = Vocabulary.build(sentences, min_count=1)
    assert vocab.words == ["a", "b", "c"]
    ids, sent = vocab.encode_sentences(sentences)
    counts = cooccurrence_counts(ids, sent, 3, window=1)
    np.testing.assert_array_equal(counts, [[0, 1, 1], [1, 0, 0], [1, 0, 0]])
    np.testing.assert_allclose(ppmi_matrix(counts, alpha=1.0), math.log(2) * counts, rtol=1e-12)
    v = ppmi_svd_vectors(sentences, PPMIConfig(dim=2, window=1, min_count=1, alpha=1.0))
    assert v.similarity("b", "c") == pytest.approx(1.0, abs=1e-6)  # the same only context
    assert v.similarity("a", "b") == pytest.approx(0.0, abs=1e-6)  # side by side, no shared context


def test_windows_stay_inside_sentences_and_count_every_offset():
    sentences = [["x", "y", "z"], ["z", "x"]]
    vocab = Vocabulary.build(sentences, min_count=1)
    ids, sent = vocab.encode_sentences(sentences)
    i = vocab.index
    counts = cooccurrence_counts(ids, sent, len(vocab), window=2)
    assert counts[i["x"], i["z"]] == 2  # offset 2 in the first sentence, offset 1 in the second
    assert counts[i["y"], i["y"]] == 0 and counts.sum() == 2 * 4  # (x,y) (y,z) (x,z) (z,x), both ways
    np.testing.assert_array_equal(counts, counts.T)


def test_ppmi_is_positive_and_zero_where_nothing_was_seen():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 3, size=(6, 6)).astype(float)
    counts = counts + counts.T
    ppmi = ppmi_matrix(counts)
    assert (ppmi >= 0).all() and (ppmi[counts == 0] == 0).all()
    with pytest.raises(ValueError, match="no co-occurrence"):
        ppmi_matrix(np.zeros((2, 2)))


def test_vectors_are_deterministic_and_sized():
    sentences = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "sat", "on", "the", "rug"]] * 3
    a = ppmi_svd_vectors(sentences, PPMIConfig(dim=3, window=2, min_count=1))
    b = ppmi_svd_vectors(sentences, PPMIConfig(dim=3, window=2, min_count=1))
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert a.vectors.shape == (7, 3)
    assert a.similarity("cat", "dog") > a.similarity("cat", "on")  # same contexts vs neighbours
    with pytest.raises(ValueError, match="dim must be >= 1"):
        PPMIConfig(dim=0)
