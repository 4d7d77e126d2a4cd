"""Experiment of stage ``dedup_impact``: item ``deduplication-and-filtering/3``, cleaning vs the LM.

:func:`run` trains the same LM for the same number of steps on the raw, the
deduplicated and the quality-filtered documents, with a clean held-out set that none of them
trains on; it reports held-out perplexity and a downstream probe, greedy next-word accuracy
(:func:`~nlpcurriculum.experiments.harness.word_completion`), over several seeds (Lee et al.
2021, arXiv:2107.06499: deduplication does not hurt and often helps perplexity at equal compute).

Tokens are UTF-8 bytes (vocab 256) so no tokenizer choice confounds the comparison; the model,
budget and training loop are the harness's (:class:`~nlpcurriculum.experiments.harness.LMBudget`,
:func:`~nlpcurriculum.experiments.harness.train_and_track`).

Left out: a downstream fine-tuning task, larger models and budgets (the gaps here are measured
on a ~0.2M-parameter model trained for a few hundred steps), and a tokenizer other than bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nlpcurriculum.experiments.harness import LMBudget, byte_stream, evaluate_stream, train_and_track
from nlpcurriculum.results import Finding, ItemResult
from nlpcurriculum.training import TokenBatcher
from nlpcurriculum.training.progress import progress

__all__ = ["ITEMS", "DedupImpactConfig", "Inputs", "run"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("deduplication-and-filtering/3",)


@dataclass
class DedupImpactConfig:
    """Knobs of :func:`run` (the ``dedup_impact`` params section).

    Attributes:
        budget: the shared model and training budget (equal steps = equal tokens per dataset).
        seeds: seeds per dataset; the spread across seeds is the noise the findings allow for.
        min_noise: the smallest relative noise band allowed (guards a lucky tiny spread).
    """

    budget: LMBudget = field(default_factory=lambda: LMBudget(steps=200))
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    min_noise: float = 0.01

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds must be non-empty")
        if self.min_noise < 0:
            raise ValueError(f"min_noise must be >= 0, got {self.min_noise}")


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        train_sets: texts per dataset, e.g. ``{"raw": ..., "deduped": ..., "filtered": ...}``,
            with the held-out documents already removed from each. The first key is the baseline
            the findings compare against (``"raw"``).
        heldout: clean held-out texts none of the train sets contains.
        on_step: ``on_step(run, step, metrics)`` for live tracking (optional).
    """

    train_sets: dict[str, list[str]]
    heldout: list[str]
    on_step: Callable[[str, int, dict[str, float]], None] | None = None


