"""Finding: thresholds, invariants, and comparisons over seeds with their standard errors."""

import math

import pytest

from nlpcurriculum.results import FINDING, INVARIANT, Finding, ItemResult


def test_compare_paired_worked_example_from_the_docstring():
    f = Finding.compare("trick lowers val loss", "loss_gain", [3.1, 3.0, 3.2], [3.4, 3.35, 3.5],
                        margin=0.05, higher_is_better=False)
    assert f.kind == FINDING and f.n == 3
    assert f.value == pytest.approx(-0.31667, abs=1e-4)
    assert f.se == pytest.approx(0.028868 / math.sqrt(3), rel=1e-4)
    assert f.threshold == -0.05
    assert f.passed


def test_compare_never_passes_on_a_tie_or_within_two_standard_errors():
    tie = Finding.compare("a beats b", "gain", [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert tie.value == 0.0 and tie.se == 0.0 and not tie.passed
    # mean effect 0.1 with SE 0.1: clears a zero margin by 1 SE only
    noisy = Finding.compare("a beats b", "gain", [0.0, 0.2, 0.4, -0.2], [0.0, 0.0, 0.0, 0.0])
    assert noisy.value == pytest.approx(0.1)
    assert noisy.se == pytest.approx(math.sqrt(0.2 / 3) / 2)
    assert not noisy.passed
    # the same spread shifted up clears it by more than 2 SE
    assert Finding.compare("a beats b", "gain", [0.5, 0.7, 0.9, 0.3], [0.0] * 4).passed


def test_compare_margin_and_direction():
    gains = [0.30, 0.32, 0.31]
    assert Finding.compare("c", "m", gains, margin=0.2).passed
    assert not Finding.compare("c", "m", gains, margin=0.31).passed
    # the same numbers fail when lower was expected
    assert not Finding.compare("c", "m", gains, higher_is_better=False).passed
    # a negative margin is a non-inferiority bound: a small loss within it passes
    assert Finding.compare("c", "m", [-0.01, -0.012, -0.011], margin=-0.05).passed


def test_compare_single_sample_never_passes_and_unpaired_uses_welch():
    one = Finding.compare("c", "m", [10.0], [0.0])
    assert one.n == 1 and math.isnan(one.se) and not one.passed
    f = Finding.compare("c", "m", [1.0, 2.0, 3.0], [0.0, 0.5, 1.0, 1.5], paired=False)
    assert f.value == pytest.approx(2.0 - 0.75)
    assert f.se == pytest.approx(math.sqrt(1.0 / 3 + (5 / 12) / 4))
    with pytest.raises(ValueError, match="paired samples differ"):
        Finding.compare("c", "m", [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no treatment"):
        Finding.compare("c", "m", [])


def test_thresholds_and_invariants():
    assert Finding.at_least("c", "m", 1.0, 1.0).passed
    assert not Finding.at_most("c", "m", 1.5, 1.0).passed
    inv = Finding.invariant("ids equal tiktoken's", "mismatches", 0, holds=True)
    assert inv.kind == INVARIANT and inv.passed and inv.threshold is None
    assert Finding.at_most("c", "m", 0.0, 0.0, kind=INVARIANT).kind == INVARIANT
    with pytest.raises(ValueError, match="kind"):
        Finding("c", "m", 1.0, True, kind="hunch")


def test_item_result_rejects_non_numeric_metrics():
    with pytest.raises(TypeError, match="not a number"):
        ItemResult("x/1", metrics={"m": "high"})


def test_timing_ratio_worked_example_from_the_docstring():
    f = Finding.timing_ratio("cache is faster", "speedup", [0.010, 0.011, 0.010, 0.030],
                             [0.005] * 4, min_ratio=1.5)
    assert f.value == pytest.approx(2.1) and f.n == 4
    assert f.se == pytest.approx(1.2533 * 1.4826 * 0.1 / 2, rel=1e-6)
    assert f.passed and f.threshold == 1.5


def test_timing_ratio_fails_on_a_tie_and_within_its_spread():
    assert not Finding.timing_ratio("c", "m", [1.0] * 5, [1.0] * 5, min_ratio=1.0).passed
    # ratios 0.8 .. 1.6 around a median of 1.2: not 2 robust SE above 1.0
    noisy = Finding.timing_ratio("c", "m", [0.8, 1.6, 1.2, 0.9, 1.5], [1.0] * 5, min_ratio=1.0)
    assert noisy.value == pytest.approx(1.2) and not noisy.passed
    with pytest.raises(ValueError, match="paired rounds"):
        Finding.timing_ratio("c", "m", [1.0], [1.0, 2.0], min_ratio=1.0)
