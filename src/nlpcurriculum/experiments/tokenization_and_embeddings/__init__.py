"""The "Tokenization & Embeddings" section, one module per stage (entry point: ``experiments``).

- :mod:`.tokenizer_compare` (stage ``tokenizer_compare``, items 1-4): WordPiece, BPE, Unigram and
  SentencePiece trained at several vocabulary sizes, compared and checked against their
  reference libraries, and WordPiece vs BPE under one normaliser and pre-tokeniser;
- :mod:`.word_embeddings` (stage ``word_embeddings``, items 5, 6 and 8): CBOW and skip-gram on
  stories with known word relations, and one-hot vs learned embeddings; controls over fresh seeds
  (gensim's Word2Vec, PPMI-SVD) on stories where unrelated words share contexts;
- :mod:`.token_viz` (stage ``token_viz``, item 7): the token visualizer over the tokenizers
  ``tokenizer_compare`` saved.

``ITEMS`` is theirs together (:func:`~nlpcurriculum.experiments.lazy_items`).
"""

from nlpcurriculum.experiments import lazy_items

#: The section's stage modules, each named after its DVC stage.
STAGES = ("tokenizer_compare", "word_embeddings", "token_viz")
__getattr__ = lazy_items(__name__, STAGES)
