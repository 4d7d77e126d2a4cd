"""Curriculum experiments that span library layers: one module per curriculum section.

Each module holds the section's config dataclass (its section of ``params/<section_id>.yaml``,
with nested ``model`` and ``train`` sub-sections that map onto
:class:`~nlpcurriculum.models.miniformer.MiniFormerConfig` and
:class:`~nlpcurriculum.training.trainer.TrainerConfig`; these have no defaults in code: the params
name a preset of ``params/presets.yaml`` and override what differs), one function per curriculum
item returning an :class:`~nlpcurriculum.results.ItemResult`, and a ``run_<stage>`` entry point
the stage script calls. Pure library code: texts or configs in, results out; the stage does the I/O.

- :mod:`~nlpcurriculum.experiments.harness`: what they share (byte tokens, seeded runs, losses, plots).
- :mod:`~nlpcurriculum.experiments.attention`: "Self-Attention & Multihead Attention".
- :mod:`~nlpcurriculum.experiments.transformer_stacking`: "Transformers, QKV, & Stacking".
- :mod:`~nlpcurriculum.experiments.norms_activations`: "Normalization & Activations".

Submodules are imported on demand (``from nlpcurriculum.experiments.attention import ...``), so
importing this package pulls in neither torch nor matplotlib.
"""
