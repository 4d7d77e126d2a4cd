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
        min_own_val_loss_gap: how much lower (nats/byte) the synthetic model's loss on its own val
            must end than the real model's on real val, per seed on average (a tie does not show
            that templated text is easier).
    """

    min_own_val_loss_gap: float = 0.05


@dataclass
class SyntheticCurvesConfig:
    """Knobs of :func:`run` (the ``synthetic_curves`` params section).

    Attributes:
        budget: the shared model and training budget.
        mix: also train on a 50/50 real/synthetic mix.
        seeds: one replicate per seed; a seed fixes the init and batch order of every dataset's
            model alike, so the arms are compared seed by seed (paired).
        transfer_gap: the synthetic model's real-val loss must exceed the real model's by at
            least this many nats/byte for "transfers poorly" to pass.
        mix_tolerance: the mix model's loss on each val set must be within this many nats/byte of
            the specialist trained only on that data.
        checks: the other bounds of the findings.
    """

    budget: LMBudget = field(default_factory=LMBudget)
    mix: bool = True
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    transfer_gap: float = 0.25
    mix_tolerance: float = 0.15
    checks: SyntheticCurvesChecks = field(default_factory=SyntheticCurvesChecks)

    def __post_init__(self) -> None:
        if self.transfer_gap < 0 or self.mix_tolerance < 0:
            raise ValueError("transfer_gap and mix_tolerance must be >= 0")
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be at least two distinct seeds (a finding needs a "
                             f"standard error), got {self.seeds}")


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


def _train_source(name: str, streams: dict[str, dict[str, list[str]]], seq_len: int,
                  seed: int) -> Any:
    """The batches model ``name`` trains on: one corpus, or the 50/50 mix of both."""
    if name != "mix":
        return TokenBatcher(byte_stream(streams[name]["train"]), seq_len, seed=seed)
    sources = [TokenBatcher(byte_stream(v["train"]), seq_len, seed=seed + 1) for v in streams.values()]
    return MixedBatcher(sources, [0.5, 0.5])


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
    evals = {k: TokenBatcher(byte_stream(v["val"]), b.seq_len, mode="sequential")
             for k, v in streams.items()}
    names = [*streams, *(["mix"] if cfg.mix else [])]

    # curves[seed][run][eval set] = [(step, loss), ...]
    curves: dict[int, dict[str, dict[str, list[tuple[int, float]]]]] = {}
    jobs = [(seed, name) for seed in cfg.seeds for name in names]
    for seed, name in progress(jobs, desc="synthetic_curves: models", unit="model"):
        hook = (lambda s, m, _n=name: on_step(_n, s, m)) if on_step else None
        _, curves.setdefault(seed, {})[name] = train_and_track(
            b, _train_source(name, streams, b.seq_len, seed), evals, seed, hook)

    # final[(run, eval set)] = the last val loss of each seed, in cfg.seeds order
    final = {(run, ev): [curves[seed][run][ev][-1][1] for seed in cfg.seeds]
             for run in names for ev in evals}
    metrics: dict[str, float] = {
        f"{run}_model.{ev}_val_loss": float(np.mean(v)) for (run, ev), v in final.items()
    }
    metrics["seeds"] = float(len(cfg.seeds))
    metrics["tokens_per_run"] = float(b.steps * b.tokens_per_step)
    for k, v in streams.items():
        metrics[f"{k}.train_bytes"] = float(sum(len(t.encode()) for t in v["train"]))
    # tokens for each specialist to first reach within 0.1 nats of its own final loss (first seed)
    first = curves[cfg.seeds[0]]
    for k in streams:
        curve = first[k][k]
        target = curve[-1][1] + 0.1
        step = next(s for s, v in curve if v <= target)
        metrics[f"{k}_model.tokens_to_final_plus_0.1"] = float(step * b.tokens_per_step)
    runs = names
    mean_final = {key: float(np.mean(v)) for key, v in final.items()}

    series = {f"{run}_model_{ev}_val": pts for run in runs for ev, pts in first[run].items()}

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = {"real": "tab:blue", "synthetic": "tab:orange", "mix": "tab:green"}
    styles = {"real": "-", "synthetic": "--"}
    for run in runs:
        for ev, pts in first[run].items():
            xs = [s * b.tokens_per_step for s, _ in pts]
            ax.plot(xs, [v for _, v in pts], styles[ev], color=colors[run], marker=".",
                    label=f"trained on {run}, eval on {ev}")
    ax.set_xlabel("training tokens (bytes) seen")
    ax.set_ylabel("val loss (nats/byte)")
    ax.set_title(f"Learning curves: real vs synthetic text (equal token budget, seed {cfg.seeds[0]})")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)

    fig2, ax2 = plt.subplots(figsize=(4.5, 3.5))
    grid = np.array([[mean_final[(run, ev)] for ev in evals] for run in runs])
    im = ax2.imshow(grid, cmap="viridis_r")
    ax2.set_xticks(range(len(evals)), [f"{e} val" for e in evals])
    ax2.set_yticks(range(len(runs)), [f"{r} model" for r in runs])
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax2.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="w")
    fig2.colorbar(im, ax=ax2, label=f"final val loss (nats/byte, mean of {len(cfg.seeds)} seeds)")
    ax2.set_title("Cross-evaluation")

    findings = [
        Finding.compare(
            "synthetic text is learned faster: at equal tokens the synthetic model's loss on its "
            "own val ends lower than the real model's on real val (per seed, paired; a model that "
            "learned nothing from either would tie)",
            "synthetic_own_minus_real_own_val_loss",
            final[("synthetic", "synthetic")], final[("real", "real")],
            margin=cfg.checks.min_own_val_loss_gap, higher_is_better=False),
        Finding.compare(
            "the synthetic-trained model transfers poorly to real text: its real-val loss exceeds "
            f"the real model's by more than {cfg.transfer_gap} nats/byte (per seed, paired)",
            "synthetic_model_minus_real_model_real_val_loss",
            final[("synthetic", "real")], final[("real", "real")], margin=cfg.transfer_gap),
    ]
    if cfg.mix:
        # per seed: the mix model's largest gap to a specialist over the two val sets
        worst = [max(final[("mix", ev)][i] - final[(ev, ev)][i] for ev in evals)
                 for i in range(len(cfg.seeds))]
        metrics["mix_model.max_gap_to_specialist"] = float(np.mean(worst))
        findings.append(Finding.compare(
            "a 50/50 mix learns both: on each val set its loss stays within "
            f"{cfg.mix_tolerance} nats/byte of the specialist's (which saw twice the tokens of "
            "that data)", "mix_model.max_gap_to_specialist", worst,
            margin=-cfg.mix_tolerance, higher_is_better=False))

    table = f"final val loss (nats/byte), mean of seeds {cfg.seeds}\n" + "\n".join(
        f"{run:>10} model: " + ", ".join(f"{ev} val {mean_final[(run, ev)]:.3f}" for ev in evals)
        for run in runs)
    return [ItemResult(
        item=ITEMS[0],
        metrics=metrics,
        series=series,
        figures={"learning_curves.png": fig, "cross_eval.png": fig2},
        texts={"cross_eval.txt": table + "\n"},
        findings=findings,
    )]
