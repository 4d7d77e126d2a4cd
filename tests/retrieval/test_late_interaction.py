"""ColBERT-style late interaction: MaxSim against the two-loop reference, the index, training."""

import numpy as np
import pytest
import torch

from nlpcurriculum.metrics.timing import torch_threads
from nlpcurriculum.retrieval.encoder import DOC, EncoderConfig, Group, train_listwise
from nlpcurriculum.retrieval.late_interaction import (ColBERT, build_index, maxsim,
                                                      maxsim_reference)


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def test_maxsim_hand_worked_example():
    assert maxsim_reference([[1, 0], [0, 1]], [[1, 0], [0.6, 0.8]]) == pytest.approx(1.8)
    q = torch.tensor([[[1.0, 0], [0, 1]]])
    d = torch.tensor([[[[1.0, 0], [0.6, 0.8]]]])
    assert maxsim(q, torch.ones(1, 2, dtype=torch.bool), d, torch.ones(1, 1, 2, dtype=torch.bool)).item() == pytest.approx(1.8)


def test_batched_maxsim_equals_loop_reference_with_padding():
    """Random vectors, ragged lengths: padded positions (filled with large values) never count."""
    g = torch.Generator().manual_seed(0)
    B, K, Lq, Ld, E = 3, 4, 5, 7, 6
    q, d = torch.randn(B, Lq, E, generator=g), torch.randn(B, K, Ld, E, generator=g)
    q_len = torch.randint(1, Lq + 1, (B,), generator=g)
    d_len = torch.randint(1, Ld + 1, (B, K), generator=g)
    q_mask = torch.arange(Lq)[None] < q_len[:, None]
    d_mask = torch.arange(Ld)[None, None] < d_len[..., None]
    q = q.masked_fill(~q_mask[..., None], 100.0)
    d = d.masked_fill(~d_mask[..., None], 100.0)
    got = maxsim(q, q_mask, d, d_mask)                                       # (B, K)
    for b in range(B):
        for k in range(K):
            ref = maxsim_reference(q[b, :q_len[b]].tolist(), d[b, k, :d_len[b, k]].tolist())
            assert got[b, k].item() == pytest.approx(ref, abs=1e-5)


def test_a_loop_reference_that_ignores_the_max_differs():
    """The reference is not vacuous: summing over document tokens (no max) gives another score."""
    q, d = [[1.0, 0.0]], [[1.0, 0.0], [0.5, 0.0]]
    assert maxsim_reference(q, d) == 1.0 and sum(a * b for dj in d for a, b in zip(q[0], dj)) == 1.5


def test_index_scores_equal_fresh_encoding_and_vectors_are_unit():
    torch.manual_seed(0)
    cfg = EncoderConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_query_terms=4, max_doc_terms=9)
    model = ColBERT(cfg, 40, dim=8).eval()
    rng = np.random.default_rng(0)
    docs = [rng.integers(6, 40, size=rng.integers(1, 10)).tolist() for _ in range(12)]
    index = build_index(model, docs, batch_size=5)
    assert index.vectors.shape == (12, 10, 8)
    norms = index.vectors.norm(dim=-1)
    assert torch.allclose(norms[index.mask], torch.ones(int(index.mask.sum())), atol=1e-5)
    assert (norms[~index.mask] == 0).all()
    query = [7, 8, 9]
    cand = [3, 0, 11, 5]
    with torch.no_grad():
        fresh = model.score([query], [[docs[j] for j in cand]])[0].numpy()
    assert index.search(model, query, cand) == pytest.approx(fresh, abs=1e-5)


def test_training_separates_positives_from_negatives():
    """Toy task: a query is 3 tokens of its document; after training its document outscores
    random others far more often than an untrained model's does."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    docs = [rng.choice(np.arange(6, 200), 10, replace=False).tolist() for _ in range(60)]
    queries = [rng.choice(d, 3, replace=False).tolist() for d in docs]
    groups = [Group(i, i, tuple(j for j in range(60) if j != i)[:10]) for i in range(60)]
    cfg = EncoderConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_query_terms=3, max_doc_terms=10,
                        epochs=8, batch_size=10, group_size=4, lr=3e-3)

    def score(model, qs, ds):
        return model.score([queries[q] for q in qs], [[docs[j] for j in row] for row in ds.tolist()])

    def accuracy(model):
        index = build_index(model, docs)
        return np.mean([np.argmax(index.search(model, queries[i], list(range(60)))) == i for i in range(60)])

    model = ColBERT(cfg, 200, dim=16)
    before = accuracy(model.eval())
    losses = train_listwise(model, score, groups, cfg, seed=0)
    assert losses[-1] < losses[0]
    assert accuracy(model) >= before + 0.3
