"""Experiment of stage ``synthetic_curves``: item ``synthetic-data/2``, real vs synthetic text.

:func:`run` trains the same small mini-former at an equal token budget on
real text, on synthetic stories and on a 50/50 mix, every model evaluated on every validation set
as it trains. The learning curves (val loss against tokens seen) show that templated synthetic
text is learned fast, and the cross-evaluation shows how little of it transfers to real text
(the "model collapse onto the generator's distribution" concern of Shumailov et al. 2023,
arXiv:2305.17493, in miniature; TinyStories, Eldan & Li 2023, arXiv:2305.07759, for small models
learning synthetic stories quickly).

Tokens are UTF-8 bytes (vocab 256) so no tokenizer choice confounds the comparison; documents
are joined by a NUL byte (:data:`~nlpcurriculum.experiments.harness.DOC_SEP`), which never occurs
in text, as an end-of-text token. The model, budget and training loop are the harness's
(:class:`~nlpcurriculum.experiments.harness.LMBudget`,
:func:`~nlpcurriculum.experiments.harness.train_and_track`).

Left out: larger models and budgets (the gaps here are measured on a ~0.2M-parameter model
trained for a few hundred steps), and a tokenizer other than bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nlpcurriculum.experiments.harness import LMBudget, MixedBatcher, byte_stream, train_and_track
from nlpcurriculum.results import Finding, ItemResult
from nlpcurriculum.training import TokenBatcher
from nlpcurriculum.training.progress import progress

__all__ = ["ITEMS", "Inputs", "SyntheticCurvesConfig", "run"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("synthetic-data/2",)


@dataclass
class SyntheticCurvesChecks:
    """Bounds of the findings that no knob above sets (params ``synthetic_curves.checks``).

    Attributes:
        max_own_val_loss_difference: the synthetic model's loss on its own val minus the real
            model's on real val (nats/byte).
    """

    max_own_val_loss_difference: float = 0.0


@dataclass
class SyntheticCurvesConfig:
    """Knobs of :func:`run` (the ``synthetic_curves`` params section).

    Attributes:
        budget: the shared model and training budget.
        mix: also train on a 50/50 real/synthetic mix.
        seed: seed of every run (same init for every dataset).
        transfer_gap: the synthetic model's real-val loss must exceed the real model's by at
            least this many nats/byte for "transfers poorly" to pass.
        mix_tolerance: the mix model's loss on each val set must be within this many nats/byte of
            the specialist trained only on that data.
        checks: the other bounds of the findings.
    """

    budget: LMBudget = field(default_factory=LMBudget)
    mix: bool = True
    seed: int = 0
    transfer_gap: float = 0.25
    mix_tolerance: float = 0.15
    checks: SyntheticCurvesChecks = field(default_factory=SyntheticCurvesChecks)

    def __post_init__(self) -> None:
        if self.transfer_gap < 0 or self.mix_tolerance < 0:
            raise ValueError("transfer_gap and mix_tolerance must be >= 0")


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        real: ``{"train": texts, "val": texts}`` of the real corpus.
        synthetic: the same for the synthetic corpus.
        on_step: ``on_step(run, step, metrics)`` for live tracking (optional).
    """

    real: dict[str, list[str]]
    synthetic: dict[str, list[str]]
    on_step: Callable[[str, int, dict[str, float]], None] | None = None


