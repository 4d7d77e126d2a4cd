"""Heuristic document quality filters (Gopher and C4 rules), each returning a reason code.

Implements the "quality filters" and "repetition removal" rules of Rae et al. 2021, *Scaling
Language Models: Methods, Analysis & Insights from Training Gopher* (arXiv:2112.11446,
appendix A.1.1-A.1.2), and two page-level rules of the C4 cleaning in Raffel et al. 2019
(arXiv:1910.10683, sec. 2.2). Thresholds default to the papers' values.

Each rule is a small class (:class:`DocumentFilter` subclasses) whose ``__call__`` returns a
:class:`FilterResult` ``(keep, reason)``; a rule that can fail in two ways (too short / too long)
returns the matching reason. :func:`apply_filters` runs a list of rules in order, stops at the
first failure (so each dropped document has exactly one reason: cheap rules come first) and
counts drops per reason, which is what a stage logs (docs/CONVENTIONS.md, convention 12).

Repetition rules, worked on ``"a b a b a b"`` (6 words, 6 word characters):
* top 2-gram character fraction: the most frequent 2-gram "a b" occurs 3 times; its characters
  (2 per occurrence) cover 3 * 2 / 6 = 1.0 of the word characters -> repetitive.
* duplicated 5-gram character fraction: "a b a b a" and "b a b a b" each occur once, so no word
  is covered by a repeated 5-gram -> 0.0.

Robustness: ``bytes`` are decoded with U+FFFD for invalid UTF-8 (see
:func:`nlpcurriculum.data.minhash.to_text`), and the ``replacement_chars`` rule drops documents
in which such damage is common; an empty or whitespace-only document is dropped as ``"empty"``;
a document longer than ``max_chars`` is dropped as ``"too_long"`` before it is ever split into
words, so a 50 MB document costs one ``len``.

Left out: C4's line-level cleaning (terminal punctuation, "javascript" lines), bad-word lists,
language identification (fastText), and model-based quality classifiers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

import numpy as np

from nlpcurriculum.data.minhash import to_text


class Reason(StrEnum):
    """Why a document was dropped (a ``str``, so it serialises and logs as its value)."""

    EMPTY = "empty"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    MEAN_WORD_LENGTH = "mean_word_length"
    SYMBOL_RATIO = "symbol_to_word_ratio"
    BULLET_LINES = "bullet_lines"
    ELLIPSIS_LINES = "ellipsis_lines"
    FEW_ALPHA_WORDS = "few_alphabetic_words"
    NON_ALPHA_CHARS = "non_alphabetic_chars"
    NO_STOP_WORDS = "no_stop_words"
    DUPLICATE_LINES = "duplicate_lines"
    DUPLICATE_LINE_CHARS = "duplicate_line_chars"
    TOP_NGRAM = "top_ngram_repetition"
    DUPLICATE_NGRAM = "duplicate_ngram_repetition"
    LOREM_IPSUM = "lorem_ipsum"
    CURLY_BRACKET = "curly_bracket"
    REPLACEMENT_CHARS = "invalid_utf8"
    PERPLEXITY = "perplexity_too_high"


@dataclass(frozen=True)
class FilterResult:
    """``keep`` and, when not kept, the reason code."""

    keep: bool
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.keep == (self.reason is not None):
            raise ValueError("a kept document has no reason; a dropped one must have one")


KEEP = FilterResult(True)

_ELLIPSIS = ("...", "\u2026")
_BULLETS = ("\u2022", "-", "*", "\u2023", "\u25e6", "\u2043", "\u2219")
# A letter is a word character that is neither a digit nor '_'.
_LETTER_RE = re.compile(r"[^\W\d_]")
GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")


class TextStats:
    """A document's text with its words and lines computed once, lazily, for all rules."""

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def words(self) -> list[str]:
        return self.text.split()  # Gopher: whitespace-separated words

    @cached_property
    def lines(self) -> list[str]:
        return [ln.strip() for ln in self.text.splitlines() if ln.strip()]

    @cached_property
    def word_chars(self) -> int:
        return sum(map(len, self.words))


class DocumentFilter:
    """Base class: a rule that keeps or drops one document."""

    reason: str = ""

    def check(self, stats: TextStats) -> FilterResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, doc: str | bytes | TextStats) -> FilterResult:
        stats = doc if isinstance(doc, TextStats) else TextStats(to_text(doc))
        return self.check(stats)

    def _drop(self, reason: str | None = None) -> FilterResult:
        return FilterResult(False, reason or self.reason)


