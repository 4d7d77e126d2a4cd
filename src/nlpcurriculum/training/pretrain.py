"""Pretraining the base language model on a token stream, resumably, and scoring it on a split.

This is the pipeline's spine (stages ``pretrain`` and ``evaluate``): a decoder-only
:class:`~nlpcurriculum.models.MiniFormer` learns next-token prediction on the ``train`` stream
written by the ``tokenizer`` stage (GPT recipe: Radford et al. 2019; nanoGPT's training loop)
with the :class:`~nlpcurriculum.training.Trainer` (AdamW, warmup + cosine, clipping).

Resume: the trainer checkpoints to the output file every ``train.checkpoint_every`` updates
(atomically). When :func:`pretrain` finds a checkpoint there that stopped short of
``train.max_steps`` and was made with the same model config, the same trainer config and the same
training tokens (a SHA-256 fingerprint stored in the checkpoint), it continues from it: the losses
after the resume are the ones the uninterrupted run would have produced (the trainer restores
weights, AdamW moments, schedule, RNGs and the batcher's position). A finished checkpoint, or one
from other settings or data, is not resumed: training starts again from step 0.

Scoring (:func:`evaluate_lm`) covers a whole split: non-overlapping windows of ``T`` tokens in
stream order, every token predicted once from up to ``T - 1`` tokens of context (the trailing
``< T`` tokens are left out). Perplexity is ``exp(mean loss)``; bits per byte divides the total
loss in bits by the split's UTF-8 bytes, which, unlike perplexity, compares models with different
tokenizers (:func:`bits_per_byte`).

Control (:func:`count_control`): the trained model against count models fitted on the training
stream (:mod:`nlpcurriculum.models.count_ngram`): an add-k bigram, which knows the previous token
only, and a unigram, which knows no context. They score exactly the tokens :func:`evaluate_lm`
scores (the same windows of the validation split, the same per-token cross-entropy in nats), so
the gap is what the model's longer context and learned features buy. Their ``k`` is chosen on a
held-out tail of the training stream, never on the split they are compared on.

Dimension legend: N stream length, B batch, T sequence length (``model.max_seq_len``).

Left out: sliding-window (strided) evaluation with longer context per token, document-aware
masking, mixed precision and data parallelism.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nlpcurriculum.models.count_ngram import tune_add_k
from nlpcurriculum.models.miniformer import MiniFormer, MiniFormerConfig, build_model
from nlpcurriculum.results import Finding
from nlpcurriculum.training.checkpoint import CheckpointError, load_checkpoint
from nlpcurriculum.training.data import BATCH_MODES, TokenBatcher
from nlpcurriculum.training.trainer import TrainResult, Trainer, TrainerConfig, seed_everything

__all__ = [
    "CountControl",
    "ControlConfig",
    "LMScore",
    "PretrainChecks",
    "PretrainConfig",
    "PretrainOutcome",
    "bits_per_byte",
    "count_control",
    "eval_windows",
    "evaluate_lm",
    "fingerprint",
    "pretrain",
    "resume_step",
    "window_losses",
]

# trainer knobs that change how a run is displayed, not what it computes
_COSMETIC = ("progress",)
_TIMINGS = ("tokens_per_s",)  # history entries that differ between identical runs


@dataclass
class ControlConfig:
    """How the count-model control is fitted and compared (params ``pretrain.control``).

    Attributes:
        k_grid: add-k pseudo-counts tried for each count model.
        tuning_fraction: the training stream's tail held out to choose ``k``.
        blocks: the validation windows are cut into this many contiguous blocks; the paired
            comparison runs over the blocks' mean losses (n = blocks: the spread is over
            evaluation text, for the one trained model).
    """

    k_grid: list[float] = field(default_factory=lambda: [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0])
    tuning_fraction: float = 0.1
    blocks: int = 10

    def __post_init__(self) -> None:
        if not self.k_grid or min(self.k_grid) <= 0:
            raise ValueError(f"k_grid must hold positive values, got {self.k_grid}")
        if not 0 < self.tuning_fraction < 1:
            raise ValueError(f"tuning_fraction must be in (0, 1), got {self.tuning_fraction}")
        if self.blocks < 2:
            raise ValueError(f"blocks must be >= 2 (a standard error needs two), got {self.blocks}")


@dataclass
class PretrainChecks:
    """Bounds of the pretrain stage's findings (params ``pretrain.checks``), in nats per token.

    Attributes:
        min_gain_over_bigram: the model's validation loss must lie this far below the count
            bigram's (mean over blocks, beyond two standard errors).
        min_gain_over_unigram: the same against the unigram.
    """

    min_gain_over_bigram: float = 0.25
    min_gain_over_unigram: float = 1.0


@dataclass
class PretrainConfig:
    """The ``pretrain`` section of params/pipeline.yaml.

    Attributes:
        model: the architecture (:class:`MiniFormerConfig` field names). ``vocab_size`` is not a
            knob here: it comes from the token folder's ``meta.json``; ``max_seq_len`` is also
            the training window length T.
        train: the optimizer, schedule and loop (:class:`TrainerConfig` field names).
        batch_mode: ``"random"`` windows (nanoGPT) or ``"sequential"`` epochs.
        resume: continue an interrupted run of the same settings from its checkpoint.
        control: the count-model control (:func:`count_control`); computed after training,
            it changes nothing the model learns.
        checks: the bounds of the stage's findings.
    """

    model: MiniFormerConfig = field(default_factory=MiniFormerConfig)
    train: TrainerConfig = field(default_factory=TrainerConfig)
    batch_mode: str = "random"
    resume: bool = True
    control: ControlConfig = field(default_factory=ControlConfig)
    checks: PretrainChecks = field(default_factory=PretrainChecks)

    def __post_init__(self) -> None:
        if self.batch_mode not in BATCH_MODES:
            raise ValueError(f"batch_mode must be one of {BATCH_MODES}, got {self.batch_mode!r}")

    def with_vocab(self, vocab_size: int) -> MiniFormerConfig:
        """The model config with the tokenizer's vocabulary size filled in."""
        return dataclasses.replace(self.model, vocab_size=int(vocab_size))


