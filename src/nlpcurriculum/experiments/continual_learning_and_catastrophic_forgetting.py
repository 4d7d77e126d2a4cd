"""The curriculum experiments of section "Continual Learning & Catastrophic Forgetting" (items 1-3).

The tasks (:func:`lexicon_tasks`, generated from seeds here) are word-polarity rules, one
"domain" each: an example is a task token followed by ``length`` words drawn from a vocabulary of
``n_words``; task ``t`` gives every word a polarity (+1 or -1, half of the words each, a fresh
random assignment per task) and the label is whether the polarities sum above zero. The task token
says which rule applies (task-incremental learning), so one model can solve every task at once
(joint training shows it), but the rules are independent: a model that learns task B's lexicon
without care predicts task A at chance (1/2). Six tasks make the sequence: task A, then five
shifts. The model is a mini-former trunk (RoPE, 2 blocks) mean-pooled into a linear head per task
(:class:`~nlpcurriculum.adaptation.continual.ContinualClassifier`; multi-head task-incremental
learning: the trunk is shared, so a new task can still overwrite what an old head reads).

The EWC lambda of the comparison (``ewc_lambda``) and the replay batch were picked on tuning seeds
100-101 (the sweep value with the best final average accuracy there), never on the evaluated
seeds; the Fisher's examples come from their own generator, so every arm trains on the same stream.

Every arm of a seed starts from the same initial weights and sees the same fresh training
examples (same data generator), so comparisons are paired by seed; the tasks and held-out sets
(``eval_examples`` per task) are drawn from the seed too.

* ``continual-learning-and-catastrophic-forgetting/1`` (:func:`degradation_item`): train A, then
  B. Findings: A is learned (accuracy above ``min_task_accuracy``), and after B it has lost at
  least ``min_drop_after_b`` of accuracy more than the control, the same model trained on A for
  the same extra steps instead of B (paired by seed). A broken setup where B does not interfere
  (shared nothing, or the same rule) fails the second; an untrained model fails the first.
* ``.../2`` (:func:`methods_item`): naive sequential training vs EWC (diagonal true Fisher,
  :mod:`~nlpcurriculum.adaptation.ewc`) vs reservoir replay
  (:mod:`~nlpcurriculum.adaptation.replay`) vs parameter isolation (trunk frozen after task A;
  every later task trains only its own embedding delta, bottleneck adapter and head,
  :mod:`~nlpcurriculum.adaptation.isolation`), with joint training as the
  reference. The forgetting of task A after the five shifts (its drop from its best accuracy,
  Chaudhry et al. 2018, arXiv:1801.10112) per method and its ratio to naive's (the
  target: EWC and replay each at most half of naive's), paired by seed: the finding is
  ``forgetting(method) - ratio * forgetting(naive) < 0`` by two standard errors. A penalty with
  no effect (lambda 0, a Fisher of zeros) or a buffer that is never replayed fails it. Isolation:
  task A's accuracy is unchanged at every shift (an invariant: nothing it uses can move), and its
  final average accuracy exceeds naive's; joint training's does too (an upper bound to read the
  methods against).
* ``.../3`` (:func:`curves_item`): forgetting curves, the accuracy on every earlier task after
  each shift, per method (plot), average forgetting and final average accuracy per method, and
  the stability / plasticity trade-off: EWC over a lambda sweep, average forgetting against
  plasticity (accuracy on each task right after learning it). Findings: naive forgetting is not
  confined to task A (naive's average forgetting over tasks 0-4 is above
  ``min_naive_average_forgetting``); EWC and replay end with a higher average accuracy than naive;
  the largest lambda forgets less and learns new tasks worse than the smallest (both paired).

Left out: class-incremental learning (a new label set per task, where EWC is known to fail), task
boundaries unknown to the learner, and online EWC in the runs (the library has it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from nlpcurriculum.adaptation.continual import (
    ContinualClassifier,
    EWCStrategy,
    Isolation,
    Naive,
    Replay,
    Task,
    TrainConfig,
    average_forgetting,
    feature_trunk,
    final_average_accuracy,
    forgetting,
    plasticity,
    run_sequence,
    train_joint,
)
from nlpcurriculum.adaptation.ewc import EWC, FISHER_KINDS
from nlpcurriculum.adaptation.isolation import TaskEmbedding, TaskHeads
from nlpcurriculum.adaptation.replay import ReservoirBuffer
from nlpcurriculum.experiments.harness import map_seeds
from nlpcurriculum.metrics.timing import torch_threads
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.results import Finding, ItemResult

__all__ = ["ITEMS", "METHODS", "ContinualChecks", "ContinualExperimentConfig", "Inputs",
           "curves_item", "degradation_item", "lexicon_tasks", "methods_item", "run", "seed_runs"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(f"continual-learning-and-catastrophic-forgetting/{i}" for i in (1, 2, 3))

#: The sequential methods compared (``joint`` is the reference, run apart).
METHODS = ("naive", "ewc", "replay", "isolation")


@dataclass
class ContinualChecks:
    """Bounds of the findings (params ``continual.checks``).

    Attributes:
        min_task_accuracy: item 1: task A's accuracy right after learning it (chance 0.5).
        min_drop_after_b: item 1: A's accuracy after B below the control's (A trained on).
        max_forgetting_ratio: item 2: EWC's and replay's forgetting of A after the last shift as
            a share of naive's (the target: halved).
        min_isolation_gain: item 2: isolation's final average accuracy over naive's.
        min_joint_gain: item 2: joint training's final average accuracy over naive's.
        min_naive_average_forgetting: item 3: naive's average forgetting over tasks 0..T-2.
        min_average_accuracy_gain: item 3: EWC's and replay's final average accuracy over naive's.
        min_sweep_forgetting_drop: item 3: average forgetting, smallest lambda minus largest.
        min_sweep_plasticity_drop: item 3: plasticity, smallest lambda minus largest.
    """

    min_task_accuracy: float = 0.85
    min_drop_after_b: float = 0.15
    max_forgetting_ratio: float = 0.5
    min_isolation_gain: float = 0.05
    min_joint_gain: float = 0.1
    min_naive_average_forgetting: float = 0.15
    min_average_accuracy_gain: float = 0.05
    min_sweep_forgetting_drop: float = 0.05
    min_sweep_plasticity_drop: float = 0.02


@dataclass
class ContinualExperimentConfig:
    """Knobs of :func:`run` (the ``continual`` params section).

    Attributes:
        n_tasks: tasks in the sequence (task A, then ``n_tasks - 1`` shifts).
        n_words: word vocabulary of every task.
        length: words per example (odd: no tied sums).
        d_model: the trunk's width.
        n_layers: the trunk's blocks.
        n_heads: its attention heads.
        bottleneck: isolation's per-task adapter width.
        steps: Adam steps per task.
        batch_size: fresh examples per step.
        lr: Adam's learning rate.
        eval_examples: held-out examples per task.
        ewc_lambda: EWC's lambda in the method comparison (must be one of ``ewc_lambdas``).
        ewc_lambdas: the stability / plasticity sweep (increasing).
        fisher: ``"true"`` or ``"empirical"`` Fisher.
        fisher_samples: examples per task the Fisher is estimated on.
        replay_capacity: examples the reservoir holds.
        replay_batch: stored examples added to each step.
        seeds: one run of every arm per seed (paired).
        workers: seeds run side by side in this many processes.
        threads: torch threads per process.
        checks: bounds of the findings.
    """

    n_tasks: int = 6
    n_words: int = 32
    length: int = 9
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 2
    bottleneck: int = 16
    steps: int = 100
    batch_size: int = 32
    lr: float = 0.003
    eval_examples: int = 1000
    ewc_lambda: float = 10000.0
    ewc_lambdas: list[float] = field(default_factory=lambda: [100.0, 1000.0, 10000.0, 100000.0])
    fisher: str = "true"
    fisher_samples: int = 50
    replay_capacity: int = 500
    replay_batch: int = 64
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    workers: int = 3
    threads: int = 1
    checks: ContinualChecks = field(default_factory=ContinualChecks)

    def __post_init__(self) -> None:
        if self.n_tasks < 3:
            raise ValueError(f"n_tasks must be >= 3 (A, B and a later shift), got {self.n_tasks}")
        if self.length % 2 == 0:
            raise ValueError(f"length must be odd (no tied polarity sums), got {self.length}")
        if self.n_words % 2:
            raise ValueError(f"n_words must be even (half positive, half negative), got {self.n_words}")
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be at least two distinct seeds, got {self.seeds}")
        if self.ewc_lambda not in self.ewc_lambdas:
            raise ValueError(f"ewc_lambda {self.ewc_lambda} must be one of ewc_lambdas {self.ewc_lambdas}")
        if len(self.ewc_lambdas) < 2 or sorted(self.ewc_lambdas) != self.ewc_lambdas:
            raise ValueError(f"ewc_lambdas must be at least two increasing values, got {self.ewc_lambdas}")
        if self.fisher not in FISHER_KINDS:
            raise ValueError(f"fisher must be one of {FISHER_KINDS}, got {self.fisher!r}")


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads: nothing but tasks generated from its seeds."""


