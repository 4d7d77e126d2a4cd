"""Reservoir sampling keeps every example of a stream with the same probability."""

import numpy as np
import pytest
from scipy.stats import chisquare

from nlpcurriculum.adaptation.replay import ReservoirBuffer

N, M, TRIALS = 20, 5, 4000  # stream length, capacity, independent buffers


class _OffByOne(ReservoirBuffer):
    """The classic slip: ``j`` drawn from ``0..seen-1`` instead of ``0..seen``."""

    def add(self, item):
        if self.seen < self.capacity:
            self.items.append(item)
        else:
            j = self._rng.randint(0, self.seen - 1)
            if j < self.capacity:
                self.items[j] = item
        self.seen += 1


class _KeepRecent(ReservoirBuffer):
    """A sliding window: always overwrite the oldest slot (no sampling at all)."""

    def add(self, item):
        if self.seen < self.capacity:
            self.items.append(item)
        else:
            self.items[self.seen % self.capacity] = item
        self.seen += 1


def _inclusion_counts(cls) -> np.ndarray:
    counts = np.zeros(N)
    for trial in range(TRIALS):
        buf = cls(M, seed=trial)
        buf.extend(range(N))
        assert len(buf) == M and len(set(buf.items)) == M
        counts[buf.items] += 1
    return counts


def _uniformity_p(cls) -> float:
    counts = _inclusion_counts(cls)  # each item expected TRIALS * M / N = 1000 times
    return chisquare(counts).pvalue


def test_every_example_is_kept_with_probability_capacity_over_n():
    counts = _inclusion_counts(ReservoirBuffer)
    assert _uniformity_p(ReservoirBuffer) > 1e-3
    # and the probability itself: M/N = 0.25 per item, binomial SE sqrt(.25*.75/4000) = 0.0068
    assert np.abs(counts / TRIALS - M / N).max() < 5 * 0.0069


@pytest.mark.parametrize("biased", [_OffByOne, _KeepRecent])
def test_a_biased_buffer_fails_the_same_uniformity_test(biased):
    assert _uniformity_p(biased) < 1e-6


def test_docstring_example_capacity_two_stream_three():
    kept = np.zeros(3)
    trials = 6000
    for trial in range(trials):
        buf = ReservoirBuffer(2, seed=trial)
        buf.extend(["a", "b", "c"])
        for item in buf.items:
            kept["abc".index(item)] += 1
    # each 2/3, binomial SE sqrt(2/9 / 6000) = 0.0061
    assert np.abs(kept / trials - 2 / 3).max() < 5 * 0.0061


def test_sample_draws_stored_items_without_replacement():
    buf = ReservoirBuffer(10, seed=0)
    assert buf.sample(4) == []
    buf.extend(range(100))
    draw = buf.sample(6)
    assert len(draw) == 6 and len(set(draw)) == 6 and set(draw) <= set(buf.items)
    assert len(buf.sample(50)) == 10
    assert buf.seen == 100
    with pytest.raises(ValueError, match="capacity"):
        ReservoirBuffer(0)
