"""A replay buffer filled by reservoir sampling (Vitter 1985, "Random sampling with a reservoir",
algorithm R), for experience replay in continual learning (e.g. Chaudhry et al. 2019,
arXiv:1902.10486, "tiny episodic memories").

The buffer holds at most ``capacity`` examples of a stream whose length is not known in advance.
Algorithm R: the ``i``-th example (0-based) is stored outright while ``i < capacity``; after that,
draw ``j`` uniformly from ``0..i`` (inclusive) and overwrite slot ``j`` when ``j < capacity``.
Then after ``n`` examples every one of them is in the buffer with the same probability
``capacity / n`` (by induction: the newcomer gets in with probability ``capacity / (i + 1)``; an
example already in is evicted with probability ``capacity / (i + 1) * 1 / capacity``, which takes
its chance from ``capacity / i`` to ``capacity / (i + 1)``). So after a sequence of tasks the
buffer is a uniform sample of everything seen, each task represented in proportion to its share
of the stream, without knowing how many tasks will come.

Worked example (tested): capacity 2, a stream of 3 examples: the first two fill the buffer; the
third gets in with probability 2/3, and each of the first two stays with probability
``1 - 2/3 * 1/2 = 2/3``.

Left out: class-balanced or loss-aware selection, and generative replay.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

__all__ = ["ReservoirBuffer"]


class ReservoirBuffer:
    """Up to ``capacity`` examples of a stream, a uniform sample of all seen so far.

    Args:
        capacity: the most examples held.
        seed: seeds the buffer's own random numbers (insertion and sampling).
    """

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.items: list[Any] = []
        self.seen = 0  # examples offered so far (i of algorithm R)
        self._rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: Any) -> None:
        """Offer one example of the stream (algorithm R)."""
        if self.seen < self.capacity:
            self.items.append(item)
        else:
            j = self._rng.randint(0, self.seen)  # uniform over 0..seen, both ends included
            if j < self.capacity:
                self.items[j] = item
        self.seen += 1

    def extend(self, items: Iterable[Any]) -> None:
        """Offer several examples, in order."""
        for item in items:
            self.add(item)

    def sample(self, k: int) -> list[Any]:
        """``min(k, len(self))`` stored examples drawn uniformly without replacement."""
        return self._rng.sample(self.items, min(k, len(self.items)))
