"""Experiment of stage ``dedup_impact``: item ``deduplication-and-filtering/3``, cleaning vs the LM.

Does deduplication change what a language model learns? Lee et al. 2021 (arXiv:2107.06499) found
that models trained on duplicated data regurgitate the duplicated passages (memorisation) and
that deduplication does not hurt, often helps, held-out perplexity at equal compute. :func:`run`
measures both on this corpus, as an experiment whose findings can come out either way:

1. **Decontamination by near-duplicate.** The held-out documents (the pipeline's val and test
   splits) are already removed from the training sets by document id; every training document
   whose MinHash estimate of word-shingle Jaccard with any held-out document reaches
   ``decontam_threshold`` is removed too (a copy under another id, a lightly edited page), so the
   held-out loss measures generalisation, not recall.
2. **A regime where duplicates matter.** The pipeline's own corpus holds few duplicates (the
   stage's dedup drops a handful of documents), far fewer than the web corpora Lee et al. studied,
   so the *duplicated* arm plants them: ``dup_passages`` passages of ``passage_bytes`` bytes drawn
   from the deduplicated training subset are appended ``dup_copies`` more times each. Every arm
   trains for the same steps, ``epochs`` passes over the deduplicated subset (whose size follows:
   ``steps * tokens_per_step / epochs`` bytes), so duplicates are seen many times, not once.
3. **Arms.** ``deduped`` (the subset), ``duplicated`` (the subset plus the planted copies), and
   ``filtered`` (a subset of the same size drawn from the quality-filtered documents), each
   trained on ``seeds`` (same initialisation seed and batch seed across arms within a seed: the
   comparisons are paired by seed).
4. **Measures.** Clean held-out loss (nats/byte, and perplexity); memorisation: the loss on the
   planted passages minus the loss on *control* passages (same length, from the same subset, not
   duplicated), and the exact-continuation rate (greedy decoding from the first
   ``prompt_bytes`` reproduces the rest of the passage byte for byte; computed teacher-forced:
   greedy follows the true path exactly as long as every argmax is right); next-word accuracy on
   the held-out text (:func:`~nlpcurriculum.experiments.harness.word_completion`).

Findings (:meth:`~nlpcurriculum.results.Finding.compare`, paired by seed, thresholds in
``checks``): the duplicated arm memorises its duplicated passages (memorisation gap, duplicated
minus deduped arm, below ``-min_memorisation_gap``; a model that does not memorise, or an arm
whose copies were not planted, ties and fails); deduplication lowers clean held-out loss by at
least ``min_dedup_heldout_gain``; filtering does not raise it by more than
``max_filtered_heldout_excess``. Each comparison reports its mean effect, standard error, a 95%
t interval, and the minimum detectable effect (:func:`min_detectable_effect`), the number to read
when a finding is inconclusive.

Tokens are UTF-8 bytes (vocab 256) so no tokenizer choice confounds the comparison; the model,
budget and training loop are the harness's (:class:`~nlpcurriculum.experiments.harness.LMBudget`,
:func:`~nlpcurriculum.experiments.harness.train_and_track`).

Left out: extraction attacks on naturally duplicated text (the planted copies stand in for it), a
downstream fine-tuning task, larger models and budgets (~0.1M parameters, minutes of training).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats

from nlpcurriculum.data.minhash import MinHashConfig, MinHasher
from nlpcurriculum.experiments.harness import (
    LMBudget,
    byte_stream,
    evaluate_stream,
    torch_threads,
    train_and_track,
)
from nlpcurriculum.results import Finding, ItemResult
from nlpcurriculum.training import TokenBatcher
from nlpcurriculum.training.progress import progress

__all__ = [
    "ITEMS",
    "DedupImpactChecks",
    "DedupImpactConfig",
    "Inputs",
    "decontaminate",
    "interval",
    "memorisation",
    "min_detectable_effect",
    "plant_duplicates",
    "run",
]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("deduplication-and-filtering/3",)

#: The arms, the control first.
ARMS = ("deduped", "duplicated", "filtered")

# one-sided z for 80% power, added to the 2 standard errors the pass rule asks for
_Z_POWER = 0.8416


@dataclass
class DedupImpactChecks:
    """Bounds of the findings (params ``dedup_impact.checks``), nats/byte.

    Attributes:
        min_memorisation_gap: the planted passages' loss minus the control passages', duplicated
            arm minus deduped arm, must be below minus this.
        min_dedup_heldout_gain: clean held-out loss, duplicated arm minus deduped arm, at least.
        max_filtered_heldout_excess: clean held-out loss, filtered arm minus deduped arm, at most.
    """

    min_memorisation_gap: float = 0.1
    min_dedup_heldout_gain: float = 0.01
    max_filtered_heldout_excess: float = 0.02


@dataclass
class DedupImpactConfig:
    """Knobs of :func:`run` (the ``dedup_impact`` params section).

    Attributes:
        budget: the shared model and training budget (equal steps = equal tokens per arm).
        seeds: training seeds (initialisation and batch order); at least 2, 3 or more by default.
        epochs: passes over the deduplicated subset the budget buys; sets the subset's size.
        dup_passages: passages planted as duplicates in the duplicated arm (and as many control
            passages measured beside them).
        dup_copies: extra copies of each planted passage.
        passage_bytes: length of a planted or control passage; at most ``budget.seq_len + 1`` so
            one forward pass scores it.
        prompt_bytes: exact continuation: greedy decoding from this many bytes of a passage must
            reproduce the rest.
        data_seed: seeds the document order of the subsets and the choice of passages (the same
            for every training seed).
        decontam_threshold: training documents whose estimated Jaccard with a held-out document
            reaches this are removed.
        minhash: the signatures of that estimate.
        num_threads: torch intra-op threads (1: these matmuls are too small to gain from two, and
            two contending threads on a shared machine run several times slower).
        checks: the findings' bounds.
    """

    budget: LMBudget = field(default_factory=lambda: LMBudget(steps=400))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: float = 4.0
    dup_passages: int = 32
    dup_copies: int = 8
    passage_bytes: int = 128
    prompt_bytes: int = 96
    data_seed: int = 0
    decontam_threshold: float = 0.5
    minhash: MinHashConfig = field(default_factory=lambda: MinHashConfig(hash_fn="fast"))
    num_threads: int = 1
    checks: DedupImpactChecks = field(default_factory=DedupImpactChecks)

    def __post_init__(self) -> None:
        if len(set(self.seeds)) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be at least 2 distinct seeds, got {self.seeds}")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        for name in ("dup_passages", "dup_copies", "prompt_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.prompt_bytes < self.passage_bytes <= self.budget.seq_len + 1:
            raise ValueError(f"need prompt_bytes < passage_bytes <= budget.seq_len + 1, got "
                             f"{self.prompt_bytes}, {self.passage_bytes}, {self.budget.seq_len + 1}")
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")
        if not 0 < self.decontam_threshold <= 1:
            raise ValueError(f"decontam_threshold must be in (0, 1], got {self.decontam_threshold}")


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        train_sets: texts per cleaning level: ``"raw"`` (only counted), ``"deduped"`` and
            ``"filtered"``, with the held-out documents already removed by document id.
        heldout: clean held-out texts (the splits' val and test documents).
        on_step: ``on_step(run, step, metrics)`` for live tracking (optional).
    """

    train_sets: dict[str, list[str]]
    heldout: list[str]
    on_step: Callable[[str, int, dict[str, float]], None] | None = None