def run(cfg: DedupImpactConfig, inputs: Inputs) -> list[ItemResult]:
    """Train on each cleaning level and compare clean held-out perplexity and word accuracy.

    Args:
        cfg: the experiment's knobs.
        inputs: the training sets and the held-out texts.

    Returns:
        ``[item 3]``.
    """
    train_sets, heldout, on_step = inputs.train_sets, inputs.heldout, inputs.on_step
    import matplotlib.pyplot as plt

    b = cfg.budget
    names = list(train_sets)
    base = names[0]
    heldout_data = TokenBatcher(byte_stream(heldout), b.seq_len, mode="sequential")
    ppl: dict[str, list[float]] = {n: [] for n in names}
    acc: dict[str, list[float]] = {n: [] for n in names}
    curves: dict[str, list[tuple[int, float]]] = {}
    words = 0.0
    bar = progress(total=len(names) * len(cfg.seeds), desc="dedup_impact: models", unit="model")
    for name in names:
        stream = byte_stream(train_sets[name])
        for seed in cfg.seeds:
            data = TokenBatcher(stream, b.seq_len, seed=seed)
            hook = (lambda s, m, _n=f"{name}_seed{seed}": on_step(_n, s, m)) if on_step else None
            model, curve = train_and_track(b, data, {"heldout": heldout_data}, seed, hook)
            bar.update(1)
            ev = evaluate_stream(model, heldout_data, b.batch_size, b.eval_batches, words=True)
            ppl[name].append(float(np.exp(ev["loss"])))
            acc[name].append(ev["word_acc"])
            words = ev["words"]
            if seed == cfg.seeds[0]:
                curves[name] = curve["heldout"]
    bar.close()

    metrics: dict[str, float] = {"heldout_words": words,
                                 "tokens_per_run": float(b.steps * b.tokens_per_step)}
    for n in names:
        metrics[f"{n}.documents"] = float(len(train_sets[n]))
        metrics[f"{n}.train_bytes"] = float(sum(len(t.encode()) for t in train_sets[n]))
        metrics[f"{n}.heldout_ppl"] = float(np.mean(ppl[n]))
        metrics[f"{n}.heldout_ppl_spread"] = float(np.ptp(ppl[n]))
        metrics[f"{n}.word_acc"] = float(np.mean(acc[n]))
        metrics[f"{n}.word_acc_spread"] = float(np.ptp(acc[n]))
    # noise band: the largest seed spread seen (relative), at least min_noise
    rel_ppl_noise = max(cfg.min_noise, *(np.ptp(ppl[n]) / np.mean(ppl[n]) for n in names))
    acc_noise = max(cfg.min_noise, *(np.ptp(acc[n]) for n in names))
    metrics["noise.ppl_relative"] = float(rel_ppl_noise)
    metrics["noise.word_acc"] = float(acc_noise)

    series = {f"{n}_heldout_loss": pts for n, pts in curves.items()}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    x = np.arange(len(names))
    for ax, values, label in ((axes[0], ppl, "clean held-out perplexity (bytes)"),
                              (axes[1], acc, "next-word accuracy (greedy)")):
        means = [np.mean(values[n]) for n in names]
        errs = [np.ptp(values[n]) / 2 for n in names]
        ax.bar(x, means, yerr=errs, capsize=4, color=["tab:gray", "tab:blue", "tab:green"][:len(names)])
        for i, n in enumerate(names):
            ax.scatter([i] * len(values[n]), values[n], color="k", s=10, zorder=3)
        ax.set_xticks(x, names)
        ax.set_ylabel(label)
        lo = min(min(v) for v in values.values())
        hi = max(max(v) for v in values.values())
        ax.set_ylim(lo - 0.3 * (hi - lo + 1e-3), hi + 0.3 * (hi - lo + 1e-3))
    fig.suptitle(f"Equal budget ({b.steps} steps, {len(cfg.seeds)} seeds; bars: mean, "
                 "whiskers: half range)")
    fig.tight_layout()

    fig2, ax2 = plt.subplots(figsize=(6, 3.8))
    for n, pts in curves.items():
        ax2.plot([s * b.tokens_per_step for s, _ in pts], [v for _, v in pts], marker=".", label=n)
    ax2.set_xlabel("training tokens (bytes) seen")
    ax2.set_ylabel("clean held-out loss (nats/byte)")
    ax2.set_title(f"Held-out learning curves (seed {cfg.seeds[0]})")
    ax2.legend()
    ax2.grid(alpha=0.3)

    findings = []
    for n in names[1:]:
        ratio = float(np.mean(ppl[n]) / np.mean(ppl[base]))
        metrics[f"{n}.ppl_ratio_to_{base}"] = ratio
        findings.append(Finding.at_most(
            f"training on {n} documents is not worse than on {base} ones for clean held-out "
            f"perplexity at equal steps (ratio {n}/{base} <= 1 + seed noise)",
            f"{n}.ppl_ratio_to_{base}", ratio, 1.0 + rel_ppl_noise))
        diff = float(np.mean(acc[n]) - np.mean(acc[base]))
        metrics[f"{n}.word_acc_minus_{base}"] = diff
        findings.append(Finding.at_least(
            f"training on {n} documents does not lower downstream next-word accuracy on clean "
            f"held-out text beyond seed noise ({n} - {base} >= -noise)",
            f"{n}.word_acc_minus_{base}", diff, -acc_noise))

    table = "\n".join(
        f"{n:>9}: docs {len(train_sets[n]):5d}  ppl " + " ".join(f"{v:.3f}" for v in ppl[n])
        + "  word_acc " + " ".join(f"{v:.3f}" for v in acc[n]) for n in names)
    return [ItemResult(
        item=ITEMS[0],
        metrics=metrics,
        series=series,
        figures={"ppl_and_probe.png": fig, "heldout_curves.png": fig2},
        texts={"results.txt": table + "\n"},
        findings=findings,
    )]
