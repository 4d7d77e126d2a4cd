"""Experiments of "Transformers, QKV, & Stacking": one block, n blocks, and Q/K/V taken apart.

The data is the repeated-block toy task of :mod:`nlpcurriculum.data.synthetic.repeats`: a block of
``P`` distinct random tokens repeated, with ``P`` drawn per sequence. After the first block every
next token is determined by the context, but only for a model that can find the earlier
occurrence of the current token and copy its successor (an *induction head*, Olsson et al. 2022,
arXiv:2209.11895). That makes the task a clean probe of what attention and depth buy:

- a bigram model (:class:`~nlpcurriculum.models.bigram.BigramLM`) cannot use the context at all:
  its loss stays near uniform, ``log V``;
- one block (attention + LayerNorm + residuals + MLP, :func:`single_block_item`) reads the
  context but a single layer's keys only know their own token and position, so it can only
  guess among the candidates at plausible offsets: well below ``log V``, well above 0;
- two blocks can compose a previous-token head with an induction head and drive the loss towards
  0 (:func:`depth_item` trains 1, 2 and 4 blocks for the same number of steps);
- :func:`qkv_dissection_item` then breaks Q, K and V of the trained deeper model at inference
  (swap, zero, randomize, tie ``K := Q``) and retrains under some interventions, measuring the loss
  each leaves (:mod:`nlpcurriculum.interpret.qkv` says what each one does to the formula).

Every model is trained on each of ``seeds`` (fresh seeds: initialisation, training data and
batch order), side by side, and scored on a held-out evaluation set (``task.eval_seed``); the
findings are paired comparisons over the seeds (:meth:`~nlpcurriculum.results.Finding.compare`).
The untied output head was chosen after the tied 2-block model failed to find induction on seed
0 and evaluation set 12345; the findings are measured on neither. Figures, tables and the saved
models show the first seed.

Architecture: Vaswani et al. 2017, arXiv:1706.03762 (the pre-norm layout of GPT-2,
:mod:`nlpcurriculum.nn.block`). Losses are per scored token (the unpredictable first block is not
scored), in nats: 0 is perfect, ``log V`` is uniform guessing.

Left out: encoder-decoder stacks, post-norm stacks, depth at equal *compute* or equal parameters
(here: equal optimizer steps and width).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from matplotlib.figure import Figure

from nlpcurriculum.data.synthetic.repeats import RepeatTask, RepeatTaskConfig
from nlpcurriculum.experiments.harness import (
    curve,
    map_seeds,
    mean_loss,
    plot_curves,
    torch_threads,
    train_run,
    uniform_loss,
)
from nlpcurriculum.interpret.qkv import QKV_INTERVENTIONS, intervene_qkv
from nlpcurriculum.models.bigram import BigramLM
from nlpcurriculum.models.miniformer import MiniFormer, MiniFormerConfig
from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.training.trainer import TrainerConfig, TrainResult, seed_everything

__all__ = [
    "ITEM",
    "ITEMS",
    "Inputs",
    "Outputs",
    "StackingConfig",
    "depth_item",
    "qkv_dissection_item",
    "run",
    "single_block_item",
    "uniform_attention_deviation",
]

#: The curriculum item id of each result :func:`run` returns, by short name.
ITEM = {
    "single_block": "transformers-qkv-and-stacking/1",
    "depth": "transformers-qkv-and-stacking/2",
    "qkv": "transformers-qkv-and-stacking/3",
}
#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(ITEM.values())


@dataclass(kw_only=True)
class StackingConfig:
    """The ``transformer_stacking`` section of params/transformers_qkv_and_stacking.yaml.

    Attributes:
        task: the repeated-block toy task.
        model: the block architecture; ``vocab_size`` must equal the task's and ``n_layers`` is
            replaced by each entry of ``depths``.
        train: the trainer knobs, the same for every run (equal steps for every depth).
        depths: numbers of blocks to train (item 2); must contain 1 (item 1's single block).
        dissect_depth: which of ``depths`` item 3 dissects (and retrains).
        interventions: item 3's inference-time interventions (see
            :data:`~nlpcurriculum.interpret.qkv.QKV_INTERVENTIONS`).
        retrain: interventions item 3 also trains a fresh model under (empty: none).
        eval_batches: batches of ``train.batch_size`` sequences for every final loss.
        seeds: every model is trained once per seed (initialisation, data, batch order); fresh
            seeds, none used while the config was chosen. The findings compare over them.
        workers: processes training seeds side by side (one torch thread each).
        num_threads: torch intra-op threads.
        min_gain_over_bigram: item 1: how much lower (nats) the single block's loss must be than
            the bigram baseline's.
        min_depth_gain: item 2: how much lower the best deeper stack's loss must be than 1 block's.
        max_uniform_deviation: item 3: zeroing Q must make attention uniform to this tolerance.
        min_zero_v_loss_fraction: item 3: zeroing V must leave a loss of at least this fraction of
            ``log V`` (no better than near-uniform guessing on the copy task).
        min_tied_retrain_gap: item 3: a model retrained under ``tie_qk`` must stay at least this
            much (nats) above the intact model: induction matches "my token" against "your
            previous token", an asymmetric comparison; a symmetric positive semi-definite score
            form ``x_t^T W^T W x_j`` can only express it together with the mirrored comparison
            and a self-match, which get in its way.
    """

    task: RepeatTaskConfig = field(default_factory=RepeatTaskConfig)
    model: MiniFormerConfig
    train: TrainerConfig
    depths: list[int] = field(default_factory=lambda: [1, 2, 4])
    dissect_depth: int = 2
    interventions: list[str] = field(
        default_factory=lambda: [k for k in QKV_INTERVENTIONS if k != "none"]
    )
    retrain: list[str] = field(default_factory=lambda: ["tie_qk", "zero_q"])
    eval_batches: int = 16
    seeds: list[int] = field(default_factory=lambda: [101, 102, 103])
    workers: int = 2
    num_threads: int = 1
    min_gain_over_bigram: float = 0.5
    min_depth_gain: float = 0.3
    max_uniform_deviation: float = 1e-6
    min_zero_v_loss_fraction: float = 0.8
    min_tied_retrain_gap: float = 0.5

    def __post_init__(self) -> None:
        if self.model.vocab_size != self.task.vocab_size:
            raise ValueError(
                f"model.vocab_size={self.model.vocab_size} must equal "
                f"task.vocab_size={self.task.vocab_size}"
            )
        if self.model.max_seq_len < self.task.seq_len and self.model.position in ("learned", "sinusoidal"):
            raise ValueError(
                f"model.max_seq_len={self.model.max_seq_len} < task.seq_len={self.task.seq_len}")
        if 1 not in self.depths or any(d < 1 for d in self.depths):
            raise ValueError(f"depths must be positive and contain 1 (the single block), got {self.depths}")
        if self.dissect_depth not in self.depths:
            raise ValueError(f"dissect_depth={self.dissect_depth} is not one of depths={self.depths}")
        for kind in [*self.interventions, *self.retrain]:
            if kind not in QKV_INTERVENTIONS or kind == "none":
                raise ValueError(f"unknown intervention {kind!r}; choose from {QKV_INTERVENTIONS[1:]}")
        if "zero_q" not in self.interventions or "zero_v" not in self.interventions:
            raise ValueError("interventions must include zero_q and zero_v (item 3 checks them)")
        if self.eval_batches < 1 or self.num_threads < 1 or self.workers < 1:
            raise ValueError("eval_batches, num_threads and workers must be >= 1")
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must hold >= 2 distinct seeds (a comparison needs a standard "
                             f"error; use >= 3), got {self.seeds}")


@dataclass
class _Run:
    """One trained model with its history and final validation loss."""

    model: torch.nn.Module
    result: TrainResult
    loss: float


def _fit(cfg: StackingConfig, seed: int, model_cfg: MiniFormerConfig | None, *, model=None,
         wrap=None) -> _Run:
    train, val = RepeatTask(cfg.task, seed=seed), RepeatTask(cfg.task, seed=seed + 1)
    train_cfg = replace(cfg.train, seed=seed, progress=False)
    model, result = train_run(model_cfg, train_cfg, train, val, seed=seed, model=model, wrap=wrap)
    if wrap is None:
        loss = mean_loss(model, val, cfg.train.batch_size, cfg.eval_batches)
    else:
        with wrap(model):
            loss = mean_loss(model, val, cfg.train.batch_size, cfg.eval_batches)
    return _Run(model, result, loss)


def _depth_cfg(cfg: StackingConfig, depth: int) -> MiniFormerConfig:
    return replace(cfg.model, n_layers=depth)


@dataclass
class _SeedRuns:
    """What one seed trained and measured: the bigram, every depth, the retrained variants, and
    the dissected model's loss under each inference-time intervention (``"none"``: intact)."""

    seed: int
    bigram: _Run
    runs: dict[int, _Run]
    retrained: dict[str, _Run]
    dissection: dict[str, float]
    zero_q_deviation: float


