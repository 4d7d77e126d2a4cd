"""Full-parameter fine-tuning of a pretrained LM on a user's small text dataset.

Fine-tuning (Howard & Ruder 2018, arXiv:1801.06146; GPT's "supervised fine-tuning" step, Radford
et al. 2018) continues training every weight of a pretrained language model on new text with the
same next-token loss, usually at a lower learning rate and for few steps. This module holds what
is particular to it; the optimisation is the pretraining :class:`~nlpcurriculum.training.Trainer`.

* :func:`load_text_dataset`: a user's file of texts, JSON Lines (one object per line) or CSV (a
  header row), with the text in the column ``text_field``. Every problem a user can cause fails
  with :class:`CustomDataError` naming the file, the line or row and the fix: no file, an
  unknown extension, a line that is not JSON, a missing column (the columns found are listed),
  a value that is not a string, no text at all.
* :func:`split_texts`: a seeded split of the documents into train and validation sets
  (whole documents, so no document is in both).
* :func:`fine_tune`: continue training a copy of a model on a token stream for a fixed budget.

Worked example (tested): a JSONL file ``{"text": "a"}`` / ``{"body": "b"}`` with
``text_field="text"`` fails on line 2: ``line 2 has no 'text' field (its fields: body)``.

Left out: parameter-efficient fine-tuning (LoRA, prefix tuning, adapters: their own modules),
early stopping, mixing in pretraining data against forgetting (replay: continual learning).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nlpcurriculum.data.errors import ContractError
from nlpcurriculum.training.checkpoint import save_checkpoint
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.trainer import Trainer, TrainerConfig, TrainResult, seed_everything

__all__ = ["FORMATS", "CustomDataError", "fine_tune", "load_text_dataset", "save_tuned", "split_texts"]

#: File extensions :func:`load_text_dataset` reads.
FORMATS = (".jsonl", ".csv")


class CustomDataError(ContractError):
    """A user's dataset cannot be used; the message names the file, the place and the fix."""


