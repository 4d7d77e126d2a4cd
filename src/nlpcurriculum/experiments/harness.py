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
  (re-exported from :mod:`nlpcurriculum.metrics.timing`);
- :class:`CorpusSplits`: the ``Inputs`` of the experiments that read the corpus's splits;
- :func:`map_seeds`: run one seed's work for several seeds, side by side in worker processes
  (docs/CONVENTIONS.md, "Noise": comparisons over >= 3 seeds inside a section's time budget).

Byte-level LM runs at an equal budget, shared by the experiments on training data (synthetic
vs real text, :mod:`~nlpcurriculum.experiments.synthetic_data.synthetic_curves`; raw vs
deduplicated vs filtered text,
:mod:`~nlpcurriculum.experiments.deduplication_and_filtering.dedup_impact`):

- :class:`LMBudget`: the small model and its training budget, the same for every run;
- :func:`byte_stream`: texts -> UTF-8 bytes joined (and ended) by a NUL byte (:data:`DOC_SEP`,
  never in text, so it acts as an end-of-text token);
- :class:`MixedBatcher`: batches drawn in fixed shares from several token streams;
- :func:`evaluate_stream` / :func:`word_completion`: next-byte loss and greedy next-word accuracy;
- :func:`train_and_track`: train a fresh model, recording every validation stream's loss.

Byte tokens rather than the project's BPE tokenizer keep these stages independent of the
tokenizer stage and their losses comparable across stages (bits per byte = loss / ln 2).

Left out: anything a single experiment needs alone (it lives in that experiment's module).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from nlpcurriculum.metrics.timing import torch_threads
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.tokenizers.bytes import BYTE_VOCAB, byte_tokens
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.trainer import (
    BatchSource,
    Trainer,
    TrainerConfig,
    TrainResult,
    seed_everything,
)

__all__ = [
    "BYTE_VOCAB",
    "DOC_SEP",
    "CorpusSplits",
    "LMBudget",
    "MixedBatcher",
    "byte_stream",
    "byte_tokens",
    "curve",
    "evaluate_stream",
    "map_seeds",
    "final_train_loss",
    "mean_loss",
    "plot_curves",
    "torch_threads",
    "train_and_track",
    "train_run",
    "uniform_loss",
    "word_completion",
]


@dataclass(frozen=True)
class CorpusSplits:
    """What an experiment trained on the corpus reads: the texts of its splits (the ``splits``
    contract), tokenized by the experiment (:func:`byte_tokens`). The ``Inputs`` of those modules.
    """

    train_texts: Sequence[str]
    val_texts: Sequence[str]
    test_texts: Sequence[str] = ()



def map_seeds(fn: Callable[..., Any], seeds: Sequence[int], workers: int, *args: Any) -> list[Any]:
    """``[fn(seed, *args) for seed in seeds]``, up to ``workers`` seeds at a time in processes.

    Independent seeds of a comparison are independent jobs, so on a multi-core CPU they run side
    by side (each worker should pin its own torch threads, e.g. with :func:`torch_threads`).
    ``fn`` must be a module-level function and its arguments and result picklable; workers are
    started with ``spawn`` (a fresh interpreter, no forked OpenMP state). ``workers <= 1`` runs
    the seeds one after another in this process. Results come back in the order of ``seeds``,
    and each depends only on its seed, so the output is the same for any ``workers``.
    """
    if workers <= 1 or len(seeds) <= 1:
        return [fn(seed, *args) for seed in seeds]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(seeds)), mp_context=context) as pool:
        futures = [pool.submit(fn, seed, *args) for seed in seeds]
        return [f.result() for f in futures]


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


# --------------------------- byte-level LM runs at an equal budget (synthetic_curves, dedup_impact)

DOC_SEP = 0  # NUL: never in real text, so it acts as an end-of-text token


@dataclass
class LMBudget:
    """The small LM and its training budget, shared by every run of an experiment.

    Attributes:
        d_model: width of the mini-former.
        n_layers: number of blocks.
        n_heads: attention heads.
        seq_len: context length T (bytes).
        steps: optimizer updates per run (equal for every dataset: equal tokens seen).
        batch_size: sequences per update; tokens per update = batch_size * seq_len.
        lr: peak learning rate (warmup + cosine, see :class:`TrainerConfig`).
        warmup_steps: linear warmup updates.
        eval_every: evaluate every this many updates (and at step 0 and the end).
        eval_batches: validation batches per evaluation and per validation set.
    """

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    seq_len: int = 128
    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 20
    eval_every: int = 50
    eval_batches: int = 8

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "seq_len", "steps", "batch_size",
                     "eval_every", "eval_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps], got {self.warmup_steps}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    def model_config(self) -> MiniFormerConfig:
        return MiniFormerConfig(vocab_size=256, d_model=self.d_model, n_layers=self.n_layers,
                                n_heads=self.n_heads, max_seq_len=self.seq_len)

    def trainer_config(self, seed: int) -> TrainerConfig:
        # eval_every=0: this module evaluates several validation sets itself in on_step
        return TrainerConfig(lr=self.lr, warmup_steps=self.warmup_steps, max_steps=self.steps,
                             batch_size=self.batch_size, eval_every=0, seed=seed,
                             progress=False)


def byte_stream(texts: Sequence[str]) -> Tensor:
    """UTF-8 bytes of ``texts``, each followed by :data:`DOC_SEP`, as a 1-D int64 tensor."""
    return byte_tokens(texts, chr(DOC_SEP), end=True)


