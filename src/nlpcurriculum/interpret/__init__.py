"""Looking inside trained models: attention-head statistics and Q/K/V surgery.

:mod:`~nlpcurriculum.interpret.heads` measures attention maps (how different heads are, how
focused, how far back they read); :mod:`~nlpcurriculum.interpret.qkv` reads and rewires the
queries, keys and values of every layer through forward hooks.
"""

from nlpcurriculum.interpret.heads import (
    attention_entropy,
    head_js_matrix,
    js_divergence,
    mean_attention_distance,
    mean_pairwise_js,
    previous_token_weight,
)
from nlpcurriculum.interpret.qkv import (
    QKV_INTERVENTIONS,
    LayerQKV,
    capture_qkv,
    intervene_qkv,
    split_fused_qkv,
)

__all__ = [
    "QKV_INTERVENTIONS",
    "LayerQKV",
    "attention_entropy",
    "capture_qkv",
    "head_js_matrix",
    "intervene_qkv",
    "js_divergence",
    "mean_attention_distance",
    "mean_pairwise_js",
    "previous_token_weight",
    "split_fused_qkv",
]
