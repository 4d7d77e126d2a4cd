"""The curriculum experiments of section "Multi-Task Learning" (items 1-3).

The tasks are word-level classification from :mod:`nlpcurriculum.adaptation.task_suite`, generated
from seeds: **topic** (5 classes, ``n_topic`` training documents), **sentiment** (2 classes,
``n_sentiment``: the small task), and **topic_shifted**, the conflict built on purpose: topic's
documents, every label moved to the next class, answered by topic's own head. Two task pairs:

* the **compatible pair** (topic + sentiment, a head each): the negative control of the
  negative-transfer detector;
* the **conflict pair** (topic + topic_shifted, one shared head): the positive control.

Every model is a bidirectional mini-former encoder (mean-pooled) with linear heads
(:mod:`nlpcurriculum.adaptation.multitask`), trained with Adam; every task sees ``steps_per_task``
batches of its own in every arm, so multi- and single-task runs are compared at equal batches per
task, paired by seed (the seed fixes the data, the initialisation and the batches).

* ``multi-task-learning/1`` (:func:`encoder_item`): the shared encoder with task heads. Finding
  (non-inferiority): on the compatible pair, joint training (equal weights) costs neither task
  more than ``max_compatible_drop`` accuracy against its single-task model; and the model learns:
  each task's multi-task accuracy is ``min_over_chance`` above chance. A broken encoder (heads fed
  garbage) fails the second; a shared head for the compatible pair would fail the first.
* ``multi-task-learning/2`` (:func:`balancing_item`): gradient balancing and task sampling.
  Invariant: our PCGrad equals ``torchjd.aggregation.PCGrad`` on the same per-task gradient
  matrices (the real shared-encoder gradients of the three tasks, and random 5-task matrices;
  both draw their task orders from torch's global RNG, reseeded identically before each call, so
  they visit the tasks in the same order). Findings: each of PCGrad, GradNorm and uncertainty
  weighting reduces the conflict pair's damage (mean over its two tasks of single minus multi
  accuracy) below the equal-weight sum's by ``min_damage_reduction`` (a method that does nothing
  fails it; on an irreconcilable conflict no reweighting can serve both tasks, so this may
  fail, and is reported as it comes); with unequal task sizes, round-robin sampling gives the
  small task (sentiment) more accuracy than proportional sampling, by ``min_sampling_gain`` (a
  schedule that ignored the strategy would tie).
* ``multi-task-learning/3`` (:func:`transfer_item`): per-task learning curves (multi vs single,
  plotted), gradient cosines between tasks, and negative transfer detected
  (:func:`~nlpcurriculum.adaptation.multitask.detect_negative_transfer`): it flags both tasks of
  the conflict pair (positive control) and, as a non-inferiority check, neither task of the
  compatible pair (negative control); the conflict pair's mean gradient cosine lies below the
  compatible pair's by ``min_cosine_gap`` and below zero. A detector that never flags fails the
  positive control, one that always flags fails the negative control.

Left out: larger task suites, task-conditioned encoders, auxiliary-task selection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from nlpcurriculum.adaptation.gradient_balancing import pcgrad
from nlpcurriculum.adaptation.multitask import (
    JOINT_METHODS,
    SAMPLING,
    build_multitask_model,
    detect_negative_transfer,
    sampling_probs,
    train_multitask,
)
from nlpcurriculum.adaptation.task_suite import (
    ClassificationTask,
    classification_task,
    permuted_task,
    vocabulary,
)
from nlpcurriculum.experiments.harness import map_seeds, torch_threads
from nlpcurriculum.models.miniformer import MiniFormerConfig
from nlpcurriculum.results import Finding, ItemResult

__all__ = ["ITEMS", "Inputs", "MultiTaskChecks", "MultiTaskExperimentConfig", "balancing_item",
           "encoder_item", "run", "run_seed", "transfer_item"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("multi-task-learning/1", "multi-task-learning/2", "multi-task-learning/3")

TOPIC, SENTIMENT, SHIFTED = "topic", "sentiment", "topic_shifted"
COMPATIBLE, CONFLICT = "compatible", "conflict"
BALANCERS = ("pcgrad", "gradnorm", "uncertainty")


@dataclass
class MultiTaskChecks:
    """Bounds of the findings (params ``multitask.checks``).

    Attributes:
        max_pcgrad_diff: our PCGrad vs torchjd's, max |difference| (float32 sums in another order).
        max_compatible_drop: item 1: the largest accuracy a compatible task may lose to joint training.
        min_over_chance: item 1: multi-task accuracy above chance, per task.
        min_damage_reduction: item 2: conflict damage of the sum minus that of a balancing method.
        min_sampling_gain: item 2: the small task's accuracy, round robin minus proportional.
        transfer_margin: item 3: the accuracy drop that counts as negative transfer.
        min_cosine_gap: item 3: compatible minus conflict mean gradient cosine.
    """

    max_pcgrad_diff: float = 1e-5
    max_compatible_drop: float = 0.03
    min_over_chance: float = 0.3
    min_damage_reduction: float = 0.02
    min_sampling_gain: float = 0.01
    transfer_margin: float = 0.05
    min_cosine_gap: float = 0.1


@dataclass
class MultiTaskExperimentConfig:
    """Knobs of :func:`run` (the ``multitask`` params section).

    Attributes:
        length: words per document.
        n_topic, n_sentiment: training documents of the two base tasks (unequal on purpose: the
            sampling strategies differ only when the sizes do).
        n_val: held-out documents per task.
        topic_signal, sentiment_signal: share of class words in a document (task difficulty).
        d_model, n_layers, n_heads: the shared encoder.
        steps_per_task: batches each task sees in every arm.
        batch_size: documents per task batch.
        lr: Adam's learning rate.
        eval_every: evaluate every this many batches of a task (the learning curves).
        temperature: the temperature sampling strategy's T.
        gradnorm_alpha, gradnorm_lr: GradNorm's asymmetry and weight step size.
        seeds: one run of every arm per seed (paired comparisons).
        workers: seeds run side by side in this many processes.
        threads: torch threads per process.
        checks: bounds of the findings.
    """

    length: int = 16
    n_topic: int = 2000
    n_sentiment: int = 500
    n_val: int = 500
    topic_signal: float = 0.15
    sentiment_signal: float = 0.1
    d_model: int = 32
    n_layers: int = 1
    n_heads: int = 2
    steps_per_task: int = 200
    batch_size: int = 32
    lr: float = 0.003
    eval_every: int = 20
    temperature: float = 2.0
    gradnorm_alpha: float = 1.5
    gradnorm_lr: float = 0.025
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    workers: int = 2
    threads: int = 1
    checks: MultiTaskChecks = field(default_factory=MultiTaskChecks)

    def __post_init__(self) -> None:
        if len(self.seeds) < 3 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be at least three distinct seeds, got {self.seeds}")
        if self.steps_per_task < self.eval_every or self.eval_every < 1:
            raise ValueError("need 1 <= eval_every <= steps_per_task")
        if self.n_topic == self.n_sentiment:
            raise ValueError("n_topic and n_sentiment must differ (the sampling comparison needs it)")


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads: nothing but tasks generated from seeds."""