def lexicon_tasks(cfg: ContinualExperimentConfig, seed: int) -> list[Task]:
    """The task sequence of ``seed``: one random word-polarity lexicon per task.

    Task ``t``'s examples are ``[n_words + t, w_1, ..., w_length]`` (its task token, then words
    drawn uniformly); the label is 1 when the words' polarities under lexicon ``t`` sum above 0.
    Held-out sets are drawn with their own generator, apart from any training stream.
    """
    g = torch.Generator().manual_seed(50_000 + seed)
    half = cfg.n_words // 2
    base = torch.tensor([1.0] * half + [-1.0] * half)
    lexicons = torch.stack([base[torch.randperm(cfg.n_words, generator=g)] for _ in range(cfg.n_tasks)])  # (T, V)

    def sampler(t: int):
        def sample(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            words = torch.randint(0, cfg.n_words, (n, cfg.length), generator=gen)  # (n, L)
            y = (lexicons[t][words].sum(dim=1) > 0).long()  # (n,)
            return torch.cat([torch.full((n, 1), cfg.n_words + t), words], dim=1), y  # (n, 1 + L)
        return sample

    tasks = []
    held_out = torch.Generator().manual_seed(60_000 + seed)
    for t in range(cfg.n_tasks):
        x, y = sampler(t)(cfg.eval_examples, held_out)
        tasks.append(Task(t, sampler(t), x, y))
    return tasks


def _model(cfg: ContinualExperimentConfig, seed: int, isolated: bool = False) -> ContinualClassifier:
    """The seed's initial model (the same trunk and head weights for every arm of a seed): a head
    per task; ``isolated`` adds the per-task embedding deltas and adapters of isolation."""
    torch.manual_seed(seed)
    trunk = feature_trunk(build_model(MiniFormerConfig(
        vocab_size=cfg.n_words + cfg.n_tasks, d_model=cfg.d_model, n_layers=cfg.n_layers,
        n_heads=cfg.n_heads, max_seq_len=cfg.length + 1, position="rope", norm="rmsnorm", dropout=0.0)))
    if isolated:  # a per-task embedding delta over the shared table
        trunk.tok_emb = TaskEmbedding(trunk.tok_emb, cfg.n_tasks)
    torch.manual_seed(10_000 + seed)
    return ContinualClassifier(trunk, TaskHeads(cfg.n_tasks, cfg.d_model, 2, cfg.bottleneck if isolated else 0))


def seed_runs(seed: int, cfg: ContinualExperimentConfig) -> dict[str, np.ndarray]:
    """Every arm for one seed: ``{arm: accuracy matrix (T, T)}``, plus ``joint`` ``(T,)`` and
    ``control`` (task A trained twice as long, ``(2, 2)``).

    Arms: ``naive``, ``ewc@<lambda>`` for every lambda of the sweep, ``replay``, ``isolation``.
    """
    tasks = lexicon_tasks(cfg, seed)
    train = TrainConfig(cfg.steps, cfg.batch_size, cfg.lr)

    def data() -> torch.Generator:  # the same fresh training examples for every arm
        return torch.Generator().manual_seed(1000 + seed)

    out: dict[str, np.ndarray] = {}
    with torch_threads(cfg.threads):
        out["naive"] = run_sequence(_model(cfg, seed), tasks, Naive(), train, data())
        out["control"] = run_sequence(_model(cfg, seed), [tasks[0], tasks[0]], Naive(), train, data())
        for lam in cfg.ewc_lambdas:
            strategy = EWCStrategy(EWC(lam), cfg.fisher, cfg.fisher_samples, seed=2000 + seed)
            out[f"ewc@{lam:g}"] = run_sequence(_model(cfg, seed), tasks, strategy, train, data())
        replay = Replay(ReservoirBuffer(cfg.replay_capacity, seed), cfg.replay_batch)
        out["replay"] = run_sequence(_model(cfg, seed), tasks, replay, train, data())
        out["isolation"] = run_sequence(_model(cfg, seed, isolated=True), tasks, Isolation(), train, data())
        joint = TrainConfig(cfg.steps * cfg.n_tasks, cfg.batch_size, cfg.lr)
        out["joint"] = train_joint(_model(cfg, seed), tasks, joint, data())
    return out


def _arm(cfg: ContinualExperimentConfig, method: str) -> str:
    return f"ewc@{cfg.ewc_lambda:g}" if method == "ewc" else method


def _interval(xs: list[float]) -> tuple[float, float, float]:
    """Mean and mean -+ 2 standard errors."""
    m = float(np.mean(xs))
    se = float(np.std(xs, ddof=1) / np.sqrt(len(xs)))
    return m, m - 2 * se, m + 2 * se


def degradation_item(cfg: ContinualExperimentConfig, runs: list[dict[str, np.ndarray]]) -> ItemResult:
    """Item 1: task A's accuracy before and after learning B, against training on A instead."""
    c = cfg.checks
    learned = [r["naive"][0, 0] for r in runs]
    after_b = [r["naive"][1, 0] for r in runs]
    b_acc = [r["naive"][1, 1] for r in runs]
    control = [r["control"][1, 0] for r in runs]
    metrics = {"task_a_accuracy_after_a": float(np.mean(learned)),
               "task_a_accuracy_after_b": float(np.mean(after_b)),
               "task_b_accuracy_after_b": float(np.mean(b_acc)),
               "task_a_accuracy_control": float(np.mean(control)),
               "task_a_drop_after_b": float(np.mean(np.subtract(learned, after_b))),
               "chance_accuracy": 0.5}
    findings = [
        Finding.compare(f"task A is learned: its held-out accuracy after {cfg.steps} steps is above "
                        f"{c.min_task_accuracy} (chance 0.5; an untrained model fails)",
                        "task_a_accuracy_after_a", learned, margin=c.min_task_accuracy),
        Finding.compare(f"training on task B (an independent lexicon) degrades task A: its accuracy "
                        f"ends at least {c.min_drop_after_b} below the control's, the same model "
                        f"trained {cfg.steps} more steps on A instead (paired by seed; tasks that "
                        "shared no parameters or one rule would fail)",
                        "task_a_control_minus_after_b", control, after_b, margin=c.min_drop_after_b),
    ]
    lines = [f"{'seed':>6} {'A after A':>10} {'A after B':>10} {'B after B':>10} {'A control':>10}"]
    lines += [f"{s:>6} {a:>10.3f} {b:>10.3f} {bb:>10.3f} {k:>10.3f}"
              for s, a, b, bb, k in zip(cfg.seeds, learned, after_b, b_acc, control)]
    return ItemResult(ITEMS[0], metrics=metrics, findings=findings, texts={"task_a_then_b.txt": "\n".join(lines) + "\n"})


def methods_item(cfg: ContinualExperimentConfig, runs: list[dict[str, np.ndarray]]) -> ItemResult:
    """Item 2: forgetting of task A after every shift per method, its ratio to naive's."""
    c = cfg.checks
    last = cfg.n_tasks - 1
    forget = {m: [forgetting(r[_arm(cfg, m)], 0, last) for r in runs] for m in METHODS}
    final = {m: [final_average_accuracy(r[_arm(cfg, m)]) for r in runs] for m in METHODS}
    final["joint"] = [float(r["joint"].mean()) for r in runs]
    metrics: dict[str, float] = {}
    for m in METHODS:
        mean, lo, hi = _interval(forget[m])
        metrics.update({f"forgetting_task_a.{m}": mean, f"forgetting_task_a.{m}.lo": lo,
                        f"forgetting_task_a.{m}.hi": hi})
    for m in (*METHODS, "joint"):
        metrics[f"final_average_accuracy.{m}"] = float(np.mean(final[m]))
    findings = []
    for m in ("ewc", "replay"):
        ratios = [f / n for f, n in zip(forget[m], forget["naive"]) if n > 0]
        mean, lo, hi = _interval(ratios) if len(ratios) > 1 else (float("nan"),) * 3
        metrics.update({f"forgetting_ratio.{m}": float(np.mean(forget[m]) / np.mean(forget["naive"])),
                        f"forgetting_ratio.{m}.per_seed_mean": mean, f"forgetting_ratio.{m}.lo": lo,
                        f"forgetting_ratio.{m}.hi": hi})
        label = f"EWC (lambda {cfg.ewc_lambda:g}, {cfg.fisher} Fisher)" if m == "ewc" else \
            f"replay ({cfg.replay_capacity}-example reservoir)"
        findings.append(Finding.compare(
            f"{label} forgets task A over the {last} shifts at most {c.max_forgetting_ratio} times as "
            f"much as naive sequential training: forgetting(method) - {c.max_forgetting_ratio} x "
            "forgetting(naive) is below 0 (paired by seed; a penalty with no weight or a buffer never "
            "replayed would fail)", f"forgetting_task_a.{m}_minus_ratio_x_naive", forget[m],
            [c.max_forgetting_ratio * n for n in forget["naive"]], margin=0.0, higher_is_better=False))
    change = max(float(np.abs(r["isolation"][:, 0] - r["isolation"][0, 0]).max()) for r in runs)
    metrics["isolation_task_a_max_change"] = change
    findings += [
        Finding.invariant("parameter isolation: task A's accuracy is exactly unchanged at every shift "
                          "(its trunk, adapter and head are frozen)", "isolation_task_a_max_change",
                          change, change == 0.0, 0.0),
        Finding.compare(f"parameter isolation ends with a final average accuracy at least "
                        f"{c.min_isolation_gain} above naive's (paired by seed)",
                        "final_average_accuracy.isolation_minus_naive", final["isolation"], final["naive"],
                        margin=c.min_isolation_gain),
        Finding.compare(f"joint training on all tasks (the reference) ends at least {c.min_joint_gain} "
                        "above naive's final average accuracy: the tasks fit one model together "
                        "(paired by seed)", "final_average_accuracy.joint_minus_naive", final["joint"],
                        final["naive"], margin=c.min_joint_gain),
    ]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_f, ax_a = fig.subplots(1, 2)
    n = len(cfg.seeds)
    ax_f.bar(METHODS, [np.mean(forget[m]) for m in METHODS],
             yerr=[np.std(forget[m], ddof=1) / np.sqrt(n) for m in METHODS], capsize=4)
    ax_f.set_ylabel(f"forgetting of task A after {last} shifts (mean ± SE, {n} seeds)")
    ax_f.axhline(c.max_forgetting_ratio * np.mean(forget["naive"]), color="grey", ls="--",
                 label=f"{c.max_forgetting_ratio} x naive")
    ax_f.legend(fontsize=8)
    arms = (*METHODS, "joint")
    ax_a.bar(arms, [np.mean(final[m]) for m in arms],
             yerr=[np.std(final[m], ddof=1) / np.sqrt(n) for m in arms], capsize=4, color="tab:green")
    ax_a.axhline(0.5, color="grey", ls=":", label="chance")
    ax_a.set_ylabel("final average accuracy over all tasks")
    ax_a.set_ylim(0.4, 1.0)
    ax_a.legend(fontsize=8)
    lines = [f"{'method':>10} {'forget A':>9} {'[lo, hi]':>16} {'final avg':>9}"]
    for m in arms:
        fa = (f"{metrics[f'forgetting_task_a.{m}']:>9.3f} [{metrics[f'forgetting_task_a.{m}.lo']:6.3f}, "
              f"{metrics[f'forgetting_task_a.{m}.hi']:6.3f}]") if m in METHODS else f"{'-':>9} {'':>16}"
        lines.append(f"{m:>10} {fa} {np.mean(final[m]):>9.3f}")
    for m in ("ewc", "replay"):
        lines.append(f"ratio to naive, {m}: {metrics[f'forgetting_ratio.{m}']:.3f} (per seed "
                     f"{metrics[f'forgetting_ratio.{m}.per_seed_mean']:.3f}, mean -+ 2 SE "
                     f"[{metrics[f'forgetting_ratio.{m}.lo']:.3f}, {metrics[f'forgetting_ratio.{m}.hi']:.3f}])")
    return ItemResult(ITEMS[1], metrics=metrics, findings=findings, figures={"forgetting_by_method.png": fig},
                      texts={"methods.txt": "\n".join(lines) + "\n"})


def curves_item(cfg: ContinualExperimentConfig, runs: list[dict[str, np.ndarray]]) -> ItemResult:
    """Item 3: forgetting curves per method, average forgetting, final accuracy, the lambda sweep."""
    c = cfg.checks
    T = cfg.n_tasks
    mean_R = {m: np.mean([r[_arm(cfg, m)] for r in runs], axis=0) for m in METHODS}  # (T, T) each
    avg_forget = {m: [average_forgetting(r[_arm(cfg, m)]) for r in runs] for m in METHODS}
    final = {m: [final_average_accuracy(r[_arm(cfg, m)]) for r in runs] for m in METHODS}
    plastic = {m: [plasticity(r[_arm(cfg, m)]) for r in runs] for m in METHODS}
    sweep = [f"ewc@{lam:g}" for lam in cfg.ewc_lambdas]
    sweep_forget = {a: [average_forgetting(r[a]) for r in runs] for a in sweep}
    sweep_plastic = {a: [plasticity(r[a]) for r in runs] for a in sweep}
    metrics: dict[str, float] = {}
    for m in METHODS:
        metrics.update({f"average_forgetting.{m}": float(np.mean(avg_forget[m])),
                        f"final_average_accuracy.{m}": float(np.mean(final[m])),
                        f"plasticity.{m}": float(np.mean(plastic[m]))})
    for lam, a in zip(cfg.ewc_lambdas, sweep):
        metrics[f"sweep.average_forgetting.lambda_{lam:g}"] = float(np.mean(sweep_forget[a]))
        metrics[f"sweep.plasticity.lambda_{lam:g}"] = float(np.mean(sweep_plastic[a]))
    series = {f"forgetting_task_a.{m}": [(i, float(mean_R[m][:i, 0].max() - mean_R[m][i, 0])) for i in range(1, T)]
              for m in METHODS}
    small, large = sweep[0], sweep[-1]
    findings = [
        Finding.compare(f"naive sequential training forgets more than task A: its average forgetting "
                        f"over tasks 0-{T - 2} at the end is above {c.min_naive_average_forgetting}",
                        "average_forgetting.naive", avg_forget["naive"], margin=c.min_naive_average_forgetting),
        *(Finding.compare(f"{m} ends with a final average accuracy at least "
                          f"{c.min_average_accuracy_gain} above naive's (paired by seed)",
                          f"final_average_accuracy.{m}_minus_naive", final[m], final["naive"],
                          margin=c.min_average_accuracy_gain) for m in ("ewc", "replay")),
        Finding.compare(f"stability: EWC at lambda {cfg.ewc_lambdas[-1]:g} forgets less than at "
                        f"{cfg.ewc_lambdas[0]:g}, average forgetting lower by at least "
                        f"{c.min_sweep_forgetting_drop} (paired by seed)",
                        "sweep.average_forgetting.largest_minus_smallest", sweep_forget[large],
                        sweep_forget[small], margin=c.min_sweep_forgetting_drop, higher_is_better=False),
        Finding.compare(f"plasticity pays for it: at lambda {cfg.ewc_lambdas[-1]:g} new tasks are learned "
                        f"worse than at {cfg.ewc_lambdas[0]:g}, plasticity lower by at least "
                        f"{c.min_sweep_plasticity_drop} (paired by seed)",
                        "sweep.plasticity.largest_minus_smallest", sweep_plastic[large],
                        sweep_plastic[small], margin=c.min_sweep_plasticity_drop, higher_is_better=False),
    ]
    figures = {"forgetting_curves.png": _curves_figure(cfg, mean_R),
               "stability_plasticity.png": _sweep_figure(cfg, sweep_forget, sweep_plastic, avg_forget, plastic)}
    lines = [f"{'method':>10} {'avg forget':>10} {'final avg':>9} {'plasticity':>10}"]
    lines += [f"{m:>10} {np.mean(avg_forget[m]):>10.3f} {np.mean(final[m]):>9.3f} {np.mean(plastic[m]):>10.3f}"
              for m in METHODS]
    lines += ["", "EWC lambda sweep:"] + [f"  lambda {lam:>8g}: average forgetting {np.mean(sweep_forget[a]):.3f}, "
                                          f"plasticity {np.mean(sweep_plastic[a]):.3f}"
                                          for lam, a in zip(cfg.ewc_lambdas, sweep)]
    for m in METHODS:
        lines += ["", f"{m}: mean accuracy matrix R[i, j] (row: after task i; column: task j)"]
        lines += ["  " + " ".join(f"{v:.3f}" for v in row) for row in mean_R[m]]
    return ItemResult(ITEMS[2], metrics=metrics, findings=findings, series=series, figures=figures,
                      texts={"curves.txt": "\n".join(lines) + "\n"})


def _curves_figure(cfg: ContinualExperimentConfig, mean_R: dict[str, np.ndarray]):
    from matplotlib.figure import Figure

    T = cfg.n_tasks
    fig = Figure(figsize=(12, 7), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    for ax, m in zip(axes, METHODS):
        for j in range(T):
            ax.plot(range(j, T), mean_R[m][j:, j], "o-", ms=3, label=f"task {j}")
        ax.axhline(0.5, color="grey", ls=":")
        ax.set_title(m)
        ax.set_ylim(0.3, 1.02)
        ax.set_xlabel("after training task")
        ax.set_ylabel("held-out accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    ax = axes[len(METHODS)]
    for m in METHODS:
        ax.plot(range(1, T), [mean_R[m][:i, 0].max() - mean_R[m][i, 0] for i in range(1, T)], "o-", label=m)
    ax.set_title("forgetting of task A")
    ax.set_xlabel("shifts")
    ax.set_ylabel("best accuracy - current")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    axes[-1].axis("off")
    fig.suptitle(f"forgetting curves (mean of {len(cfg.seeds)} seeds)")
    return fig


def _sweep_figure(cfg: ContinualExperimentConfig, sweep_forget: dict[str, list[float]],
                  sweep_plastic: dict[str, list[float]], avg_forget: dict[str, list[float]],
                  plastic: dict[str, list[float]]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    xs = [np.mean(sweep_plastic[a]) for a in sweep_forget]
    ys = [np.mean(sweep_forget[a]) for a in sweep_forget]
    ax.plot(xs, ys, "o-", label="EWC, lambda sweep")
    for lam, x, y in zip(cfg.ewc_lambdas, xs, ys):
        ax.annotate(f"{lam:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    for m in ("naive", "replay", "isolation"):
        ax.plot(np.mean(plastic[m]), np.mean(avg_forget[m]), "s", label=m)
    ax.set_xlabel("plasticity (accuracy on each task right after it)")
    ax.set_ylabel("average forgetting at the end")
    ax.set_title("stability / plasticity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def run(cfg: ContinualExperimentConfig, inputs: Inputs = Inputs()) -> list[ItemResult]:
    """All three items, in :data:`ITEMS` order."""
    runs = map_seeds(seed_runs, cfg.seeds, cfg.workers, cfg)
    return [degradation_item(cfg, runs), methods_item(cfg, runs), curves_item(cfg, runs)]
