"""The pre-norm transformer block: attention and MLP sub-layers, each on a residual branch.

    x = x + dropout(attn(norm1(x)))     # tokens exchange information
    x = x + dropout(mlp(norm2(x)))      # each token transforms its own features

The residual stream ``x`` is a running sum every sub-layer reads from and writes into. The
gradient reaches early layers through the identity path undiminished, which is what makes deep
stacks trainable (He et al. 2015, arXiv:1512.03385). Normalizing the *input* of each branch
("pre-norm", GPT-2 onwards; Xiong et al. 2020, arXiv:2002.04745) rather than the sum
("post-norm", the original transformer, arXiv:1706.03762) keeps the stream itself unnormalized
and lets the block train without a carefully tuned warmup.

The block is assembled from parts passed in (an attention module, two norms, an MLP), so a
variant is a different part, not a flag: ``Block(MultiHeadAttention(...), RMSNorm(C), ...)``.

Dimension legend: B batch, T tokens, C = d_model, nh heads, T_k attended keys.

Left out: post-norm and parallel (GPT-J: attention and MLP side by side) block layouts,
stochastic depth, layer scale.
"""

from __future__ import annotations

from torch import Tensor, nn

from nlpcurriculum.nn.attention import MultiHeadAttention
from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.nn.positional import PositionScheme

__all__ = ["Block"]


class Block(nn.Module):
    """One pre-norm residual transformer block.

    Args:
        attn: the attention module (called with the keyword arguments of
            :meth:`MultiHeadAttention.forward`).
        mlp: the feed-forward module, ``(B, T, C) -> (B, T, C)``.
        norm1: norm before attention.
        norm2: norm before the MLP.
        dropout: residual dropout on each branch's output (training only).
    """

    def __init__(
        self,
        attn: MultiHeadAttention,
        mlp: nn.Module,
        norm1: nn.Module,
        norm2: nn.Module,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1, self.attn, self.norm2, self.mlp = norm1, attn, norm2, mlp
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # p=0: skip the call

    def forward(
        self,
        x: Tensor,
        *,
        position: PositionScheme | None = None,
        positions: Tensor | None = None,
        attn_mask: Tensor | None = None,
        padding_mask: Tensor | None = None,
        kv_cache: KVCache | None = None,
        layer_idx: int = 0,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Apply the block.

        Args:
            x: residual stream, ``(B, T, C)``.
            position, positions, attn_mask, padding_mask, kv_cache, layer_idx, need_weights:
                passed to the attention module.

        Returns:
            ``(x, weights)``: the updated ``(B, T, C)`` stream and ``(B, nh, T, T_k)`` attention
            weights or ``None``.
        """
        a, weights = self.attn(
            self.norm1(x),
            position=position,
            positions=positions,
            attn_mask=attn_mask,
            padding_mask=padding_mask,
            kv_cache=kv_cache,
            layer_idx=layer_idx,
            need_weights=need_weights,
        )
        x = x + self.drop(a)  # (B, T, C)
        x = x + self.drop(self.mlp(self.norm2(x)))  # (B, T, C)
        return x, weights