@dataclass
class EmptyFilter(DocumentFilter):
    """Drops empty and whitespace-only documents."""

    reason = Reason.EMPTY

    def check(self, stats: TextStats) -> FilterResult:
        t = stats.text
        return self._drop() if not t or t.isspace() else KEEP  # no 50 MB strip() copy


@dataclass
class LengthFilter(DocumentFilter):
    """Gopher: 50 <= words <= 100,000; plus a character cap checked before splitting into words."""

    min_words: int = 50
    max_words: int = 100_000
    max_chars: int = 1_000_000

    def check(self, stats: TextStats) -> FilterResult:
        if len(stats.text) > self.max_chars:
            return self._drop(Reason.TOO_LONG)
        n = len(stats.words)
        if n < self.min_words:
            return self._drop(Reason.TOO_SHORT)
        if n > self.max_words:
            return self._drop(Reason.TOO_LONG)
        return KEEP


@dataclass
class MeanWordLengthFilter(DocumentFilter):
    """Gopher: mean word length in [3, 10] characters."""

    min_mean: float = 3.0
    max_mean: float = 10.0
    reason = Reason.MEAN_WORD_LENGTH

    def check(self, stats: TextStats) -> FilterResult:
        if not stats.words:
            return self._drop()
        mean = stats.word_chars / len(stats.words)
        return KEEP if self.min_mean <= mean <= self.max_mean else self._drop()


@dataclass
class SymbolRatioFilter(DocumentFilter):
    """Gopher: (hash symbols + ellipses) / words <= 0.1."""

    max_ratio: float = 0.1
    reason = Reason.SYMBOL_RATIO

    def check(self, stats: TextStats) -> FilterResult:
        t = stats.text
        symbols = t.count("#") + t.count("...") + t.count("\u2026")
        return KEEP if symbols <= self.max_ratio * max(len(stats.words), 1) else self._drop()


@dataclass
class LineStartEndFilter(DocumentFilter):
    """Gopher: <= 90% of lines start with a bullet, <= 30% of lines end with an ellipsis."""

    max_bullet_frac: float = 0.9
    max_ellipsis_frac: float = 0.3

    def check(self, stats: TextStats) -> FilterResult:
        lines = stats.lines
        if not lines:
            return KEEP
        if sum(ln.startswith(_BULLETS) for ln in lines) > self.max_bullet_frac * len(lines):
            return self._drop(Reason.BULLET_LINES)
        if sum(ln.endswith(_ELLIPSIS) for ln in lines) > self.max_ellipsis_frac * len(lines):
            return self._drop(Reason.ELLIPSIS_LINES)
        return KEEP


@dataclass
class AlphaWordsFilter(DocumentFilter):
    """Gopher: >= 80% of words contain at least one alphabetic character."""

    min_frac: float = 0.8
    reason = Reason.FEW_ALPHA_WORDS

    def check(self, stats: TextStats) -> FilterResult:
        words = stats.words
        if not words:
            return self._drop()
        alpha = sum(1 for w in words if _LETTER_RE.search(w))
        return KEEP if alpha >= self.min_frac * len(words) else self._drop()


@dataclass
class NonAlphaCharsFilter(DocumentFilter):
    """Fraction of non-whitespace characters that are not letters <= 0.25 (digits, symbols)."""

    max_frac: float = 0.25
    reason = Reason.NON_ALPHA_CHARS

    def check(self, stats: TextStats) -> FilterResult:
        chars = "".join(stats.words)
        if not chars:
            return self._drop()
        letters = sum(map(str.isalpha, chars))
        return KEEP if len(chars) - letters <= self.max_frac * len(chars) else self._drop()


@dataclass
class StopWordFilter(DocumentFilter):
    """Gopher: at least 2 of {the, be, to, of, and, that, have, with} occur (case-insensitive)."""

    min_stop_words: int = 2
    stop_words: tuple[str, ...] = GOPHER_STOP_WORDS
    reason = Reason.NO_STOP_WORDS

    def check(self, stats: TextStats) -> FilterResult:
        stop = set(self.stop_words)
        found = sum(1 for w in stats.words if w.lower().strip(".,;:!?\"'()") in stop)
        return KEEP if found >= self.min_stop_words else self._drop()


