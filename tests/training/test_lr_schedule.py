"""Warmup + cosine: hand-worked values, parity with transformers, the floor, validation."""

import pytest
import torch

from nlpcurriculum.training.lr_schedule import WarmupCosine, build_scheduler


def test_hand_worked_example():
    sched = WarmupCosine(warmup_steps=2, max_steps=6, min_lr_ratio=0.1)
    expected = [0.5, 1.0, 0.8682, 0.55, 0.2318, 0.1]
    assert [round(sched(s), 4) for s in range(6)] == expected


@pytest.mark.parametrize("warmup,total,floor", [(10, 100, 0.1), (0, 50, 0.0), (5, 5, 0.2), (3, 40, 0.5)])
def test_matches_transformers_cosine_with_min_lr(warmup, total, floor):
    from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup_lr_rate

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = get_cosine_with_min_lr_schedule_with_warmup_lr_rate(opt, warmup, total, min_lr_rate=floor)
    ours = WarmupCosine(warmup, total, floor)
    for step in range(total):
        assert ours(step) == pytest.approx(ref.lr_lambdas[0](step), abs=1e-12)


def test_holds_the_floor_after_max_steps():
    sched = WarmupCosine(warmup_steps=2, max_steps=10, min_lr_ratio=0.1)
    assert all(sched(s) == pytest.approx(0.1) for s in range(9, 30))


def test_build_scheduler_drives_optimizer_lr():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    sched = build_scheduler(opt, warmup_steps=4, max_steps=10)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[:4] == pytest.approx([0.125, 0.25, 0.375, 0.5])
    assert seen[-1] == pytest.approx(0.05)


@pytest.mark.parametrize("kwargs", [dict(warmup_steps=5, max_steps=0), dict(warmup_steps=11, max_steps=10),
                                    dict(warmup_steps=1, max_steps=10, min_lr_ratio=1.5)])
def test_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        WarmupCosine(**kwargs)
