"""A small, exact language-model trainer: AdamW, warmup + cosine, clipping, accumulation, resume.

One optimizer update ("step") is:

1. ``grad_accum`` micro-batches of ``batch_size`` sequences: forward, loss / grad_accum,
   backward. Gradients add up across micro-batches, so the update equals one on a batch
   ``grad_accum`` times larger (exactly, for a mean loss over equal-size micro-batches) in the
   memory of one micro-batch.
2. Clip the global gradient norm to ``grad_clip`` (Pascanu et al. 2013, arXiv:1211.5063): a rare
   huge gradient (a loss spike) is scaled down instead of wrecking the weights.
3. AdamW (Loshchilov & Hutter 2017, arXiv:1711.05101): Adam with weight decay applied to the
   weights directly, not through the gradient. Decay is applied to matrices (linear weights,
   embeddings) only, never to biases or norm gains, which set scales rather than store features
   (the nanoGPT / GPT-3 split).
4. Advance the :mod:`~nlpcurriculum.training.lr_schedule` (linear warmup, cosine decay).

Every ``eval_every`` steps the model is evaluated on the same ``eval_batches`` validation
batches (so the curve compares like with like); every ``checkpoint_every`` steps an exact,
atomic checkpoint is written. A run resumed from a checkpoint produces bit-identical subsequent
losses (tested). Metrics go to an ``on_step(step, metrics)`` callback, so a stage can forward
them to MLflow without this library importing it.

Left out here (each has its own module): mixed precision (``training/amp.py``), data / pipeline
parallelism (``training/distributed/``), activation checkpointing
(``training/activation_checkpointing.py``). Not implemented: EMA weights, early stopping.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from nlpcurriculum.models.miniformer import MiniFormer
from nlpcurriculum.training.checkpoint import load_checkpoint, save_checkpoint
from nlpcurriculum.training.lr_schedule import build_scheduler
from nlpcurriculum.training.progress import progress

__all__ = [
    "BatchSource",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "lm_loss",
    "param_groups",
    "seed_everything",
]


@dataclass
class TrainerConfig:
    """Knobs of :class:`Trainer` (maps 1:1 onto a ``train`` block of params).

    Attributes:
        lr: peak learning rate.
        min_lr_ratio: the cosine floor as a fraction of ``lr``.
        weight_decay: AdamW decoupled decay on matrices.
        betas: Adam's moment decay rates (0.95 for beta2 is the LLM norm: reacts faster to
            gradient-scale changes than 0.999).
        eps: Adam's epsilon.
        warmup_steps: updates of linear warmup.
        max_steps: total optimizer updates.
        batch_size: sequences per micro-batch.
        grad_accum: micro-batches per update (effective batch = batch_size * grad_accum).
        grad_clip: max global gradient norm; ``None`` or 0 disables clipping.
        eval_every: evaluate every this many updates (and after the last); 0 disables.
        eval_batches: validation batches per evaluation.
        checkpoint_every: checkpoint every this many updates (needs a checkpoint path); 0: only at
            the end.
        seed: seeds Python, NumPy and torch when the trainer is created.
        progress: show a progress bar on stderr (:func:`~nlpcurriculum.training.progress.progress`:
            live on a terminal, a line every 30 s in a log; display only).
        fused_optimizer: use torch's fused AdamW kernel (same math, one kernel for all params).
    """

    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    warmup_steps: int = 10
    max_steps: int = 100
    batch_size: int = 16
    grad_accum: int = 1
    grad_clip: float | None = 1.0
    eval_every: int = 50
    eval_batches: int = 10
    checkpoint_every: int = 0
    seed: int = 0
    progress: bool = True
    fused_optimizer: bool = True

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # params files give a list
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        for name in ("max_steps", "batch_size", "grad_accum", "eval_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.warmup_steps > self.max_steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} exceeds max_steps={self.max_steps}")
        if self.grad_clip is not None and self.grad_clip < 0:
            raise ValueError(f"grad_clip must be >= 0 or None, got {self.grad_clip}")


class BatchSource(Protocol):
    """The trainer's data interface, e.g. :class:`~nlpcurriculum.training.data.TokenBatcher`."""

    def next_batch(self, batch_size: int) -> Any: ...

    def eval_batches(self, batch_size: int, n_batches: int) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def lm_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Default loss: next-token cross-entropy of ``model(x, targets=y).loss``.

    In training mode, plus the model's ``aux_loss`` when its output has one (the weighted
    load-balancing losses of mixture-of-experts layers); evaluation reports the LM loss alone.
    """
    x, y = batch
    # a MiniFormer can skip the (B, T, V) logits when only the loss is wanted (fused head + loss)
    out = model(x, targets=y, return_logits=False) if isinstance(model, MiniFormer) else model(x, targets=y)
    aux = getattr(out, "aux_loss", None)
    return out.loss + aux if aux is not None and model.training else out.loss


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split parameters into a decayed group (dim >= 2: matrices, embeddings) and the rest.

    Tied parameters appear once (``named_parameters`` de-duplicates).
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


@dataclass
class TrainResult:
    """What :meth:`Trainer.train` returns.

    Attributes:
        history: one metrics dict per update (``step``, ``loss``, ``lr``, ``grad_norm``,
            ``tokens_per_s``, and ``val_loss`` on evaluation steps), across resumes.
        steps: updates completed.
        final_val_loss: the last validation loss (``None`` without validation data).
        tokens_seen: training tokens processed.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    final_val_loss: float | None = None
    tokens_seen: int = 0


