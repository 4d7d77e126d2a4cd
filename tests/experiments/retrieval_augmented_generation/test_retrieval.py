"""The retrieval stage's items on a small SciFact subset: structure, invariants, a null model failing."""

import matplotlib

matplotlib.use("Agg")
import pytest

from nlpcurriculum.experiments.retrieval_augmented_generation import retrieval as exp
from nlpcurriculum.retrieval.dense import DenseConfig
from tests.conftest import REPO


def _cfg(**kw):
    cfg = exp.RetrievalConfig(data=str(REPO / "data" / "beir_scifact"), n_queries=20, n_docs=300,
                              dense=DenseConfig(dim=32, epochs=2), seeds=[0, 1], nlist=8, n_boot=50)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture(scope="module")
def inputs():
    return exp.load_inputs(_cfg())


def _findings(result):
    return {f.metric: f for f in result.findings}


def test_items_invariants_and_outputs(inputs):
    out = exp.Outputs()
    dense, hybrid = exp.run(_cfg(), inputs, out)
    assert [dense.item, hybrid.item] == list(exp.ITEMS)
    assert out.faiss_index.ntotal == 300 and "embed.weight" in out.encoder_state
    f = _findings(dense)
    assert f["flat_score_diff"].passed and f["reload_diff"].passed and f["reload_diff"].value == 0
    assert 0 <= dense.metrics["ivf_recall10"] <= 1 and 0 <= dense.metrics["hnsw_recall10"] <= 1
    assert dense.metrics["ivf_recall10.nprobe8"] == 1.0         # every cell searched: exact
    for arm in ("bm25", "dense", "rrf", "weighted"):
        assert hybrid.metrics[f"{arm}.ndcg_at_10.low"] <= hybrid.metrics[f"{arm}.ndcg_at_10"] <= hybrid.metrics[f"{arm}.ndcg_at_10.high"]
    assert set(dense.timings) and not set(dense.timings) & set(dense.metrics)


def test_training_pairs_never_include_test_claims(inputs):
    assert not set(inputs.train.queries["query_id"]) & set(inputs.test.queries["query_id"])
    assert inputs.train.corpus is inputs.test.corpus


def test_an_untrained_encoder_fails_the_training_finding(inputs):
    """Zero epochs: the 'trained' encoder is its untrained control, a tie that must fail."""
    dense, _ = exp.run(_cfg(dense=DenseConfig(dim=32, epochs=0)), inputs)
    f = _findings(dense)["dense_minus_untrained.ndcg_at_10"]
    assert f.value == 0.0 and not f.passed
