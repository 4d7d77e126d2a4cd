"""The curriculum item experiments: word2vec (CBOW / Skip-gram) and one-hot vs learned."""

from __future__ import annotations

import pytest

from nlpcurriculum.data.synthetic.stories import generate_stories
from nlpcurriculum.embeddings import Word2VecConfig, simple_word_tokenize
from nlpcurriculum.experiments.tokenization_and_embeddings.word_embeddings import PROBE_WORDS, one_hot_vs_learned_item, word2vec_item


@pytest.fixture(scope="module")
def trained():
    sents = [simple_word_tokenize(s) for s in generate_stories(500, seed=2)]
    cfg = Word2VecConfig(arch="skipgram", dim=32, epochs=3, min_count=2)
    return word2vec_item("tokenization-and-embeddings/6", sents, cfg, min_analogy_gain=0.15)


def test_word2vec_item_checks_its_findings(trained):
    vectors, result = trained
    assert result.item == "tokenization-and-embeddings/6"
    assert all(f.passed for f in result.findings), result.findings
    assert result.metrics["analogy_acc"] > result.metrics["random_init/analogy_acc"]
    assert {"loss.png", "pca_gender.png", "pca_capital.png"} <= set(result.figures)
    # metrics must be deterministic (they go to metrics/<stage>.json and dvc.lock): no timing
    assert not any("second" in name for name in result.metrics)
    assert "words/s" in result.texts["training.txt"]
    assert "king : queen :: man :" in result.texts["neighbours.txt"]
    assert len(result.series["loss"]) >= 50


def test_one_hot_vs_learned_item(trained):
    vectors, _ = trained
    result = one_hot_vs_learned_item("tokenization-and-embeddings/8", {"skip-gram": vectors})
    by_metric = {f.metric: f for f in result.findings}
    assert by_metric["one-hot/max_abs_distance_minus_1"].value == 0.0
    assert by_metric["one-hot/abs_auc_minus_half"].passed
    assert by_metric["skip-gram/distance_gap"].passed, result.metrics
    assert result.metrics["one-hot/mean_distance_related"] == 1.0
    fig = result.figures["cosine_distances.png"]
    assert len([ax for ax in fig.axes if ax.images]) == 2
    assert len(PROBE_WORDS) == len(set(PROBE_WORDS))
