import numpy as np
import pytest
import torch

from nlpcurriculum.retrieval.dense import (BiEncoder, DenseConfig, Vocabulary, build_faiss, encode,
                                           rrf, train_biencoder, weighted_fusion)


def test_rrf_hand_worked_example():
    a, b, c = 0, 1, 2
    idx, val = rrf([np.array([[a, b]]), np.array([[b, c]])], k=60)
    assert idx.tolist() == [[b, a, c]]
    assert val[0] == pytest.approx([1 / 62 + 1 / 61, 1 / 61, 1 / 62])


def test_weighted_fusion_ends_are_each_side_alone():
    rng = np.random.default_rng(0)
    sparse, dense = rng.random((4, 30)) * 20, rng.random((4, 30))
    assert np.array_equal(weighted_fusion(sparse, dense, 1.0, 5)[0], np.argsort(-sparse, 1)[:, :5])
    assert np.array_equal(weighted_fusion(sparse, dense, 0.0, 5)[0], np.argsort(-dense, 1)[:, :5])


def test_vocabulary_min_count_idf_and_padding():
    v = Vocabulary([["a", "b"], ["a", "c"], ["a", "b"]], min_count=2)
    assert set(v.ids) == {"a", "b"} and len(v) == 3
    assert v.idf[v.ids["b"]] > v.idf[v.ids["a"]] > 0
    ids, offsets, weights = v.bags([["zzz"], ["b", "a", "c"]])
    assert ids.tolist() == [0, v.ids["b"], v.ids["a"]] and offsets.tolist() == [0, 1]
    assert weights[0] == 0


def _toy(seed=0, n=120, vocab=300, length=30):
    rng = np.random.default_rng(seed)
    passages = [[f"w{j}" for j in rng.choice(vocab, length, replace=False)] for _ in range(n)]
    # a query: 4 words of its passage (so lexical overlap exists, and the encoder must learn it)
    queries = [list(rng.choice(p, 4, replace=False)) for p in passages]
    return passages, queries


def _accuracy(model, vocab, passages, queries):
    P, Q = encode(model, vocab, passages, "passage"), encode(model, vocab, queries, "query")
    assert np.allclose(np.linalg.norm(P, axis=1), 1, atol=1e-5)
    return float(np.mean(np.argmax(Q @ P.T, axis=1) == np.arange(len(queries))))


def test_training_with_in_batch_and_hard_negatives_beats_the_untrained_encoder():
    torch.set_num_threads(1)
    passages, queries = _toy()
    vocab = Vocabulary(passages, min_count=1)
    pairs = [(q, i) for i, q in enumerate(queries)]
    hard = [(i + 1) % len(passages) for i in range(len(pairs))]
    cfg = DenseConfig(dim=32, epochs=15, batch_size=32, lr=0.01)
    model, losses = train_biencoder(pairs, passages, vocab, cfg, seed=0, hard=hard)
    untrained, none = train_biencoder(pairs, passages, vocab, DenseConfig(dim=32, epochs=0), seed=0)
    assert none == [] and losses[-1] < losses[0] / 2
    assert _accuracy(model, vocab, passages, queries) > _accuracy(untrained, vocab, passages, queries) + 0.3


def test_duplicate_positives_in_a_batch_are_not_negatives():
    passages, queries = _toy(n=10)
    vocab = Vocabulary(passages, min_count=1)
    pairs = [(queries[0], 0)] * 8 + [(queries[1], 1)] * 8       # the same positive 8 times per batch
    model, losses = train_biencoder(pairs, passages, vocab, DenseConfig(dim=8, epochs=2, batch_size=16), 0)
    assert all(np.isfinite(losses))


def test_faiss_flat_is_exact_ivf_exhaustive_is_exact_hnsw_close():
    rng = np.random.default_rng(0)
    P = rng.standard_normal((500, 16)).astype(np.float32)
    P /= np.linalg.norm(P, axis=1, keepdims=True)
    Q = P[:50] + 0.3 * rng.standard_normal((50, 16)).astype(np.float32)
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    exact = np.argsort(-(Q @ P.T), axis=1)[:, :10]
    v, i = build_faiss(P, "flat").search(Q, 10)
    assert np.array_equal(i, exact) and np.allclose(v, np.take_along_axis(Q @ P.T, exact, 1), atol=1e-5)
    _, i = build_faiss(P, "ivf", nlist=8, nprobe=8).search(Q, 10)
    assert np.array_equal(i, exact)
    _, i = build_faiss(P, "hnsw").search(Q, 10)
    assert np.mean([len(set(a) & set(b)) for a, b in zip(i, exact)]) / 10 > 0.9
    with pytest.raises(ValueError, match="unknown FAISS index"):
        build_faiss(P, "lsh")


def test_biencoder_towers_differ():
    m = BiEncoder(10, 4)
    bags = Vocabulary([["a", "b"]], 1).bags([["a", "b"]])
    assert not torch.allclose(m(bags, "query"), m(bags, "passage"))
