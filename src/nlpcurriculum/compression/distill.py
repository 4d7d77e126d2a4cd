"""Knowledge distillation for language models: a student trained towards a teacher.

A student LM learns from the teacher's whole next-token distribution ``p`` instead of (or as
well as) the one observed token (Hinton et al. 2015, "Distilling the Knowledge in a Neural
Network", arXiv:1503.02531; for speculative-decoding drafts, DistillSpec, Zhou et al. 2023,
arXiv:2310.08461). Per token the loss mixes the two:

    loss = (1 - w) * CE(y, q) + w * KL(p || q),   KL(p || q) = sum_x p(x) (log p(x) - log q(x))

with ``q`` the student's distribution (the forward KL: the student must cover every token the
teacher gives mass to). :func:`kl_to_target` measures the same KL on held-out windows: for a
draft model it predicts the acceptance rate, since a drafted token is accepted with probability
``sum_x min(p, q) = 1 - TV(p, q)`` and ``TV <= sqrt(KL / 2)`` (Pinsker).

Worked example (tested): over two ids, ``p = (1/2, 1/2)`` and ``q = (3/4, 1/4)`` give
``KL(p || q) = 1/2 log((1/2) / (3/4)) + 1/2 log((1/2) / (1/4)) = 1/2 log(4/3) = 0.1438`` nats.

Dimension legend: B batch, T tokens, V vocabulary.

Left out: a distillation temperature (both sides at T = 1), the reverse KL and generalized JSD
of on-policy distillation, hidden-state matching.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlpcurriculum.training.data import TokenBatcher

__all__ = ["distill_loss", "kl_to_target"]


def distill_loss(target: nn.Module, weight: float) -> Callable[[nn.Module, tuple[Tensor, Tensor]], Tensor]:
    """A trainer loss: ``(1 - weight) * CE(y) + weight * KL(p_target || q_draft)`` per token.

    Args:
        target: the teacher; returns ``.logits`` ``(B, T, V)``; run without gradients.
        weight: the KL's share in ``[0, 1]``; 0 is the plain cross-entropy (the teacher is not
            run at all).

    Returns:
        ``loss(model, (x, y))`` for :class:`~nlpcurriculum.training.trainer.Trainer`'s
        ``loss_fn``; ``model(x, targets=y)`` must return ``.loss`` (mean CE) and ``.logits``.
    """

    def loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch  # (B, T) each
        out = model(x, targets=y)
        if weight == 0.0:
            return out.loss
        with torch.no_grad():
            p_log = F.log_softmax(target(x).logits.float(), dim=-1)  # (B, T, V)
        q_log = F.log_softmax(out.logits.float(), dim=-1)  # (B, T, V)
        kl = F.kl_div(q_log.flatten(0, 1), p_log.flatten(0, 1), log_target=True, reduction="batchmean")
        return (1.0 - weight) * out.loss + weight * kl

    return loss


@torch.no_grad()
def kl_to_target(target: nn.Module, draft: nn.Module, data: TokenBatcher, batch_size: int,
                 n_batches: int) -> float:
    """Mean ``KL(p_target || q_draft)`` per token over ``data.eval_batches(batch_size, n_batches)``
    (nats)."""
    total, count = 0.0, 0
    for x, _ in data.eval_batches(batch_size, n_batches):
        p_log = F.log_softmax(target(x).logits.float(), dim=-1).flatten(0, 1)  # (B*T, V)
        q_log = F.log_softmax(draft(x).logits.float(), dim=-1).flatten(0, 1)
        total += float(F.kl_div(q_log, p_log, log_target=True, reduction="sum"))
        count += p_log.size(0)
    return total / count
