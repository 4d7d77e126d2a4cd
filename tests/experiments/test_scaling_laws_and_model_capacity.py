"""Scaling-laws experiment: the power-law fit, N*, a tiny ladder run, config errors."""

import math
from dataclasses import replace

import numpy as np
import pytest

from nlpcurriculum.experiments.scaling_laws_and_model_capacity import (
    ITEMS,
    Inputs,
    ScaleSize,
    ScalingConfig,
    fit_power_law,
    kaplan_lr,
    power_law,
    run,
    smallest_n_for,
    width_for,
)
from nlpcurriculum.models.miniformer import MiniFormerConfig
from nlpcurriculum.training.trainer import TrainerConfig

TEXT = ["It was the best of times, it was the worst of times. " * 40]


def test_fit_recovers_a_known_law_and_its_inverse():
    n = np.geomspace(1e3, 1e6, 7)
    rng = np.random.default_rng(0)
    y = power_law(n, 1.2, 30.0, 0.35) * (1 + 1e-4 * rng.standard_normal(n.size))
    fit = fit_power_law(n, y)
    assert fit.r2 > 0.999
    assert abs(fit.alpha - 0.35) < 0.01 and abs(fit.e - 1.2) < 0.02
    lo, hi = fit.band([1e4])
    assert lo[0] <= fit.predict(1e4) <= hi[0]
    n_star = smallest_n_for(float(power_law(5e4, 1.2, 30.0, 0.35)), 1.2, 30.0, 0.35)
    assert n_star == pytest.approx(5e4, rel=1e-9)
    assert math.isinf(smallest_n_for(1.0, 1.2, 30.0, 0.35))  # below E: unreachable


def test_kaplan_lr_falls_with_size():
    assert kaplan_lr(6592) == pytest.approx(0.003239 - 0.0001395 * math.log(6592))
    assert kaplan_lr(10**6) < kaplan_lr(10**4) < 0.003239


def test_fit_needs_four_points():
    with pytest.raises(ValueError, match=">= 4"):
        fit_power_law([1, 2, 3], [3, 2, 1])


def _tiny() -> ScalingConfig:
    return ScalingConfig(
        base=MiniFormerConfig(d_model=8, n_layers=1, n_heads=2, max_seq_len=16),
        sizes=[ScaleSize("a", 4, 1, 2), ScaleSize("b", 8, 1, 2), ScaleSize("c", 12, 1, 2),
               ScaleSize("d", 16, 2, 2), ScaleSize("e", 24, 2, 2)],
        train=TrainerConfig(lr=3e-3, max_steps=6, batch_size=4, warmup_steps=1, eval_every=3,
                            eval_batches=1, progress=False),
        val_batches=2, verify_layers=1, throughput_rounds=2,
    )


def test_width_for_hits_the_nearest_count():
    cfg = _tiny()
    d = width_for(20_000, cfg)
    assert d % 2 == 0 and d >= 4


def test_run_returns_three_items_with_every_size_measured():
    cfg = _tiny()
    loss, bench, extra = run(cfg, Inputs(TEXT, TEXT))
    assert [loss.item, bench.item, extra.item] == list(ITEMS)
    assert cfg.tokens_per_run == 6 * 4 * 16
    for s in "abcde":
        for seed in cfg.seeds:  # every size with each of the 3 default seeds
            # throughput is the run's tokens over its training wall time (timings, not metrics)
            assert bench.timings[f"{s}.seed{seed}.tokens_per_s"] == pytest.approx(
                cfg.tokens_per_run / bench.timings[f"{s}.seed{seed}.train_seconds"])
            assert f"{s}.seed{seed}.tokens_per_s" not in bench.metrics
    throughput = bench.findings[0]
    assert throughput.timed and throughput.n == 2 and throughput.threshold == 2.0
    # a wider model saves more activations for backward on the same batch
    assert bench.metrics["a.seed0.activation_bytes"] < bench.metrics["e.seed0.activation_bytes"]
    assert loss.metrics["a.seed0.n_params"] < loss.metrics["e.seed0.n_params"]
    assert "fit.r2" in loss.metrics and {"loss_vs_params.png", "loss_vs_compute.png"} <= set(loss.figures)
    assert "target_loss" in extra.metrics and "holdout.rel_error" in extra.metrics
    # the out-of-range check: fitted on a-d, it predicts e, over e's 3 seeds
    assert extra.metrics["holdout.range_factor"] > 1.0
    holdout = next(f for f in extra.findings if f.metric == "holdout.rel_error")
    assert holdout.n == 3 and holdout.threshold == cfg.max_holdout_rel_error
    gain = next(f for f in loss.findings if f.metric == "size_gain_smallest_minus_largest")
    assert gain.n == 3


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(sizes=[ScaleSize("a", 8, 1, 2)] * 3), "at least 4"),
        (dict(sizes=[ScaleSize("a", 8, 1, 2)] * 4), "names must be unique"),
        (dict(sizes=[ScaleSize(c, 10, 1, 4) for c in "abcd"]), "multiple of n_heads"),
        (dict(seeds=[]), "seeds must list"),
        (dict(target_loss=-1.0), "target_loss must be"),
        (dict(val_batches=0), "val_batches must be >= 1"),
        (dict(lr_rule="chinchilla"), "lr_rule must be one of"),
        (dict(throughput_rounds=0), "throughput_rounds must be >= 1"),
    ],
)
def test_bad_config_fails_clearly(change, message):
    with pytest.raises(ValueError, match=message):
        replace(_tiny(), **change)
