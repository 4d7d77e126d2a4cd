"""Training checkpoints that resume exactly: weights, optimizer, schedule, RNGs and data position.

Resuming a run must give the same losses as never having stopped. That needs more than the
weights: AdamW's moment estimates and step counts, the scheduler's position, every random number
generator that training draws from (Python's ``random``, NumPy's global generator, torch's CPU
generator and, when present, CUDA's) and the data loader's cursor and generator. A checkpoint
holds all of them, under a format/version header so a file from a different program or an
incompatible version is rejected with a clear message instead of a cryptic ``KeyError``. The
file format and its reading live below training, in :mod:`nlpcurriculum.models.checkpoint`
(``load_model`` reads checkpoints too); they are re-exported here.

Writes are atomic (:func:`nlpcurriculum.io.atomic_path`): the payload goes to a temporary file in
the same directory, is flushed and fsynced, then ``os.replace``d over the target. A crash
mid-write leaves the previous checkpoint intact, never a half-written one under the real name; a
full disk raises ``io.DiskFullError``. A human-readable JSON sidecar
(``<name>.json``) records the header, the step and the configs.

Loading uses ``torch.load(weights_only=True)``: only tensors and plain containers are unpickled,
so a checkpoint cannot run code. (That is why the NumPy RNG state is stored as a tensor.)

Left out: sharded / distributed checkpoints, asynchronous saving, keeping the last k files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nlpcurriculum.io import atomic_path
from nlpcurriculum.models.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    read_checkpoint,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "capture_rng_state",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

def capture_rng_state() -> dict[str, Any]:
    """The state of every global RNG training draws from, as checkpoint-safe values."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),  # a tensor: weights_only-safe
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng_state` recorded."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    step: int = 0,
    data_state: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
    trainer_config: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temp file + ``os.replace``) plus a JSON sidecar.

    Args:
        path: target file (parents are created).
        model: whose ``state_dict`` is saved.
        optimizer: optional; its state (moments, step counts) is saved.
        scheduler: optional LR scheduler.
        step: number of completed optimizer updates.
        data_state: the batcher's ``state_dict()``.
        model_config: e.g. ``dataclasses.asdict(MiniFormerConfig)``, so the model can be rebuilt.
        trainer_config: the training config, for the record.
        extra: anything else made of tensors and plain Python values (e.g. the loss history).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": capture_rng_state(),
        "data": data_state,
        "model_config": model_config,
        "trainer_config": trainer_config,
        "extra": extra or {},
    }
    _atomic_write(path, lambda f: torch.save(payload, f))
    sidecar = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "step": int(step),
        "file": path.name,
        "model_config": model_config,
        "trainer_config": trainer_config,
    }
    text = json.dumps(sidecar, indent=2, sort_keys=True, default=str) + "\n"
    _atomic_write(path.with_name(path.name + ".json"), lambda f: f.write(text.encode()))
    return path


def _atomic_write(path: Path, write: Any) -> None:
    """``write(f)`` into a binary file that replaces ``path`` atomically (``io.atomic_path``)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    restore_rng: bool = False,
) -> dict[str, Any]:
    """Read a checkpoint, check its header and restore whatever objects are passed in.

    Args:
        path: the checkpoint file.
        model: if given, its weights are loaded (strictly: every key must match).
        optimizer: if given, its state is loaded.
        scheduler: if given, its state is loaded.
        restore_rng: also restore the global Python / NumPy / torch RNG states.

    Returns:
        The whole payload (``step``, ``data``, ``model_config``, ``extra``, ...).

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, has another format or version,
            or does not fit the objects passed in.
    """
    payload = read_checkpoint(path)  # the file and its header
    try:
        if model is not None:
            model.load_state_dict(payload["model"])
        if optimizer is not None:
            if payload["optimizer"] is None:
                raise CheckpointError(f"{path}: holds no optimizer state")
            optimizer.load_state_dict(payload["optimizer"])
        if scheduler is not None:
            if payload["scheduler"] is None:
                raise CheckpointError(f"{path}: holds no scheduler state")
            scheduler.load_state_dict(payload["scheduler"])
    except (RuntimeError, ValueError, KeyError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path}: checkpoint does not fit the objects given: {e}") from e
    if restore_rng:
        restore_rng_state(payload["rng"])
    return payload
