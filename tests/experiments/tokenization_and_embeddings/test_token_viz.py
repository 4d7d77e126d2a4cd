"""Sample paragraphs for the token visualizer stage: turns between sources, skips headings, cuts
at a word boundary."""

from __future__ import annotations

import pytest

from nlpcurriculum.viz.experiment import sample_paragraphs

LONG = "word " * 100  # 500 characters


def test_takes_turns_between_groups_and_skips_short_paragraphs():
    groups = {
        "a": ["Heading\n*******\n\n" + "alpha " * 30, "alpha two " * 20],
        "b": ["beta " * 30],
    }
    out = sample_paragraphs(groups, 3, max_chars=300)
    assert [s.split()[0] for s in out] == ["alpha", "beta", "alpha"]
    assert not any("Heading" in s for s in out)


def test_cuts_at_the_last_space_before_the_limit():
    (sample,) = sample_paragraphs({"a": [LONG]}, 1, max_chars=203)
    assert len(sample) <= 203 and sample.endswith("word") and LONG.startswith(sample)


def test_returns_what_there_is_and_fails_clearly_when_nothing_fits():
    assert len(sample_paragraphs({"a": [LONG, LONG]}, 5)) == 2
    with pytest.raises(ValueError, match="no document has a paragraph of at least 120"):
        sample_paragraphs({"a": ["short"]}, 1)
    with pytest.raises(ValueError, match="n must be >= 1"):
        sample_paragraphs({"a": [LONG]}, 0)
