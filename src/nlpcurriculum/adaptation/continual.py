"""Continual learning: a model trained on tasks one after another, and what it forgets.

A sequence of ``T`` classification tasks is learned in order, each for the same number of steps,
with one of four strategies (:class:`Strategy`):

* :class:`Naive`: plain fine-tuning on each new task (the forgetting baseline);
* :class:`EWCStrategy`: the EWC penalty of :mod:`.ewc` (Kirkpatrick et al. 2017,
  arXiv:1612.00796) added to the loss, the diagonal Fisher of each finished task consolidated;
* :class:`Replay`: every batch of the new task joined by a batch drawn from a reservoir buffer of
  the examples seen so far (:mod:`.replay`);
* :class:`Isolation`: the trunk frozen after the first task, every later task trained through
  its own adapter and head (:mod:`.isolation`);

and :func:`train_joint` trains on all tasks at once (the usual upper bound, not a continual
method). After each task the model is scored on every task's held-out set, which fills the
accuracy matrix ``R`` (Lopez-Paz & Ranzato 2017, arXiv:1706.08840): ``R[i, j]`` is the accuracy on
task ``j`` after training through task ``i``. From it (Chaudhry et al. 2018, arXiv:1801.10112):

* forgetting of task ``j`` after task ``i``: ``max_{l < i} R[l, j] - R[i, j]`` (:func:`forgetting`),
  its drop from the best it ever was;
* average forgetting: the mean over ``j < T - 1`` of task ``j``'s forgetting at the end;
* final average accuracy: ``mean_j R[T-1, j]``;
* plasticity: ``mean_j R[j, j]``, how well each task is learned when it is the current one.

Worked example (tested): ``R = [[0.9, 0.5], [0.6, 0.8]]`` (two tasks): task 0 is forgotten by
``0.9 - 0.6 = 0.3``, the average forgetting is 0.3, the final average accuracy ``(0.6 + 0.8) / 2 =
0.7`` and the plasticity ``(0.9 + 0.8) / 2 = 0.85``.

The model (:class:`ContinualClassifier`) is any trunk mapping token ids ``(B, L)`` to features
``(B, L, C)`` (a mini-former whose output head is swapped for the identity:
:func:`feature_trunk`), mean-pooled over positions, then :class:`~.isolation.TaskHeads`.

Dimension legend: B batch, L tokens per example, C the trunk's width, K classes, T tasks.

Left out: class-incremental learning (new classes per task), task-free boundaries, and
gradient-projection methods (GEM / A-GEM).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlpcurriculum.adaptation.ewc import EWC, diagonal_fisher
from nlpcurriculum.adaptation.isolation import TaskEmbedding, TaskHeads, freeze, task_parameters
from nlpcurriculum.adaptation.replay import ReservoirBuffer

__all__ = [
    "ContinualClassifier", "EWCStrategy", "Isolation", "Naive", "Replay", "Strategy", "Task",
    "TrainConfig", "accuracy", "average_forgetting", "feature_trunk", "final_average_accuracy",
    "forgetting", "plasticity", "run_sequence", "train_joint",
]


def feature_trunk(model: nn.Module) -> nn.Module:
    """A mini-former as a feature extractor: its output head swapped for the identity.

    Its forward then returns the final normed hidden states ``(B, L, C)`` in place of logits
    (the token embedding stays; a tied head's weight is the embedding's, so nothing is lost).
    """
    model.lm_head = nn.Identity()
    return model


class ContinualClassifier(nn.Module):
    """Trunk -> mean over positions -> per-task (or one shared) adapter and head.

    Args:
        trunk: ``(B, L)`` ids -> ``(B, L, C)`` features, or an object with them as ``.logits``.
        heads: the task paths (one path: a shared head).
    """

    def __init__(self, trunk: nn.Module, heads: TaskHeads) -> None:
        super().__init__()
        self.trunk, self.heads = trunk, heads
        self._per_task = [m for m in trunk.modules() if isinstance(m, TaskEmbedding)]

    def _features(self, x: Tensor) -> Tensor:
        out = self.trunk(x)
        h = out if isinstance(out, Tensor) else out.logits  # (B, L, C)
        return h.mean(dim=1)  # (B, C)

    def forward(self, x: Tensor, tasks: Tensor) -> Tensor:
        """``(B, L)`` ids, ``(B,)`` task ids -> ``(B, K)`` logits."""
        if not self._per_task:
            return self.heads(self._features(x), tasks)
        h = x.new_empty(x.shape[0], self.heads.paths[0][-1].in_features, dtype=torch.float32)  # (B, C)
        for t in torch.unique(tasks).tolist():  # the trunk's per-task parts, one task at a time
            for m in self._per_task:
                m.task = t
            rows = tasks == t
            h[rows] = self._features(x[rows])
        return self.heads(h, tasks)


@dataclass(frozen=True)
class Task:
    """One task of the sequence.

    Attributes:
        index: its position in the sequence (also its id for the heads).
        sample: ``sample(n, generator)`` -> ``(x (n, L) ids, y (n,) labels)``, fresh examples.
        eval_x: held-out inputs ``(N, L)``.
        eval_y: their labels ``(N,)``.
    """

    index: int
    sample: Callable[[int, torch.Generator], tuple[Tensor, Tensor]]
    eval_x: Tensor
    eval_y: Tensor


@dataclass(frozen=True)
class TrainConfig:
    """How each task is trained: ``steps`` Adam updates of ``batch_size`` fresh examples."""

    steps: int
    batch_size: int
    lr: float

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"steps, batch_size and lr must be positive, got {self}")


class Strategy:
    """How a continual learner trains: which parameters, which batches, which extra loss.

    The sequence loop calls, per task ``t``: :meth:`trainable` once, then per step
    :meth:`batch` and :meth:`regularizer`, then :meth:`end_task`.
    """

    name = "naive"

    def trainable(self, model: ContinualClassifier, t: int) -> list[nn.Parameter]:
        """The parameters task ``t`` trains (default: every one that requires a gradient)."""
        return [p for p in model.parameters() if p.requires_grad]

    def batch(self, x: Tensor, y: Tensor, tasks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The batch a step trains on, given the new task's fresh examples."""
        return x, y, tasks

    def regularizer(self, model: ContinualClassifier) -> Tensor | None:
        """An extra loss term (default: none)."""
        return None

    def end_task(self, model: ContinualClassifier, task: Task, generator: torch.Generator) -> None:
        """Called when task ``task`` is finished."""


