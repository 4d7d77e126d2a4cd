"""MinHash signatures: bit-for-bit parity with datasketch, estimator accuracy, robustness."""

from __future__ import annotations

import dataclasses
import time
import tracemalloc

import numpy as np
import pytest
from datasketch import MinHash

from nlpcurriculum.data.minhash import (
    EMPTY_VALUE,
    MERSENNE_PRIME,
    MinHashConfig,
    MinHasher,
    estimate_jaccard,
    jaccard,
    make_permutations,
    shingles,
    to_text,
)
from nlpcurriculum.data.synthetic.duplicates import random_documents

DS_SCHEME = {"mersenne61": "legacy", "affine32": "affine32"}


def _corpus() -> list[str | bytes]:
    docs: list[str | bytes] = random_documents(40, seed=3, min_words=5, max_words=120)
    docs += ["", "two words", "Ünïcödé wörds — “quotes” and emoji 🙂 " * 3, "   \n\t  "]
    docs.append("valid start ".encode() + b"\xff\xfe broken bytes here and more words follow")
    return docs


@pytest.mark.parametrize("scheme", ["mersenne61", "affine32"])
def test_permutations_match_datasketch(scheme):
    a, b = make_permutations(128, 7, scheme)
    ref = MinHash(num_perm=128, seed=7, scheme=DS_SCHEME[scheme]).permutations
    np.testing.assert_array_equal(a, np.asarray(ref[0]))
    np.testing.assert_array_equal(b, np.asarray(ref[1]))


@pytest.mark.parametrize("scheme", ["mersenne61", "affine32"])
@pytest.mark.parametrize("shingle,k", [("word", 5), ("word", 1), ("char", 5)])
def test_signatures_equal_datasketch_bit_for_bit(scheme, shingle, k):
    cfg = MinHashConfig(num_perm=128, seed=1, scheme=scheme, shingle=shingle, k=k)
    docs = _corpus()
    ours = MinHasher(cfg).signatures(docs)
    ref = MinHash.bulk(
        [[s.encode("utf-8") for s in shingles(d, cfg)] for d in docs],
        num_perm=128, seed=1, scheme=DS_SCHEME[scheme],
    )
    np.testing.assert_array_equal(ours, np.array([m.hashvalues for m in ref]).astype(np.uint32))


def test_shingles_hand_example():
    cfg = MinHashConfig(shingle="word", k=2)
    assert shingles("The cat sat. The cat", cfg) == {"the cat", "cat sat", "sat the"}
    # Fewer tokens than k: the whole text is the single shingle; no tokens: no shingles.
    assert shingles("just two", MinHashConfig(k=5)) == {"just two"}
    assert shingles("  ...  ", MinHashConfig(k=5)) == set()
    assert shingles("ab  cd", MinHashConfig(shingle="char", k=3)) == {"ab ", "b c", " cd"}


def test_jaccard_estimate_within_sampling_error():
    # Sets of integer "shingle hashes" with exactly known Jaccard: |A & B| = 100, |A | B| = 200.
    rng = np.random.default_rng(0)
    hasher = MinHasher(MinHashConfig(num_perm=256))
    errors = []
    for _ in range(20):
        pool = rng.choice(2**32, size=200, replace=False).astype(np.uint32)
        a, b = pool[:150], pool[50:]
        sig = hasher.signatures_from_hashes([a, b])
        errors.append(estimate_jaccard(sig[0], sig[1]) - 0.5)
    sd = np.sqrt(0.5 * 0.5 / 256)
    assert abs(np.mean(errors)) < 3 * sd / np.sqrt(20)  # unbiased
    assert np.max(np.abs(errors)) < 4 * sd


@pytest.mark.parametrize("scheme", ["mersenne61", "affine32"])
def test_fast_hash_estimates_match_exact_jaccard(scheme):
    docs = random_documents(2, seed=5, min_words=300, max_words=300)
    words = docs[0].split(" ")
    variant = " ".join(words[:200] + docs[1].split(" ")[:100])
    cfg = MinHashConfig(num_perm=256, hash_fn="fast", scheme=scheme)
    true = jaccard(shingles(docs[0], cfg), shingles(variant, cfg))
    sig = MinHasher(cfg).signatures([docs[0], variant, docs[0]])
    sd = np.sqrt(true * (1 - true) / 256)
    assert abs(estimate_jaccard(sig[0], sig[1]) - true) < 4 * sd
    np.testing.assert_array_equal(sig[0], sig[2])
    # One distinct hash per distinct shingle (no 32-bit collisions on a small set).
    assert MinHasher(cfg).shingle_hashes(docs[0]).shape[0] == len(shingles(docs[0], cfg))