# ------------------------------------------------------------------------------------- data


def decontaminate(train: Sequence[str], heldout: Sequence[str], threshold: float,
                  minhash: MinHashConfig) -> tuple[list[str], float]:
    """``train`` without the documents whose estimated Jaccard with a held-out one reaches ``threshold``.

    Returns:
        ``(kept documents, largest estimated Jaccard of a kept document with any held-out one)``.
    """
    if not train or not heldout:
        return list(train), 0.0
    hasher = MinHasher(minhash)
    sig_t, sig_h = hasher.signatures(list(train)), hasher.signatures(list(heldout))  # (N, P), (H, P)
    best = np.zeros(len(train))
    for j in range(len(heldout)):  # (N,) per held-out document: bounded memory
        best = np.maximum(best, (sig_t == sig_h[j]).mean(-1))
    keep = best < threshold
    kept = [t for t, k in zip(train, keep) if k]
    return kept, float(best[keep].max()) if keep.any() else 0.0


def _subset(docs: Sequence[str], n_bytes: int, rng: np.random.Generator) -> list[str]:
    """Documents in a seeded random order, taken until they hold ``n_bytes`` bytes (the last is cut)."""
    out, total = [], 0
    for i in rng.permutation(len(docs)):
        data = docs[i].encode()
        if total + len(data) >= n_bytes:
            out.append(data[: n_bytes - total].decode("utf-8", "ignore"))
            break
        out.append(docs[i])
        total += len(data)
    return out