class MixedBatcher:
    """Batches drawn in fixed shares from several :class:`TokenBatcher` (e.g. a 50/50 mix).

    Every batch holds ``round(share * B)`` rows of each source, so the mix ratio holds at every
    step, not only on average. Evaluation uses the first source's fixed batches.
    """

    def __init__(self, sources: Sequence[TokenBatcher], shares: Sequence[float]) -> None:
        if len(sources) != len(shares) or not sources:
            raise ValueError("MixedBatcher needs one share per source")
        if any(s <= 0 for s in shares):
            raise ValueError(f"shares must be > 0, got {list(shares)}")
        total = float(sum(shares))
        self.sources, self.shares = list(sources), [s / total for s in shares]

    def _rows(self, batch_size: int) -> list[int]:
        rows = [int(round(s * batch_size)) for s in self.shares]
        rows[-1] = batch_size - sum(rows[:-1])  # rounding leftovers go to the last source
        return rows

    def next_batch(self, batch_size: int) -> tuple[Tensor, Tensor]:
        parts = [src.next_batch(n) for src, n in zip(self.sources, self._rows(batch_size)) if n]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])  # (B, T) each

    def eval_batches(self, batch_size: int, n_batches: int):
        return self.sources[0].eval_batches(batch_size, n_batches)

    def state_dict(self) -> dict[str, Any]:
        return {"sources": [s.state_dict() for s in self.sources]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for src, st in zip(self.sources, state["sources"]):
            src.load_state_dict(st)


def _is_letter(b: np.ndarray) -> np.ndarray:
    return ((b >= 65) & (b <= 90)) | ((b >= 97) & (b <= 122))


def word_completion(pred: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    """Count (correct, total) greedy next-word completions in one window, teacher-forced.

    A word is "completed" when greedy decoding from the context before it reproduces its letters
    and then the byte that ends it. Greedy decoding follows the true path exactly as long as
    every argmax matches, so this equals "every argmax along the word and its terminator is
    right" under teacher forcing, and costs one forward pass instead of a decode loop. Worked
    example: target bytes ``" cat."`` after context ``"the"``: the word starts at ``c``
    (preceded by a space); it counts as correct only if argmax predicts ``c``, ``a``, ``t`` and
    ``.`` at those four positions.

    Args:
        pred: ``(T,)`` argmax byte predictions; x: ``(T,)`` input bytes; y: ``(T,)`` targets.

    A word starts at position ``s`` where ``y[s]`` is a letter and ``x[s]`` (the byte before it)
    is a space; it ends at the first non-letter target ``e > s``, which must be predicted too.
    Words whose terminator falls outside the window are skipped.
    """
    letters = _is_letter(y)
    starts = np.flatnonzero(letters & (x == 32))
    ok = pred == y
    correct = total = 0
    for s in starts:
        rest = np.flatnonzero(~letters[s:])
        if rest.size == 0:
            continue  # word runs past the window
        e = s + rest[0]
        total += 1
        correct += int(ok[s:e + 1].all())
    return correct, total


@torch.no_grad()
def evaluate_stream(model: torch.nn.Module, data: TokenBatcher, batch_size: int, n_batches: int,
                    words: bool = False) -> dict[str, float]:
    """Mean next-byte loss on ``data``'s fixed eval batches; with ``words``, next-word accuracy.

    Returns:
        ``{"loss": nats per byte}`` plus ``"word_acc"`` and ``"words"`` (count) when ``words``.
    """
    was_training = model.training
    model.eval()
    loss_sum, n_tok, correct, total = 0.0, 0, 0, 0
    for x, y in data.eval_batches(batch_size, n_batches):
        out = model(x, targets=y)
        loss_sum += float(out.loss) * y.numel()
        n_tok += y.numel()
        if words:
            pred = out.logits.argmax(-1).numpy()  # (B, T)
            xs, ys = x.numpy(), y.numpy()
            for b in range(len(xs)):
                c, t = word_completion(pred[b], xs[b], ys[b])
                correct, total = correct + c, total + t
    model.train(was_training)
    result = {"loss": loss_sum / max(n_tok, 1)}
    if words:
        result["word_acc"] = correct / max(total, 1)
        result["words"] = float(total)
    return result


def train_and_track(
    budget: LMBudget,
    train_data: Any,
    evals: dict[str, TokenBatcher],
    seed: int,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[torch.nn.Module, dict[str, list[tuple[int, float]]]]:
    """Train a fresh model for ``budget.steps`` and record every eval set's loss along the way.

    Args:
        budget: model size and training budget.
        train_data: a batch source (:class:`TokenBatcher` or :class:`MixedBatcher`).
        evals: validation streams by name; each is evaluated at step 0, every ``eval_every``
            steps and at the end.
        seed: seeds model init and training.
        on_step: forwarded the trainer's metrics plus ``val/<name>`` losses.

    Returns:
        The trained model and ``{name: [(step, loss), ...]}`` curves.
    """
    seed_everything(seed)
    model = build_model(budget.model_config())
    curves: dict[str, list[tuple[int, float]]] = {name: [] for name in evals}

    def record(step: int) -> dict[str, float]:
        out = {}
        for name, data in evals.items():
            loss = evaluate_stream(model, data, budget.batch_size, budget.eval_batches)["loss"]
            curves[name].append((step, loss))
            out[f"val/{name}"] = loss
        return out

    record(0)

    def hook(step: int, metrics: dict[str, float]) -> None:
        if step % budget.eval_every == 0 or step == budget.steps:
            metrics = {**metrics, **record(step)}
        if on_step is not None:
            on_step(step, metrics)

    Trainer(model, budget.trainer_config(seed), train_data, on_step=hook).train()
    return model, curves
