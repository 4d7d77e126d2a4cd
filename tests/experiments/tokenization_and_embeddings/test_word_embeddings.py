"""The curriculum item experiments: word2vec (CBOW / Skip-gram) and one-hot vs learned."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nlpcurriculum.data.synthetic.stories import generate_stories
from nlpcurriculum.embeddings import Word2VecConfig, simple_word_tokenize
from nlpcurriculum.experiments.tokenization_and_embeddings.word_embeddings import (
    PROBE_WORDS,
    SeedScores,
    one_hot_vs_learned_item,
    seed_scores,
    word2vec_item,
)

SKIPGRAM = Word2VecConfig(arch="skipgram", dim=32, epochs=3, min_count=2)


def _stories(seed: int) -> list[list[str]]:
    return [simple_word_tokenize(s) for s in generate_stories(500, seed=seed)]


@pytest.fixture(scope="module")
def trained():
    replicates = [seed_scores(_stories(seed), replace(SKIPGRAM, seed=seed)) for seed in (3, 4)]
    return word2vec_item("tokenization-and-embeddings/6", _stories(2), SKIPGRAM, min_analogy_gain=0.15,
                         replicates=replicates)


def test_word2vec_item_checks_its_findings(trained):
    vectors, result = trained
    assert result.item == "tokenization-and-embeddings/6"
    assert all(f.passed for f in result.findings), result.findings
    assert [f.n for f in result.findings] == [3, 3]
    assert 0.0 < result.metrics["replicate1/analogy_acc"] <= 1.0
    assert result.metrics["analogy_acc"] > result.metrics["random_init/analogy_acc"]
    assert {"loss.png", "pca_gender.png", "pca_capital.png"} <= set(result.figures)
    # metrics must be deterministic (they go to metrics/<stage>.json and dvc.lock): no timing
    assert not any("second" in name for name in result.metrics)
    assert "words/s" in result.texts["training.txt"]
    assert "king : queen :: man :" in result.texts["neighbours.txt"]
    assert len(result.series["loss"]) >= 50


def test_word2vec_findings_fail_on_one_seed_and_on_untrained_replicates(trained):
    """A single sample never passes; replicates no better than an untrained table pull the mean
    gain under the bound."""
    _, alone = word2vec_item("tokenization-and-embeddings/6", _stories(2), SKIPGRAM, min_analogy_gain=0.15)
    assert not any(f.passed for f in alone.findings)
    chance = [SeedScores(analogy_acc=0.0, untrained_analogy_acc=0.0, similarity_auc=0.5)] * 4
    _, mixed = word2vec_item("tokenization-and-embeddings/6", _stories(2), SKIPGRAM, min_analogy_gain=0.15,
                             replicates=chance)
    assert not any(f.passed for f in mixed.findings), mixed.findings


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


# ---------------------------------------------------------------------------------- controls

import numpy as np  # noqa: E402

from nlpcurriculum.embeddings.ppmi import PPMIConfig, ppmi_svd_vectors  # noqa: E402
from nlpcurriculum.embeddings.vectors import random_vectors  # noqa: E402
from nlpcurriculum.experiments.tokenization_and_embeddings.word_embeddings import (  # noqa: E402
    FRAME_TEMPLATES,
    ControlsConfig,
    WordEmbeddingsChecks,
    WordEmbeddingsConfig,
    control_scores,
    controls_item_parts,
    gensim_word2vec,
    run_controls,
    shared_context_stories,
)

CHECKS = WordEmbeddingsChecks()
PPMI = PPMIConfig(dim=32, window=5, min_count=2)


def test_shared_context_stories_put_every_unrelated_pair_side_by_side():
    texts, pairs = shared_context_stories(400, seed=1, frames_per_story=1.0)
    assert len(texts) == 400 and texts == shared_context_stories(400, seed=1)[0]  # deterministic
    unrelated = {(a, b) for a, b, r in pairs if not r}
    seen = set()
    for t in texts:
        words = simple_word_tokenize(t)
        seen |= {(a, b) for a, b in unrelated if any(words[i:i + 2] == [a, "and"] and words[i + 2] == b
                                                   or words[i:i + 2] == [b, "and"] and words[i + 2] == a
                                                   for i in range(len(words) - 2))}
    assert len(seen) >= 0.9 * len(unrelated)  # the evaluation is no longer saturated by construction
    plain, _ = shared_context_stories(5, seed=1, frames_per_story=0.0)
    assert plain == generate_stories(5, seed=1)
    half, _ = shared_context_stories(200, seed=1, frames_per_story=0.5)
    frames = sum(t.count(" said ") + t.count("someone wrote") + t.count("shouted") for t in half)
    assert 60 <= frames <= 140  # one frame with probability 0.5
    assert len(FRAME_TEMPLATES) == 3


def _frames_only(pairs, repeats=30):
    """The null corpus: only frame sentences, so related words share no context but frame words."""
    rng = np.random.default_rng(0)
    unrelated = [(a, b) for a, b, r in pairs if not r]
    out = []
    for _ in range(repeats):
        for k in rng.permutation(len(unrelated)):
            a, b = unrelated[k]
            out.append(simple_word_tokenize(FRAME_TEMPLATES[k % 3].format(x=a, y=b, place="gate")))
    return out


def test_gap_finding_fails_when_related_words_share_no_context():
    """First-order co-occurrence only (frames alone): the unrelated pairs win, the finding fails."""
    _, pairs = shared_context_stories(1, seed=1)
    scores = {}
    for name in ("ours/cbow", "gensim/cbow"):
        vals = [control_scores(ppmi_svd_vectors(_frames_only(pairs, 20 + i), PPMI), pairs) for i in range(3)]
        scores[name] = {k: [v[k] for v in vals] for k in vals[0]}
    _, findings = controls_item_parts("cbow", scores, CHECKS)
    gap = findings[0]
    assert gap.metric == "controls/shared_context_gap" and gap.value < 0 and not gap.passed, gap


@pytest.fixture(scope="module")
def controls():
    """Three seeds, tiny stories: a random table as 'ours/cbow', PPMI-SVD standing in for gensim."""
    cfg = WordEmbeddingsConfig(controls=ControlsConfig(seeds=[1, 2, 3], stories=300))
    trainers = {
        "ours/cbow": lambda s, seed: random_vectors(sorted({w for x in s for w in x}), 32, seed=seed),
        "gensim/cbow": lambda s, seed: ppmi_svd_vectors(s, PPMI),
        "ours/skipgram": lambda s, seed: ppmi_svd_vectors(s, PPMI),
        "gensim/skipgram": lambda s, seed: ppmi_svd_vectors(s, PPMI),
    }
    return run_controls(cfg, trainers)


def test_an_untrained_table_fails_every_control_finding(controls):
    _, findings = controls_item_parts("cbow", controls, CHECKS)
    assert [f.passed for f in findings] == [False, False, False], findings
    assert all(f.n == 3 for f in findings)


def test_a_count_model_on_the_stories_passes_the_gap_and_ties_with_itself(controls):
    metrics, findings = controls_item_parts("skipgram", controls, CHECKS)
    gap, vs_gap, vs_analogy = findings
    assert gap.passed and gap.value > CHECKS.min_shared_context_gap, gap
    # ours == the reference: effect exactly 0 every seed; the SE is 0 and 0 > -margin: passes.
    assert vs_gap.value == 0.0 and vs_gap.passed and vs_analogy.value == 0.0
    assert metrics["controls/ours/shared_context_gap"] == pytest.approx(gap.value)
    assert metrics["controls/seeds"] == 3.0


def test_gensim_word2vec_is_deterministic_per_seed():
    sents = [simple_word_tokenize(s) for s in generate_stories(60, seed=3)]
    cfg = Word2VecConfig(arch="skipgram", dim=16, epochs=1, min_count=2, seed=4)
    a, b = gensim_word2vec(sents, cfg), gensim_word2vec(sents, cfg)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert a.words == b.words and "king" in a.words and a.dim == 16
    c = gensim_word2vec(sents, replace(cfg, seed=5))
    assert not np.array_equal(a.vectors, c.vectors)


def test_controls_config_needs_three_seeds():
    with pytest.raises(ValueError, match=">= 3 distinct seeds"):
        ControlsConfig(seeds=[1, 1, 2])


@pytest.mark.parametrize("extra_seeds", [[0, 4], [4, 4]])
def test_extra_seeds_are_fresh_and_distinct(extra_seeds):
    with pytest.raises(ValueError, match="extra_seeds"):
        WordEmbeddingsConfig(extra_seeds=extra_seeds)
