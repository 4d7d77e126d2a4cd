"""Count n-gram baselines: the hand-worked example, normalisation, a dense brute-force count, tuning k."""

import math
from collections import Counter

import numpy as np
import pytest

from nlpcurriculum.models.count_ngram import fit_count_ngram, tune_add_k


def test_hand_worked_example_of_the_docstring():
    train = np.array([0, 1, 0, 1, 1])
    bi = fit_count_ngram(train, 2, 2, k=1.0)
    # p(1 | 0) = (2 + 1) / (2 + 2) = 0.75, p(0 | 0) = 0.25
    assert np.exp(-bi.nll(np.array([0, 0]), np.array([1, 0]))) == pytest.approx([0.75, 0.25])
    uni = fit_count_ngram(train, 1, 2, k=1.0)
    assert math.exp(-float(uni.nll(np.array([0]), np.array([1]))[0])) == pytest.approx(4 / 6)


@pytest.mark.parametrize("order", [1, 2])
def test_every_context_sums_to_one_and_matches_a_dense_count(order):
    rng = np.random.default_rng(0)
    V, k = 7, 0.3
    train = rng.integers(0, V, size=200)
    train[train == 6] = 5  # token 6 never occurs: its row is pure smoothing
    model = fit_count_ngram(train, order, V, k)
    pairs = Counter(zip(train[:-1].tolist(), train[1:].tolist()))
    uni = Counter(train[1:].tolist())
    for v in range(V):
        prev, target = np.full(V, v), np.arange(V)
        p = np.exp(-model.nll(prev, target))  # (V,) p(w | v) for every w
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        for w in range(V):
            if order == 2:
                row = sum(c for (a, _), c in pairs.items() if a == v)
                expected = (pairs[(v, w)] + k) / (row + k * V)
            else:
                expected = (uni[w] + k) / (len(train) - 1 + k * V)
            assert p[w] == pytest.approx(expected, rel=1e-12)


def test_bigram_beats_unigram_on_text_with_successor_structure_and_not_on_iid_noise():
    rng = np.random.default_rng(1)
    V = 16
    walk = np.cumsum(rng.integers(0, 2, size=4000)) % V  # next token is this one or the one after
    noise = rng.integers(0, V, size=4000)
    for data, bigram_wins in ((walk, True), (noise, False)):
        train, test = data[:3000], data[3000:]
        bi = fit_count_ngram(train, 2, V, 0.1).nll(test[:-1], test[1:]).mean()
        uni = fit_count_ngram(train, 1, V, 0.1).nll(test[:-1], test[1:]).mean()
        assert (bi < uni - 0.5) == bigram_wins, (bi, uni)


def test_tune_add_k_picks_on_the_training_tail_and_refits_on_everything():
    rng = np.random.default_rng(2)
    V = 50
    train = np.cumsum(rng.integers(0, 3, size=5000)) % V
    model, losses = tune_add_k(train, 2, V, [1e-3, 0.01, 0.1, 1.0, 10.0], tuning_fraction=0.2)
    assert set(losses) == {1e-3, 0.01, 0.1, 1.0, 10.0}
    assert model.k == min(losses, key=losses.get)
    assert losses[10.0] > losses[model.k]  # heavy smoothing flattens a peaked successor table
    assert model.totals.sum() == len(train) - 1  # refitted on the whole stream
    with pytest.raises(ValueError, match="too short"):
        tune_add_k(train[:5], 2, V, [1.0], tuning_fraction=0.1)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="order"):
        fit_count_ngram(np.array([0, 1]), 3, 2, 1.0)
    with pytest.raises(ValueError, match="k must be > 0"):
        fit_count_ngram(np.array([0, 1]), 2, 2, 0.0)
    with pytest.raises(ValueError, match="token ids"):
        fit_count_ngram(np.array([0, 2]), 2, 2, 1.0)
