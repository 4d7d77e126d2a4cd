"""The long-context experiment at toy sizes: three items, invariants held, findings' shape."""

import math

import pytest

from nlpcurriculum.experiments.long_context_tricks_infini_attention_sliding_window import (
    ITEMS, Inputs, LongContextConfig, run)

TEXTS = ["the quick brown fox jumps over the lazy dog. " * 8, "pack my box with five dozen liquor jugs. " * 6]


def _toy(**over) -> LongContextConfig:
    base = dict(seeds=[0, 1], workers=1, recall_length=16, recall_window=4, recall_steps=2,
                recall_batch=4, recall_eval_sequences=8, lm_context=8, lm_d_model=16, lm_window=4,
                lm_steps=2, lm_batch=2, positions=["rope", "alibi"], eval_multiples=[1, 4],
                stride_divisors=[1, 4], eval_max_tokens=200, bench_d_model=16, bench_window=8,
                bench_positions=[16, 64], bench_prefill=[32], bench_tokens=1, rounds=2)
    return LongContextConfig(**{**base, **over})


def test_run_at_toy_sizes_gives_three_items_with_invariants_held():
    results = run(_toy(), Inputs(TEXTS, TEXTS))
    assert [r.item for r in results] == list(ITEMS)
    window, memory, collapse = results
    for r in results:
        assert all(f.passed for f in r.findings if f.kind == "invariant"), r.item
        assert any(f.kind == "finding" for f in r.findings)
    assert all(f.n == 2 for f in window.findings if f.kind == "finding")
    assert all(f.timed for f in memory.findings) and not memory.metrics.keys() & memory.timings.keys()
    assert {"perplexity.rope.full.x1", "perplexity.alibi.sliding.x4",
            "collapse_multiple.rope.full"} <= collapse.metrics.keys()
    assert all(math.isfinite(v) for r in (window, collapse) for v in r.metrics.values())
    assert "collapse" in collapse.texts["collapse_points.txt"]


def test_learned_positions_are_scored_at_1x_only():
    results = run(_toy(positions=["rope", "learned"]), Inputs(TEXTS, TEXTS))
    m = results[2].metrics
    assert "perplexity.learned.full.x1" in m and "perplexity.learned.full.x4" not in m
    assert m["collapse_multiple.learned.full"] == 4.0  # cannot run past T: collapsed at the next length


@pytest.mark.parametrize("bad, match", [(dict(eval_multiples=[2, 4]), "start at 1"),
                                        (dict(seeds=[1]), "two distinct seeds"),
                                        (dict(attentions=["sliding"]), "include 'full'"),
                                        (dict(stride_divisors=[2, 4]), "include 1")])
def test_config_refuses_what_the_findings_cannot_use(bad, match):
    with pytest.raises(ValueError, match=match):
        _toy(**bad)