class Naive(Strategy):
    """Plain sequential fine-tuning: the baseline that forgets."""


class EWCStrategy(Strategy):
    """Sequential training with the EWC penalty of every finished task.

    Args:
        ewc: the penalty (lambda, online or one term per task).
        fisher: ``"true"`` or ``"empirical"`` (:func:`~.ewc.diagonal_fisher`).
        samples: examples of a finished task its Fisher is estimated on (fresh draws).
        seed: seeds the Fisher's own draws, apart from the training stream (so an EWC run sees
            the same training examples as a naive run of the same stream).
    """

    name = "ewc"

    def __init__(self, ewc: EWC, fisher: str = "true", samples: int = 100, seed: int = 0) -> None:
        self.ewc, self.fisher, self.samples = ewc, fisher, samples
        self._draws = torch.Generator().manual_seed(seed)

    def regularizer(self, model: ContinualClassifier) -> Tensor | None:
        if not self.ewc.terms or self.ewc.lam == 0:
            return None
        return self.ewc.penalty(dict(model.named_parameters()))

    def end_task(self, model: ContinualClassifier, task: Task, generator: torch.Generator) -> None:
        x, y = task.sample(self.samples, self._draws)
        ids = torch.full((1,), task.index, dtype=torch.long)
        was_training = model.training
        model.eval()
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        fisher = diagonal_fisher(lambda xi: F.log_softmax(model(xi, ids), dim=-1), params, x, y, self.fisher)
        model.train(was_training)
        self.ewc.consolidate(params, fisher)


