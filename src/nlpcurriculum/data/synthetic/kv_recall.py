"""Key-value recall: find a key's value in a long list, with the key-to-query distance controlled.

The associative-recall probe used for long-context models (e.g. "Lost in the Middle", Liu et al.
2023, arXiv:2307.03172, and the multi-query associative recall of Arora et al. 2023,
arXiv:2312.04927): the context lists ``key: value`` lines, the query asks for one key, and the
answer is its value. ``distance`` is the number of lines between the target line and the query
(0 = the target is the last line), so accuracy can be plotted against distance; the distance in
characters is also recorded (tokens depend on the tokenizer).

Left out: multi-query variants, distractor keys that share prefixes, and natural-language
("needle in a haystack") framings.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from nlpcurriculum.data.synthetic.base import as_rng

_ALPHABET = np.array(list(string.ascii_lowercase + string.digits))


@dataclass
class KVRecallConfig:
    """Attributes:
        n: number of examples.
        n_pairs: key-value lines per context.
        key_len, value_len: characters per key / value (lowercase letters and digits).
        distance: lines between the target and the query; -1 draws it uniformly in
            [0, n_pairs - 1] per example.
    """

    n: int = 1000
    n_pairs: int = 32
    key_len: int = 6
    value_len: int = 6
    distance: int = -1

    def __post_init__(self) -> None:
        if self.n < 0 or self.n_pairs < 1:
            raise ValueError(f"need n >= 0 and n_pairs >= 1, got {self.n}, {self.n_pairs}")
        if self.key_len < 3 or self.value_len < 1:
            raise ValueError("key_len must be >= 3 (keys must be distinct) and value_len >= 1")
        if not -1 <= self.distance < self.n_pairs:
            raise ValueError(f"distance must be -1 or in [0, n_pairs), got {self.distance}")


def _random_strings(rng: np.random.Generator, count: int, length: int) -> list[str]:
    return ["".join(row) for row in _ALPHABET[rng.integers(len(_ALPHABET), size=(count, length))]]


def make_example(
    rng: np.random.Generator, n_pairs: int, distance: int, key_len: int = 6, value_len: int = 6
) -> dict:
    """One example whose target line has ``distance`` lines after it before the query."""
    keys: list[str] = []
    seen: set[str] = set()
    while len(keys) < n_pairs:  # distinct keys, so the answer is unique
        for k in _random_strings(rng, n_pairs - len(keys), key_len):
            if k not in seen:
                seen.add(k)
                keys.append(k)
    values = _random_strings(rng, n_pairs, value_len)
    target = n_pairs - 1 - distance
    lines = [f"{k}: {v}" for k, v in zip(keys, values)]
    context = "\n".join(lines)
    query = f"What is the value of {keys[target]}?"
    after = sum(len(ln) + 1 for ln in lines[target + 1 :])  # chars between target line and query
    return {
        "context": context, "query": query, "prompt": f"{context}\n{query}\n", "key": keys[target],
        "answer": values[target], "n_pairs": n_pairs, "target_index": target,
        "distance": distance, "distance_chars": after,
    }


def generate(cfg: KVRecallConfig | None = None, seed: int | np.random.Generator = 0) -> list[dict]:
    """Key-value recall examples (records of :func:`make_example`)."""
    cfg = cfg or KVRecallConfig()
    rng = as_rng(seed)
    out = []
    for _ in range(cfg.n):
        d = cfg.distance if cfg.distance >= 0 else int(rng.integers(cfg.n_pairs))
        out.append(make_example(rng, cfg.n_pairs, d, cfg.key_len, cfg.value_len))
    return out


def generate_sweep(
    distances: list[int], n_per_distance: int, n_pairs: int, seed: int | np.random.Generator = 0
) -> list[dict]:
    """``n_per_distance`` examples at each distance (for accuracy-vs-distance curves)."""
    rng = as_rng(seed)
    for d in distances:
        if not 0 <= d < n_pairs:
            raise ValueError(f"distance {d} is outside [0, {n_pairs})")
    return [make_example(rng, n_pairs, d) for d in distances for _ in range(n_per_distance)]
