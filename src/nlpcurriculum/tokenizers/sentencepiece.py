"""SentencePiece-style tokenization: raw text in, exact text out, unigram or BPE model inside.

Paper: Kudo & Richardson (2018), "SentencePiece: A simple and language independent subword
tokenizer and detokenizer for Neural Text Processing", arXiv:1808.06226.

What makes it "SentencePiece" rather than a plain subword model:

* **No pre-tokenizer, whitespace is a symbol.** Spaces become ``▁`` (U+2581) and a ``▁`` is put in
  front of the text (the "dummy prefix"), so ``"Hello world"`` is the symbol string
  ``▁Hello▁world``. A piece may start with ``▁`` (``▁world``) but never contain one inside, so
  pieces stay within words, yet no language-specific rule decided where words are.
* **Lossless.** ``decode(encode(text)) == text`` for every string: spaces come back from ``▁``,
  runs of spaces survive (no normalisation here; SentencePiece's default NFKC and whitespace
  collapsing are off, as with ``normalization_rule_name="identity"``,
  ``remove_extra_whitespaces=False``).
* **Byte fallback.** A character outside the vocabulary is spelled as its UTF-8 bytes with the
  256 pieces ``<0x00>`` .. ``<0xFF>`` instead of ``<unk>``; decoding reassembles the bytes. A
  literal ``▁`` in the input is always spelled with bytes so it cannot be mistaken for a space.
* **Two models on the same symbols.** ``model_type="unigram"`` reuses :mod:`.unigram`'s trainer
  and Viterbi; ``model_type="bpe"`` reuses :func:`.bpe.learn_merges` on *characters* (not bytes)
  and encodes with :func:`.bpe.rank_merge` (SentencePiece's BPE encoder merges the adjacent pair
  whose concatenation has the best score, which is the same rule).

Hand-worked example (a vocabulary that has ``▁Hello``, ``▁``, ``▁wor``, ``ld`` but no ``☃``)::

    text      "Hello  world☃"
    escaped   "▁Hello▁▁world☃"           dummy prefix + each space -> ▁
    words     ▁Hello | ▁ | ▁world☃       cut before every ▁ (pieces never span a cut)
    pieces    ▁Hello  ▁  ▁wor ld  <0xE2> <0x98> <0x83>     ☃ = UTF-8 E2 98 83
    decode    "▁Hello▁▁world" + bytes(E2 98 83) -> " Hello  world☃" -> drop the dummy space

Training reads the text as sentences, one per line (like ``spm_train``), so newlines are never
learned as pieces; at encoding time a newline is just a rare character (byte fallback).
Characters covering ``character_coverage`` of the text are the alphabet; rarer ones are left to
byte fallback, and no piece may contain them.

Vocabulary layout (as SentencePiece with ``byte_fallback=True``): ``0 <unk>``, ``1 <s>``,
``2 </s>``, ``3..258`` the byte pieces, then the learned pieces (unigram: best log-probability
first; BPE: merges in the order learned, then the single characters).

Left out: normalisation rules (NFKC), user-defined symbols, sentence-level sampling with n-best
(sampling is per word), and the protobuf model format.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nlpcurriculum.tokenizers.base import Tokenizer, check_ids, check_vocab_size, iter_texts
from nlpcurriculum.tokenizers.bpe import learn_merges, rank_merge
from nlpcurriculum.tokenizers.unigram import (
    WS_MARK,
    UnigramConfig,
    UnigramModel,
    char_script,
    required_characters,
    train_unigram,
)

_META = ("<unk>", "<s>", "</s>")
_BYTE_PIECES = tuple(f"<0x{b:02X}>" for b in range(256))


@dataclass(frozen=True)
class SentencePieceConfig:
    """Options of the SentencePiece-style tokenizer (the vocabulary size is an argument of ``train``).

    Attributes:
        model_type: ``"unigram"`` or ``"bpe"``.
        byte_fallback: spell unknown characters as UTF-8 byte pieces (else ``<unk>``, lossy).
        character_coverage: fraction of character occurrences the alphabet must cover.
        add_dummy_prefix: put ``▁`` before the text so the first word looks like the others.
        max_piece_length: longest piece, in characters.
        split_by_unicode_script: a piece may not mix scripts (see :func:`.unigram.char_script`).
        split_by_number: digits do not combine with letters.
        seed_size: unigram only: number of seed substrings.
        shrinking_factor: unigram only: fraction kept per pruning round.
        num_sub_iterations: unigram only: EM iterations per round.
    """

    model_type: str = "unigram"
    byte_fallback: bool = True
    character_coverage: float = 0.9995
    add_dummy_prefix: bool = True
    max_piece_length: int = 16
    split_by_unicode_script: bool = True
    split_by_number: bool = True
    seed_size: int = 1_000_000
    shrinking_factor: float = 0.75
    num_sub_iterations: int = 2

    def __post_init__(self) -> None:
        if self.model_type not in ("unigram", "bpe"):
            raise ValueError(f"model_type must be 'unigram' or 'bpe', got {self.model_type!r}")
        # The unigram options are validated by the config they are passed on to.
        self.unigram_config()

    def unigram_config(self) -> UnigramConfig:
        return UnigramConfig(
            unk_token="<unk>", special_tokens=("<unk>",), max_piece_length=self.max_piece_length,
            seed_size=self.seed_size, shrinking_factor=self.shrinking_factor,
            num_sub_iterations=self.num_sub_iterations, split_by_unicode_script=self.split_by_unicode_script,
            split_by_number=self.split_by_number, character_coverage=self.character_coverage,
        )


def split_words(symbols: str) -> list[str]:
    """Cut a ``▁``-escaped string before every ``▁`` (SentencePiece's ``SplitIntoWords``)."""
    words: list[str] = []
    start = 0
    for i, c in enumerate(symbols):
        if c == WS_MARK and i > start:
            words.append(symbols[start:i])
            start = i
    if start < len(symbols):
        words.append(symbols[start:])
    return words


class SentencePieceTokenizer(Tokenizer):
    """Lossless subword tokenizer over ``▁``-escaped raw text, with a unigram or BPE model."""

    kind = "sentencepiece"
    config_cls = SentencePieceConfig

    def __init__(self, config: SentencePieceConfig | None = None) -> None:
        super().__init__(config)
        self.pieces: list[str] = []
        self.scores: list[float] = []
        self._ids: dict[str, int] = {}
        self._unigram: UnigramModel | None = None
        self._ranks: dict[str, int] = {}
        self._byte_ids: list[int] = []
        self._num_special = 0
        self._cache: dict[str, list[int]] = {}

    @property
    def num_special(self) -> int:
        """Ids before the learned pieces: ``<unk> <s> </s>`` and (with byte fallback) 256 bytes."""
        return len(_META) + (256 if self.config.byte_fallback else 0)

    # ------------------------------------------------------------------ training
    def train(self, text_or_iter: str | Iterable[str], vocab_size: int) -> "SentencePieceTokenizer":
        """Learn ``vocab_size - num_special`` pieces from text read as one sentence per line.

        Unlike ``spm_train``, which refuses a size the text cannot support, the vocabulary is
        then smaller than asked (``vocab_size`` shows it).

        Raises:
            ValueError: no text, or ``vocab_size`` cannot hold the special/byte pieces and the alphabet.
        """
        cfg = self.config
        counts: Counter[str] = Counter()
        finals: Counter[str] = Counter()  # words that end a sentence (for unigram seeding)
        for text in iter_texts(text_or_iter):
            for line in text.split("\n"):
                if line:
                    words = split_words(self._escape(line))
                    counts.update(words)
                    finals[words[-1]] += 1
        if not counts:
            raise ValueError("no training text")
        required = required_characters(counts, cfg.character_coverage)
        num_pieces = vocab_size - self.num_special
        check_vocab_size(vocab_size, self.num_special + len(required) + 1,
                         f"{self.num_special} special/byte pieces + {len(required)} characters + 1")
        if cfg.model_type == "unigram":
            result = train_unigram(counts, num_pieces, cfg.unigram_config(), required,
                                   desired_size=int(vocab_size * 1.1), final_counts=finals)
            vocab = result.pieces
        else:
            vocab = self._train_bpe(counts, required, num_pieces)
        specials = list(_META) + (list(_BYTE_PIECES) if cfg.byte_fallback else [])
        self._build(specials + [p for p, _ in vocab], [0.0] * len(specials) + [s for _, s in vocab])
        return self

    def _train_bpe(self, counts: Counter[str], required: dict[str, int], num_pieces: int) -> list[tuple[str, float]]:
        cfg = self.config
        chars = [c for c, _ in sorted(required.items(), key=lambda kv: (-kv[1], kv[0]))]
        char_id = {c: i for i, c in enumerate(chars)}
        words: list[list[int]] = []
        freqs: list[int] = []
        for word, f in counts.items():
            # A character outside the alphabet is a wall: no piece spans it.
            segment: list[int] = []
            for c in word:
                i = char_id.get(c)
                if i is None:
                    if len(segment) > 1:
                        words.append(segment)
                        freqs.append(f)
                    segment = []
                else:
                    segment.append(i)
            if len(segment) > 1:
                words.append(segment)
                freqs.append(f)

        def can_merge(a: str, b: str) -> bool:
            if len(a) + len(b) > cfg.max_piece_length or WS_MARK in b:
                return False
            return _script_of(a + b, cfg) is not None

        learned = learn_merges(words, freqs, chars, num_pieces - len(chars), min_frequency=1, can_merge=can_merge)
        ordered = learned.tokens[len(chars):] + chars  # merges in learned order, then characters
        return [(p, -float(r)) for r, p in enumerate(ordered)]

    def _build(self, pieces: list[str], scores: list[float]) -> None:
        n_special = self.num_special
        expected = list(_META) + (list(_BYTE_PIECES) if self.config.byte_fallback else [])
        if pieces[:n_special] != expected:
            raise ValueError("vocabulary must start with <unk> <s> </s> (and the 256 byte pieces)")
        if len(set(pieces)) != len(pieces):
            raise ValueError("vocabulary has duplicate pieces")
        self.pieces, self.scores = list(pieces), [float(s) for s in scores]
        self._ids = {p: i for i, p in enumerate(self.pieces)}
        self._byte_ids = list(range(3, 3 + 256)) if self.config.byte_fallback else []
        if self.config.model_type == "unigram":
            self._unigram = UnigramModel(self.pieces, self.scores, unk_id=0, special_ids=range(n_special))
        else:
            self._ranks = {p: i for i, p in enumerate(self.pieces) if i >= n_special}
        self._cache = {}

    # ------------------------------------------------------------------ encoding
    def _escape(self, text: str) -> str:
        return (WS_MARK if self.config.add_dummy_prefix else "") + text.replace(" ", WS_MARK)

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def encode(self, text: str) -> list[int]:
        """Encode raw text losslessly (with byte fallback)."""
        return self._encode(text, None)

    def sample_encode(self, text: str, alpha: float = 0.1, nbest_size: int = -1,
                      rng: random.Random | int | None = None) -> list[int]:
        """Subword regularisation (unigram model only); see :meth:`.unigram.UnigramModel.sample`."""
        if self.config.model_type != "unigram":
            raise ValueError("sample_encode needs model_type='unigram' (BPE has a single segmentation)")
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        return self._encode(text, (alpha, nbest_size, rng))

    def _encode(self, text: str, sampling: tuple[float, int, random.Random] | None) -> list[int]:
        self._check_trained()
        if not text:
            return []
        out: list[int] = []
        # A literal ▁ in the input would decode as a space: spell it with bytes instead.
        for k, part in enumerate(text.split(WS_MARK)):
            if k > 0:
                out.extend(self._fallback(WS_MARK))
            symbols = (self._escape(part) if k == 0 else part.replace(" ", WS_MARK))
            for word in split_words(symbols):
                if sampling is None:
                    ids = self._cache.get(word)
                    if ids is None:
                        ids = self._cache[word] = self._encode_word(word, None)
                else:
                    ids = self._encode_word(word, sampling)
                out.extend(ids)
        return out

    def _encode_word(self, word: str, sampling: tuple[float, int, random.Random] | None) -> list[int]:
        if self._unigram is not None:
            model = self._unigram
            spans = model.viterbi(word) if sampling is None else model.sample(word, *sampling)
            out: list[int] = []
            for s, e, i in spans:
                if i == model.unk_id:
                    out.extend(self._fallback(word[s:e]))
                else:
                    out.append(i)
            return out
        out = []
        for piece in rank_merge(list(word), self._ranks):
            i = self._ranks.get(piece)
            if i is None:
                out.extend(self._fallback(piece))  # an unknown character
            else:
                out.append(i)
        return out

    def _fallback(self, chars: str) -> list[int]:
        if self.config.byte_fallback:
            return [self._byte_ids[b] for b in chars.encode("utf-8")]
        return [0]

    def decode(self, ids: Sequence[int]) -> str:
        """Concatenate pieces, ``▁`` -> space, reassemble byte pieces, drop the dummy prefix."""
        self._check_trained()
        check_ids(ids, self.vocab_size)
        parts: list[str] = []
        pending = bytearray()
        byte_lo, byte_hi = (3, 3 + 256) if self.config.byte_fallback else (0, 0)
        for i in ids:
            if byte_lo <= i < byte_hi:
                pending.append(i - byte_lo)
                continue
            if pending:
                parts.append(pending.decode("utf-8", errors="replace"))
                pending = bytearray()
            if i >= self.num_special:
                parts.append(self.pieces[i].replace(WS_MARK, " "))
            elif i == 0:
                parts.append(" \u2047 ")  # SentencePiece's rendering of <unk>
        if pending:
            parts.append(pending.decode("utf-8", errors="replace"))
        text = "".join(parts)
        if self.config.add_dummy_prefix and text.startswith(" "):
            text = text[1:]
        return text

    def encode_as_pieces(self, text: str) -> list[str]:
        """The pieces of ``encode(text)`` as strings (for display)."""
        return [self.pieces[i] for i in self.encode(text)]

    def id_to_token(self, token_id: int) -> str:
        self._check_trained()
        check_ids([token_id], self.vocab_size)
        return self.pieces[token_id]

    def token_score(self, token_id: int) -> float | None:
        return self.scores[token_id]

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        return {"pieces": [[p, s] for p, s in zip(self.pieces, self.scores)]}

    def _set_state(self, state: dict[str, Any]) -> None:
        vocab = state["pieces"]
        if not isinstance(vocab, list) or not all(
            isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and v[0]
            and isinstance(v[1], (int, float)) for v in vocab
        ):
            raise ValueError("'pieces' must be a list of [piece, score] pairs")
        self._build([p for p, _ in vocab], [float(s) for _, s in vocab])


def _script_of(piece: str, cfg: SentencePieceConfig) -> str | None:
    """The single script class of ``piece`` ("" if it has none), or None if it mixes scripts."""
    script = ""
    for c in piece:
        k = char_script(c, cfg.split_by_unicode_script, cfg.split_by_number)
        if k:
            if script and k != script:
                return None
            script = k
    return script
