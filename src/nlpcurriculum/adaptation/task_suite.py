"""Word-level classification tasks for the multi-task experiments, generated from seeds.

The texts come from :mod:`nlpcurriculum.data.synthetic.classification` (topic: 5 classes,
sentiment: 2 classes; a fraction ``signal`` of each document's words is drawn from its class's
word list, the rest is neutral filler), every document exactly ``length`` words long. Words map to
ids through one fixed vocabulary (:func:`vocabulary`: every word the generator can emit, sorted),
so every task shares the encoder's embedding table.

:func:`permuted_task` builds the **conflict** of the negative-transfer control: the same inputs
as a task, the labels sent through a fixed derangement (no label keeps its class), answered by the
same head. The two tasks then ask one function to give two different answers on every input:
transfer between them can only be negative.

Left out: sequence-labelling and generation tasks; tokenizers (a word is a token).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from nlpcurriculum.data.synthetic import classification
from nlpcurriculum.data.synthetic.base import ADJECTIVES, DETERMINERS, NOUNS, PREPOSITIONS, VERBS

__all__ = ["ClassificationTask", "classification_task", "permuted_task", "vocabulary"]


@dataclass(frozen=True)
class ClassificationTask:
    """One task's data.

    Attributes:
        name: the task's name.
        head: the output head that answers it (two tasks may share one).
        n_classes: number of labels.
        x_train, y_train: ``(N, L)`` word ids and ``(N,)`` labels to train on.
        x_val, y_val: held-out examples (fresh documents) to evaluate on.
    """

    name: str
    head: str
    n_classes: int
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor


def vocabulary() -> dict[str, int]:
    """Word -> id for every word the classification generator can write (lowercased)."""
    words = set(NOUNS + VERBS + ADJECTIVES + DETERMINERS + PREPOSITIONS)
    for table in (classification.TOPIC_WORDS, classification.SENTIMENT_WORDS):
        for text in table.values():
            words.update(text.split())
    return {w: i for i, w in enumerate(sorted(words))}


def _encode(records: list[dict], vocab: dict[str, int]) -> tuple[Tensor, Tensor]:
    rows = [[vocab[w] for w in r["text"].lower().rstrip(".").split()] for r in records]
    return torch.tensor(rows, dtype=torch.long), torch.tensor([r["label"] for r in records])


def classification_task(name: str, kind: str, *, n_train: int, n_val: int, length: int,
                        signal: float, seed: int, head: str | None = None) -> ClassificationTask:
    """A topic or sentiment task of ``length``-word documents (train and val from separate seeds)."""
    vocab = vocabulary()
    cfg = lambda n: classification.ClassificationConfig(  # noqa: E731
        n=n, task=kind, signal=signal, min_words=length, max_words=length)
    x_tr, y_tr = _encode(classification.generate(cfg(n_train), seed=seed), vocab)
    x_va, y_va = _encode(classification.generate(cfg(n_val), seed=seed + 7919), vocab)
    n_classes = len(classification.label_names(kind))
    return ClassificationTask(name, head or name, n_classes, x_tr, y_tr, x_va, y_va)


def permuted_task(task: ClassificationTask, name: str, shift: int = 1) -> ClassificationTask:
    """The conflict: ``task``'s inputs, label ``y -> (y + shift) mod C``, through ``task``'s head.

    With ``0 < shift < C`` no label keeps its class, so on every input the two tasks want the
    shared head to answer differently.
    """
    C = task.n_classes
    if not 0 < shift < C:
        raise ValueError(f"shift must be in 1..{C - 1}, got {shift}")
    return ClassificationTask(name, task.head, C, task.x_train, (task.y_train + shift) % C,
                              task.x_val, (task.y_val + shift) % C)


def sizes(tasks: list[ClassificationTask]) -> np.ndarray:
    """Training examples per task ``(K,)``."""
    return np.array([len(t.y_train) for t in tasks], dtype=float)