def build_tasks(cfg: MultiTaskExperimentConfig, seed: int) -> dict[str, ClassificationTask]:
    """The three tasks of one seed (topic and sentiment from different generator seeds)."""
    topic = classification_task(TOPIC, "topic", n_train=cfg.n_topic, n_val=cfg.n_val,
                                length=cfg.length, signal=cfg.topic_signal, seed=10_000 + seed)
    sentiment = classification_task(SENTIMENT, "sentiment", n_train=cfg.n_sentiment,
                                    n_val=cfg.n_val, length=cfg.length,
                                    signal=cfg.sentiment_signal, seed=20_000 + seed)
    return {TOPIC: topic, SENTIMENT: sentiment, SHIFTED: permuted_task(topic, SHIFTED)}


def _encoder_cfg(cfg: MultiTaskExperimentConfig) -> MiniFormerConfig:
    return MiniFormerConfig(vocab_size=len(vocabulary()), d_model=cfg.d_model, n_layers=cfg.n_layers,
                            n_heads=cfg.n_heads, max_seq_len=cfg.length, position="learned",
                            causal=False, dropout=0.0)


def _arms() -> list[tuple[str, tuple[str, ...], str, str]]:
    """``(arm name, tasks, method, sampling)`` of every run of one seed."""
    arms = [(f"single.{t}", (t,), "sum", "") for t in (TOPIC, SENTIMENT, SHIFTED)]
    for pair, tasks in ((COMPATIBLE, (TOPIC, SENTIMENT)), (CONFLICT, (TOPIC, SHIFTED))):
        arms += [(f"{pair}.{m}", tasks, m, "") for m in JOINT_METHODS]
    arms += [(f"{COMPATIBLE}.sampled_{s}", (TOPIC, SENTIMENT), "sampled", s) for s in SAMPLING]
    return arms


