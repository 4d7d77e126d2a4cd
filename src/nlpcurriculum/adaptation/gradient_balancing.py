"""Gradient balancing for multi-task learning: PCGrad, GradNorm and uncertainty weighting.

Every method here turns the per-task gradients of the shared parameters, a matrix ``G`` of shape
``(K, P)`` (row ``k`` = the gradient of task ``k``'s loss), into one update direction, or learns
per-task loss weights:

* :func:`pcgrad` -- gradient surgery (Yu et al. 2020, "Gradient Surgery for Multi-Task
  Learning", arXiv:2001.06782, Algorithm 1). For each task ``i``, start from ``g_i`` and visit the
  other tasks ``j`` in a random order; whenever the running ``g_i^PC`` conflicts with the original
  ``g_j`` (``g_i^PC . g_j < 0``), remove its component along ``g_j``:
  ``g_i^PC <- g_i^PC - (g_i^PC . g_j) / |g_j|^2 g_j``. The update is ``sum_i g_i^PC``.
  Worked example: ``g_1 = (1, 0)``, ``g_2 = (-1, 1)``: ``g_1 . g_2 = -1 < 0``, so
  ``g_1^PC = (1, 0) + 1/2 (-1, 1) = (0.5, 0.5)`` and ``g_2^PC = (-1, 1) + 1/1 (1, 0) = (0, 1)``:
  the update is ``(0.5, 1.5)`` (the plain sum would be ``(0, 1)``).
  The order of the ``j`` is ``torch.randperm(K)`` per task ``i``, drawn from the global torch RNG
  unless a ``generator`` is given, exactly as ``torchjd.aggregation.PCGrad`` 0.18 draws it: with
  the same global seed before both calls, the two visit the tasks in the same order (the parity
  test relies on that). ``order="fixed"`` visits ``0, 1, ..., K-1`` instead (deterministic). With
  two tasks the order does not matter.
* :class:`GradNorm` -- learned loss weights (Chen et al. 2018, "GradNorm: Gradient Normalization
  for Adaptive Loss Balancing", arXiv:1711.02257). With weights ``w_i`` (summing to ``K``), the
  weighted gradient norms ``G_i = w_i |g_i|`` are pulled towards a common target
  ``mean_j(G_j) * r_i^alpha``, where ``r_i = (L_i / L_i(0)) / mean_j(L_j / L_j(0))`` is task
  ``i``'s relative inverse training rate: a task that trains slower gets a larger target. The
  weights take a gradient step on ``L_grad = sum_i |G_i - target_i|`` (target held constant, as
  in the paper), then are renormalised to sum to ``K``. Difference from the paper: ``|g_i|`` is
  the norm over all shared parameters, not the last shared layer only (we have every task's full
  gradient already, for PCGrad and the cosines).
* :class:`UncertaintyWeighting` -- homoscedastic uncertainty (Kendall, Gal & Cipolla 2018,
  "Multi-Task Learning Using Uncertainty to Weigh Losses", arXiv:1705.07115): learn ``s_i =
  log sigma_i^2`` and minimise ``sum_i exp(-s_i) L_i + s_i``. For a fixed loss ``L_i`` the
  minimum over ``s_i`` is at ``s_i = log L_i`` (weight ``1 / L_i``): noisier tasks count less.
  (The paper's regression form has factors 1/2; they rescale every task alike and are dropped.)

Dimension legend: K tasks, P shared parameters (flattened).

Left out: PCGrad's variant that also projects task-specific parameters, GradNorm's restriction
to the last shared layer, and other aggregators (MGDA, CAGrad, UPGrad: see ``torchjd``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["GradNorm", "UncertaintyWeighting", "cosine_matrix", "pcgrad"]


def pcgrad(grads: Tensor, *, order: str = "random", generator: torch.Generator | None = None) -> Tensor:
    """PCGrad's update: the sum of the per-task gradients, each projected off the others it conflicts with.

    Args:
        grads: ``(K, P)`` per-task gradients of the shared parameters.
        order: ``"random"`` (the paper: a fresh ``randperm(K)`` per task) or ``"fixed"``
            (``0..K-1``).
        generator: the RNG of the random orders; ``None`` draws from torch's global RNG.

    Returns:
        ``(P,)`` the aggregated gradient.
    """
    if grads.dim() != 2:
        raise ValueError(f"grads must be (K, P), got {tuple(grads.shape)}")
    if order not in ("random", "fixed"):
        raise ValueError(f"order must be 'random' or 'fixed', got {order!r}")
    K = grads.shape[0]
    sq_norms = (grads * grads).sum(dim=1)                    # (K,)
    out = torch.zeros_like(grads[0])                         # (P,)
    for i in range(K):
        visit = (torch.randperm(K, generator=generator) if order == "random"
                 else torch.arange(K))
        g = grads[i].clone()                                 # (P,) the running g_i^PC
        for j in visit.tolist():
            if j == i or sq_norms[j] == 0:
                continue
            dot = g @ grads[j]
            if dot < 0:
                g = g - (dot / sq_norms[j]) * grads[j]
        out = out + g
    return out


def cosine_matrix(grads: Tensor, eps: float = 1e-12) -> Tensor:
    """``(K, K)`` cosine similarities between the rows of ``(K, P)`` ``grads``."""
    unit = grads / grads.norm(dim=1, keepdim=True).clamp_min(eps)  # (K, P)
    return unit @ unit.T


class GradNorm:
    """GradNorm's task weights (see the module docstring).

    Args:
        n_tasks: K.
        alpha: the asymmetry: 0 equalises the weighted gradient norms, larger values favour
            slow-training tasks more (the paper uses 0.12 to 3; 1.5 for its NYUv2 runs).
        lr: step size of the weights' plain gradient step.

    Usage per training step: ``w = gn.weights`` (use ``w`` to combine the task gradients), then
    ``gn.update(losses, grad_norms)`` with the step's losses ``L_i`` and unweighted norms
    ``|g_i|``.
    """

    def __init__(self, n_tasks: int, alpha: float = 1.5, lr: float = 0.025) -> None:
        if n_tasks < 1 or alpha < 0 or lr <= 0:
            raise ValueError(f"need n_tasks >= 1, alpha >= 0, lr > 0; got {n_tasks}, {alpha}, {lr}")
        self.n_tasks, self.alpha, self.lr = n_tasks, alpha, lr
        self.weights = torch.ones(n_tasks)       # (K,) sums to K
        self.initial_losses: Tensor | None = None

    def update(self, losses: Tensor, grad_norms: Tensor) -> Tensor:
        """One step on the weights; returns the new weights ``(K,)``."""
        losses, grad_norms = losses.detach().float(), grad_norms.detach().float()
        if losses.shape != (self.n_tasks,) or grad_norms.shape != (self.n_tasks,):
            raise ValueError(f"losses and grad_norms must be ({self.n_tasks},)")
        if self.initial_losses is None:
            self.initial_losses = losses.clamp_min(1e-12)
        ratio = losses / self.initial_losses                  # (K,) L_i(t) / L_i(0)
        r = ratio / ratio.mean()                              # relative inverse training rate
        G = self.weights * grad_norms                         # (K,) weighted norms
        target = G.mean() * r ** self.alpha                   # held constant
        # d/dw_i |w_i |g_i| - target_i| = sign(G_i - target_i) |g_i|
        grad_w = torch.sign(G - target) * grad_norms
        w = (self.weights - self.lr * grad_w).clamp_min(1e-3)
        self.weights = w * (self.n_tasks / w.sum())
        return self.weights


class UncertaintyWeighting(nn.Module):
    """Kendall et al.'s learned log-variances ``s_i``: total loss ``sum_i exp(-s_i) L_i + s_i``.

    Its ``log_vars`` parameter goes into the model's optimizer.
    """

    def __init__(self, n_tasks: int) -> None:
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(n_tasks))   # (K,) s_i = log sigma_i^2

    def weights(self) -> Tensor:
        """``exp(-s_i)``, the current loss weights ``(K,)`` (detached)."""
        return torch.exp(-self.log_vars.detach())

    def forward(self, losses: Tensor) -> Tensor:
        """The weighted total loss of ``(K,)`` task losses."""
        if losses.shape != self.log_vars.shape:
            raise ValueError(f"losses must be {tuple(self.log_vars.shape)}, got {tuple(losses.shape)}")
        return (torch.exp(-self.log_vars) * losses + self.log_vars).sum()
