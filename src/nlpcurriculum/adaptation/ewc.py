"""Elastic weight consolidation (EWC) with a diagonal Fisher (Kirkpatrick et al. 2017, arXiv:1612.00796).

After a task ``k`` is learned at parameters ``theta*_k``, EWC keeps the parameters that mattered
to it close to where they were, in proportion to their Fisher information ``F_k``:

    penalty(theta) = (lambda / 2) * sum_k sum_i F_k,i * (theta_i - theta*_k,i)^2

added to the loss of every later task. The Fisher is the diagonal of

    F = E_x E_{y ~ p_theta(y|x)} [ (d log p_theta(y|x) / d theta)^2 ]      ("true" Fisher)

estimated over ``N`` examples ``x`` of the task. Two estimators (:func:`diagonal_fisher`):

* ``"true"`` (the paper's): the expectation over ``y`` taken exactly, ``sum_y p(y|x) g_y^2``, one
  backward pass per class (our tasks have a handful of classes, so no sampling noise);
* ``"empirical"``: ``y`` is the example's own label, ``g_{y_true}^2``. Cheaper, and biased: at a
  well-fitted model it underestimates the curvature (Kunstner et al. 2019, arXiv:1905.12558).

Gradients are per example (one example per backward pass), never of a mini-batch mean: the square
of a batch's mean gradient is not the mean of the squares.

Online EWC (Schwarz et al. 2018, arXiv:1805.06370, "progress & compress") keeps one running
Fisher ``F <- gamma * F + F_new`` and one anchor (the latest parameters) instead of one term per
task; ``EWC(online=True)``.

Worked example (tested): one parameter ``w`` in a logistic model ``p(y=1|x) = sigmoid(w x)`` at
``w = 0`` with one example ``x = 2``: ``p = 1/2`` for both classes, ``d log p(y|x)/dw = (y - p) x =
+-1``, so the true Fisher is ``1/2 * 1 + 1/2 * 1 = 1``. With ``lambda = 4`` and the anchor at 0,
moving to ``w = 0.5`` costs ``4/2 * 1 * 0.25 = 0.5``.

Left out: the Laplace-propagation variants (Huszar 2018) and Kronecker-factored Fishers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["EWC", "FISHER_KINDS", "diagonal_fisher"]

FISHER_KINDS = ("true", "empirical")


def diagonal_fisher(
    log_probs: Callable[[Tensor], Tensor],
    params: dict[str, nn.Parameter],
    inputs: Tensor,
    labels: Tensor,
    kind: str = "true",
) -> dict[str, Tensor]:
    """The diagonal Fisher of ``params``, averaged over the examples ``inputs``.

    Args:
        log_probs: ``log_probs(x)`` -> ``(n, K)`` log-probabilities of the ``K`` classes for a
            batch ``x`` of ``n`` examples (the model in eval mode: no dropout noise).
        params: the parameters to weigh, by name; those without a gradient path get zeros.
        inputs: ``(N, ...)`` examples of the task just learned.
        labels: ``(N,)`` their labels (used by ``kind="empirical"`` only).
        kind: ``"true"`` (expectation over the model's own predictive distribution, exact) or
            ``"empirical"`` (the observed label).

    Returns:
        ``{name: (same shape as the parameter)}``, non-negative.
    """
    if kind not in FISHER_KINDS:
        raise ValueError(f"fisher kind must be one of {FISHER_KINDS}, got {kind!r}")
    if inputs.shape[0] != labels.shape[0] or inputs.shape[0] == 0:
        raise ValueError(f"need as many labels as inputs (and at least one), got {inputs.shape[0]} "
                         f"and {labels.shape[0]}")
    names = list(params)
    tensors = [params[n] for n in names]
    fisher = [torch.zeros_like(p) for p in tensors]
    n = inputs.shape[0]
    for i in range(n):
        lp = log_probs(inputs[i:i + 1])[0]  # (K,)
        if kind == "empirical":
            terms = [(int(labels[i]), 1.0)]
        else:
            probs = lp.detach().exp()
            terms = [(k, float(probs[k])) for k in range(lp.shape[0])]
        for j, (k, weight) in enumerate(terms):
            grads = torch.autograd.grad(lp[k], tensors, retain_graph=j < len(terms) - 1,
                                        allow_unused=True)
            for f, g in zip(fisher, grads):
                if g is not None:
                    f.add_(g.detach().pow(2), alpha=weight)
    return {name: f / n for name, f in zip(names, fisher)}


class EWC:
    """The EWC penalty over the tasks consolidated so far.

    Args:
        lam: lambda, the weight of the penalty (0: plain sequential training).
        online: keep one running Fisher and the latest anchor (online EWC) instead of one term per
            task.
        gamma: online EWC's decay of the old Fisher (1: no decay).
    """

    def __init__(self, lam: float, online: bool = False, gamma: float = 1.0) -> None:
        if lam < 0:
            raise ValueError(f"lambda must be >= 0, got {lam}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must lie in (0, 1], got {gamma}")
        self.lam, self.online, self.gamma = float(lam), online, float(gamma)
        # one (fisher, anchor) pair per consolidated task; online: at most one pair
        self.terms: list[tuple[dict[str, Tensor], dict[str, Tensor]]] = []

    def consolidate(self, params: dict[str, nn.Parameter], fisher: dict[str, Tensor]) -> None:
        """Remember the parameters just reached (the anchor) and their Fisher."""
        if set(fisher) - set(params):
            raise ValueError(f"Fisher for unknown parameters: {sorted(set(fisher) - set(params))}")
        anchor = {name: params[name].detach().clone() for name in fisher}
        fisher = {name: f.detach().clone() for name, f in fisher.items()}
        if self.online and self.terms:
            old, _ = self.terms[0]
            fisher = {name: self.gamma * old.get(name, 0.0) + f for name, f in fisher.items()}
            self.terms = [(fisher, anchor)]
        else:
            self.terms.append((fisher, anchor))

    def penalty(self, params: dict[str, nn.Parameter]) -> Tensor:
        """``(lambda / 2) * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2``, a scalar with gradient."""
        device = next(iter(params.values())).device
        total = torch.zeros((), device=device)
        for fisher, anchor in self.terms:
            for name, f in fisher.items():
                total = total + (f * (params[name] - anchor[name]).pow(2)).sum()
        return 0.5 * self.lam * total
