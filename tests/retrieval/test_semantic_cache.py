"""The semantic cache: the docstring's worked example, hits and misses, invalidation policies."""

import numpy as np
import pytest

from nlpcurriculum.retrieval.semantic_cache import DocStore, SemanticCache


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_docstring_example():
    versions = np.zeros(10, dtype=np.int64)
    caches = {p: SemanticCache(2, 0.9, p) for p in ("versions", "versions+bound")}
    for cache in caches.values():
        cache.insert(_unit([1, 0]), np.array([3, 5]), np.array([0.9, 0.7]), versions)
        got = cache.lookup(_unit([0.96, 0.28]), versions)
        assert got.hit and got.ids.tolist() == [3, 5] and got.similarity == pytest.approx(0.96, abs=1e-6)
    new = _unit([0.8, 0.6])                               # score 0.8 for the cached query
    assert caches["versions+bound"].on_update(7, new) == 1
    assert caches["versions"].on_update(7, new) == 0
    assert not caches["versions+bound"].lookup(_unit([1, 0]), versions).hit
    assert caches["versions"].lookup(_unit([1, 0]), versions).hit


def test_threshold_and_stale_stamps():
    versions = np.zeros(4, dtype=np.int64)
    cache = SemanticCache(2, 0.99, "versions")
    assert not cache.lookup(_unit([1, 0]), versions).hit            # empty cache: a miss
    cache.insert(_unit([1, 0]), np.array([0, 1]), np.array([0.9, 0.5]), versions)
    assert not cache.lookup(_unit([0.9, 0.44]), versions).hit       # cosine 0.9 < 0.99
    versions[1] += 1                                                 # a used document changed
    assert not cache.lookup(_unit([1, 0]), versions).hit
    assert cache.stats.stale_evictions == 1 and len(cache) == 0
    none = SemanticCache(2, 0.99, "none")
    none.insert(_unit([1, 0]), np.array([0, 1]), np.array([0.9, 0.5]), np.zeros(4, dtype=np.int64))
    assert none.lookup(_unit([1, 0]), versions).hit                 # the control serves it anyway
    with pytest.raises(ValueError):
        SemanticCache(2, 0.9, "lru")


def _stale_hits(policy: str, seed: int = 0) -> int:
    """Random updates to a random store; stale = a hit that differs from its query's fresh result."""
    rng = np.random.default_rng(seed)
    store = DocStore(_unit(rng.normal(size=(200, 8))))
    Q = _unit(rng.normal(size=(30, 8)))
    cache = SemanticCache(8, 0.999, policy)
    idx, val = store.search(Q, 5)
    for q, i, v in zip(Q, idx, val):
        cache.insert(q, i, v, store.versions)
    stale = 0
    for _ in range(60):
        doc = int(rng.integers(200))
        vec = _unit(Q[rng.integers(30)] + 0.3 * rng.normal(size=8))   # often enters some result
        store.update(doc, vec)
        cache.on_update(doc, vec)
        fresh, fresh_val = store.search(Q, 5)
        for i, q in enumerate(Q):
            got = cache.lookup(q, store.versions)
            if got.hit:
                stale += int(not np.array_equal(got.ids, fresh[i]))
            else:
                cache.insert(q, fresh[i], fresh_val[i], store.versions)
    return stale


def test_versions_and_bound_serve_no_stale_result_and_weaker_policies_do():
    assert _stale_hits("versions+bound") == 0
    assert _stale_hits("versions") > 0          # a document entering a result is not caught
    assert _stale_hits("none") > _stale_hits("versions")


def test_store_search_matches_numpy_and_grows():
    rng = np.random.default_rng(1)
    P = _unit(rng.normal(size=(50, 4)))
    store = DocStore(P)
    q = _unit(rng.normal(size=4))
    idx, val = store.search(q, 3)
    assert idx.tolist() == np.argsort(-(P @ q))[:3].tolist()
    cache = SemanticCache(4, 0.5)
    for i in range(40):                                               # past the initial capacity
        cache.insert(P[i], np.array([i]), np.array([1.0]), store.versions)
    assert len(cache) == 40 and cache.lookup(P[33], store.versions).ids.tolist() == [33]
