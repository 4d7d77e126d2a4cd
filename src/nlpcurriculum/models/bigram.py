"""The bigram language model: the baseline every attention model has to beat.

The next token is predicted from the current token alone: ``logits[t] = W[x_t]``, one row of a
learned ``(V, V)`` table per token (Bengio et al. 2003's count model reduced to a lookup; the
"bigram" of Karpathy's makemore). Trained with cross-entropy, the table converges to the log of
the bigram counts (up to a per-row constant), so its loss is the conditional entropy
``H(x_{t+1} | x_t)`` of the training data: all a model without context can reach. Whatever an
attention model gains below that number comes from reading other positions.

Dimension legend: B batch, T tokens, V vocabulary.

Left out: smoothing schemes for count-based n-grams (Kneser-Ney), longer n-grams.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from nlpcurriculum.models.miniformer import ModelOutput

__all__ = ["BigramLM"]


class BigramLM(nn.Module):
    """``logits[b, t] = table[x[b, t]]``: next-token scores from the current token only.

    Same call signature as :class:`~nlpcurriculum.models.miniformer.MiniFormer`, so the trainer
    and the evaluation code treat both alike.

    Args:
        vocab_size: V.
    """

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        self.vocab_size = vocab_size
        self.table = nn.Embedding(vocab_size, vocab_size)
        nn.init.zeros_(self.table.weight)  # start at the uniform distribution, loss log(V)

    def forward(self, idx: Tensor, targets: Tensor | None = None, ignore_index: int = -100) -> ModelOutput:
        """Score the next token.

        Args:
            idx: ``(B, T)`` token ids.
            targets: ``(B, T)`` next-token ids; ``ignore_index`` positions are skipped.
            ignore_index: target id excluded from the loss.

        Returns:
            A :class:`ModelOutput` with ``(B, T, V)`` logits and the mean cross-entropy.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must be (B, T) token ids, got shape {tuple(idx.shape)}")
        logits = self.table(idx)  # (B, T, V)
        loss = None
        if targets is not None:
            B, T, V = logits.shape
            loss = F.cross_entropy(
                logits.reshape(B * T, V), targets.reshape(B * T), ignore_index=ignore_index
            )  # (B*T, V) vs (B*T,)
        return ModelOutput(logits, loss)
