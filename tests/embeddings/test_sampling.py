"""Subsampling, the noise distribution and the dynamic window against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nlpcurriculum.embeddings.sampling import (
    cbow_examples,
    context_inclusion_probability,
    keep_probabilities,
    noise_distribution,
    sample_window_sizes,
    skipgram_pairs,
)


def test_keep_probabilities_paper_formula_by_hand():
    # counts [90, 9, 1], t = 0.01 -> f = [0.9, 0.09, 0.01]; keep = sqrt(t/f) capped at 1.
    keep = keep_probabilities(np.array([90, 9, 1]), t=0.01, variant="paper")
    np.testing.assert_allclose(keep, [np.sqrt(1 / 90), 1 / 3, 1.0], rtol=1e-12)
    np.testing.assert_allclose(1 - keep, [1 - 0.105409255, 2 / 3, 0.0], atol=1e-9)


def test_keep_probabilities_word2vec_formula_by_hand():
    # word2vec.c: keep = sqrt(t/f) + t/f -> [0.1054 + 0.0111, 0.3333 + 0.1111, min(1, 2)]
    keep = keep_probabilities(np.array([90, 9, 1]), t=0.01, variant="word2vec")
    np.testing.assert_allclose(keep, [np.sqrt(1 / 90) + 1 / 90, 4 / 9, 1.0], rtol=1e-12)


def test_keep_probabilities_zero_threshold_keeps_all_and_rare_words_always_kept():
    np.testing.assert_array_equal(keep_probabilities(np.array([5, 1]), 0.0), [1.0, 1.0])
    keep = keep_probabilities(np.array([10**6] + [1] * 10), t=1e-5)
    assert keep[0] < 0.01 and (keep[1:] == 1.0).all()


@pytest.mark.parametrize("bad", [dict(counts=np.array([1, 0]), t=1e-3), dict(counts=np.array([1]), t=-1.0)])
def test_keep_probabilities_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        keep_probabilities(**bad)


def test_noise_distribution_by_hand():
    # [16, 1] ** 0.75 = [8, 1] -> [8/9, 1/9]
    np.testing.assert_allclose(noise_distribution(np.array([16, 1])), [8 / 9, 1 / 9], rtol=1e-12)
    np.testing.assert_allclose(noise_distribution(np.array([16, 1]), power=1.0), [16 / 17, 1 / 17])


def test_noise_samples_follow_the_distribution():
    p = torch.tensor(noise_distribution(np.array([81, 16, 1])), dtype=torch.float32)  # ∝ [27, 8, 1]
    draws = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=3).double() / len(draws)
    np.testing.assert_allclose(freq.numpy(), [27 / 36, 8 / 36, 1 / 36], atol=0.005)


def test_context_inclusion_probability_by_hand():
    np.testing.assert_allclose(context_inclusion_probability(np.arange(1, 7), 5), [1, 0.8, 0.6, 0.4, 0.2, 0])


def test_window_sizes_uniform_and_pair_counts_match_expectation():
    gen = torch.Generator().manual_seed(0)
    r = sample_window_sizes(100_000, 5, gen)
    assert int(r.min()) == 1 and int(r.max()) == 5
    np.testing.assert_allclose(torch.bincount(r)[1:].double().numpy() / len(r), [0.2] * 5, atol=0.006)
    # One long sentence: each centre has on average 2 * sum_d P(R >= d) = W + 1 = 6 contexts.
    n = 50_000
    ids = torch.arange(n) % 7
    centres, _ = skipgram_pairs(ids, torch.zeros(n, dtype=torch.int64), sample_window_sizes(n, 5, gen))
    assert abs(len(centres) / n - 6.0) < 0.05


def test_skipgram_pairs_hand_worked_example():
    ids = torch.tensor([0, 1, 2, 3])
    c, x = skipgram_pairs(ids, torch.zeros(4, dtype=torch.int64), torch.tensor([1, 2, 1, 1]))
    got = sorted(zip(c.tolist(), x.tolist()))
    assert got == sorted([(0, 1), (1, 2), (2, 3), (1, 0), (2, 1), (3, 2), (1, 3)])


def test_skipgram_pairs_do_not_cross_sentences():
    ids = torch.tensor([0, 1, 2, 3])
    c, x = skipgram_pairs(ids, torch.tensor([0, 0, 1, 1]), torch.full((4,), 3))
    assert sorted(zip(c.tolist(), x.tolist())) == [(0, 1), (1, 0), (2, 3), (3, 2)]


def test_cbow_examples_hand_worked_example():
    ids = torch.tensor([10, 11, 12, 13])
    sent = torch.tensor([0, 0, 0, 1])
    centres, ctx = cbow_examples(ids, sent, torch.tensor([2, 1, 2, 2]), pad=99)
    # slots are offsets -2, -1, +1, +2; token 13 is alone in its sentence and is dropped.
    assert centres.tolist() == [10, 11, 12]
    assert ctx.tolist() == [[99, 99, 11, 12], [99, 10, 12, 99], [10, 11, 99, 99]]
