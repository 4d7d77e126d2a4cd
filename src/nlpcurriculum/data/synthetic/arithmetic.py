"""Multi-digit arithmetic problems with step-by-step (grade-school column) solutions.

The intermediate steps are the ground truth for chain-of-thought and scratchpad experiments
(Nye et al. 2021, "Show Your Work: Scratchpads for Intermediate Computation with Language Models",
arXiv:2112.00114): addition writes one column per step with its carry; multiplication forms one
partial product per digit of the multiplier and then adds the partial products column by column.

Worked example, 478 + 65:
    column 1: 8 + 5 + carry 0 = 13 -> write 3, carry 1
    column 2: 7 + 6 + carry 1 = 14 -> write 4, carry 1
    column 3: 4 + 0 + carry 1 = 5 -> write 5, carry 0
    answer 543

Left out: subtraction with borrows, division, decimals and negative numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nlpcurriculum.data.synthetic.base import as_rng


def column_addition(a: int, b: int) -> tuple[int, list[dict]]:
    """Add two non-negative integers column by column.

    Returns:
        (a + b, steps) where each step is ``{"column", "digit_a", "digit_b", "carry_in",
        "total", "write", "carry_out"}`` (column 1 = units).
    """
    if a < 0 or b < 0:
        raise ValueError(f"operands must be non-negative, got {a}, {b}")
    da, db = str(a)[::-1], str(b)[::-1]
    steps, carry, digits = [], 0, []
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        total = x + y + carry
        steps.append({"column": i + 1, "digit_a": x, "digit_b": y, "carry_in": carry,
                      "total": total, "write": total % 10, "carry_out": total // 10})
        digits.append(total % 10)
        carry = total // 10
    if carry:
        digits.append(carry)
    return int("".join(map(str, digits[::-1]))), steps


def render_addition(steps: list[dict]) -> list[str]:
    """One line per column, e.g. ``column 1: 8 + 5 + carry 0 = 13 -> write 3, carry 1``."""
    lines = [
        f"column {s['column']}: {s['digit_a']} + {s['digit_b']} + carry {s['carry_in']} = "
        f"{s['total']} -> write {s['write']}, carry {s['carry_out']}"
        for s in steps
    ]
    if steps and steps[-1]["carry_out"]:
        lines.append(f"final carry: write {steps[-1]['carry_out']}")
    return lines


def long_multiplication(a: int, b: int) -> tuple[int, list[str]]:
    """Multiply by partial products (one per digit of b, shifted) and column-add them.

    Returns:
        (a * b, lines of the worked solution).
    """
    if a < 0 or b < 0:
        raise ValueError(f"operands must be non-negative, got {a}, {b}")
    lines, total = [], 0
    for i, d in enumerate(str(b)[::-1]):
        partial = a * int(d) * 10**i
        lines.append(f"{a} x {d}" + (f" x 10^{i}" if i else "") + f" = {partial}")
        if i == 0:
            total = partial
            continue
        new_total, steps = column_addition(total, partial)
        lines.append(f"add {total} + {partial}:")
        lines += ["  " + s for s in render_addition(steps)]
        lines.append(f"  = {new_total}")
        total = new_total
    return total, lines


@dataclass
class ArithmeticConfig:
    """Problem distribution.

    Attributes:
        n: number of problems.
        min_digits, max_digits: digit-count range of each operand (uniform).
        operations: subset of ``("add", "mul")``.
        max_mul_digits: digit cap of the multiplier (keeps solutions short).
    """

    n: int = 1000
    min_digits: int = 1
    max_digits: int = 5
    operations: tuple[str, ...] = ("add", "mul")
    max_mul_digits: int = 3

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError(
                f"need 1 <= min_digits <= max_digits, got {self.min_digits}, {self.max_digits}"
            )
        self.operations = tuple(self.operations)
        if not self.operations or set(self.operations) - {"add", "mul"}:
            raise ValueError(
                f"operations must be a non-empty subset of ('add', 'mul'), got {self.operations}"
            )
        if self.max_mul_digits < 1:
            raise ValueError(f"max_mul_digits must be >= 1, got {self.max_mul_digits}")


def _number(rng: np.random.Generator, digits: int) -> int:
    return int(rng.integers(10 ** (digits - 1) if digits > 1 else 0, 10**digits))


def generate(
    cfg: ArithmeticConfig | None = None, seed: int | np.random.Generator = 0
) -> list[dict]:
    """Arithmetic problems with worked solutions.

    Returns:
        Records ``{"task": "add"|"mul", "a", "b", "question", "steps": [str], "solution": str,
        "answer": str}``; ``solution`` is the steps followed by ``"answer: <n>"``.
    """
    cfg = cfg or ArithmeticConfig()
    rng = as_rng(seed)
    out = []
    for _ in range(cfg.n):
        op = cfg.operations[int(rng.integers(len(cfg.operations)))]
        a = _number(rng, int(rng.integers(cfg.min_digits, cfg.max_digits + 1)))
        if op == "add":
            b = _number(rng, int(rng.integers(cfg.min_digits, cfg.max_digits + 1)))
            result, steps = column_addition(a, b)
            lines, symbol = render_addition(steps), "+"
        else:
            hi = min(cfg.max_digits, cfg.max_mul_digits)
            b = _number(rng, int(rng.integers(min(cfg.min_digits, hi), hi + 1)))
            result, lines = long_multiplication(a, b)
            symbol = "x"
        out.append({
            "task": op, "a": a, "b": b, "question": f"What is {a} {symbol} {b}?", "steps": lines,
            "solution": "\n".join(lines + [f"answer: {result}"]), "answer": str(result),
        })
    return out