class Replay(Strategy):
    """Each step: the new task's batch plus ``replay_batch`` examples from a reservoir buffer.

    Every fresh example is offered to the buffer after its step, so the buffer is a uniform
    sample of the whole stream seen so far (:class:`~.replay.ReservoirBuffer`).

    Args:
        buffer: the reservoir (its capacity is the memory budget).
        replay_batch: stored examples added to each step's batch.
    """

    name = "replay"

    def __init__(self, buffer: ReservoirBuffer, replay_batch: int) -> None:
        self.buffer, self.replay_batch = buffer, replay_batch

    def batch(self, x: Tensor, y: Tensor, tasks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        old = self.buffer.sample(self.replay_batch)
        self.buffer.extend(zip(x, y, tasks))
        if not old:
            return x, y, tasks
        ox, oy, ot = (torch.stack(col) for col in zip(*old))
        return torch.cat([x, ox]), torch.cat([y, oy]), torch.cat([tasks, ot])


class Isolation(Strategy):
    """Train the shared trunk with task 0's own parameters, then freeze them; task ``t`` trains
    only its own (:func:`~.isolation.task_parameters`: embedding delta, adapter, head)."""

    name = "isolation"

    def trainable(self, model: ContinualClassifier, t: int) -> list[nn.Parameter]:
        if len(model.heads.paths) < 2:
            raise ValueError("isolation needs one head path per task")
        own = task_parameters(model, t)
        if t == 0:
            mine = {id(p) for p in own}
            shared = [p for p in model.trunk.parameters() if id(p) not in mine
                      and id(p) not in {id(q) for s in range(1, len(model.heads.paths))
                                        for q in task_parameters(model.trunk, s)}]
            return shared + own
        freeze(model)
        for p in own:
            p.requires_grad_(True)
        return own


@torch.no_grad()
def accuracy(model: ContinualClassifier, task: Task, batch_size: int = 512) -> float:
    """Share of ``task``'s held-out examples classified right (model in eval mode)."""
    was_training = model.training
    model.eval()
    right = 0
    for start in range(0, task.eval_x.shape[0], batch_size):
        x = task.eval_x[start:start + batch_size]
        ids = torch.full((x.shape[0],), task.index, dtype=torch.long)
        right += int((model(x, ids).argmax(-1) == task.eval_y[start:start + batch_size]).sum())
    model.train(was_training)
    return right / task.eval_x.shape[0]


def _step(model: ContinualClassifier, opt: torch.optim.Optimizer, x: Tensor, y: Tensor, tasks: Tensor,
          extra: Tensor | None) -> None:
    loss = F.cross_entropy(model(x, tasks), y)
    if extra is not None:
        loss = loss + extra
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def run_sequence(model: ContinualClassifier, tasks: Sequence[Task], strategy: Strategy,
                 cfg: TrainConfig, generator: torch.Generator) -> np.ndarray:
    """Train on ``tasks`` in order with ``strategy``; the accuracy matrix ``R`` ``(T, T)``.

    Each task gets a fresh Adam optimizer over ``strategy.trainable(model, t)`` and ``cfg.steps``
    steps of ``cfg.batch_size`` fresh examples drawn with ``generator``.
    """
    T = len(tasks)
    R = np.zeros((T, T))
    model.train()
    for t, task in enumerate(tasks):
        opt = torch.optim.Adam(strategy.trainable(model, t), lr=cfg.lr)
        ids = torch.full((cfg.batch_size,), task.index, dtype=torch.long)
        for _ in range(cfg.steps):
            x, y = task.sample(cfg.batch_size, generator)
            bx, by, bt = strategy.batch(x, y, ids)
            _step(model, opt, bx, by, bt, strategy.regularizer(model))
        strategy.end_task(model, task, generator)
        R[t] = [accuracy(model, other) for other in tasks]
    return R


def train_joint(model: ContinualClassifier, tasks: Sequence[Task], cfg: TrainConfig,
                generator: torch.Generator) -> np.ndarray:
    """Train on every task at once for ``cfg.steps`` steps; the final accuracy per task ``(T,)``.

    Each batch holds ``ceil(batch_size / T)`` fresh examples of every task.
    """
    per = math.ceil(cfg.batch_size / len(tasks))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    model.train()
    for _ in range(cfg.steps):
        xs, ys = zip(*(task.sample(per, generator) for task in tasks))
        ids = torch.cat([torch.full((per,), task.index, dtype=torch.long) for task in tasks])
        _step(model, opt, torch.cat(xs), torch.cat(ys), ids, None)
    return np.array([accuracy(model, task) for task in tasks])


def forgetting(R: np.ndarray, j: int, i: int) -> float:
    """How much task ``j`` lost by the end of task ``i`` (> ``j``): ``max_{j <= l < i} R[l, j] - R[i, j]``."""
    if not 0 <= j < i < R.shape[0]:
        raise ValueError(f"need 0 <= j < i < {R.shape[0]}, got j={j}, i={i}")
    return float(R[j:i, j].max() - R[i, j])


def average_forgetting(R: np.ndarray) -> float:
    """Mean forgetting of tasks ``0..T-2`` at the end of the sequence."""
    T = R.shape[0]
    return float(np.mean([forgetting(R, j, T - 1) for j in range(T - 1)]))


def final_average_accuracy(R: np.ndarray) -> float:
    """Mean accuracy over all tasks after the last one."""
    return float(R[-1].mean())


def plasticity(R: np.ndarray) -> float:
    """Mean accuracy on each task right after learning it (``mean_j R[j, j]``)."""
    return float(np.diag(R).mean())
