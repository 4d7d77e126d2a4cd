"""Parameter isolation for continual learning: per-task adapters and heads over a frozen trunk.

A model keeps a task from being forgotten when no later task can change the parameters it uses.
Here (in the spirit of progressive / adapter-based isolation, e.g. Rusu et al. 2016,
arXiv:1606.04671, and Houlsby et al. 2019, arXiv:1902.00751): the shared trunk is trained with the
first task's parameters, then frozen; every later task ``t`` gets its own parameters and trains
only those:

* a :class:`TaskEmbedding` delta: the trunk's token embedding is swapped for the frozen shared
  table plus a per-task table (zero at the start), so a task can re-map its input tokens onto
  what the frozen blocks already compute;
* a :class:`TaskAdapter` (a residual bottleneck, ``h + W_up relu(W_down h)``) and a linear head on
  the trunk's pooled features (:class:`TaskHeads`).

The task id picks the path at inference (task-incremental learning: the id is known). Task
``t``'s outputs then depend only on the frozen trunk and its own parameters, so its accuracy is
exactly what it was when it was learned: forgetting is zero by construction, and what isolation
gives up is plasticity (later tasks must make do with blocks trained for the first).

Dimension legend: B batch, C the trunk's width, r the adapter's bottleneck, K classes.

Worked example (tested): a new :class:`TaskAdapter` is the identity (its up-projection starts at
zero), so a new task starts from the trunk's features unchanged.

Left out: PackNet's pruning masks (Mallya & Lazebnik 2018) and adapters inside the trunk's blocks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["TaskAdapter", "TaskEmbedding", "TaskHeads", "freeze", "task_parameters"]


class TaskAdapter(nn.Module):
    """A residual bottleneck ``h + up(relu(down(h)))``, the identity at initialisation.

    Args:
        width: C, the features' width.
        bottleneck: r, the hidden width (0: no adapter, the identity).
    """

    def __init__(self, width: int, bottleneck: int) -> None:
        super().__init__()
        self.bottleneck = bottleneck
        if bottleneck > 0:
            self.down = nn.Linear(width, bottleneck)
            self.up = nn.Linear(bottleneck, width)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:  # (B, C) -> (B, C)
        if self.bottleneck == 0:
            return h
        return h + self.up(torch.relu(self.down(h)))


class TaskHeads(nn.Module):
    """One ``adapter -> linear`` path per task; a batch's task ids pick each row's path.

    With ``n_tasks = 1`` every row takes the one shared path (the task id is ignored).

    Args:
        n_tasks: paths.
        width: C.
        n_classes: K.
        bottleneck: r of each path's adapter (0: none).
    """

    def __init__(self, n_tasks: int, width: int, n_classes: int, bottleneck: int = 0) -> None:
        super().__init__()
        self.paths = nn.ModuleList(nn.Sequential(TaskAdapter(width, bottleneck), nn.Linear(width, n_classes))
                                   for _ in range(n_tasks))
        self.n_classes = n_classes

    def forward(self, h: Tensor, tasks: Tensor) -> Tensor:
        """``(B, C)`` features and ``(B,)`` task ids -> ``(B, K)`` logits."""
        if len(self.paths) == 1:
            return self.paths[0](h)
        out = h.new_empty(h.shape[0], self.n_classes)  # (B, K)
        for t in torch.unique(tasks).tolist():
            rows = tasks == t
            out[rows] = self.paths[t](h[rows])
        return out


class TaskEmbedding(nn.Module):
    """A shared token embedding plus a per-task delta table: ``E[ids] + D_task[ids]``.

    Swapped in for a model's token embedding (a module swap, docs/CONVENTIONS.md convention 4).
    The task whose table is used is the attribute ``task``, set by the caller before each forward
    (:class:`~nlpcurriculum.adaptation.continual.ContinualClassifier` does, per task of a batch).

    Args:
        base: the shared embedding, ``(V, C)``.
        n_tasks: delta tables, each ``(V, C)``, zero at the start.
    """

    def __init__(self, base: nn.Embedding, n_tasks: int) -> None:
        super().__init__()
        self.base = base
        self.deltas = nn.ParameterList(nn.Parameter(torch.zeros_like(base.weight)) for _ in range(n_tasks))
        self.task = 0

    def forward(self, ids: Tensor) -> Tensor:  # (B, L) -> (B, L, C)
        return self.base(ids) + nn.functional.embedding(ids, self.deltas[self.task])


def task_parameters(model: nn.Module, t: int) -> list[nn.Parameter]:
    """Task ``t``'s own parameters in ``model``: its :class:`TaskEmbedding` deltas and its head path."""
    params: list[nn.Parameter] = []
    for m in model.modules():
        if isinstance(m, TaskEmbedding):
            params.append(m.deltas[t])
        elif isinstance(m, TaskHeads):
            params.extend(m.paths[t].parameters())
    return params


def freeze(module: nn.Module) -> None:
    """Stop every parameter of ``module`` from training (``requires_grad = False``)."""
    for p in module.parameters():
        p.requires_grad_(False)
