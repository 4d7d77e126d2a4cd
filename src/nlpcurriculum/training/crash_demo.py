"""A training process that can be killed at any moment and restarted: the crash-recovery demo.

    python -m nlpcurriculum.training.crash_demo RUN_DIR

``RUN_DIR`` holds ``config.json`` (``model``: :class:`MiniFormerConfig` fields, ``train``:
:class:`TrainerConfig` fields, ``seq_len``, ``seed``, ``step_delay_s``) and ``tokens.npy`` (a
1-D token stream). The process trains with :class:`~nlpcurriculum.training.trainer.Trainer`,
checkpointing atomically to ``RUN_DIR/ckpt.pt`` every ``train.checkpoint_every`` updates, and
appends one line ``{"step": s, "loss": l}`` per update to ``RUN_DIR/losses.jsonl`` (flushed and
fsynced, so a SIGKILL loses at most the line being written).

Started again after a kill, it finds ``ckpt.pt``, restores model, AdamW moments, LR schedule,
RNGs and the batcher's position (:meth:`Trainer.load`), cuts ``losses.jsonl`` back to the
checkpoint's step (the lines after it are moved to ``replayed.jsonl``: those updates are run
again) and continues. The stitched log is then the uninterrupted run's, to the last bit, which
is what :mod:`nlpcurriculum.experiments.checkpointing_and_fault_tolerance` checks. A truncated or corrupt checkpoint
stops the process with exit status 2 and a one-line :class:`CheckpointError` message.

:func:`build_trainer` is the one way a run is constructed (seed, model, batcher, trainer), shared
by this process and the in-process reference run, so both start from identical state.
``step_delay_s`` sleeps after each update, only so that a kill can land mid-run on a fast machine;
it touches no state. ``hold_at_step`` (optional) parks a fresh run right after it has logged that
update: it writes ``RUN_DIR/holding`` and sleeps until it is killed, so the kill lands at a known
step whatever the machine's load, and the crash experiment's numbers are the same on every run.
A resumed run never holds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.training.checkpoint import CheckpointError
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.trainer import Trainer, TrainerConfig, seed_everything

__all__ = ["CHECKPOINT", "HOLDING", "LOSSES", "build_trainer", "main", "read_losses", "run"]

CHECKPOINT = "ckpt.pt"
LOSSES = "losses.jsonl"
REPLAYED = "replayed.jsonl"
HOLDING = "holding"


def build_trainer(config: dict[str, Any], tokens: torch.Tensor,
                  checkpoint_path: str | Path | None = None) -> Trainer:
    """Seed, build the model and the batcher, and return a fresh :class:`Trainer`.

    Args:
        config: ``{"model": {...}, "train": {...}, "seq_len": T, "seed": s}``.
        tokens: 1-D token ids.
        checkpoint_path: where the trainer checkpoints.
    """
    model_cfg = MiniFormerConfig.from_dict(config["model"])
    train_cfg = TrainerConfig(**{**config["train"], "progress": False})
    seed_everything(int(config.get("seed", 0)))
    model = build_model(model_cfg)
    batcher = TokenBatcher(tokens, int(config["seq_len"]), mode="random",
                           seed=int(config.get("seed", 0)))
    return Trainer(model, train_cfg, batcher, checkpoint_path=checkpoint_path)


def read_losses(path: str | Path) -> dict[int, float]:
    """``{step: loss}`` from a ``losses.jsonl``; a torn last line (a kill mid-write) is skipped."""
    out: dict[int, float] = {}
    path = Path(path)
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        out[int(row["step"])] = float(row["loss"])
    return out


def _cut_log(run_dir: Path, step: int) -> None:
    """Keep the log's lines up to ``step``; move later ones to ``replayed.jsonl``."""
    log = run_dir / LOSSES
    losses = read_losses(log)
    kept = [f'{{"step": {s}, "loss": {v!r}}}' for s, v in sorted(losses.items()) if s <= step]
    later = [f'{{"step": {s}, "loss": {v!r}}}' for s, v in sorted(losses.items()) if s > step]
    if later:
        with open(run_dir / REPLAYED, "a") as f:
            f.write("".join(line + "\n" for line in later))
    tmp = log.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, log)


def run(run_dir: str | Path) -> int:
    """Train (resuming from ``RUN_DIR/ckpt.pt`` if present) to ``train.max_steps``.

    Returns:
        The step training started from (0 for a fresh run).

    Raises:
        CheckpointError: the checkpoint there is truncated, corrupt or does not fit.
    """
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    tokens = torch.from_numpy(np.load(run_dir / "tokens.npy").astype(np.int64))
    torch.set_num_threads(int(config.get("num_threads", 1)))
    ckpt = run_dir / CHECKPOINT
    trainer = build_trainer(config, tokens, checkpoint_path=ckpt)
    start = 0
    resumed = ckpt.exists()
    if resumed:
        trainer.load(ckpt)  # model, optimizer, scheduler, RNGs, data position, history
        start = trainer.step
        _cut_log(run_dir, start)
    elif (run_dir / LOSSES).exists():
        _cut_log(run_dir, 0)
    delay = float(config.get("step_delay_s", 0.0))
    hold = config.get("hold_at_step")
    hold = int(hold) if hold is not None and not resumed else None
    log = open(run_dir / LOSSES, "a")

    def on_step(step: int, metrics: dict[str, float]) -> None:
        log.write(f'{{"step": {step}, "loss": {metrics["loss"]!r}}}\n')
        log.flush()
        os.fsync(log.fileno())
        if delay:
            time.sleep(delay)
        if step == hold:  # parked until killed: the kill lands right after this update
            (run_dir / HOLDING).write_text(str(step))
            while True:
                time.sleep(1.0)

    trainer.on_step = on_step
    try:
        trainer.train()
    finally:
        log.close()
    return start


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m nlpcurriculum.training.crash_demo RUN_DIR", file=sys.stderr)
        sys.exit(2)
    try:
        start = run(args[0])
    except (CheckpointError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"crash_demo: trained from step {start}")


if __name__ == "__main__":
    main()
