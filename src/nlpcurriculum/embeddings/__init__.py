"""Word embeddings: word2vec (CBOW, Skip-gram) and the geometry and evaluation of word vectors."""

from nlpcurriculum.embeddings.evaluate import (
    AnalogyScore,
    RelationReport,
    analogy_accuracy,
    evaluate_relations,
    roc_auc,
    similarity_auc,
)
from nlpcurriculum.embeddings.sampling import (
    cbow_examples,
    context_inclusion_probability,
    keep_probabilities,
    noise_distribution,
    sample_window_sizes,
    skipgram_pairs,
)
from nlpcurriculum.embeddings.vectors import (
    WordVectors,
    cosine_distance_matrix,
    one_hot_vectors,
    pca_2d,
    random_vectors,
)
from nlpcurriculum.embeddings.vocab import Vocabulary, as_sentences, simple_word_tokenize
from nlpcurriculum.embeddings.word2vec import (
    CBOW,
    SkipGram,
    TrainLog,
    Word2Vec,
    Word2VecConfig,
    build_model,
    train_word2vec,
)

__all__ = [
    "AnalogyScore", "RelationReport", "analogy_accuracy", "evaluate_relations", "roc_auc",
    "similarity_auc", "cbow_examples", "context_inclusion_probability", "keep_probabilities",
    "noise_distribution", "sample_window_sizes", "skipgram_pairs", "WordVectors",
    "cosine_distance_matrix", "one_hot_vectors", "pca_2d", "random_vectors", "Vocabulary",
    "as_sentences", "simple_word_tokenize", "CBOW", "SkipGram", "TrainLog", "Word2Vec",
    "Word2VecConfig", "build_model", "train_word2vec",
]
