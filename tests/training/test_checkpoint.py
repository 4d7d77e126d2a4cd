"""Checkpoints: full round trip, atomic writes, a sidecar, and clear errors on bad files."""

import json
import random

import numpy as np
import pytest
import torch

from nlpcurriculum.training import checkpoint as ckpt
from nlpcurriculum.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nlpcurriculum.training.lr_schedule import build_scheduler


def _setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = build_scheduler(opt, 2, 10)
    return model, opt, sched


def _train(model, opt, sched, steps=3):
    for _ in range(steps):
        model(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
        sched.step()
        opt.zero_grad()


def test_round_trip_restores_weights_optimizer_scheduler_and_rngs(tmp_path):
    model, opt, sched = _setup()
    _train(model, opt, sched)
    path = save_checkpoint(tmp_path / "run" / "c.pt", model=model, optimizer=opt, scheduler=sched, step=3,
                           data_state={"position": 7}, model_config={"d": 4}, extra={"history": [1.5, 2.5]})
    draws = (random.random(), float(np.random.rand()), float(torch.rand(1)))

    model2, opt2, sched2 = _setup(seed=1)
    payload = load_checkpoint(path, model=model2, optimizer=opt2, scheduler=sched2, restore_rng=True)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == draws
    assert payload["step"] == 3 and payload["data"] == {"position": 7} and payload["extra"]["history"] == [1.5, 2.5]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    assert sched2.last_epoch == 3 and opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    # the restored optimizer continues exactly like the original
    torch.manual_seed(5)
    _train(model, opt, sched, 2)
    torch.manual_seed(5)
    _train(model2, opt2, sched2, 2)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters()))


def test_writes_a_readable_sidecar_and_leaves_no_temp_files(tmp_path):
    model, _, _ = _setup()
    save_checkpoint(tmp_path / "c.pt", model=model, step=12, model_config={"d_model": 4})
    side = json.loads((tmp_path / "c.pt.json").read_text())
    assert side["format"] == ckpt.CHECKPOINT_FORMAT and side["version"] == ckpt.CHECKPOINT_VERSION
    assert side["step"] == 12 and side["model_config"] == {"d_model": 4}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "c.pt.json"]


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, _, _ = _setup()
    path = save_checkpoint(tmp_path / "c.pt", model=model, step=1)

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model=model, step=2)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "c.pt.json"]


def test_missing_file_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "nope.pt")


def test_truncated_file_raises_checkpoint_error(tmp_path):
    model, _, _ = _setup()
    path = save_checkpoint(tmp_path / "c.pt", model=model)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_foreign_or_newer_files_raise_checkpoint_error(tmp_path):
    torch.save({"state": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"format": ckpt.CHECKPOINT_FORMAT, "version": 99}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path / "new.pt")


def test_mismatched_model_raises_checkpoint_error(tmp_path):
    model, _, _ = _setup()
    path = save_checkpoint(tmp_path / "c.pt", model=model)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(path, model=torch.nn.Linear(4, 2))
    with pytest.raises(CheckpointError, match="no optimizer"):
        load_checkpoint(path, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