def run_seed(seed: int, cfg: MultiTaskExperimentConfig) -> dict:
    """Every arm of one seed: ``{arm: MultiTaskRun}`` plus the PCGrad parity gradients."""
    with torch_threads(cfg.threads):
        tasks = build_tasks(cfg, seed)
        runs = {}
        for arm, names, method, sampling in _arms():
            chosen = [tasks[n] for n in names]
            model = build_multitask_model(_encoder_cfg(cfg), chosen, seed)
            runs[arm] = train_multitask(
                model, chosen, method=method, steps_per_task=cfg.steps_per_task,
                batch_size=cfg.batch_size, lr=cfg.lr, seed=seed, eval_every=cfg.eval_every,
                sampling=sampling or "round_robin", temperature=cfg.temperature,
                gradnorm_alpha=cfg.gradnorm_alpha, gradnorm_lr=cfg.gradnorm_lr)
        return {"runs": runs, "grads": _task_gradients(cfg, tasks, seed)}


def _task_gradients(cfg: MultiTaskExperimentConfig, tasks: dict[str, ClassificationTask],
                    seed: int) -> torch.Tensor:
    """``(3, P)`` shared-encoder gradients of the three tasks on one batch each, at initialisation."""
    chosen = [tasks[TOPIC], tasks[SHIFTED], tasks[SENTIMENT]]
    model = build_multitask_model(_encoder_cfg(cfg), chosen, seed)
    rows = []
    for t in chosen:
        loss = torch.nn.functional.cross_entropy(model(t.x_train[:cfg.batch_size], t.head),
                                                 t.y_train[:cfg.batch_size])
        grads = torch.autograd.grad(loss, list(model.encoder.parameters()))
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)  # (3, P)


def _acc(results: list[dict], arm: str, task: str) -> list[float]:
    return [r["runs"][arm].final_accuracy[task] for r in results]


def _damage(results: list[dict], method: str) -> list[float]:
    """Per seed: mean over the conflict pair's two tasks of single minus multi accuracy."""
    return [float(np.mean([r["runs"][f"single.{t}"].final_accuracy[t]
                           - r["runs"][f"{CONFLICT}.{method}"].final_accuracy[t] for t in (TOPIC, SHIFTED)]))
            for r in results]


