"""The RAG stage: the generated corpus, and a tiny run (structure, invariant, untrained reader failing)."""

import matplotlib

matplotlib.use("Agg")
import numpy as np

from nlpcurriculum.experiments.retrieval_augmented_generation import rag as exp


def test_world():
    w = exp.make_world(120, 10, 20, seed=3)
    assert (w.split == 1).sum() == 10 and (w.split == 2).sum() == 20
    assert len(w.passages) == 120 * (len(exp.ATTRIBUTES) + 1)
    for e in (0, 57, 119):
        for a in range(len(exp.ATTRIBUTES)):
            p = w.passages[w.fact_passage[e, a]]
            assert w.answer(e, a) in p and all(n in p for n in w.names[e])
            assert exp.ATTRIBUTES[a][0] in p and exp.ATTRIBUTES[a][1] not in p
    assert w.question(0, 1, True)[1] == "town" and w.question(0, 1, False)[1] == "city"
    assert len(set(w.names)) == 120
    again = exp.make_world(120, 10, 20, seed=3)
    assert again.passages == w.passages and np.array_equal(again.values, w.values)


def test_tiny_run_and_untrained_reader():
    cfg = exp.RagConfig(n_entities=80, n_dev=10, n_test=20, d_model=16, n_heads=2, d_ff=32, steps=0,
                        batch_size=8, warmup=1, seeds=[0, 1], workers=1)
    (r,) = exp.run(cfg, exp.Inputs())
    assert r.item == exp.ITEMS[0]
    f = {x.metric: x for x in r.findings}
    assert f["max_prompt_len"].passed and r.metrics["max_prompt_len"] <= cfg.window
    assert not f["oracle_accuracy"].passed and not f["rag_minus_closed_book"].passed   # nothing learned
    assert r.metrics["recall.bm25.k10"] >= r.metrics["recall.bm25.k1"]
    assert r.metrics["survives.trunc.tail"] <= r.metrics["survives.trunc.head"]
    assert "rag.txt" in r.texts