def load_text_dataset(path: str | Path, text_field: str = "text") -> list[str]:
    """The texts of a JSONL or CSV file, in file order (blank texts dropped).

    Args:
        path: a ``.jsonl`` file (one JSON object per line; blank lines skipped) or a ``.csv``
            file (a header row naming the columns), UTF-8.
        text_field: the field (JSONL) or column (CSV) holding each document's text.

    Returns:
        The non-blank texts (at least one).

    Raises:
        CustomDataError: the file is missing or of another format, a line is not a JSON object,
            a record lacks ``text_field`` or holds a non-string there, or no text is left.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise CustomDataError(f"{path}: the custom dataset {what}: set finetune.data to a "
                              f"{' or '.join(FORMATS)} file")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise CustomDataError(f"{path}: unknown format {suffix or '(no extension)'!r}: the custom "
                              f"dataset must be one of {', '.join(FORMATS)}")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CustomDataError(f"{path}: not UTF-8 text (byte {err.start}): save it as UTF-8") from err
    records = _jsonl_records(path, raw) if suffix == ".jsonl" else _csv_records(path, raw)
    texts = []
    for where, record in records:
        if text_field not in record:
            fields = ", ".join(map(str, record)) or "none"
            raise CustomDataError(f"{path}: {where} has no {text_field!r} field (its fields: "
                                  f"{fields}); set finetune.text_field to the field holding the text")
        value = record[text_field]
        if not isinstance(value, str):
            raise CustomDataError(f"{path}: {where}: {text_field!r} is a {type(value).__name__}, "
                                  "not a string")
        if value.strip():
            texts.append(value)
    if not texts:
        raise CustomDataError(f"{path}: no text: {len(records)} record(s), none with a non-blank "
                              f"{text_field!r}")
    return texts


def _jsonl_records(path: Path, raw: str) -> list[tuple[str, dict]]:
    out = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CustomDataError(f"{path}: line {number} is not JSON ({err.msg}): write one "
                                  "JSON object per line") from err
        if not isinstance(record, dict):
            raise CustomDataError(f"{path}: line {number} is a JSON {type(record).__name__}, "
                                  "not an object")
        out.append((f"line {number}", record))
    return out


def _csv_records(path: Path, raw: str) -> list[tuple[str, dict]]:
    reader = csv.DictReader(io.StringIO(raw, newline=""))  # quoted newlines stay in their field
    if not reader.fieldnames:
        raise CustomDataError(f"{path}: empty CSV file (no header row)")
    # the header is record 1, so data records are numbered from 2 (as a spreadsheet shows them
    # when no field spans lines)
    return [(f"row {number}", {k: v for k, v in row.items() if k is not None})
            for number, row in enumerate(reader, start=2)]


def split_texts(texts: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded split of whole documents: ``(train, val)``, each in file order.

    ``round(val_fraction * n)`` documents (at least one) go to validation, at least one stays
    for training.

    Raises:
        CustomDataError: fewer than two documents.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(texts)
    if n < 2:
        raise CustomDataError(f"the custom dataset holds {n} document(s); a train and a validation "
                              "split need at least 2")
    n_val = min(n - 1, max(1, round(val_fraction * n)))
    val_idx = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    train = [t for i, t in enumerate(texts) if i not in val_idx]
    val = [t for i, t in enumerate(texts) if i in val_idx]
    return train, val


def fine_tune(
    model: nn.Module,
    tokens: np.ndarray,
    cfg: TrainerConfig,
    val_tokens: np.ndarray | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[nn.Module, TrainResult]:
    """Train a deep copy of ``model`` (every parameter) on ``tokens`` for ``cfg.max_steps``.

    The windows are drawn at random (``cfg.seed`` seeds their order) with the model's
    ``max_seq_len``; the copy leaves the caller's model untouched, so one base model serves
    several seeds and arms.

    Args:
        model: the pretrained model (a :class:`~nlpcurriculum.models.MiniFormer`).
        tokens: ``(N,)`` ids of the training stream (documents ended by the end-of-text id).
        cfg: optimizer, schedule, budget and seed.
        val_tokens: ``(N_val,)`` ids evaluated every ``cfg.eval_every`` updates (optional).
        on_step: ``on_step(step, metrics)`` after every update.

    Returns:
        ``(tuned copy in eval mode, the trainer's result)``.
    """
    T = model.config.max_seq_len
    if len(tokens) < T + 2:
        raise CustomDataError(f"the custom training split holds {len(tokens)} tokens, fewer than "
                              f"one window of {T} + 1: give more text or lower finetune.val_fraction")
    tuned = copy.deepcopy(model).train()
    train = TokenBatcher(torch.from_numpy(np.asarray(tokens, dtype=np.int64)), T, mode="random",
                         seed=cfg.seed)
    val = None
    if val_tokens is not None and len(val_tokens) > T:
        val = TokenBatcher(torch.from_numpy(np.asarray(val_tokens, dtype=np.int64)), T,
                           mode="sequential")
    result = Trainer(tuned, cfg, train, val, on_step=on_step).train()
    return tuned.eval(), result


def save_tuned(path: str | Path, model: nn.Module, train: TrainerConfig,
               history: list[dict[str, float]], extra: dict[str, Any] | None = None) -> Path:
    """Save a tuned model as a trainer checkpoint that ``models.load_model`` rebuilds.

    The weights, the model config, the trainer config it was tuned with, its step count and
    history (no clock readings), and ``extra``; no optimizer state. The global RNGs are seeded
    with ``train.seed`` first, because the checkpoint stores their state: a rerun writes the
    same bytes.
    """
    seed_everything(train.seed)
    return save_checkpoint(path, model=model, step=train.max_steps,
                           model_config=dataclasses.asdict(model.config),
                           trainer_config=dataclasses.asdict(train),
                           extra={"history": history, **(extra or {})})
