"""The fine-tuning experiment (finetuning-vs-instruction-tuning-vs-rlhf/1) on a tiny model, seconds."""

import dataclasses

import numpy as np
import pytest
import torch

from nlpcurriculum.experiments.finetuning_vs_instruction_tuning_vs_rlhf import ITEMS
from nlpcurriculum.experiments.finetuning_vs_instruction_tuning_vs_rlhf.finetune import (
    FinetuneConfig,
    Inputs,
    Outputs,
    run,
)
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.trainer import Trainer, TrainerConfig, seed_everything

V, T = 24, 16
CONFIG = MiniFormerConfig(vocab_size=V, d_model=32, n_layers=1, n_heads=2, max_seq_len=T)


def _stream(n, period, offset, seed):
    """Repeating ramps of ``period`` tokens from ``offset``, with 10% random tokens."""
    rng = np.random.default_rng(seed)
    s = (np.arange(n) % period + offset) % V
    noise = rng.random(n) < 0.1
    s[noise] = rng.integers(0, V, noise.sum())
    return s.astype(np.int32)


def _inputs(pretrain_steps):
    seed_everything(0)
    base = build_model(CONFIG)
    corpus = _stream(4000, 12, 0, 0)
    if pretrain_steps:
        cfg = TrainerConfig(lr=3e-3, max_steps=pretrain_steps, batch_size=16, warmup_steps=5,
                            eval_every=0, progress=False)
        Trainer(base, cfg, TokenBatcher(torch.from_numpy(corpus.astype(np.int64)), T)).train()
    custom = _stream(1500, 12, 3, 1)  # the same kind of ramp, shifted: pretraining carries over
    return Inputs(dataclasses.asdict(CONFIG), base.eval().state_dict(), custom[:1200], custom[1200:],
                  _stream(600, 12, 0, 2), {"train": 8, "val": 2})


def _cfg(**kw):
    train = TrainerConfig(lr=1e-3, max_steps=15, batch_size=8, warmup_steps=2, eval_every=5,
                          eval_batches=2, progress=False)
    return FinetuneConfig(train=train, scratch_lr=3e-3, workers=1, **kw)


def test_the_section_declares_both_items():
    assert ITEMS == ("finetuning-vs-instruction-tuning-vs-rlhf/1",
                     "finetuning-vs-instruction-tuning-vs-rlhf/2")


def test_run_scores_every_arm_and_fills_the_outputs_with_the_first_seeds_model():
    inputs = _inputs(pretrain_steps=120)
    outputs = Outputs()
    (result,) = run(_cfg(), inputs, outputs, log=lambda _: None)
    m = result.metrics
    assert result.item == ITEMS[0] and len(result.findings) == 3
    for arm in ("base", "finetuned", "scratch"):
        assert np.isfinite(m[f"{arm}.custom_val_loss"]) and np.isfinite(m[f"{arm}.pipeline_val_loss"])
    assert m["forgetting"] == pytest.approx(m["finetuned.pipeline_val_loss"] - m["base.pipeline_val_loss"])
    assert m["tokens_per_run"] == 15 * 8 * T
    gain, pretrain_helps, _ = result.findings
    assert gain.passed and pretrain_helps.passed  # a pretrained base on related text: both hold
    assert outputs.train.seed == 0 and outputs.config == inputs.base_config
    model = build_model(CONFIG)
    model.load_state_dict(outputs.state)  # a whole model of the base architecture
    assert set(result.figures) == {"val_loss_curves.png", "losses.png"}
    assert "finetuned.val_loss.seed1" in result.series


def test_an_untrained_base_fails_the_pretraining_finding():
    """The control can fail: a "base" that never trained carries nothing, and at the fine-tuning
    learning rate it does no better than the from-scratch run."""
    (result,) = run(_cfg(), _inputs(pretrain_steps=0), log=lambda _: None)
    pretrain_helps = result.findings[1]
    assert pretrain_helps.metric == "finetuned_minus_scratch_custom_loss"
    assert not pretrain_helps.passed


def test_config_checks():
    with pytest.raises(ValueError, match="seeds"):
        _cfg(seeds=[1])
    with pytest.raises(ValueError, match="val_fraction"):
        _cfg(val_fraction=1.0)
