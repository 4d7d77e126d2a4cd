"""The norms/activations experiment: parity numbers, a tiny ablation run, config errors."""

from dataclasses import replace

import pytest

from nlpcurriculum.experiments.normalization_and_activations import (
    ITEMS,
    Inputs,
    NormsActivationsConfig,
    _SeedRuns,
    _Variant,
    ablation_item,
    matched_d_ff,
    parity_errors,
    rms_norm_backward_timing,
    run,
)
from nlpcurriculum.models.miniformer import MiniFormerConfig
from nlpcurriculum.training.trainer import TrainerConfig

TEXT = ["It was the best of times, it was the worst of times. " * 30]


def test_parity_errors_are_at_fp32_rounding():
    errors = parity_errors(rows=64, dim=16, seed=0)
    assert set(errors) == {"layernorm", "rmsnorm", "gelu", "gelu_tanh", "relu", "swiglu"}
    for name, (fwd, grad, scale) in errors.items():
        assert max(fwd, grad) / scale < 1e-5, name


def test_rms_norm_timing_times_both_backward_paths_each_round():
    times = rms_norm_backward_timing(rows=16, dim=8, rounds=4)
    assert list(times) == ["autograd", "by_hand"] and all(len(t) == 4 for t in times.values())


def _tiny() -> NormsActivationsConfig:
    return NormsActivationsConfig(
        model=MiniFormerConfig(d_model=16, n_layers=2, n_heads=2, max_seq_len=16),
        train=TrainerConfig(lr=3e-3, max_steps=3, batch_size=4, warmup_steps=1, eval_every=3,
                            eval_batches=1, progress=False),
        seq_len=16, norms=["layernorm", "rmsnorm", "none"], mlps=["relu", "swiglu"],
        test_batches=2, parity_rows=32, parity_dim=8, stat_windows=2, timing_rounds=3,
        seeds=[1, 2, 3], workers=1, heldout_from_window=4,
    )


def test_run_returns_three_items_with_every_variant_measured():
    results = run(_tiny(), Inputs(TEXT, TEXT, TEXT))
    assert [r.item for r in results] == list(ITEMS)
    parity, ablation, activations = results
    assert all(f.passed for f in parity.findings if f.kind == "invariant")
    timing = parity.findings[-1]  # the item's finding: hand backward vs autograd, 3 rounds
    assert timing.kind == "finding" and timing.metric == "rmsnorm.hand_backward_speedup" and timing.n == 3
    assert timing.timed and "rmsnorm.hand_backward_speedup" in parity.timings
    assert not any("speedup" in key for key in parity.metrics)  # clock readings stay out of the metrics
    for key in ("norm.layernorm.test_loss", "norm.rmsnorm.test_loss", "norm.none.test_loss",
                "mlp.relu.test_loss", "mlp.swiglu.test_loss", "norm_gain", "swiglu_gain_over_relu"):
        assert key in ablation.metrics, key
    assert {f.metric for f in ablation.findings} == {
        "norm_gain", "rmsnorm_minus_layernorm", "swiglu_gain_over_relu"}
    assert all(f.n == 3 and f.se is not None for f in ablation.findings)  # compared over the seeds
    assert "mlp.swiglu.seed2.test_loss" in ablation.metrics
    assert "layernorm.layer1.residual_std" in activations.metrics
    assert {f.metric for f in activations.findings} == {
        "attn_input_spread_with_norm", "residual_growth_ratio_none_vs_norm"}
    assert all(f.n == 3 for f in activations.findings)
    assert {"histograms.png", "activation_std.png"} <= set(activations.figures)


def _fake_seeds(losses: dict[str, list[float]]) -> list[_SeedRuns]:
    """Seed runs with given test losses per variant (no models: the findings read only losses)."""
    def v(name, loss):
        return _Variant(name, None, None, loss, loss, False)

    return [_SeedRuns(seed, {n: v(n, losses[n][i]) for n in ("layernorm", "rmsnorm", "none")},
                      {m: v(m, losses[m][i]) for m in ("relu", "swiglu")}, {})
            for i, seed in enumerate((1, 2, 3))]


def test_ablation_findings_fail_on_ties_and_pass_on_clear_effects():
    cfg = _tiny()
    tie = _fake_seeds({"layernorm": [2.0, 2.1, 2.0], "rmsnorm": [2.0, 2.1, 2.0], "none": [2.0, 2.1, 2.0],
                       "relu": [2.0, 2.1, 2.0], "swiglu": [2.0, 2.1, 2.0]})
    verdict = {f.metric: f.passed for f in ablation_item(cfg, tie).findings}
    # a tie passes neither gain; equal RMSNorm and LayerNorm are non-inferior
    assert verdict == {"norm_gain": False, "swiglu_gain_over_relu": False, "rmsnorm_minus_layernorm": True}
    clear = _fake_seeds({"layernorm": [2.0, 2.1, 2.0], "rmsnorm": [2.01, 2.1, 2.0], "none": [2.5, 2.7, 2.6],
                         "relu": [2.1, 2.2, 2.1], "swiglu": [2.0, 2.12, 2.01]})
    assert all(f.passed for f in ablation_item(cfg, clear).findings)
    worse = _fake_seeds({"layernorm": [2.0, 2.1, 2.0], "rmsnorm": [2.2, 2.3, 2.2], "none": [2.5, 2.7, 2.6],
                         "relu": [2.1, 2.2, 2.1], "swiglu": [2.0, 2.12, 2.01]})
    verdict = {f.metric: f.passed for f in ablation_item(cfg, worse).findings}
    assert verdict["rmsnorm_minus_layernorm"] is False  # 0.2 nats worse is not "as well"


def test_heldout_windows_must_exist():
    with pytest.raises(ValueError, match="heldout_from_window=500"):
        run(replace(_tiny(), heldout_from_window=500), Inputs(TEXT, TEXT, TEXT))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(norms=["layernorm"]), "must contain 'none'"),
        (dict(norms=["batchnorm", "none"]), "unknown norm 'batchnorm'"),
        (dict(mlps=["tanh"]), "unknown mlp 'tanh'"),
        (dict(seq_len=32), "seq_len=32 must be in"),
        (dict(seeds=[1]), "seeds must hold >= 2 distinct"),
    ],
)
def test_bad_config_fails_clearly(change, message):
    with pytest.raises(ValueError, match=message):
        replace(_tiny(), **change)


def test_matched_d_ff_gives_equal_weight_counts():
    for C in (32, 64, 96):
        plain = 2 * C * matched_d_ff("gelu", C)
        gated = 3 * C * matched_d_ff("swiglu", C)
        assert abs(gated - plain) / plain < 0.01
    assert matched_d_ff("swiglu", 64) == 171 and matched_d_ff("relu", 64) == 256