@dataclass
class PretrainOutcome:
    """What :func:`pretrain` returns.

    Attributes:
        model: the trained model (eval mode).
        result: the trainer's history (across a resume; ``tokens_per_s`` only for the updates
            of this process), steps, final val loss, tokens seen.
        resumed_from: the update a resumed run continued from; 0 for a fresh run.
    """

    model: MiniFormer
    result: TrainResult
    resumed_from: int = 0


def fingerprint(tokens: np.ndarray) -> str:
    """SHA-256 of a token stream's bytes (first 16 hex digits): which data a checkpoint saw."""
    return hashlib.sha256(np.ascontiguousarray(tokens).tobytes()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))  # tuples -> lists, for comparison


def resume_step(
    path: str | Path, model_cfg: MiniFormerConfig, train_cfg: TrainerConfig, data_fingerprint: str
) -> int:
    """The update to resume from at ``path``, or 0 to start afresh.

    Resumes only an unfinished checkpoint (``0 < step < max_steps``) of the same model config,
    trainer config (display knobs aside) and training data.

    Raises:
        CheckpointError: a file is there but cannot be read (truncated, corrupt, another format):
            the caller must not silently overwrite it.
    """
    path = Path(path)
    if not path.exists():
        return 0
    try:
        payload = load_checkpoint(path)
    except CheckpointError as err:
        raise CheckpointError(f"{err} (pretrain would resume from it; delete it to train from "
                              "scratch)") from err

    def same_trainer(saved: dict | None) -> bool:
        mine = {k: v for k, v in dataclasses.asdict(train_cfg).items() if k not in _COSMETIC}
        theirs = {k: v for k, v in (saved or {}).items() if k not in _COSMETIC}
        return _plain(mine) == _plain(theirs)

    same = (
        _plain(payload.get("model_config")) == _plain(dataclasses.asdict(model_cfg))
        and same_trainer(payload.get("trainer_config"))
        and payload["extra"].get("data_fingerprint") == data_fingerprint
    )
    step = int(payload["step"])
    return step if same and 0 < step < train_cfg.max_steps else 0