def _train_seed(seed: int, cfg: StackingConfig) -> _SeedRuns:
    """Train and dissect everything for one seed (module-level: it runs in a worker process)."""
    with torch_threads(cfg.num_threads):
        seed_everything(seed)
        bigram = _fit(cfg, seed, None, model=BigramLM(cfg.task.vocab_size))
        runs = {d: _fit(cfg, seed, _depth_cfg(cfg, d)) for d in sorted(set(cfg.depths))}
        retrained = {
            kind: _fit(cfg, seed, _depth_cfg(cfg, cfg.dissect_depth),
                       wrap=lambda m, kind=kind: intervene_qkv(m, kind, seed=seed))
            for kind in cfg.retrain
        }
        base = runs[cfg.dissect_depth]
        val = RepeatTask(cfg.task, seed=seed + 1)
        losses = {"none": base.loss}
        for kind in cfg.interventions:
            with intervene_qkv(base.model, kind, seed=seed):
                losses[kind] = mean_loss(base.model, val, cfg.train.batch_size, cfg.eval_batches)
        x, _ = next(val.eval_batches(8, 1))
        with intervene_qkv(base.model, "zero_q"):
            deviation = uniform_attention_deviation(base.model, x)
    return _SeedRuns(seed, bigram, runs, retrained, losses, deviation)


