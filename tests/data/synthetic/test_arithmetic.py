"""Arithmetic problems: answers are right and the written steps reproduce them."""

from __future__ import annotations

import re

import pytest

from nlpcurriculum.data.synthetic.arithmetic import (
    ArithmeticConfig,
    column_addition,
    generate,
    long_multiplication,
    render_addition,
)


def test_column_addition_hand_example():
    total, steps = column_addition(478, 65)
    assert total == 543
    assert render_addition(steps) == [
        "column 1: 8 + 5 + carry 0 = 13 -> write 3, carry 1",
        "column 2: 7 + 6 + carry 1 = 14 -> write 4, carry 1",
        "column 3: 4 + 0 + carry 1 = 5 -> write 5, carry 0",
    ]
    total, steps = column_addition(999, 1)
    assert total == 1000 and render_addition(steps)[-1] == "final carry: write 1"


def test_long_multiplication_partial_products():
    total, lines = long_multiplication(123, 45)
    assert total == 5535
    assert lines[0] == "123 x 5 = 615" and lines[1] == "123 x 4 x 10^1 = 4920"
    assert lines[-1] == "  = 5535"


def test_generated_answers_and_steps_are_consistent():
    records = generate(ArithmeticConfig(n=300, max_digits=6), seed=0)
    assert {r["task"] for r in records} == {"add", "mul"}
    for r in records:
        expected = r["a"] + r["b"] if r["task"] == "add" else r["a"] * r["b"]
        assert r["answer"] == str(expected)
        assert r["solution"].endswith(f"answer: {expected}")
        if r["task"] == "add":
            # The written digits, read from the last column to the first, spell the answer.
            digits = [int(m) for m in re.findall(r"write (\d)", "\n".join(r["steps"]))]
            assert int("".join(map(str, digits[::-1]))) == expected
            assert len(str(r["a"])) <= 6 and len(str(r["b"])) <= 6
        else:
            assert len(str(r["b"])) <= 3


def test_seeded_and_validated():
    assert generate(ArithmeticConfig(n=20), 1) == generate(ArithmeticConfig(n=20), 1)
    assert generate(ArithmeticConfig(n=20), 1) != generate(ArithmeticConfig(n=20), 2)
    with pytest.raises(ValueError):
        ArithmeticConfig(operations=("div",))
    with pytest.raises(ValueError):
        column_addition(-1, 2)
