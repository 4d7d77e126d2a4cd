"""Copy / reverse tasks."""

from __future__ import annotations

import pytest

from nlpcurriculum.data.synthetic.sequence import SequenceTaskConfig, generate


def test_targets_are_copies_or_reversals():
    cfg = SequenceTaskConfig(n=200, task="mixed", vocab_size=10, min_len=3, max_len=9)
    records = generate(cfg, seed=0)
    assert {r["task"] for r in records} == {"copy", "reverse"}
    for r in records:
        expected = r["input_ids"] if r["task"] == "copy" else r["input_ids"][::-1]
        assert r["target_ids"] == expected
        assert 3 <= len(r["input_ids"]) <= 9 and max(r["input_ids"]) < 10
        assert r["text"] == f"{r['input']} | {r['target']}"
        words = r["input"].split()
        assert r["target"].split() == (words if r["task"] == "copy" else words[::-1])


def test_validation():
    with pytest.raises(ValueError):
        SequenceTaskConfig(task="sort")
    with pytest.raises(ValueError):
        SequenceTaskConfig(vocab_size=100)
