"""A mini-former whose attention is swapped for a long-context variant, and its decode cache.

Variants are parts (docs/CONVENTIONS.md, convention 4): :func:`build_long_model` builds the
ordinary :class:`~nlpcurriculum.models.miniformer.MiniFormer` and replaces each block's attention
with a :class:`~nlpcurriculum.longcontext.sliding_window.SlidingWindowAttention` or an
:class:`~nlpcurriculum.longcontext.infini.InfiniAttention` carrying the same projection weights,
so for one seed every variant starts from the same initialisation (the Infini gate is new).

Variants (``ATTENTIONS``): ``"full"`` (the model as built), ``"sliding"``, ``"infini"``.

Left out: mixing variants across layers (e.g. full attention every k-th block).
"""

from __future__ import annotations

from nlpcurriculum.longcontext.infini import InfiniAttention, InfiniCache
from nlpcurriculum.longcontext.sliding_window import RingKVCache, SlidingWindowAttention
from nlpcurriculum.models.miniformer import MiniFormer, MiniFormerConfig, build_model
from nlpcurriculum.nn.kv_cache import KVCache

__all__ = ["ATTENTIONS", "build_long_model", "new_cache"]

ATTENTIONS = ("full", "sliding", "infini")


def build_long_model(cfg: MiniFormerConfig, attention: str, window: int) -> MiniFormer:
    """A fresh mini-former (seed torch first) with every block's attention of kind ``attention``.

    Args:
        cfg: the architecture (causal; dropout is not applied by the swapped modules).
        attention: one of :data:`ATTENTIONS`.
        window: W of ``"sliding"`` and ``"infini"`` (ignored for ``"full"``).
    """
    if attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
    model = build_model(cfg)
    if attention == "full":
        return model
    for block in model.blocks:
        old = block.attn
        if attention == "sliding":
            new = SlidingWindowAttention(cfg.d_model, cfg.n_heads, cfg.n_kv_heads, window=window,
                                         bias=cfg.bias)
        else:
            if cfg.n_kv_heads != cfg.n_heads:
                raise ValueError("infini attention needs n_kv_heads == n_heads")
            new = InfiniAttention(cfg.d_model, cfg.n_heads, window=window, bias=cfg.bias)
        new.fused = cfg.fused_attention
        new.load_state_dict(old.state_dict(), strict=False)  # the same q/k/v/out weights
        block.attn = new
    return model


def new_cache(model: MiniFormer, attention: str, window: int) -> KVCache | RingKVCache:
    """The decode cache a variant uses: a full :class:`KVCache`, a ring, or an Infini state."""
    n = len(model.blocks)
    if attention == "full":
        return KVCache(n)
    return RingKVCache(n, window) if attention == "sliding" else InfiniCache(n, window)
