"""The checkpoint file: its format header, its error, and reading it back safely.

A checkpoint is one ``torch.save`` file holding a dict under a format/version header
(``{"format": "nlpcurriculum.checkpoint", "version": 1, "model": state_dict, "model_config":
{...}, ...}``), so a file from a different program or an incompatible version is rejected with a
clear message instead of a cryptic ``KeyError``. :mod:`nlpcurriculum.training.checkpoint` writes
it (with the optimizer, scheduler, RNG and data state that make a resumed run exact) and restores
training objects from it; :func:`~nlpcurriculum.models.miniformer.load_model` rebuilds a model
from it. Both read it through :func:`read_checkpoint`, which lives here, below both.

Reading uses ``torch.load(weights_only=True)``: only tensors and plain containers are unpickled,
so a checkpoint cannot run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointError", "read_checkpoint"]

CHECKPOINT_FORMAT = "nlpcurriculum.checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupt, of another format, or does not fit."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The payload of the checkpoint at ``path``, its header checked.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, or has another format or
            version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint file there")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zipfile / pickle / EOF errors all mean the same to the user
        raise CheckpointError(
            f"{path}: cannot read checkpoint, truncated or corrupt ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an {CHECKPOINT_FORMAT} file")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {payload.get('version')} is not supported "
            f"(this code reads version {CHECKPOINT_VERSION})"
        )
    return payload
