"""The semantic-cache stage on a small SciFact subset: probes, invariants, a loose threshold failing."""

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest

from nlpcurriculum.experiments.chunking_and_indexing_strategies import semantic_cache as exp
from nlpcurriculum.retrieval.dense import DenseConfig
from tests.conftest import REPO


def _cfg(**kw):
    cfg = exp.SemanticCacheConfig(data=str(REPO / "data" / "beir_scifact"), n_queries=30, n_docs=300,
                                  dense=DenseConfig(dim=32, epochs=2, hard_negatives=False), n_updates=10,
                                  timing_rounds=2, n_boot=50)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture(scope="module")
def inputs():
    return exp.load_inputs(_cfg())


def test_perturbations():
    rng = np.random.default_rng(0)
    text = "Aspirin increases the risk of bleeding"
    assert exp.perturb(text, "synonym", rng) in {"Aspirin raises the risk of bleeding",
                                                 "Aspirin increases the likelihood of bleeding"}
    dropped = exp.perturb(text, "drop", rng)
    assert len(dropped.split()) == 5 and dropped.split()[0] == "Aspirin"
    swapped = exp.perturb(text, "swap", rng)
    assert sorted(swapped.split()) == sorted(text.split()) and swapped != text
    assert exp.perturb(text, "case", rng).lower() == text.lower()
    assert exp.perturb("no listed word here", "synonym", rng) is None
    assert exp.perturb("two words", "drop", rng) is None
    with pytest.raises(ValueError):
        exp.perturb(text, "shout", rng)


def test_probes():
    rng = np.random.default_rng(0)
    texts = ["a claim about cancer risk", "another claim here today", "third one is short", "fourth claim text"]
    probes = exp.make_probes(texts, np.array([0, 2]), 2, rng)
    assert [p.kind for p in probes].count("repeat") == 2
    assert {p.source for p in probes if p.kind == "distinct"} == {1, 3}
    assert all(p.text != texts[p.source] for p in probes if p.kind not in ("repeat", "distinct"))


def test_item_invariants_and_curve(inputs):
    (r,) = exp.run(_cfg(), inputs)
    assert r.item == exp.ITEMS[0]
    f = {x.metric: x for x in r.findings}
    assert f["stale_hits"].passed and f["stale_hits"].value == 0          # the invariant
    assert f["repeat_misses"].passed
    assert f["stale_hits_no_invalidation"].value > 0                       # the control shows staleness
    assert f["speedup"].timed and "saved_s_per_query" in r.timings
    hits = [v for _, v in r.series["hit_rate"]]
    assert all(a >= b for a, b in zip(hits, hits[1:]))                    # stricter threshold, fewer hits
    assert r.metrics["threshold"] in _cfg().thresholds
    assert r.metrics["hit_rate.repeat"] == 1.0


def test_a_threshold_that_serves_everything_fails_the_false_hit_finding(inputs):
    (r,) = exp.run(_cfg(thresholds=[-1.0], n_updates=2), inputs)
    f = {x.metric: x for x in r.findings}
    assert r.metrics["distinct_hit_rate"] == 1.0
    assert not f["false_hit_rate_high"].passed