def encoder_item(cfg: MultiTaskExperimentConfig, results: list[dict]) -> ItemResult:
    """Item 1: the shared encoder with task heads on the compatible pair."""
    c = cfg.checks
    chance = {TOPIC: 0.2, SENTIMENT: 0.5}
    metrics, findings = {}, []
    for t in (TOPIC, SENTIMENT):
        single, multi = _acc(results, f"single.{t}", t), _acc(results, f"{COMPATIBLE}.sum", t)
        metrics[f"accuracy.single.{t}"] = float(np.mean(single))
        metrics[f"accuracy.multi.{t}"] = float(np.mean(multi))
        findings.append(Finding.compare(
            f"joint training with {TOPIC} and {SENTIMENT} (a head each, equal weights) costs {t} at most "
            f"{c.max_compatible_drop} accuracy against its single-task model at the same {cfg.steps_per_task} "
            "batches of its own (paired by seed; non-inferiority)",
            f"multi_minus_single_accuracy.{t}", multi, single, margin=-c.max_compatible_drop))
        findings.append(Finding.compare(
            f"the shared encoder learns {t}: multi-task accuracy at least {c.min_over_chance} above "
            f"chance ({chance[t]})", f"multi_accuracy_over_chance.{t}",
            [a - chance[t] for a in multi], margin=c.min_over_chance))
    enc = build_multitask_model(_encoder_cfg(cfg), list(build_tasks(cfg, cfg.seeds[0]).values()), 0)
    metrics["encoder_parameters"] = float(sum(p.numel() for p in enc.encoder.parameters()))
    metrics["head_parameters"] = float(sum(p.numel() for p in enc.heads.parameters()))
    return ItemResult(ITEMS[0], metrics=metrics, findings=findings)


def _pcgrad_parity(results: list[dict]) -> float:
    from torchjd.aggregation import PCGrad

    theirs = PCGrad()
    worst = 0.0
    g = torch.Generator().manual_seed(0)
    mats = [r["grads"] for r in results] + [torch.randn(5, 4000, generator=g) for _ in range(5)]
    for i, G in enumerate(mats):
        torch.manual_seed(1234 + i)
        ours = pcgrad(G)
        torch.manual_seed(1234 + i)
        ref = theirs(G)
        worst = max(worst, float((ours - ref).abs().max()))
    return worst


