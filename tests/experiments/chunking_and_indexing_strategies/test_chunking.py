"""The chunking items on a small SciFact subset: the tables, the invariants, and that the findings can fail."""

import matplotlib

matplotlib.use("Agg")
import pytest

from nlpcurriculum.experiments.chunking_and_indexing_strategies import chunking as exp
from nlpcurriculum.retrieval import chunking
from nlpcurriculum.retrieval.bm25 import BM25Index
from tests.conftest import REPO


def _cfg(**kw):
    cfg = exp.ChunkingConfig(data=str(REPO / "data" / "beir_scifact"), n_queries=25, n_docs=300,
                             coarse_k=20, equivalence_queries=4, n_boot=100, ks=[1, 10, 20],
                             weight_grid=[0.0, 0.5])
    cfg.checks.max_published_gap = 1.0
    cfg.checks.max_units_fraction = 1.0
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture(scope="module")
def inputs():
    return exp.load_inputs(_cfg())


def _findings(result):
    return {f.metric: f for f in result.findings}


def test_both_items_measure_every_method(inputs):
    outputs = exp.Outputs()
    first, second = exp.run(_cfg(), inputs, outputs)
    assert [first.item, second.item] == list(exp.ITEMS)
    assert isinstance(outputs.index, BM25Index) and outputs.index.n_docs == 300
    for name in exp.METHODS:
        assert 0.0 <= first.metrics[f"{name}.ndcg_at_10"] <= 1.0
        assert first.metrics[f"{name}.ndcg_at_10.low"] <= first.metrics[f"{name}.ndcg_at_10"] <= first.metrics[f"{name}.ndcg_at_10.high"]
    for name in list(exp.METHODS) + ["hierarchical"]:
        assert second.metrics[f"{name}.recall_at_1"] <= second.metrics[f"{name}.recall_at_20"]
    f1, f2 = _findings(first), _findings(second)
    assert f1["word_coverage"].passed and f1["window_count_errors"].passed
    assert f2["flat_equivalence_diff"].passed and f2["flat_equivalence_diff"].value == 0.0
    assert set(first.timings) and not set(first.timings) & set(first.metrics)
    assert "tuning grid" in second.texts["hierarchical.txt"]
    assert second.metrics["w_section"] in (0.0, 0.5)


def test_tuning_split_shares_the_corpus_and_keeps_only_answerable_queries(inputs):
    assert inputs.tune.corpus is inputs.test.corpus
    docs = set(inputs.test.corpus["doc_id"])
    assert all(any(d in docs and s > 0 for d, s in rel.items()) for rel in inputs.tune.qrels.values())
    assert not set(inputs.tune.queries["query_id"]) & set(inputs.test.queries["query_id"])


def test_a_chunker_that_keeps_whole_abstracts_fails_the_sentence_finding(inputs, monkeypatch):
    """The null chunker (one chunk = the whole abstract, title in front) ties the control exactly."""
    monkeypatch.setitem(chunking.CHUNKERS, "sentence", lambda text, **kw: [text])
    first, _ = exp.run(_cfg(), inputs)
    f = _findings(first)["document_minus_sentence.ndcg_at_10"]
    assert f.value == 0.0 and not f.passed


def test_windows_that_ignore_overlap_fail_the_overlap_finding(inputs, monkeypatch):
    real = chunking.window_chunks
    monkeypatch.setitem(chunking.CHUNKERS, "window",
                        lambda text, size=64, overlap=32, **kw: real(text, size, 0))
    first, _ = exp.run(_cfg(), inputs)
    f = _findings(first)["overlap_minus_no_overlap.ndcg_at_10"]
    assert f.value == 0.0 and not f.passed


def test_null_fusion_ties_the_document_index(inputs):
    _, second = exp.run(_cfg(weight_grid=[0.0]), inputs)
    f = _findings(second)["hierarchical_minus_document.recall_at_10"]
    assert f.value == 0.0 and not f.passed