@dataclass
class DuplicateLinesFilter(DocumentFilter):
    """Gopher: duplicated lines <= 30% of lines and carry <= 20% of line characters."""

    max_line_frac: float = 0.30
    max_char_frac: float = 0.20

    def check(self, stats: TextStats) -> FilterResult:
        lines = stats.lines
        if len(lines) < 2:
            return KEEP
        seen: set[str] = set()
        dup_lines = dup_chars = 0
        for ln in lines:
            if ln in seen:
                dup_lines += 1
                dup_chars += len(ln)
            seen.add(ln)
        if dup_lines > self.max_line_frac * len(lines):
            return self._drop(Reason.DUPLICATE_LINES)
        if dup_chars > self.max_char_frac * sum(map(len, lines)):
            return self._drop(Reason.DUPLICATE_LINE_CHARS)
        return KEEP


def top_ngram_char_fraction(words: list[str], n: int) -> float:
    """Characters of the most frequent word n-gram (all occurrences) / all word characters."""
    total = sum(map(len, words))
    if len(words) < n or total == 0:
        return 0.0
    counts = Counter(zip(*[words[i:] for i in range(n)]))
    gram, count = counts.most_common(1)[0]
    if count < 2:
        return 0.0
    return min(1.0, sum(map(len, gram)) * count / total)


def duplicate_ngram_char_fraction(words: list[str], n: int) -> float:
    """Word characters covered by any word n-gram that occurs more than once / word characters."""
    total = sum(map(len, words))
    if len(words) < n or total == 0:
        return 0.0
    grams = list(zip(*[words[i:] for i in range(n)]))
    counts = Counter(grams)
    covered = np.zeros(len(words) + 1, dtype=np.int64)  # difference array of covering n-grams
    for i, g in enumerate(grams):
        if counts[g] > 1:
            covered[i] += 1
            covered[i + n] -= 1
    mask = np.cumsum(covered[:-1]) > 0
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    return float(lengths[mask].sum() / total)


@dataclass
class RepetitionFilter(DocumentFilter):
    """Gopher n-gram repetition: top 2/3/4-gram and duplicated 5..10-gram character fractions."""

    top_ngram_max: dict[int, float] = field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    dup_ngram_max: dict[int, float] = field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )

    def check(self, stats: TextStats) -> FilterResult:
        words = [w.lower() for w in stats.words]
        for n, limit in sorted(self.top_ngram_max.items()):
            if top_ngram_char_fraction(words, n) > limit:
                return self._drop(Reason.TOP_NGRAM)
        for n, limit in sorted(self.dup_ngram_max.items()):
            if duplicate_ngram_char_fraction(words, n) > limit:
                return self._drop(Reason.DUPLICATE_NGRAM)
        return KEEP


@dataclass
class C4PageFilter(DocumentFilter):
    """C4: drop pages containing "lorem ipsum" or a curly bracket (code, not prose)."""

    def check(self, stats: TextStats) -> FilterResult:
        if "lorem ipsum" in stats.text.lower():
            return self._drop(Reason.LOREM_IPSUM)
        if "{" in stats.text:
            return self._drop(Reason.CURLY_BRACKET)
        return KEEP


@dataclass
class ReplacementCharFilter(DocumentFilter):
    """Drops documents whose U+FFFD (undecodable byte) share exceeds ``max_frac`` of characters."""

    max_frac: float = 0.01
    reason = Reason.REPLACEMENT_CHARS

    def check(self, stats: TextStats) -> FilterResult:
        bad = stats.text.count("\ufffd")
        return KEEP if bad <= self.max_frac * max(len(stats.text), 1) else self._drop()


