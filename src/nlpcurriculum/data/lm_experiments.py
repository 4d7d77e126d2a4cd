"""Data experiments that need a trained language model: what the training text does to the model.

* ``synthetic-data/2`` (:func:`synthetic_curves_experiment`): the same small mini-former trained
  at an equal token budget on real text, on synthetic stories and on a 50/50 mix, every model
  evaluated on every validation set as it trains. The learning curves (val loss against tokens
  seen) show that templated synthetic text is learned fast, and the cross-evaluation shows how
  little of it transfers to real text (the "model collapse onto the generator's distribution"
  concern of Shumailov et al. 2023, arXiv:2305.17493, in miniature; TinyStories, Eldan & Li 2023,
  arXiv:2305.07759, for small models learning synthetic stories quickly).
* ``deduplication-and-filtering/3`` (:func:`dedup_impact_experiment`): the same LM trained for
  the same number of steps on the raw, the deduplicated and the quality-filtered documents, with
  a clean held-out set that none of them trains on; reports held-out perplexity and a downstream
  probe, greedy next-word accuracy, over several seeds (Lee et al. 2021, arXiv:2107.06499:
  deduplication does not hurt and often helps perplexity at equal compute).

Tokens are UTF-8 bytes (vocab 256) so no tokenizer choice confounds the comparison; documents
are joined by a NUL byte (:data:`DOC_SEP`), which never occurs in text, as an end-of-text token.

Next-word accuracy, teacher-forced: a word is "completed" when greedy decoding from the context
before it reproduces its letters and then the byte that ends it. Greedy decoding follows the true
path exactly as long as every argmax matches, so this equals "every argmax along the word and its
terminator is right" under teacher forcing, and costs one forward pass instead of a decode loop.
Worked example: target bytes ``" cat."`` after context ``"the"``: the word starts at ``c``
(preceded by a space); it counts as correct only if argmax predicts ``c``, ``a``, ``t`` and
``.`` at those four positions.

Left out: a downstream fine-tuning task, larger models and budgets (the gaps here are measured
on a ~0.2M-parameter model trained for a few hundred steps), and a tokenizer other than bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from nlpcurriculum.models import MiniFormerConfig, build_model
from nlpcurriculum.results import Finding, ItemResult
from nlpcurriculum.training import TokenBatcher, Trainer, TrainerConfig, seed_everything

__all__ = [
    "DOC_SEP",
    "DedupImpactConfig",
    "LMBudget",
    "MixedBatcher",
    "SyntheticCurvesConfig",
    "byte_stream",
    "dedup_impact_experiment",
    "evaluate_stream",
    "synthetic_curves_experiment",
    "train_and_track",
]

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
    """UTF-8 bytes of ``texts`` joined (and ended) by :data:`DOC_SEP`, as a 1-D int64 tensor."""
    if not texts:
        raise ValueError("byte_stream needs at least one text")
    data = b"".join(t.encode("utf-8") + bytes([DOC_SEP]) for t in texts)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long()


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
    """Count (correct, total) greedy next-word completions in one window (see module docstring).

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


# --------------------------------------------------------------------------- synthetic-data/2


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
    """Knobs of :func:`synthetic_curves_experiment` (the ``synthetic_curves`` params section).

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


def synthetic_curves_experiment(
    real: dict[str, list[str]],
    synthetic: dict[str, list[str]],
    cfg: SyntheticCurvesConfig,
    on_step: Callable[[str, int, dict[str, float]], None] | None = None,
) -> ItemResult:
    """Learning curves and cross-evaluation of models trained on real vs synthetic text.

    Args:
        real: ``{"train": texts, "val": texts}`` of the real corpus.
        synthetic: the same for the synthetic corpus.
        cfg: the experiment's knobs.
        on_step: ``on_step(run, step, metrics)`` for live tracking.

    Returns:
        The ``synthetic-data/2`` :class:`ItemResult`: per-run final losses on both val sets,
        curves, a learning-curve figure and a cross-evaluation heat map.
    """
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
    for name, data in runs.items():
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
    return ItemResult(
        item="synthetic-data/2",
        metrics=metrics,
        series=series,
        figures={"learning_curves.png": fig, "cross_eval.png": fig2},
        texts={"cross_eval.txt": table + "\n"},
        findings=findings,
    )


# --------------------------------------------------------------------------- dedup/3


@dataclass
class DedupImpactConfig:
    """Knobs of :func:`dedup_impact_experiment` (the ``dedup_impact`` params section).

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


def dedup_impact_experiment(
    train_sets: dict[str, list[str]],
    heldout: list[str],
    cfg: DedupImpactConfig,
    on_step: Callable[[str, int, dict[str, float]], None] | None = None,
) -> ItemResult:
    """Train on each cleaning level and compare clean held-out perplexity and word accuracy.

    Args:
        train_sets: texts per dataset, e.g. ``{"raw": ..., "deduped": ..., "filtered": ...}``,
            with the held-out documents already removed from each. The first key is the baseline
            the findings compare against (``"raw"``).
        heldout: clean held-out texts none of the train sets contains.
        cfg: the experiment's knobs.
        on_step: ``on_step(run, step, metrics)`` for live tracking.

    Returns:
        The ``deduplication-and-filtering/3`` :class:`ItemResult`.
    """
    import matplotlib.pyplot as plt

    b = cfg.budget
    names = list(train_sets)
    base = names[0]
    heldout_data = TokenBatcher(byte_stream(heldout), b.seq_len, mode="sequential")
    ppl: dict[str, list[float]] = {n: [] for n in names}
    acc: dict[str, list[float]] = {n: [] for n in names}
    curves: dict[str, list[tuple[int, float]]] = {}
    words = 0.0
    for name in names:
        stream = byte_stream(train_sets[name])
        for seed in cfg.seeds:
            data = TokenBatcher(stream, b.seq_len, seed=seed)
            hook = (lambda s, m, _n=f"{name}_seed{seed}": on_step(_n, s, m)) if on_step else None
            model, curve = train_and_track(b, data, {"heldout": heldout_data}, seed, hook)
            ev = evaluate_stream(model, heldout_data, b.batch_size, b.eval_batches, words=True)
            ppl[name].append(float(np.exp(ev["loss"])))
            acc[name].append(ev["word_acc"])
            words = ev["words"]
            if seed == cfg.seeds[0]:
                curves[name] = curve["heldout"]

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
    return ItemResult(
        item="deduplication-and-filtering/3",
        metrics=metrics,
        series=series,
        figures={"ppl_and_probe.png": fig, "heldout_curves.png": fig2},
        texts={"results.txt": table + "\n"},
        findings=findings,
    )
