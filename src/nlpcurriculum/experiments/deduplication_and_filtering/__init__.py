"""The "Deduplication & Filtering" section, one module per stage (entry point: ``experiments``).

- :mod:`.dedup` (stage ``dedup``, item 1): MinHash LSH on planted duplicates, datasketch
  parity and the S-curve;
- :mod:`.filter` (stage ``filter``, item 2): heuristic and perplexity filters on the corpus and
  on injected junk;
- :mod:`.dedup_impact` (stage ``dedup_impact``, item 3): the same LM trained on raw, deduplicated
  and filtered text.

``ITEMS`` is theirs together (:func:`~nlpcurriculum.experiments.lazy_items`).
"""

from nlpcurriculum.experiments import lazy_items

#: The section's stage modules, each named after its DVC stage.
STAGES = ("dedup", "filter", "dedup_impact")
__getattr__ = lazy_items(__name__, STAGES)
