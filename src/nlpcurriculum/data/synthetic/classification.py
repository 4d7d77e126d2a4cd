"""Labelled text classification (topic or sentiment) from word lists, with controllable label noise.

Each document mixes class-indicative words (a fraction ``signal`` of its words, drawn from the
class's list) with neutral filler from a shared lexicon, so the Bayes-optimal accuracy rises with
``signal`` and document length, and a bag-of-words model can learn it. Label noise (flipping a
label to a uniformly chosen *other* class with probability ``label_noise``) is symmetric noise in
the sense of Natarajan et al. 2013 ("Learning with Noisy Labels"); both the noisy and the clean
label are kept, so robustness experiments can measure accuracy against the truth.

Left out: class-conditional (asymmetric) noise, class imbalance and multi-label documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from nlpcurriculum.data.synthetic.base import (
    ADJECTIVES,
    DETERMINERS,
    NOUNS,
    PREPOSITIONS,
    VERBS,
    as_rng,
)

TOPIC_WORDS = {
    "sports": "match goal team coach player score season league stadium referee tournament ball "
              "championship win defeat athlete training race medal",
    "politics": "election vote senate minister policy parliament campaign law government party "
                "debate candidate reform treaty president congress ballot",
    "science": "experiment theory molecule physics biology laboratory hypothesis data research "
               "cell energy atom telescope chemistry gene measurement",
    "food": "recipe bread cheese soup flavor bake kitchen spice dinner fruit vegetable sauce "
            "restaurant dessert chef salad",
    "technology": "software computer network device algorithm internet app server code robot "
                  "processor chip digital startup battery smartphone",
}
SENTIMENT_WORDS = {
    "negative": "terrible awful boring disappointing bad poor horrible dull broken worst hate "
                "annoying sad waste ugly",
    "positive": "wonderful excellent great amazing delightful good fantastic enjoyable brilliant "
                "best love charming happy perfect beautiful",
}
_FILLER = NOUNS + VERBS + ADJECTIVES + DETERMINERS + PREPOSITIONS


@dataclass
class ClassificationConfig:
    """Attributes:
        n: number of documents.
        task: ``"topic"`` (5 classes) or ``"sentiment"`` (2 classes).
        signal: fraction of words drawn from the class list (the rest is neutral filler).
        label_noise: probability that the observed label is replaced by a different class.
        min_words, max_words: document length range.
    """

    n: int = 2000
    task: Literal["topic", "sentiment"] = "topic"
    signal: float = 0.2
    label_noise: float = 0.0
    min_words: int = 20
    max_words: int = 60

    def __post_init__(self) -> None:
        if self.task not in ("topic", "sentiment"):
            raise ValueError(f"task must be 'topic' or 'sentiment', got {self.task!r}")
        if not 0.0 <= self.signal <= 1.0 or not 0.0 <= self.label_noise <= 1.0:
            raise ValueError("signal and label_noise must be in [0, 1]")
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError(
                f"need 1 <= min_words <= max_words, got {self.min_words}, {self.max_words}"
            )
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")


def label_names(task: str) -> list[str]:
    """Class names in label-id order."""
    return list((TOPIC_WORDS if task == "topic" else SENTIMENT_WORDS).keys())


def generate(
    cfg: ClassificationConfig | None = None, seed: int | np.random.Generator = 0
) -> list[dict]:
    """Labelled documents.

    Returns:
        Records ``{"text", "label", "label_name", "clean_label", "is_noisy"}``; ``label`` is the
        observed (possibly flipped) class id, ``clean_label`` the class the text was drawn from.
    """
    cfg = cfg or ClassificationConfig()
    rng = as_rng(seed)
    table = TOPIC_WORDS if cfg.task == "topic" else SENTIMENT_WORDS
    names = list(table)
    lists = [table[k].split() for k in names]
    k = len(names)
    out = []
    for _ in range(cfg.n):
        clean = int(rng.integers(k))
        length = int(rng.integers(cfg.min_words, cfg.max_words + 1))
        from_class = rng.random(length) < cfg.signal
        pool = lists[clean]
        words = [
            pool[int(rng.integers(len(pool)))] if c else _FILLER[int(rng.integers(len(_FILLER)))]
            for c in from_class.tolist()
        ]
        label = clean
        if rng.random() < cfg.label_noise:
            label = (clean + 1 + int(rng.integers(k - 1))) % k  # a different class, uniformly
        text = " ".join(words)
        out.append({"text": text[0].upper() + text[1:] + ".", "label": label,
                    "label_name": names[label], "clean_label": clean, "is_noisy": label != clean})
    return out