def plant_duplicates(docs: Sequence[str], n: int, length: int, copies: int,
                     rng: np.random.Generator) -> tuple[list[str], list[bytes], list[bytes]]:
    """Pick ``2n`` non-overlapping passages of ``length`` bytes; plant copies of the first n.

    Passages are aligned slots ``[k * length, (k + 1) * length)`` of the documents' UTF-8 bytes
    that decode as whole characters, drawn at random; the copies are therefore byte-exact.

    Returns:
        ``(documents with copies, planted passages, control passages)``: the documents are
        ``docs`` plus ``copies`` copies of each planted passage, shuffled in; the control
        passages are in ``docs`` once, as the planted ones were before planting.
    """
    slots = []  # (document, byte offset) of every passage that decodes cleanly
    for i, doc in enumerate(docs):
        data = doc.encode()
        for start in range(0, len(data) - length + 1, length):
            try:
                data[start:start + length].decode("utf-8")
            except UnicodeDecodeError:
                continue
            slots.append((i, start))
    if len(slots) < 2 * n:
        raise ValueError(f"the deduplicated subset holds {len(slots)} passages of {length} bytes; "
                         f"dup_passages={n} needs {2 * n} (planted and control): lower dup_passages "
                         "or passage_bytes, or raise budget.steps")
    chosen = rng.choice(len(slots), size=2 * n, replace=False)
    passages = [docs[slots[k][0]].encode()[slots[k][1]:slots[k][1] + length] for k in chosen]
    planted, control = passages[:n], passages[n:]
    mixed = list(docs) + [p.decode("utf-8") for p in planted for _ in range(copies)]
    order = rng.permutation(len(mixed))
    return [mixed[i] for i in order], planted, control


@torch.no_grad()
def memorisation(model: torch.nn.Module, passages: Sequence[bytes], prompt_bytes: int) -> tuple[float, float]:
    """Mean next-byte loss over ``passages`` and their exact-continuation rate.

    Exact continuation: greedy decoding from the first ``prompt_bytes`` bytes reproduces every
    later byte of the passage; teacher-forced, that is "every argmax from position
    ``prompt_bytes`` on equals the true byte" (greedy follows the true path exactly as long as
    each argmax is right), one forward pass.

    Returns:
        ``(loss in nats/byte, exact continuation rate)``.
    """
    was_training = model.training
    model.eval()
    ids = torch.tensor([list(p) for p in passages], dtype=torch.long)  # (N, L)
    x, y = ids[:, :-1], ids[:, 1:]  # (N, L - 1) each
    out = model(x, targets=y)
    pred = out.logits.argmax(-1)  # (N, L - 1)
    exact = (pred[:, prompt_bytes - 1:] == y[:, prompt_bytes - 1:]).all(-1)  # (N,)
    model.train(was_training)
    return float(out.loss), float(exact.float().mean())


# ------------------------------------------------------------------------------------ statistics


def interval(finding: Finding, level: float = 0.95) -> tuple[float, float]:
    """The two-sided t interval of a comparison's mean effect (``n - 1`` degrees of freedom)."""
    if finding.n is None or finding.n < 2 or finding.se is None or not math.isfinite(finding.se):
        return math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, finding.n - 1)) * finding.se
    return finding.value - half, finding.value + half


def min_detectable_effect(finding: Finding, higher_is_better: bool) -> float:
    """The true mean effect at which the comparison would pass with 80% power.

    :meth:`Finding.compare` passes when the effect clears its bound (``threshold``) by two standard
    errors in the expected direction; a true effect clears that bar 80% of the time when it lies
    ``2 + 0.84`` standard errors beyond the bound (normal approximation, the measured SE taken as
    known). Example: bound 0.01, SE 0.005, higher is better: 0.01 + 2.84 * 0.005 = 0.0242.
    """
    if finding.se is None or not math.isfinite(finding.se) or finding.threshold is None:
        return math.nan
    sign = 1.0 if higher_is_better else -1.0
    return finding.threshold + sign * (2.0 + _Z_POWER) * finding.se


# ------------------------------------------------------------------------------------- runner


def run(cfg: DedupImpactConfig, inputs: Inputs) -> list[ItemResult]:
    """Decontaminate, build the three arms, train each on every seed, measure and compare.

    Returns:
        ``[item 3]``.
    """
    with torch_threads(cfg.num_threads):
        return _run(cfg, inputs)


