"""CBOW and Skip-gram: the loss by hand, sparse updates, and that training learns the relations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nlpcurriculum.data.errors import CorpusTooSmallError
from nlpcurriculum.data.synthetic.stories import RELATIONS, generate_stories, similarity_pairs
from nlpcurriculum.embeddings import (
    CBOW,
    SkipGram,
    TrainLog,
    Word2VecConfig,
    build_model,
    evaluate_relations,
    random_vectors,
    simple_word_tokenize,
    train_word2vec,
)


@pytest.fixture(scope="module")
def sentences() -> list[list[str]]:
    return [simple_word_tokenize(s) for s in generate_stories(500, seed=1)]


def _sigmoid(x: float) -> float:
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("bad", [dict(arch="glove"), dict(dim=0), dict(sample=-1.0), dict(lr=0.0),
                                 dict(optimizer="adam"), dict(min_lr_frac=0.0)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        Word2VecConfig(**bad)


def test_skipgram_loss_by_hand():
    model = SkipGram(vocab_size=3, dim=2)
    with torch.no_grad():
        model.in_embed.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        model.out_embed.weight.copy_(torch.tensor([[0.5, 0.0], [0.0, 2.0], [-1.0, 1.0]]))
    # centre 2 (h = [1, 1]), target 1 (u = [0, 2]: h.u = 2), negatives 0 (h.u = 0.5) and 2 (h.u = 0)
    loss = model(torch.tensor([2]), torch.tensor([1]), torch.tensor([[0, 2]]))
    expect = -np.log(_sigmoid(2.0)) - np.log(_sigmoid(-0.5)) - np.log(_sigmoid(0.0))
    assert loss.shape == (1,)
    assert float(loss[0].detach()) == pytest.approx(expect, rel=1e-6)


def test_negative_equal_to_target_is_ignored():
    model = SkipGram(vocab_size=3, dim=2)
    with torch.no_grad():
        model.out_embed.weight.normal_()
    x, y = torch.tensor([0]), torch.tensor([1])
    with_self = model(x, y, torch.tensor([[1, 2]]))
    without = model(x, y, torch.tensor([[2]]))
    torch.testing.assert_close(with_self, without)


def test_cbow_hidden_is_mean_of_context_and_padding_gets_no_gradient():
    model = CBOW(vocab_size=4, dim=3)
    pad = model.pad_id
    ctx = torch.tensor([[0, 1, pad, pad], [2, pad, pad, pad]])
    h = model.hidden(ctx)
    w = model.in_embed.weight.detach()
    torch.testing.assert_close(h[0], (w[0] + w[1]) / 2)
    torch.testing.assert_close(h[1], w[2])
    model(ctx, torch.tensor([3, 0]), torch.tensor([[1], [3]])).sum().backward()
    grad = model.in_embed.weight.grad
    assert grad.is_sparse
    assert pad not in grad.coalesce().indices()[0].tolist()


def test_sparse_gradients_match_dense_autograd():
    torch.manual_seed(0)
    model = build_model("skipgram", 6, 4)
    with torch.no_grad():
        model.out_embed.weight.normal_()
    x, y, neg = torch.tensor([0, 3, 0]), torch.tensor([1, 2, 5]), torch.tensor([[2, 4], [0, 1], [3, 3]])
    model(x, y, neg).sum().backward()
    assert model.in_embed.weight.grad.is_sparse and model.out_embed.weight.grad.is_sparse
    w_in = model.in_embed.weight.detach().clone().requires_grad_()
    w_out = model.out_embed.weight.detach().clone().requires_grad_()
    h = F.embedding(x, w_in)
    loss = -F.logsigmoid((h * F.embedding(y, w_out)).sum(-1)) \
        - F.logsigmoid(-(F.embedding(neg, w_out) @ h.unsqueeze(2)).squeeze(2)).sum(-1)
    loss.sum().backward()
    torch.testing.assert_close(model.in_embed.weight.grad.to_dense(), w_in.grad)
    torch.testing.assert_close(model.out_embed.weight.grad.to_dense(), w_out.grad)


def test_initialisation_follows_word2vec_c():
    model = SkipGram(100, 50)
    assert float(model.in_embed.weight.detach().abs().max()) <= 0.5 / 50
    assert float(model.out_embed.weight.detach().abs().max()) == 0.0


@pytest.mark.parametrize("arch", ["skipgram", "cbow"])
def test_training_learns_story_relations_better_than_random_init(sentences, arch):
    log = TrainLog()
    cfg = Word2VecConfig(arch=arch, dim=32, epochs=3, min_count=2, batch_size=1024 if arch == "skipgram" else 256)
    wv = train_word2vec(sentences, cfg, log)
    pairs = similarity_pairs()
    trained = evaluate_relations(wv, RELATIONS, pairs)
    baseline = evaluate_relations(random_vectors(wv.words, 32, seed=0), RELATIONS, pairs)
    assert trained.overall.skipped == 0
    assert baseline.overall.accuracy < 0.05
    assert trained.overall.accuracy > baseline.overall.accuracy + 0.15
    assert trained.similarity_auc > 0.93 > baseline.similarity_auc
    assert log.losses[-1][1] < log.losses[0][1] - 0.5
    assert log.train_words == 3 * sum(len(s) for s in sentences)


def test_sgd_option_also_trains(sentences):
    cfg = Word2VecConfig(arch="skipgram", optimizer="sgd", lr=0.025, dim=32, epochs=3, min_count=2,
                         batch_size=512)
    wv = train_word2vec(sentences, cfg)
    report = evaluate_relations(wv, RELATIONS, similarity_pairs())
    assert report.similarity_auc > 0.9 and report.overall.accuracy > 0.05  # random init: ~0.005


def test_training_is_reproducible_and_leaves_global_rng_alone(sentences):
    cfg = Word2VecConfig(dim=8, epochs=1, min_count=2, seed=7)
    torch.manual_seed(123)
    a = train_word2vec(sentences[:100], cfg)
    after = torch.rand(1)
    torch.manual_seed(123)
    b = train_word2vec(sentences[:100], cfg)
    assert torch.equal(after, torch.rand(1))
    np.testing.assert_array_equal(a.vectors, b.vectors)
    c = train_word2vec(sentences[:100], Word2VecConfig(dim=8, epochs=1, min_count=2, seed=8))
    assert not np.array_equal(a.vectors, c.vectors)


def test_a_text_too_small_for_subsampling_trains_on_every_word():
    """Eleven words: subsampling (t = 1e-3) keeps each with p ~ 0.1 and would leave no pair."""
    text = [["a", "small", "corpus", "of", "a", "few", "words"], ["a", "few", "more", "words"]]
    vectors = train_word2vec(text, Word2VecConfig(dim=4, epochs=2, min_count=1, sample=1e-3))
    assert len(vectors) == 7


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(CorpusTooSmallError, match="no training example"):  # one line in a stage
        train_word2vec([["a"], ["b"]] * 5, Word2VecConfig(min_count=1))
    with pytest.raises(ValueError, match="min_count"):
        train_word2vec(["a", "b", "c"], Word2VecConfig(min_count=5))
    with pytest.raises(TypeError, match="not a str"):
        train_word2vec("the cat sat", Word2VecConfig(min_count=1))


def test_flat_token_list_is_one_sentence():
    words = ("the cat sat on the mat " * 50).split()
    wv = train_word2vec(words, Word2VecConfig(dim=4, epochs=1, min_count=1, sample=0.0))
    assert set(wv.words) == {"the", "cat", "sat", "on", "mat"} and wv.dim == 4
