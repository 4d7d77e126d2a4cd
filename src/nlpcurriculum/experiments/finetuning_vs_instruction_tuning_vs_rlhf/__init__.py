"""The "Finetuning vs Instruction Tuning vs RLHF" section, one module per stage (entry point: ``experiments``).

- :mod:`.finetune` (stage ``finetune``, item 1): full fine-tuning of the base LM on a small custom
  dataset, against the base model and the same architecture trained from scratch, with the
  forgetting it causes on the pipeline's own validation split;
- :mod:`.instruct` (stage ``instruct``, item 2): instruction tuning on the synthetic instruction
  tasks, the loss masked to the responses (unmasked as the ablation), with instruction types held
  out to measure transfer to unseen instructions.

``ITEMS`` is theirs together (:func:`~nlpcurriculum.experiments.lazy_items`).
"""

from nlpcurriculum.experiments import lazy_items

#: The section's stage modules, each named after its DVC stage.
STAGES = ("finetune", "instruct")
__getattr__ = lazy_items(__name__, STAGES)
