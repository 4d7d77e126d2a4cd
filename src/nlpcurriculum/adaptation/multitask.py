"""Multi-task learning: a shared encoder with task-specific heads, task sampling, balanced training.

* :class:`SharedEncoder`: the mini-former's parts (token embedding, learned positions, blocks,
  final norm; :mod:`nlpcurriculum.models.miniformer`) with **bidirectional** attention, mean-pooled
  over the sequence: ``(B, L)`` ids -> ``(B, C)`` features.
* :class:`MultiTaskModel`: the encoder and one linear head per head name; each task names its
  head, so two tasks may share one (the conflict control does).
* task sampling (one task per step): :func:`sampling_probs` -- ``proportional`` (``p_k ∝ n_k``,
  the dataset sizes), ``temperature`` (``p_k ∝ n_k^(1/T)``; T = 1 is proportional, T -> inf
  uniform; Arivazhagan et al. 2019, arXiv:1907.05019), ``round_robin`` (tasks in turn);
  :func:`task_schedule` turns them into the task of every step.
* :func:`train_multitask`: training. ``method="sampled"`` takes one task per step from a
  schedule; the joint methods take a batch of every task per step and combine the per-task
  gradients of the shared parameters (``(K, P)``) with ``"sum"`` (equal weights), ``"pcgrad"``,
  ``"gradnorm"`` or ``"uncertainty"`` (:mod:`nlpcurriculum.adaptation.gradient_balancing`).
  Shared parameters are the encoder's and those of any head two tasks share; a task's own head
  gets its own (weighted) gradient. Each joint step also records the cosine between every pair
  of task gradients. A single-task run is a joint run with one task.
* :func:`detect_negative_transfer`: negative transfer on task ``k`` means its multi-task accuracy
  falls below its single-task accuracy at the same number of its own batches; flagged when the
  paired (by seed) drop exceeds ``margin`` by two standard errors (``Finding.compare``).

Dimension legend: B batch, L words per document, C = d_model, K tasks, P shared parameters.

Left out: task-conditioned encoders (adapters per task), hard parameter sharing schedules,
auxiliary-task selection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlpcurriculum.adaptation.gradient_balancing import (
    GradNorm,
    UncertaintyWeighting,
    cosine_matrix,
    pcgrad,
)
from nlpcurriculum.adaptation.task_suite import ClassificationTask
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.results import Finding

__all__ = ["JOINT_METHODS", "SAMPLING", "MultiTaskModel", "MultiTaskRun", "SharedEncoder",
           "accuracy", "detect_negative_transfer", "sampling_probs", "task_schedule",
           "train_multitask"]

JOINT_METHODS = ("sum", "pcgrad", "gradnorm", "uncertainty")
SAMPLING = ("proportional", "temperature", "round_robin")


class SharedEncoder(nn.Module):
    """Bidirectional mini-former body, mean-pooled: ``(B, L)`` ids -> ``(B, C)``.

    Args:
        cfg: the architecture; ``causal`` must be False (an encoder sees the whole document) and
            ``position`` an absolute scheme the blocks need not be told about ("learned").
    """

    def __init__(self, cfg: MiniFormerConfig) -> None:
        super().__init__()
        if cfg.causal:
            raise ValueError("the shared encoder is bidirectional: build it with causal=False")
        body = build_model(cfg)  # its parts, without the LM head
        self.config = cfg
        self.tok_emb, self.position = body.tok_emb, body.position
        self.blocks, self.norm = body.blocks, body.norm_f

    def forward(self, idx: Tensor) -> Tensor:
        B, L = idx.shape
        positions = torch.arange(L, device=idx.device)        # (L,)
        self.position.ensure_length(L)
        x = self.position.embed(self.tok_emb(idx), positions)  # (B, L, C)
        for i, block in enumerate(self.blocks):
            x, _ = block(x, position=self.position, positions=positions, layer_idx=i)
        return self.norm(x).mean(dim=1)                        # (B, C)


class MultiTaskModel(nn.Module):
    """A shared encoder and a linear head per head name.

    Args:
        encoder: the shared encoder.
        heads: ``{head name: number of classes}``.
    """

    def __init__(self, encoder: SharedEncoder, heads: dict[str, int]) -> None:
        super().__init__()
        self.encoder = encoder
        C = encoder.config.d_model
        self.heads = nn.ModuleDict({name: nn.Linear(C, n) for name, n in heads.items()})

    def forward(self, idx: Tensor, head: str) -> Tensor:
        """``(B, n_classes)`` logits of ``head``."""
        return self.heads[head](self.encoder(idx))


def build_multitask_model(cfg: MiniFormerConfig, tasks: Sequence[ClassificationTask], seed: int
                          ) -> MultiTaskModel:
    """A freshly initialised model with one head per distinct head name of ``tasks``."""
    torch.manual_seed(seed)
    heads: dict[str, int] = {}
    for t in tasks:
        if heads.setdefault(t.head, t.n_classes) != t.n_classes:
            raise ValueError(f"tasks sharing head {t.head!r} differ in their number of classes")
    return MultiTaskModel(SharedEncoder(cfg), heads)


def sampling_probs(sizes: Sequence[float], strategy: str, temperature: float = 2.0) -> np.ndarray:
    """Per-task sampling probabilities ``(K,)``.

    Example: sizes (4000, 1000): proportional (0.8, 0.2); temperature 2 -> ``∝ (63.2, 31.6)`` =
    (0.667, 0.333); round robin (0.5, 0.5).
    """
    n = np.asarray(sizes, dtype=float)
    if strategy == "proportional":
        p = n
    elif strategy == "temperature":
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        p = n ** (1.0 / temperature)
    elif strategy == "round_robin":
        p = np.ones_like(n)
    else:
        raise ValueError(f"strategy must be one of {SAMPLING}, got {strategy!r}")
    return p / p.sum()


def task_schedule(sizes: Sequence[float], strategy: str, steps: int, seed: int,
                  temperature: float = 2.0) -> list[int]:
    """The task of every step: round robin cycles ``0..K-1``; the others draw i.i.d. from
    :func:`sampling_probs` with ``numpy.random.default_rng(seed)``."""
    K = len(sizes)
    if strategy == "round_robin":
        return [s % K for s in range(steps)]
    p = sampling_probs(sizes, strategy, temperature)
    return np.random.default_rng(seed).choice(K, size=steps, p=p).tolist()


@torch.no_grad()
def accuracy(model: MultiTaskModel, task: ClassificationTask, batch: int = 512) -> float:
    """Share of ``task``'s held-out examples its head labels right."""
    was = model.training
    model.eval()
    right = 0
    for s in range(0, len(task.y_val), batch):
        logits = model(task.x_val[s:s + batch], task.head)
        right += int((logits.argmax(-1) == task.y_val[s:s + batch]).sum())
    model.train(was)
    return right / len(task.y_val)