def _run(cfg: DedupImpactConfig, inputs: Inputs) -> list[ItemResult]:
    import matplotlib.pyplot as plt

    b = cfg.budget
    rng = np.random.default_rng(cfg.data_seed)
    metrics: dict[str, float] = {"raw.documents": float(len(inputs.train_sets["raw"]))}
    pools = {}
    for name in ("deduped", "filtered"):
        docs = inputs.train_sets[name]
        kept, worst = decontaminate(docs, inputs.heldout, cfg.decontam_threshold, cfg.minhash)
        metrics[f"{name}.documents"] = float(len(docs))
        metrics[f"{name}.decontaminated_documents"] = float(len(docs) - len(kept))
        metrics[f"{name}.max_heldout_jaccard_kept"] = worst
        pools[name] = kept
    subset_bytes = int(b.steps * b.tokens_per_step / cfg.epochs)
    deduped = _subset(pools["deduped"], subset_bytes, rng)
    duplicated, planted, control = plant_duplicates(deduped, cfg.dup_passages, cfg.passage_bytes,
                                                    cfg.dup_copies, rng)
    arms = {"deduped": deduped, "duplicated": duplicated,
            "filtered": _subset(pools["filtered"], subset_bytes, rng)}
    streams = {name: byte_stream(docs) for name, docs in arms.items()}
    for name, stream in streams.items():
        metrics[f"{name}.train_bytes"] = float(stream.numel())
        metrics[f"{name}.epochs"] = b.steps * b.tokens_per_step / stream.numel()
    metrics["duplicated.planted_share"] = cfg.dup_passages * cfg.dup_copies * cfg.passage_bytes / float(
        streams["duplicated"].numel())
    metrics["tokens_per_run"] = float(b.steps * b.tokens_per_step)

    heldout_data = TokenBatcher(byte_stream(inputs.heldout), b.seq_len, mode="sequential")
    per: dict[str, dict[str, list[float]]] = {n: {} for n in arms}
    curves: dict[str, list[tuple[int, float]]] = {}
    words = 0.0
    bar = progress(total=len(arms) * len(cfg.seeds), desc="dedup_impact: models", unit="model")
    for name, stream in streams.items():
        for seed in cfg.seeds:
            data = TokenBatcher(stream, b.seq_len, seed=seed)
            hook = ((lambda s, m, _n=f"{name}_seed{seed}": inputs.on_step(_n, s, m))
                    if inputs.on_step else None)
            model, curve = train_and_track(b, data, {"heldout": heldout_data}, seed, hook)
            bar.update(1)
            ev = evaluate_stream(model, heldout_data, b.batch_size, b.eval_batches, words=True)
            words = ev["words"]
            planted_loss, planted_exact = memorisation(model, planted, cfg.prompt_bytes)
            control_loss, control_exact = memorisation(model, control, cfg.prompt_bytes)
            measured = {"heldout_loss": ev["loss"], "word_acc": ev["word_acc"],
                        "planted_loss": planted_loss, "control_loss": control_loss,
                        "memorisation_gap": planted_loss - control_loss,
                        "planted_exact": planted_exact, "control_exact": control_exact}
            for key, value in measured.items():
                per[name].setdefault(key, []).append(value)
                metrics[f"{name}.seed{seed}.{key}"] = value
            if seed == cfg.seeds[0]:
                curves[name] = curve["heldout"]
    bar.close()
    metrics["heldout_words"] = words
    for name in arms:
        for key, values in per[name].items():
            metrics[f"{name}.{key}"] = float(np.mean(values))
        metrics[f"{name}.heldout_ppl"] = float(np.mean(np.exp(per[name]["heldout_loss"])))

    c = cfg.checks
    n = len(cfg.seeds)
    decontam = Finding.invariant(
        f"no training document kept has an estimated Jaccard >= {cfg.decontam_threshold} with a "
        "held-out document (largest left, over both pools)", "max_heldout_jaccard_kept",
        max(metrics["deduped.max_heldout_jaccard_kept"], metrics["filtered.max_heldout_jaccard_kept"]),
        max(metrics["deduped.max_heldout_jaccard_kept"],
            metrics["filtered.max_heldout_jaccard_kept"]) < cfg.decontam_threshold,
        cfg.decontam_threshold)
    memorised = Finding.compare(
        f"duplicated passages are memorised: loss on the {cfg.dup_passages} planted passages minus "
        f"on {cfg.dup_passages} control passages, duplicated arm minus deduped arm (nats/byte, paired "
        f"by seed, {n} seeds; a model that does not memorise, or copies never planted, tie and fail)",
        "memorisation_gap_dup_minus_dedup", per["duplicated"]["memorisation_gap"],
        per["deduped"]["memorisation_gap"], margin=c.min_memorisation_gap, higher_is_better=False)
    heldout = Finding.compare(
        f"deduplication lowers clean held-out loss at equal compute (duplicated minus deduped arm, "
        f"nats/byte, paired by seed, {n} seeds; Lee et al. 2021)", "heldout_loss_dup_minus_dedup",
        per["duplicated"]["heldout_loss"], per["deduped"]["heldout_loss"],
        margin=c.min_dedup_heldout_gain)
    filtered = Finding.compare(
        f"quality filtering does not raise clean held-out loss by more than "
        f"{c.max_filtered_heldout_excess} nats/byte at equal compute (filtered minus deduped arm, "
        f"paired by seed, {n} seeds)", "heldout_loss_filtered_minus_dedup",
        per["filtered"]["heldout_loss"], per["deduped"]["heldout_loss"],
        margin=-c.max_filtered_heldout_excess, higher_is_better=False)
    findings = [decontam, memorised, heldout, filtered]
    lines = []
    for f, higher in ((memorised, False), (heldout, True), (filtered, False)):
        lo, hi = interval(f)
        mde = min_detectable_effect(f, higher)
        metrics[f.metric] = f.value
        metrics[f"{f.metric}.se"] = f.se
        metrics[f"{f.metric}.ci95_low"] = lo
        metrics[f"{f.metric}.ci95_high"] = hi
        metrics[f"{f.metric}.min_detectable_effect"] = mde
        verdict = "pass" if f.passed else "inconclusive or against: FAIL"
        lines.append(f"{f.metric}: {f.value:+.4f} (SE {f.se:.4f}, 95% t interval [{lo:+.4f}, {hi:+.4f}], "
                     f"n={f.n}) vs bound {f.threshold:+.4f}: {verdict}; minimum detectable effect "
                     f"(80% power) {mde:+.4f}")
    metrics["planted_exact_dup_minus_dedup"] = (metrics["duplicated.planted_exact"]
                                                - metrics["deduped.planted_exact"])

    series = {f"{name}_heldout_loss": pts for name, pts in curves.items()}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    x = np.arange(len(arms))
    for ax, key, label in ((axes[0], "heldout_loss", "clean held-out loss (nats/byte)"),
                           (axes[1], "memorisation_gap", "planted minus control passage loss")):
        for i, name in enumerate(arms):
            values = per[name][key]
            ax.bar(i, np.mean(values), color=["tab:blue", "tab:red", "tab:green"][i], alpha=0.6)
            ax.scatter([i] * len(values), values, color="k", s=10, zorder=3)
        ax.set_xticks(x, list(arms))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"Equal budget ({b.steps} steps, ~{cfg.epochs:g} epochs of the deduped subset, "
                 f"{n} seeds; dots: seeds)")
    fig.tight_layout()
    fig2, ax2 = plt.subplots(figsize=(6, 3.8))
    for name, pts in curves.items():
        ax2.plot([s * b.tokens_per_step for s, _ in pts], [v for _, v in pts], marker=".", label=name)
    ax2.set_xlabel("training tokens (bytes) seen")
    ax2.set_ylabel("clean held-out loss (nats/byte)")
    ax2.set_title(f"Held-out learning curves (seed {cfg.seeds[0]})")
    ax2.legend()
    ax2.grid(alpha=0.3)

    table = "\n".join(
        f"{name:>10}: bytes {metrics[f'{name}.train_bytes']:9.0f}  epochs {metrics[f'{name}.epochs']:5.2f}"
        f"  held-out loss " + " ".join(f"{v:.4f}" for v in per[name]["heldout_loss"])
        + "  memorisation gap " + " ".join(f"{v:+.4f}" for v in per[name]["memorisation_gap"])
        + "  exact continuation (planted/control) "
        + f"{metrics[f'{name}.planted_exact']:.3f}/{metrics[f'{name}.control_exact']:.3f}"
        for name in arms)
    return [ItemResult(
        item=ITEMS[0],
        metrics=metrics,
        series=series,
        figures={"heldout_and_memorisation.png": fig, "heldout_curves.png": fig2},
        texts={"results.txt": table + "\n\n" + "\n".join(lines) + "\n"},
        findings=findings,
    )]
