"""LSH banding and dedup: parity with datasketch, the S-curve, ground-truth F1, edge cases."""

from __future__ import annotations

import time

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH
from datasketch.lsh import _optimal_param

from nlpcurriculum.data.lsh import (
    EXACT_DUPLICATE,
    NEAR_DUPLICATE,
    DedupConfig,
    UnionFind,
    bucket_edges,
    candidate_pairs,
    clusters_from_edges,
    deduplicate,
    empirical_s_curve,
    lsh_error_areas,
    optimal_params,
    pairwise_cluster_scores,
    s_curve,
    shares_a_band,
)
from nlpcurriculum.data.minhash import MinHashConfig, MinHasher, shingles
from nlpcurriculum.data.synthetic.duplicates import DuplicatesConfig, inject_duplicates

DS_SCHEME = {"mersenne61": "legacy", "affine32": "affine32"}


@pytest.fixture(scope="module")
def planted() -> list[dict]:
    cfg = DuplicatesConfig(n_originals=300, n_exact=30, n_near=90, jaccard_low=0.8,
                           jaccard_high=1.0, n_related=60, related_low=0.3, related_high=0.6,
                           max_words=200)
    return inject_duplicates(cfg, seed=11)


@pytest.mark.parametrize("num_perm", [32, 128])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.8, 0.9])
def test_optimal_params_match_datasketch(num_perm, threshold):
    assert optimal_params(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)
    weighted = _optimal_param(threshold, num_perm, 0.3, 0.7)
    assert optimal_params(threshold, num_perm, (0.3, 0.7)) == weighted


def test_s_curve_hand_values():
    # b = 20, r = 5: 1 - (1 - 0.8^5)^20 = 0.99964..., 1 - (1 - 0.3^5)^20 = 0.04749...
    assert s_curve(0.8, 20, 5) == pytest.approx(1 - (1 - 0.32768) ** 20, abs=1e-12)
    assert s_curve(0.8, 20, 5) == pytest.approx(0.99964, abs=1e-5)
    assert s_curve(0.3, 20, 5) == pytest.approx(0.04749, abs=1e-5)
    assert s_curve(0.0, 20, 5) == 0.0 and s_curve(1.0, 20, 5) == 1.0


def test_error_areas_equal_adaptive_quadrature():
    from scipy.integrate import quad  # what datasketch uses

    fp, fn = lsh_error_areas(0.7, 14, 9)
    ref_fp = quad(lambda s: s_curve(s, 14, 9), 0, 0.7, epsabs=1e-13)[0]
    ref_fn = quad(lambda s: 1 - s_curve(s, 14, 9), 0.7, 1, epsabs=1e-13)[0]
    assert fp == pytest.approx(ref_fp, abs=1e-10) and fn == pytest.approx(ref_fn, abs=1e-10)


@pytest.mark.parametrize("scheme", ["mersenne61", "affine32"])
def test_clusters_equal_datasketch_minhashlsh(planted, scheme):
    texts = [r["text"] for r in planted]
    cfg = DedupConfig(threshold=0.7, exact_first=False, verify=False,
                      minhash=MinHashConfig(scheme=scheme))
    ours = deduplicate(texts, cfg)
    lsh = MinHashLSH(threshold=0.7, num_perm=128)
    data = [[s.encode() for s in shingles(t)] for t in texts]
    mhs = MinHash.bulk(data, num_perm=128, scheme=DS_SCHEME[scheme])
    for i, m in enumerate(mhs):
        lsh.insert(i, m)
    uf = UnionFind(len(texts))
    for i, m in enumerate(mhs):
        for j in lsh.query(m):
            uf.union(i, j)
    assert (lsh.b, lsh.r) == (ours.bands, ours.rows)
    ref_labels = uf.labels()
    # Same partition (our cluster id is the kept document, datasketch's the smallest member).
    assert pairwise_cluster_scores(ours.cluster, ref_labels)["f1"] == 1.0
    assert len(np.unique(ours.cluster)) == len(np.unique(ref_labels))


def test_dedup_f1_on_planted_near_duplicates(planted):
    texts = [r["text"] for r in planted]
    truth = [r["cluster"] for r in planted]
    res = deduplicate(texts, DedupConfig())  # threshold 0.7 + verification
    scores = pairwise_cluster_scores(res.cluster, truth)
    assert scores["f1"] >= 0.95, scores
    # "exact_duplicate" means "identical to the kept document"; a copy of an original whose
    # cluster kept a near copy is a near duplicate of that kept document.
    for i, reason in enumerate(res.reason):
        same_text = reason is not None and texts[i] == texts[res.cluster[i]]
        assert (reason == EXACT_DUPLICATE) == same_text
    first_of = {}
    for i, t in enumerate(texts):
        assert res.cluster[i] == res.cluster[first_of.setdefault(t, i)]  # same text, same cluster
    assert sum(res.counts.values()) == len(texts)
    dropped = int(np.flatnonzero(~res.keep)[0])
    assert res.explain(dropped).startswith(f"doc {dropped}: dropped")


def test_candidate_pairs_equal_brute_force_band_comparison():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 5, size=(60, 12)).astype(np.uint32)  # tiny alphabet: many collisions
    pairs = candidate_pairs(base, 4, 3)
    i, j = np.triu_indices(60, k=1)
    brute = shares_a_band(base[i], base[j], 4, 3)
    assert pairs == {(int(a), int(b)) for a, b, c in zip(i, j, brute) if c}
    # Star edges induce the same connected components as all candidate pairs.
    star = clusters_from_edges(60, bucket_edges(base, 4, 3))
    full = clusters_from_edges(60, np.array(sorted(pairs)).reshape(-1, 2))
    np.testing.assert_array_equal(star, full)


