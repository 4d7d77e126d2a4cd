"""Hand-written fast kernels, each behind one dispatch in the plain module it speeds up.

The modules of :mod:`nlpcurriculum.nn` read like the textbook; where a kernel written out by
hand is faster on this project's CPUs, it sits here, computes the same function, is tested
against the plain path (``tests/nn/fast/``), and is chosen by one check at the top of the plain
code:

- :mod:`.causal_attention`: training-time causal self-attention with its backward pass by hand
  (``MultiHeadAttention.forward``: ``if fast.can_train_causal(...)``);
- :mod:`.decode_layout`: transposed and oneDNN-packed weight copies for one- and few-row
  products while decoding (``Linear.forward``: its ``decode`` slot, filled by
  :func:`decode_layout`);
- :mod:`.fused_loss`: the output head and the cross-entropy fused, a chunk of rows at a time
  (``MiniFormer.forward`` with ``return_logits=False``).
"""

from nlpcurriculum.nn.fast.causal_attention import (
    MATERIALIZED_MAX_T,
    can_train_causal,
    causal_self_attention,
)
from nlpcurriculum.nn.fast.decode_layout import PACK_MIN_ELEMENTS, DecodeWeights, decode_layout
from nlpcurriculum.nn.fast.fused_loss import linear_cross_entropy

__all__ = [
    "MATERIALIZED_MAX_T",
    "PACK_MIN_ELEMENTS",
    "DecodeWeights",
    "can_train_causal",
    "causal_self_attention",
    "decode_layout",
    "linear_cross_entropy",
]