def pretrain(
    cfg: PretrainConfig,
    train_tokens: np.ndarray,
    val_tokens: np.ndarray | None,
    vocab_size: int,
    checkpoint_path: str | Path,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> PretrainOutcome:
    """Train a causal LM on ``train_tokens``, checkpointing to (and resuming from) a file.

    Args:
        cfg: model, trainer and batching knobs.
        train_tokens: ``(N,)`` ids of the training stream.
        val_tokens: ``(N_val,)`` ids scored every ``train.eval_every`` updates (or ``None``).
        vocab_size: rows of the embedding table (the tokenizer's vocabulary size).
        checkpoint_path: where the trainer writes its checkpoints; the final one is the model.
        on_step: ``on_step(step, metrics)`` after every update (progress, live logging).

    Returns:
        A :class:`PretrainOutcome`; the checkpoint at ``checkpoint_path`` holds the final state.

    Raises:
        CheckpointError: an unreadable file sits at ``checkpoint_path`` while ``cfg.resume``.
    """
    model_cfg = cfg.with_vocab(vocab_size)
    T = model_cfg.max_seq_len
    data_fp = fingerprint(train_tokens)
    start = resume_step(checkpoint_path, model_cfg, cfg.train, data_fp) if cfg.resume else 0

    seed_everything(cfg.train.seed)  # the model's initialisation is part of the run
    model = build_model(model_cfg)
    train = TokenBatcher(torch.from_numpy(np.asarray(train_tokens, dtype=np.int64)), T,
                         mode=cfg.batch_mode, seed=cfg.train.seed)
    val = None
    if val_tokens is not None:
        val = TokenBatcher(torch.from_numpy(np.asarray(val_tokens, dtype=np.int64)), T,
                           mode="sequential")
    trainer = Trainer(model, cfg.train, train, val, checkpoint_path=checkpoint_path,
                      on_step=on_step, extra={"data_fingerprint": data_fp})
    if start:
        trainer.load(checkpoint_path)
    result = trainer.train()
    # The final checkpoint must be byte-identical when the run is repeated (a rerun or a Prefect
    # run leaves the same dvc.lock): drop the timings from the history it stores.
    trainer.history = [{k: v for k, v in h.items() if k not in _TIMINGS} for h in trainer.history]
    trainer.save(checkpoint_path)
    return PretrainOutcome(model.eval(), result, start)


@dataclass
class LMScore:
    """A language model's score on one token stream.

    Attributes:
        loss: mean next-token cross-entropy in nats per token.
        perplexity: ``exp(loss)``.
        n_tokens: predicted tokens counted.
    """

    loss: float
    perplexity: float
    n_tokens: int


@torch.no_grad()
def evaluate_lm(model: nn.Module, tokens: np.ndarray, seq_len: int, batch_size: int = 32) -> LMScore:
    """Mean loss over every non-overlapping ``seq_len`` window of ``tokens``, in stream order.

    Windows all have ``seq_len`` targets, so the mean of the per-batch mean losses weighted by
    batch size is the mean over all predicted tokens.
    """
    batcher = TokenBatcher(torch.from_numpy(np.asarray(tokens, dtype=np.int64)), seq_len,
                           mode="sequential")
    was_training = model.training
    model.eval()
    total, windows = 0.0, 0
    for x, y in batcher.eval_batches(batch_size, math.ceil(batcher.n_windows / batch_size)):
        total += float(model(x, targets=y).loss) * len(x)  # x, y: (B, T)
        windows += len(x)
    model.train(was_training)
    loss = total / windows
    return LMScore(loss, math.exp(loss), windows * seq_len)


def bits_per_byte(loss: float, tokens_per_byte: float) -> float:
    """Nats per token -> bits per UTF-8 byte: ``loss / ln 2 * tokens_per_byte``.

    Example: loss 3.0 nats/token with 0.25 tokens/byte (4 bytes per token) is
    ``3.0 / 0.693 * 0.25 = 1.08`` bits per byte.
    """
    if tokens_per_byte <= 0:
        raise ValueError(f"tokens_per_byte must be > 0, got {tokens_per_byte}")
    return loss / math.log(2) * tokens_per_byte



def eval_windows(tokens: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The windows :func:`evaluate_lm` scores: non-overlapping, in stream order, as ``(x, y)``.

    Returns:
        ``x, y``: ``(n_windows, T)`` int64 each, ``y`` being ``x`` shifted by one token.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    n = (len(tokens) - 1) // seq_len
    if n < 1:
        raise ValueError(f"a stream of {len(tokens)} tokens holds no window of {seq_len} + 1")
    starts = np.arange(n)[:, None] * seq_len  # (n, 1)
    chunk = tokens[starts + np.arange(seq_len + 1)[None, :]]  # (n, T+1)
    return chunk[:, :-1], chunk[:, 1:]


@torch.no_grad()
def window_losses(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Mean next-token cross-entropy (nats) of each window: ``(n, T), (n, T) -> (n,)``."""
    was_training = model.training
    model.eval()
    out = []
    for lo in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[lo:lo + batch_size])  # (B, T)
        yb = torch.from_numpy(y[lo:lo + batch_size])
        logits = model(xb).logits  # (B, T, V)
        nll = nn.functional.cross_entropy(logits.transpose(1, 2), yb, reduction="none")  # (B, T)
        out.append(nll.double().mean(dim=1).numpy())
    model.train(was_training)
    return np.concatenate(out)


@dataclass
class CountControl:
    """The trained model and the count models on the same validation tokens.

    Attributes:
        losses: ``{"model" | "bigram" | "unigram": mean NLL per token, nats}`` over all windows.
        block_losses: the same per contiguous block of windows, ``(blocks,)`` each.
        k: the add-k pseudo-count chosen for each count model.
        k_losses: the tuning curve of each count model, ``{k: loss on the training tail}``.
        n_tokens: validation tokens scored.
        findings: the model beats the bigram, then the unigram, by the checks' margins.
    """

    losses: dict[str, float]
    block_losses: dict[str, np.ndarray]
    k: dict[str, float]
    k_losses: dict[str, dict[float, float]]
    n_tokens: int
    findings: list[Finding]


def count_control(
    model: nn.Module,
    train_tokens: np.ndarray,
    val_tokens: np.ndarray,
    vocab_size: int,
    seq_len: int,
    control: ControlConfig,
    checks: PretrainChecks,
    batch_size: int = 32,
) -> CountControl:
    """Score ``model``, an add-k bigram and an add-k unigram on the same validation windows.

    The count models are fitted on ``train_tokens`` (``k`` tuned on its tail,
    :func:`~nlpcurriculum.models.count_ngram.tune_add_k`) and predict each target ``y[t]`` from
    ``x[t]`` (the bigram) or from nothing (the unigram); the model predicts it from ``x[:t+1]``.
    The windows are cut into ``control.blocks`` contiguous blocks, and each finding is a paired
    comparison (:meth:`Finding.compare`) of the model's and the count model's block losses.

    What fails them: a model that learned only bigram statistics (or less: an untrained model
    sits at ``log V``, above both controls) ties or loses; a broken training loop, a wrong
    target shift or a model scored on its training data but not on new text would show here.
    """
    x, y = eval_windows(val_tokens, seq_len)  # (n, T) each
    n_blocks = min(control.blocks, len(x))
    if n_blocks < 2:
        raise ValueError(f"the validation split holds {len(x)} window(s) of {seq_len} tokens; "
                         "the control needs at least 2")
    per_window = {"model": window_losses(model, x, y, batch_size)}
    k, k_losses = {}, {}
    for name, order in (("bigram", 2), ("unigram", 1)):
        counts, k_losses[name] = tune_add_k(train_tokens, order, vocab_size, control.k_grid,
                                            control.tuning_fraction)
        k[name] = counts.k
        per_window[name] = counts.nll(x, y).mean(axis=1)  # (n,)
    blocks = np.array_split(np.arange(len(x)), n_blocks)  # contiguous runs of windows
    block_losses = {name: np.array([w[b].mean() for b in blocks]) for name, w in per_window.items()}
    losses = {name: float(w.mean()) for name, w in per_window.items()}
    findings = []
    for name, context, margin in (
        ("bigram", "the previous token", checks.min_gain_over_bigram),
        ("unigram", "no context", checks.min_gain_over_unigram),
    ):
        findings.append(Finding.compare(
            f"the base LM's validation loss is below the add-k count {name}'s ({context}; "
            f"k = {k[name]:g}, fitted on the train split) on the same tokens by more than "
            f"{margin:g} nats/token (model - {name}, paired over {n_blocks} blocks of windows)",
            f"model_minus_{name}_loss", block_losses["model"], block_losses[name],
            margin=margin, higher_is_better=False))
    return CountControl(losses, block_losses, k, k_losses, int(x.size), findings)