def balancing_item(cfg: MultiTaskExperimentConfig, results: list[dict]) -> ItemResult:
    """Item 2: PCGrad parity, the balancing methods on the conflict, sampling strategies."""
    c = cfg.checks
    diff = _pcgrad_parity(results)
    metrics = {"pcgrad_torchjd_max_abs_diff": diff}
    findings = [Finding.invariant(
        "our PCGrad equals torchjd's PCGrad aggregator on the same per-task gradients (the real "
        "shared-encoder gradients of the 3 tasks per seed, and 5 random 5-task matrices; torch's "
        "global RNG reseeded identically before each call, so both draw the same task orders)",
        "pcgrad_torchjd_max_abs_diff", diff, diff <= c.max_pcgrad_diff, c.max_pcgrad_diff)]
    base = _damage(results, "sum")
    metrics["conflict_damage.sum"] = float(np.mean(base))
    for m in BALANCERS:
        dm = _damage(results, m)
        metrics[f"conflict_damage.{m}"] = float(np.mean(dm))
        findings.append(Finding.compare(
            f"{m} reduces the conflict pair's damage (mean over its two tasks of single minus multi "
            f"accuracy) below the equal-weight sum's by at least {c.min_damage_reduction} (paired by seed)",
            f"conflict_damage.{m}_minus_sum", dm, base, margin=c.min_damage_reduction,
            higher_is_better=False))
        for t in (TOPIC, SHIFTED):
            metrics[f"accuracy.{CONFLICT}.{m}.{t}"] = float(np.mean(_acc(results, f"{CONFLICT}.{m}", t)))
    for t in (TOPIC, SHIFTED):
        metrics[f"accuracy.{CONFLICT}.sum.{t}"] = float(np.mean(_acc(results, f"{CONFLICT}.sum", t)))
    sizes = [cfg.n_topic, cfg.n_sentiment]
    for s in SAMPLING:
        p = sampling_probs(sizes, s, cfg.temperature)
        metrics[f"sampling_share.{s}.{SENTIMENT}"] = float(p[1])
        for t in (TOPIC, SENTIMENT):
            metrics[f"accuracy.sampled_{s}.{t}"] = float(np.mean(_acc(results, f"{COMPATIBLE}.sampled_{s}", t)))
    findings.append(Finding.compare(
        f"with {cfg.n_topic} {TOPIC} and {cfg.n_sentiment} {SENTIMENT} documents and the same total "
        f"steps, round-robin sampling gives the small task ({SENTIMENT}) more accuracy than proportional "
        f"sampling (share {sampling_probs(sizes, 'proportional')[1]:.2f}) by at least {c.min_sampling_gain} "
        "(paired by seed)", f"{SENTIMENT}_accuracy.round_robin_minus_proportional",
        _acc(results, f"{COMPATIBLE}.sampled_round_robin", SENTIMENT),
        _acc(results, f"{COMPATIBLE}.sampled_proportional", SENTIMENT), margin=c.min_sampling_gain))
    for m in ("gradnorm", "uncertainty"):
        for t in (TOPIC, SHIFTED):
            metrics[f"final_weight.{CONFLICT}.{m}.{t}"] = float(np.mean(
                [r["runs"][f"{CONFLICT}.{m}"].weights[t] for r in results]))
    lines = ["conflict pair: accuracy per task (mean over seeds) and damage (single - multi, mean of both)"]
    for m in JOINT_METHODS:
        lines.append(f"  {m:>11}: {TOPIC} {np.mean(_acc(results, f'{CONFLICT}.{m}', TOPIC)):.3f}  "
                     f"{SHIFTED} {np.mean(_acc(results, f'{CONFLICT}.{m}', SHIFTED)):.3f}  "
                     f"damage {np.mean(_damage(results, m)):+.3f}")
    lines.append("compatible pair, one task per step (sampling):")
    for s in SAMPLING:
        lines.append(f"  {s:>12}: {SENTIMENT} share {metrics[f'sampling_share.{s}.{SENTIMENT}']:.2f}  "
                     f"{TOPIC} {metrics[f'accuracy.sampled_{s}.{TOPIC}']:.3f}  "
                     f"{SENTIMENT} {metrics[f'accuracy.sampled_{s}.{SENTIMENT}']:.3f}")
    return ItemResult(ITEMS[1], metrics=metrics, findings=findings,
                      texts={"balancing.txt": "\n".join(lines) + "\n"})


def _mean_curve(results: list[dict], arm: str, key: str, attr: str = "curves") -> list[tuple[int, float]]:
    curves = [getattr(r["runs"][arm], attr)[key] for r in results]
    return [(s, float(np.mean([c[i][1] for c in curves]))) for i, (s, _) in enumerate(curves[0])]


