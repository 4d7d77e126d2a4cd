"""Prefix tuning: learned keys and values that every layer's attention reads before the tokens.

Prefix tuning (Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation",
arXiv:2101.00190) keeps the whole pretrained model frozen and learns, for every layer, ``n``
extra key/value pairs, a "virtual" prefix that each real token may attend to:

    K' = [P_k ; K],   V' = [P_v ; V],   y = softmax(Q K'^T / sqrt(hs) + mask) V'

with ``P_k, P_v`` of shape ``(nkv, n, hs)`` per layer: ``2 n C_kv`` trainable numbers per layer
(``C_kv = nkv * hs``). The prefix is not a sequence of token embeddings (that is prompt tuning):
it enters every layer directly, so it can steer every attention head.

:class:`PrefixAttention` wraps a frozen
:class:`~nlpcurriculum.nn.attention.MultiHeadAttention` (the attention code itself is not
changed): it runs the same projection, rotation and output steps, and concatenates the prefix
before attending. Each query sees every prefix position and, among the real tokens, what its own
mask allows (causal by default). :func:`inject_prefix` swaps it in for every attention module.

Positions follow ``peft``'s prefix tuning on a transformers model (the prefix is handed over as a
KV cache of ``n`` entries, so the real tokens sit at positions ``n .. n+T-1``): with
``shift_positions=True`` (default) the real tokens are rotated (RoPE) as if at ``n + t``, and the
prefix keys are not rotated at all, exactly as a cached key that was never a token. For RoPE
models (the base LM) this equals peft's formulation to fp32 rounding (tested). For learned or
sinusoidal absolute positions, which the mini-former adds to the embeddings before any attention,
the shift cannot be applied here: those models see positions ``0 .. T-1`` where peft's GPT-2 sees
``n .. n+T-1``, and their outputs differ from peft's.

Worked example (tested): one head, ``hs = 1``, one real token with ``q = k = 0``, ``v = 1`` and one
prefix entry with ``P_k = 0``, ``P_v = 3``: both scores are 0, the weights are 1/2 each and the
output is ``(3 + 1) / 2 = 2`` (before the output projection).

Dimension legend: B batch, T tokens, n prefix length, nh query heads, nkv key/value heads, hs
head size, C model width.

Left out: the reparametrisation MLP of the paper (peft's ``prefix_projection=True``), prompt
tuning / P-tuning, KV caches (decoding with a prefix), and ALiBi (its score bias has no position
for a virtual key).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlpcurriculum.nn.attention import MultiHeadAttention, repeat_kv, scaled_dot_product_attention
from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.nn.positional import PositionScheme

__all__ = ["PrefixAttention", "inject_prefix", "prefix_parameters"]


class PrefixAttention(nn.Module):
    """A frozen multi-head attention module with ``n`` learned key/value prefix entries.

    Args:
        attn: the pretrained attention (kept as ``self.attn``).
        n_prefix: n, the number of virtual key/value positions.
        init_std: the prefix starts as ``N(0, init_std^2)`` noise.
        shift_positions: rotate the real tokens as if they sat after the prefix (peft's layout).
    """

    def __init__(self, attn: MultiHeadAttention, n_prefix: int, init_std: float = 0.02,
                 shift_positions: bool = True) -> None:
        super().__init__()
        if n_prefix < 1:
            raise ValueError(f"n_prefix must be >= 1, got {n_prefix}")
        self.attn, self.n_prefix, self.shift_positions = attn, n_prefix, shift_positions
        w = attn.qkv.weight
        shape = (attn.n_kv_heads, n_prefix, attn.head_dim)  # (nkv, n, hs)
        self.prefix_k = nn.Parameter(torch.randn(shape, dtype=w.dtype, device=w.device) * init_std)
        self.prefix_v = nn.Parameter(torch.randn(shape, dtype=w.dtype, device=w.device) * init_std)

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
        """Attend over ``[prefix; tokens]``; the arguments are those of ``MultiHeadAttention``.

        Returns:
            ``(y, weights)``: ``(B, T, C)`` and ``(B, nh, T, n + T)`` weights or ``None``.
        """
        if kv_cache is not None:
            raise NotImplementedError("prefix tuning here runs without a KV cache")
        if position is not None and position.biases_scores:
            raise NotImplementedError("prefix tuning with a score bias (ALiBi) is left out")
        a, n = self.attn, self.n_prefix
        B, T, C = x.shape
        nh, nkv, hs = a.n_heads, a.n_kv_heads, a.head_dim
        if positions is None:
            positions = torch.arange(T, device=x.device)
        if self.shift_positions:
            positions = positions + n  # the real tokens come after the n virtual ones
            if position is not None:
                position.ensure_length(int(positions[-1]) + 1)
        # 1. queries, keys, values of the real tokens, as the wrapped module computes them
        heads = a.qkv(x).view(B, T, nh + 2 * nkv, hs).transpose(1, 2)  # (B, nh+2nkv, T, hs)
        qk, v = heads.split([nh + nkv, nkv], dim=1)  # (B, nh+nkv, T, hs), (B, nkv, T, hs)
        if position is not None:
            qk = position.rotate_heads(qk, positions)  # the prefix keys are never rotated
        q, k = qk.split([nh, nkv], dim=1)  # (B, nh, T, hs), (B, nkv, T, hs)
        # 2. the prefix goes in front of the keys and values
        k = torch.cat([self.prefix_k.expand(B, nkv, n, hs), k], dim=2)  # (B, nkv, n+T, hs)
        v = torch.cat([self.prefix_v.expand(B, nkv, n, hs), v], dim=2)  # (B, nkv, n+T, hs)
        # 3. every query sees the whole prefix, and the real keys its own mask allows
        keep = self._keep(B, T, x.device, attn_mask, padding_mask)  # (B|1, 1, T, n+T)
        k, v = repeat_kv(k, nh // nkv), repeat_kv(v, nh // nkv)  # (B, nh, n+T, hs)
        dropout_p = a.dropout if self.training else 0.0
        if need_weights or not a.fused:
            y, weights = scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=dropout_p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=dropout_p)
            weights = None
        y = y.transpose(1, 2).reshape(B, T, nh * hs)  # (B, nh, T, hs) -> (B, T, C)
        return a.proj(y), (weights if need_weights else None)

    def _keep(self, B: int, T: int, device: torch.device, attn_mask: Tensor | None,
              padding_mask: Tensor | None) -> Tensor:
        """Bool ``(B|1, 1, T, n + T)``: True where a query may attend."""
        n = self.n_prefix
        if attn_mask is not None:
            if attn_mask.dtype != torch.bool or attn_mask.shape[-2:] != (T, T):
                raise ValueError(f"attn_mask must be bool (..., {T}, {T}), got "
                                 f"{attn_mask.dtype} {tuple(attn_mask.shape)}")
            real = attn_mask.reshape(-1, 1, T, T)  # (B|1, 1, T, T)
        elif self.attn.causal:
            real = torch.ones(T, T, dtype=torch.bool, device=device).tril()[None, None]
        else:
            real = torch.ones(1, 1, T, T, dtype=torch.bool, device=device)
        if padding_mask is not None:
            if padding_mask.shape != (B, T):
                raise ValueError(f"padding_mask must be ({B}, {T}), got {tuple(padding_mask.shape)}")
            real = real & padding_mask.bool()[:, None, None, :]  # (B, 1, T, T)
        virtual = torch.ones(real.size(0), 1, T, n, dtype=torch.bool, device=device)
        return torch.cat([virtual, real], dim=-1)  # (B|1, 1, T, n+T)

    def extra_repr(self) -> str:
        return f"n_prefix={self.n_prefix}, shift_positions={self.shift_positions}"


def inject_prefix(model: nn.Module, n_prefix: int, init_std: float = 0.02,
                  shift_positions: bool = True) -> list[str]:
    """Swap a :class:`PrefixAttention` in for every ``MultiHeadAttention`` of ``model``.

    Returns:
        The dotted names of the wrapped attention modules, in module order.
    """
    names = [n for n, m in model.named_modules() if n and isinstance(m, MultiHeadAttention)]
    if not names:
        raise ValueError("the model has no MultiHeadAttention module to add a prefix to")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, PrefixAttention(getattr(parent, child), n_prefix, init_std,
                                               shift_positions))
    return names


def prefix_parameters(model: nn.Module) -> list[tuple[Tensor, Tensor]]:
    """``[(P_k, P_v), ...]``, one pair per :class:`PrefixAttention` in module order."""
    return [(m.prefix_k, m.prefix_v) for m in model.modules() if isinstance(m, PrefixAttention)]
