"""Measurement helpers shared by every section, written once.

* :mod:`~nlpcurriculum.metrics.text`: n-grams, distinct-n, BLEU (two smoothings), self-BLEU,
  repetition within a sequence;
* :mod:`~nlpcurriculum.metrics.stats`: entropy, normalized entropy, mutual information, Spearman's
  rank correlation;
* :mod:`~nlpcurriculum.metrics.flops`: FLOPs counted by torch's ``FlopCounterMode`` and the
  ``6 * tokens * weights`` rule for dense training matmuls;
* :mod:`~nlpcurriculum.metrics.timing`: best-of-``repeats`` wall-clock timing and a torch thread
  count for a block;
* :mod:`~nlpcurriculum.metrics.hardware`: the CPU a timing ran on (model, vector flags such as
  native bf16).

A base layer (see docs/ARCHITECTURE.md): it imports torch and numpy, nothing of the rest of
the library, so that any layer may measure with it.
"""
