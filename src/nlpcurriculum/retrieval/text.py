"""The analyser of the bm25s benchmark: lowercase, ``\\b\\w\\w+\\b``, stop words, Snowball stems.

Steps, in order (as ``bm25s.tokenize(..., stopwords="en", stemmer=Stemmer("english"))``):

1. lowercase the text;
2. split with the regex ``(?u)\\b\\w\\w+\\b`` (scikit-learn's default token pattern: runs of two
   or more word characters, so one-character tokens drop out);
3. drop the 33 English stop words of Lucene's / Elasticsearch's English analyser
   (:data:`STOPWORDS_EN`) -- before stemming;
4. stem each remaining token with the Snowball English stemmer (PyStemmer), a memo per word.

Example: ``Analyzer().tokens("The cells were 5x more active in vivo.")`` ->
``["cell", "were", "5x", "more", "activ", "vivo"]`` ("the" and "in" are stop words).

One difference from ``bm25s.tokenize`` on purpose: a text with no token at all gives ``[]``;
bm25s gives ``[""]`` (an empty-string token that then counts towards the document's length).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["Analyzer", "STOPWORDS_EN", "TOKEN_PATTERN"]

TOKEN_PATTERN = r"(?u)\b\w\w+\b"

STOPWORDS_EN: frozenset[str] = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split())
"""Lucene's English stop set (33 words), the list the bm25s benchmark used."""


class Analyzer:
    """Text -> index terms (see the module docstring).

    Args:
        stem: Snowball-stem the tokens (needs PyStemmer); False keeps the surface forms.
        stopwords: words dropped after lowercasing (default :data:`STOPWORDS_EN`).
    """

    def __init__(self, stem: bool = True, stopwords: Iterable[str] = STOPWORDS_EN) -> None:
        self.split = re.compile(TOKEN_PATTERN).findall
        self.stopwords = frozenset(stopwords)
        self.stem = stem
        self._stemmer = None
        self._memo: dict[str, str] = {}
        if stem:
            import Stemmer  # PyStemmer: the C Snowball stemmers

            self._stemmer = Stemmer.Stemmer("english")

    def tokens(self, text: str) -> list[str]:
        """The index terms of one text, in order, repeats kept."""
        words = [w for w in self.split(text.lower()) if w not in self.stopwords]
        if self._stemmer is None:
            return words
        memo = self._memo
        new = [w for w in set(words) if w not in memo]
        if new:
            memo.update(zip(new, self._stemmer.stemWords(new)))
        return [memo[w] for w in words]

    def batch(self, texts: Iterable[str]) -> list[list[str]]:
        """:meth:`tokens` of every text."""
        return [self.tokens(t) for t in texts]
