"""The output head and the cross-entropy fused, a chunk of rows at a time.

A language model's loss is ``cross_entropy(h @ W.T, targets)``: ``h`` the final hidden states
``(N, C)``, ``W`` the output head ``(V, C)``. Done plainly, it writes the ``(N, V)`` logits
(32 MB for 2048 tokens and a 4096 vocabulary), reads them back for the log-softmax, writes that,
and in the backward pass writes a third ``(N, V)`` tensor of gradients. Far larger than the
cache, each of these passes goes to memory.

:func:`linear_cross_entropy` computes the same loss a chunk of rows at a time (Wijmans et al.
2024, "Cut Your Losses in Large-Vocabulary Language Models", arXiv:2411.09009; Liger Kernel's
fused linear cross-entropy, Hsu et al. 2024, arXiv:2410.10989). A chunk's logits stay in the
cache while its loss and its gradient are formed, since the gradient is known in closed form:

    d loss_i / d logits_i = softmax(logits_i) - onehot(target_i)

so the forward pass turns the chunk's logits into that gradient in place and immediately
multiplies it back through the head: ``dh = G @ W`` and ``dW += G.T @ h``. The backward pass only
scales the stored ``dh`` and ``dW`` by the incoming gradient. Same FLOPs as the plain path, no
``(N, V)`` tensor. On this CPU (2048 x 128 hidden states, vocabulary 4096, best of 15 in one run)
it took the head's forward and backward from 81 to 48-52 ms on two threads, 145 to 93 ms on one.

Used by :class:`~nlpcurriculum.models.miniformer.MiniFormer` when the caller asks for the loss
without the logits (``return_logits=False``, as :func:`~nlpcurriculum.training.trainer.lm_loss`
does); otherwise the model writes the logits and calls ``F.cross_entropy``, the plain path this
function is tested against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["linear_cross_entropy"]

# a chunk of logits of about this many bytes fits the 2 MB L2 cache of this project's machines
# (2048 x 128 states, vocabulary 4096: 52, 49, 50 ms with chunks of 64, 128, 256 rows)
CHUNK_BYTES = 2 << 20


class LinearCrossEntropyFunction(torch.autograd.Function):
    """Mean cross-entropy of ``h @ w.T``; the gradients are formed in the forward pass.

    Call it through :func:`linear_cross_entropy`. Shapes: ``h (N, C)``, ``w (V, C)``,
    ``targets (N,)``.
    """

    @staticmethod
    def forward(ctx, h: Tensor, w: Tensor, targets: Tensor, ignore_index: int, chunk: int) -> Tensor:
        keep = targets != ignore_index  # (N,)
        safe = torch.where(keep, targets, 0)  # (N,): any valid id where ignored
        all_kept = bool(keep.all())
        need_dh, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dh = torch.empty_like(h) if need_dh else None  # (N, C)
        dw = torch.zeros_like(w) if need_dw else None  # (V, C)
        total = h.new_zeros(())
        for s in range(0, h.size(0), chunk):
            hc, tc, kc = h[s : s + chunk], safe[s : s + chunk, None], keep[s : s + chunk, None]
            g = torch.log_softmax(hc @ w.t(), dim=-1)  # (c, V) log-probabilities
            total -= (g.gather(1, tc) * kc).sum()  # sum of -log p(target) over kept rows
            g.exp_()  # softmax, in place
            g.scatter_add_(1, tc, torch.full_like(tc, -1, dtype=g.dtype))  # - onehot(target)
            if not all_kept:
                g.mul_(kc)  # ignored rows contribute nothing
            if need_dh:
                torch.mm(g, w, out=dh[s : s + chunk])  # (c, V) @ (V, C)
            if need_dw:
                dw.addmm_(g.t(), hc)  # (V, c) @ (c, C)
        n = keep.sum()
        ctx.save_for_backward(dh if need_dh else None, dw if need_dw else None, n)
        return total / n  # 0 / 0 = nan when every target is ignored, as F.cross_entropy

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None, None]:
        dh, dw, n = ctx.saved_tensors
        scale = grad / n  # the mean's 1/n times the incoming gradient
        return (dh * scale if dh is not None else None,
                dw * scale if dw is not None else None, None, None, None)


def linear_cross_entropy(h: Tensor, weight: Tensor, targets: Tensor, ignore_index: int = -100,
                         chunk_rows: int | None = None) -> Tensor:
    """``F.cross_entropy(h @ weight.T, targets, ignore_index=ignore_index)`` without the logits.

    Args:
        h: hidden states, ``(N, C)``.
        weight: the output head, ``(V, C)`` (no bias).
        targets: ``(N,)`` ids; rows equal to ``ignore_index`` are left out of the mean.
        ignore_index: the id that marks a row without a target.
        chunk_rows: rows per chunk; default: as many as make about 2 MB of logits (at least 16).

    Returns:
        The mean loss, a scalar. Under autocast or in a dtype other than fp32/fp64 this falls
        back to the plain computation (the fused path keeps fp32 logits only).
    """
    if h.dim() != 2 or weight.dim() != 2 or h.size(1) != weight.size(1) or targets.shape != h.shape[:1]:
        raise ValueError(f"expected h (N, C), weight (V, C), targets (N,); got {tuple(h.shape)}, "
                         f"{tuple(weight.shape)}, {tuple(targets.shape)}")
    if torch.is_autocast_enabled(h.device.type) or h.dtype not in (torch.float32, torch.float64):
        return F.cross_entropy(h @ weight.t(), targets, ignore_index=ignore_index)
    chunk = chunk_rows or max(16, CHUNK_BYTES // (weight.size(0) * h.element_size()))
    if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
        return LinearCrossEntropyFunction.apply(h, weight, targets, ignore_index, chunk)
    keep = targets != ignore_index
    safe = torch.where(keep, targets, 0)
    total = h.new_zeros(())
    for s in range(0, h.size(0), chunk):  # evaluation: the same chunks, no gradients
        logp = torch.log_softmax(h[s : s + chunk] @ weight.t(), dim=-1)  # (c, V)
        total -= (logp.gather(1, safe[s : s + chunk, None]).squeeze(1) * keep[s : s + chunk]).sum()
    return total / keep.sum()
