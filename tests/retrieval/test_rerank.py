"""The cross-encoder: pair features (hand-worked example), reranking, and that training works."""

import numpy as np
import pytest
import torch

from nlpcurriculum.metrics.timing import torch_threads
from nlpcurriculum.retrieval.encoder import CLS, SEP, UNK, EncoderConfig, Group, train_listwise
from nlpcurriculum.retrieval.rerank import CrossEncoder, pair_features, rerank, score_pairs


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def test_pair_features_hand_worked_example():
    ids, feats = pair_features([7, 8], [8, 9])
    assert ids == [CLS, 7, 8, SEP, 8, 9] and feats == [0, 1, 2, 0, 4, 3]
    assert pair_features([7, 8], [8, 9], exact_match=False)[1] == [0, 1, 1, 0, 3, 3]
    assert pair_features([UNK], [UNK])[1] == [0, 1, 0, 3]          # unknown terms never match


def test_rerank_sorts_by_score_and_keeps_first_stage_order_on_ties():
    cand = np.array([[5, 3, 9, 1]])
    idx, val = rerank(cand, np.array([[0.1, 0.7, 0.1, 0.2]]))
    assert idx.tolist() == [[3, 1, 5, 9]] and val.tolist() == [[0.7, 0.2, 0.1, 0.1]]
    assert sorted(idx[0].tolist()) == sorted(cand[0].tolist())


def test_scores_do_not_depend_on_batching_or_padding():
    torch.manual_seed(0)
    cfg = EncoderConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_query_terms=4, max_doc_terms=8)
    model = CrossEncoder(cfg, 50).eval()
    docs = [[6, 7, 8], [9, 10, 11, 12, 13, 14, 15, 16], [17]]
    together = score_pairs(model, [6, 20], docs, batch_size=3)
    alone = np.concatenate([score_pairs(model, [6, 20], [d]) for d in docs])
    assert together == pytest.approx(alone, abs=1e-5)


def _toy(n=60, seed=0):
    rng = np.random.default_rng(seed)
    docs = [rng.choice(np.arange(6, 300), 12, replace=False).tolist() for _ in range(n)]
    queries = [rng.choice(d, 3, replace=False).tolist() for d in docs]
    return docs, queries


def _accuracy(model, docs, queries):
    return np.mean([np.argmax(score_pairs(model, queries[i], docs)) == i for i in range(len(docs))])


def test_training_learns_to_rank_the_positive_first():
    """A query is 3 tokens of its document: trained, the cross-encoder ranks its document first
    among all 60 far more often than the untrained one (chance: 1/60)."""
    docs, queries = _toy()
    groups = [Group(i, i, tuple(j for j in range(60) if j != i)[:12]) for i in range(60)]
    cfg = EncoderConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_query_terms=3, max_doc_terms=12,
                        epochs=6, batch_size=10, group_size=4, lr=3e-3)

    def score(model, qs, ds):
        B, G = ds.shape
        return model.score([queries[q] for q in qs for _ in range(G)],
                           [docs[j] for j in ds.reshape(-1).tolist()]).view(B, G)

    torch.manual_seed(0)
    model = CrossEncoder(cfg, 300)
    before = _accuracy(model.eval(), docs, queries)
    losses = train_listwise(model, score, groups, cfg, seed=0)
    assert losses[-1] < losses[0]
    assert _accuracy(model, docs, queries) >= before + 0.5
