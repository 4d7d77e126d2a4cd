"""The stacking experiment on a tiny toy task: items, the Q/K/V structural finding, errors."""

from dataclasses import replace

import pytest
import torch

from nlpcurriculum.data.synthetic.repeats import RepeatTaskConfig
from nlpcurriculum.experiments.transformers_qkv_and_stacking import (
    ITEMS,
    Inputs,
    Outputs,
    StackingConfig,
    run,
    uniform_attention_deviation,
)
from nlpcurriculum.interpret.qkv import intervene_qkv
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.training.trainer import TrainerConfig


def _tiny() -> StackingConfig:
    task = RepeatTaskConfig(vocab_size=12, seq_len=12, min_period=2, max_period=4)
    return StackingConfig(
        task=task,
        model=MiniFormerConfig(vocab_size=12, d_model=16, n_layers=1, n_heads=2, max_seq_len=12),
        train=TrainerConfig(lr=3e-3, max_steps=3, batch_size=4, warmup_steps=1, eval_every=3,
                            eval_batches=1, progress=False),
        depths=[1, 2], dissect_depth=2, interventions=["zero_q", "zero_v", "swap_qk"],
        retrain=["tie_qk"], eval_batches=2, seeds=[1, 2, 3], workers=1,
    )


def test_run_returns_three_items_and_zeroing_q_is_exactly_uniform():
    built = Outputs()
    results = run(_tiny(), Inputs(), built)
    models = built.models
    assert sorted(models) == [1, 2]
    assert [r.item for r in results] == list(ITEMS)
    single, depth, qkv = results
    assert {"val_loss_single_block", "val_loss_bigram", "gain_over_bigram"} <= set(single.metrics)
    assert {"val_loss_depth1", "val_loss_depth2", "depth_gain"} <= set(depth.metrics)
    expected = {"loss_none", "loss_zero_q", "loss_zero_v", "loss_swap_qk", "loss_retrained_tie_qk"}
    assert expected <= set(qkv.metrics)
    uniform = next(f for f in qkv.findings if f.metric == "zero_q_uniform_deviation")
    assert uniform.passed and uniform.value <= 1e-6
    assert all(r.findings for r in results)
    compared = [f for r in results for f in r.findings if f.kind == "finding"]
    assert {f.metric for f in compared} == {"gain_over_bigram", "depth_gain",
                                            "zero_v_loss_fraction_of_uniform", "retrained_tie_qk_gap"}
    assert all(f.n == 3 and f.se is not None for f in compared)  # over the three seeds
    assert "seed2.val_loss_depth2" in depth.metrics


def test_three_step_models_fail_the_training_findings():
    """3 updates teach nothing: no gain over the bigram, no depth gain (the findings can fail)."""
    single, depth, _ = run(_tiny(), Inputs())
    assert not single.findings[0].passed and not depth.findings[0].passed


def test_uniform_attention_deviation_is_large_for_an_intact_model():
    torch.manual_seed(0)
    model = build_model(MiniFormerConfig(vocab_size=12, d_model=16, n_layers=1, n_heads=2,
                                         max_seq_len=12, init_std=0.5)).eval()
    x = torch.randint(0, 12, (2, 8), generator=torch.Generator().manual_seed(0))
    assert uniform_attention_deviation(model, x) > 0.01
    with intervene_qkv(model, "zero_k"):
        assert uniform_attention_deviation(model, x) < 1e-6


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(depths=[2, 4]), "must be positive and contain 1"),
        (dict(dissect_depth=4), "dissect_depth=4 is not one of"),
        (dict(retrain=["melt"]), "unknown intervention 'melt'"),
        (dict(seeds=[1, 1]), "seeds must hold >= 2 distinct"),
        (dict(interventions=["swap_qk"]), "must include zero_q and zero_v"),
        (dict(model=MiniFormerConfig(vocab_size=13, d_model=16, n_heads=2, max_seq_len=12)),
         "must equal task.vocab_size"),
    ],
)
def test_bad_config_fails_clearly(change, message):
    with pytest.raises(ValueError, match=message):
        replace(_tiny(), **change)
