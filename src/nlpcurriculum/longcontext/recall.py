"""Token-level key-value recall with each query's distance to its pair recorded.

The associative recall probe (Arora et al. 2023, "Zoology", arXiv:2312.04927, multi-query
associative recall) laid out for a long-context test: ``n_pairs`` key-value pairs sit at random
places in a context of blank tokens; after the context come ``n_queries`` of their keys, and at
each the model must name the key's value. The loss and the accuracy count those answers only.

Each pair is **one token** that names both its key and its value (``pair(k, v)``), so a single
attention layer can answer (a query key matches the pair token of that key and reads its value)
and a tiny model learns the task in a few hundred steps; with two-token pairs it would first need
an induction circuit. A query's **distance** is its position minus the position of its pair, so
accuracy can be read by distance: inside a sliding window of ``W`` (``d < W``), beyond it, beyond
the receptive field of stacked windows.

Vocabulary: 0 blank; ``1 .. n_keys`` query keys; then the ``n_keys * n_values`` pair tokens
(``pair(k, v) = 1 + n_keys + k * n_values + v`` for key index k, value index v); then the
``n_values`` answer tokens (``answer(v) = 1 + n_keys + n_keys * n_values + v``). Chance accuracy
is ``1 / n_values``.

Worked example (``length 8``, 2 pairs, 1 query, 2 keys, 2 values: pair tokens 3..6, answers 7, 8):
``[0, 4, 0, 0, 5, 0, 0, 1]`` holds pair(0, 1) = 4 at position 1 and pair(1, 0) = 5 at position 4;
the query key 1 (key index 0) at position 7 has distance 6 and target answer(1) = 8.

Left out: distractor keys, multi-token keys or values, natural-language framings (the
character-level :mod:`nlpcurriculum.data.synthetic.kv_recall` has those lines).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["RecallBatch", "RecallTask", "recall_batch"]

IGNORE = -100


@dataclass(frozen=True)
class RecallTask:
    """Attributes:
        length: tokens per sequence, queries included.
        n_pairs: key-value pairs in the context.
        n_queries: pairs queried at the end (at most ``n_pairs``).
        n_keys, n_values: distinct key and value tokens.
    """

    length: int = 64
    n_pairs: int = 8
    n_queries: int = 4
    n_keys: int = 16
    n_values: int = 16

    def __post_init__(self) -> None:
        if not 1 <= self.n_queries <= self.n_pairs <= self.n_keys:
            raise ValueError(f"need 1 <= n_queries <= n_pairs <= n_keys, got {self.n_queries}, "
                             f"{self.n_pairs}, {self.n_keys}")
        if self.n_pairs > self.context:
            raise ValueError(f"{self.n_pairs} pairs do not fit a context of {self.context} tokens")

    @property
    def context(self) -> int:
        """Tokens before the queries."""
        return self.length - self.n_queries

    @property
    def vocab_size(self) -> int:
        return 1 + self.n_keys + self.n_keys * self.n_values + self.n_values

    def pair_token(self, key: Tensor, value: Tensor) -> Tensor:
        """The token of pair (key index, value index)."""
        return 1 + self.n_keys + key * self.n_values + value

    def answer_token(self, value: Tensor) -> Tensor:
        """The token naming value index ``value``."""
        return 1 + self.n_keys + self.n_keys * self.n_values + value


@dataclass
class RecallBatch:
    """Attributes:
        tokens: ``(B, length)`` int64 inputs.
        targets: ``(B, length)`` int64: the value at each query key's position, else ``IGNORE``.
        distances: ``(B, length)`` int64: the query's distance there, else -1.
    """

    tokens: Tensor
    targets: Tensor
    distances: Tensor


def recall_batch(task: RecallTask, batch: int, generator: torch.Generator) -> RecallBatch:
    """``batch`` sequences of the task, drawn from ``generator``."""
    B, L, P, Q = batch, task.length, task.n_pairs, task.n_queries
    tokens = torch.zeros(B, L, dtype=torch.long)
    targets = torch.full((B, L), IGNORE, dtype=torch.long)
    distances = torch.full((B, L), -1, dtype=torch.long)
    q_pos = task.context + torch.arange(Q)  # (Q,) the queries, after the context
    for b in range(B):
        keys = torch.randperm(task.n_keys, generator=generator)[:P]  # distinct key indices
        values = torch.randint(task.n_values, (P,), generator=generator)
        where = torch.randperm(task.context, generator=generator)[:P]  # distinct positions
        tokens[b, where] = task.pair_token(keys, values)
        asked = torch.randperm(P, generator=generator)[:Q]
        tokens[b, q_pos] = keys[asked] + 1
        targets[b, q_pos] = task.answer_token(values[asked])
        distances[b, q_pos] = q_pos - where[asked]
    return RecallBatch(tokens, targets, distances)
