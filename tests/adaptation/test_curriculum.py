"""Difficulty scores, orderings, competence pacing and domain mixing, on hand-checkable cases."""

import math

import numpy as np
import pytest
import torch

from nlpcurriculum.adaptation.curriculum import (
    competence,
    domain_batches,
    fit_reference,
    length_scores,
    mixing_weights,
    ordering,
    pad_batch,
    rarity_scores,
    reference_loss_scores,
    steps_to_target,
)


def test_competence_worked_example():
    assert competence(0, 100, 0.1) == pytest.approx(0.1)
    assert competence(25, 100, 0.1) == pytest.approx(math.sqrt(0.25 * 0.99 + 0.01))
    assert competence(100, 100, 0.1) == 1.0 and competence(500, 100, 0.1) == 1.0
    with pytest.raises(ValueError):
        competence(0, 100, 0.0)


def test_sorted_orderings_are_one_pass_easy_first_or_hard_first():
    scores = np.array([5.0, 1.0, 4.0, 2.0, 3.0, 0.0])
    easy = ordering(scores, "easy_to_hard", steps=3, batch_size=2, seed=0)
    hard = ordering(scores, "hard_to_easy", steps=3, batch_size=2, seed=0)
    assert np.concatenate(easy).tolist() == [5, 1, 3, 4, 2, 0]
    assert np.concatenate(hard).tolist() == [0, 2, 4, 3, 1, 5]
    with pytest.raises(ValueError):
        ordering(scores, "easy_to_hard", steps=4, batch_size=2, seed=0)  # more than one pass


def test_random_ordering_is_a_permutation_per_pass():
    order = np.concatenate(ordering(np.zeros(10), "random", steps=10, batch_size=2, seed=1))
    assert sorted(order[:10].tolist()) == list(range(10)) and sorted(order[10:].tolist()) == list(range(10))


def test_competence_batches_come_from_the_allowed_easiest_share():
    N, B, steps = 1000, 10, 100
    scores = np.arange(N, dtype=float)       # index = difficulty rank
    batches = ordering(scores, "competence", steps=steps, batch_size=B, seed=0, c0=0.1,
                       curriculum_steps=50)
    for t, b in enumerate(batches):
        allowed = max(B, math.ceil(competence(t, 50, 0.1) * N))
        assert b.max() < allowed
    assert batches[0].max() < 100             # c(0) = 0.1: the easiest tenth only
    assert max(b.max() for b in batches[60:]) > 900  # full competence: the hard ones appear


def test_difficulty_scores():
    ref = [np.array([1, 2, 1, 2, 1, 2, 0]), np.array([1, 2, 1, 2, 0])]
    bigram, unigram = fit_reference(ref, vocab_size=8)
    seen = np.array([1, 2, 1, 2, 0])
    unseen = np.array([5, 6, 7, 5, 0])
    assert length_scores([seen, unseen[:3]]).tolist() == [5.0, 3.0]
    ref_loss = reference_loss_scores([seen, unseen], bigram)
    rarity = rarity_scores([seen, unseen], unigram)
    assert ref_loss[0] < ref_loss[1] and rarity[0] < rarity[1]
    # rarity of a one-token-type example: -log of its add-k unigram probability
    c = np.bincount(np.concatenate(ref)[1:], minlength=8)
    p1 = (c[1] + 0.1) / (c.sum() + 0.8)
    assert rarity_scores([np.array([1, 1, 1])], unigram)[0] == pytest.approx(-math.log(p1))


def test_mixing_weights_worked_example_and_shift():
    t = mixing_weights("temperature", 0, 10, [0.6, 0.3, 0.1], temperature=3.0)
    assert t.tolist() == pytest.approx([0.4266, 0.3386, 0.2348], abs=1e-4)
    assert mixing_weights("static", 5, 10, [3, 1]).tolist() == [0.75, 0.25]
    start = mixing_weights("shifting", 0, 11, [0.6, 0.4], end=[0.2, 0.8])
    mid = mixing_weights("shifting", 5, 11, [0.6, 0.4], end=[0.2, 0.8])
    last = mixing_weights("shifting", 10, 11, [0.6, 0.4], end=[0.2, 0.8])
    assert start.tolist() == pytest.approx([0.6, 0.4]) and last.tolist() == pytest.approx([0.2, 0.8])
    assert mid.tolist() == pytest.approx([0.4, 0.6])
    with pytest.raises(ValueError):
        mixing_weights("shifting", 0, 10, [0.5, 0.5])


def test_domain_batches_follow_the_schedule():
    doms = domain_batches("shifting", steps=200, batch_size=50, proportions=[0.9, 0.1], seed=0,
                          end=[0.1, 0.9])
    first = np.concatenate(doms[:20])
    last = np.concatenate(doms[-20:])
    assert (first == 0).mean() > 0.8 and (last == 1).mean() > 0.8


def test_pad_batch_and_steps_to_target():
    x, y = pad_batch([np.array([1, 2, 3]), np.array([4, 5])])
    assert x.tolist() == [[1, 2], [4, 0]] and y.tolist() == [[2, 3], [5, -100]]
    assert x.dtype == torch.long
    assert steps_to_target([(0, 3.0), (10, 2.5), (20, 1.9), (30, 1.7)], 2.0) == 20
    assert steps_to_target([(0, 3.0), (10, 2.5)], 2.0) is None