def _verdict(f: Finding) -> str:
    return (f"{f.metric}: {f.value:+.4f} (SE {f.se:.4f}, n {f.n}, bound {f.threshold:+g}) "
            f"{'pass' if f.passed else 'FAIL'}\n")


def single_block_item(cfg: StackingConfig, seeds: list[_SeedRuns]) -> ItemResult:
    """Item 1: one attention block against the bigram baseline on the toy task, over seeds."""
    V = cfg.task.vocab_size
    ids = [r.seed for r in seeds]
    single = [r.runs[1].loss for r in seeds]
    bigram = [r.bigram.loss for r in seeds]
    finding = Finding.compare(
        "a single attention block beats the bigram (no-attention) baseline on the toy task "
        f"(bigram - 1 block, held-out loss, nats; paired over seeds {ids})", "gain_over_bigram",
        bigram, single, margin=cfg.min_gain_over_bigram)
    first = seeds[0]
    text = (
        "The single-block transformer (one pre-norm block: x + attn(LN(x)), then x + mlp(LN(x))):\n\n"
        f"{first.runs[1].model}\n\n"
        f"held-out loss per scored token (nats), seeds {ids}: single block "
        f"{' '.join(f'{x:.4f}' for x in single)}, bigram {' '.join(f'{x:.4f}' for x in bigram)}, "
        f"uniform log({V}) = {uniform_loss(V):.4f}\n" + _verdict(finding)
    )
    metrics = {
        "val_loss_single_block": float(np.mean(single)),
        "val_loss_bigram": float(np.mean(bigram)),
        "uniform_loss": uniform_loss(V),
        "gain_over_bigram": finding.value,
        "gain_over_bigram.se": finding.se,
        "parameters_single_block": sum(p.numel() for p in first.runs[1].model.parameters()),
    }
    for r in seeds:
        metrics[f"seed{r.seed}.val_loss_single_block"] = r.runs[1].loss
        metrics[f"seed{r.seed}.val_loss_bigram"] = r.bigram.loss
    return ItemResult(
        item=ITEM["single_block"],
        metrics=metrics,
        series={"val_loss_single_block": curve(first.runs[1].result.history),
                "val_loss_bigram": curve(first.bigram.result.history)},
        figures={"single_block.png": plot_curves(
            {"1 block (attention + LayerNorm + residuals)": curve(first.runs[1].result.history),
             "bigram (no attention)": curve(first.bigram.result.history)},
            f"repeated-block toy task: does attention help? (seed {first.seed})",
            hlines={f"uniform log {V}": uniform_loss(V)},
        )},
        texts={"single_block.txt": text},
        findings=[finding],
    )


def _steps_to(history: list[dict[str, float]], level: float) -> int | None:
    """First evaluated step whose validation loss is at most ``level`` (``None`` if never)."""
    return next((int(h["step"]) for h in history if h.get("val_loss", math.inf) <= level), None)


