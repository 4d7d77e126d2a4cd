"""Three pretraining objectives on the same token windows: causal LM, masked LM, prefix LM.

All three train the same :class:`~nlpcurriculum.models.miniformer.MiniFormer` on the same
``(B, T+1)`` windows of a token stream; they differ only in what the model sees and what it is
scored on:

- **Causal LM** (GPT; Radford et al. 2018): every position predicts the next token from the
  tokens before it. Loss on all T positions.
- **Masked LM** (BERT; Devlin et al. 2019, arXiv:1810.04805, section 3.1): 15% of the positions
  are *selected*; of those, 80% are replaced by a ``[MASK]`` id, 10% by a random token and 10%
  are left unchanged. Attention is bidirectional and the model predicts the original token at the
  selected positions only (loss on ~15% of the tokens). The random / unchanged cases keep the
  model from learning that only ``[MASK]`` positions matter, since there is no ``[MASK]`` at
  fine-tuning time. The mask id lies beyond the byte vocabulary (``MASK_ID = 256``).
- **Prefix LM** (T5's prefix-LM variant, Raffel et al. 2020, arXiv:1910.10683, section 3.2.1;
  UniLM, Dong et al. 2019, arXiv:1905.03197): each window is cut at a random length ``P``; the
  prefix ``x[:P]`` attends bidirectionally inside itself, the rest is causal (it sees the whole
  prefix and itself's past). The loss is on the continuation only: positions ``P-1 .. T-1``
  predict ``x[P] .. x[T]`` (a target inside the prefix would be visible to earlier positions).

Equal compute: the three see the same windows (same batcher seed), the same number of
forward/backward tokens, the same model size (the vocabulary includes ``MASK_ID`` for all of
them, so their embeddings have the same shape). What differs is how many of those tokens carry a
loss, which is the point of the comparison (ELECTRA, Clark et al. 2020, measures the same 15%
inefficiency of MLM).

Dimension legend: B batch, T window length, V vocabulary.

Left out: span corruption (T5's default denoising objective), whole-word masking, next-sentence
prediction, the T5 encoder-decoder split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "MASK_ID",
    "OBJECTIVES",
    "MlmCorruption",
    "causal_loss",
    "mlm_corrupt",
    "mlm_loss",
    "objective_loss",
    "prefix_lm_loss",
    "prefix_lm_mask",
    "sample_prefix_lengths",
]

MASK_ID = 256  # one id past the 256 byte values
OBJECTIVES = ("causal", "mlm", "prefix")
IGNORE = -100


@dataclass(frozen=True)
class MlmCorruption:
    """The BERT corruption of one batch.

    Attributes:
        inputs: the corrupted ids, ``(B, T)``.
        targets: the original id at selected positions, ``-100`` elsewhere, ``(B, T)``.
        selected: which positions were selected, ``(B, T)`` bool.
        kind: 0 not selected, 1 ``[MASK]``, 2 random token, 3 unchanged; ``(B, T)`` int8.
    """

    inputs: Tensor
    targets: Tensor
    selected: Tensor
    kind: Tensor


def mlm_corrupt(
    ids: Tensor,
    generator: torch.Generator,
    *,
    mask_prob: float = 0.15,
    mask_id: int = MASK_ID,
    vocab: int = 256,
    p_mask: float = 0.8,
    p_random: float = 0.1,
) -> MlmCorruption:
    """Select ``mask_prob`` of the positions; mask 80%, randomize 10%, keep 10% of them.

    Each position is selected independently with probability ``mask_prob`` (BERT's 15%); a window
    with no selected position gets one (so every window has a target). A "random" replacement is
    drawn uniformly from the ``vocab`` real tokens (it may equal the original, as in BERT).

    Args:
        ids: ``(B, T)`` token ids ``< vocab``.
        generator: the random source (corruption is part of the data, so it is seeded).
        mask_prob: selection probability.
        mask_id: the ``[MASK]`` id (``>= vocab``).
        vocab: number of real tokens a random replacement is drawn from.
        p_mask, p_random: shares of the selected positions that become ``[MASK]`` / random;
            the remaining ``1 - p_mask - p_random`` stay unchanged.
    """
    if not 0.0 < mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in (0, 1], got {mask_prob}")
    if p_mask < 0 or p_random < 0 or p_mask + p_random > 1:
        raise ValueError(f"p_mask={p_mask} and p_random={p_random} must be >= 0 and sum to <= 1")
    B, T = ids.shape
    selected = torch.rand(B, T, generator=generator) < mask_prob  # (B, T)
    empty = ~selected.any(dim=1)  # (B,)
    if empty.any():
        forced = torch.randint(0, T, (B,), generator=generator)
        selected[empty, forced[empty]] = True
    u = torch.rand(B, T, generator=generator)  # which of the three cases
    to_mask = selected & (u < p_mask)
    to_random = selected & (u >= p_mask) & (u < p_mask + p_random)
    random_ids = torch.randint(0, vocab, (B, T), generator=generator)
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, random_ids, inputs)
    targets = torch.where(selected, ids, torch.full_like(ids, IGNORE))
    kind = torch.zeros(B, T, dtype=torch.int8)
    kind[selected] = 3
    kind[to_random] = 2
    kind[to_mask] = 1
    return MlmCorruption(inputs, targets, selected, kind)


def prefix_lm_mask(prefix_len: Tensor, T: int) -> Tensor:
    """Attention mask of a prefix LM: bidirectional inside the prefix, causal after it.

    Query ``i`` may attend key ``j`` when ``j <= i`` (causal) or ``j < P`` (inside the prefix).
    Worked example, ``T = 4``, ``P = 2`` (rows are queries)::

        1 1 0 0
        1 1 0 0
        1 1 1 0
        1 1 1 1

    Args:
        prefix_len: ``(B,)`` prefix lengths ``P`` in ``[0, T]`` (0 = a plain causal LM).
        T: the window length.

    Returns:
        ``(B, T, T)`` bool, True where the query may attend (the model's ``attn_mask``).
    """
    pos = torch.arange(T)
    causal = pos[None, :] <= pos[:, None]  # (T, T)
    in_prefix = pos[None, None, :] < prefix_len[:, None, None]  # (B, 1, T): key inside the prefix
    return causal[None] | in_prefix  # (B, T, T)


def sample_prefix_lengths(B: int, T: int, generator: torch.Generator) -> Tensor:
    """Prefix lengths uniform in ``[1, T-1]``: at least one prefix token and one continuation."""
    if T < 2:
        raise ValueError(f"a prefix LM needs windows of >= 2 tokens, got T={T}")
    return torch.randint(1, T, (B,), generator=generator)


def causal_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Next-token cross-entropy on every position: ``model(x, targets=y)``."""
    return model(x, targets=y).loss


def mlm_loss(model: nn.Module, window: Tensor, generator: torch.Generator, mask_prob: float = 0.15) -> Tensor:
    """BERT loss on a ``(B, T)`` window: corrupt, run bidirectionally, score selected positions.

    The model must be bidirectional (``MiniFormerConfig(causal=False)``).
    """
    c = mlm_corrupt(window, generator, mask_prob=mask_prob)
    return model(c.inputs, targets=c.targets).loss


def prefix_lm_loss(model: nn.Module, x: Tensor, y: Tensor, prefix_len: Tensor) -> Tensor:
    """Prefix-LM loss: bidirectional prefix, causal continuation, loss on the continuation.

    Positions ``i >= P - 1`` are scored (position ``P-1`` predicts the first continuation token
    ``x[P]``); earlier targets lie inside the prefix, which every prefix position can see.
    """
    B, T = x.shape
    mask = prefix_lm_mask(prefix_len, T)  # (B, T, T)
    scored = torch.arange(T)[None, :] >= (prefix_len[:, None] - 1)  # (B, T)
    targets = torch.where(scored, y, torch.full_like(y, IGNORE))
    return model(x, targets=targets, attn_mask=mask).loss


def objective_loss(objective: str, generator: torch.Generator, mask_prob: float = 0.15):
    """A ``loss_fn(model, (x, y))`` for the :class:`~nlpcurriculum.training.trainer.Trainer`.

    All three read the same ``(x, y)`` batch (``y`` is ``x`` shifted by one): MLM corrupts the
    window ``x`` (T tokens), the LMs predict ``y``. ``generator`` draws the corruption / prefix
    lengths, so a run is reproducible.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose from {OBJECTIVES}")

    def loss_fn(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        if objective == "causal":
            return causal_loss(model, x, y)
        if objective == "mlm":
            return mlm_loss(model, x, generator, mask_prob)
        return prefix_lm_loss(model, x, y, sample_prefix_lengths(x.size(0), x.size(1), generator))

    return loss_fn
