"""The trainer: exact resume, determinism, accumulation, callbacks, schedule, learning, validation."""

import dataclasses

import pytest
import torch

from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.training.checkpoint import CheckpointError
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.lr_schedule import WarmupCosine
from nlpcurriculum.training.trainer import Trainer, TrainerConfig, param_groups, seed_everything

MODEL = MiniFormerConfig(vocab_size=32, d_model=32, n_layers=2, n_heads=4, max_seq_len=16, dropout=0.1)
TRAIN = TrainerConfig(lr=3e-3, warmup_steps=2, max_steps=8, batch_size=4, grad_accum=2, eval_every=3,
                      eval_batches=2, progress=False, seed=7)
STREAM = torch.randint(0, 32, (3000,), generator=torch.Generator().manual_seed(0))


def _trainer(cfg=TRAIN, model_cfg=MODEL, seed=0, **kw):
    seed_everything(seed)
    model = build_model(model_cfg)
    return Trainer(model, cfg, TokenBatcher(STREAM, 16, seed=1), TokenBatcher(STREAM[:600], 16, mode="sequential"), **kw)


def test_resume_from_checkpoint_gives_exactly_the_uninterrupted_losses(tmp_path):
    full = _trainer().train()

    first = _trainer()
    first.train(stop_at=3)  # "interrupted" after 3 of 8 updates
    first.save(tmp_path / "c.pt")

    resumed = _trainer(seed=123)  # different init: the checkpoint must overwrite everything
    resumed.load(tmp_path / "c.pt")
    result = resumed.train()
    assert [h["loss"] for h in result.history] == [h["loss"] for h in full.history]  # bit-identical
    assert [h.get("val_loss") for h in result.history] == [h.get("val_loss") for h in full.history]
    assert result.steps == 8 and result.tokens_seen == full.tokens_seen


def test_same_seed_same_run_different_seed_different_run():
    a = [h["loss"] for h in _trainer().train().history]
    b = [h["loss"] for h in _trainer().train().history]
    c = [h["loss"] for h in _trainer(dataclasses.replace(TRAIN, seed=8)).train().history]
    assert a == b and a != c


def test_gradient_accumulation_equals_one_big_batch():
    base = dict(lr=1e-2, warmup_steps=0, max_steps=1, eval_every=0, progress=False, grad_clip=None)
    no_dropout = dataclasses.replace(MODEL, dropout=0.0)
    params = []
    for bs, accum in [(8, 1), (4, 2)]:
        seed_everything(0)
        model = build_model(no_dropout)
        Trainer(model, TrainerConfig(batch_size=bs, grad_accum=accum, **base),
                TokenBatcher(STREAM, 16, mode="sequential")).train()
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(params[0], params[1], atol=1e-6, rtol=0)


def test_on_step_reports_every_update_with_val_loss_on_eval_steps():
    seen = []
    result = _trainer(on_step=lambda step, m: seen.append((step, dict(m)))).train()
    assert [s for s, _ in seen] == list(range(1, 9))
    assert [s for s, m in seen if "val_loss" in m] == [3, 6, 8]  # every 3 and after the last
    assert {"loss", "lr", "grad_norm", "tokens_per_s"} <= set(seen[0][1])
    assert result.final_val_loss == seen[-1][1]["val_loss"]


def test_lr_follows_warmup_cosine():
    history = _trainer().train().history
    sched = WarmupCosine(2, 8, 0.1)
    assert [h["lr"] for h in history] == pytest.approx([3e-3 * sched(s) for s in range(8)])


def test_training_lowers_the_loss_on_a_learnable_stream():
    pattern = torch.arange(8).repeat(400)  # 0..7 repeating: the next token is fully predictable
    seed_everything(0)
    model = build_model(dataclasses.replace(MODEL, dropout=0.0))
    cfg = TrainerConfig(lr=1e-2, warmup_steps=5, max_steps=40, batch_size=8, eval_every=40, eval_batches=2,
                        progress=False)
    result = Trainer(model, cfg, TokenBatcher(pattern, 16), TokenBatcher(pattern, 16, mode="sequential")).train()
    assert result.history[0]["loss"] > 2.5 and result.final_val_loss < 0.2


def test_checkpoints_are_written_on_schedule_and_bad_ones_refused(tmp_path):
    path = tmp_path / "ckpt" / "last.pt"
    steps = []
    trainer = _trainer(dataclasses.replace(TRAIN, checkpoint_every=4), checkpoint_path=path)
    original = trainer.save
    trainer.save = lambda p: (steps.append(trainer.step), original(p))[1]
    trainer.train()
    assert steps == [4, 8] and path.exists()
    with pytest.raises(CheckpointError):
        _trainer().load(tmp_path / "missing.pt")


def test_weight_decay_skips_biases_and_norm_gains():
    model = build_model(MODEL)
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert any(p is model.norm_f.weight for p in no_decay["params"])
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == model.num_params()


def test_non_finite_loss_stops_training():
    trainer = _trainer(loss_fn=lambda model, batch: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(FloatingPointError, match="step 0"):
        trainer.train()


@pytest.mark.parametrize("kwargs", [dict(lr=0), dict(max_steps=0), dict(warmup_steps=20, max_steps=10),
                                    dict(betas=(0.9, 1.0)), dict(grad_accum=0), dict(grad_clip=-1.0)])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        TrainerConfig(**kwargs)
