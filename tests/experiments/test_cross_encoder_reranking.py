"""The reranking items on a small SciFact subset: tables, invariants, timings apart, and that the
main finding fails for a reranker that learned nothing."""

import dataclasses

import matplotlib

matplotlib.use("Agg")
import pytest

from nlpcurriculum.experiments import cross_encoder_reranking as exp
from nlpcurriculum.retrieval.dense import DenseConfig
from nlpcurriculum.retrieval.encoder import EncoderConfig
from tests.conftest import REPO


def _cfg(epochs=1):
    return exp.RerankConfig(
        data=str(REPO / "data" / "beir_scifact"), n_queries=20, n_docs=300,
        dense=DenseConfig(dim=32, epochs=2, batch_size=64),
        encoder=EncoderConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_doc_terms=24,
                              epochs=epochs, batch_size=8, group_size=3, negative_pool=6),
        first_stage_k=10, rerank_ks=[5, 10], latency_queries=3, timing_rounds=3,
        invariant_queries=2, seeds=[0], n_boot=50)


@pytest.fixture(scope="module")
def inputs():
    return exp.load_inputs(_cfg())


@pytest.fixture(scope="module")
def results(inputs):
    return exp.run(_cfg(), inputs)


def _findings(result):
    return {f.metric: f for f in result.findings}


def test_three_items_with_every_arm_and_interval(results):
    first, second, third = results
    assert [r.item for r in results] == list(exp.ITEMS)
    for arm in ("bm25", "first", "cross", "untrained_cross"):
        m = first.metrics
        assert m[f"{arm}.ndcg_at_10.low"] <= m[f"{arm}.ndcg_at_10"] <= m[f"{arm}.ndcg_at_10.high"]
    for arm in ("bm25", "first", "cross", "colbert"):
        assert 0.0 <= second.metrics[f"{arm}.ap_at_10"] <= 1.0
        assert second.metrics[f"{arm}.iprec_at_1.0"] <= second.metrics[f"{arm}.iprec_at_0.0"]
    assert "cross-encoder minus ColBERT" in third.texts["colbert.txt"]
    for r in results:
        assert not set(r.timings) & set(r.metrics)
    assert {"latency_ms.first", "latency_ms.cross@10", "overhead_ms.cross@10"} <= {
        k.replace("_at_", "@") for k in second.timings}


def test_invariants_hold_and_timing_findings_are_timed(results):
    first, second, third = results
    assert _findings(first)["recall_change"].passed
    f3 = _findings(third)
    assert f3["maxsim_diff"].passed and f3["index_diff"].passed
    timed = [f for r in results for f in r.findings if f.timed]
    assert {f.metric for f in timed} == {"cross_at_10_over_cross_at_5.time", "cross_over_colbert_at_10.time"}


def test_the_training_split_is_apart_from_the_evaluation_claims(inputs):
    assert inputs.train.corpus is inputs.test.corpus
    assert not set(inputs.train.queries["query_id"]) & set(inputs.test.queries["query_id"])


def test_an_untrained_reranker_fails_the_rerank_finding(inputs):
    """Zero epochs: the cross-encoder's scores are noise, its order loses to the first stage."""
    first, _, _ = exp.run(dataclasses.replace(_cfg(epochs=0)), inputs)
    f = _findings(first)["cross_minus_first.ndcg_at_10"]
    assert f.value < 0 and not f.passed


def test_rerank_ks_beyond_the_first_stage_are_rejected():
    with pytest.raises(ValueError, match="rerank_ks"):
        exp.RerankConfig(first_stage_k=10, rerank_ks=[5, 20])
