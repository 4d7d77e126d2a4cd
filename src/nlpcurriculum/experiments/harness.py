"""What the model experiments share: byte tokens, seeded training runs, losses, curves and plots.

The attention, stacking and normalization experiments all train small
:class:`~nlpcurriculum.models.miniformer.MiniFormer` language models, either on the corpus
(``data/processed/splits``, tokenized as UTF-8 bytes: vocabulary 256, no tokenizer to train,
every text representable) or on a generated toy task. This module holds the few steps they
have in common, so each experiment reads as its own idea and not as training boilerplate:

- :func:`byte_tokens` / :data:`BYTE_VOCAB`: texts -> one stream of byte ids (documents joined by a
  blank line), re-exported from :mod:`nlpcurriculum.tokenizers.bytes`;
- :func:`train_run`: seed, build, train with :class:`~nlpcurriculum.training.trainer.Trainer`,
  and return the model with its :class:`~nlpcurriculum.training.trainer.TrainResult`;
- :func:`mean_loss`: token-weighted cross-entropy over fixed evaluation batches;
- :func:`curve` / :func:`final_train_loss`: the step series out of a training history;
- :func:`plot_curves`: loss curves, one line per run, on one axis;
- :func:`torch_threads`: run a block with a given number of torch threads, then restore
  (re-exported from :mod:`nlpcurriculum.metrics.timing`).

Byte tokens rather than the project's BPE tokenizer keep these stages independent of the
tokenizer stage and their losses comparable across stages (bits per byte = loss / ln 2).

Left out: anything a single experiment needs alone (it lives in that experiment's module).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from nlpcurriculum.metrics.timing import torch_threads
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.tokenizers.bytes import BYTE_VOCAB, byte_tokens
from nlpcurriculum.training.trainer import (
    BatchSource,
    Trainer,
    TrainerConfig,
    TrainResult,
    seed_everything,
)

__all__ = [
    "BYTE_VOCAB",
    "byte_tokens",
    "curve",
    "final_train_loss",
    "mean_loss",
    "plot_curves",
    "torch_threads",
    "train_run",
    "uniform_loss",
]


def train_run(
    model_cfg: MiniFormerConfig | None,
    train_cfg: TrainerConfig,
    train_data: BatchSource,
    val_data: BatchSource | None,
    *,
    seed: int,
    model: nn.Module | None = None,
    wrap: Callable[[nn.Module], Any] | None = None,
) -> tuple[nn.Module, TrainResult]:
    """Build a model from ``seed`` (unless given) and train it.

    Args:
        model_cfg: the architecture (ignored when ``model`` is given).
        train_cfg: the trainer's knobs.
        train_data: training batches.
        val_data: validation batches (evaluated every ``train_cfg.eval_every`` steps).
        seed: seeds the initialisation; the trainer reseeds with ``train_cfg.seed`` for the data
            and dropout, so two runs differing only in architecture see the same batches.
        model: an already built model (e.g. a baseline that is not a MiniFormer).
        wrap: ``wrap(model)`` returns a context manager active during training (e.g. a Q/K/V
            intervention to retrain under).

    Returns:
        ``(model, result)``, the model in eval mode.
    """
    if model is None:
        if model_cfg is None:
            raise ValueError("train_run needs a model_cfg or a model")
        seed_everything(seed)
        model = build_model(model_cfg)
    trainer = Trainer(model, train_cfg, train_data, val_data)
    if wrap is None:
        result = trainer.train()
    else:
        with wrap(model):
            result = trainer.train()
    return model.eval(), result


@torch.no_grad()
def mean_loss(model: nn.Module, data: BatchSource, batch_size: int, n_batches: int) -> float:
    """Cross-entropy per scored token over ``data.eval_batches(batch_size, n_batches)``.

    Weighted by the number of scored targets (targets equal to -100 are not scored), so it is
    the true per-token mean even when batches differ in how many targets they score.
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for x, y in data.eval_batches(batch_size, n_batches):
        n = int((y != -100).sum())
        if n:
            total += float(model(x, targets=y).loss) * n
            count += n
    model.train(was_training)
    if count == 0:
        raise ValueError("the evaluation batches contain no scored targets")
    return total / count


def curve(history: list[dict[str, float]], key: str = "val_loss") -> list[tuple[int, float]]:
    """``[(step, history[step][key]), ...]`` for the steps that recorded ``key``."""
    return [(int(h["step"]), float(h[key])) for h in history if key in h]


def final_train_loss(history: list[dict[str, float]], last: int = 20) -> float:
    """Mean training loss over the last ``last`` updates (one batch's loss is noisy)."""
    if not history:
        raise ValueError("empty training history")
    tail = [h["loss"] for h in history[-last:]]
    return sum(tail) / len(tail)


def plot_curves(
    curves: dict[str, list[tuple[int, float]]],
    title: str,
    ylabel: str = "validation loss (nats / token)",
    hlines: dict[str, float] | None = None,
    logy: bool = False,
) -> Figure:
    """One line per run against optimizer step, plus labelled horizontal reference lines.

    Args:
        curves: ``{label: [(step, value), ...]}``.
        title: axes title.
        ylabel: y-axis label.
        hlines: ``{label: y}`` reference levels (e.g. ``{"uniform": log(V)}``).
        logy: log-scale y axis (for losses that approach 0).
    """
    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.subplots()
    for label, points in curves.items():
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, marker="." if len(points) < 30 else None, label=label)
    for i, (label, y) in enumerate((hlines or {}).items()):
        ax.axhline(y, color="grey", linestyle=(0, (4, 2 + 2 * i)), linewidth=1.0, label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def uniform_loss(vocab_size: int) -> float:
    """``log(V)``: the loss of predicting every token with probability ``1/V``."""
    return math.log(vocab_size)

