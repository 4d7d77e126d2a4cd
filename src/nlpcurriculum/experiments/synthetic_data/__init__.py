"""The "Synthetic Data" section, one module per stage (entry point: ``experiments``).

- :mod:`.synthetic` (stage ``synthetic``, item 1): the toy task corpora's noise, dedup and
  splits checked;
- :mod:`.synthetic_curves` (stage ``synthetic_curves``, item 2): learning curves of one small LM
  on real vs synthetic text.

``ITEMS`` is theirs together (:func:`~nlpcurriculum.experiments.lazy_items`).
"""

from nlpcurriculum.experiments import lazy_items

#: The section's stage modules, each named after its DVC stage.
STAGES = ("synthetic", "synthetic_curves")
__getattr__ = lazy_items(__name__, STAGES)
