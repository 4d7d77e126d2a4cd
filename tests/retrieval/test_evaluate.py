import numpy as np
import pytest

from nlpcurriculum.retrieval.evaluate import (bootstrap_ci, evaluate, mean_metrics, paired_bootstrap,
                                              rank, run_from_topk)


def test_hand_worked_example():
    qrels = {"q": {"d1": 1, "d3": 2}}
    run = {"q": {"d2": 3.0, "d3": 2.0, "d1": 1.0}}
    m = evaluate(run, qrels, ["ndcg@3", "recall@1", "recall@2", "mrr@3"])
    assert m["ndcg@3"][0] == pytest.approx(1.7619 / 2.6309, abs=1e-4)
    assert (m["recall@1"][0], m["recall@2"][0], m["mrr@3"][0]) == (0.0, 0.5, 0.5)


def test_ties_rank_by_doc_id_descending_and_missing_queries_score_zero():
    assert rank({"a": 1.0, "c": 1.0, "b": 2.0}) == ["b", "c", "a"]
    m = evaluate({}, {"q": {"d": 1}}, ["ndcg@10", "mrr@10"])
    assert m["ndcg@10"][0] == 0.0 and m["mrr@10"][0] == 0.0
    with pytest.raises(ValueError, match="unknown measure"):
        evaluate({}, {"q": {"d": 1}}, ["map@10"])


def _pytrec(run, qrels, measures):
    import pytrec_eval

    ev = pytrec_eval.RelevanceEvaluator(qrels, measures)
    return ev.evaluate(run)


def _random_case(seed, n_q=40, n_d=60):
    rng = np.random.default_rng(seed)
    qrels, run = {}, {}
    for q in range(n_q):
        rel = rng.choice(n_d, size=rng.integers(1, 6), replace=False)
        qrels[f"q{q}"] = {f"d{d}": int(rng.integers(0, 3)) for d in rel}
        qrels[f"q{q}"][f"d{rel[0]}"] = int(rng.integers(1, 3))   # at least one relevant
        # coarse scores: many ties, which trec_eval breaks by doc id
        run[f"q{q}"] = {f"d{d}": float(rng.integers(0, 5)) for d in rng.choice(n_d, 30, replace=False)}
    return run, qrels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_to_pytrec_eval_with_graded_relevance_and_ties(seed):
    run, qrels = _random_case(seed)
    ours = evaluate(run, qrels, ["ndcg@10", "ndcg@5", "recall@10", "recall@20"])
    ref = _pytrec(run, qrels, {"ndcg_cut.5,10", "recall.10,20"})
    for i, q in enumerate(qrels):
        assert ours["ndcg@10"][i] == pytest.approx(ref[q]["ndcg_cut_10"], abs=1e-9)
        assert ours["ndcg@5"][i] == pytest.approx(ref[q]["ndcg_cut_5"], abs=1e-9)
        assert ours["recall@10"][i] == pytest.approx(ref[q]["recall_10"], abs=1e-9)
        assert ours["recall@20"][i] == pytest.approx(ref[q]["recall_20"], abs=1e-9)
    # MRR@k = pytrec_eval's recip_rank on the run cut to its top k
    cut = {q: {d: run[q][d] for d in rank(run[q])[:10]} for q in run}
    ref = _pytrec(cut, qrels, {"recip_rank"})
    for i, q in enumerate(qrels):
        assert evaluate(run, qrels, ["mrr@10"])["mrr@10"][i] == pytest.approx(ref[q]["recip_rank"], abs=1e-9)


def test_equal_to_pytrec_eval_on_a_scifact_bm25_run(scifact, scifact_tokens):
    from nlpcurriculum.retrieval.bm25 import BM25Index

    docs, queries = scifact_tokens
    index = BM25Index.build(docs, doc_ids=scifact.corpus["doc_id"].tolist())
    top, scores = index.search(queries, k=100)
    run = run_from_topk(scifact.queries["query_id"].tolist(), index.doc_ids, top, scores)
    ours = mean_metrics(evaluate(run, scifact.qrels, ["ndcg@10", "recall@100"]))
    ref = _pytrec(run, scifact.qrels, {"ndcg_cut.10", "recall.100"})
    assert ours["ndcg@10"] == pytest.approx(np.mean([r["ndcg_cut_10"] for r in ref.values()]), abs=1e-12)
    assert ours["recall@100"] == pytest.approx(np.mean([r["recall_100"] for r in ref.values()]), abs=1e-12)


def test_run_from_topk_drops_identical_ids():
    run = run_from_topk(["a"], ["a", "b"], np.array([[0, 1]]), np.array([[2.0, 1.0]]))
    assert run == {"a": {"b": 1.0}}
    run = run_from_topk(["a"], ["a", "b"], np.array([[0, 1]]), np.array([[2.0, 1.0]]), False)
    assert run == {"a": {"a": 2.0, "b": 1.0}}


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, big = rng.random(50), rng.random(2000)
    a, b = bootstrap_ci(small, seed=1), bootstrap_ci(big, seed=1)
    assert a.low < a.mean < a.high and b.low < b.mean < b.high
    assert (b.high - b.low) < (a.high - a.low) / 3           # ~ 1/sqrt(n): 50 -> 2000 is 6.3x
    assert a.se == pytest.approx(small.std(ddof=1) / np.sqrt(50), rel=0.15)
    assert bootstrap_ci(small, seed=1) == a                  # seeded


def test_paired_bootstrap_cancels_shared_query_difficulty():
    rng = np.random.default_rng(0)
    difficulty = rng.random(300)
    control, treatment = difficulty, difficulty + 0.01 + 0.001 * rng.standard_normal(300)
    paired = paired_bootstrap(treatment, control)
    assert paired.low > 0.0                                   # tiny shift, found because paired
    assert bootstrap_ci(treatment).low < bootstrap_ci(control).high   # unpaired intervals overlap
    assert paired_bootstrap(control, control).high == 0.0


def test_metric_key_is_a_valid_mlflow_name():
    from nlpcurriculum.retrieval.evaluate import metric_key

    assert metric_key("bm25.recall@100") == "bm25.recall_at_100"
