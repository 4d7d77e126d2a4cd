"""Planted duplicates: measured Jaccard near the target, ground-truth clusters consistent."""

from __future__ import annotations

import numpy as np
import pytest

from nlpcurriculum.data.minhash import jaccard, shingles
from nlpcurriculum.data.synthetic.duplicates import (
    DuplicatesConfig,
    inject_duplicates,
    make_near_duplicate,
    pseudo_vocabulary,
    random_documents,
)


@pytest.mark.parametrize("target", [0.3, 0.5, 0.8, 0.9])
def test_near_duplicate_hits_the_target_jaccard(target):
    doc = random_documents(1, seed=0, min_words=300, max_words=300)[0]
    text, measured = make_near_duplicate(doc, target, 1, pseudo_vocabulary(1000))
    assert measured == pytest.approx(jaccard(shingles(doc), shingles(text)))
    assert abs(measured - target) < 0.03


def test_injected_corpus_has_the_planted_structure():
    cfg = DuplicatesConfig(n_originals=60, n_exact=10, n_near=20, n_related=10, max_words=120)
    recs = inject_duplicates(cfg, seed=0)
    assert len(recs) == 100
    kinds = {k: sum(r["kind"] == k for r in recs) for k in ("original", "exact", "near", "related")}
    assert kinds == {"original": 60, "exact": 10, "near": 20, "related": 10}
    originals = {r["cluster"]: r["text"] for r in recs if r["kind"] == "original"}
    for r in recs:
        if r["kind"] == "exact":
            assert r["text"] == originals[r["cluster"]]
        if r["kind"] == "near":
            assert cfg.jaccard_low - 0.03 <= r["jaccard"] < 1.0
            assert r["text"] != originals[r["cluster"]]
        if r["kind"] == "related":
            assert r["cluster"] >= 60 and r["jaccard"] <= cfg.related_high + 0.03
    assert [r["kind"] for r in recs[:60]] != ["original"] * 60  # shuffled
    assert inject_duplicates(cfg, seed=0) == recs


def test_unrelated_documents_share_almost_no_shingles():
    docs = random_documents(50, seed=4)
    sets = [shingles(d) for d in docs]
    sims = [jaccard(sets[i], sets[j]) for i in range(50) for j in range(i + 1, 50)]
    assert max(sims) < 0.05
    lengths = [len(d.split()) for d in docs]
    assert 50 <= min(lengths) and max(lengths) <= 300
    assert len(set(pseudo_vocabulary(5000, seed=np.random.default_rng(1)))) == 5000
