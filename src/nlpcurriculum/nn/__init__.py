"""Transformer building blocks written by hand in torch.

One concept per module: :mod:`~nlpcurriculum.nn.positional` (position schemes),
:mod:`~nlpcurriculum.nn.attention` (dot-product and multi-head attention),
:mod:`~nlpcurriculum.nn.causal_attention` (training-time causal attention, backward by hand),
:mod:`~nlpcurriculum.nn.kv_cache`, :mod:`~nlpcurriculum.nn.linear` (a decode-friendly weight
layout), :mod:`~nlpcurriculum.nn.losses` (the output head fused with the cross-entropy),
:mod:`~nlpcurriculum.nn.norms`,
:mod:`~nlpcurriculum.nn.activations` (activations and feed-forward blocks) and
:mod:`~nlpcurriculum.nn.block` (the pre-norm residual block).
"""

from nlpcurriculum.nn.activations import (
    MLP,
    SwiGLU,
    build_activation,
    build_mlp,
    gelu,
    silu,
    swiglu,
    swiglu_hidden,
)
from nlpcurriculum.nn.attention import (
    MultiHeadAttention,
    SingleTokenAttention,
    causal_mask,
    repeat_kv,
    scaled_dot_product_attention,
    single_token_attention,
    softmax,
)
from nlpcurriculum.nn.block import Block
from nlpcurriculum.nn.causal_attention import causal_self_attention
from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.nn.linear import Linear
from nlpcurriculum.nn.norms import LayerNorm, RMSNorm, build_norm
from nlpcurriculum.nn.positional import (
    ALiBiPositions,
    LearnedPositions,
    NoPositions,
    PositionScheme,
    RotaryPositions,
    SinusoidalPositions,
    alibi_slopes,
    build_position,
)

__all__ = [
    "MLP",
    "ALiBiPositions",
    "Block",
    "KVCache",
    "LayerNorm",
    "LearnedPositions",
    "Linear",
    "MultiHeadAttention",
    "NoPositions",
    "PositionScheme",
    "RMSNorm",
    "RotaryPositions",
    "SingleTokenAttention",
    "SinusoidalPositions",
    "SwiGLU",
    "alibi_slopes",
    "build_activation",
    "build_mlp",
    "build_norm",
    "build_position",
    "causal_mask",
    "causal_self_attention",
    "gelu",
    "repeat_kv",
    "scaled_dot_product_attention",
    "silu",
    "swiglu",
    "single_token_attention",
    "softmax",
    "swiglu_hidden",
]
