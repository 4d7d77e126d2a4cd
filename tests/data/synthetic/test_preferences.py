"""Preference pairs: chosen outscores rejected under the stated rule."""

from __future__ import annotations

import numpy as np
import pytest

from nlpcurriculum.data.synthetic.instructions import reference_response
from nlpcurriculum.data.synthetic.preferences import (
    PreferenceConfig,
    generate,
    rule_score,
    token_f1,
)


def test_rule_by_hand():
    assert token_f1("a b c", "a b c") == 1.0
    assert token_f1("a b", "a b c d") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    # Verbose: F1 = 2 * (2/4) * 1 / 1.5 = 2/3; penalty 0.1 * (4 - 2) / 2 = 0.1.
    assert rule_score("well ok a b", "a b", verbosity=0.1) == pytest.approx(2 / 3 - 0.1)


def test_chosen_beats_rejected_and_scores_are_reproducible():
    records = generate(PreferenceConfig(n=200), seed=0)
    for r in records:
        assert r["score_chosen"] > r["score_rejected"] and not r["flipped"]
        # The chosen response is the best candidate: the reference (score 1.0) is always offered.
        assert r["score_chosen"] == pytest.approx(1.0)
        instruction, text = r["prompt"].split("\n\n", 1)
        ref = reference_response(r["task_type"], text)
        assert rule_score(r["chosen"], ref) == pytest.approx(r["score_chosen"])
        assert rule_score(r["rejected"], ref) == pytest.approx(r["score_rejected"])
    assert len({r["kind_rejected"] for r in records}) >= 3


def test_label_noise_flips_the_expected_fraction():
    records = generate(PreferenceConfig(n=1000, label_noise=0.2), seed=1)
    flipped = np.array([r["flipped"] for r in records])
    assert abs(flipped.mean() - 0.2) < 0.04
    assert all((r["score_chosen"] < r["score_rejected"]) == r["flipped"] for r in records)
