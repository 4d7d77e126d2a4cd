"""Helpers of the data-cleaning experiments: rank AUC and injected junk."""

import numpy as np
import pytest

from nlpcurriculum.experiments.deduplication_and_filtering.filter import JUNK_KINDS, make_junk, rank_auc


def test_rank_auc_hand_example():
    # positives {3, 1}, negatives {2, 1}: pairs (3>2), (3>1), (1<2), (1=1 -> 0.5) -> 2.5 / 4.
    assert rank_auc(np.array([3.0, 1.0]), np.array([2.0, 1.0])) == pytest.approx(0.625)
    assert rank_auc(np.array([5.0]), np.array([1.0, 2.0])) == 1.0


@pytest.mark.parametrize("kind", JUNK_KINDS)
def test_junk_keeps_length_and_breaks_the_text(kind):
    text = " ".join(f"w{i}" for i in range(48))
    junk = make_junk(text, kind, np.random.default_rng(0))
    assert junk != text
    assert len(junk.split()) == 48
    if kind == "shuffled":
        assert sorted(junk.split()) == sorted(text.split())


def test_unknown_junk_kind_is_named():
    with pytest.raises(ValueError, match="unknown junk kind 'x'"):
        make_junk("a b", "x", np.random.default_rng(0))
