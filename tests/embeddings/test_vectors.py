"""WordVectors geometry, baselines, save/load, and the evaluation metrics."""

from __future__ import annotations

import numpy as np
import pytest

from nlpcurriculum.embeddings import (
    Vocabulary,
    WordVectors,
    analogy_accuracy,
    cosine_distance_matrix,
    one_hot_vectors,
    pca_2d,
    random_vectors,
    roc_auc,
    similarity_auc,
    simple_word_tokenize,
)


def _toy() -> WordVectors:
    # A 2-D world with a "royal" axis and a "female" axis: queen = king - man + woman exactly.
    words = ["man", "woman", "king", "queen", "apple"]
    vecs = np.array([[1.0, 0.0], [1.0, 1.0], [3.0, 0.0], [3.0, 1.0], [-1.0, -3.0]])
    return WordVectors(words, vecs)


def test_similarity_and_most_similar_by_hand():
    wv = _toy()
    assert wv.similarity("man", "king") == pytest.approx(1.0)
    assert wv.similarity("man", "woman") == pytest.approx(1 / np.sqrt(2))
    top = wv.most_similar("man", 2)
    assert [w for w, _ in top] == ["king", "queen"]  # itself excluded
    assert top[0][1] == pytest.approx(1.0)


def test_analogy_3cosadd_excludes_inputs():
    wv = _toy()
    assert wv.analogy("man", "woman", "king")[0][0] == "queen"
    answers = [w for w, _ in wv.analogy("man", "woman", "king", k=5)]
    assert not {"man", "woman", "king"} & set(answers) and len(answers) == 2


def test_unknown_word_raises_clear_error():
    with pytest.raises(KeyError, match="not in the vocabulary"):
        _toy().similarity("man", "castle")


def test_one_hot_distances_are_exactly_one():
    words = ["a", "b", "c", "d"]
    d = cosine_distance_matrix(one_hot_vectors(words), words)
    np.testing.assert_array_equal(d, 1.0 - np.eye(4))


def test_cosine_distance_matrix_matches_formula():
    wv = random_vectors(["x", "y", "z"], dim=8, seed=1)
    d = cosine_distance_matrix(wv, ["x", "z"])
    x, z = wv["x"], wv["z"]
    expect = 1 - x @ z / np.linalg.norm(x) / np.linalg.norm(z)
    assert d[0, 1] == pytest.approx(expect, abs=1e-6) and d[0, 0] == 0.0 and d.shape == (2, 2)


def test_pca_2d_recovers_the_dominant_direction():
    rng = np.random.default_rng(0)
    t = rng.standard_normal(50)
    x = np.outer(t, [3.0, 4.0, 0.0]) + 0.01 * rng.standard_normal((50, 3))
    xy = pca_2d(x)
    assert xy.shape == (50, 2)
    assert abs(np.corrcoef(xy[:, 0], t)[0, 1]) > 0.999
    assert xy[:, 1].std() < 0.05


def test_roc_auc_hand_worked_and_ties():
    assert roc_auc([0.9, 0.4, 0.5, 0.1], [True, True, False, False]) == pytest.approx(0.75)
    assert roc_auc([0.5, 0.5], [True, False]) == pytest.approx(0.5)
    assert roc_auc([1.0, 2.0], [False, True]) == 1.0
    with pytest.raises(ValueError, match="need both labels"):
        roc_auc([1.0], [True])


def test_one_hot_similarity_auc_is_chance():
    wv = one_hot_vectors(["king", "queen", "cat", "cats"])
    pairs = [("king", "queen", True), ("cat", "cats", True), ("king", "cat", False), ("queen", "cats", False)]
    assert similarity_auc(wv, pairs) == 0.5
    assert similarity_auc(_toy(), [("man", "king", True), ("man", "apple", False)]) == 1.0


def test_analogy_accuracy_counts_and_skips():
    score = analogy_accuracy(_toy(), [("man", "woman", "king", "queen"), ("man", "king", "woman", "queen"),
                                      ("man", "woman", "prince", "princess")])
    assert (score.correct, score.total, score.skipped) == (2, 2, 1)
    assert score.accuracy == 1.0


def test_save_load_roundtrip(tmp_path):
    wv = random_vectors(["a", "b", "ü"], dim=4, seed=0)
    path = tmp_path / "vec.npz"
    wv.save(path)
    back = WordVectors.load(path)
    assert back.words == wv.words
    np.testing.assert_array_equal(back.vectors, wv.vectors)


def test_save_is_byte_reproducible(tmp_path):
    """DVC hashes outputs: the same vectors saved twice (seconds apart) must give the same bytes
    (no timestamp in the file), else every rerun of the stage changes dvc.lock."""
    import time

    wv = random_vectors(["a", "b", "c"], dim=4, seed=0)
    wv.save(tmp_path / "one.npz")
    time.sleep(2.1)  # zip timestamps have a 2-second resolution
    wv.save(tmp_path / "two.npz")
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        WordVectors.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="corrupt"):
        WordVectors.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, vectors=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="not a word-vector file"):
        WordVectors.load(other)


def test_vocabulary_min_count_and_order():
    sents = [["b", "a", "b", "c"], ["b", "a", "d"]]
    v = Vocabulary.build(sents, min_count=2)
    assert v.words == ["b", "a"] and v.counts.tolist() == [3, 2] and v.total == 5
    ids, sent = v.encode_sentences(sents)
    assert ids.tolist() == [0, 1, 0, 0, 1] and sent.tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(sents, min_count=10)


def test_simple_word_tokenize():
    assert simple_word_tokenize("Paris is the capital of France. It's 42!") == [
        "paris", "is", "the", "capital", "of", "france", "it's", "42"]
