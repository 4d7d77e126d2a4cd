"""Checkpointing experiment: a tiny run of all three items, the crash demo, config errors."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from nlpcurriculum.experiments.checkpointing_and_fault_tolerance import (
    ITEMS,
    CheckpointingConfig,
    Inputs,
    run,
)
from nlpcurriculum.models.miniformer import MiniFormerConfig
from nlpcurriculum.training import crash_demo
from nlpcurriculum.training.trainer import TrainerConfig

TEXT = ["It was the best of times, it was the worst of times. " * 40]


def _tiny() -> CheckpointingConfig:
    return CheckpointingConfig(
        ac_model=MiniFormerConfig(d_model=16, n_layers=2, n_heads=2, max_seq_len=32),
        ac_batch_size=2, ac_seq_len=32, ac_repeats=1, ac_rounds=2,
        model=MiniFormerConfig(d_model=16, n_layers=1, n_heads=2, max_seq_len=16, dropout=0.1),
        train=TrainerConfig(lr=3e-3, max_steps=16, batch_size=4, warmup_steps=2, eval_every=0,
                            checkpoint_every=4, progress=False),
        seq_len=16, resume_step=6, kill_after_step=9, step_delay_s=0.05, process_timeout_s=120,
    )


def test_run_gives_three_items_and_exact_resumes():
    results = run(_tiny(), Inputs(TEXT))
    assert [r.item for r in results] == list(ITEMS)
    ac, resume, crash = results
    assert ac.metrics["ours_vs_none.grad_max_abs_diff"] == 0.0
    assert ac.metrics["ours_vs_torch.grad_max_abs_diff"] == 0.0
    assert ac.metrics["ours.saved_activation_bytes"] < ac.metrics["none.saved_activation_bytes"]
    assert resume.metrics["full.max_abs_diff"] == 0.0
    assert resume.metrics["weights_only.mean_abs_diff"] > 0.0
    assert resume.metrics["no_rng.max_abs_diff"] > 0.0  # dropout draws from the restored RNG
    assert crash.metrics["steps_missing"] == 0.0
    assert crash.metrics["max_abs_diff"] == 0.0
    # the demo parks after logging kill_after_step (9): the kill lands there on any machine, the
    # last checkpoint (every 4) is step 8, and step 9 is logged, lost and run again
    assert crash.metrics["killed_at_step"] == 9.0
    assert crash.metrics["checkpoint_step_at_kill"] == 8.0
    assert crash.metrics["replayed_steps"] == 1.0
    # clock / allocator readings are timings, their findings timed
    assert {"none.step_seconds", "ours.peak_rss_delta_bytes", "ours.time_ratio"} <= set(ac.timings)
    assert not any(k.endswith(("step_seconds", "peak_rss_delta_bytes", "time_ratio",
                               "peak_memory_ratio")) for k in ac.metrics)
    timed = {f.metric: f for f in ac.findings if f.timed}
    assert set(timed) == {"ours.peak_memory_ratio", "none_over_ours.time_ratio"}
    assert timed["none_over_ours.time_ratio"].n == 2
    assert crash.metrics["corrupt_checkpoint_clear_error"] == 1.0
    kinds = {f.metric: f.kind for f in crash.findings}
    assert kinds == {"max_abs_diff": "invariant", "corrupt_checkpoint_clear_error": "invariant",
                     "weights_only_restart.mean_abs_diff": "finding"}
    # the control restarts the crash's checkpoint with the weights only: it leaves the curve
    assert crash.metrics["weights_only_restart.mean_abs_diff"] > crash.metrics["max_abs_diff"]
    # the weights-only controls run on seed + extra_seeds, each against its own uninterrupted run
    controls = [f for f in resume.findings + crash.findings if f.metric.startswith("weights_only")]
    assert len(controls) == 3 and all(f.n == 3 for f in controls), controls
    for seed in (1, 2):
        assert resume.metrics[f"seed{seed}.weights_only.mean_abs_diff"] > 0.0
        assert crash.metrics[f"seed{seed}.weights_only_restart.mean_abs_diff"] > 0.0
    assert resume.metrics["seed1.weights_only.mean_abs_diff"] != resume.metrics["weights_only.mean_abs_diff"]


def test_demo_resumes_in_process_and_cuts_the_log(tmp_path):
    cfg = _tiny()
    config = {"model": cfg.model.__dict__, "train": cfg.train.__dict__, "seq_len": 16, "seed": 0}
    tokens = torch.arange(400) % 50
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        np.save(tmp_path / d / "tokens.npy", tokens.numpy())
        (tmp_path / d / "config.json").write_text(json.dumps(config))
    assert crash_demo.run(tmp_path / "a") == 0
    full = crash_demo.read_losses(tmp_path / "a" / crash_demo.LOSSES)
    # b: stop after 10 updates (checkpoint at 8), with a torn last line as a kill would leave
    trainer = crash_demo.build_trainer(config, tokens, tmp_path / "b" / crash_demo.CHECKPOINT)
    log = open(tmp_path / "b" / crash_demo.LOSSES, "w")
    trainer.on_step = lambda s, m: log.write(f'{{"step": {s}, "loss": {m["loss"]!r}}}\n')
    trainer.train(stop_at=10)
    log.write('{"step": 11, "lo')
    log.close()
    assert crash_demo.run(tmp_path / "b") == 8
    assert crash_demo.read_losses(tmp_path / "b" / crash_demo.LOSSES) == full
    assert sorted(crash_demo.read_losses(tmp_path / "b" / "replayed.jsonl")) == [9, 10]


def test_demo_reports_a_corrupt_checkpoint(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model": {}, "train": {}, "seq_len": 8}))
    np.save(tmp_path / "tokens.npy", np.arange(100) % 7)
    (tmp_path / crash_demo.CHECKPOINT).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SystemExit) as exc:
        crash_demo.main([str(tmp_path)])
    assert exc.value.code == 2
    assert "truncated or corrupt" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(resume_step=0), "resume_step=0 must be in"),
        (dict(kill_after_step=16), "kill_after_step=16 must be in"),
        (dict(seq_len=64), "seq_len=64 must be in"),
        (dict(ac_seq_len=64), "ac_seq_len=64 must be in"),
        (dict(ac_repeats=0), "ac_repeats must be >= 1"),
        (dict(ac_rounds=0), "ac_rounds must be >= 1"),
        (dict(ac_dropout=1.0), "ac_dropout must be in"),
        (dict(extra_seeds=[0, 1]), "extra_seeds"),
        (dict(extra_seeds=[1, 1]), "extra_seeds"),
    ],
)
def test_bad_config_fails_clearly(change, message):
    with pytest.raises(ValueError, match=message):
        replace(_tiny(), **change)
    with pytest.raises(ValueError, match="checkpoint_every must be >= 1"):
        replace(_tiny(), train=replace(_tiny().train, checkpoint_every=0))
