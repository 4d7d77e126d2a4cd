"""Seeded text noise: edit counts follow the rates, invariants hold."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from nlpcurriculum.data.synthetic.base import make_paragraph
from nlpcurriculum.data.synthetic.noise import (
    KEYBOARD_NEIGHBOURS,
    NoiseConfig,
    add_typos,
    apply_noise,
    noise_corpus,
    shuffle_words,
    swap_chars,
)

TEXT = make_paragraph(np.random.default_rng(0), 200)


def test_typo_count_follows_the_rate():
    letters = sum(c.lower() in KEYBOARD_NEIGHBOURS for c in TEXT)
    noisy, n = add_typos(TEXT, 0.05, np.random.default_rng(1))
    assert abs(n / letters - 0.05) < 0.006
    assert noisy != TEXT and add_typos(TEXT, 0.0, np.random.default_rng(1)) == (TEXT, 0)


def test_swaps_preserve_characters_and_words_count():
    noisy, n = swap_chars(TEXT, 0.1, np.random.default_rng(2))
    assert Counter(noisy) == Counter(TEXT) and n > 0
    assert len(noisy.split()) == len(TEXT.split())
    assert sum(a != b for a, b in zip(noisy, TEXT)) == 2 * n  # each swap changes two positions
    assert swap_chars("form", 1.0, np.random.default_rng(0)) == ("ofmr", 2)


def test_shuffles_preserve_the_word_multiset():
    noisy, n = shuffle_words(TEXT, 0.2, np.random.default_rng(3), window=2)
    assert Counter(noisy.split()) == Counter(TEXT.split())
    assert abs(n / (len(TEXT.split()) - 1) - 0.2) < 0.03
    with pytest.raises(ValueError):
        shuffle_words(TEXT, 0.1, np.random.default_rng(0), window=0)


def test_apply_noise_is_seeded_and_reports_counts():
    cfg = NoiseConfig(typo_rate=0.02, swap_rate=0.02, shuffle_rate=0.05)
    a, b = apply_noise(TEXT, cfg, 4), apply_noise(TEXT, cfg, 4)
    assert a == b and a["clean"] == TEXT and min(a["n_typos"], a["n_swaps"], a["n_shuffles"]) > 0
    assert apply_noise("", cfg, 0)["text"] == ""
    assert len(noise_corpus(["a b", "c d"], cfg, 0)) == 2
    with pytest.raises(ValueError):
        NoiseConfig(typo_rate=-0.1)
