"""Mixed precision: our dynamic loss scaler against torch.amp.GradScaler, overflow skipping,
autocast memory, and a tiny run of the mixed_precision experiment."""

from dataclasses import replace

import pytest
import torch

from nlpcurriculum.experiments.mixed_precision_and_gradient_accumulation import (
    ITEMS,
    Inputs,
    MixedPrecisionConfig,
    fp16_grad_underflow,
    run,
)
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.training.amp import DynamicLossScaler, autocast, saved_activation_bytes, train_amp
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.trainer import param_groups

TEXT = ["It was the best of times, it was the worst of times. " * 40]
TOKENS = torch.tensor(list(TEXT[0].encode()))
MODEL = MiniFormerConfig(d_model=16, n_layers=2, n_heads=2, max_seq_len=16)


def _run(scaler, precision="fp16", steps=12, inject=(2, 3, 8)):
    torch.manual_seed(0)
    model = build_model(MODEL)
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=3e-3)
    data = TokenBatcher(TOKENS, 16, seed=0)
    history = train_amp(model, lambda: data.next_batch(4), steps, opt, precision, scaler,
                        inject_inf_at=inject, grad_clip=1.0)
    return model, history


def test_scaler_matches_torch_gradscaler_exactly():
    ours_model, ours = _run(DynamicLossScaler(growth_interval=2))
    ref_model, ref = _run(torch.amp.GradScaler("cpu", growth_interval=2))
    assert ours["scale"] == ref["scale"]
    assert ours["skipped"] == ref["skipped"]
    assert [ours["skipped"][i] for i in (2, 3, 8)] == [1.0, 1.0, 1.0]
    assert max(ours["scale"]) > 2.0**16  # it grew after clean streaks
    for p, q in zip(ours_model.parameters(), ref_model.parameters()):
        assert torch.equal(p, q)


def test_overflow_skips_the_step_and_backs_off():
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = DynamicLossScaler(init_scale=8.0, growth_interval=1)
    before = model.weight.detach().clone()
    scaler.scale_loss(model(torch.ones(1, 3)).sum()).backward()
    model.weight.grad[0, 0] = float("nan")
    assert scaler.step(opt) is False and torch.equal(model.weight, before)
    assert scaler.update() == 4.0 and scaler.skipped_steps == 1
    opt.zero_grad()
    scaler.scale_loss(model(torch.ones(1, 3)).sum()).backward()
    assert scaler.unscale_(opt) is False
    assert torch.allclose(model.weight.grad, torch.ones(1, 3))  # unscaled: the true gradient
    assert scaler.step(opt) is True and not torch.equal(model.weight, before)
    assert scaler.update() == 8.0  # growth interval 1: doubled after one clean step
    with pytest.raises(RuntimeError, match="update\\(\\) needs a step"):
        scaler.update()


def test_scaler_never_grows_to_inf_and_rejects_bad_settings():
    scaler = DynamicLossScaler(init_scale=2.0**127, growth_interval=1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scaler.unscale_(opt)
    assert scaler.update() == 2.0**127
    for kw, msg in [(dict(growth_factor=1.0), "growth_factor"), (dict(backoff_factor=1.5), "backoff"),
                    (dict(growth_interval=0), "growth_interval")]:
        with pytest.raises(ValueError, match=msg):
            DynamicLossScaler(**kw)
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast("fp8")


def test_low_precision_saves_fewer_activation_bytes():
    torch.manual_seed(0)
    model = build_model(MODEL)
    x, y = TokenBatcher(TOKENS, 16).next_batch(4)
    sizes = {}
    for p in ("fp32", "bf16", "fp16"):
        with autocast(p):
            sizes[p], loss = saved_activation_bytes(lambda: model(x, targets=y).loss)
        assert torch.isfinite(loss)
    assert sizes["bf16"] < 0.8 * sizes["fp32"] and sizes["fp16"] == sizes["bf16"]
    big, _ = saved_activation_bytes(lambda: model(*TokenBatcher(TOKENS, 16).next_batch(8)[:1],
                                                  targets=TokenBatcher(TOKENS, 16).next_batch(8)[1]).loss)
    assert 1.6 * sizes["fp32"] < big < 2.4 * sizes["fp32"]  # activations scale with the batch


def test_experiment_runs_at_a_tiny_size():
    cfg = MixedPrecisionConfig(model=MODEL, seq_len=16, batch_size=4, steps=4, scaler_steps=6,
                               growth_interval=2, inject_inf_at=[1], micro_batch=2, accum_steps=2,
                               accum_updates=3, throughput_steps=1)
    results = run(cfg, Inputs(TEXT))
    assert [r.item for r in results] == list(ITEMS)
    precision, accumulation, speed = results
    by_metric = {f.metric: f for f in precision.findings}
    assert all(by_metric[m].passed for m in ("scaler.max_scale_diff", "scaler.skip_mismatches",
                                              "scaler.max_weight_diff", "scaler.skipped_steps"))
    acc = {f.metric: f for f in accumulation.findings}
    assert acc["grad_rel_diff"].passed and acc["max_weight_diff"].passed
    assert speed.metrics["bf16.memory_ratio_vs_fp32"] < 1.0
    # clock readings are timings, the speed finding timed; the metrics stay deterministic
    assert {"fp32.tokens_per_s", "bf16.speedup_vs_fp32", "host.native_bf16"} <= set(speed.timings)
    assert not any("tokens_per_s" in k or "speedup" in k for k in speed.metrics)
    speed_finding = speed.findings[-1]
    assert speed_finding.timed and speed_finding.n == 1 and not speed_finding.passed  # one round
    assert "native bf16" in speed_finding.claim
    # the scaler's control: fp16 without it, over the three control seeds
    assert "fp16_no_scaler.final_loss" in precision.metrics
    under = {f.metric: f for f in precision.findings if f.metric.startswith("underflow.")}
    assert set(under) == {"underflow.rel_error_gain", "underflow.zero_fraction_gain"}
    assert all(f.n == 3 for f in under.values())
    gaps = {f.metric: f for f in precision.findings if f.metric.endswith("loss_gap_vs_fp32")}
    assert set(gaps) == {"bf16.loss_gap_vs_fp32", "fp16.loss_gap_vs_fp32"}
    assert all(f.n == 3 and f.threshold == cfg.max_precision_loss_gap for f in gaps.values())
    assert {"precision.png"} <= set(precision.figures)
    with pytest.raises(ValueError, match="inject_inf_at"):
        replace(cfg, inject_inf_at=[99])
    with pytest.raises(ValueError, match="accum_steps must be >= 2"):
        replace(cfg, accum_steps=1)


def test_fp16_without_a_scaler_flushes_gradients_the_scaler_keeps():
    """The control of the loss scaler: fp16 without it loses gradient entries to underflow
    (zero where fp32 is not), the scaled fp16 gradients lose none; a "scaler" that multiplies
    by 1 would lose the same entries (the finding's mutation)."""
    cfg = MixedPrecisionConfig(model=MODEL, seq_len=16, batch_size=4)
    out = fp16_grad_underflow(cfg, TOKENS, seed=0)
    assert out["scale"] == 2.0**16  # no overflow at init: the full scale is kept
    assert out["scaler.zero_fraction"] == 0.0
    assert out["no_scaler.zero_fraction"] > 0.0
    assert out["scaler.rel_error"] < 1e-3  # fp16 rounding only (tolerance: 10 bits of mantissa)
