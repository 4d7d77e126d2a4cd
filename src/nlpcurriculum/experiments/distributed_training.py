"""Experiments of "Distributed Training": data parallel, pipeline parallel, communication.

All three items come out of **one** torchrun launch (2 processes, gloo on this CPU; every
launch costs a few seconds of start-up) running a list of jobs, compared with one
single-process run at the same global batch (:func:`~nlpcurriculum.training.distributed.
reference_losses`).

1. *Data parallelism with DDP/FSDP* (:func:`data_parallel_item`): the hand-written all-reduce,
   torch DDP and FSDP2 (``fully_shard``) train the byte-level mini-former; their global-batch
   losses must match the single process's to ``parity_tol`` at every step (invariants). The
   finding is their control: one rank training alone on its shard of each global batch, without
   the all-reduce, leaves the single-process curve by far more than that tolerance (so the
   parity shows the synchronisation, not two runs that could not differ).
2. *Pipeline parallelism* (:func:`pipeline_item`): the blocks split over 2 ranks, GPipe with
   ``m`` micro-batches (Huang et al. 2019, arXiv:1811.06965); loss parity, and the measured idle
   fraction of each stage against the bubble ``(p-1)/(m+p-1)``.
3. *Communication* (:func:`communication_item`): all-reduce time and share of the step for one
   all-reduce per parameter vs flat buckets (the optimization measured), DDP's step time and
   exposed communication against ``bucket_cap_mb``, and DDP's fp16 gradient compression hook.

Timings on a shared 2-core CPU are noisy and dominated by per-call latency (gloo over
localhost TCP); they are medians over steps, of the slowest rank per step, and they are the
items' ``timings`` (``metrics`` stay deterministic). The two timing findings compare their arms
over ``profile_rounds`` interleaved rounds: the launch's job list alternates short jobs of both
arms (per-parameter / bucketed all-reduce; the fewest / most micro-batches), so a slow spell of
the machine hits both alike.

Left out: multi-node runs (documented in :mod:`nlpcurriculum.training.distributed`), GPU
timings (no GPU in this session), tensor parallelism.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from nlpcurriculum.experiments.harness import BYTE_VOCAB, byte_tokens, torch_threads
from nlpcurriculum.models.miniformer import MiniFormerConfig
from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.training.distributed import (
    DistJob,
    DistSetup,
    global_batch_starts,
    launch,
    make_optimizer,
    reference_losses,
    shard_starts,
    windows,
)
from nlpcurriculum.training.distributed.common import build_seeded
from nlpcurriculum.training.distributed.pipeline_parallel import bubble_fraction

__all__ = [
    "ITEM",
    "ITEMS",
    "DistributedConfig",
    "Inputs",
    "Outputs",
    "communication_item",
    "data_parallel_item",
    "pipeline_item",
    "run",
    "unsynced_losses",
]

#: The curriculum item id of each result :func:`run` returns, by short name.
ITEM = {
    "data_parallel": "distributed-training/1",
    "pipeline": "distributed-training/2",
    "communication": "distributed-training/3",
}
#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(ITEM.values())


@dataclass
class DistributedChecks:
    """Bounds of the findings that no knob above sets (params ``distributed.checks``).

    Attributes:
        min_idle_shrink: item 2: measured idle fraction at the fewest micro-batches minus at the
            most (paired over the interleaved rounds, two SE above it).
        min_unsynced_factor: item 1: rank 0 trained alone (no all-reduce) must leave the
            single-process curve by at least this many ``parity_tol`` (max |loss difference|).
    """

    min_idle_shrink: float = 0.05
    min_unsynced_factor: float = 100.0


@dataclass(kw_only=True)
class DistributedConfig:
    """The ``distributed`` section of params/distributed_training.yaml.

    Attributes:
        model: the mini-former (``vocab_size`` 256: byte tokens).
        seq_len: window length T.
        global_batch: windows per update over all ranks (divisible by ``nproc`` and by every
            entry of ``micro_batches``).
        steps: updates of the parity runs (item 1).
        lr: AdamW learning rate (constant: no warmup, no clipping, so kept moderate; at 3e-3
            loss spikes make single steps' losses hypersensitive to rounding).
        weight_decay: AdamW decay on matrices.
        seed: model and batch seed.
        nproc: processes (ranks).
        pipeline_steps: updates per pipeline run (item 2).
        micro_batches: item 2: the ``m`` values compared.
        profile_steps: item 3: updates per communication run.
        profile_rounds: items 2-3: interleaved rounds of the timing findings' jobs (each round:
            one per-parameter and one bucketed all-reduce job of ``profile_steps`` updates, one
            pipeline job at the fewest and one at the most micro-batches of ``pipeline_steps``).
        ddp_buckets_mb: item 3: DDP ``bucket_cap_mb`` values swept.
        flat_bucket_mb: bucket size of the hand-written bucketed all-reduce (and item 1's).
        parity_tol: max |loss - single-process loss| at any step.
        min_bucket_speedup: item 3: per-parameter all-reduce time / bucketed must exceed this
            (median over rounds of the per-round ratios, two robust SE above it).
        max_fp16_loss_diff: item 3: fp16-compressed DDP loss may differ from single process by
            at most this.
        num_threads: torch threads of this (single) process; the ranks use 1 each.
        timeout_s: the launch is killed after this long.
        checks: the other bounds of the findings.
    """

    model: MiniFormerConfig
    seq_len: int = 64
    global_batch: int = 16
    steps: int = 30
    lr: float = 1e-3
    weight_decay: float = 0.1
    seed: int = 0
    nproc: int = 2
    pipeline_steps: int = 8
    micro_batches: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    profile_steps: int = 12
    profile_rounds: int = 5
    ddp_buckets_mb: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 25.0])
    flat_bucket_mb: float = 25.0
    parity_tol: float = 1e-5
    min_bucket_speedup: float = 1.5
    max_fp16_loss_diff: float = 1e-3
    num_threads: int = 1
    timeout_s: float = 600.0
    checks: DistributedChecks = field(default_factory=DistributedChecks)

    def __post_init__(self) -> None:
        if self.model.vocab_size != BYTE_VOCAB:
            raise ValueError(f"model.vocab_size must be {BYTE_VOCAB} (byte tokens)")
        if not 2 <= self.seq_len <= self.model.max_seq_len:
            raise ValueError(f"seq_len={self.seq_len} must be in [2, model.max_seq_len]")
        for name in ("global_batch", "steps", "nproc", "pipeline_steps", "profile_steps",
                     "profile_rounds", "num_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.profile_steps < 2 or self.pipeline_steps < 2:
            raise ValueError("profile_steps and pipeline_steps must be >= 2 (the first is a warm-up)")
        if self.global_batch % self.nproc:
            raise ValueError(f"global_batch={self.global_batch} must be divisible by nproc={self.nproc}")
        if not self.micro_batches or any(m < 1 or self.global_batch % m for m in self.micro_batches):
            raise ValueError(f"micro_batches={self.micro_batches}: each must divide global_batch")
        if self.nproc > self.model.n_layers:
            raise ValueError(f"nproc={self.nproc} pipeline stages need model.n_layers >= nproc")
        if not self.ddp_buckets_mb or any(b <= 0 for b in self.ddp_buckets_mb):
            raise ValueError("ddp_buckets_mb must be a non-empty list of sizes > 0")


def _jobs(cfg: DistributedConfig) -> list[DistJob]:
    jobs = [
        DistJob("manual", "manual", cfg.steps, bucket_mb=cfg.flat_bucket_mb),
        DistJob("ddp", "ddp", cfg.steps, bucket_mb=25.0),
        DistJob("fsdp", "fsdp", cfg.steps),
    ]
    jobs += [DistJob(f"pipeline_m{m}", "pipeline", cfg.pipeline_steps, micro_batches=m)
             for m in cfg.micro_batches]
    lo, hi = min(cfg.micro_batches), max(cfg.micro_batches)
    for r in range(cfg.profile_rounds):  # the timing findings' arms, interleaved round by round
        arms = [DistJob(f"manual_per_param_r{r}", "manual", cfg.profile_steps, bucket_mb=0),
                DistJob(f"manual_flat_r{r}", "manual", cfg.profile_steps,
                        bucket_mb=cfg.flat_bucket_mb)]
        if hi > lo:
            arms += [DistJob(f"bubble_m{lo}_r{r}", "pipeline", cfg.pipeline_steps, micro_batches=lo),
                     DistJob(f"bubble_m{hi}_r{r}", "pipeline", cfg.pipeline_steps, micro_batches=hi)]
        jobs += arms if r % 2 == 0 else arms[::-1]
    jobs += [DistJob(f"ddp_b{b:g}", "ddp", cfg.profile_steps, bucket_mb=b,
                     profile_passes=cfg.profile_steps) for b in cfg.ddp_buckets_mb]
    jobs.append(DistJob("ddp_fp16", "ddp", cfg.profile_steps, compress="fp16"))
    return jobs


def _max_diff(a: Sequence[float], b: Sequence[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=False))


def _slowest_median(ranks: list[dict[str, Any]], job: str, key: str) -> float:
    """Median over steps (after the first) of the slowest rank's value."""
    per_step = zip(*(r["jobs"][job][key] for r in ranks))
    return statistics.median(max(v) for v in list(per_step)[1:])


def unsynced_losses(setup: DistSetup, steps: int, tokens: torch.Tensor, world: int,
                    rank: int = 0) -> list[float]:
    """Item 1's control: rank ``rank`` training alone on its shard of every global batch.

    The same start as every mode (:func:`~nlpcurriculum.training.distributed.common.build_seeded`)
    and the same optimizer, but each update uses the rank's ``G / world`` windows only, as data
    parallelism would without its all-reduce. The loss reported at each step is the one the
    single-process reference reports: the whole global batch's, before the update.
    """
    model = build_seeded(setup).train()
    opt = make_optimizer(model, setup.lr, setup.weight_decay)
    losses = []
    for step in range(steps):
        starts = global_batch_starts(step, setup.global_batch, len(tokens), setup.seq_len, setup.seed)
        with torch.no_grad():
            x, y = windows(tokens, starts, setup.seq_len)  # (G, T) each: the whole global batch
            losses.append(float(model(x, targets=y).loss))
        x, y = windows(tokens, shard_starts(starts, rank, world), setup.seq_len)  # (G / W, T) each
        model(x, targets=y).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return losses


def data_parallel_item(cfg: DistributedConfig, ref: list[float], ranks: list[dict[str, Any]],
                       unsynced: list[float] | None = None) -> ItemResult:
    """Item 1: hand-written all-reduce, DDP and FSDP against the single process; with
    ``unsynced`` (:func:`unsynced_losses`), the finding on rank 0 trained without synchronising."""
    metrics = {"world_size": float(len(ranks))}
    findings, lines = [], [f"{'mode':<8} {'max |loss - single|':>20} {'final loss':>11}"]
    curves = {"single process": ref[:cfg.steps]}
    for mode, label in (("manual", "by-hand all-reduce"), ("ddp", "DDP"), ("fsdp", "FSDP2")):
        losses = ranks[0]["jobs"][mode]["global_losses"]
        diff = _max_diff(losses, ref)
        metrics[f"{mode}.max_abs_loss_diff"] = diff
        metrics[f"{mode}.final_loss"] = losses[-1]
        curves[f"{label} ({len(ranks)} ranks)"] = losses
        lines.append(f"{mode:<8} {diff:>20.3e} {losses[-1]:>11.5f}")
        findings.append(Finding.at_most(
            f"{label} with {len(ranks)} processes matches single-process training at the same "
            f"global batch ({cfg.global_batch}) at every one of {cfg.steps} steps "
            "(max |loss difference|, nats)", f"{mode}.max_abs_loss_diff", diff, cfg.parity_tol,
            kind=INVARIANT))
    if unsynced is not None:
        drift = _max_diff(unsynced, ref[:cfg.steps])
        metrics["unsynced.max_abs_loss_diff"] = drift
        metrics["unsynced.final_loss"] = unsynced[-1]
        curves["rank 0 alone (no all-reduce)"] = unsynced
        lines.append(f"{'unsynced':<8} {drift:>20.3e} {unsynced[-1]:>11.5f}  (rank 0's shard only)")
        findings.append(Finding.at_least(
            f"without the all-reduce, rank 0 training on its {cfg.global_batch // cfg.nproc} of "
            f"{cfg.global_batch} windows leaves the single-process curve: max |global-batch loss "
            f"difference| over {cfg.steps} steps, at least {cfg.checks.min_unsynced_factor:g}x the parity "
            "tolerance", "unsynced.max_abs_loss_diff", drift,
            cfg.checks.min_unsynced_factor * cfg.parity_tol))
    rank_losses = [r["jobs"]["ddp"]["losses"][0] for r in ranks]
    lines += ["", f"backend: {ranks[0]['backend']}; first-step local losses per rank (DDP): "
              + ", ".join(f"{v:.5f}" for v in rank_losses)
              + " (different shards -> different local losses; their mean is the global loss)"]
    fig = Figure(figsize=(11.0, 4.0), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    for i, (label, losses) in enumerate(curves.items()):
        ax0.plot(range(1, len(losses) + 1), losses, label=label, linewidth=3.0 if i == 0 else 1.2,
                 linestyle="-" if i == 0 else (0, (3, 1 + i)))
    ax0.set(xlabel="step", ylabel="training loss (global batch, nats/byte)",
            title="data parallel vs single process")
    ax0.legend(fontsize=8)
    ax0.grid(alpha=0.3)
    for label, losses in list(curves.items())[1:]:
        ax1.plot(range(1, len(losses) + 1),
                 [max(abs(a - b), 1e-9) for a, b in zip(losses, ref)], label=label)
    ax1.axhline(cfg.parity_tol, color="grey", linestyle="--", label=f"tolerance {cfg.parity_tol:g}")
    ax1.set(xlabel="step", ylabel="|loss - single-process loss| (floor 1e-9)", yscale="log",
            title="difference (fp32 summation order)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    series = {k.split(" (")[0].replace(" ", "_"): list(enumerate(v, 1)) for k, v in curves.items()}
    return ItemResult(item=ITEM["data_parallel"], metrics=metrics, findings=findings,
                      series=series, figures={"loss_parity.png": fig},
                      texts={"data_parallel.txt": "\n".join(lines) + "\n"})


def pipeline_item(cfg: DistributedConfig, ref: list[float], ranks: list[dict[str, Any]]
                  ) -> ItemResult:
    """Item 2: GPipe over the ranks: loss parity and the bubble, measured vs theory."""
    p = len(ranks)
    metrics: dict[str, float] = {"stages": float(p)}
    lines = [f"stage blocks: " + "; ".join(
        f"rank {r['rank']}: {r['jobs'][f'pipeline_m{cfg.micro_batches[0]}']['stage_blocks']}"
        for r in ranks),
        f"{'m':>3} {'max |loss diff|':>16} {'bubble (p-1)/(m+p-1)':>21} {'measured idle':>14} "
        f"{'per rank':>18}"]
    diffs, measured, theory = [], [], []
    timings: dict[str, float] = {}  # measured idle fractions are clock readings
    for m in cfg.micro_batches:
        job = f"pipeline_m{m}"
        losses = ranks[-1]["jobs"][job]["losses"]
        diff = _max_diff(losses, ref)
        idle = [r["jobs"][job]["idle_fraction"] for r in ranks]
        mean_idle = sum(idle) / p
        diffs.append(diff)
        measured.append(mean_idle)
        theory.append(bubble_fraction(p, m))
        metrics[f"m{m}.max_abs_loss_diff"] = diff
        timings[f"m{m}.idle_fraction"] = mean_idle
        metrics[f"m{m}.bubble_theory"] = theory[-1]
        lines.append(f"{m:>3} {diff:>16.3e} {theory[-1]:>21.3f} {mean_idle:>14.3f} "
                     f"{', '.join(f'{v:.3f}' for v in idle):>18}")
    metrics["max_abs_loss_diff"] = max(diffs)
    lo, hi = min(cfg.micro_batches), max(cfg.micro_batches)
    findings = [Finding.at_most(
        f"the {p}-stage GPipe pipeline (m in {cfg.micro_batches}, gradients accumulated over "
        "micro-batches, tied embedding gradient summed across the ends) matches single-process "
        "training (max |loss difference| over all m and steps, nats)",
        "max_abs_loss_diff", max(diffs), cfg.parity_tol, kind=INVARIANT)]
    if hi > lo:
        def round_idle(m: int) -> list[float]:  # mean over ranks, per interleaved round
            return [sum(r["jobs"][f"bubble_m{m}_r{i}"]["idle_fraction"] for r in ranks) / p
                    for i in range(cfg.profile_rounds)]

        idle_lo, idle_hi = round_idle(lo), round_idle(hi)
        shrink = Finding.compare(
            f"more micro-batches shrink the bubble: measured idle fraction at m={lo} minus at "
            f"m={hi} (theory: {bubble_fraction(p, lo) - bubble_fraction(p, hi):.3f}; paired over "
            f"{cfg.profile_rounds} interleaved rounds; a schedule that ran the micro-batches one "
            "at a time through both stages would fail)",
            "idle_shrink", idle_lo, idle_hi, margin=cfg.checks.min_idle_shrink).as_timed()
        timings["idle_shrink"] = shrink.value
        for i, (a, b) in enumerate(zip(idle_lo, idle_hi)):
            timings[f"round{i}.m{lo}.idle_fraction"] = a
            timings[f"round{i}.m{hi}.idle_fraction"] = b
        findings.append(shrink)
        lines.append(f"interleaved rounds, idle at m={lo} / m={hi}: " + "; ".join(
            f"{a:.3f} / {b:.3f}" for a, b in zip(idle_lo, idle_hi)))
    lines += ["", "measured idle = time blocked in recv / waiting for sends, over the schedule's "
              "time (forwards + backwards, no optimizer step), steps after the first; it also "
              "holds the transfer latency, which theory leaves out: 2m hand-offs per step, each "
              "a blocking recv that, on an oversubscribed CPU, waits for the peer to be "
              "scheduled, so at tiny micro-batches the idle time can grow with m instead of "
              "shrinking"]
    fig = Figure(figsize=(6.5, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.plot(cfg.micro_batches, theory, marker="o", label="GPipe bubble (p-1)/(m+p-1)")
    ax.plot(cfg.micro_batches, measured, marker="s", label="measured idle (mean of ranks)")
    ax.set(xlabel="micro-batches m", ylabel="idle fraction per stage", xscale="log",
           title=f"pipeline bubble, p = {p} stages", ylim=(0, 1))
    ax.set_xticks(cfg.micro_batches, [str(m) for m in cfg.micro_batches])
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ItemResult(item=ITEM["pipeline"], metrics=metrics, timings=timings, findings=findings,
                      figures={"bubble.png": fig},
                      # measured idle times are timings: metrics / figure only, never plots/ series
                      series={"bubble_theory": list(zip(cfg.micro_batches, theory))},
                      texts={"pipeline.txt": "\n".join(lines) + "\n"})


def communication_item(cfg: DistributedConfig, ref: list[float], ranks: list[dict[str, Any]]
                       ) -> ItemResult:
    """Item 3: all-reduce share of the step, per-parameter vs bucketed, DDP bucket sweep."""
    metrics: dict[str, float] = {}
    timings: dict[str, float] = {}  # clock readings: apart from the deterministic metrics
    lines = []
    manual, rounds = {}, {}
    for job in ("manual_per_param", "manual_flat"):
        names = [f"{job}_r{i}" for i in range(cfg.profile_rounds)]
        rounds[job] = [_slowest_median(ranks, n, "comm_s") for n in names]  # one per round
        comm = statistics.median(rounds[job])
        step = statistics.median(_slowest_median(ranks, n, "step_s") for n in names)
        manual[job] = (comm, step, ranks[0]["jobs"][names[0]]["allreduce_calls"])
        timings[f"{job}.comm_ms"] = comm * 1e3
        timings[f"{job}.step_ms"] = step * 1e3
        timings[f"{job}.comm_share"] = comm / step
        metrics[f"{job}.allreduce_calls"] = float(manual[job][2])
    bucket = Finding.timing_ratio(
        "bucketing: one all-reduce of a flat gradient buffer is faster than one per "
        f"parameter ({manual['manual_per_param'][2]} calls; time ratio per-parameter / "
        f"bucketed, median over {cfg.profile_rounds} interleaved rounds; a bucketed path that "
        "still sent one message per parameter would fail)",
        "bucket_speedup", rounds["manual_per_param"], rounds["manual_flat"], cfg.min_bucket_speedup)
    speedup = bucket.value
    timings["bucket_speedup"] = speedup
    param_mb = ranks[0]["jobs"]["manual_flat_r0"]["param_bytes"] / 2**20
    lines.append(f"gradients: {param_mb:.3f} MB fp32 per step per rank")
    lines.append(f"{'hand-written':<18} {'calls':>6} {'all-reduce ms':>14} {'step ms':>9} {'share':>7}")
    for job, (comm, step, calls) in manual.items():
        lines.append(f"{job:<18} {calls:>6} {comm * 1e3:>14.2f} {step * 1e3:>9.2f} {comm / step:>7.1%}")
    lines += ["", f"{'DDP bucket_cap_mb':<18} {'fwd+bwd ms':>9} {'compute ms':>11} {'exposed comm':>13}"]
    shares = []
    for b in cfg.ddp_buckets_mb:
        job = f"ddp_b{b:g}"
        step = _slowest_median(ranks, job, "fwd_bwd_s")
        compute = _slowest_median(ranks, job, "compute_only_s")
        share = max(0.0, 1.0 - compute / step)
        shares.append(share)
        timings[f"{job}.fwd_bwd_ms"] = step * 1e3
        timings[f"{job}.compute_ms"] = compute * 1e3
        timings[f"{job}.exposed_comm_share"] = share
        lines.append(f"{b:<18g} {step * 1e3:>9.2f} {compute * 1e3:>11.2f} {share:>13.1%}")
    fp16 = ranks[0]["jobs"]["ddp_fp16"]["global_losses"]
    fp16_diff = _max_diff(fp16, ref)
    timings["ddp_fp16.step_ms"] = _slowest_median(ranks, "ddp_fp16", "step_s") * 1e3
    metrics["ddp_fp16.max_abs_loss_diff"] = fp16_diff
    lines += ["", f"DDP + fp16 compression hook (half the bytes): step "
              f"{timings['ddp_fp16.step_ms']:.2f} ms, max |loss - single| {fp16_diff:.2e}",
              "exposed comm = 1 - (forward+backward under no_sync, no communication) / "
              "(DDP forward+backward, whose all-reduces overlap the backward pass)",
              "timings: medians over steps 2.. of the slowest rank (hand-written all-reduce: the "
              f"median of {cfg.profile_rounds} interleaved rounds' medians); gloo over localhost "
              "on a shared 2-core CPU: latency per call dominates at this size"]
    findings = [
        bucket,
        Finding.at_most(
            "fp16 gradient compression (DDP comm hook) keeps training on the single-process "
            f"loss curve over {cfg.profile_steps} steps (max |loss difference|, nats)",
            "ddp_fp16.max_abs_loss_diff", fp16_diff, cfg.max_fp16_loss_diff),
    ]
    fig = Figure(figsize=(11.0, 4.0), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    names = ["per parameter", f"flat {cfg.flat_bucket_mb:g} MB buckets"]
    comm = [manual["manual_per_param"][0] * 1e3, manual["manual_flat"][0] * 1e3]
    rest = [(manual[j][1] - manual[j][0]) * 1e3 for j in ("manual_per_param", "manual_flat")]
    ax0.bar(names, rest, label="compute + optimizer")
    ax0.bar(names, comm, bottom=rest, label="all-reduce")
    ax0.set(ylabel="ms per step (median, slowest rank)", title="hand-written all-reduce")
    ax0.legend(fontsize=8)
    ax1.plot(cfg.ddp_buckets_mb, shares, marker="o")
    ax1.set(xscale="log", xlabel="DDP bucket_cap_mb", ylabel="exposed communication share of step",
            title="DDP: communication vs bucket size", ylim=(0, 1))
    ax1.grid(alpha=0.3)
    return ItemResult(item=ITEM["communication"], metrics=metrics, timings=timings, findings=findings,
                      figures={"communication.png": fig},
                      texts={"communication.txt": "\n".join(lines) + "\n"})


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        train_texts: the corpus's train split (byte tokens).
        out_dir: where the setup and the per-rank JSON files go (default: a temporary folder).
    """

    train_texts: Sequence[str]
    out_dir: str | Path | None = None


@dataclass
class Outputs:
    """What :func:`run` builds besides the items, for the stage to save: the per-rank results."""

    ranks: list[dict] = field(default_factory=list)


def run(cfg: DistributedConfig, inputs: Inputs, outputs: Outputs | None = None) -> list[ItemResult]:
    """Launch every job under torchrun once, run the single-process reference, build the items.

    Args:
        cfg: the stage config.
        inputs: the train split and the working folder.
        outputs: when given, receives the per-rank results (timings included) as
            ``outputs.ranks``.

    Returns:
        ``[item 1, item 2, item 3]``.
    """
    train_texts, out_dir = inputs.train_texts, inputs.out_dir
    with tempfile.TemporaryDirectory(prefix="nlpc-dist-") as tmp:
        work = Path(out_dir) if out_dir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        tokens = byte_tokens(train_texts)
        torch.save(tokens, work / "tokens.pt")
        model = {k: v for k, v in cfg.model.__dict__.items()}
        setup = DistSetup(model=model, tokens=str(work / "tokens.pt"), seq_len=cfg.seq_len,
                          global_batch=cfg.global_batch, lr=cfg.lr, weight_decay=cfg.weight_decay,
                          seed=cfg.seed, jobs=_jobs(cfg))
        ref: list[float] = []
        unsynced: list[float] = []

        def reference() -> None:  # runs while the ranks start up
            with torch_threads(cfg.num_threads):
                n = max(cfg.steps, cfg.pipeline_steps, cfg.profile_steps)
                ref.extend(reference_losses(setup, n, tokens))
                unsynced.extend(unsynced_losses(setup, cfg.steps, tokens, cfg.nproc))

        ranks = launch(setup, work, nproc=cfg.nproc, timeout=cfg.timeout_s, while_waiting=reference)
        load = os.getloadavg()[0]  # how busy the machine was: timings mean little when > cores
    results = [data_parallel_item(cfg, ref, ranks, unsynced), pipeline_item(cfg, ref, ranks),
               communication_item(cfg, ref, ranks)]
    note = (f"machine: {os.cpu_count()} CPU cores, 1-minute load average {load:.1f} after the "
            "launch (other processes share the cores; above the core count, ranks are "
            "descheduled and idle / communication times include that)\n")
    for r in results[1:]:
        for name in r.texts:
            r.texts[name] += note
    if not all(math.isfinite(v) for r in results for v in r.metrics.values()):
        raise FloatingPointError("a distributed metric is not finite")
    if outputs is not None:
        outputs.ranks = ranks
    return results