@pytest.mark.parametrize("hash_fn", ["sha1", "fast"])
@pytest.mark.parametrize("shingle", ["word", "char"])
def test_streamed_pieces_give_the_same_signature(hash_fn, shingle):
    text = "  ".join(random_documents(3, seed=1, min_words=200, max_words=200)) + "\n\n tail end"
    cfg = MinHashConfig(shingle=shingle, hash_fn=hash_fn)
    whole = MinHasher(cfg).signature(text)
    streamed = MinHasher(dataclasses.replace(cfg, piece_chars=64)).signature(text)
    np.testing.assert_array_equal(whole, streamed)


def test_chunk_and_batch_sizes_do_not_change_signatures():
    docs = _corpus()
    ref = MinHasher(MinHashConfig()).signatures(docs)
    small = MinHasher(MinHashConfig(chunk_rows=7)).signatures(docs, batch_rows=50)
    np.testing.assert_array_equal(small, ref)
    np.testing.assert_array_equal(np.stack([MinHasher().signature(d) for d in docs]), ref)


def test_mersenne_reduction_is_exact_in_the_rare_overflow_case():
    # y = a*x + b mod 2^64 = 2^64 - 1 makes the one-step fold (y & p) + (y >> 61) = p + 7 >= p.
    hasher = MinHasher(MinHashConfig(num_perm=1))
    x = np.array([12345], dtype=np.uint32)
    hasher.a = np.array([1], dtype=np.uint64)
    hasher.b = np.array([2**64 - 1 - 12345], dtype=np.uint64)
    got = int(hasher._permute_min(x, np.array([0]))[0, 0])
    assert got == ((2**64 - 1) % int(MERSENNE_PRIME)) & 0xFFFFFFFF


def test_empty_and_punctuation_only_documents_keep_the_empty_value():
    sig = MinHasher().signatures(["", "   ", "!!! ???", "real words here"])
    assert np.all(sig[:3] == EMPTY_VALUE)
    assert not np.all(sig[3] == EMPTY_VALUE)


def test_invalid_utf8_is_replaced_or_rejected_by_policy():
    words = random_documents(1, seed=2, min_words=60, max_words=60)[0].encode()
    bad = words + b" one bad byte \xff in the tail"
    assert "\ufffd" in to_text(bad)
    good = words + b" one bad byte in the tail"
    # U+FFFD is not a word character, so the damaged document tokenises like the clean one.
    assert shingles(bad) == shingles(good)
    sig = MinHasher().signatures([bad, good])
    assert estimate_jaccard(sig[0], sig[1]) == 1.0
    with pytest.raises(ValueError, match="not valid UTF-8"):
        MinHasher(MinHashConfig(decode_errors="strict")).signature(bad)
    with pytest.raises(TypeError, match="str or bytes"):
        MinHasher().signature(123)  # type: ignore[arg-type]


def test_50mb_document_is_capped_in_time_and_memory():
    doc = "lorem ipsum dolor sit amet consectetur " * 1_300_000  # ~50 MB
    assert len(doc) > 50_000_000
    hasher = MinHasher(MinHashConfig())  # max_doc_chars = 1_000_000
    tracemalloc.start()
    t0 = time.perf_counter()
    sig = hasher.signature(doc)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sig.shape == (128,) and not np.all(sig == EMPTY_VALUE)
    assert peak < 120 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert elapsed < 10.0


@pytest.mark.parametrize(
    "kwargs",
    [{"num_perm": 0}, {"k": 0}, {"scheme": "md5"}, {"hash_fn": "xx"}, {"max_doc_chars": 0},
     {"chunk_rows": 0}],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        MinHashConfig(**kwargs)
