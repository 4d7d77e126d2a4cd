"""WordPiece, as in BERT: likelihood-scored merges, greedy longest-match-first encoding.

Papers: Schuster & Nakajima (2012), "Japanese and Korean Voice Search" (the original WordPiece);
Wu et al. (2016), arXiv:1609.08144 (GNMT); Devlin et al. (2019), arXiv:1810.04805 (BERT).

Pipeline
--------
1. **Normalise** like ``tokenizers``' ``BertNormalizer``: drop control characters and map every
   whitespace character to a space (``clean_text``), put spaces around CJK ideographs,
   optionally strip accents (NFD, drop non-spacing marks) and lowercase.
2. **Pre-tokenise** like ``BertPreTokenizer``: split on whitespace (dropped) and make every
   punctuation character (Unicode category P*, or ASCII punctuation) a word of its own.
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

Left out: the post-processor (``[CLS] ... [SEP]`` templates), offsets, Google's original
training (unpublished; HF's ``WordPieceTrainer`` actually runs BPE), and ``limit_alphabet``.
"""

from __future__ import annotations

import heapq
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import regex

from nlpcurriculum.tokenizers.base import WHITESPACE as _WHITESPACE
from nlpcurriculum.tokenizers.base import Tokenizer, check_ids, check_vocab_size, iter_texts

_ASCII_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_WS_CLASS = "".join(f"\\u{ord(c):04x}" for c in _WHITESPACE)
_PUNCT_CLASS = r"\p{P}" + regex.escape(_ASCII_PUNCT)
# A word is a maximal run of non-space, non-punctuation characters; a punctuation mark is a word.
_PRE_TOKEN = regex.compile(f"[^{_WS_CLASS}{_PUNCT_CLASS}]+|[{_PUNCT_CLASS}]")
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
    """BERT's normaliser (same steps and order as ``tokenizers.normalizers.BertNormalizer``)."""
    if clean_text:
        text = "".join(
            " " if c in _WHITESPACE else c
            for c in text
            if not (c == "\0" or c == "\ufffd" or _is_control(c))
        )
    if handle_chinese_chars:
        text = "".join(f" {c} " if _is_cjk(c) else c for c in text)
    if strip_accents if strip_accents is not None else lowercase:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    if lowercase:
        text = text.lower()
    return text


def bert_pre_tokenize(text: str) -> list[str]:
    """Split on whitespace (dropped) and isolate each punctuation character (``BertPreTokenizer``)."""
    return _PRE_TOKEN.findall(text)


def _is_control(c: str) -> bool:
    # \t \n \r are control characters that BERT counts as whitespace.
    return c not in "\t\n\r" and unicodedata.category(c).startswith("C")


def _is_cjk(c: str) -> bool:
    o = ord(c)
    return any(lo <= o <= hi for lo, hi in _CJK_RANGES)


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
