"""Byte-level Byte-Pair Encoding (BPE), GPT-2 / GPT-4 style, with a fast incremental trainer.

Paper: Sennrich, Haddow & Birch (2016), "Neural Machine Translation of Rare Words with Subword
Units", arXiv:1508.07909; byte-level BPE as in GPT-2 (Radford et al., 2019) and minbpe.

How it works
------------
1. **Pre-tokenisation.** A regex (GPT-4's ``cl100k`` pattern, :data:`GPT4_SPLIT_PATTERN`) cuts
   text into chunks: words with their leading space, runs of up to 3 digits, punctuation runs,
   whitespace. Merges never cross a chunk boundary, so " dog" and "dog." stay separate tokens.
2. **Bytes.** Each chunk is UTF-8 encoded; the 256 byte values are ids 0..255, so *any* string
   (emoji, Chinese) can be encoded, and decoding is exact. Surrogates, which UTF-8 cannot hold,
   are read as tiktoken reads them (:func:`replace_surrogates`): a high + low pair becomes the
   character it encodes in UTF-16, a lone one U+FFFD; such text does not round-trip.
3. **Training** repeatedly finds the most frequent adjacent pair of ids over the corpus, gives the
   concatenation a new id (256, 257, ...) and replaces the pair everywhere.
4. **Encoding** replays the learned order on each chunk: among adjacent parts, merge the pair
   whose concatenation has the lowest id ("rank"), until no adjacent pair is a token. This is
   tiktoken's and SentencePiece-BPE's rule; for a vocabulary learned by BPE it reproduces the
   training segmentation.

The trainer, and why it is fast
-------------------------------
A naive trainer recounts every pair in the corpus after each merge: O(corpus x merges). This one
(like HuggingFace ``tokenizers``' BpeTrainer, in pure Python) does three things instead:

* works on **unique chunks with their counts** (natural text has ~10x fewer unique chunks than
  chunks; one-byte chunks are dropped because they contain no pair);
* keeps ``pair -> count`` and ``pair -> set of chunk indices`` (an inverted index), so a merge
  revisits **only the chunks that contain the merged pair**, and a chunk reports the pair-count
  *changes* around each merge site: at ``x a b y`` becoming ``x Z y`` the pairs (x,a) and (b,y)
  lose one occurrence and (x,Z), (Z,y) gain one, weighted by the chunk's count;
* picks the best pair from a **max-heap with lazy invalidation**: a heap entry stores the count
  it was pushed with; when it reaches the top with a stale (too high) count it is re-pushed with
  the current one. Increases push a fresh entry, so the top entry whose stored count equals the
  live count is the true maximum. Ties go to the smaller pair ``(a, b)``, as in ``tokenizers``.

Hand-worked example (Wikipedia's ``aaabdaaabac``, one chunk, ``min_frequency=1``)::

    pairs: (a,a)=4 (a,b)=2 (b,d)=1 (d,a)=1 (b,a)=1 (a,c)=1
    merge 1: (a,a) -> 256 "aa"      chunk: aa a b d aa a b a c
             only this chunk held (a,a), so only it is revisited; changes:
             (a,a) gone, (aa,a) +2, (d,a) -1, (d,aa) +1
    pairs: (aa,a)=2 (a,b)=2 (b,d)=1 (d,aa)=1 (b,a)=1 (a,c)=1
    merge 2: tie at 2; (a,b)=(97,98) < (aa,a)=(256,97), so (a,b) -> 257 "ab"
             chunk: aa ab d aa ab a c
    merge 3: (aa,ab)=2 -> 258 "aaab"  chunk: aaab d aaab a c    (Wikipedia's "XdXac")

A merge whose result already exists as a token (the same bytes reached by another path, e.g.
"aa"+"a" and "a"+"aa") is applied to the chunks but adds no new id, as in ``tokenizers``: a byte
string has exactly one id, which is what rank-based encoding (and tiktoken) requires.

Legend of names: ``a, b`` ids of a pair; ``z`` the id they merge into; ``w`` a chunk index;
``f`` a chunk's count in the corpus.

Left out: GPT-2's byte-to-unicode remapping (ids are raw bytes here; only the display differs),
a dropout variant (BPE-dropout), and the O(n log n) linked-list encoder for very long chunks
(the simple rank scan below is O(n^2) in chunk length, fine for regex-split text).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import regex

from nlpcurriculum.tokenizers.base import Tokenizer, check_ids, check_vocab_size, iter_texts

GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|"""
    r"""\s*[\r\n]|\s+(?!\S)|\s+"""
)
"""GPT-4's (tiktoken ``cl100k_base``) pre-tokenisation regex, as used by minbpe."""

GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""GPT-2's pre-tokenisation regex (for comparison; also what ``tokenizers``' ByteLevel uses)."""

# A pair (a, b) of ids is stored as one int a * _PAIR_SHIFT + b: hashing an int is cheaper than
# hashing a tuple, and int order equals (a, b) order, which the heap's tie-break relies on.
_PAIR_BITS = 32
_PAIR_SHIFT = 1 << _PAIR_BITS
_PAIR_MASK = _PAIR_SHIFT - 1


@dataclass(frozen=True)
class BPEConfig:
    """Options of the byte-level BPE tokenizer (the vocabulary size is an argument of ``train``).

    Attributes:
        pattern: pre-tokenisation regex (``regex`` module syntax); merges never cross its chunks.
        special_tokens: strings that get their own ids after the merges (e.g. ``<|endoftext|>``)
            and are never split; they are removed from training text.
        min_frequency: a pair seen fewer times than this is never merged; training stops early
            (with a smaller vocabulary) when no pair is frequent enough.
        cache_size: how many distinct chunks ``encode`` memoises (0 disables the cache).
    """

    pattern: str = GPT4_SPLIT_PATTERN
    special_tokens: tuple[str, ...] = ("<|endoftext|>",)
    min_frequency: int = 2
    cache_size: int = 1 << 17

    def __post_init__(self) -> None:
        try:
            regex.compile(self.pattern)
        except regex.error as err:
            raise ValueError(f"pattern is not a valid regex: {err}") from err
        if not isinstance(self.special_tokens, tuple):
            object.__setattr__(self, "special_tokens", tuple(self.special_tokens))
        if len(set(self.special_tokens)) != len(self.special_tokens):
            raise ValueError(f"special_tokens has duplicates: {self.special_tokens}")
        if any(not isinstance(s, str) or not s for s in self.special_tokens):
            raise ValueError("special_tokens must be non-empty strings")
        if self.min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {self.min_frequency}")
        if self.cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {self.cache_size}")


@dataclass
class LearnedMerges:
    """What :func:`learn_merges` returns.

    Attributes:
        merges: ``merges[i] = (a, b)`` created token ``first_new_id + i``.
        tokens: the contents of every id (base symbols, then one per merge), bytes or str.
        applied: merges applied to the corpus, including those that re-created an existing
            token by another path (so ``applied >= len(merges)``).
    """

    merges: list[tuple[int, int]]
    tokens: list[Any]
    applied: int


def learn_merges(
    words: Sequence[Sequence[int]],
    counts: Sequence[int],
    tokens: Sequence[Any],
    num_new_tokens: int,
    min_frequency: int = 2,
    can_merge: Callable[[Any, Any], bool] | None = None,
) -> LearnedMerges:
    """The BPE training loop on symbol sequences, with incremental pair counts and a lazy heap.

    Shared by byte-level BPE (symbols are bytes) and SentencePiece-BPE (symbols are characters).

    Args:
        words: the unique pre-token chunks as sequences of symbol ids.
        counts: how often each chunk occurs (same length as ``words``).
        tokens: the content of every existing id (``bytes`` or ``str``); a new token's content is
            ``tokens[a] + tokens[b]``, and an existing content is reused rather than duplicated.
        num_new_tokens: stop after creating this many new ids.
        min_frequency: never merge a pair seen fewer times (stops early).
        can_merge: optional veto ``can_merge(content_a, content_b)`` on a pair (e.g.
            SentencePiece's "no piece spans two scripts"); consulted once per pair, and a
            vetoed pair never enters the heap.

    Returns:
        The merges in the order learned, and the extended token list.
    """
    if len(words) != len(counts):
        raise ValueError(f"{len(words)} words but {len(counts)} counts")
    tokens = list(tokens)
    index: dict[Hashable, int] = {t: i for i, t in enumerate(tokens)}
    # Chunks with one symbol contain no pair and never change: drop them up front.
    syms: list[list[int]] = []
    freqs: list[int] = []
    for w, c in zip(words, counts):
        if len(w) > 1 and c > 0:
            syms.append(list(w))
            freqs.append(c)

    pair_counts: dict[int, int] = {}
    where: dict[int, set[int]] = {}
    for w, (sym, f) in enumerate(zip(syms, freqs)):
        for a, b in zip(sym, sym[1:]):
            key = a * _PAIR_SHIFT + b
            pair_counts[key] = pair_counts.get(key, 0) + f
            s = where.get(key)
            if s is None:
                where[key] = {w}
            else:
                s.add(w)

    allowed_cache: dict[int, bool] = {}

    def allowed(key: int) -> bool:
        if can_merge is None:
            return True
        ok = allowed_cache.get(key)
        if ok is None:
            ok = allowed_cache[key] = bool(can_merge(tokens[key >> _PAIR_BITS], tokens[key & _PAIR_MASK]))
        return ok

    heap = [(-c, key) for key, c in pair_counts.items() if allowed(key)]
    heapq.heapify(heap)
    merges: list[tuple[int, int]] = []
    applied = 0
    heappush, heappop = heapq.heappush, heapq.heappop
    while len(merges) < num_new_tokens and heap:
        neg, key = heappop(heap)
        live = pair_counts.get(key, 0)
        if live != -neg:
            # Stale entry. If the pair lost occurrences since it was pushed, re-queue it with the
            # live count; if it gained, a fresher entry was pushed at that time already.
            if 0 < live < -neg:
                heappush(heap, (-live, key))
            continue
        if live < min_frequency:
            break  # the heap top is the most frequent pair: nothing left is frequent enough
        a, b = key >> _PAIR_BITS, key & _PAIR_MASK
        content = tokens[a] + tokens[b]
        z = index.get(content)
        if z is None:
            z = len(tokens)
            tokens.append(content)
            index[content] = z
            merges.append((a, b))
        applied += 1

        # Replace (a, b) by z in every chunk that contains it; collect the pair-count changes.
        delta: dict[int, int] = {}
        get = delta.get
        b_hi, z_hi = b * _PAIR_SHIFT, z * _PAIR_SHIFT
        for w in where.pop(key):
            sym = syms[w]
            f = freqs[w]
            i = 0
            n = len(sym) - 1  # last index where a pair can start
            while i < n:
                if sym[i] != a or sym[i + 1] != b:
                    i += 1
                    continue
                # x a b y  ->  x z y: (x,a) and (b,y) lose f, (x,z) and (z,y) gain f
                if i:
                    x_hi = sym[i - 1] * _PAIR_SHIFT
                    k = x_hi + a
                    delta[k] = get(k, 0) - f
                    k = x_hi + z
                    delta[k] = get(k, 0) + f
                    _add(where, k, w)
                if i < n - 1:
                    y = sym[i + 2]
                    k = b_hi + y
                    delta[k] = get(k, 0) - f
                    k = z_hi + y
                    delta[k] = get(k, 0) + f
                    _add(where, k, w)
                sym[i] = z
                del sym[i + 1]
                n -= 1
                i += 1
        pair_counts.pop(key, None)
        for k, d in delta.items():
            if d == 0 or k == key:  # (a, a, a) runs report changes to the merged pair itself
                continue
            c = pair_counts.get(k, 0) + d
            if c <= 0:
                pair_counts.pop(k, None)
                continue
            pair_counts[k] = c
            # Only increases need a new heap entry: a decrease leaves an entry whose stored
            # count is too high, and it is refreshed when it reaches the top (see above).
            if d > 0 and allowed(k):
                heappush(heap, (-c, k))
    return LearnedMerges(merges=merges, tokens=tokens, applied=applied)


def _add(where: dict[int, set[int]], key: int, w: int) -> None:
    s = where.get(key)
    if s is None:
        where[key] = {w}
    else:
        s.add(w)


def replace_surrogates(text: str) -> str:
    """Make ``text`` encodable as UTF-8 the way tiktoken does.

    A Python ``str`` may hold surrogates (U+D800..U+DFFF), e.g. from ``json.loads`` of an escaped
    half of an emoji; UTF-8 has no bytes for them. The text is read as UTF-16 code units: a high
    surrogate followed by a low one is the character that pair encodes (``"\\ud83d\\ude00"`` ->
    ``"😀"``), and any other surrogate becomes U+FFFD. Text without surrogates is returned unchanged.
    """
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def rank_merge(parts: list[Any], ranks: dict[Any, int]) -> list[Any]:
    """Merge adjacent parts by lowest rank of their concatenation (tiktoken / SentencePiece rule).

    Args:
        parts: the initial pieces (single bytes as ``bytes`` or single characters as ``str``).
        ranks: token content -> rank (lower merges first). Ties go to the leftmost pair.

    Returns:
        The final pieces (contents, not ids).
    """
    if len(parts) < 2:
        return parts
    inf = 1 << 62
    get = ranks.get
    # pair_ranks[i] is the rank of parts[i] + parts[i+1]; only the neighbours of a merge change.
    pair_ranks = [get(parts[i] + parts[i + 1], inf) for i in range(len(parts) - 1)]
    while True:
        best = min(pair_ranks)
        if best == inf:
            return parts
        i = pair_ranks.index(best)
        parts[i] = parts[i] + parts[i + 1]
        del parts[i + 1]
        del pair_ranks[i]
        if i < len(pair_ranks):
            pair_ranks[i] = get(parts[i] + parts[i + 1], inf)
        if i > 0:
            pair_ranks[i - 1] = get(parts[i - 1] + parts[i], inf)
        if not pair_ranks:
            return parts


class BPETokenizer(Tokenizer):
    """Byte-level BPE with regex pre-tokenisation and special tokens.

    Ids ``0..255`` are the raw bytes, ``256..`` the merges in training order (so an id is also its
    merge rank), then the special tokens. ``vocab_size`` passed to :meth:`train` counts all three.

    Example:
        >>> tok = BPETokenizer().train(["low lower lowest"] * 10, vocab_size=256 + 8 + 1)
        >>> tok.decode(tok.encode("lowest low")) == "lowest low"
        True
    """

    kind = "bpe"
    config_cls = BPEConfig

    def __init__(self, config: BPEConfig | None = None) -> None:
        super().__init__(config)
        self._pat = regex.compile(self.config.pattern)
        self.merges: list[tuple[int, int]] = []
        self._vocab: list[bytes] = []
        self._ranks: dict[bytes, int] = {}
        self.special_tokens: dict[str, int] = {}
        self._inverse_special: dict[int, str] = {}
        self._special_pat: regex.Pattern | None = None
        self._cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ training
    def train(self, text_or_iter: str | Iterable[str], vocab_size: int) -> "BPETokenizer":
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from the text.

        Args:
            text_or_iter: a string or an iterable of strings (documents).
            vocab_size: total size: 256 bytes + merges + special tokens.
        """
        n_special = len(self.config.special_tokens)
        check_vocab_size(vocab_size, 256 + n_special, "256 byte tokens + special tokens")
        counts = self.count_chunks(text_or_iter)
        chunks = list(counts)
        words = [list(c.encode("utf-8")) for c in chunks]
        learned = learn_merges(
            words,
            [counts[c] for c in chunks],
            [bytes([i]) for i in range(256)],
            vocab_size - 256 - n_special,
            self.config.min_frequency,
        )
        self._build(learned.merges)
        return self

    def count_chunks(self, text_or_iter: str | Iterable[str]) -> Counter[str]:
        """Pre-tokenise the training text and count each distinct chunk (specials removed)."""
        counts: Counter[str] = Counter()
        splitter = self._special_splitter(self.config.special_tokens)
        findall = self._pat.findall
        for text in iter_texts(text_or_iter):
            # split() keeps the captured specials at odd positions; [::2] drops them
            pieces = splitter.split(text)[::2] if splitter is not None else [text]
            for piece in pieces:
                counts.update(findall(piece))
        return counts

    def _build(self, merges: list[tuple[int, int]]) -> None:
        vocab = [bytes([i]) for i in range(256)]
        for a, b in merges:
            if not (0 <= a < len(vocab) and 0 <= b < len(vocab)):
                raise ValueError(f"merge ({a}, {b}) refers to an id not yet defined")
            vocab.append(vocab[a] + vocab[b])
        ranks = {t: i for i, t in enumerate(vocab)}
        if len(ranks) != len(vocab):
            raise ValueError("merges produce the same byte string twice")
        self.merges = [tuple(m) for m in merges]
        self._vocab = vocab
        self._ranks = ranks
        first = len(vocab)
        self.special_tokens = {s: first + i for i, s in enumerate(self.config.special_tokens)}
        self._inverse_special = {i: s for s, i in self.special_tokens.items()}
        self._special_pat = self._special_splitter(self.config.special_tokens)
        self._cache = {}

    @staticmethod
    def _special_splitter(specials: Iterable[str]) -> regex.Pattern | None:
        specials = sorted(specials, key=len, reverse=True)  # longest first: "<|a|>" before "<|"
        if not specials:
            return None
        return regex.compile("(" + "|".join(regex.escape(s) for s in specials) + ")")

    # ------------------------------------------------------------------ encoding
    @property
    def vocab_size(self) -> int:
        return len(self._vocab) + len(self.special_tokens) if self._vocab else 0

    @property
    def mergeable_ranks(self) -> dict[bytes, int]:
        """``{token bytes: rank}`` for every non-special token (what ``tiktoken.Encoding`` takes)."""
        return dict(self._ranks)

    def encode(self, text: str, allowed_special: str | set[str] = "none_raise") -> list[int]:
        """Encode text to ids.

        Args:
            text: any string.
            allowed_special: which special tokens written literally in ``text`` become their
                special id: ``"all"``, ``"none"`` (encode them as ordinary text),
                ``"none_raise"`` (the default, like tiktoken: raise if one occurs), or a set.

        Raises:
            ValueError: a special token occurs in the text under ``"none_raise"``.
        """
        self._check_trained()
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        elif allowed_special in ("none", "none_raise"):
            allowed = set()
            if allowed_special == "none_raise" and self._special_pat is not None:
                found = self._special_pat.search(text)
                if found:
                    raise ValueError(
                        f"text contains the special token {found.group()!r}; pass "
                        "allowed_special='all' (or a set) to encode it as special, or 'none' as text"
                    )
        elif isinstance(allowed_special, (set, frozenset)):
            unknown = set(allowed_special) - set(self.special_tokens)
            if unknown:
                raise ValueError(f"unknown special tokens {sorted(unknown)}")
            allowed = set(allowed_special)
        else:
            raise ValueError(f"allowed_special must be 'all', 'none', 'none_raise' or a set, got {allowed_special!r}")
        if not allowed:
            return self.encode_ordinary(text)
        splitter = self._special_splitter(allowed)
        out: list[int] = []
        for i, part in enumerate(splitter.split(text)):
            if i % 2:  # odd positions are the captured special tokens
                out.append(self.special_tokens[part])
            elif part:
                out.extend(self.encode_ordinary(part))
        return out

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ignoring special tokens (their text is split like any other text).

        A text with surrogates is encoded as :func:`replace_surrogates` reads it (tiktoken's rule).
        """
        self._check_trained()
        try:
            return self._encode_ordinary(text)
        except UnicodeEncodeError:  # a surrogate: only then pay for the rewrite
            return self._encode_ordinary(replace_surrogates(text))

    def _encode_ordinary(self, text: str) -> list[int]:
        cache = self._cache
        limit = self.config.cache_size
        out: list[int] = []
        extend = out.extend
        for chunk in self._pat.findall(text):
            ids = cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(chunk.encode("utf-8"))
                if len(cache) < limit:
                    cache[chunk] = ids
            extend(ids)
        return out

    def _encode_chunk(self, data: bytes) -> list[int]:
        ranks = self._ranks
        whole = ranks.get(data)
        if whole is not None:
            return [whole]  # the whole chunk is one token (tiktoken checks this first, too)
        parts = rank_merge([data[i : i + 1] for i in range(len(data))], ranks)
        return [ranks[p] for p in parts]

    def decode(self, ids: Sequence[int]) -> str:
        """Concatenate the bytes of the ids and decode UTF-8 (invalid sequences become U+FFFD)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """The raw bytes of the ids (a prefix of a valid encoding may end mid-character)."""
        self._check_trained()
        check_ids(ids, self.vocab_size)
        vocab = self._vocab
        n = len(vocab)
        inv = self._inverse_special
        return b"".join(vocab[i] if i < n else inv[i].encode("utf-8") for i in ids)

    def id_to_token(self, token_id: int) -> str:
        check_ids([token_id], self.vocab_size)
        if token_id in self._inverse_special:
            return self._inverse_special[token_id]
        return self._vocab[token_id].decode("utf-8", errors="backslashreplace")

    def token_bytes(self, token_id: int) -> bytes:
        """The exact bytes of one token."""
        return self.decode_bytes([token_id])

    def token_score(self, token_id: int) -> float | None:
        return None if token_id in self._inverse_special else float(token_id)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        return {"merges": [list(m) for m in self.merges]}

    def _set_state(self, state: dict[str, Any]) -> None:
        merges = state["merges"]
        if not isinstance(merges, list) or any(
            not isinstance(m, list) or len(m) != 2 or not all(isinstance(x, int) for x in m) for m in merges
        ):
            raise ValueError("'merges' must be a list of [int, int] pairs")
        self._build([tuple(m) for m in merges])