def depth_item(cfg: StackingConfig, seeds: list[_SeedRuns]) -> ItemResult:
    """Item 2: held-out loss against depth at an equal number of steps, over seeds."""
    V = cfg.task.vocab_size
    ids = [r.seed for r in seeds]
    depths = sorted(seeds[0].runs)
    mean = {d: float(np.mean([r.runs[d].loss for r in seeds])) for d in depths}
    deeper = [d for d in depths if d > 1]
    best = min(deeper, key=mean.get) if deeper else 1
    finding = Finding.compare(
        f"at equal steps a deeper stack beats 1 block (best on average: {best} blocks; "
        f"1 block - {best} blocks, held-out loss, nats; paired over seeds {ids})", "depth_gain",
        [r.runs[1].loss for r in seeds], [r.runs[best].loss for r in seeds],
        margin=cfg.min_depth_gain)
    first = seeds[0]
    runs = first.runs
    metrics: dict[str, float] = {}
    reached = {d: _steps_to(runs[d].result.history, 0.5) for d in depths}
    for d in depths:
        metrics[f"val_loss_depth{d}"] = mean[d]
        for r in seeds:
            metrics[f"seed{r.seed}.val_loss_depth{d}"] = r.runs[d].loss
        if reached[d] is not None:
            metrics[f"steps_to_0.5_depth{d}"] = reached[d]
        metrics[f"parameters_depth{d}"] = sum(p.numel() for p in runs[d].model.parameters())
    metrics["depth_gain"] = finding.value
    metrics["depth_gain.se"] = finding.se
    metrics["best_depth"] = best

    fig = Figure(figsize=(12.0, 4.2), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    for d in depths:
        steps, values = zip(*curve(runs[d].result.history))
        ax0.plot(steps, values, label=f"{d} block{'s' if d > 1 else ''}")
    ax0.axhline(uniform_loss(V), color="grey", linestyle="--", linewidth=1, label=f"uniform log {V}")
    ax0.set(xlabel="optimizer step", ylabel="validation loss (nats / scored token)",
            title=f"loss curves at equal steps (seed {first.seed})")
    ax0.set_yscale("log")  # losses are > 0; the log scale shows the approach to 0
    ax0.legend(fontsize=8)
    ax0.grid(alpha=0.3)
    for r in seeds:
        ax1.plot(depths, [r.runs[d].loss for d in depths], marker="o", alpha=0.6, label=f"seed {r.seed}")
    ax1.set_xscale("log", base=2)
    ax1.set_xticks(depths, labels=[str(d) for d in depths])
    ax1.set_yscale("log")
    ax1.set(xlabel="blocks", ylabel="final held-out loss", title=f"after {cfg.train.max_steps} steps")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    fig.suptitle("n-block mini-former on the repeated-block task")
    lines = [f"{'blocks':>6} {'params':>8} {'loss (mean)':>11}  per seed {ids}  {'step to <=0.5':>14}"]
    for d in depths:
        when = "never" if reached[d] is None else str(reached[d])
        per_seed = " ".join(f"{r.runs[d].loss:.4f}" for r in seeds)
        lines.append(f"{d:>6} {metrics[f'parameters_depth{d}']:>8} {mean[d]:>11.4f}  {per_seed}  {when:>14}")
    return ItemResult(
        item=ITEM["depth"],
        metrics=metrics,
        series={f"val_loss_depth{d}": curve(runs[d].result.history) for d in depths},
        figures={"depth.png": fig},
        texts={"depth.txt": "\n".join(lines) + "\n" + _verdict(finding)},
        findings=[finding],
    )


@torch.no_grad()
def uniform_attention_deviation(model: MiniFormer, x: torch.Tensor) -> float:
    """Max ``|w[t, j] - 1/(t+1)|`` over visible keys, every layer and head (0 = exactly uniform)."""
    T = x.size(1)
    uniform = torch.ones(T, T).tril() / torch.arange(1, T + 1)[:, None]  # (T, T): row t = 1/(t+1)
    maps = model(x, return_attn=True).attentions  # n_layers x (B, nh, T, T)
    return max(float((w - uniform).abs().max()) for w in maps)


def qkv_dissection_item(cfg: StackingConfig, seeds: list[_SeedRuns]) -> ItemResult:
    """Item 3: the trained model's loss under each Q/K/V intervention, and retrained variants,
    averaged over seeds; the findings compare over them."""
    V = cfg.task.vocab_size
    ids = [r.seed for r in seeds]
    kinds = list(seeds[0].dissection)
    losses = {k: float(np.mean([r.dissection[k] for r in seeds])) for k in kinds}
    retrained = {k: float(np.mean([r.retrained[k].loss for r in seeds])) for k in cfg.retrain}
    deviation = max(r.zero_q_deviation for r in seeds)

    metrics: dict[str, float] = {f"loss_{k}": v for k, v in losses.items()}
    metrics.update({f"loss_retrained_{k}": v for k, v in retrained.items()})
    metrics["zero_q_uniform_deviation"] = deviation
    metrics["uniform_loss"] = uniform_loss(V)
    zero_v = Finding.compare(
        "zeroing V destroys the copying: loss rises to near uniform guessing "
        f"(loss / log V, mean over seeds {ids}, above {cfg.min_zero_v_loss_fraction:g})",
        "zero_v_loss_fraction_of_uniform", [r.dissection["zero_v"] / uniform_loss(V) for r in seeds],
        margin=cfg.min_zero_v_loss_fraction)
    metrics["zero_v_loss_fraction_of_uniform"] = zero_v.value

    findings = [
        Finding.at_most(
            "zeroing Q makes every attention row exactly uniform over the visible prefix "
            "(max |w - 1/(t+1)|, every seed)", "zero_q_uniform_deviation", deviation,
            cfg.max_uniform_deviation, kind=INVARIANT),
        zero_v,
    ]
    if "tie_qk" in retrained:
        tied = Finding.compare(
            "retrained with K := Q (symmetric scores q_t . q_j), the model does not learn the copy "
            f"task as well as the intact one (retrained tie_qk - intact, held-out loss, nats; "
            f"paired over seeds {ids})", "retrained_tie_qk_gap",
            [r.retrained["tie_qk"].loss for r in seeds], [r.dissection["none"] for r in seeds],
            margin=cfg.min_tied_retrain_gap)
        metrics["retrained_tie_qk_gap"] = tied.value
        metrics["retrained_tie_qk_gap.se"] = tied.se
        findings.append(tied)
    lines = [f"dissected: the trained {cfg.dissect_depth}-block model; every layer, every head; "
             f"mean over seeds {ids}.",
             f"{'intervention':<16} {'val loss':>9} {'vs intact':>10}"]
    base = losses["none"]
    for k, v in losses.items():
        lines.append(f"{k:<16} {v:>9.4f} {v - base:>+10.4f}")
    for k, v in retrained.items():
        lines.append(f"{'retrained ' + k:<16} {v:>9.4f} {v - base:>+10.4f}")
    lines.append(f"\nuniform guessing log({V}) = {uniform_loss(V):.4f}; "
                 f"zero_q max deviation from uniform attention = {deviation:.2e}")
    lines += [_verdict(f).rstrip() for f in findings if f.se is not None]
    first = seeds[0]
    series = {f"val_loss_retrained_{k}": curve(r.result.history) for k, r in first.retrained.items()}
    return ItemResult(
        item=ITEM["qkv"],
        metrics=metrics,
        series=series,
        figures={"qkv_dissection.png": _dissection_figure(losses, retrained, V, cfg.dissect_depth)},
        texts={"qkv_dissection.txt": "\n".join(lines) + "\n"},
        findings=findings,
    )


def _dissection_figure(losses: dict[str, float], retrained: dict[str, float], V: int, depth: int) -> Figure:
    names = ["intact" if k == "none" else k for k in losses] + [f"retrained\n{k}" for k in retrained]
    values = list(losses.values()) + list(retrained.values())
    colors = ["C2"] + ["C0"] * (len(losses) - 1) + ["C1"] * len(retrained)
    fig = Figure(figsize=(max(7.0, 0.8 * len(names) + 2), 4.6), layout="constrained")
    ax = fig.subplots()
    bars = ax.bar(np.arange(len(names)), values, color=colors)
    ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(uniform_loss(V), color="grey", linestyle="--", linewidth=1, label=f"uniform log {V}")
    ax.set_xticks(np.arange(len(names)), labels=names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("validation loss (nats / scored token)")
    ax.set_title(f"Q/K/V dissection of the trained {depth}-block model "
                 "(green: intact, blue: broken at inference, orange: retrained so)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads: nothing, the repeated-block task is generated from ``cfg.task``."""


@dataclass
class Outputs:
    """What :func:`run` builds besides the items, for the stage to save: ``{depth: trained model}``."""

    models: dict[int, torch.nn.Module] = field(default_factory=dict)


def run(cfg: StackingConfig, inputs: Inputs, outputs: Outputs | None = None) -> list[ItemResult]:
    """Train the bigram baseline and every depth on every seed, dissect one, return the items.

    Args:
        cfg: the stage config (its ``task`` section generates the data).
        inputs: nothing (see :class:`Inputs`).
        outputs: when given, receives the first seed's model of every depth as ``outputs.models``.

    Returns:
        ``[item 1, item 2, item 3]``.
    """
    seeds = map_seeds(_train_seed, cfg.seeds, cfg.workers, cfg)
    with torch_threads(cfg.num_threads):
        results = [
            single_block_item(cfg, seeds),
            depth_item(cfg, seeds),
            qkv_dissection_item(cfg, seeds),
        ]
    if outputs is not None:
        outputs.models = {d: r.model for d, r in seeds[0].runs.items()}
    return results
