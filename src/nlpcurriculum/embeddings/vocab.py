"""Word vocabulary for word2vec: word <-> id, counts, and a ``min_count`` cut.

word2vec (Mikolov et al. 2013, arXiv:1301.3781) works on whole words: the text is split on
whitespace, words rarer than ``min_count`` are dropped (they get too few updates to learn anything
and make the output layer bigger), and ids are given in order of decreasing frequency. The counts
are kept because both subsampling and the negative-sampling noise distribution are functions of them
(see :mod:`nlpcurriculum.embeddings.sampling`).

Left out: phrase detection ("new_york", the second paper's section 4) and a vocabulary size cap
by pruning during counting (word2vec.c's ``ReduceVocab``); a full count fits in memory here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import regex

__all__ = ["Vocabulary", "simple_word_tokenize", "as_sentences"]

_WORD = regex.compile(r"\p{L}+(?:'\p{L}+)?|\p{N}+")


def simple_word_tokenize(text: str) -> list[str]:
    """Lower-cased words (letters, with an inner apostrophe) and digit runs; punctuation dropped.

    >>> simple_word_tokenize("Paris is the capital of France. It's big!")
    ['paris', 'is', 'the', 'capital', 'of', 'france', "it's", 'big']
    """
    return _WORD.findall(text.lower())


def as_sentences(tokens: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str]]:
    """Accept a flat token list (one long sentence) or a list of sentences; return sentences.

    Context windows never cross a sentence boundary, so passing stories as separate sentences keeps
    the end of one story out of the context of the next.
    """
    if isinstance(tokens, str):
        raise TypeError("tokens must be a list of words or of sentences, not a str; "
                        "split it first, e.g. with simple_word_tokenize")
    tokens = list(tokens)
    if not tokens:
        return []
    if all(isinstance(t, str) for t in tokens):
        return [tokens]  # type: ignore[list-item]
    if all(not isinstance(t, str) for t in tokens):
        return [list(s) for s in tokens]
    raise TypeError("tokens mixes words and sentences; pass one or the other")


@dataclass
class Vocabulary:
    """Words ordered by decreasing count (ties alphabetical), with their counts.

    Attributes:
        words: id -> word.
        counts: id -> number of occurrences in the training text, int64, shape ``(V,)``.
        index: word -> id.
    """

    words: list[str]
    counts: np.ndarray
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.counts = np.asarray(self.counts, dtype=np.int64)
        if len(self.words) != len(self.counts):
            raise ValueError(f"{len(self.words)} words but {len(self.counts)} counts")
        if len(set(self.words)) != len(self.words):
            raise ValueError("vocabulary words must be unique")
        if (self.counts <= 0).any():
            raise ValueError("vocabulary counts must be positive")
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 5) -> "Vocabulary":
        """Count words and keep those seen at least ``min_count`` times.

        Raises:
            ValueError: if no word reaches ``min_count``.
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counter: Counter[str] = Counter()
        for sentence in sentences:
            counter.update(sentence)
        kept = sorted(((w, c) for w, c in counter.items() if c >= min_count), key=lambda x: (-x[1], x[0]))
        if not kept:
            raise ValueError(f"no word occurs at least min_count={min_count} times "
                             f"({len(counter)} distinct words, {sum(counter.values())} tokens)")
        return cls([w for w, _ in kept], np.array([c for _, c in kept], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    @property
    def total(self) -> int:
        """Number of in-vocabulary tokens in the training text."""
        return int(self.counts.sum())

    def encode_sentences(self, sentences: Iterable[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Map sentences to one flat id stream, dropping out-of-vocabulary words.

        Returns:
            ``(ids, sentence_ids)``, both int64 of shape ``(N,)``: the word id at each kept position
            and the index of the sentence it came from (windows must not cross sentences).
        """
        ids: list[int] = []
        sent: list[int] = []
        for s, sentence in enumerate(sentences):
            row = [self.index[w] for w in sentence if w in self.index]
            ids.extend(row)
            sent.extend([s] * len(row))
        return np.asarray(ids, dtype=np.int64), np.asarray(sent, dtype=np.int64)
