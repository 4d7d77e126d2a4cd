"""The "Positional Embeddings" section (entry point: ``experiments``).

- :mod:`.positional_embeddings` (stage ``positional_embeddings``, items 1-6): five position
  schemes trained on the same byte tokens, length extrapolation, the 3D animation and the
  attention-collapse ablation;
- :mod:`.plots`: its figures, kept apart so the measurements read without the plotting code.

``ITEMS`` is the stage module's (:func:`~nlpcurriculum.experiments.lazy_items`).
"""

from nlpcurriculum.experiments import lazy_items

#: The section's stage modules, each named after its DVC stage.
STAGES = ("positional_embeddings",)
__getattr__ = lazy_items(__name__, STAGES)
