"""Shared pieces of the synthetic generators: seeding and a tiny English lexicon.

Every generator takes ``seed: int | numpy.random.Generator``: an int gives a fresh, reproducible
``numpy.random.default_rng(seed)``; a Generator is used (and advanced) as is, so a caller can draw
several corpora from one stream. The lexicon is small on purpose: sentences read as English
(determiner, adjective, noun, verb, ...), which the quality filters and the n-gram model expect,
without shipping a word list.
"""

from __future__ import annotations

import numpy as np

NOUNS = (
    "cat dog bird river city teacher student garden window market train road book letter song "
    "child doctor farmer forest mountain village ocean island kitchen table chair door friend "
    "engine computer language question answer story picture morning evening winter summer"
).split()
VERBS = (
    "sees finds likes carries watches helps follows opens builds paints reads writes visits "
    "cleans moves lifts holds draws calls meets"
).split()
ADJECTIVES = (
    "small large old young quiet busy bright dark happy tired green red warm cold new simple "
    "strange gentle heavy careful"
).split()
ADVERBS = "slowly quickly often rarely carefully quietly happily always".split()
DETERMINERS = "the a this that every one".split()
PREPOSITIONS = "near behind under above beside through across".split()


def as_rng(seed: int | np.random.Generator) -> np.random.Generator:
    """An int seeds a new PCG64 generator; a Generator is returned unchanged."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.default_rng(int(seed))
    raise TypeError(f"seed must be an int or numpy.random.Generator, got {type(seed).__name__}")


def _pick(rng: np.random.Generator, words: tuple | list) -> str:
    return words[int(rng.integers(len(words)))]


def make_sentence(rng: np.random.Generator) -> str:
    """One grammatical sentence: ``The busy farmer often reads a letter near the river.``"""
    parts = [_pick(rng, DETERMINERS)]
    if rng.random() < 0.6:
        parts.append(_pick(rng, ADJECTIVES))
    parts.append(_pick(rng, NOUNS))
    if rng.random() < 0.3:
        parts.append(_pick(rng, ADVERBS))
    parts += [_pick(rng, VERBS), _pick(rng, DETERMINERS)]
    if rng.random() < 0.4:
        parts.append(_pick(rng, ADJECTIVES))
    parts.append(_pick(rng, NOUNS))
    if rng.random() < 0.4:
        parts += [_pick(rng, PREPOSITIONS), "the", _pick(rng, NOUNS)]
    text = " ".join(parts)
    return text[0].upper() + text[1:] + "."


def make_paragraph(rng: np.random.Generator, n_sentences: int) -> str:
    """``n_sentences`` sentences joined by spaces."""
    return " ".join(make_sentence(rng) for _ in range(n_sentences))