def test_empirical_s_curve_follows_theory():
    rng = np.random.default_rng(1)
    hasher = MinHasher(MinHashConfig(num_perm=128))
    bands, rows = 16, 8
    sims, hits = [], []
    for s_target in np.linspace(0.2, 0.95, 16):
        for _ in range(40):
            # |A & B| = c, |A | B| = 400 -> Jaccard c / 400 exactly.
            c = int(round(s_target * 400))
            pool = rng.choice(2**32, size=400, replace=False).astype(np.uint32)
            half = (400 - c) // 2
            a, b = pool[: c + half], np.concatenate([pool[:c], pool[c + half :]])
            sig = hasher.signatures_from_hashes([a, b])
            sims.append(c / 400)
            hits.append(bool(shares_a_band(sig[:1], sig[1:], bands, rows)[0]))
    sims_a, hits_a = np.array(sims), np.array(hits)
    centers, rate, counts = empirical_s_curve(sims_a, hits_a, bins=10)
    # Expected rate per bin: the mean theoretical probability of the pairs that fell in it.
    _, expected, _ = empirical_s_curve(sims_a, s_curve(sims_a, bands, rows), bins=10)
    ok = counts >= 30
    se = np.sqrt(np.clip(expected * (1 - expected), 0.01, None) / np.maximum(counts, 1))
    assert ok.sum() >= 5
    assert np.all(np.abs(rate[ok] - expected[ok]) < 4 * se[ok])
    assert np.isnan(rate[counts == 0]).all()


def test_corpus_of_identical_documents_keeps_one_quickly():
    docs = ["the same document repeated many many times over"] * 20_000
    t0 = time.perf_counter()
    res = deduplicate(docs)
    assert time.perf_counter() - t0 < 10.0
    assert res.counts == {"kept": 1, EXACT_DUPLICATE: 19_999, NEAR_DUPLICATE: 0}
    assert res.keep[0] and np.all(res.cluster == 0)


def test_identical_documents_without_exact_pass_still_form_one_cluster():
    docs = ["a document that is copied a number of times"] * 500
    res = deduplicate(docs, DedupConfig(exact_first=False))
    assert res.counts["kept"] == 1 and res.counts[NEAR_DUPLICATE] == 499


def test_empty_documents_never_become_near_duplicates():
    docs = ["", "  ", "...", "real text with enough words to shingle properly here"]
    res = deduplicate(docs, DedupConfig(exact_first=False))
    assert res.keep.all()  # no shingles, no evidence of duplication
    res = deduplicate(docs + [""])
    assert not res.keep[4] and res.reason[4] == EXACT_DUPLICATE and res.cluster[4] == 0


def test_keep_longest_policy():
    words = " ".join(f"w{i}" for i in range(60))
    docs = [words, words + " plus a tail", words + " tail"]
    res = deduplicate(docs, DedupConfig(keep="longest"))
    assert res.keep.tolist() == [False, True, False]
    assert res.cluster.tolist() == [1, 1, 1]
    assert res.reason[0] == NEAR_DUPLICATE and 0.7 < res.similarity[0] <= 1.0


def test_invalid_utf8_copy_is_found():
    text = " ".join(f"token{i}" for i in range(80))
    res = deduplicate([text, text.encode() + b" \xff\xfe"])
    assert res.counts[NEAR_DUPLICATE] == 1


def test_verification_removes_low_similarity_edges():
    from nlpcurriculum.data.synthetic.duplicates import make_near_duplicate, pseudo_vocabulary

    doc = " ".join(f"w{i}" for i in range(300))
    related, j = make_near_duplicate(doc, 0.3, 0, pseudo_vocabulary(500))
    assert 0.25 < j < 0.35
    # 64 bands of 2 rows: P(candidate | 0.3) = 1 - (1 - 0.09)^64 > 0.99, far too permissive.
    loose = DedupConfig(bands=64, rows=2, verify=False)
    assert deduplicate([doc, related], loose).counts[NEAR_DUPLICATE] == 1
    checked = DedupConfig(bands=64, rows=2, verify=True)
    res = deduplicate([doc, related], checked)
    assert res.counts[NEAR_DUPLICATE] == 0 and res.n_edges == 0


def test_pairwise_scores_hand_example():
    s = pairwise_cluster_scores([0, 0, 0, 3], [0, 0, 2, 2])
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == pytest.approx(1 / 2)
    assert s["f1"] == pytest.approx(0.4)
    assert pairwise_cluster_scores([0, 1, 2], [0, 1, 2])["f1"] == 1.0


def test_union_find_merges_transitively():
    np.testing.assert_array_equal(clusters_from_edges(4, np.zeros((0, 2))), np.arange(4))
    uf = UnionFind(6)
    uf.union(4, 5)
    uf.union(1, 4)
    uf.union(2, 3)
    assert uf.labels().tolist() == [0, 1, 2, 2, 1, 1]


@pytest.mark.parametrize("kwargs", [{"threshold": 1.0}, {"bands": 4}, {"bands": 20, "rows": 20},
                                    {"weights": (0.7, 0.7)}, {"keep": "shortest"}])
def test_dedup_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        DedupConfig(**kwargs)


def test_50mb_documents_dedup_quickly():
    big = "lorem ipsum dolor sit amet consectetur " * 1_300_000  # ~50 MB
    variant = big[:-40] + "a different ending for the second copy."
    t0 = time.perf_counter()
    res = deduplicate([big, "a small unrelated document with a few words", big, variant])
    assert time.perf_counter() - t0 < 10.0
    assert res.reason == [None, None, EXACT_DUPLICATE, NEAR_DUPLICATE]  # first 1M chars agree