def run(cfg: SyntheticCurvesConfig, inputs: Inputs) -> list[ItemResult]:
    """Learning curves and cross-evaluation of models trained on real vs synthetic text.

    Args:
        cfg: the experiment's knobs.
        inputs: the real and synthetic texts.

    Returns:
        ``[item 2]``: per-run final losses on both val sets, curves, a learning-curve figure and
        a cross-evaluation heat map.
    """
    real, synthetic, on_step = inputs.real, inputs.synthetic, inputs.on_step
    import matplotlib.pyplot as plt

    b = cfg.budget
    streams = {"real": real, "synthetic": synthetic}
    train = {k: TokenBatcher(byte_stream(v["train"]), b.seq_len, seed=cfg.seed)
             for k, v in streams.items()}
    evals = {k: TokenBatcher(byte_stream(v["val"]), b.seq_len, mode="sequential")
             for k, v in streams.items()}
    runs: dict[str, Any] = dict(train)
    if cfg.mix:
        mix_sources = [TokenBatcher(byte_stream(v["train"]), b.seq_len, seed=cfg.seed + 1)
                       for v in streams.values()]
        runs["mix"] = MixedBatcher(mix_sources, [0.5, 0.5])

    curves: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for name, data in progress(runs.items(), desc="synthetic_curves: models", unit="model"):
        hook = (lambda s, m, _n=name: on_step(_n, s, m)) if on_step else None
        _, curves[name] = train_and_track(b, data, evals, cfg.seed, hook)

    final = {(run, ev): curves[run][ev][-1][1] for run in runs for ev in evals}
    metrics: dict[str, float] = {
        f"{run}_model.{ev}_val_loss": v for (run, ev), v in final.items()
    }
    metrics["tokens_per_run"] = float(b.steps * b.tokens_per_step)
    for k, v in streams.items():
        metrics[f"{k}.train_bytes"] = float(sum(len(t.encode()) for t in v["train"]))
    # tokens for each specialist to first reach within 0.1 nats of its own final loss
    for k in streams:
        curve = curves[k][k]
        target = curve[-1][1] + 0.1
        step = next(s for s, v in curve if v <= target)
        metrics[f"{k}_model.tokens_to_final_plus_0.1"] = float(step * b.tokens_per_step)

    series = {f"{run}_model_{ev}_val": pts for run in runs for ev, pts in curves[run].items()}

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = {"real": "tab:blue", "synthetic": "tab:orange", "mix": "tab:green"}
    styles = {"real": "-", "synthetic": "--"}
    for run in runs:
        for ev, pts in curves[run].items():
            xs = [s * b.tokens_per_step for s, _ in pts]
            ax.plot(xs, [v for _, v in pts], styles[ev], color=colors[run], marker=".",
                    label=f"trained on {run}, eval on {ev}")
    ax.set_xlabel("training tokens (bytes) seen")
    ax.set_ylabel("val loss (nats/byte)")
    ax.set_title("Learning curves: real vs synthetic text (equal token budget)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)

    fig2, ax2 = plt.subplots(figsize=(4.5, 3.5))
    grid = np.array([[final[(run, ev)] for ev in evals] for run in runs])
    im = ax2.imshow(grid, cmap="viridis_r")
    ax2.set_xticks(range(len(evals)), [f"{e} val" for e in evals])
    ax2.set_yticks(range(len(runs)), [f"{r} model" for r in runs])
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax2.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="w")
    fig2.colorbar(im, ax=ax2, label="final val loss (nats/byte)")
    ax2.set_title("Cross-evaluation")

    findings = [
        Finding.at_most(
            "synthetic text is learned faster: at equal tokens the synthetic model's loss on its "
            "own val is lower than the real model's on real val (difference < 0)",
            "synthetic_own_minus_real_own_val_loss",
            final[("synthetic", "synthetic")] - final[("real", "real")],
            cfg.checks.max_own_val_loss_difference),
        Finding.at_least(
            "the synthetic-trained model transfers poorly to real text: its real-val loss exceeds "
            f"the real model's by at least {cfg.transfer_gap} nats/byte",
            "synthetic_model_minus_real_model_real_val_loss",
            final[("synthetic", "real")] - final[("real", "real")], cfg.transfer_gap),
    ]
    if cfg.mix:
        worst = max(final[("mix", ev)] - final[(ev, ev)] for ev in evals)
        metrics["mix_model.max_gap_to_specialist"] = worst
        findings.append(Finding.at_most(
            "a 50/50 mix learns both: on each val set its loss is within "
            f"{cfg.mix_tolerance} nats/byte of the specialist (half the tokens of each)",
            "mix_model.max_gap_to_specialist", worst, cfg.mix_tolerance))

    table = "\n".join(
        f"{run:>10} model: " + ", ".join(f"{ev} val {final[(run, ev)]:.3f}" for ev in evals)
        for run in runs)
    return [ItemResult(
        item=ITEMS[0],
        metrics=metrics,
        series=series,
        figures={"learning_curves.png": fig, "cross_eval.png": fig2},
        texts={"cross_eval.txt": table + "\n"},
        findings=findings,
    )]
