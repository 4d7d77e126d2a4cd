"""Experiments of "Checkpointing & Fault Tolerance": recompute-in-backward, exact resume, SIGKILL.

1. *Activation checkpointing* (:func:`activation_item`): a byte-level mini-former at a long
   context (activations dominate the weights) is run with no checkpointing, with our
   :class:`~nlpcurriculum.training.activation_checkpointing.RecomputeBlock` on every block, and
   with ``torch.utils.checkpoint.checkpoint(use_reentrant=False)`` on every block (the
   reference). Measured: the loss and every parameter gradient against no checkpointing and
   against torch (with dropout on, so the RNG replay is exercised); the bytes autograd saves for
   backward (exact, via ``saved_tensors_hooks``, distinct storages); the peak resident-memory
   growth of one forward + backward (``VmHWM`` after a ``clear_refs`` reset, lowest of
   ``ac_repeats``: on CPU, "VRAM" is RAM); and the time of one forward + backward over
   ``ac_rounds`` interleaved rounds (the time ratio is the median of the per-round ratios).
   Peak RSS and times are clock / allocator readings: the item's ``timings``, their findings
   timed. Chen et al. 2016, arXiv:1604.06174.
2. *Resume with optimizer state* (:func:`resume_item`): one run is checkpointed at
   ``resume_step`` and continues uninterrupted; the same checkpoint is resumed four ways: with
   everything (:meth:`Trainer.load`), without the RNG state (dropout masks differ), without the
   data loader's position (the batches restart), and with the weights only (fresh AdamW moments,
   the warmup + cosine schedule from step 0, batches from the start): the naive resume. The
   per-step loss of each against the uninterrupted run.
3. *Crash recovery* (:func:`crash_item`): :mod:`nlpcurriculum.training.crash_demo` runs as a
   subprocess; parked right after it logs ``kill_after_step`` it gets SIGKILL, is started again,
   resumes from the last checkpoint and finishes. Its stitched loss log is compared with the
   uninterrupted in-process run of the same config (max abs difference), the updates it re-ran
   with those it had logged before the kill, and a truncated checkpoint must stop a restart with
   a clear :class:`~nlpcurriculum.training.checkpoint.CheckpointError` (invariants). The finding
   is the continuity check's control: the checkpoint the crash left, restarted with its weights
   only (the naive restart of item 2), leaves the uninterrupted curve.

Byte tokens (vocabulary 256) from the corpus splits. Left out: multi-process (DDP) checkpoints,
asynchronous checkpoint writes, keeping the last k checkpoints.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from nlpcurriculum.experiments.harness import BYTE_VOCAB, byte_tokens, mean_loss, torch_threads
from nlpcurriculum.metrics.timing import interleaved_rounds
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.training import crash_demo
from nlpcurriculum.training.activation_checkpointing import (
    checkpoint_blocks,
    peak_rss_delta,
    saved_tensor_bytes,
)
from nlpcurriculum.training.checkpoint import CheckpointError, load_checkpoint
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.trainer import Trainer, TrainerConfig, seed_everything

__all__ = [
    "ITEM",
    "ITEMS",
    "CheckpointingConfig",
    "Inputs",
    "activation_item",
    "crash_item",
    "resume_item",
    "run",
]

#: The curriculum item id of each result :func:`run` returns, by short name.
ITEM = {
    "activation": "checkpointing-and-fault-tolerance/1",
    "resume": "checkpointing-and-fault-tolerance/2",
    "crash": "checkpointing-and-fault-tolerance/3",
}
#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(ITEM.values())

AC_IMPLS = (None, "ours", "torch")
#: Item 1's measures read from a clock or the allocator: timings, not metrics.
TIMED_MEASURES = ("peak_rss_delta_bytes", "step_seconds")


@dataclass
class CheckpointingChecks:
    """Bounds of the findings that no knob above sets (params ``checkpointing.checks``).

    Attributes:
        min_corrupt_checkpoint_clear_error: item 3: 1 when a truncated checkpoint stops the restart
            with the one-line CheckpointError.
    """

    min_corrupt_checkpoint_clear_error: float = 1.0


@dataclass(kw_only=True)
class CheckpointingConfig:
    """The ``checkpointing`` section of params/checkpointing_and_fault_tolerance.yaml.

    Attributes:
        ac_model: item 1: the model whose activation memory is measured (long context, several
            blocks: activations dominate). ``vocab_size`` 256.
        ac_batch_size: item 1: windows per batch.
        ac_seq_len: item 1: window length (<= ``ac_model.max_seq_len``).
        ac_repeats: item 1: memory-measured repetitions (lowest peak).
        ac_rounds: item 1: interleaved timing rounds (one forward + backward per implementation
            each; the time finding compares them round by round).
        ac_dropout: item 1: dropout of the parity check (> 0 exercises the RNG replay).
        model: items 2-3: the trained model (dropout > 0, so the RNG state matters).
        train: items 2-3: trainer knobs (``checkpoint_every`` is the crash demo's interval).
        seq_len: items 2-3: training window length.
        seed: seeds model init, data and dropout.
        extra_seeds: items 2-3: the weights-only controls again on these seeds (each with its own
            uninterrupted run): their findings are over ``[seed, *extra_seeds]``.
        resume_step: item 2: the step the checkpoint is taken and resumed from.
        kill_after_step: item 3: SIGKILL once the subprocess has logged this step (best not a
            multiple of ``train.checkpoint_every``: the updates since the last checkpoint are
            then lost and run again).
        step_delay_s: item 3: sleep after each update of the subprocess (so the kill lands
            mid-run; changes no state).
        process_timeout_s: item 3: longest a subprocess may run.
        num_threads: torch intra-op threads.
        max_memory_ratio: item 1: peak memory with / without checkpointing must stay below this.
        max_time_ratio: item 1: step time with / without checkpointing must stay below this.
        grad_tol: item 1: max abs loss / gradient difference between implementations.
        max_loss_diff: items 2-3: max abs loss difference of an exact resume.
        min_naive_gap: items 2-3: the weights-only resume's mean abs loss gap (training losses,
            and losses on fixed batches) must reach this (nats); item 3: its training losses after
            a weights-only restart from the checkpoint the crash left.
        checks: the other bounds of the findings.
    """

    ac_model: MiniFormerConfig
    ac_batch_size: int = 8
    ac_seq_len: int = 256
    ac_repeats: int = 3
    ac_rounds: int = 7
    ac_dropout: float = 0.1
    model: MiniFormerConfig
    train: TrainerConfig
    seq_len: int = 64
    seed: int = 0
    extra_seeds: list[int] = field(default_factory=lambda: [1, 2])
    resume_step: int = 40
    kill_after_step: int = 55
    step_delay_s: float = 0.01
    process_timeout_s: float = 300.0
    num_threads: int = 1
    max_memory_ratio: float = 0.6
    max_time_ratio: float = 1.4
    grad_tol: float = 1e-6
    max_loss_diff: float = 1e-6
    min_naive_gap: float = 0.01
    checks: CheckpointingChecks = field(default_factory=CheckpointingChecks)

    def __post_init__(self) -> None:
        if self.seed in self.extra_seeds or len(set(self.extra_seeds)) != len(self.extra_seeds):
            raise ValueError(f"extra_seeds={self.extra_seeds} must be distinct and differ from seed={self.seed}")
        for name in ("ac_model", "model"):
            m = getattr(self, name)
            if m.vocab_size != BYTE_VOCAB:
                raise ValueError(f"{name}.vocab_size must be {BYTE_VOCAB} (byte tokens), got {m.vocab_size}")
        if not 2 <= self.ac_seq_len <= self.ac_model.max_seq_len:
            raise ValueError(f"ac_seq_len={self.ac_seq_len} must be in [2, ac_model.max_seq_len="
                             f"{self.ac_model.max_seq_len}]")
        if not 2 <= self.seq_len <= self.model.max_seq_len:
            raise ValueError(f"seq_len={self.seq_len} must be in [2, model.max_seq_len="
                             f"{self.model.max_seq_len}]")
        for name in ("ac_batch_size", "ac_repeats", "ac_rounds", "num_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.ac_dropout < 1.0:
            raise ValueError(f"ac_dropout must be in [0, 1), got {self.ac_dropout}")
        if not 1 <= self.resume_step < self.train.max_steps:
            raise ValueError(f"resume_step={self.resume_step} must be in [1, train.max_steps="
                             f"{self.train.max_steps})")
        if self.train.checkpoint_every < 1:
            raise ValueError("train.checkpoint_every must be >= 1 (the crash demo checkpoints)")
        if not self.train.checkpoint_every <= self.kill_after_step < self.train.max_steps:
            raise ValueError(f"kill_after_step={self.kill_after_step} must be in "
                             f"[train.checkpoint_every, train.max_steps={self.train.max_steps})")
        if self.step_delay_s < 0 or self.process_timeout_s <= 0:
            raise ValueError("step_delay_s must be >= 0 and process_timeout_s > 0")


# ---------------------------------------------------------------------------------------------
# item 1: activation checkpointing


def _ac_batch(tokens: torch.Tensor, cfg: CheckpointingConfig, batch: int) -> tuple:
    batcher = TokenBatcher(tokens, cfg.ac_seq_len, mode="random", seed=cfg.seed)
    return batcher.next_batch(batch)


def _grads(model_cfg: MiniFormerConfig, impl: str | None, x, y, seed: int):
    seed_everything(seed)
    model = checkpoint_blocks(build_model(model_cfg), impl).train()
    torch.manual_seed(seed + 1)  # the dropout stream
    loss = model(x, targets=y).loss
    loss.backward()
    return float(loss.detach()), [p.grad.clone() for p in model.parameters()]


def ac_parity(cfg: CheckpointingConfig, tokens: torch.Tensor) -> dict[str, float]:
    """Loss and max abs gradient differences: ours vs none, ours vs torch, torch vs none."""
    model_cfg = replace(cfg.ac_model, dropout=cfg.ac_dropout)
    x, y = _ac_batch(tokens, cfg, min(2, cfg.ac_batch_size))
    runs = {impl: _grads(model_cfg, impl, x, y, cfg.seed) for impl in AC_IMPLS}
    out = {}
    for a, b in (("ours", None), ("ours", "torch"), ("torch", None)):
        la, ga = runs[a]
        lb, gb = runs[b]
        name = f"{a}_vs_{b or 'none'}"
        out[f"{name}.loss_abs_diff"] = abs(la - lb)
        out[f"{name}.grad_max_abs_diff"] = max(float((p - q).abs().max()) for p, q in zip(ga, gb))
    return out


def ac_measure(cfg: CheckpointingConfig, tokens: torch.Tensor
               ) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    """Per implementation: saved bytes, peak RSS growth, median step time (forward + backward).

    The timed steps run in ``ac_rounds`` interleaved rounds (none, ours, torch; then reversed),
    so a change in the machine's load hits every implementation alike.

    Returns:
        ``({impl: {measure: value}}, {impl: [seconds per round]})``.
    """
    x, y = _ac_batch(tokens, cfg, cfg.ac_batch_size)
    models, out = {}, {}
    for impl in AC_IMPLS:
        seed_everything(cfg.seed)
        model = checkpoint_blocks(build_model(cfg.ac_model), impl).train()
        params = list(model.parameters())
        with saved_tensor_bytes(params) as saved:
            loss = model(x, targets=y).loss
        loss.backward()  # also the warm-up: first-call allocations are not timed
        del loss
        models[impl or "none"] = model
        out[impl or "none"] = {
            "saved_activation_bytes": float(saved.activation_bytes),
            "saved_parameter_bytes": float(saved.parameter_bytes),
            "saved_tensors": float(saved.n_tensors),
            "param_bytes": float(sum(p.numel() * p.element_size() for p in params)),
        }

    def step(model) -> None:
        model.zero_grad(set_to_none=True)
        model(x, targets=y).loss.backward()

    rounds = interleaved_rounds({name: (lambda m=model: step(m)) for name, model in models.items()},
                                cfg.ac_rounds, warmup=0)  # the saved-bytes pass was the warm-up
    for name, model in models.items():
        peaks = []
        for _ in range(cfg.ac_repeats):
            model.zero_grad(set_to_none=True)  # gradients are re-allocated inside the measure
            peaks.append(peak_rss_delta(lambda: step(model)))
        model.zero_grad(set_to_none=True)
        # the lowest of k: allocator and page-cache effects only ever add resident pages
        out[name]["peak_rss_delta_bytes"] = float(min(peaks)) if None not in peaks else math.nan
        out[name]["step_seconds"] = float(np.median(rounds[name]))
    return out, rounds


def activation_item(cfg: CheckpointingConfig, tokens: torch.Tensor) -> ItemResult:
    """Item 1: recompute-in-backward per block: exactness, memory and time."""
    parity = ac_parity(cfg, tokens)
    meas, rounds = ac_measure(cfg, tokens)
    metrics = dict(parity)
    timings: dict[str, float] = {}  # allocator and clock readings: apart from the metrics
    for name, values in meas.items():
        for key, v in values.items():
            (timings if key in TIMED_MEASURES else metrics)[f"{name}.{key}"] = v
    base = meas["none"]
    for impl in ("ours", "torch"):
        metrics[f"{impl}.saved_activation_ratio"] = (
            meas[impl]["saved_activation_bytes"] / base["saved_activation_bytes"])
        timings[f"{impl}.peak_memory_ratio"] = (
            meas[impl]["peak_rss_delta_bytes"] / base["peak_rss_delta_bytes"]
            if base["peak_rss_delta_bytes"] > 0 else math.nan)
        timings[f"{impl}.time_ratio"] = float(np.median(
            [o / n for o, n in zip(rounds[impl], rounds["none"])]))
    m = cfg.ac_model
    findings = [
        Finding.at_most(
            f"our recompute-in-backward gives the same loss and gradients as no checkpointing "
            f"(dropout {cfg.ac_dropout:g}: the RNG state is replayed; max abs gradient diff)",
            "ours_vs_none.grad_max_abs_diff", parity["ours_vs_none.grad_max_abs_diff"], cfg.grad_tol,
            kind=INVARIANT),
        Finding.at_most(
            "our recompute-in-backward matches torch.utils.checkpoint(use_reentrant=False) "
            "(max abs gradient diff)",
            "ours_vs_torch.grad_max_abs_diff", parity["ours_vs_torch.grad_max_abs_diff"], cfg.grad_tol,
            kind=INVARIANT),
        Finding.at_most(
            "checkpointing every block cuts the peak memory growth of a forward + backward "
            f"(process peak RSS, CPU) to <= {cfg.max_memory_ratio:g}x (ours / none; lowest of "
            f"{cfg.ac_repeats}; a checkpoint that keeps every activation would fail)",
            "ours.peak_memory_ratio", _finite(timings["ours.peak_memory_ratio"]),
            cfg.max_memory_ratio).as_timed(),
        Finding.at_most(
            "bytes autograd keeps for backward (distinct storages, parameters excluded), "
            "ours / none", "ours.saved_activation_ratio", metrics["ours.saved_activation_ratio"],
            cfg.max_memory_ratio),
        Finding.timing_ratio(
            f"... at <= {cfg.max_time_ratio:g}x the step time (one extra forward per block): "
            f"time without / with checkpointing, median over {cfg.ac_rounds} interleaved rounds, "
            f"above 1/{cfg.max_time_ratio:g} (a recompute that reran the whole model per block "
            "would fail)", "none_over_ours.time_ratio", rounds["none"], rounds["ours"],
            1.0 / cfg.max_time_ratio),
    ]
    mb = 1e6
    lines = [
        f"model: d_model {m.d_model}, {m.n_layers} blocks, {m.n_heads} heads, batch "
        f"{cfg.ac_batch_size} x {cfg.ac_seq_len} bytes; parameters {base['param_bytes'] / mb:.2f} MB",
        "",
        f"{'impl':<6} {'saved act. MB':>13} {'saved tensors':>13} {'peak RSS +MB':>12} "
        f"{'step s':>8} {'time x':>7} {'mem x':>6}   (step s: median of {cfg.ac_rounds} rounds)",
    ]
    for name, v in meas.items():
        tx = v["step_seconds"] / base["step_seconds"]
        mx = v["peak_rss_delta_bytes"] / base["peak_rss_delta_bytes"] if base["peak_rss_delta_bytes"] else math.nan
        lines.append(f"{name:<6} {v['saved_activation_bytes'] / mb:>13.2f} {v['saved_tensors']:>13.0f} "
                     f"{v['peak_rss_delta_bytes'] / mb:>12.2f} {v['step_seconds']:>8.3f} {tx:>7.2f} {mx:>6.2f}")
    lines += [
        "",
        "saved act.: bytes autograd keeps for backward (saved_tensors_hooks, one count per storage,",
        "parameters excluded). peak RSS: process high-water mark growth during one forward+backward",
        "after a malloc_trim + clear_refs reset, allocations >= 64 KiB mmap'd (lowest of "
        f"{cfg.ac_repeats}); includes gradients, transient buffers and allocator slack. Peak RSS "
        "and times are timings: they vary from run to run.",
        "parity (dropout %g, batch of 2): " % cfg.ac_dropout + ", ".join(
            f"{k} {v:.2e}" for k, v in parity.items()),
    ]
    return ItemResult(
        item=ITEM["activation"], metrics=metrics, timings=timings, findings=findings,
        figures={"memory_time.png": _ac_figure(meas)},
        texts={"activation_checkpointing.txt": "\n".join(lines) + "\n"},
    )


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 1e9


def _ac_figure(meas: dict[str, dict[str, float]]) -> Figure:
    fig = Figure(figsize=(11.0, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    names = list(meas)
    for ax, key, title, scale in (
        (axes[0], "saved_activation_bytes", "bytes saved for backward (MB)", 1e6),
        (axes[1], "peak_rss_delta_bytes", "peak RSS growth, fwd+bwd (MB)", 1e6),
        (axes[2], "step_seconds", "forward + backward (s, median)", 1.0),
    ):
        values = [meas[n][key] / scale for n in names]
        ax.bar(names, values, color=["C0", "C1", "C2"][: len(names)])
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Activation checkpointing per block: none vs ours (RecomputeBlock) vs torch.utils.checkpoint")
    return fig


# ---------------------------------------------------------------------------------------------
# item 2: resume with and without the optimizer / scheduler / RNG / data state


def _config_dict(cfg: CheckpointingConfig) -> dict:
    return {"model": asdict(cfg.model), "train": asdict(cfg.train), "seq_len": cfg.seq_len,
            "seed": cfg.seed, "step_delay_s": cfg.step_delay_s, "num_threads": cfg.num_threads,
            "hold_at_step": cfg.kill_after_step}


def _losses(history: list[dict[str, float]]) -> dict[int, float]:
    return {int(h["step"]): float(h["loss"]) for h in history}


FIXED_EVAL_EVERY = 5  # item 2: loss on fixed batches every this many updates
FIXED_EVAL_BATCHES = 4


def _fixed_eval(trainer: Trainer, tokens: torch.Tensor, cfg: CheckpointingConfig,
                offset: int = 0) -> dict[int, float]:
    """Attach an ``on_step`` that scores the model on the same fixed batches every few updates.

    Per-step training losses of runs that see different batches differ by batch noise alone;
    the fixed batches (the stream's first windows, evaluated without dropout, touching no RNG
    and no batcher state) show what the weights themselves do. Returns the dict it fills.
    """
    fixed = TokenBatcher(tokens, cfg.seq_len, mode="sequential")
    out: dict[int, float] = {}

    def on_step(step: int, metrics: dict[str, float]) -> None:
        if (step + offset) % FIXED_EVAL_EVERY == 0:
            out[step + offset] = mean_loss(trainer.model, fixed, cfg.train.batch_size,
                                           FIXED_EVAL_BATCHES)

    trainer.on_step = on_step
    return out


def reference_run(cfg: CheckpointingConfig, tokens: torch.Tensor,
                  ckpt: Path) -> tuple[dict[int, float], dict[int, float]]:
    """The uninterrupted run (checkpointed at ``resume_step`` on the way).

    Returns:
        ``({step: training loss}, {step: fixed-batch loss})``.
    """
    trainer = crash_demo.build_trainer(_config_dict(cfg), tokens)
    fixed = _fixed_eval(trainer, tokens, cfg)
    trainer.train(stop_at=cfg.resume_step)
    trainer.save(ckpt)
    result = trainer.train()
    return _losses(result.history), fixed


def resumed_run(cfg: CheckpointingConfig, tokens: torch.Tensor, ckpt: Path,
                how: str) -> tuple[dict[int, float], dict[int, float]]:
    """Resume ``ckpt`` with everything (``"full"``), or without the RNG state (``"no_rng"``),
    the data position (``"no_data"``) or anything but the weights (``"weights_only"``).

    Returns:
        ``({step: training loss}, {step: fixed-batch loss})`` for the steps after the resume.
    """
    trainer = crash_demo.build_trainer(_config_dict(cfg), tokens)
    if how == "weights_only":
        # the naive resume: weights from the file; AdamW moments, schedule (warmup again), RNG
        # and batches all start fresh, and the run goes on for the steps that were left
        load_checkpoint(ckpt, model=trainer.model)
        fixed = _fixed_eval(trainer, tokens, cfg, offset=cfg.resume_step)
        steps_left = cfg.train.max_steps - cfg.resume_step
        result = trainer.train(stop_at=steps_left)
        return {s + cfg.resume_step: v for s, v in _losses(result.history).items()}, fixed
    trainer.load(ckpt)
    fixed = _fixed_eval(trainer, tokens, cfg)
    if how == "no_rng":
        seed_everything(cfg.seed + 12345)
    elif how == "no_data":
        fresh = TokenBatcher(tokens, cfg.seq_len, mode="random", seed=cfg.seed)
        trainer.train_data.load_state_dict(fresh.state_dict())
    elif how != "full":
        raise ValueError(f"unknown resume mode {how!r}")
    result = trainer.train()
    return {s: v for s, v in _losses(result.history).items() if s > cfg.resume_step}, fixed


RESUME_MODES = ("full", "no_rng", "no_data", "weights_only")


def _mean_abs_gap(got: dict[int, float], ref: dict[int, float], after: int) -> float:
    diffs = [abs(got[s] - ref[s]) for s in sorted(ref) if s > after and s in got]
    return sum(diffs) / len(diffs)


def weights_only_gaps(cfg: CheckpointingConfig, tokens: torch.Tensor, ckpt: Path) -> tuple[float, float]:
    """The weights-only resume at ``cfg.resume_step`` against the uninterrupted run of the same seed.

    Returns:
        ``(mean |training-loss diff|, mean |fixed-batch loss diff|)`` after the resume, nats.
    """
    ref, ref_fixed = reference_run(cfg, tokens, ckpt)
    got, got_fixed = resumed_run(cfg, tokens, ckpt, "weights_only")
    return _mean_abs_gap(got, ref, cfg.resume_step), _mean_abs_gap(got_fixed, ref_fixed, cfg.resume_step)


def resume_item(cfg: CheckpointingConfig, tokens: torch.Tensor, workdir: Path) -> tuple[ItemResult, dict[int, float]]:
    """Item 2: exact resume vs resumes that drop part of the state. Also returns the reference."""
    ckpt = workdir / "resume.pt"
    ref, ref_fixed = reference_run(cfg, tokens, ckpt)
    after = [s for s in sorted(ref) if s > cfg.resume_step]
    fixed_after = [s for s in sorted(ref_fixed) if s > cfg.resume_step]
    fixed_curves = {"uninterrupted": ref_fixed}
    metrics: dict[str, float] = {"resume_step": float(cfg.resume_step)}
    curves = {"uninterrupted": ref}
    lines = [f"checkpoint at step {cfg.resume_step} of {cfg.train.max_steps}; loss differences "
             "against the uninterrupted run over the steps after it", "",
             f"{'resume':<13} {'max |diff|':>11} {'mean |diff|':>12} {'first 10 mean':>14} "
             f"{'fixed excess':>13} {'final loss':>10}"]
    for how in RESUME_MODES:
        got, got_fixed = resumed_run(cfg, tokens, ckpt, how)
        fixed_curves[how] = got_fixed
        fx = [got_fixed[s] - ref_fixed[s] for s in fixed_after]
        metrics[f"{how}.fixed_mean_excess"] = sum(fx) / len(fx) if fx else 0.0
        metrics[f"{how}.fixed_final_excess"] = fx[-1] if fx else 0.0
        metrics[f"{how}.fixed_mean_abs_diff"] = sum(map(abs, fx)) / len(fx) if fx else 0.0
        diffs = [abs(got[s] - ref[s]) for s in after]
        metrics[f"{how}.max_abs_diff"] = max(diffs)
        metrics[f"{how}.mean_abs_diff"] = sum(diffs) / len(diffs)
        metrics[f"{how}.first10_mean_abs_diff"] = sum(diffs[:10]) / len(diffs[:10])
        metrics[f"{how}.final_loss"] = got[after[-1]]
        curves[how] = got
        lines.append(f"{how:<13} {max(diffs):>11.3e} {metrics[f'{how}.mean_abs_diff']:>12.3e} "
                     f"{metrics[f'{how}.first10_mean_abs_diff']:>14.3e} "
                     f"{metrics[f'{how}.fixed_mean_excess']:>+13.3e} {got[after[-1]]:>10.4f}")
    metrics["uninterrupted.final_loss"] = ref[after[-1]]
    lines.append(f"{'uninterrupted':<13} {'':>11} {'':>12} {'':>14} {'':>13} {ref[after[-1]]:>10.4f}")
    lines += ["", "fixed excess: mean over the evaluations after the resume of (loss on "
              f"{FIXED_EVAL_BATCHES} fixed batches - the uninterrupted run's), every "
              f"{FIXED_EVAL_EVERY} updates: the weights' own quality, free of batch noise"]
    gaps = [(metrics["weights_only.mean_abs_diff"], metrics["weights_only.fixed_mean_abs_diff"])]
    for seed in cfg.extra_seeds:  # the weights-only control again, each seed its own reference
        gaps.append(weights_only_gaps(replace(cfg, seed=seed, extra_seeds=[]), tokens, workdir / f"resume_seed{seed}.pt"))
        metrics[f"seed{seed}.weights_only.mean_abs_diff"], metrics[f"seed{seed}.weights_only.fixed_mean_abs_diff"] = gaps[-1]
    lines.append(f"weights only, seeds {[cfg.seed, *cfg.extra_seeds]}: mean |diff| "
                 + ", ".join(f"{g:.3e}" for g, _ in gaps) + "; fixed batches "
                 + ", ".join(f"{g:.3e}" for _, g in gaps))
    findings = [
        Finding.at_most(
            "resuming with weights, AdamW moments, LR schedule, RNG and data-loader state "
            "continues the loss curve exactly (max abs diff after the resume)",
            "full.max_abs_diff", metrics["full.max_abs_diff"], cfg.max_loss_diff, kind=INVARIANT),
        Finding.compare(
            "resuming with the weights only (fresh AdamW moments, warmup again, new RNG and "
            "batches) leaves the uninterrupted curve (mean abs loss diff after the resume, nats; "
            f"mean over {len(gaps)} seeds)",
            "weights_only.mean_abs_diff", [g for g, _ in gaps], margin=cfg.min_naive_gap),
        Finding.compare(
            "... not only through other batches: the weights themselves leave the uninterrupted "
            "trajectory (mean |loss difference| on fixed batches after the resume, nats; the "
            "sign is in fixed_mean_excess: a restarted warmup + cosine keeps the LR high longer; "
            f"mean over {len(gaps)} seeds)",
            "weights_only.fixed_mean_abs_diff", [g for _, g in gaps], margin=cfg.min_naive_gap),
    ]
    series = {f"{k}.loss": sorted(v.items()) for k, v in curves.items()}
    series.update({f"{k}.fixed_loss": sorted(v.items()) for k, v in fixed_curves.items()})
    return ItemResult(
        item=ITEM["resume"], metrics=metrics, series=series, findings=findings,
        figures={"resume.png": _resume_figure(curves, cfg.resume_step, fixed_curves)},
        texts={"resume.txt": "\n".join(lines) + "\n"},
    ), ref


def _resume_figure(curves: dict[str, dict[int, float]], step: int,
                   fixed: dict[str, dict[int, float]]) -> Figure:
    fig = Figure(figsize=(16.0, 4.2), layout="constrained")
    ax0, ax1, ax2 = fig.subplots(1, 3)
    for i, (name, c) in enumerate(fixed.items()):
        steps = sorted(c)
        style = dict(linewidth=2.5, alpha=0.5) if name == "uninterrupted" else dict(linewidth=1.0)
        ax2.plot(steps, [c[s] for s in steps], label=name, color=f"C{i}", marker=".", **style)
    ax2.axvline(step, color="grey", linestyle="--", linewidth=1)
    ax2.set(xlabel="optimizer step", ylabel="loss on fixed batches (no dropout)",
            title="the weights' own quality (no batch noise)")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    ref = curves["uninterrupted"]
    for i, (name, c) in enumerate(curves.items()):
        steps = sorted(c)
        style = dict(linewidth=2.5, alpha=0.5) if name == "uninterrupted" else dict(linewidth=1.0)
        ax0.plot(steps, [c[s] for s in steps], label=name, color=f"C{i}", **style)
        if name != "uninterrupted":
            ax1.plot(steps, [abs(c[s] - ref[s]) + 1e-12 for s in steps], label=name, color=f"C{i}")
    for ax in (ax0, ax1):
        ax.axvline(step, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax0.set(ylabel="training loss (nats / byte)", title="resumed at the dashed line")
    ax1.set_yscale("log")
    ax1.set(ylabel="|loss - uninterrupted| (+1e-12)", title="distance from the uninterrupted run")
    return fig


# ---------------------------------------------------------------------------------------------
# item 3: SIGKILL and restart


def _env() -> dict[str, str]:
    src = str(Path(crash_demo.__file__).resolve().parents[2])  # .../src
    env = dict(os.environ)
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _start(run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nlpcurriculum.training.crash_demo", str(run_dir)],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _checkpoint_step(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / (crash_demo.CHECKPOINT + ".json")).read_text())["step"])
    except (OSError, ValueError, KeyError):
        return -1


def crash_and_resume(cfg: CheckpointingConfig, tokens: torch.Tensor, run_dir: Path) -> dict[str, float]:
    """Start the demo, SIGKILL it at ``kill_after_step``, restart it; numbers of what happened.

    The demo parks itself right after logging ``kill_after_step`` (its ``hold_at_step``), so the
    kill lands at that step on any machine: the checkpoint it leaves, the updates replayed after
    the restart and the naive-restart control are the same on every run.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    np.save(run_dir / "tokens.npy", tokens.numpy().astype(np.int32))
    (run_dir / "config.json").write_text(json.dumps(_config_dict(cfg)))
    deadline = time.monotonic() + cfg.process_timeout_s
    proc = _start(run_dir)
    while not (run_dir / crash_demo.HOLDING).exists():
        if proc.poll() is not None:
            raise RuntimeError(f"crash demo ended before the kill (status {proc.returncode}): "
                               f"{proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("crash demo did not reach kill_after_step in process_timeout_s")
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    (run_dir / crash_demo.HOLDING).unlink()
    before = crash_demo.read_losses(run_dir / crash_demo.LOSSES)
    ckpt_step = _checkpoint_step(run_dir)
    shutil.copy(run_dir / crash_demo.CHECKPOINT, run_dir / "at_kill.pt")
    proc = _start(run_dir)
    try:
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError("resumed crash demo did not finish in process_timeout_s")
    if proc.returncode != 0:
        raise RuntimeError(f"resumed crash demo failed (status {proc.returncode}): {err[-2000:]}")
    return {
        "killed_at_step": float(max(before) if before else 0),
        "checkpoint_step_at_kill": float(ckpt_step),
        "return_code_killed": float(-signal.SIGKILL),
    }


def corrupt_restart(run_dir: Path) -> tuple[int, str]:
    """Truncate the checkpoint to half its bytes and restart the demo: (exit status, stderr).

    The restart runs the demo's ``main`` in this process (the same code a fresh process runs,
    without paying another interpreter start-up); its exit status is the ``SystemExit`` code.
    """
    path = run_dir / crash_demo.CHECKPOINT
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    err = io.StringIO()
    status = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            crash_demo.main([str(run_dir)])
        except SystemExit as exc:
            status = int(exc.code or 0)
    text = err.getvalue().strip()
    return status, text.splitlines()[-1] if text else ""


def crash_item(cfg: CheckpointingConfig, tokens: torch.Tensor, ref: dict[int, float],
               workdir: Path) -> ItemResult:
    """Item 3: SIGKILL mid-run, restart, and compare the stitched loss log with ``ref``."""
    run_dir = workdir / "crash"
    info = crash_and_resume(cfg, tokens, run_dir)
    stitched = crash_demo.read_losses(run_dir / crash_demo.LOSSES)
    replayed = crash_demo.read_losses(run_dir / "replayed.jsonl")
    steps = sorted(ref)
    missing = [s for s in steps if s not in stitched]
    diffs = [abs(stitched[s] - ref[s]) for s in steps if s in stitched]
    replay_diffs = [abs(replayed[s] - stitched[s]) for s in replayed if s in stitched]
    # the control: the same checkpoint restarted with its weights only (item 2's naive resume)
    naive_from = int(info["checkpoint_step_at_kill"])
    naive, _ = resumed_run(replace(cfg, resume_step=naive_from), tokens, run_dir / "at_kill.pt",
                           "weights_only")
    naive_diffs = [abs(naive[s] - ref[s]) for s in steps if s in naive]
    naive_gaps = [sum(naive_diffs) / len(naive_diffs)]
    for seed in cfg.extra_seeds:  # the control again: each seed's own run, checkpoint at the same step
        seed_cfg = replace(cfg, seed=seed, extra_seeds=[], resume_step=naive_from)
        naive_gaps.append(weights_only_gaps(seed_cfg, tokens, run_dir / f"at_kill_seed{seed}.pt")[0])
    status, message = corrupt_restart(run_dir)
    clear = float(status == 2 and "truncated or corrupt" in message)
    metrics = {
        **info,
        "steps_compared": float(len(diffs)),
        "steps_missing": float(len(missing)),
        "max_abs_diff": max(diffs) if diffs and not missing else 1e9,
        "exact_steps_fraction": sum(d == 0.0 for d in diffs) / len(steps),
        "replayed_steps": float(len(replay_diffs)),
        "replayed_max_abs_diff": max(replay_diffs) if replay_diffs else 0.0,
        "corrupt_checkpoint_clear_error": clear,
        "weights_only_restart.mean_abs_diff": naive_gaps[0],
        **{f"seed{seed}.weights_only_restart.mean_abs_diff": gap
           for seed, gap in zip(cfg.extra_seeds, naive_gaps[1:])},
    }
    findings = [
        Finding.at_most(
            "after a SIGKILL mid-run and a restart from the last checkpoint, the stitched loss "
            "curve equals the uninterrupted run's (max abs diff over every step)",
            "max_abs_diff", metrics["max_abs_diff"], cfg.max_loss_diff, kind=INVARIANT),
        Finding.at_least(
            "a truncated checkpoint stops the restart with a one-line CheckpointError "
            "('truncated or corrupt', exit status 2)",
            "corrupt_checkpoint_clear_error", clear, cfg.checks.min_corrupt_checkpoint_clear_error,
            kind=INVARIANT),
        Finding.compare(
            f"continuity is the saved state's doing: restarted from the same checkpoint (step {naive_from}) "
            "with the weights only (fresh AdamW moments, warmup again, new RNG and batches), the run "
            "leaves the uninterrupted curve (mean |loss difference| after the restart, nats; mean "
            f"over {len(naive_gaps)} seeds, each against its own uninterrupted run)",
            "weights_only_restart.mean_abs_diff", naive_gaps, margin=cfg.min_naive_gap),
    ]
    lines = [
        f"killed (SIGKILL) at step ~{info['killed_at_step']:.0f} (last logged update); the last "
        f"checkpoint was step {info['checkpoint_step_at_kill']:.0f}; restarted, resumed from it, finished "
        f"at step {cfg.train.max_steps}.",
        f"stitched vs uninterrupted: {len(diffs)} steps, {len(missing)} missing, max |diff| "
        f"{metrics['max_abs_diff']:.3e}, exactly equal on {metrics['exact_steps_fraction']:.1%} of steps",
        f"updates logged before the kill and run again after it: {len(replay_diffs)}, max |diff| "
        f"{metrics['replayed_max_abs_diff']:.3e}",
        f"restart on a checkpoint truncated to half: exit status {status}, stderr: {message}",
        f"control: the same checkpoint restarted with the weights only: mean |diff| "
        f"{metrics['weights_only_restart.mean_abs_diff']:.3e} over {len(naive_diffs)} steps; on seeds "
        f"{cfg.extra_seeds}: " + ", ".join(f"{g:.3e}" for g in naive_gaps[1:]),
    ]
    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(steps, [ref[s] for s in steps], linewidth=3, alpha=0.4, label="uninterrupted")
    pre = [s for s in sorted(stitched) if s <= info["checkpoint_step_at_kill"]]
    post = [s for s in sorted(stitched) if s > info["checkpoint_step_at_kill"]]
    ax.plot(pre, [stitched[s] for s in pre], linewidth=1, label="first process (killed)")
    ax.plot(post, [stitched[s] for s in post], linewidth=1, label="restarted process")
    ax.axvline(info["killed_at_step"], color="red", linestyle=":", label="SIGKILL")
    ax.axvline(info["checkpoint_step_at_kill"], color="grey", linestyle="--", label="resumed from")
    ax.set(xlabel="optimizer step", ylabel="training loss (nats / byte)",
           title=f"crash recovery: max |diff| {metrics['max_abs_diff']:.1e}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ItemResult(
        item=ITEM["crash"], metrics=metrics, findings=findings,
        series={"stitched.loss": sorted(stitched.items())},
        figures={"crash_recovery.png": fig},
        texts={"crash_recovery.txt": "\n".join(lines) + "\n"},
    )


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads: the corpus's train split (tokenized here as UTF-8 bytes)."""

    train_texts: Sequence[str]


def run(cfg: CheckpointingConfig, inputs: Inputs) -> list[ItemResult]:
    """Run the three items on the train split's bytes (one torch thread by default)."""
    train_texts = inputs.train_texts
    tokens = byte_tokens(train_texts)
    workdir = Path(tempfile.mkdtemp(prefix="nlpc-ckpt-"))
    try:
        with torch_threads(cfg.num_threads):
            ac = activation_item(cfg, tokens)
            resume, ref = resume_item(cfg, tokens, workdir)
            crash = crash_item(cfg, tokens, ref, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return [ac, resume, crash]
