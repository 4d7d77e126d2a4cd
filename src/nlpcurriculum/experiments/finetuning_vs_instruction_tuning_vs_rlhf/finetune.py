"""Experiment of stage ``finetune``: item ``finetuning-vs-instruction-tuning-vs-rlhf/1``.

"Fine-tune on a small custom dataset": the pipeline's base LM (``models/base``, pretrained on the
corpus) is fine-tuned, every parameter, on a user's small text dataset (a JSONL/CSV path in
params; the shipped default is ``data/custom/release_notes.jsonl``, release notes of made-up
Python packages, a genre the corpus lacks). Three arms on the same custom train / validation split
(:func:`~nlpcurriculum.adaptation.finetune.split_texts`, whole documents), tokenized with the
pipeline tokenizer:

1. **base**: the pretrained model as it is (no training on the custom data);
2. **finetuned**: the base model trained on the custom train split for ``train.max_steps``
   updates (:func:`~nlpcurriculum.adaptation.finetune.fine_tune`, the pipeline's ``Trainer``);
3. **scratch** (the control): the same architecture, freshly initialised, trained on the same
   split for the same budget (steps x batch x window) with its own learning rate
   ``scratch_lr`` (a from-scratch run wants a pretraining-sized rate; the fine-tuning rate
   would handicap it).

Each trained arm runs on every seed in ``seeds`` (the seed sets the order of the training
windows, and the scratch arm's initialisation); the comparisons are paired by seed. Measured on
the custom validation split (every window, :func:`~nlpcurriculum.training.pretrain.evaluate_lm`)
and on the pipeline's own validation split (``data/processed/tokens/val.npy``) for forgetting.

Findings (:meth:`~nlpcurriculum.results.Finding.compare`, >= 2 standard errors past the bound in
``checks``):

- fine-tuning lowers the custom validation loss below the base model's by ``min_gain_over_base``
  (fails for a broken loop that does not update, or one that only overfits the train split);
- the fine-tuned model beats the from-scratch control by ``min_gain_over_scratch``: pretraining
  helps at an equal budget (fails when the pretrained weights carry nothing useful to this text,
  e.g. a base model that is really untrained, as the tests check);
- fine-tuning raises the loss on the pipeline's validation split by more than ``min_forgetting``:
  forgetting, measured (fails when fine-tuning barely moves the weights, or when the custom text
  is close enough to the corpus that it helps there too).

Left out: LoRA and other parameter-efficient methods (the "LoRA & PEFT" section), replay or
regularisation against forgetting (the "Continual Learning" section), early stopping.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from nlpcurriculum.experiments.harness import curve, map_seeds, plot_curves, torch_threads
from nlpcurriculum.results import Finding, ItemResult
from nlpcurriculum.training.trainer import TrainerConfig

__all__ = ["ITEMS", "FinetuneChecks", "FinetuneConfig", "Inputs", "Outputs", "run"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("finetuning-vs-instruction-tuning-vs-rlhf/1",)

#: The arms, the reference first.
ARMS = ("base", "finetuned", "scratch")


@dataclass
class FinetuneChecks:
    """Bounds of the findings (params ``finetune.checks``), nats per token.

    Attributes:
        min_gain_over_base: custom validation loss, base minus fine-tuned, at least.
        min_gain_over_scratch: custom validation loss, scratch minus fine-tuned, at least.
        min_forgetting: pipeline validation loss, fine-tuned minus base, at least.
    """

    min_gain_over_base: float = 0.3
    min_gain_over_scratch: float = 0.3
    min_forgetting: float = 0.02


@dataclass
class FinetuneConfig:
    """Knobs of :func:`run` (the ``finetune`` params section).

    Attributes:
        data: the custom dataset, a ``.jsonl`` or ``.csv`` file (DVC tracks it as a dep).
        text_field: the field / column holding each document's text.
        val_fraction: documents held out to validate on.
        split_seed: seeds which documents are held out.
        train: the fine-tuning run (TrainerConfig fields); ``seed`` is replaced by each of
            ``seeds``.
        scratch_lr: the control's peak learning rate (the rest of ``train`` is shared).
        seeds: training seeds (window order; the control's initialisation), >= 2 distinct.
        workers: seeds trained side by side in processes (one per core).
        num_threads: torch threads per worker.
        eval_batch_size: windows per forward pass when scoring whole splits.
        checks: the findings' bounds.
    """

    data: str = "data/custom/release_notes.jsonl"
    text_field: str = "text"
    val_fraction: float = 0.2
    split_seed: int = 0
    train: TrainerConfig = field(default_factory=TrainerConfig)
    scratch_lr: float = 2e-3
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    workers: int = 2
    num_threads: int = 1
    eval_batch_size: int = 32
    checks: FinetuneChecks = field(default_factory=FinetuneChecks)

    def __post_init__(self) -> None:
        if len(set(self.seeds)) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be at least 2 distinct seeds, got {self.seeds}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        for name in ("workers", "num_threads", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.scratch_lr <= 0:
            raise ValueError(f"scratch_lr must be > 0, got {self.scratch_lr}")


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        base_config: the base model's ``MiniFormerConfig`` as a dict (``dataclasses.asdict``).
        base_state: the base model's ``state_dict`` (tensors; sent to the worker processes).
        train_tokens: ``(N,)`` ids of the custom train split (documents ended by eos).
        val_tokens: ``(N_val,)`` ids of the custom validation split.
        pipeline_val_tokens: ``(M,)`` ids of the pipeline's own validation split (forgetting).
        n_documents: ``{"train": .., "val": ..}`` documents in the custom splits.
    """

    base_config: dict[str, Any]
    base_state: dict[str, Any]
    train_tokens: np.ndarray
    val_tokens: np.ndarray
    pipeline_val_tokens: np.ndarray
    n_documents: dict[str, int]


@dataclass
class Outputs:
    """What :func:`run` builds for the stage to save: the fine-tuned model of the first seed.

    Attributes:
        state: its ``state_dict``.
        config: its ``MiniFormerConfig`` as a dict (the base model's).
        train: the TrainerConfig it was trained with.
        history: its training history (no clock readings).
    """

    state: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    train: TrainerConfig | None = None
    history: list[dict[str, float]] = field(default_factory=list)


def _model(config: dict[str, Any], state: dict[str, Any] | None, seed: int):
    from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
    from nlpcurriculum.training.trainer import seed_everything

    seed_everything(seed)
    model = build_model(MiniFormerConfig.from_dict(config))
    if state is not None:
        model.load_state_dict(state)
    return model


def _scores(model, inputs: Inputs, batch_size: int) -> dict[str, float]:
    from nlpcurriculum.training.pretrain import evaluate_lm

    T = model.config.max_seq_len
    return {"custom_val_loss": evaluate_lm(model, inputs.val_tokens, T, batch_size).loss,
            "pipeline_val_loss": evaluate_lm(model, inputs.pipeline_val_tokens, T, batch_size).loss}


def _job(job: int, cfg: FinetuneConfig, inputs: Inputs, jobs: list[tuple[str, int]],
         keep: tuple[str, int]) -> dict[str, Any]:
    """One arm on one seed, in a worker: train (unless ``base``) and score both splits."""
    from nlpcurriculum.adaptation.finetune import fine_tune

    arm, seed = jobs[job]
    with torch_threads(cfg.num_threads):
        if arm == "base":
            model = _model(inputs.base_config, inputs.base_state, seed)
            out: dict[str, Any] = {"history": []}
        else:
            state = inputs.base_state if arm == "finetuned" else None
            lr = cfg.train.lr if arm == "finetuned" else cfg.scratch_lr
            train = dataclasses.replace(cfg.train, seed=seed, lr=lr, progress=False)
            start = _model(inputs.base_config, state, seed)
            model, result = fine_tune(start, inputs.train_tokens, train, inputs.val_tokens)
            history = [{k: v for k, v in h.items() if k != "tokens_per_s"} for h in result.history]
            out = {"history": history}
            if (arm, seed) == keep:
                out["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
                out["train"] = train
        out |= _scores(model, inputs, cfg.eval_batch_size)
    return out


def _bars(means: dict[str, dict[str, float]], ses: dict[str, dict[str, float]]) -> Figure:
    fig = Figure(figsize=(8.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, split, title in zip(axes, ("custom_val_loss", "pipeline_val_loss"),
                                ("custom validation split", "pipeline validation split (forgetting)")):
        ys = [means[a][split] for a in ARMS]
        errs = [ses[a][split] for a in ARMS]
        ax.bar(ARMS, ys, yerr=errs, capsize=4, color=["grey", "tab:blue", "tab:orange"])
        for i, y in enumerate(ys):
            ax.annotate(f"{y:.2f}", (i, y), ha="center", va="bottom", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("loss (nats / token)")
    return fig


def run(cfg: FinetuneConfig, inputs: Inputs, outputs: Outputs | None = None,
        log: Callable[[str], None] = print) -> list[ItemResult]:
    """Fine-tune, train the control, score every arm; fills ``outputs`` with the first seed's model."""
    keep = ("finetuned", cfg.seeds[0])
    jobs = [("base", cfg.seeds[0])] + [(arm, s) for s in cfg.seeds for arm in ARMS[1:]]
    log(f"finetune: {len(jobs) - 1} runs of {cfg.train.max_steps} steps ({len(cfg.seeds)} seeds x "
        f"finetuned, scratch) on {len(inputs.train_tokens):,} custom tokens, {cfg.workers} workers")
    done = map_seeds(_job, list(range(len(jobs))), cfg.workers, cfg, inputs, jobs, keep)
    by = dict(zip(jobs, done))
    base = by[("base", cfg.seeds[0])]

    per: dict[str, dict[str, np.ndarray]] = {}  # arm -> split -> (seeds,)
    for arm in ARMS:
        per[arm] = {split: np.array([(base if arm == "base" else by[(arm, s)])[split]
                                     for s in cfg.seeds])
                    for split in ("custom_val_loss", "pipeline_val_loss")}
    n = len(cfg.seeds)
    means = {a: {k: float(v.mean()) for k, v in d.items()} for a, d in per.items()}
    ses = {a: {k: float(v.std(ddof=1) / math.sqrt(n)) for k, v in d.items()} for a, d in per.items()}

    metrics: dict[str, float] = {
        "custom.train_documents": inputs.n_documents["train"],
        "custom.val_documents": inputs.n_documents["val"],
        "custom.train_tokens": len(inputs.train_tokens),
        "custom.val_tokens": len(inputs.val_tokens),
        "pipeline.val_tokens": len(inputs.pipeline_val_tokens),
        "tokens_per_run": cfg.train.max_steps * cfg.train.batch_size * cfg.train.grad_accum
        * int(inputs.base_config["max_seq_len"]),
    }
    for arm in ARMS:
        for split in ("custom_val_loss", "pipeline_val_loss"):
            metrics[f"{arm}.{split}"] = means[arm][split]
            if arm != "base":
                metrics[f"{arm}.{split}.se"] = ses[arm][split]
                for s, v in zip(cfg.seeds, per[arm][split]):
                    metrics[f"{arm}.{split}.seed{s}"] = float(v)
    metrics["custom.epochs_per_run"] = metrics["tokens_per_run"] / max(1, len(inputs.train_tokens))
    metrics["forgetting"] = means["finetuned"]["pipeline_val_loss"] - means["base"]["pipeline_val_loss"]

    c = cfg.checks
    ft, sc, bs = per["finetuned"], per["scratch"], per["base"]
    findings = [
        Finding.compare(
            f"fine-tuning on the custom data lowers its validation loss below the base model's by "
            f"more than {c.min_gain_over_base:g} nats/token (finetuned - base, {n} seeds)",
            "finetuned_minus_base_custom_loss", ft["custom_val_loss"], bs["custom_val_loss"],
            margin=c.min_gain_over_base, higher_is_better=False),
        Finding.compare(
            f"pretraining helps: at an equal budget ({cfg.train.max_steps} steps) the fine-tuned "
            f"base model's custom validation loss is below a from-scratch model's by more than "
            f"{c.min_gain_over_scratch:g} nats/token (finetuned - scratch, paired by seed)",
            "finetuned_minus_scratch_custom_loss", ft["custom_val_loss"], sc["custom_val_loss"],
            margin=c.min_gain_over_scratch, higher_is_better=False),
        Finding.compare(
            f"fine-tuning forgets: the pipeline's validation loss rises above the base model's by "
            f"more than {c.min_forgetting:g} nats/token (finetuned - base, {n} seeds)",
            "forgetting_pipeline_val_loss", ft["pipeline_val_loss"], bs["pipeline_val_loss"],
            margin=c.min_forgetting, higher_is_better=True),
    ]

    curves = {}
    for arm in ARMS[1:]:
        for s in cfg.seeds:
            curves[f"{arm} seed {s}"] = curve(by[(arm, s)]["history"])
    series = {f"{arm}.val_loss.seed{s}": curve(by[(arm, s)]["history"])
              for arm in ARMS[1:] for s in cfg.seeds}
    series |= {f"{arm}.train_loss.seed{s}": curve(by[(arm, s)]["history"], "loss")
               for arm in ARMS[1:] for s in cfg.seeds}
    figures = {
        "val_loss_curves.png": plot_curves(
            curves, "custom validation loss while training (fixed batches)",
            hlines={"base model": means["base"]["custom_val_loss"]}),
        "losses.png": _bars(means, ses),
    }
    rows = [f"{'arm':<10} {'custom val loss':>16} {'pipeline val loss':>18}"]
    for arm in ARMS:
        rows.append(f"{arm:<10} {means[arm]['custom_val_loss']:>10.3f} ± {ses[arm]['custom_val_loss']:.3f} "
                    f"{means[arm]['pipeline_val_loss']:>11.3f} ± {ses[arm]['pipeline_val_loss']:.3f}")
    rows.append(f"forgetting (finetuned - base, pipeline val): {metrics['forgetting']:+.3f} nats/token")
    text = (f"Fine-tuning on {inputs.n_documents['train']} custom documents "
            f"({len(inputs.train_tokens):,} tokens, {metrics['custom.epochs_per_run']:.1f} epochs per run), "
            f"mean ± SE over seeds {cfg.seeds}:\n" + "\n".join(rows) + "\n")

    if outputs is not None:
        kept = by[keep]
        outputs.state, outputs.config = kept["state"], dict(inputs.base_config)
        outputs.train, outputs.history = kept["train"], kept["history"]
    return [ItemResult(ITEMS[0], metrics=metrics, series=series, figures=figures,
                       texts={"finetune.txt": text}, findings=findings)]
