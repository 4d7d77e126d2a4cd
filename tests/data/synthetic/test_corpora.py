"""Task corpora: noise with ground truth, planted duplicates removed, splits disjoint."""

import numpy as np
import pytest

from nlpcurriculum.data.synthetic.corpora import (
    SPLIT_NAMES,
    TASKS,
    SyntheticCorporaConfig,
    build_task_corpus,
    split_of,
)
from nlpcurriculum.data.synthetic.noise import NoiseConfig


@pytest.mark.parametrize("task", TASKS)
def test_every_task_builds_splits_without_exact_duplicates(task):
    cfg = SyntheticCorporaConfig(tasks=[task], n_per_task=40, duplicate_fraction=0.25)
    corpus = build_task_corpus(task, cfg)
    planted = [r for r in corpus.records if r["dup_of"] >= 0]
    assert len(corpus.records) == 50 and len(planted) == 10
    texts = [r["text"] for name in SPLIT_NAMES for r in corpus.splits[name]]
    assert len(texts) == int(corpus.keep.sum()) == len(set(texts))
    for name in SPLIT_NAMES:
        for r in corpus.splits[name]:
            assert split_of(r["clean_text"], cfg.seed, cfg.val_fraction, cfg.test_fraction) == name
    exact = [r for r in planted if r["text"] == corpus.records[r["dup_of"]]["text"]]
    i_exact = [corpus.records.index(r) for r in exact]
    assert all(not corpus.keep[i] or not corpus.keep[corpus.records[i]["dup_of"]] for i in i_exact)


def test_noise_keeps_the_clean_text_and_counts_edits():
    cfg = SyntheticCorporaConfig(tasks=["stories"], n_per_task=60, noisy_fraction=1.0,
                                 noise=NoiseConfig(typo_rate=0.05), duplicate_fraction=0.0)
    corpus = build_task_corpus("stories", cfg)
    recs = corpus.records
    assert all(r["is_noisy"] for r in recs)
    assert sum(r["n_typos"] for r in recs) > 0
    assert all((r["text"] != r["clean_text"]) == (r["n_typos"] > 0) for r in recs)


def test_same_seed_same_corpus_and_unknown_task_is_named():
    cfg = SyntheticCorporaConfig(tasks=["arithmetic"], n_per_task=20)
    a, b = build_task_corpus("arithmetic", cfg), build_task_corpus("arithmetic", cfg)
    assert [r["text"] for r in a.records] == [r["text"] for r in b.records]
    np.testing.assert_array_equal(a.keep, b.keep)
    with pytest.raises(ValueError, match="tasks must be a non-empty subset"):
        SyntheticCorporaConfig(tasks=["poems"])
