"""Transformer building blocks written by hand in torch.

One concept per module: :mod:`~nlpcurriculum.nn.positional` (position schemes),
:mod:`~nlpcurriculum.nn.attention` (dot-product and multi-head attention),
:mod:`~nlpcurriculum.nn.kv_cache`, :mod:`~nlpcurriculum.nn.linear` (``nn.Linear`` with a slot for
decode-time weight copies), :mod:`~nlpcurriculum.nn.norms`,
:mod:`~nlpcurriculum.nn.activations` (activations and feed-forward blocks),
:mod:`~nlpcurriculum.nn.moe` (mixture-of-experts feed-forwards) and
:mod:`~nlpcurriculum.nn.block` (the pre-norm residual block). These read like the textbook; the
hand-written kernels that are faster (training-time causal attention with its backward by hand,
decode-time weight layouts, the output head fused with the cross-entropy) sit in
:mod:`nlpcurriculum.nn.fast`, each behind one dispatch in the module it speeds up.
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
from nlpcurriculum.nn.fast import causal_self_attention
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
