import math

import bm25s
import numpy as np
import pytest
import rank_bm25

from nlpcurriculum.retrieval.bm25 import BM25Index, BM25Params, topk


def test_hand_worked_example():
    index = BM25Index.build([["a", "b"], ["b", "c", "c"]], BM25Params(k1=1.2, b=0.75))
    s = index.scores([["c"]])[0]
    norm = 1.2 * (0.25 + 0.75 * 3 / 2.5)
    assert s[0] == 0.0
    assert s[1] == pytest.approx(math.log(2) * 2 / (2 + norm), abs=1e-12)
    assert s[1] == pytest.approx(0.4101, abs=1e-4)


def test_query_repeats_count_and_unknown_terms_score_nothing():
    index = BM25Index.build([["a", "b"], ["b", "c", "c"]])
    one, two, unknown = index.scores([["c"], ["c", "c"], ["zzz"]])
    assert np.allclose(two, 2 * one) and not unknown.any()


def test_topk_orders_by_score_then_index():
    scores = np.array([[1.0, 3.0, 3.0, 0.5, 2.0]])
    idx, val = topk(scores, 3)
    assert idx.tolist() == [[1, 2, 4]] and val.tolist() == [[3.0, 3.0, 2.0]]
    assert topk(scores, 10)[0].tolist() == [[1, 2, 4, 0, 3]]


def _assert_same_top10(ours_scores, ref_scores, tol):
    """The top 10 of each query agree: same documents, except where scores tie within tol."""
    ours_idx, ours_val = topk(ours_scores, 10)
    ref_idx = np.argsort(-ref_scores, axis=1, kind="stable")[:, :10]
    ref_val = np.take_along_axis(ref_scores, ref_idx, axis=1)
    assert np.abs(ours_val - ref_val).max() <= tol
    differ = ours_idx != ref_idx
    # where positions hold different documents, their scores must tie (a tie's order is arbitrary)
    assert np.all(np.abs(ours_val - ref_val)[differ] <= tol)
    return int(differ.any(axis=1).sum())


@pytest.mark.parametrize("variant, k1, b", [("lucene", 1.2, 0.75), ("robertson", 1.2, 0.75),
                                            ("lucene", 0.9, 0.4)])
def test_scores_equal_bm25s_on_scifact(scifact_tokens, variant, k1, b):
    docs, queries = scifact_tokens
    ours = BM25Index.build(docs, BM25Params(k1=k1, b=b, variant=variant))
    ref = bm25s.BM25(k1=k1, b=b, method=variant, dtype="float64")
    ref.index(docs, show_progress=False)
    ref_scores = np.stack([ref.get_scores(q) for q in queries])            # (300, 5183)
    ours_scores = ours.scores(queries)
    assert np.abs(ours_scores - ref_scores).max() <= 1e-6
    # bm25s' retrieve (its own top-k) returns the same top 10 documents
    ref_docs, _ = ref.retrieve(queries, k=10, show_progress=False)
    ours_idx, _ = ours.search(queries, k=10)
    assert (np.sort(ref_docs, axis=1) == np.sort(ours_idx, axis=1)).mean() >= 0.999
    assert _assert_same_top10(ours_scores, ref_scores, 1e-6) <= 3


def test_okapi_scores_equal_rank_bm25_on_scifact(scifact_tokens):
    docs, queries = scifact_tokens
    queries = queries[:100]
    for eps in (0.0, 0.25):
        ours = BM25Index.build(docs, BM25Params(k1=1.5, b=0.75, variant="okapi", epsilon=eps))
        ref = rank_bm25.BM25Okapi(docs, k1=1.5, b=0.75, epsilon=eps)
        ref_scores = np.stack([ref.get_scores(q) for q in queries])
        ours_scores = ours.scores(queries)
        assert np.abs(ours_scores - ref_scores).max() <= 1e-6
        _assert_same_top10(ours_scores, ref_scores, 1e-6)


def test_a_wrong_length_normalisation_breaks_parity(scifact_tokens):
    """The parity check can fail: b = 0.7 instead of 0.75 moves scores far beyond 1e-6."""
    docs, queries = scifact_tokens
    ref = bm25s.BM25(k1=1.2, b=0.75, method="lucene", dtype="float64")
    ref.index(docs, show_progress=False)
    wrong = BM25Index.build(docs, BM25Params(b=0.7)).scores(queries[:20])
    assert np.abs(wrong - np.stack([ref.get_scores(q) for q in queries[:20]])).max() > 1e-3


def test_save_and_load_round_trip(tmp_path, scifact, scifact_tokens):
    docs, queries = scifact_tokens
    index = BM25Index.build(docs, BM25Params(dtype="float32"), scifact.corpus["doc_id"].tolist())
    index.save(tmp_path / "bm25.npz")
    again = BM25Index.load(tmp_path / "bm25.npz")
    assert again.params == index.params and again.vocab == index.vocab
    assert again.doc_ids == index.doc_ids and again.weights.dtype == np.float32
    for a, b in zip(index.search(queries, 10), again.search(queries, 10)):
        assert np.array_equal(a, b)
    assert (tmp_path / "bm25.npz.json").exists()


def test_load_refuses_a_foreign_file(tmp_path):
    np.savez(tmp_path / "x.npz", header=np.array('{"format": "other", "version": 1}'))
    with pytest.raises(ValueError, match="expected 'nlpcurriculum.bm25'"):
        BM25Index.load(tmp_path / "x.npz")
    (tmp_path / "y.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable BM25 index"):
        BM25Index.load(tmp_path / "y.npz")
    with pytest.raises(FileNotFoundError):
        BM25Index.load(tmp_path / "z.npz")


def test_bad_params_are_refused():
    with pytest.raises(ValueError, match="unknown BM25 variant"):
        BM25Params(variant="bm42")
    with pytest.raises(ValueError, match="0 <= b <= 1"):
        BM25Params(b=1.5)
