"""WordPiece, as in BERT: likelihood-scored merges, greedy longest-match-first encoding.

Papers: Schuster & Nakajima (2012), "Japanese and Korean Voice Search" (the original WordPiece);
Wu et al. (2016), arXiv:1609.08144 (GNMT); Devlin et al. (2019), arXiv:1810.04805 (BERT).

Pipeline
--------
1. **Normalise** like ``tokenizers``' ``BertNormalizer``, one character at a time (the rules of
   BERT's original tokenizer, as ``tokenizers`` applies them):

   * ``clean_text``: drop NUL, U+FFFD and every character of general category Cc (control),
     Cf (format) or Co (private use), except ``\\t \\n \\r``, which count as whitespace; keep Cn
     (unassigned: ``tokenizers`` keeps it, and the word becomes ``[UNK]``); then map every
     White_Space character (Rust's ``char::is_whitespace``, :data:`.base.WHITESPACE`) to a space.
   * ``handle_chinese_chars``: put spaces around each CJK ideograph (the eight code-point ranges of
     BERT's ``_is_chinese_char``).
   * accents (``strip_accents``, by default when lowercasing): NFD, then drop category Mn.
   * ``lowercase``: each character on its own, like Rust's ``char::to_lowercase``; no final-sigma
     rule, unlike ``str.lower()`` (:func:`lowercase_per_character`).
2. **Pre-tokenise** like ``BertPreTokenizer``: split on White_Space (dropped) and make every
   punctuation character (Unicode category P*, or ASCII punctuation) a word of its own.

   Categories come from Python's :mod:`unicodedata` (``unicodedata.unidata_version``: 14.0.0 on
   Python 3.11); the ``regex`` module's ``\\p{...}`` is not used, because its tables are newer.
3. **Units.** A word is split into characters; every character but the first carries the
   continuation prefix ``##`` ("play" -> ``p ##l ##a ##y``), so a piece knows whether it starts
   a word.
4. **Training** merges the adjacent pair with the highest likelihood score
   ``score(a, b) = count(ab) / (count(a) * count(b))`` (a pointwise-mutual-information ratio):
   unlike BPE's raw frequency, it prefers pairs whose parts rarely occur apart. The merged unit is
   ``a + b`` without ``b``'s ``##``. Counts are kept incrementally (as in :mod:`.bpe`); because a
   merge lowers ``count(a)`` and ``count(b)``, it *raises* the score of every other pair that
   contains ``a`` or ``b``, so those pairs are re-queued too (a unit -> pairs index finds them).
5. **Encoding** is greedy longest-match-first per word: take the longest vocabulary entry that
   starts the word, then the longest ``##`` entry that continues it, and so on. If some position
   matches nothing, or the word is longer than ``max_input_chars_per_word``, the whole word
   becomes ``[UNK]``.

Hand-worked example (the HuggingFace course corpus: ``hug`` x10, ``pug`` x5, ``pun`` x12,
``bun`` x4, ``hugs`` x5; ``min_frequency=1``)::

    unit counts: h=15 p=17 b=4 ##u=36 ##g=20 ##n=16 ##s=5
    pair          count   score = count / (count(a) * count(b))
    (h, ##u)        15    15 / (15 * 36) = 1/36
    (p, ##u)        17    17 / (17 * 36) = 1/36
    (b, ##u)         4     4 / ( 4 * 36) = 1/36
    (##u, ##g)      20    20 / (36 * 20) = 1/36
    (##u, ##n)      16    16 / (36 * 16) = 1/36
    (##g, ##s)       5     5 / (20 *  5) = 1/20   <- merged first: "##gs"

BPE would merge (##u, ##g) first (the highest raw count); WordPiece picks the rare pair whose
parts almost never occur apart. After it, count(##g)=15 and count(##s)=0, and every remaining pair
scores 1/36; ties go to the smallest pair of unit ids, here (##u, ##g) -> "##ug".

Round trip: WordPiece is lossy on whitespace and case: ``decode(encode(x))`` equals the
normalised, pre-tokenised text joined by single spaces (``"Hello, world!"`` -> ``"hello , world !"``),
provided no word became ``[UNK]``. :meth:`WordPieceTokenizer.canonical` returns that form.

Where parity with ``tokenizers`` stops
--------------------------------------
:func:`scan_hf_differences` (and ``benchmarks/scan_wordpiece_unicode.py``) tests every code point
``c`` of U+0000..U+10FFFF except the surrogates, in the text ``"A" + c``, against
``BertNormalizer`` + ``BertPreTokenizer`` with the same options. Before the per-character rules
above, 830,339 code points differed with the default options (829,834 unassigned code points that
were dropped here and kept by ``tokenizers``, the final sigma U+03A3, and the differences below).
Now 559 differ, all from Unicode tables of different ages, and they are exactly
:data:`HF_DIFFERENCES` (measured with ``tokenizers`` 0.23.3 and Python's Unicode 14.0.0; the test
asserts the set, so a new version of either shows up as a failure):

* **punctuation** (106, whatever the options): ``tokenizers`` takes general categories from tables
  of Unicode 8.0 (the ``unicode_categories`` crate; U+2E42, new in 8.0, is punctuation to it and
  U+2E43, new in 9.0, is not). 104 characters that are P* in 14.0 but not in 8.0 (added since,
  nearly all) are words of their own here and part of a word there; U+166D CANADIAN SYLLABICS CHI
  SIGN and U+111C9 SHARADA SANDHI MARK, P* in 8.0 and So / Mn now, are the reverse. Code points:
  061D 09FD 0A76 0C77 0C84 166D 1B7D-1B7E 2E43-2E4F 2E52-2E5D 10EAD 10F55-10F59 10F86-10F89 111C9
  1144B-1144F 1145A-1145B 1145D 11660-1166C 116B9 1183B 11944-11946 119E2 11A3F-11A46 11A9A-11A9C
  11A9E-11AA2 11C41-11C45 11C70-11C71 11EF7-11EF8 11FFF 12FF1-12FF2 16E97-16E9A 16FE2 1E95E-1E95F.
* **format** (13, with ``clean_text``): Cf characters added since 8.0 are unassigned to
  ``tokenizers``, so it keeps them; this module drops them. Code points: 0890-0891 08E2 110CD
  13430-13438.
* **lowercase** (55, with ``lowercase``): unassigned in Python's Unicode 14.0 but given lowercase
  forms by Unicode 16.0/17.0, which Rust's ``char::to_lowercase`` knows and ``str.lower()`` does not
  (Cyrillic, Latin Extended-D, Garay, Beria Erfe capitals). Code points: 1C89 A7CB-A7CC A7CE A7D2
  A7D4 A7DA A7DC 10D50-10D65 16EA0-16EB8.
* **accents** (385, with accent stripping): 383 characters that are Mn in 14.0 but not in 8.0 (added
  since, or re-categorised like U+1885-1886), kept by ``tokenizers`` and dropped here; U+1734
  HANUNOO SIGN PAMUDPOD (Mn in 8.0, Mc in 14.0), the reverse; U+11938 DIVES AKURU VOWEL SIGN O,
  whose canonical decomposition (Unicode 13.0) Python's NFD applies and ``tokenizers``' older
  normalisation tables do not. Code points: 07FD 0898-089F 08CA-08E1 09FE 0AFA-0AFF 0B55 0C04 0C3C
  0D00 0D3B-0D3C 0D81 0EBA 1734 180F 1885-1886 1ABF-1ACE 1DF6-1DFB A82C A8C5 A8FF A9BD 10D24-10D27
  10EAB-10EAC 10F46-10F50 10F82-10F85 11070 11073-11074 110C2 111CF 1123E 1133B 11438-1143F
  11442-11444 11446 1145E 1182F-11837 11839-1183A 11938 1193B-1193C 1193E 11943 119D4-119D7
  119DA-119DB 119E0 11A01-11A0A 11A33-11A38 11A3B-11A3E 11A47 11A51-11A56 11A59-11A5B 11A8A-11A96
  11A98-11A99 11C30-11C36 11C38-11C3D 11C3F 11C92-11CA7 11CAA-11CB0 11CB2-11CB3 11CB5-11CB6
  11D31-11D36 11D3A 11D3C-11D3D 11D3F-11D45 11D47 11D90-11D91 11D95 11D97 11EF3-11EF4 16F4F 16FE4
  1CF00-1CF2D 1CF30-1CF46 1E000-1E006 1E008-1E018 1E01B-1E021 1E023-1E024 1E026-1E02A 1E130-1E136
  1E2AE 1E2EC-1E2EF 1E944-1E94A.

Copying those tables would close the gap but tie this module to one ``tokenizers`` release; they
are listed instead. The scan tests each code point on its own: sequences whose handling could
differ (NFD's canonical reordering of several marks whose combining classes changed between the
tables) are covered only by the held-out-text tests.

Left out: the post-processor (``[CLS] ... [SEP]`` templates), offsets, Google's original
training (unpublished; HF's ``WordPieceTrainer`` actually runs BPE), and ``limit_alphabet``.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import regex

from nlpcurriculum.tokenizers.base import WHITESPACE as _WHITESPACE
from nlpcurriculum.tokenizers.base import Tokenizer, check_ids, check_vocab_size, iter_texts

_ASCII_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
# Dropped by clean_text besides the "other" categories: NUL (also Cc) and U+FFFD (So).
_ALWAYS_DROPPED = "\0\ufffd"
# Control characters that BERT counts as whitespace instead.
_CONTROL_AS_SPACE = "\t\n\r"
# General categories dropped by clean_text (Cn, unassigned, is kept; Cs cannot occur in Rust text).
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Co"})
_CAPITAL_SIGMA, _SMALL_SIGMA = "\u03a3", "\u03c3"
_SPACE_TABLE = str.maketrans({c: " " for c in _WHITESPACE})
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)  # fmt: skip

_PAIR_BITS = 32
_PAIR_SHIFT = 1 << _PAIR_BITS
_PAIR_MASK = _PAIR_SHIFT - 1


@dataclass(frozen=True)
class WordPieceConfig:
    """Options of the WordPiece tokenizer (the vocabulary size is an argument of ``train``).

    Attributes:
        lowercase: lowercase during normalisation (BERT "uncased").
        strip_accents: remove accents; ``None`` means "same as lowercase" (BERT's rule).
        clean_text: drop control characters and turn all whitespace into spaces.
        handle_chinese_chars: put spaces around CJK ideographs (each becomes a word).
        unk_token: emitted for a word that cannot be spelled with the vocabulary.
        special_tokens: entries placed first in the vocabulary (must include ``unk_token``).
        continuing_prefix: marks a piece that continues a word.
        max_input_chars_per_word: longer words become ``unk_token`` without trying.
        min_frequency: a pair seen fewer times is never merged.
    """

    lowercase: bool = True
    strip_accents: bool | None = None
    clean_text: bool = True
    handle_chinese_chars: bool = True
    unk_token: str = "[UNK]"
    special_tokens: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
    continuing_prefix: str = "##"
    max_input_chars_per_word: int = 100
    min_frequency: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.special_tokens, tuple):
            object.__setattr__(self, "special_tokens", tuple(self.special_tokens))
        if self.unk_token not in self.special_tokens:
            raise ValueError(f"unk_token {self.unk_token!r} must be one of special_tokens {self.special_tokens}")
        if len(set(self.special_tokens)) != len(self.special_tokens):
            raise ValueError(f"special_tokens has duplicates: {self.special_tokens}")
        if not self.continuing_prefix:
            raise ValueError("continuing_prefix must be non-empty")
        if self.max_input_chars_per_word < 1:
            raise ValueError(f"max_input_chars_per_word must be >= 1, got {self.max_input_chars_per_word}")
        if self.min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {self.min_frequency}")


def bert_normalize(
    text: str,
    *,
    clean_text: bool = True,
    handle_chinese_chars: bool = True,
    strip_accents: bool | None = None,
    lowercase: bool = True,
) -> str:
    """BERT's normaliser (same steps and order as ``tokenizers.normalizers.BertNormalizer``).

    Every step works one character at a time (the module docstring, "Pipeline", step 1): drop NUL,
    U+FFFD and categories Cc/Cf/Co (but not ``\\t\\n\\r``), map White_Space to a space, pad CJK
    ideographs with spaces, NFD and drop category Mn, lowercase.
    """
    patterns = _patterns()
    if clean_text:
        text = patterns.dropped.sub("", text).translate(_SPACE_TABLE)
    if handle_chinese_chars:
        text = patterns.cjk.sub(r" \g<0> ", text)
    if strip_accents if strip_accents is not None else lowercase:
        text = patterns.nonspacing_mark.sub("", unicodedata.normalize("NFD", text))
    if lowercase:
        text = lowercase_per_character(text)
    return text


def lowercase_per_character(text: str) -> str:
    """Lowercase each character on its own (Rust's ``char::to_lowercase``, which ``tokenizers`` uses).

    ``str.lower()`` differs in one context rule: a capital sigma that ends a word becomes the final
    form U+03C2 (``"ΟΔΟΣ".lower() == "οδος"``). That is CPython's only context-dependent lowercase
    mapping, so mapping U+03A3 to U+03C3 first leaves plain per-character lowercasing.
    """
    return text.replace(_CAPITAL_SIGMA, _SMALL_SIGMA).lower()


def bert_pre_tokenize(text: str) -> list[str]:
    """Split on whitespace (dropped) and isolate each punctuation character (``BertPreTokenizer``)."""
    return _patterns().pre_token.findall(text)


def _is_control(c: str) -> bool:
    """A character that ``clean_text`` drops (BERT's "control": categories Cc, Cf and Co)."""
    return c not in _CONTROL_AS_SPACE and unicodedata.category(c) in _DROPPED_CATEGORIES


def _is_punctuation(c: str) -> bool:
    """A character that the pre-tokeniser makes a word of its own (ASCII punctuation or P*)."""
    return c in _ASCII_PUNCT or unicodedata.category(c).startswith("P")


@dataclass(frozen=True)
class _Patterns:
    dropped: regex.Pattern[str]  # a run of characters that clean_text drops
    cjk: regex.Pattern[str]  # one CJK ideograph (handle_chinese_chars pads it with spaces)
    nonspacing_mark: regex.Pattern[str]  # a run of category Mn (strip_accents drops it after NFD)
    pre_token: regex.Pattern[str]  # a word: a run of non-space non-punctuation, or one punctuation mark


@functools.cache
def _patterns() -> _Patterns:
    """Character classes built from Python's ``unicodedata`` (built once, on first use).

    The classes are listed from ``unicodedata`` rather than written as ``\\p{P}`` because the
    ``regex`` module carries its own, newer Unicode tables; one source of truth keeps the
    normaliser, the pre-tokeniser and the documented exceptions consistent.
    """
    dropped, marks, punct = [], [], []
    for cp in range(0x110000):
        c = chr(cp)
        if c in _ALWAYS_DROPPED or _is_control(c):
            dropped.append(cp)
        if unicodedata.category(c) == "Mn":
            marks.append(cp)
        if _is_punctuation(c):
            punct.append(cp)
    punct_class = _char_class(punct)
    ws_class = _char_class(ord(c) for c in _WHITESPACE)
    cjk_class = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in _CJK_RANGES)
    return _Patterns(
        dropped=regex.compile(f"[{_char_class(dropped)}]+"),
        cjk=regex.compile(f"[{cjk_class}]"),
        nonspacing_mark=regex.compile(f"[{_char_class(marks)}]+"),
        pre_token=regex.compile(f"[^{ws_class}{punct_class}]+|[{punct_class}]"),
    )


def _char_class(code_points: Iterable[int]) -> str:
    """The body of a regex character class matching exactly ``code_points`` (as ranges)."""
    parts = []
    # Consecutive code points share cp - position: each group is one run lo..hi.
    for _, run in itertools.groupby(enumerate(sorted(code_points)), key=lambda t: t[1] - t[0]):
        cps = [cp for _, cp in run]
        lo, hi = cps[0], cps[-1]
        parts.append(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}")
    return "".join(parts)


class WordPieceTokenizer(Tokenizer):
    """BERT-style WordPiece. Ids: special tokens, then the alphabet units, then the merges."""

    kind = "wordpiece"
    config_cls = WordPieceConfig

    def __init__(self, config: WordPieceConfig | None = None) -> None:
        super().__init__(config)
        self.vocab: list[str] = []
        self._ids: dict[str, int] = {}
        self._max_len = 0
        self._cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ text -> words
    def normalize(self, text: str) -> str:
        c = self.config
        return bert_normalize(text, clean_text=c.clean_text, handle_chinese_chars=c.handle_chinese_chars,
                              strip_accents=c.strip_accents, lowercase=c.lowercase)

    def pre_tokenize(self, text: str) -> list[str]:
        """Normalise, then split into words (what the model sees)."""
        return bert_pre_tokenize(self.normalize(text))

    def canonical(self, text: str) -> str:
        """What ``decode(encode(text))`` returns when no word is unknown: words joined by spaces."""
        return " ".join(self.pre_tokenize(text))

    # ------------------------------------------------------------------ training
    def train(self, text_or_iter: str | Iterable[str], vocab_size: int) -> "WordPieceTokenizer":
        """Learn a vocabulary of ``vocab_size`` entries (specials + alphabet + merges).

        The result is smaller if no pair reaches ``min_frequency`` before the size is reached.

        Raises:
            ValueError: ``vocab_size`` cannot hold the special tokens and the alphabet.
        """
        cfg = self.config
        prefix = cfg.continuing_prefix
        word_counts: Counter[str] = Counter()
        for text in iter_texts(text_or_iter):
            word_counts.update(self.pre_tokenize(text))
        # Words that encoding would map to [UNK] anyway (too long) teach nothing.
        words_str = [w for w in word_counts if len(w) <= cfg.max_input_chars_per_word]

        units: list[str] = list(cfg.special_tokens)
        unit_id: dict[str, int] = {u: i for i, u in enumerate(units)}
        alphabet = sorted({w[0] for w in words_str} | {prefix + c for w in words_str for c in w[1:]})
        check_vocab_size(vocab_size, len(units) + len(alphabet),
                         f"{len(units)} special tokens + {len(alphabet)} alphabet units")
        for u in alphabet:
            if u not in unit_id:
                unit_id[u] = len(units)
                units.append(u)
        words = [[unit_id[w[0]]] + [unit_id[prefix + c] for c in w[1:]] for w in words_str]
        freqs = [word_counts[w] for w in words_str]
        units = _learn_wordpiece_merges(words, freqs, units, unit_id, vocab_size, cfg.min_frequency, prefix)
        self._build(units)
        return self

    def _build(self, vocab: list[str]) -> None:
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocabulary has duplicate entries")
        if self.config.unk_token not in vocab:
            raise ValueError(f"vocabulary lacks the unk token {self.config.unk_token!r}")
        self.vocab = list(vocab)
        self._ids = {t: i for i, t in enumerate(self.vocab)}
        prefix = self.config.continuing_prefix
        self._max_len = max(len(t[len(prefix):] if t.startswith(prefix) else t) for t in self.vocab)
        self._cache = {}

    # ------------------------------------------------------------------ encoding
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Normalise, pre-tokenise and greedily spell each word with the vocabulary."""
        self._check_trained()
        out: list[int] = []
        cache = self._cache
        for word in self.pre_tokenize(text):
            ids = cache.get(word)
            if ids is None:
                ids = cache[word] = self._encode_word(word)
            out.extend(ids)
        return out

    def _encode_word(self, word: str) -> list[int]:
        cfg = self.config
        unk = [self._ids[cfg.unk_token]]
        if len(word) > cfg.max_input_chars_per_word:
            return unk
        ids = self._ids
        prefix = cfg.continuing_prefix
        out: list[int] = []
        start, n = 0, len(word)
        while start < n:
            # Longest match first: no entry is longer than _max_len characters.
            for end in range(min(n, start + self._max_len), start, -1):
                piece = word[start:end] if start == 0 else prefix + word[start:end]
                i = ids.get(piece)
                if i is not None:
                    out.append(i)
                    start = end
                    break
            else:
                return unk  # some position cannot be spelled: the whole word is unknown
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """Join pieces: ``##`` pieces glue to the previous one, others are separated by a space."""
        self._check_trained()
        check_ids(ids, self.vocab_size)
        prefix = self.config.continuing_prefix
        parts: list[str] = []
        for i in ids:
            t = self.vocab[i]
            if t.startswith(prefix) and parts:
                parts.append(t[len(prefix):])
            else:
                if parts:
                    parts.append(" ")
                parts.append(t)
        return "".join(parts)

    def id_to_token(self, token_id: int) -> str:
        check_ids([token_id], self.vocab_size)
        return self.vocab[token_id]

    def token_to_id(self, token: str) -> int | None:
        return self._ids.get(token)

    def get_vocab(self) -> dict[str, int]:
        """``{token: id}`` (what ``tokenizers.models.WordPiece(vocab=...)`` takes)."""
        return dict(self._ids)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        return {"vocab": list(self.vocab)}

    def _set_state(self, state: dict[str, Any]) -> None:
        vocab = state["vocab"]
        if not isinstance(vocab, list) or not vocab or not all(isinstance(t, str) and t for t in vocab):
            raise ValueError("'vocab' must be a non-empty list of non-empty strings")
        self._build(vocab)


def _learn_wordpiece_merges(
    words: list[list[int]],
    freqs: list[int],
    units: list[str],
    unit_id: dict[str, int],
    vocab_size: int,
    min_frequency: int,
    prefix: str,
) -> list[str]:
    """Merge the best-scoring pair until the vocabulary has ``vocab_size`` entries.

    Keeps unit counts, pair counts, pair -> words and unit -> pairs indexes; the heap holds
    ``(-score, pair)`` entries that are validated (recomputed) when popped.
    """
    units = list(units)
    unit_id = dict(unit_id)
    unit_count = [0] * len(units)
    pair_count: dict[int, int] = {}
    where: dict[int, set[int]] = {}
    unit_pairs: dict[int, set[int]] = {}
    for w, (sym, f) in enumerate(zip(words, freqs)):
        for u in sym:
            unit_count[u] += f
        for a, b in zip(sym, sym[1:]):
            k = a * _PAIR_SHIFT + b
            pair_count[k] = pair_count.get(k, 0) + f
            where.setdefault(k, set()).add(w)
            unit_pairs.setdefault(a, set()).add(k)
            unit_pairs.setdefault(b, set()).add(k)

    def score(k: int) -> float:
        return pair_count[k] / (unit_count[k >> _PAIR_BITS] * unit_count[k & _PAIR_MASK])

    heap = [(-score(k), k) for k, c in pair_count.items() if c >= min_frequency]
    heapq.heapify(heap)
    while len(units) < vocab_size and heap:
        neg, k = heapq.heappop(heap)
        if pair_count.get(k, 0) < min_frequency:
            continue
        live = score(k)
        if live != -neg:
            if live < -neg:
                heapq.heappush(heap, (-live, k))
            continue  # a higher live score was pushed when it rose
        a, b = k >> _PAIR_BITS, k & _PAIR_MASK
        merged = units[a] + units[b][len(prefix):]
        z = unit_id.get(merged)
        if z is None:
            z = unit_id[merged] = len(units)
            units.append(merged)
            unit_count.append(0)
        delta: dict[int, int] = {}
        for w in where.pop(k):
            sym, f = words[w], freqs[w]
            i, n = 0, len(sym)
            while i < n - 1:
                if sym[i] != a or sym[i + 1] != b:
                    i += 1
                    continue
                unit_count[a] -= f
                unit_count[b] -= f
                unit_count[z] += f
                if i > 0:
                    x = sym[i - 1]
                    delta[x * _PAIR_SHIFT + a] = delta.get(x * _PAIR_SHIFT + a, 0) - f
                    nk = x * _PAIR_SHIFT + z
                    delta[nk] = delta.get(nk, 0) + f
                    where.setdefault(nk, set()).add(w)
                    unit_pairs.setdefault(x, set()).add(nk)
                    unit_pairs.setdefault(z, set()).add(nk)
                if i + 2 < n:
                    y = sym[i + 2]
                    delta[b * _PAIR_SHIFT + y] = delta.get(b * _PAIR_SHIFT + y, 0) - f
                    nk = z * _PAIR_SHIFT + y
                    delta[nk] = delta.get(nk, 0) + f
                    where.setdefault(nk, set()).add(w)
                    unit_pairs.setdefault(y, set()).add(nk)
                    unit_pairs.setdefault(z, set()).add(nk)
                sym[i : i + 2] = [z]
                n -= 1
                i += 1
        pair_count.pop(k, None)
        for nk, d in delta.items():
            if nk == k:
                continue
            c = pair_count.get(nk, 0) + d
            if c > 0:
                pair_count[nk] = c
            else:
                pair_count.pop(nk, None)
        # Scores moved for pairs whose count changed and for every pair touching a, b or z
        # (their unit counts changed). Re-queue them; stale copies are dropped when popped.
        touched = set(delta)
        for u in (a, b, z):
            pairs = unit_pairs.get(u)
            if pairs:
                dead = [p for p in pairs if p not in pair_count]
                pairs.difference_update(dead)
                touched |= pairs
        for nk in touched:
            if pair_count.get(nk, 0) >= min_frequency:
                heapq.heappush(heap, (-score(nk), nk))
    return units


# ---------------------------------------------------------------------- parity scan
SCAN_PREFIX = "A"
"""The scan tests each code point ``c`` in the text ``"A" + c``: after a cased letter, so that a
context rule such as the final sigma would show, and with a base for a combining mark."""


def scan_hf_differences(config: WordPieceConfig | None = None, code_points: Iterable[int] | None = None,
                        chunk: int = 512) -> list[int]:
    """Code points where our normaliser + pre-tokeniser and ``tokenizers``' disagree.

    For each code point ``c`` (default: all of U+0000..U+10FFFF except the surrogates, which a
    Rust string cannot hold) it compares ``bert_normalize(SCAN_PREFIX + c)`` with
    ``BertNormalizer.normalize_str`` under ``config``'s options, then the words of
    :func:`bert_pre_tokenize` with ``BertPreTokenizer``'s. Normalised texts are compared one by
    one; the pre-tokenisers, given the same text, are compared on ``chunk`` texts joined by spaces
    and, where a chunk differs, one by one. (Joining is exact: both split on the space, drop only
    whitespace and keep every other character in order, so equal word lists for the joined text
    mean equal word lists for each part.)

    Needs the ``tokenizers`` package (the ``oracles`` extra). Takes a few seconds per option set.
    """
    from tokenizers import normalizers, pre_tokenizers  # the reference, an optional dependency

    cfg = config or WordPieceConfig()
    if code_points is None:
        code_points = (cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)
    ref_norm = normalizers.BertNormalizer(clean_text=cfg.clean_text, handle_chinese_chars=cfg.handle_chinese_chars,
                                          strip_accents=cfg.strip_accents, lowercase=cfg.lowercase).normalize_str
    ref_pre = pre_tokenizers.BertPreTokenizer().pre_tokenize_str

    def words_differ(text: str) -> bool:
        return bert_pre_tokenize(text) != [w for w, _ in ref_pre(text)]

    differing: list[int] = []
    pending: list[tuple[int, str]] = []  # (code point, normalised text) awaiting the pre-tokeniser check

    def flush() -> None:
        if pending and words_differ(" ".join(t for _, t in pending)):
            differing.extend(cp for cp, t in pending if words_differ(t))
        pending.clear()

    for cp in code_points:
        text = SCAN_PREFIX + chr(cp)
        ours = bert_normalize(text, clean_text=cfg.clean_text, handle_chinese_chars=cfg.handle_chinese_chars,
                              strip_accents=cfg.strip_accents, lowercase=cfg.lowercase)
        if ours != ref_norm(text):
            differing.append(cp)
            continue
        pending.append((cp, ours))
        if len(pending) >= chunk:
            flush()
    flush()
    return sorted(differing)


# ---------------------------------------------------------------------- documented differences
HF_DIFFERENCE_RANGES: dict[str, str] = {
    "punctuation": (
        "061D 09FD 0A76 0C77 0C84 166D 1B7D-1B7E 2E43-2E4F 2E52-2E5D 10EAD 10F55-10F59 10F86-10F89 111C9 "
        "1144B-1144F 1145A-1145B 1145D 11660-1166C 116B9 1183B 11944-11946 119E2 11A3F-11A46 11A9A-11A9C "
        "11A9E-11AA2 11C41-11C45 11C70-11C71 11EF7-11EF8 11FFF 12FF1-12FF2 16E97-16E9A 16FE2 1E95E-1E95F"
    ),
    "format": "0890-0891 08E2 110CD 13430-13438",
    "lowercase": "1C89 A7CB-A7CC A7CE A7D2 A7D4 A7DA A7DC 10D50-10D65 16EA0-16EB8",
    "accents": (
        "07FD 0898-089F 08CA-08E1 09FE 0AFA-0AFF 0B55 0C04 0C3C 0D00 0D3B-0D3C 0D81 0EBA 1734 180F 1885-1886 "
        "1ABF-1ACE 1DF6-1DFB A82C A8C5 A8FF A9BD 10D24-10D27 10EAB-10EAC 10F46-10F50 10F82-10F85 11070 "
        "11073-11074 110C2 111CF 1123E 1133B 11438-1143F 11442-11444 11446 1145E 1182F-11837 11839-1183A "
        "11938 1193B-1193C 1193E 11943 119D4-119D7 119DA-119DB 119E0 11A01-11A0A 11A33-11A38 11A3B-11A3E "
        "11A47 11A51-11A56 11A59-11A5B 11A8A-11A96 11A98-11A99 11C30-11C36 11C38-11C3D 11C3F 11C92-11CA7 "
        "11CAA-11CB0 11CB2-11CB3 11CB5-11CB6 11D31-11D36 11D3A 11D3C-11D3D 11D3F-11D45 11D47 11D90-11D91 "
        "11D95 11D97 11EF3-11EF4 16F4F 16FE4 1CF00-1CF2D 1CF30-1CF46 1E000-1E006 1E008-1E018 1E01B-1E021 "
        "1E023-1E024 1E026-1E02A 1E130-1E136 1E2AE 1E2EC-1E2EF 1E944-1E94A"
    ),
}
"""The code points where :func:`scan_hf_differences` finds ``tokenizers`` disagreeing, by cause
(hex code points and inclusive ranges, as listed in the module docstring)."""

HF_DIFFERENCES_MEASURED_WITH = {"tokenizers": "0.23.3", "unicodedata": "14.0.0"}
"""The versions :data:`HF_DIFFERENCE_RANGES` was measured with (``tokenizers.__version__`` and
``unicodedata.unidata_version``)."""


def _code_points(spec: str) -> frozenset[int]:
    """``"061D 2E43-2E4F"`` -> the set of those code points (ranges are inclusive)."""
    out: set[int] = set()
    for part in spec.split():
        lo, _, hi = part.partition("-")
        out.update(range(int(lo, 16), int(hi or lo, 16) + 1))
    return frozenset(out)


HF_DIFFERENCES: dict[str, frozenset[int]] = {cause: _code_points(r) for cause, r in HF_DIFFERENCE_RANGES.items()}
""":data:`HF_DIFFERENCE_RANGES` as sets of code points."""


def expected_hf_differences(config: WordPieceConfig | None = None) -> frozenset[int]:
    """The documented differences that ``config``'s options bring into play.

    Punctuation differs whatever the options; format characters only with ``clean_text``, case
    mappings only with ``lowercase``, marks and decompositions only when accents are stripped.
    """
    cfg = config or WordPieceConfig()
    strip = cfg.strip_accents if cfg.strip_accents is not None else cfg.lowercase
    active = {"punctuation": True, "format": cfg.clean_text, "lowercase": cfg.lowercase, "accents": strip}
    return frozenset().union(*(HF_DIFFERENCES[cause] for cause, on in active.items() if on))
