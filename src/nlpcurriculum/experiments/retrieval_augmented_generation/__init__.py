"""The "Retrieval-Augmented Generation (RAG)" section, one module per stage.

- :mod:`.retrieval` (stage ``retrieval``, items 1-2): a DPR-style bi-encoder trained here with
  FAISS as its vector store, and hybrid BM25 + dense search, on a BEIR-format benchmark
  (SciFact by default).
- :mod:`.rag` (stage ``rag``, item 3): our LM reading retrieved passages of a generated facts
  corpus; ablations of k, reranking and context truncation, closed-book and oracle controls.

``ITEMS`` is theirs together (:func:`~nlpcurriculum.experiments.lazy_items`).
"""

from nlpcurriculum.experiments import lazy_items

#: The section's stage modules, each named after its DVC stage.
STAGES = ("retrieval", "rag")
__getattr__ = lazy_items(__name__, STAGES)
