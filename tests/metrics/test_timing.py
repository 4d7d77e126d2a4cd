"""Timing helpers: best-of timing and the torch thread count for a block."""

import time

import pytest
import torch

from nlpcurriculum.metrics.timing import best_of, interleaved_rounds, torch_threads


def test_best_of_returns_the_last_result_and_the_fastest_call():
    delays = iter([0.03, 0.0, 0.02])
    calls = []

    def fn():
        time.sleep(next(delays))
        calls.append(len(calls))
        return len(calls)

    out, best = best_of(fn, 3)
    assert calls == [0, 1, 2] and out == 3  # called three times, the last result returned
    assert 0.0 <= best < 0.02  # the fastest call is the one that did not sleep
    assert best_of(fn, 0) == (None, float("inf"))  # nothing runs
    assert len(calls) == 3


def test_torch_threads_restores_the_previous_setting():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            raise RuntimeError("restored even when the block fails")
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="num_threads"):
        with torch_threads(0):
            pass


def test_interleaved_rounds_alternate_the_arms_and_skip_warmup():
    calls = []
    times = interleaved_rounds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                               rounds=3, warmup=1)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]  # warmup round, then 3 timed
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    with pytest.raises(ValueError, match="one round"):
        interleaved_rounds({"a": lambda: None}, rounds=0)
