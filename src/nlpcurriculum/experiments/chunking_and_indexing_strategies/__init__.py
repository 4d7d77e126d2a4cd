"""The "Chunking & Indexing Strategies" section, one module per stage (entry point: ``experiments``).

- :mod:`.chunking` (stage ``chunking``, items 1-2): sentence, paragraph and sliding-window
  chunkers and the document -> section -> sentence hierarchical index, by recall@k and nDCG on a
  BEIR-format benchmark (SciFact by default);
- :mod:`.semantic_cache` (stage ``semantic_cache``, item 3): a cache of retrieval results keyed
  by query embeddings, its hit and false-hit rates against the similarity threshold, the latency
  it saves, and its invalidation when documents change.

``ITEMS`` is theirs together (:func:`~nlpcurriculum.experiments.lazy_items`).
"""

from nlpcurriculum.experiments import lazy_items

#: The section's stage modules, each named after its DVC stage.
STAGES = ("chunking", "semantic_cache")
__getattr__ = lazy_items(__name__, STAGES)