class Trainer:
    """Train a model on a :class:`BatchSource`.

    Creating the trainer seeds every RNG with ``cfg.seed``; build the model before (seeding
    yourself with :func:`seed_everything`) so its initialisation is reproducible too.

    Args:
        model: returns an object with ``.loss`` from ``model(x, targets=y)`` (or pass ``loss_fn``).
        cfg: the training knobs.
        train_data: training batches.
        val_data: validation batches (optional).
        checkpoint_path: where :meth:`train` writes checkpoints (optional).
        on_step: called as ``on_step(step, metrics)`` after every update.
        loss_fn: ``loss_fn(model, batch) -> scalar loss``; default :func:`lm_loss`.
        extra: plain values saved in every checkpoint's ``extra`` (e.g. a fingerprint of the
            training data, so a caller can tell whether a checkpoint belongs to this run).
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainerConfig,
        train_data: BatchSource,
        val_data: BatchSource | None = None,
        *,
        checkpoint_path: str | Path | None = None,
        on_step: Callable[[int, dict[str, float]], None] | None = None,
        loss_fn: Callable[[nn.Module, Any], Tensor] = lm_loss,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.model, self.cfg = model, cfg
        self.train_data, self.val_data = train_data, val_data
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.on_step, self.loss_fn = on_step, loss_fn
        self.extra = dict(extra or {})
        seed_everything(cfg.seed)
        self.optimizer = torch.optim.AdamW(
            param_groups(model, cfg.weight_decay),
            lr=cfg.lr,
            betas=cfg.betas,
            eps=cfg.eps,
            fused=cfg.fused_optimizer or None,
        )
        self.scheduler = build_scheduler(
            self.optimizer, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio
        )
        self.step = 0
        self.tokens_seen = 0
        self.history: list[dict[str, float]] = []

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean loss over the fixed validation batches (weighted by batch size)."""
        if self.val_data is None:
            raise ValueError("evaluate() needs val_data")
        was_training = self.model.training
        self.model.eval()
        total, count = 0.0, 0
        for batch in self.val_data.eval_batches(self.cfg.batch_size, self.cfg.eval_batches):
            n = len(batch[0])
            total += float(self.loss_fn(self.model, batch)) * n
            count += n
        self.model.train(was_training)
        if count == 0:
            raise ValueError("validation data produced no batches")
        return total / count

    def train_step(self) -> dict[str, float]:
        """One optimizer update (``grad_accum`` micro-batches); returns its metrics."""
        cfg = self.cfg
        self.model.train()
        t0 = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]  # the lr this update uses
        loss_sum, tokens = 0.0, 0
        for _ in range(cfg.grad_accum):
            batch = self.train_data.next_batch(cfg.batch_size)
            loss = self.loss_fn(self.model, batch)
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"non-finite loss {value} at step {self.step}")
            (loss / cfg.grad_accum).backward()  # gradients accumulate: mean over micro-batches
            loss_sum += value
            tokens += batch[0].numel()
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        if cfg.grad_clip:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        else:
            grad_norm = float(torch.stack([p.grad.norm() for p in params]).norm())
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens_seen += tokens
        dt = time.perf_counter() - t0
        return {
            "loss": loss_sum / cfg.grad_accum,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens_per_s": tokens / dt,
        }

    def train(self, stop_at: int | None = None) -> TrainResult:
        """Run updates until ``cfg.max_steps`` (continuing from a loaded checkpoint).

        Args:
            stop_at: stop early after this many total updates, as an interruption would; the
                schedule still runs to ``max_steps``, so a later :meth:`load` + :meth:`train`
                continues the same run.
        """
        cfg = self.cfg
        end = cfg.max_steps if stop_at is None else min(stop_at, cfg.max_steps)
        bar = progress(total=cfg.max_steps, initial=self.step, enabled=cfg.progress, desc="train",
                       unit="step")
        val_loss = next((h["val_loss"] for h in reversed(self.history) if "val_loss" in h), None)
        try:
            while self.step < end:
                metrics = self.train_step()
                last = self.step == cfg.max_steps
                due = cfg.eval_every and (self.step % cfg.eval_every == 0 or last)
                if self.val_data is not None and due:
                    val_loss = metrics["val_loss"] = self.evaluate()
                self.history.append({"step": self.step, **metrics})
                if self.on_step is not None:
                    self.on_step(self.step, metrics)
                if self.checkpoint_path is not None and (
                    last or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0)
                ):
                    self.save(self.checkpoint_path)
                # refresh=False: the bar redraws on its own schedule, not once per step
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}", refresh=False)
                bar.update(1)
        finally:
            bar.close()
        return TrainResult(list(self.history), self.step, val_loss, self.tokens_seen)

    def save(self, path: str | Path) -> Path:
        """Write an exact-resume checkpoint of the current state."""
        model_cfg = getattr(self.model, "config", None)
        return save_checkpoint(
            path,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            step=self.step,
            data_state=self.train_data.state_dict(),
            model_config=(
                dataclasses.asdict(model_cfg) if dataclasses.is_dataclass(model_cfg) else None
            ),
            trainer_config=dataclasses.asdict(self.cfg),
            extra={**self.extra, "history": self.history, "tokens_seen": self.tokens_seen},
        )

    def load(self, path: str | Path) -> None:
        """Restore model, optimizer, scheduler, RNGs, data position and history from ``path``.

        Raises:
            CheckpointError: missing, corrupt or mismatched checkpoint.
        """
        payload = load_checkpoint(
            path,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            restore_rng=True,
        )
        if payload["data"] is not None:
            self.train_data.load_state_dict(payload["data"])
        self.step = payload["step"]
        self.history = list(payload["extra"].get("history", []))
        self.tokens_seen = int(payload["extra"].get("tokens_seen", 0))