@dataclass
class MultiTaskRun:
    """What :func:`train_multitask` returns.

    Attributes:
        final_accuracy: ``{task: held-out accuracy}`` at the end.
        curves: ``{task: [(batches of that task seen, accuracy), ...]}``.
        cosines: ``{"a|b": mean cosine of the two tasks' shared gradients over the joint steps}``.
        cosine_curves: ``{"a|b": [(step, cosine averaged over the last eval interval), ...]}``.
        weights: ``{task: the method's final loss weight}`` (1 for sum, pcgrad, sampled).
    """

    final_accuracy: dict[str, float]
    curves: dict[str, list[tuple[int, float]]]
    cosines: dict[str, float] = field(default_factory=dict)
    cosine_curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)


def _shared_params(model: MultiTaskModel, tasks: Sequence[ClassificationTask]) -> list[nn.Parameter]:
    shared_heads = {h for h in {t.head for t in tasks} if sum(t.head == h for t in tasks) > 1}
    params = list(model.encoder.parameters())
    for h in sorted(shared_heads):
        params += list(model.heads[h].parameters())
    return params


def train_multitask(model: MultiTaskModel, tasks: Sequence[ClassificationTask], *, method: str,
                    steps_per_task: int, batch_size: int, lr: float, seed: int,
                    eval_every: int, sampling: str = "round_robin", temperature: float = 2.0,
                    gradnorm_alpha: float = 1.5, gradnorm_lr: float = 0.025) -> MultiTaskRun:
    """Train ``model`` on ``tasks`` so that every task sees ``steps_per_task`` of its batches.

    Args:
        method: ``"sampled"`` (one task per step from the ``sampling`` schedule, ``K *
            steps_per_task`` steps; each task's count is then exact only for round robin) or one
            of :data:`JOINT_METHODS` (a batch of every task per step, ``steps_per_task`` steps).
        steps_per_task: batches per task (the equal-budget unit of the comparisons).
        batch_size: examples per task batch, drawn with replacement.
        lr: Adam's learning rate.
        seed: seeds the batches, the schedule and PCGrad's orders (the model is built by the caller).
        eval_every: evaluate every task's held-out accuracy every this many batches of that task.
    """
    if method != "sampled" and method not in JOINT_METHODS:
        raise ValueError(f"method must be 'sampled' or one of {JOINT_METHODS}, got {method!r}")
    K = len(tasks)
    gen = torch.Generator().manual_seed(seed)
    order_gen = torch.Generator().manual_seed(seed + 1)
    extra: list[nn.Parameter] = []
    uw = gn = None
    if method == "uncertainty":
        uw = UncertaintyWeighting(K)
        extra = list(uw.parameters())
    elif method == "gradnorm":
        gn = GradNorm(K, gradnorm_alpha, gradnorm_lr)
    opt = torch.optim.Adam(list(model.parameters()) + extra, lr=lr)
    shared = _shared_params(model, tasks)
    shared_ids = {id(p) for p in shared}
    own = [[p for p in model.heads[t.head].parameters() if id(p) not in shared_ids] for t in tasks]
    seen = [0] * K
    curves: dict[str, list[tuple[int, float]]] = {t.name: [(0, accuracy(model, t))] for t in tasks}
    pair_names = [(a, b) for a in range(K) for b in range(a + 1, K)]
    cos_sum = {f"{tasks[a].name}|{tasks[b].name}": 0.0 for a, b in pair_names}
    cos_window = {k: [] for k in cos_sum}
    cos_curves: dict[str, list[tuple[int, float]]] = {k: [] for k in cos_sum}

    def batch(k: int) -> tuple[Tensor, Tensor]:
        t = tasks[k]
        i = torch.randint(len(t.y_train), (batch_size,), generator=gen)
        return t.x_train[i], t.y_train[i]

    def evaluate(k: int) -> None:
        if seen[k] % eval_every == 0 or seen[k] == steps_per_task:
            curves[tasks[k].name].append((seen[k], accuracy(model, tasks[k])))

    if method == "sampled":
        sizes = [len(t.y_train) for t in tasks]
        for step, k in enumerate(task_schedule(sizes, sampling, K * steps_per_task, seed, temperature)):
            x, y = batch(k)
            loss = F.cross_entropy(model(x, tasks[k].head), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen[k] += 1
            evaluate(k)
        weights = {t.name: 1.0 for t in tasks}
    else:
        params = list(model.parameters())
        for step in range(steps_per_task):
            losses, rows, own_grads = [], [], []
            for k in range(K):
                x, y = batch(k)
                loss = F.cross_entropy(model(x, tasks[k].head), y)
                grads = torch.autograd.grad(loss, shared + own[k], allow_unused=True)
                flat = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, shared + own[k])]
                rows.append(torch.cat([g.reshape(-1) for g in flat[:len(shared)]]))  # (P,)
                own_grads.append(flat[len(shared):])
                losses.append(loss.detach())
            G = torch.stack(rows)                               # (K, P)
            L = torch.stack(losses)                             # (K,)
            if K > 1:
                cos = cosine_matrix(G)
                for a, b in pair_names:
                    key = f"{tasks[a].name}|{tasks[b].name}"
                    cos_sum[key] += float(cos[a, b])
                    cos_window[key].append(float(cos[a, b]))
            if method == "uncertainty":
                w = uw.weights()
                uw.log_vars.grad = 1.0 - w * L                  # d/ds (e^-s L + s)
            elif method == "gradnorm":
                w = gn.weights.clone()
            else:
                w = torch.ones(K)
            combined = pcgrad(G, generator=order_gen) if method == "pcgrad" else (w[:, None] * G).sum(0)
            for p in params:
                p.grad = None
            offset = 0
            for p in shared:                                    # (P,) back into the parameters
                p.grad = combined[offset:offset + p.numel()].view_as(p).clone()
                offset += p.numel()
            for k in range(K):
                for p, g in zip(own[k], own_grads[k]):
                    p.grad = (w[k] * g) if p.grad is None else p.grad + w[k] * g
            opt.step()
            if gn is not None:
                gn.update(L, G.norm(dim=1))
            for k in range(K):
                seen[k] += 1
                evaluate(k)
            if (step + 1) % eval_every == 0:
                for key, vals in cos_window.items():
                    cos_curves[key].append((step + 1, float(np.mean(vals))))
                    vals.clear()
        final_w = uw.weights() if uw is not None else (gn.weights if gn is not None else torch.ones(K))
        weights = {t.name: float(final_w[k]) for k, t in enumerate(tasks)}
    cosines = {k: v / steps_per_task for k, v in cos_sum.items()} if method != "sampled" else {}
    final = {t.name: accuracy(model, t) for t in tasks}
    return MultiTaskRun(final, curves, cosines, cos_curves if method != "sampled" else {}, weights)


def detect_negative_transfer(multi: dict[str, Sequence[float]], single: dict[str, Sequence[float]],
                             margin: float, label: str = "") -> dict[str, Finding]:
    """Per task: does multi-task training cost accuracy against single-task at equal batches?

    Args:
        multi, single: ``{task: [held-out accuracy per seed]}``, seeds in the same order (paired).
        margin: the accuracy drop that counts as negative transfer.
        label: names the task set in the claims.

    Returns:
        ``{task: Finding}`` whose ``passed`` means **negative transfer detected**: the mean paired
        drop ``single - multi`` exceeds ``margin`` by two standard errors.
    """
    out = {}
    for task, accs in multi.items():
        out[task] = Finding.compare(
            f"negative transfer{' in ' + label if label else ''} on {task}: its multi-task accuracy "
            f"is below its single-task accuracy at the same batches of its own, by more than {margin}",
            f"single_minus_multi_accuracy.{task}", single[task], accs, margin=margin)
    return out
