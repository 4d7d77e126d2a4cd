"""Wall-clock timing on a shared CPU: best of several runs, and the number of torch threads.

* :func:`best_of` calls a function ``repeats`` times and keeps the fastest run: on a busy
  machine most slow runs are other processes' time slices, so the minimum is the least
  disturbed estimate of the function's own cost.
* :func:`interleaved_rounds` times several arms (e.g. with and without a cache) round after
  round, each round running every arm once in turn, so that a slow spell of the machine hits
  all arms alike; a timing finding compares the arms round by round
  (:meth:`nlpcurriculum.results.Finding.timing_ratio`).
* :func:`torch_threads` runs a block with a given number of intra-op torch threads and
  restores the previous count afterwards (small models gain little from a second thread, and
  two spinning OpenMP threads on a shared machine can be many times slower than one).

Left out: CUDA timing (events and synchronisation).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch

__all__ = ["best_of", "interleaved_rounds", "torch_threads"]

T = TypeVar("T")


def best_of(fn: Callable[[], T], repeats: int) -> tuple[T | None, float]:
    """Call ``fn`` ``repeats`` times; return ``(its last result, the fastest call in seconds)``.

    With ``repeats = 0`` nothing runs: ``(None, inf)``.
    """
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def interleaved_rounds(arms: dict[str, Callable[[], object]], rounds: int,
                       warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each arm, ``rounds`` times, the arms alternating within each round.

    Each round runs every arm once, in the given order in even rounds and reversed in odd ones
    (so neither arm always runs right after the other). ``warmup`` untimed rounds come first.

    Returns:
        ``{arm: [seconds of round 0, round 1, ...]}``.
    """
    if rounds < 1 or not arms:
        raise ValueError(f"need at least one arm and one round, got {len(arms)} arms, {rounds} rounds")
    order = list(arms)
    times: dict[str, list[float]] = {name: [] for name in order}
    for r in range(warmup + rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            arms[name]()
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op torch threads (restored afterwards).

    Raises:
        ValueError: when ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"num_threads must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
