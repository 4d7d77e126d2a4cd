"""EDA operations and masking: rates, invariants, determinism, provenance, edge cases."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from nlpcurriculum.data.augment import (
    FALLBACK_SYNONYMS,
    AugmentConfig,
    augment_corpus,
    augment_text,
    eda,
    random_deletion,
    random_insertion,
    random_masking,
    random_swap,
    synonym_replacement,
    table_neighbours,
)

SENTENCE = "The busy farmer often reads a large book near the quiet river every morning."


def test_synonym_replacement_changes_round_rate_times_length_words():
    words = SENTENCE.split()  # 14 words
    out = synonym_replacement(words, 0.2, np.random.default_rng(0))
    changed = [(a, b) for a, b in zip(words, out) if a != b]
    assert len(out) == len(words) and len(changed) == round(0.2 * 14)
    for old, new in changed:
        core_old, core_new = old.strip(".").lower(), new.strip(".").lower()
        assert core_new in FALLBACK_SYNONYMS[core_old]
        assert old[0].isupper() == new[0].isupper() and old.endswith(".") == new.endswith(".")


def test_synonym_replacement_uses_the_given_neighbour_function():
    def neighbours(word: str) -> list[str]:
        return ["OMEGA"] if word == "beta" else []

    out = synonym_replacement(["alpha", "beta"], 1.0, np.random.default_rng(0), neighbours)
    assert out == ["alpha", "OMEGA"]


def test_random_insertion_adds_neighbours():
    words = SENTENCE.split()
    out = random_insertion(words, 0.2, np.random.default_rng(1))
    assert len(out) == len(words) + 3
    extra = Counter(out) - Counter(words)
    neighbours = {n for v in words for n in FALLBACK_SYNONYMS.get(v.strip(".").lower(), [])}
    assert set(extra) <= neighbours


def test_random_swap_keeps_the_multiset():
    words = SENTENCE.split()
    out = random_swap(words, 0.3, np.random.default_rng(2))
    assert Counter(out) == Counter(words) and out != words


def test_random_deletion_rate_and_never_empty():
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(10_000)]
    kept = random_deletion(words, 0.3, rng)
    assert abs(len(kept) / len(words) - 0.7) < 0.02
    kept_set = set(kept)
    assert kept == [w for w in words if w in kept_set]  # order preserved
    assert len(random_deletion(words[:5], 1.0, rng)) == 1
    assert random_deletion(words[:5], 0.0, rng) == words[:5]


def test_random_masking_rate():
    words = [f"w{i}" for i in range(10_000)]
    out = random_masking(words, 0.15, np.random.default_rng(4), "[M]")
    assert abs(out.count("[M]") / len(words) - 0.15) < 0.015


def test_eda_cycles_operations_and_is_deterministic():
    cfg = AugmentConfig(n_aug=8, p_mask=0.2)
    a = eda(SENTENCE, cfg, seed=5)
    assert [r["op"] for r in a] == ["sr", "ri", "rs", "rd", "mask"] + ["sr", "ri", "rs"]
    assert a == eda(SENTENCE, cfg, seed=5)
    assert a != eda(SENTENCE, cfg, seed=6)


def test_empty_text_gives_empty_augmentations():
    for r in eda("", AugmentConfig(n_aug=5, p_mask=0.5), seed=0):
        assert r["text"] == ""
    assert eda("", AugmentConfig(alpha_sr=0, alpha_ri=0, alpha_rs=0, p_rd=0)) == []


def test_augment_corpus_keeps_labels_and_provenance():
    records = [{"text": SENTENCE, "label": 1}, {"text": "the old cat sees a dog", "label": 0}]
    out = augment_corpus(records, AugmentConfig(n_aug=3), seed=0)
    assert len(out) == 2 * 4
    assert [r["op"] for r in out[:4]] == ["original", "sr", "ri", "rs"]
    assert all(r["label"] == records[r["source"]]["label"] for r in out)
    with pytest.raises(KeyError, match="no 'text' field"):
        augment_corpus([{"sentence": "x"}])


def test_unknown_operation_and_bad_rates_raise():
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_text("a b", "backtranslate", AugmentConfig(), np.random.default_rng(0))
    with pytest.raises(ValueError):
        AugmentConfig(alpha_sr=1.5)
    assert table_neighbours({"a": ["b"]})("a") == ["b"]
