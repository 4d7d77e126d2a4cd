"""The curriculum experiments of section "Curriculum Learning & Data Ordering" (items 1-3).

Data: three text **domains** generated from seeds with :mod:`nlpcurriculum.data.synthetic`:
``prose`` (one or two English sentences), ``topic`` (classification documents of 4-16 words) and
``arithmetic`` (a question and its answer, ``What is 478 + 65? answer: 543``), as UTF-8 bytes
(vocabulary 256, ended by a 0 byte, cut at ``max_len``). The learner is a small causal
mini-former language model (Adam, fixed learning rate), scored by its next-byte loss on held-out
examples. The orderings draw from one pool mixing the domains; ``steps * batch_size`` examples,
so the sorted orderings are exactly one pass over it.

* ``curriculum-learning-and-data-ordering/1`` (:func:`difficulty_item`): the difficulty scores
  (length; the loss of a reference model, a count bigram fitted on separate reference examples;
  token rarity, from the reference unigram) and easy->hard ordering. Findings: the scores predict
  what the learner finds hard: on held-out examples, the Spearman correlation between each of the
  reference-loss and rarity scores and the loss of the random-order learner after training is at
  least ``min_score_spearman`` (a score unrelated to difficulty, e.g. a shuffled one, fails); and
  the first tenth of the easy->hard pass (reference loss) has lower training loss than the same
  steps of the random order (the ordering really serves easy examples first; a mis-sorted one fails).
* ``curriculum-learning-and-data-ordering/2`` (:func:`mixing_item`): domain-mixing schedules
  (static proportions, temperature-flattened, a schedule shifting its proportions from the start
  to the end vector over training) with every domain's held-out loss tracked (plotted).
  Invariant: the realised domain shares follow the schedule. Findings: the flattened schedule
  lowers the rarest domain's final loss against the static one (more of its batches), and the
  shifting schedule lowers the final loss of the domain it favours at the end against static,
  each by ``min_mixing_gain`` nats (paired by seed; a schedule with no effect ties).
* ``curriculum-learning-and-data-ordering/3`` (:func:`convergence_item`): steps to the target
  held-out loss ``target_loss`` per ordering and score, mean with a 95% interval (t over seeds),
  plotted, with the loss curves. A run that never reaches the target counts as ``steps +
  eval_every`` (censored, so its mean is a lower bound; the count is reported). Findings, the
  literature's claims, each able to fail: competence pacing (length) reaches the target in fewer
  steps than the random order (Platanios et al. 2019), and easy->hard (length) in fewer steps than
  hard->easy (curriculum beats anti-curriculum), each by ``min_step_gain`` steps.

Left out: self-paced and learned curricula; tokenizers (bytes are the tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from nlpcurriculum.adaptation.curriculum import (
    fit_reference,
    length_scores,
    mixing_weights,
    ordering,
    pad_batch,
    rarity_scores,
    reference_loss_scores,
    steps_to_target,
    domain_batches,
)
from nlpcurriculum.data.synthetic import arithmetic, classification
from nlpcurriculum.data.synthetic.base import make_paragraph
from nlpcurriculum.experiments.harness import map_seeds, torch_threads
from nlpcurriculum.metrics.stats import spearman
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.results import Finding, ItemResult

__all__ = ["ITEMS", "CurriculumChecks", "CurriculumExperimentConfig", "Inputs", "convergence_item",
           "difficulty_item", "make_domain", "mixing_item", "run", "run_seed"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("curriculum-learning-and-data-ordering/1",
                          "curriculum-learning-and-data-ordering/2",
                          "curriculum-learning-and-data-ordering/3")

DOMAINS = ("prose", "topic", "arithmetic")
SCORES = ("length", "reference_loss", "rarity")
SCHEDULES = ("static", "temperature", "shifting")


@dataclass
class CurriculumChecks:
    """Bounds of the findings (params ``curriculum.checks``).

    Attributes:
        min_score_spearman: item 1: Spearman of a score with the trained learner's loss.
        max_share_z: item 2: realised minus scheduled domain share, in binomial standard errors
            of the quarter-run's draws, max |z| (size-free, so smoke and default runs share it).
        min_mixing_gain: item 2: final-loss reduction (nats) of a domain a schedule favours.
        min_step_gain: item 3: steps to target saved by an ordering against its comparator.
    """

    min_score_spearman: float = 0.3
    max_share_z: float = 4.5
    min_mixing_gain: float = 0.02
    min_step_gain: float = 0.0


@dataclass
class CurriculumExperimentConfig:
    """Knobs of :func:`run` (the ``curriculum`` params section).

    Attributes:
        max_len: bytes per example at most (including the end byte).
        n_reference: reference examples per domain (the reference model's data; never trained on).
        n_val: held-out examples per domain.
        d_model, n_layers, n_heads: the learner.
        steps: optimizer steps per run.
        batch_size: examples per step.
        lr: Adam's learning rate (constant).
        eval_every: evaluate the held-out loss every this many steps.
        c0: competence pacing's initial competence.
        curriculum_fraction: competence reaches 1 after this share of the steps.
        target_loss: item 3's target held-out loss (nats per byte), fixed in advance.
        proportions: item 2's static domain shares, in ``DOMAINS`` order (prose, topic, arithmetic).
        end_proportions: where the shifting schedule ends.
        temperature: the flattened schedule's T.
        seeds: every run once per seed (paired comparisons).
        workers: seeds side by side in this many processes.
        threads: torch threads per process.
        checks: bounds of the findings.
    """

    max_len: int = 64
    n_reference: int = 1000
    n_val: int = 100
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 2
    steps: int = 200
    batch_size: int = 32
    lr: float = 0.003
    eval_every: int = 10
    c0: float = 0.1
    curriculum_fraction: float = 0.5
    target_loss: float = 2.5
    proportions: list[float] = field(default_factory=lambda: [0.6, 0.3, 0.1])
    end_proportions: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.6])
    temperature: float = 3.0
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    workers: int = 2
    threads: int = 1
    checks: CurriculumChecks = field(default_factory=CurriculumChecks)

    def __post_init__(self) -> None:
        if len(self.seeds) < 3 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be at least three distinct seeds, got {self.seeds}")
        if len(self.proportions) != len(DOMAINS) or len(self.end_proportions) != len(DOMAINS):
            raise ValueError(f"proportions and end_proportions need one share per domain {DOMAINS}")
        if not 0 < self.curriculum_fraction <= 1:
            raise ValueError(f"curriculum_fraction must be in (0, 1], got {self.curriculum_fraction}")


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads: nothing but domains generated from seeds."""


def _texts(domain: str, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    if domain == "prose":
        return [make_paragraph(rng, int(rng.integers(1, 3))) for _ in range(n)]
    if domain == "topic":
        cfg = classification.ClassificationConfig(n=n, task="topic", min_words=4, max_words=16)
        return [r["text"] for r in classification.generate(cfg, seed=rng)]
    if domain == "arithmetic":
        cfg = arithmetic.ArithmeticConfig(n=n, min_digits=1, max_digits=4)
        return [f"{r['question']} answer: {r['answer']}" for r in arithmetic.generate(cfg, seed=rng)]
    raise ValueError(f"unknown domain {domain!r}")


def make_domain(domain: str, n: int, seed: int, max_len: int) -> list[np.ndarray]:
    """``n`` examples of ``domain`` as byte arrays ended by a 0 byte, at most ``max_len`` long."""
    out = []
    for text in _texts(domain, n, seed):
        b = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)[:max_len - 1]
        out.append(np.concatenate([b, [0]]))
    return out


def _model(cfg: CurriculumExperimentConfig, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(MiniFormerConfig(vocab_size=256, d_model=cfg.d_model, n_layers=cfg.n_layers,
                                        n_heads=cfg.n_heads, max_seq_len=cfg.max_len, dropout=0.0))


@torch.no_grad()
def _loss(model: torch.nn.Module, examples: list[np.ndarray], per_example: bool = False):
    """Mean next-byte loss over ``examples`` (token-weighted), or each example's mean."""
    model.eval()
    losses = []
    for s in range(0, len(examples), 128):
        x, y = pad_batch(examples[s:s + 128])
        logits = model(x).logits                                         # (B, T, V)
        nll = F.cross_entropy(logits.transpose(1, 2), y, reduction="none", ignore_index=-100)  # (B, T)
        mask = (y != -100).float()
        losses.append(((nll * mask).sum(1), mask.sum(1)))
    model.train()
    tot = torch.cat([a for a, _ in losses])
    cnt = torch.cat([b for _, b in losses])
    return (tot / cnt).tolist() if per_example else float(tot.sum() / cnt.sum())


def _train(cfg: CurriculumExperimentConfig, seed: int, batches: list[list[np.ndarray]],
           evals: dict[str, list[np.ndarray]]) -> tuple[torch.nn.Module, dict, list[float]]:
    """Train on ``batches`` in order; ``({eval name: [(step, loss)]}``, per-step train losses)."""
    model = _model(cfg, seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    curves = {name: [(0, _loss(model, ex))] for name, ex in evals.items()}
    train_losses = []
    for step, examples in enumerate(batches, start=1):
        x, y = pad_batch(examples)
        loss = model(x, targets=y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        train_losses.append(loss.item())
        if step % cfg.eval_every == 0 or step == len(batches):
            for name, ex in evals.items():
                curves[name].append((step, _loss(model, ex)))
    return model, curves, train_losses


def run_seed(seed: int, cfg: CurriculumExperimentConfig) -> dict:
    """Every run of one seed: orderings x scores, and the domain-mixing schedules."""
    with torch_threads(cfg.threads):
        N = cfg.steps * cfg.batch_size
        shares = np.asarray(cfg.proportions) / np.sum(cfg.proportions)
        counts = np.round(shares * N).astype(int)
        counts[0] += N - counts.sum()
        pools = {d: make_domain(d, N, 1000 * seed + i, cfg.max_len) for i, d in enumerate(DOMAINS)}
        reference = [e for i, d in enumerate(DOMAINS)
                     for e in make_domain(d, cfg.n_reference, 1000 * seed + 100 + i, cfg.max_len)]
        val = {d: make_domain(d, cfg.n_val, 1000 * seed + 200 + i, cfg.max_len) for i, d in enumerate(DOMAINS)}
        val_mix = [e for d, c in zip(DOMAINS, counts) for e in val[d][:max(1, round(c / N * cfg.n_val))]]
        pool = [e for d, c in zip(DOMAINS, counts) for e in pools[d][:c]]
        bigram, unigram = fit_reference(reference, 256)
        scores = {"length": length_scores(pool), "reference_loss": reference_loss_scores(pool, bigram),
                  "rarity": rarity_scores(pool, unigram)}
        arms = [("random", "length")] + [(o, s) for o in ("easy_to_hard", "hard_to_easy", "competence")
                                         for s in SCORES]
        out: dict = {"orderings": {}, "train_losses": {}}
        learner = None
        for strategy, score in arms:
            idx = ordering(scores[score], strategy, steps=cfg.steps, batch_size=cfg.batch_size,
                           seed=seed, c0=cfg.c0,
                           curriculum_steps=max(1, round(cfg.curriculum_fraction * cfg.steps)))
            model, curves, train_losses = _train(cfg, seed, [[pool[i] for i in b] for b in idx],
                                                 {"val": val_mix})
            name = "random" if strategy == "random" else f"{strategy}.{score}"
            out["orderings"][name] = curves["val"]
            out["train_losses"][name] = train_losses
            if strategy == "random":
                learner = model
        held = val_mix
        out["spearman"] = {s: spearman(f(held), _loss(learner, held, per_example=True))
                           for s, f in (("length", length_scores),
                                        ("reference_loss", lambda e: reference_loss_scores(e, bigram)),
                                        ("rarity", lambda e: rarity_scores(e, unigram)))}
        out["mixing"], out["shares"] = {}, {}
        draw = np.random.default_rng(seed + 7)
        for schedule in SCHEDULES:
            doms = domain_batches(schedule, steps=cfg.steps, batch_size=cfg.batch_size,
                                  proportions=cfg.proportions, seed=seed, temperature=cfg.temperature,
                                  end=cfg.end_proportions)
            batches = [[pools[DOMAINS[d]][int(draw.integers(N))] for d in b] for b in doms]
            _, curves, _ = _train(cfg, seed, batches, val)
            out["mixing"][schedule] = curves
            out["shares"][schedule] = _share_error(cfg, schedule, doms)
        return out


def _share_error(cfg: CurriculumExperimentConfig, schedule: str, doms: list[np.ndarray]) -> float:
    """Max |realised - scheduled| domain share over the run's quarters, in binomial standard errors."""
    worst = 0.0
    q = max(1, len(doms) // 4)
    for s in range(0, len(doms), q):
        chunk = np.concatenate(doms[s:s + q])
        want = np.mean([mixing_weights(schedule, t, cfg.steps, cfg.proportions, temperature=cfg.temperature,
                                       end=cfg.end_proportions) for t in range(s, min(s + q, len(doms)))], axis=0)
        got = np.bincount(chunk, minlength=len(DOMAINS)) / len(chunk)
        se = np.sqrt(np.clip(want * (1 - want), 1e-12, None) / len(chunk))
        worst = max(worst, float((np.abs(got - want) / se).max()))
    return worst


def difficulty_item(cfg: CurriculumExperimentConfig, results: list[dict]) -> ItemResult:
    """Item 1: the difficulty scores against the learner's loss; easy->hard serves easy first."""
    c = cfg.checks
    metrics, findings = {}, []
    for s in SCORES:
        rho = [r["spearman"][s] for r in results]
        metrics[f"spearman_with_learner_loss.{s}"] = float(np.mean(rho))
        if s != "length":
            findings.append(Finding.compare(
                f"the {s.replace('_', ' ')} score predicts what the learner finds hard: on held-out "
                f"examples its Spearman correlation with the trained (random-order) model's per-byte "
                f"loss is at least {c.min_score_spearman} (over seeds)",
                f"spearman_with_learner_loss.{s}", rho, margin=c.min_score_spearman))
    k = max(1, cfg.steps // 10)
    easy = [float(np.mean(r["train_losses"]["easy_to_hard.reference_loss"][:k])) for r in results]
    rand = [float(np.mean(r["train_losses"]["random"][:k])) for r in results]
    hard = [float(np.mean(r["train_losses"]["hard_to_easy.reference_loss"][:k])) for r in results]
    metrics.update({"first_tenth_train_loss.easy_to_hard": float(np.mean(easy)),
                    "first_tenth_train_loss.random": float(np.mean(rand)),
                    "first_tenth_train_loss.hard_to_easy": float(np.mean(hard))})
    findings.append(Finding.compare(
        f"easy->hard by reference loss serves easy examples first: the mean training loss of its first "
        f"{k} steps is below the random order's over the same steps (paired by seed)",
        "first_tenth_train_loss.easy_to_hard_minus_random", easy, rand, margin=0.0,
        higher_is_better=False))
    return ItemResult(ITEMS[0], metrics=metrics, findings=findings)


def mixing_item(cfg: CurriculumExperimentConfig, results: list[dict]) -> ItemResult:
    """Item 2: domain-mixing schedules and per-domain held-out loss."""
    c = cfg.checks
    err = max(max(r["shares"].values()) for r in results)
    metrics = {"max_share_z": err}
    final = {(s, d): [r["mixing"][s][d][-1][1] for r in results] for s in SCHEDULES for d in DOMAINS}
    for (s, d), v in final.items():
        metrics[f"final_loss.{s}.{d}"] = float(np.mean(v))
    rare = DOMAINS[int(np.argmin(cfg.proportions))]
    late = DOMAINS[int(np.argmax(np.asarray(cfg.end_proportions) - np.asarray(cfg.proportions)))]
    findings = [
        Finding.invariant("the realised domain shares follow the schedule: in every quarter of every "
                          f"run each domain's share is within {c.max_share_z} binomial standard errors "
                          "of the scheduled mean share", "max_share_z", err, err <= c.max_share_z,
                          c.max_share_z),
        Finding.compare(f"temperature mixing (T = {cfg.temperature}) lowers the rarest domain's "
                        f"({rare}) final held-out loss below static mixing's by at least "
                        f"{c.min_mixing_gain} nats (paired by seed)",
                        f"final_loss.{rare}.temperature_minus_static", final[("temperature", rare)],
                        final[("static", rare)], margin=c.min_mixing_gain, higher_is_better=False),
        Finding.compare(f"the shifting schedule (towards {cfg.end_proportions}) lowers the final loss of "
                        f"the domain it favours at the end ({late}) below static mixing's by at least "
                        f"{c.min_mixing_gain} nats (paired by seed)",
                        f"final_loss.{late}.shifting_minus_static", final[("shifting", late)],
                        final[("static", late)], margin=c.min_mixing_gain, higher_is_better=False),
    ]
    series = {}
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, len(SCHEDULES), sharey=True)
    for ax, s in zip(axes, SCHEDULES):
        for d in DOMAINS:
            curves = [r["mixing"][s][d] for r in results]
            mean = [(st, float(np.mean([cv[i][1] for cv in curves]))) for i, (st, _) in enumerate(curves[0])]
            series[f"val_loss.{s}.{d}"] = mean
            ax.plot(*zip(*mean), label=d)
        ax.set_title(f"{s} mixing")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel(f"held-out loss per domain (nats/byte, mean of {len(results)} seeds)")
    table = "\n".join(f"{s:>12}: " + "  ".join(f"{d} {metrics[f'final_loss.{s}.{d}']:.3f}" for d in DOMAINS)
                      for s in SCHEDULES)
    return ItemResult(ITEMS[1], metrics=metrics, findings=findings, series=series,
                      figures={"per_domain_loss.png": fig}, texts={"mixing.txt": table + "\n"})


def _t95(n: int) -> float:
    """Two-sided 95% t quantile for n - 1 degrees of freedom (n <= 11), else 1.96."""
    table = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306,
             10: 2.262, 11: 2.228}
    return table.get(n, 1.96)


def convergence_item(cfg: CurriculumExperimentConfig, results: list[dict]) -> ItemResult:
    """Item 3: steps to the target loss per ordering, with 95% intervals over seeds."""
    c = cfg.checks
    names = list(results[0]["orderings"])
    censored = cfg.steps + cfg.eval_every
    steps = {}
    metrics, lines = {}, [f"steps to held-out loss <= {cfg.target_loss} (mean, 95% t interval over "
                          f"{len(results)} seeds; never reached = {censored})"]
    for name in names:
        hit = [steps_to_target(r["orderings"][name], cfg.target_loss) for r in results]
        v = [censored if h is None else h for h in hit]
        steps[name] = v
        n = len(v)
        half = _t95(n) * float(np.std(v, ddof=1)) / np.sqrt(n)
        metrics[f"steps_to_target.{name}"] = float(np.mean(v))
        metrics[f"steps_to_target_ci95.{name}"] = half
        metrics[f"never_reached.{name}"] = float(sum(h is None for h in hit))
        metrics[f"final_val_loss.{name}"] = float(np.mean([r["orderings"][name][-1][1] for r in results]))
        lines.append(f"{name:>30}: {np.mean(v):6.1f} ± {half:5.1f}   (never: {sum(h is None for h in hit)}, "
                     f"final loss {metrics[f'final_val_loss.{name}']:.3f})")
    findings = [
        Finding.compare(f"competence-based pacing (length score, c0 = {cfg.c0}) reaches the target "
                        f"loss {cfg.target_loss} in fewer steps than the random order, by more than "
                        f"{c.min_step_gain} (paired by seed; Platanios et al. 2019)",
                        "steps_to_target.competence_length_minus_random", steps["competence.length"],
                        steps["random"], margin=c.min_step_gain, higher_is_better=False),
        Finding.compare(f"easy->hard (length) reaches the target loss in fewer steps than hard->easy, "
                        f"by more than {c.min_step_gain} (paired by seed)",
                        "steps_to_target.easy_to_hard_minus_hard_to_easy.length",
                        steps["easy_to_hard.length"], steps["hard_to_easy.length"],
                        margin=c.min_step_gain, higher_is_better=False),
    ]
    series = {}
    for name in names:
        curves = [r["orderings"][name] for r in results]
        series[f"val_loss.{name}"] = [(st, float(np.mean([cv[i][1] for cv in curves])))
                                      for i, (st, _) in enumerate(curves[0])]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax_bar, ax_curve = fig.subplots(1, 2)
    means = [metrics[f"steps_to_target.{n}"] for n in names]
    errs = [metrics[f"steps_to_target_ci95.{n}"] for n in names]
    ax_bar.barh(range(len(names)), means, xerr=errs, capsize=3, color="tab:blue", alpha=0.7)
    ax_bar.set_yticks(range(len(names)), names, fontsize=7)
    ax_bar.axvline(censored, color="grey", ls=":", label="never reached")
    ax_bar.set_xlabel(f"steps to held-out loss <= {cfg.target_loss} (mean ± 95% CI)")
    ax_bar.legend(fontsize=8)
    for name in ("random", "easy_to_hard.length", "hard_to_easy.length", "competence.length",
                 "competence.reference_loss", "competence.rarity"):
        ax_curve.plot(*zip(*series[f"val_loss.{name}"]), label=name)
    ax_curve.axhline(cfg.target_loss, color="grey", ls="--", lw=0.8, label="target")
    ax_curve.set_xlabel("step")
    ax_curve.set_ylabel("held-out loss (nats/byte)")
    ax_curve.grid(alpha=0.3)
    ax_curve.legend(fontsize=7)
    return ItemResult(ITEMS[2], metrics=metrics, findings=findings, series=series,
                      figures={"convergence.png": fig}, texts={"convergence.txt": "\n".join(lines) + "\n"})


def run(cfg: CurriculumExperimentConfig, inputs: Inputs = Inputs()) -> list[ItemResult]:
    """All three items, in :data:`ITEMS` order."""
    results = map_seeds(run_seed, cfg.seeds, cfg.workers, cfg)
    return [difficulty_item(cfg, results), mixing_item(cfg, results), convergence_item(cfg, results)]