@dataclass
class QualityFilterConfig:
    """Thresholds of the default rule set (Gopher/C4 values); maps 1:1 onto ``filter.quality``.

    Attributes:
        min_words, max_words, max_chars: length bounds (words split on whitespace).
        min_mean_word_length, max_mean_word_length: mean word length bounds.
        max_symbol_word_ratio: (# + ellipses) per word.
        max_bullet_line_frac, max_ellipsis_line_frac: line start/end rules.
        min_alpha_word_frac: words with a letter.
        max_non_alpha_char_frac: non-letter share of non-space characters.
        min_stop_words: Gopher stop words required.
        max_dup_line_frac, max_dup_line_char_frac: duplicated lines.
        top_ngram_max: n -> max character fraction of the top n-gram.
        dup_ngram_max: n -> max character fraction covered by duplicated n-grams.
        c4_rules: enable lorem-ipsum / curly-bracket rules.
        max_replacement_char_frac: U+FFFD share allowed (invalid UTF-8).
    """

    min_words: int = 50
    max_words: int = 100_000
    max_chars: int = 1_000_000
    min_mean_word_length: float = 3.0
    max_mean_word_length: float = 10.0
    max_symbol_word_ratio: float = 0.1
    max_bullet_line_frac: float = 0.9
    max_ellipsis_line_frac: float = 0.3
    min_alpha_word_frac: float = 0.8
    max_non_alpha_char_frac: float = 0.25
    min_stop_words: int = 2
    max_dup_line_frac: float = 0.30
    max_dup_line_char_frac: float = 0.20
    top_ngram_max: dict[int, float] = field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    dup_ngram_max: dict[int, float] = field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )
    c4_rules: bool = True
    max_replacement_char_frac: float = 0.01

    def __post_init__(self) -> None:
        if not 0 <= self.min_words <= self.max_words:
            raise ValueError(
                f"need 0 <= min_words <= max_words, got {self.min_words}, {self.max_words}"
            )
        if self.max_chars < 1:
            raise ValueError(f"max_chars must be >= 1, got {self.max_chars}")
        if not 0 < self.min_mean_word_length <= self.max_mean_word_length:
            raise ValueError("need 0 < min_mean_word_length <= max_mean_word_length")
        for name in ("max_bullet_line_frac", "max_ellipsis_line_frac", "min_alpha_word_frac",
                     "max_non_alpha_char_frac", "max_dup_line_frac", "max_dup_line_char_frac",
                     "max_replacement_char_frac"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        for name in ("top_ngram_max", "dup_ngram_max"):
            for n, v in getattr(self, name).items():
                if int(n) < 1 or not 0.0 <= v <= 1.0:
                    raise ValueError(f"{name}: need n >= 1 and a fraction in [0, 1], got {n}: {v}")
            setattr(self, name, {int(n): float(v) for n, v in getattr(self, name).items()})


def build_filters(cfg: QualityFilterConfig | None = None) -> list[DocumentFilter]:
    """The default rule list, cheapest first."""
    cfg = cfg or QualityFilterConfig()
    rules: list[DocumentFilter] = [
        EmptyFilter(),
        LengthFilter(cfg.min_words, cfg.max_words, cfg.max_chars),
        ReplacementCharFilter(cfg.max_replacement_char_frac),
        SymbolRatioFilter(cfg.max_symbol_word_ratio),
        MeanWordLengthFilter(cfg.min_mean_word_length, cfg.max_mean_word_length),
        AlphaWordsFilter(cfg.min_alpha_word_frac),
        NonAlphaCharsFilter(cfg.max_non_alpha_char_frac),
        StopWordFilter(cfg.min_stop_words),
        LineStartEndFilter(cfg.max_bullet_line_frac, cfg.max_ellipsis_line_frac),
        DuplicateLinesFilter(cfg.max_dup_line_frac, cfg.max_dup_line_char_frac),
        RepetitionFilter(dict(cfg.top_ngram_max), dict(cfg.dup_ngram_max)),
    ]
    if cfg.c4_rules:
        rules.append(C4PageFilter())
    return rules


@dataclass
class FilterReport:
    """Per-document outcome of :func:`apply_filters`.

    Attributes:
        keep: (N,) bool.
        reasons: the first failing rule's reason per document (None if kept).
        counts: documents dropped per reason, plus ``"kept"``.
    """

    keep: np.ndarray
    reasons: list[str | None]
    counts: dict[str, int]


def filter_document(doc: str | bytes, filters: Sequence[DocumentFilter]) -> FilterResult:
    """Run ``filters`` in order on one document; the first failure decides."""
    stats = TextStats(to_text(doc))
    for f in filters:
        result = f.check(stats)
        if not result.keep:
            return result
    return KEEP


def apply_filters(
    docs: Sequence[str | bytes], filters: Sequence[DocumentFilter] | None = None
) -> FilterReport:
    """Apply ``filters`` (default :func:`build_filters`) to each document; count drops by reason."""
    filters = build_filters() if filters is None else filters
    results = [filter_document(d, filters) for d in docs]
    keep = np.fromiter((r.keep for r in results), dtype=bool, count=len(results))
    counts: Counter[str] = Counter(str(r.reason) for r in results if not r.keep)
    out = {"kept": int(keep.sum())}
    out.update(sorted(counts.items()))
    return FilterReport(keep, [None if r.reason is None else str(r.reason) for r in results], out)