def transfer_item(cfg: MultiTaskExperimentConfig, results: list[dict]) -> ItemResult:
    """Item 3: learning curves, gradient cosines and the negative-transfer detector's controls."""
    c = cfg.checks
    metrics, findings, series = {}, [], {}
    table = [f"{'pair':>10} {'task':>14} {'single':>7} {'multi':>7} {'drop':>7} {'SE':>6}  negative transfer?"]
    flags = {}
    for pair, tasks in ((COMPATIBLE, (TOPIC, SENTIMENT)), (CONFLICT, (TOPIC, SHIFTED))):
        single = {t: _acc(results, f"single.{t}", t) for t in tasks}
        multi = {t: _acc(results, f"{pair}.sum", t) for t in tasks}
        flags[pair] = detect_negative_transfer(multi, single, c.transfer_margin, f"the {pair} pair")
        for t in tasks:
            f = flags[pair][t]
            metrics[f"drop.{pair}.{t}"] = f.value
            metrics[f"flagged.{pair}.{t}"] = float(f.passed)
            table.append(f"{pair:>10} {t:>14} {np.mean(single[t]):7.3f} {np.mean(multi[t]):7.3f} "
                         f"{f.value:+7.3f} {f.se:6.3f}  {'FLAGGED' if f.passed else 'no'}")
            series[f"accuracy.{pair}.multi.{t}"] = _mean_curve(results, f"{pair}.sum", t)
            series[f"accuracy.single.{t}"] = _mean_curve(results, f"single.{t}", t)
    for t in (TOPIC, SHIFTED):  # the positive control: the detector must flag both
        f = flags[CONFLICT][t]
        findings.append(Finding(f"positive control: the detector flags the built conflict on {t} "
                                f"(same documents, labels shifted, one head): {f.claim}", f.metric,
                                f.value, f.passed, f.threshold, n=f.n, se=f.se))
    for t in (TOPIC, SENTIMENT):  # the negative control: confidently not flagged
        single, multi = _acc(results, f"single.{t}", t), _acc(results, f"{COMPATIBLE}.sum", t)
        findings.append(Finding.compare(
            f"negative control: no negative transfer on {t} in the compatible pair: its drop "
            f"(single - multi) is below the detector's margin {c.transfer_margin} by two standard errors",
            f"compatible_multi_minus_single_accuracy.{t}", multi, single, margin=-c.transfer_margin))
    cos = {pair: [r["runs"][f"{pair}.sum"].cosines[f"{a}|{b}"] for r in results]
           for pair, (a, b) in ((COMPATIBLE, (TOPIC, SENTIMENT)), (CONFLICT, (TOPIC, SHIFTED)))}
    for pair, (a, b) in ((COMPATIBLE, (TOPIC, SENTIMENT)), (CONFLICT, (TOPIC, SHIFTED))):
        metrics[f"gradient_cosine.{pair}"] = float(np.mean(cos[pair]))
        series[f"gradient_cosine.{pair}"] = _mean_curve(results, f"{pair}.sum", f"{a}|{b}", "cosine_curves")
    findings.append(Finding.compare(
        f"the conflict pair's shared-encoder gradients point against each other more than the "
        f"compatible pair's: mean cosine lower by at least {c.min_cosine_gap} (paired by seed)",
        "gradient_cosine.compatible_minus_conflict", cos[COMPATIBLE], cos[CONFLICT], margin=c.min_cosine_gap))
    findings.append(Finding.compare(
        "the conflict pair's mean gradient cosine is negative", "gradient_cosine.conflict",
        cos[CONFLICT], margin=0.0, higher_is_better=False))
    figures = {"learning_curves.png": _plot_curves(cfg, series), "gradient_cosine.png": _plot_cosine(series)}
    return ItemResult(ITEMS[2], metrics=metrics, findings=findings, series=series, figures=figures,
                      texts={"transfer.txt": "\n".join(table) + "\n"})


def _plot_curves(cfg: MultiTaskExperimentConfig, series: dict):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    for ax, (pair, t) in zip(axes, ((COMPATIBLE, SENTIMENT), (COMPATIBLE, TOPIC), (CONFLICT, TOPIC))):
        for key, label, style in ((f"accuracy.single.{t}", "single-task", "--"),
                                  (f"accuracy.{pair}.multi.{t}", f"multi-task ({pair} pair)", "-")):
            steps, vals = zip(*series[key])
            ax.plot(steps, vals, style, label=label)
        ax.set_title(f"{t} ({pair} pair)")
        ax.set_xlabel(f"batches of {t} seen")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel(f"held-out accuracy (mean of {len(cfg.seeds)} seeds)")
    return fig


def _plot_cosine(series: dict):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for pair in (COMPATIBLE, CONFLICT):
        steps, vals = zip(*series[f"gradient_cosine.{pair}"])
        ax.plot(steps, vals, marker=".", label=f"{pair} pair")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("joint step")
    ax.set_ylabel("cosine of the two tasks' encoder gradients")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def run(cfg: MultiTaskExperimentConfig, inputs: Inputs = Inputs()) -> list[ItemResult]:
    """All three items, in :data:`ITEMS` order."""
    results = map_seeds(run_seed, cfg.seeds, cfg.workers, cfg)
    return [encoder_item(cfg, results), balancing_item(cfg, results), transfer_item(cfg, results)]
