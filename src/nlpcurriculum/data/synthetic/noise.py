"""Seeded text corruption: typos, adjacent character swaps and local word shuffles at given rates.

Used to test robustness (how fast accuracy or perplexity degrades with noise) in the style of
Belinkov & Bisk 2018, "Synthetic and Natural Noise Both Break Neural Machine Translation"
(arXiv:1711.02173). Rates are per opportunity, so the expected number of edits is known:

* ``add_typos``: each letter, with probability ``rate``, is substituted by a QWERTY neighbour,
  deleted, or gets a neighbour inserted after it (equally likely);
* ``swap_chars``: each adjacent letter pair inside a word, with probability ``rate``, is
  transposed (``"form"`` -> ``"from"``), never overlapping another swap;
* ``shuffle_words``: each word, with probability ``rate``, swaps places with a word at most
  ``window`` positions to its right.

Every function returns the noisy text and the number of edits it made.

Left out: OCR-style confusions, phonetic misspellings and natural-noise dictionaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nlpcurriculum.data.synthetic.base import as_rng

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    pos = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}
    out = {}
    for c, (r, i) in pos.items():
        out[c] = "".join(
            d for d, (r2, i2) in pos.items() if d != c and abs(r2 - r) <= 1 and abs(i2 - i) <= 1
        )
    return out


KEYBOARD_NEIGHBOURS = _keyboard_neighbours()


def add_typos(text: str, rate: float, rng: np.random.Generator) -> tuple[str, int]:
    """Keyboard typos on letters at per-letter probability ``rate``."""
    hits = rng.random(len(text)) < rate
    kinds = rng.integers(3, size=len(text))
    out, n = [], 0
    for ch, hit, kind in zip(text, hits.tolist(), kinds.tolist()):
        near = KEYBOARD_NEIGHBOURS.get(ch.lower())
        if not hit or not near:
            out.append(ch)
            continue
        n += 1
        sub = near[int(rng.integers(len(near)))]
        sub = sub.upper() if ch.isupper() else sub
        if kind == 0:
            out.append(sub)  # substitution
        elif kind == 1:
            pass  # deletion
        else:
            out.append(ch + sub)  # insertion
    return "".join(out), n


def swap_chars(text: str, rate: float, rng: np.random.Generator) -> tuple[str, int]:
    """Transpose adjacent letters inside words at per-pair probability ``rate``."""
    chars = list(text)
    draws = rng.random(max(len(chars) - 1, 0))
    n, i = 0, 0
    while i < len(chars) - 1:
        a, b = chars[i], chars[i + 1]
        if a.isalpha() and b.isalpha() and a != b and draws[i] < rate:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
            n += 1
            i += 2  # the pair is used; swaps never overlap
        else:
            i += 1
    return "".join(chars), n


def shuffle_words(
    text: str, rate: float, rng: np.random.Generator, window: int = 3
) -> tuple[str, int]:
    """Swap each word, with probability ``rate``, with one up to ``window`` places to its right."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    words = text.split()
    n = 0
    for i in range(len(words) - 1):
        if rng.random() < rate:
            j = min(len(words) - 1, i + int(rng.integers(1, window + 1)))
            words[i], words[j] = words[j], words[i]
            n += 1
    return " ".join(words), n


@dataclass
class NoiseConfig:
    """Attributes:
        typo_rate: per-letter typo probability.
        swap_rate: per-letter-pair transposition probability.
        shuffle_rate: per-word shuffle probability.
        shuffle_window: maximum distance of a word shuffle.
    """

    typo_rate: float = 0.0
    swap_rate: float = 0.0
    shuffle_rate: float = 0.0
    shuffle_window: int = 3

    def __post_init__(self) -> None:
        for name in ("typo_rate", "swap_rate", "shuffle_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if self.shuffle_window < 1:
            raise ValueError(f"shuffle_window must be >= 1, got {self.shuffle_window}")


def apply_noise(text: str, cfg: NoiseConfig, seed: int | np.random.Generator = 0) -> dict:
    """Apply word shuffles, then swaps, then typos.

    Returns:
        ``{"text": noisy, "clean": text, "n_shuffles", "n_swaps", "n_typos"}``.
    """
    rng = as_rng(seed)
    noisy, n_shuffles = text, 0
    if cfg.shuffle_rate:
        noisy, n_shuffles = shuffle_words(text, cfg.shuffle_rate, rng, cfg.shuffle_window)
    noisy, n_swaps = swap_chars(noisy, cfg.swap_rate, rng) if cfg.swap_rate else (noisy, 0)
    noisy, n_typos = add_typos(noisy, cfg.typo_rate, rng) if cfg.typo_rate else (noisy, 0)
    return {"text": noisy, "clean": text, "n_shuffles": n_shuffles, "n_swaps": n_swaps,
            "n_typos": n_typos}


def noise_corpus(
    texts: list[str], cfg: NoiseConfig, seed: int | np.random.Generator = 0
) -> list[dict]:
    """:func:`apply_noise` over many texts from one random stream."""
    rng = as_rng(seed)
    return [apply_noise(t, cfg, rng) for t in texts]
