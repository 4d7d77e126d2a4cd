"""Instruction/response pairs: every response is the computable reference."""

from __future__ import annotations

import pytest

from nlpcurriculum.data.synthetic.instructions import (
    TASK_TYPES,
    InstructionConfig,
    generate,
    is_correct,
    reference_response,
)


def test_reference_responses_by_hand():
    assert reference_response("first_sentence", "One cat. Two dogs. Three.") == "One cat."
    assert reference_response("uppercase", "a Big dog") == "A BIG DOG"
    assert reference_response("count_words", "the cat  sat") == "3"
    assert reference_response("sort_list", "10, 9, 100") == "9, 10, 100"  # numeric order
    assert reference_response("sort_list", "pear, apple") == "apple, pear"
    assert reference_response("arithmetic", "12 * 3") == "36"
    assert reference_response("reverse_words", "a b c") == "c b a"
    with pytest.raises(ValueError, match="unknown task type"):
        reference_response("translate", "x")


def test_generated_records_are_correct_and_cover_all_types():
    records = generate(InstructionConfig(n=300), seed=0)
    assert {r["task_type"] for r in records} == set(TASK_TYPES)
    for r in records:
        assert is_correct(r, r["response"])
        assert not is_correct(r, r["response"] + " extra")
        assert r["prompt"].startswith(r["instruction"]) and r["prompt"].endswith(r["input"])


def test_task_type_subset():
    records = generate(InstructionConfig(n=20, task_types=("uppercase",)), seed=1)
    assert all(r["response"] == r["input"].upper() for r in records)
    with pytest.raises(ValueError):
        InstructionConfig(task_types=("poetry",))
