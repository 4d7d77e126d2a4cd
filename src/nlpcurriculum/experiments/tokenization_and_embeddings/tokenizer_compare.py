"""The tokenizer experiment: four algorithms, several vocabulary sizes, held-out text, references.

Curriculum items "Tokenization & Embeddings" 1-4 (WordPiece, BPE, Unigram LM, SentencePiece).
:func:`compare_tokenizers` trains every algorithm of this package at every vocabulary size of a
sweep on the same training text and measures each on held-out text, per source:

* **tokens per byte** (compression; lower is better), **vocabulary usage** (the fraction of ids
  the held-out text uses) and **fertility** (tokens per whitespace word), from
  :func:`~nlpcurriculum.tokenizers.compression.corpus_compression_stats`;
* **parity with the reference library**, at every size: BPE ids identical to a
  ``tiktoken.Encoding`` built from our merge ranks; WordPiece ids identical to HuggingFace
  ``tokenizers``' WordPiece given our vocabulary (with BERT's normaliser and pre-tokeniser);
  Unigram ids identical to ``tokenizers``' Unigram (Viterbi) given our pieces and scores;
  SentencePiece tokens per byte within a tolerance of the ``sentencepiece`` library trained on the
  same sentences at the same vocabulary size (the learned vocabularies differ slightly, so ids
  cannot be compared);
* **round trip**: ``decode(encode(x)) == x`` for the lossless tokenizers (byte-level BPE,
  SentencePiece with byte fallback); for WordPiece and Unigram, which drop whitespace (and case),
  ``decode(encode(x))`` must equal their canonical form of ``x`` on documents without unknown
  tokens.

:func:`run` turns the measurements into one :class:`~nlpcurriculum.results.ItemResult`
per item, with three checked findings each (parity, round trip, and "tokens per byte falls at
every step up in vocabulary size"), one figure per metric (a panel per text source, a line per
tokenizer, the item's own drawn bold), the sweep table and the item's vocabulary as texts.

**WordPiece vs BPE, controlled** (:func:`controlled_comparison`, WordPiece's item). In the sweep the
two differ in more than their merge rule: WordPiece lowercases and splits words at punctuation
(BERT's normaliser and pre-tokeniser), BPE is byte-level on raw text with GPT-4's regex. The
controlled comparison removes those differences: both are trained on the same text, normalised and
pre-tokenised once by BERT's rules (:func:`controlled_text`: lowercased, accents stripped, split at
whitespace and punctuation, each word written after one space), at equal vocabulary sizes, on
``controlled.folds`` disjoint subsamples of the training documents, and measured on the same
held-out documents. BPE's chunks are then exactly those words, each with its leading space (so it
marks where a word starts, as WordPiece's ``##`` marks where one continues). What is left is the
merge rule (frequency vs ``count(ab) / (count(a) count(b))``), the encoding rule (replayed merges
vs greedy longest match) and the base alphabet (256 bytes vs the characters seen, twice). The
finding: WordPiece needs more tokens per word (fertility) on held-out text than BPE, by at least
``checks.min_fertility_excess`` relative, over the folds (:meth:`Finding.compare`, paired by fold).
Why it could fail: the likelihood score merges pairs whose parts rarely occur apart (rare words,
rare characters) first, and leaves frequent words such as "the" spelled in pieces; a WordPiece
trainer that scored pairs by frequency, or two arms that are the same tokenizer (the null model of
``tests/``), shows no excess.

The reference libraries (``tiktoken``, ``tokenizers``, ``sentencepiece``: the ``oracles`` extra)
are imported only when :func:`compare_tokenizers` runs with ``references=True``.

Left out: timing (it depends on the machine, so it is not a metric here; see
``benchmarks/bench_tokenizers.py``), and downstream effects of the vocabulary size on a model.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.tokenizers.base import Tokenizer
from nlpcurriculum.tokenizers.bpe import BPEConfig, BPETokenizer
from nlpcurriculum.tokenizers.compression import CompressionStats, corpus_compression_stats
from nlpcurriculum.tokenizers.corpus import encode_text, take_chars
from nlpcurriculum.tokenizers.sentencepiece import SentencePieceTokenizer
from nlpcurriculum.tokenizers.unigram import UnigramTokenizer
from nlpcurriculum.tokenizers.wordpiece import WordPieceConfig, WordPieceTokenizer

KINDS = ("wordpiece", "bpe", "unigram", "sentencepiece")
"""The tokenizers compared, in curriculum order."""

ITEM = {
    "wordpiece": "tokenization-and-embeddings/1",
    "bpe": "tokenization-and-embeddings/2",
    "unigram": "tokenization-and-embeddings/3",
    "sentencepiece": "tokenization-and-embeddings/4",
}
"""The curriculum item of each tokenizer."""
ITEMS: tuple[str, ...] = tuple(ITEM.values())
"""Curriculum item ids this module covers, in the order :func:`run` returns them."""

LABELS = {"wordpiece": "WordPiece", "bpe": "BPE (byte-level)", "unigram": "Unigram LM",
          "sentencepiece": "SentencePiece (unigram)"}
_CLASSES: dict[str, type[Tokenizer]] = {"wordpiece": WordPieceTokenizer, "bpe": BPETokenizer,
                                        "unigram": UnigramTokenizer, "sentencepiece": SentencePieceTokenizer}
LOSSLESS = {"bpe", "sentencepiece"}
HELD_OUT = "val"
"""The name of the group holding every held-out document (all val sources together)."""


@dataclass(frozen=True)
class CompareChecks:
    """Bounds of the findings that no knob above sets (params ``tokenizer_compare.checks``).

    Attributes:
        min_falling_steps: share of vocabulary-size steps at which held-out tokens per byte falls.
        min_identical_docs: WordPiece, BPE, Unigram: share of held-out documents whose ids equal the
            reference library's (worst size).
        min_round_trip_ok: share of held-out documents that decode(encode(x)) restores (worst size).
        min_fertility_excess: WordPiece vs BPE under the same normaliser and pre-tokeniser: the
            relative excess of WordPiece's held-out tokens per word, ``fertility_wp /
            fertility_bpe - 1``, that the mean over folds must clear by two standard errors.
    """

    min_falling_steps: float = 1.0
    min_identical_docs: float = 1.0
    min_round_trip_ok: float = 1.0
    min_fertility_excess: float = 0.02


@dataclass(frozen=True)
class ControlledConfig:
    """WordPiece vs BPE under one normaliser and pre-tokeniser (params ``tokenizer_compare.controlled``).

    Attributes:
        vocab_sizes: equal vocabulary sizes the two are compared at (one finding each).
        folds: disjoint subsamples of the training documents (document ``i`` goes to fold
            ``i % folds``); each trains both tokenizers once per size, so the comparison is
            paired by fold. At least 3.
    """

    vocab_sizes: tuple[int, ...] = (1024, 4096)
    folds: int = 5

    def __post_init__(self) -> None:
        sizes = tuple(self.vocab_sizes)
        object.__setattr__(self, "vocab_sizes", sizes)
        if not sizes or any(v < 300 for v in sizes):
            raise ValueError(f"controlled.vocab_sizes must be non-empty and each >= 300, got {list(sizes)}")
        if self.folds < 3:
            raise ValueError(f"controlled.folds must be >= 3 (a standard error needs resamples), got {self.folds}")


@dataclass(frozen=True)
class CompareConfig:
    """The sweep (the ``tokenizer_compare`` params section).

    Attributes:
        vocab_sizes: vocabulary sizes to train at, strictly increasing (at least two, so that the
            compression trend can be checked). Each must hold a tokenizer's mandatory entries
            (BPE: 256 bytes + 1; SentencePiece: 259 special/byte pieces + the alphabet).
        max_train_chars: train on the first documents up to this many characters (0: all).
        n_stories: synthetic stories generated as an out-of-domain text source (0: none); the
            stage passes them in, the experiment only measures them.
        story_seed: seed of the story generator.
        sp_tolerance: the bound on ``|ours / sentencepiece - 1|`` for tokens per byte.
        controlled: WordPiece vs BPE under the same normaliser and pre-tokeniser.
        checks: the other bounds of the findings.
    """

    vocab_sizes: tuple[int, ...] = (512, 1024, 2048, 4096, 8192)
    max_train_chars: int = 0
    n_stories: int = 200
    story_seed: int = 0
    sp_tolerance: float = 0.02
    controlled: ControlledConfig = field(default_factory=ControlledConfig)
    checks: CompareChecks = field(default_factory=CompareChecks)

    def __post_init__(self) -> None:
        sizes = tuple(self.vocab_sizes)
        object.__setattr__(self, "vocab_sizes", sizes)
        if len(sizes) < 2:
            raise ValueError(f"vocab_sizes needs at least two sizes to show a trend, got {list(sizes)}")
        if any(b <= a for a, b in zip(sizes, sizes[1:])):
            raise ValueError(f"vocab_sizes must be strictly increasing, got {list(sizes)}")
        if sizes[0] < 300:
            raise ValueError(f"vocab_sizes must be >= 300 (room for bytes and the alphabet), got {sizes[0]}")
        if self.max_train_chars < 0:
            raise ValueError(f"max_train_chars must be >= 0 (0 = all), got {self.max_train_chars}")
        if self.n_stories < 0:
            raise ValueError(f"n_stories must be >= 0, got {self.n_stories}")
        if not 0 < self.sp_tolerance < 1:
            raise ValueError(f"sp_tolerance must be in (0, 1), got {self.sp_tolerance}")


@dataclass
class Comparison:
    """What :func:`compare_tokenizers` measured.

    Attributes:
        stats: ``{(kind, vocab_size, group): CompressionStats}``; groups are ``"val"`` (every
            held-out document), each held-out source, and each extra (out-of-domain) source.
        vocab_sizes: ``{(kind, requested size): size reached}`` (a small text may support fewer).
        parity: ``{(kind, vocab_size): {metric: value}}`` against the reference library.
        round_trip: ``{(kind, vocab_size): (documents that round-trip, documents checked)}``.
        unk_rate: ``{(kind, vocab_size): unknown tokens / tokens}`` on the held-out text.
        groups: the group names, ``"val"`` first.
        tokenizers: the tokenizers trained at the largest size, by kind.
        samples: ``{(kind, vocab_size): pieces of a sample sentence}`` (for a reader to compare).
        sample_text: that sentence.
        controlled: ``{(arm, vocab_size): [CompressionStats of the held-out text, one per fold]}``
            from :func:`controlled_comparison` (empty when not run).
    """

    stats: dict[tuple[str, int, str], CompressionStats] = field(default_factory=dict)
    vocab_sizes: dict[tuple[str, int], int] = field(default_factory=dict)
    parity: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    round_trip: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    unk_rate: dict[tuple[str, int], float] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    tokenizers: dict[str, Tokenizer] = field(default_factory=dict)
    samples: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    sample_text: str = ""
    controlled: dict[tuple[str, int], list[CompressionStats]] = field(default_factory=dict)


# ============================================================================ reference libraries
def tiktoken_encoding(tok: BPETokenizer) -> Any:
    """A ``tiktoken.Encoding`` with our regex, merge ranks and special tokens."""
    import tiktoken

    return tiktoken.Encoding(name="nlpcurriculum-bpe", pat_str=tok.config.pattern,
                             mergeable_ranks=tok.mergeable_ranks, special_tokens=tok.special_tokens)


def hf_wordpiece(tok: WordPieceTokenizer) -> Any:
    """HuggingFace ``tokenizers`` WordPiece with our vocabulary, BERT normaliser and pre-tokeniser."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, normalizers, pre_tokenizers

    c = tok.config
    hf = HFTokenizer(models.WordPiece(vocab=tok.get_vocab(), unk_token=c.unk_token,
                                      max_input_chars_per_word=c.max_input_chars_per_word,
                                      continuing_subword_prefix=c.continuing_prefix))
    hf.normalizer = normalizers.BertNormalizer(clean_text=c.clean_text, handle_chinese_chars=c.handle_chinese_chars,
                                               strip_accents=c.strip_accents, lowercase=c.lowercase)
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return hf


def hf_unigram(tok: UnigramTokenizer) -> Any:
    """HuggingFace ``tokenizers`` Unigram with our pieces and scores, whitespace split + ``▁``."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers

    hf = HFTokenizer(models.Unigram(tok.pieces, unk_id=tok.unk_id))
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True),
    ])
    return hf


def train_reference_sentencepiece(lines: Sequence[str], vocab_size: int, tok: SentencePieceTokenizer) -> Any:
    """The ``sentencepiece`` library trained in memory on ``lines`` with ``tok``'s options.

    Normalisation is off and whitespace kept (``identity``, ``remove_extra_whitespaces=False``)
    as in our tokenizer; ``hard_vocab_limit=False`` lets a small text end with fewer pieces (as
    ours does) rather than fail; long lines are not skipped, so both see the same sentences.
    """
    import sentencepiece as spm

    c = tok.config
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type=c.model_type,
        byte_fallback=c.byte_fallback, character_coverage=c.character_coverage,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=c.add_dummy_prefix,
        max_sentencepiece_length=c.max_piece_length, split_by_unicode_script=c.split_by_unicode_script,
        split_by_number=c.split_by_number, num_threads=1, minloglevel=2, hard_vocab_limit=False,
        max_sentence_length=1 << 20,
    )
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


def _lines(texts: Sequence[str]) -> list[str]:
    # SentencePiece trains on (and is compared on) sentences: the non-empty lines.
    return [ln for t in texts for ln in t.split("\n") if ln]


def reference_parity(kind: str, tok: Tokenizer, texts: Sequence[str], train_texts: Sequence[str] = (),
                     encodings: Sequence[list[int]] | None = None) -> dict[str, float]:
    """Compare ``tok`` with its reference library on ``texts``.

    Returns:
        bpe / wordpiece / unigram: ``{"identical_docs": fraction of documents with identical ids}``;
        sentencepiece: ``{"tpb_ours", "tpb_reference", "tpb_rel_diff" (|ours/ref - 1|),
        "reference_vocab_size"}`` over the non-empty lines of ``texts``, the reference trained on
        the lines of ``train_texts``.
    """
    if kind == "sentencepiece":
        ref = train_reference_sentencepiece(_lines(train_texts), tok.vocab_size, tok)
        lines = _lines(texts)
        n_bytes = sum(len(s.encode("utf-8")) for s in lines)
        ours = sum(len(tok.encode(s)) for s in lines) / n_bytes
        theirs = sum(len(ref.encode(s)) for s in lines) / n_bytes
        return {"tpb_ours": ours, "tpb_reference": theirs, "tpb_rel_diff": abs(ours / theirs - 1),
                "reference_vocab_size": float(ref.get_piece_size())}
    if encodings is None:
        encodings = [encode_text(tok, t) for t in texts]
    if kind == "bpe":
        enc = tiktoken_encoding(tok)
        theirs = [enc.encode_ordinary(t) for t in texts]
    elif kind == "wordpiece":
        hf = hf_wordpiece(tok)
        theirs = [e.ids for e in hf.encode_batch(list(texts))]
    elif kind == "unigram":
        hf = hf_unigram(tok)
        theirs = [e.ids for e in hf.encode_batch(list(texts))]
    else:
        raise ValueError(f"no reference for tokenizer kind {kind!r}")
    same = sum(list(a) == list(b) for a, b in zip(encodings, theirs))
    return {"identical_docs": same / len(texts) if texts else float("nan")}


# ============================================================================ round trip
def _unk_ids(tok: Tokenizer) -> set[int]:
    if isinstance(tok, WordPieceTokenizer):
        return {tok.token_to_id(tok.config.unk_token)}
    if isinstance(tok, UnigramTokenizer):
        return {tok.unk_id}
    if isinstance(tok, SentencePieceTokenizer):
        return {0}
    return set()


def round_trip(tok: Tokenizer, texts: Sequence[str], encodings: Sequence[list[int]]) -> tuple[int, int]:
    """Documents whose decoding gives the text back, and documents checked.

    Lossless tokenizers must give ``x`` back exactly, on every document. WordPiece and Unigram
    must give their canonical form of ``x`` (normalised words joined by single spaces), checked
    on documents where no token is unknown (an unknown word cannot come back).
    """
    unk = _unk_ids(tok)
    lossless = not isinstance(tok, (WordPieceTokenizer, UnigramTokenizer))
    ok = checked = 0
    for text, ids in zip(texts, encodings):
        if not lossless and unk.intersection(ids):
            continue
        target = text if lossless else tok.canonical(text)  # type: ignore[attr-defined]
        checked += 1
        ok += tok.decode(ids) == target
    return ok, checked


# ============================================================================ the sweep
def compare_tokenizers(
    config: CompareConfig,
    train_texts: Sequence[str],
    held_out: Mapping[str, Sequence[str]],
    extra: Mapping[str, Sequence[str]] | None = None,
    kinds: Sequence[str] = KINDS,
    references: bool = True,
) -> Comparison:
    """Train every tokenizer at every vocabulary size and measure it.

    Args:
        config: the sweep.
        train_texts: training documents (cut to ``config.max_train_chars``).
        held_out: held-out documents by source (``{"pydoc_topics": [...], ...}``); parity and
            round trip are checked on all of them together (group ``"val"``).
        extra: more text sources measured for compression only (e.g. out-of-domain stories).
        kinds: which tokenizers (default all four).
        references: compare with the reference libraries (needs the ``oracles`` extra).

    Returns:
        The measurements; ``tokenizers`` holds each kind trained at the largest size.
    """
    train = take_chars(train_texts, config.max_train_chars)
    if not any(train):
        raise ValueError("no training text")
    val = [t for texts in held_out.values() for t in texts if t]
    if not val:
        raise ValueError("no held-out text")
    unknown = set(kinds) - set(_CLASSES)
    if unknown:
        raise ValueError(f"unknown tokenizer kinds {sorted(unknown)} (known: {list(_CLASSES)})")
    groups: dict[str, list[str]] = {HELD_OUT: val}
    for source, texts in {**held_out, **(extra or {})}.items():
        if source == HELD_OUT:
            raise ValueError(f"a text source may not be called {HELD_OUT!r}")
        texts = [t for t in texts if t]
        if texts:
            groups[source] = texts
    sample = _sample_sentence(val)
    out = Comparison(groups=list(groups), sample_text=sample)
    if {"wordpiece", "bpe"} <= set(kinds):
        out.controlled = controlled_comparison(config.controlled, train, val)
    for kind in kinds:
        for size in config.vocab_sizes:
            tok = _CLASSES[kind]().train(train, size)
            key = (kind, size)
            out.vocab_sizes[key] = tok.vocab_size
            encodings = [encode_text(tok, t) for t in val]
            for name, texts in groups.items():
                ids = encodings if name == HELD_OUT else [encode_text(tok, t) for t in texts]
                out.stats[(kind, size, name)] = corpus_compression_stats(tok, texts, ids)
            unk = _unk_ids(tok)
            n_tokens = sum(len(e) for e in encodings)
            out.unk_rate[key] = sum(i in unk for e in encodings for i in e) / max(n_tokens, 1)
            out.round_trip[key] = round_trip(tok, val, encodings)
            if references:
                out.parity[key] = reference_parity(kind, tok, val, train, encodings)
            out.samples[key] = [tok.id_to_token(i) for i in encode_text(tok, sample)]
        out.tokenizers[kind] = tok
    return out


# ============================================================================ controlled: WordPiece vs BPE
CONTROLLED_ARMS = ("wordpiece", "bpe")
"""The arms of the controlled comparison: the treatment first, its control second."""

CONTROLLED_PATTERN = r" [^ ]+"
"""BPE's pre-tokenisation regex on :func:`controlled_text`: one chunk per word, with its leading space."""

_BERT_WORDS = WordPieceTokenizer()  # BERT's normaliser + pre-tokeniser (the defaults: uncased)


def controlled_text(text: str) -> str:
    """``text`` normalised and pre-tokenised by BERT's rules, each word written after one space.

    Example: ``controlled_text("Héllo, World!") == " hello , world !"``. Both arms of the controlled
    comparison read this text, so they see exactly the same words.
    """
    return "".join(" " + w for w in _BERT_WORDS.pre_tokenize(text))


def controlled_tokenizer(arm: str) -> Tokenizer:
    """An untrained tokenizer of ``arm`` that leaves :func:`controlled_text` as it is.

    WordPiece with every normalisation step off (the text is normalised already) splits at the
    spaces and punctuation characters, which are single-character words already, so its words are
    the words of the text; BPE with :data:`CONTROLLED_PATTERN` cuts the same words, each with its
    leading space.
    """
    if arm == "wordpiece":
        return WordPieceTokenizer(WordPieceConfig(lowercase=False, strip_accents=False, clean_text=False,
                                                  handle_chinese_chars=False))
    if arm == "bpe":
        return BPETokenizer(BPEConfig(pattern=CONTROLLED_PATTERN))
    raise ValueError(f"no controlled arm {arm!r} (known: {list(CONTROLLED_ARMS)})")


def controlled_comparison(
    config: ControlledConfig,
    train_texts: Sequence[str],
    held_out: Sequence[str],
    arms: Mapping[str, Callable[[], Tokenizer]] | None = None,
) -> dict[tuple[str, int], list[CompressionStats]]:
    """Train each arm on each fold of ``train_texts`` at each size; measure it on ``held_out``.

    Args:
        config: sizes and folds.
        train_texts: training documents (raw; :func:`controlled_text` is applied here).
        held_out: held-out documents (raw), the same for every fold.
        arms: ``{arm: untrained tokenizer factory}``; default :func:`controlled_tokenizer` of
            :data:`CONTROLLED_ARMS` (a test swaps in a null model: the same tokenizer twice).

    Returns:
        ``{(arm, size): [stats of the held-out text, fold 0, fold 1, ...]}``. Every word of the
        held-out text is one whitespace word of its controlled form, so ``fertility`` is tokens
        per word, over the same words for every arm.

    Raises:
        ValueError: a fold has no training text, or there is no held-out text.
    """
    if arms is None:
        arms = {arm: functools.partial(controlled_tokenizer, arm) for arm in CONTROLLED_ARMS}
    train = [controlled_text(t) for t in train_texts]
    val = [v for v in (controlled_text(t) for t in held_out) if v]
    if not val:
        raise ValueError("no held-out text for the controlled comparison")
    folds = [train[i :: config.folds] for i in range(config.folds)]
    if not all(any(f) for f in folds):
        raise ValueError(f"{len(train)} training documents cannot fill {config.folds} folds")
    out: dict[tuple[str, int], list[CompressionStats]] = {}
    for arm, make in arms.items():
        for size in config.vocab_sizes:
            out[(arm, size)] = [corpus_compression_stats(tok, val, [encode_text(tok, t) for t in val])
                                for tok in (make().train(fold, size) for fold in folds)]
    return out


def _sample_sentence(texts: Sequence[str], lo: int = 60, hi: int = 160) -> str:
    """The first held-out line of a readable length (for the segmentation samples)."""
    lines = _lines(texts)
    for line in lines:
        if lo <= len(line.strip()) <= hi:
            return line.strip()
    return (lines[0] if lines else "")[:hi]


# ============================================================================ item results
def _monotone_fraction(values: Sequence[float]) -> float:
    """Fraction of consecutive steps where the value strictly falls."""
    steps = list(zip(values, values[1:]))
    return sum(b < a for a, b in steps) / len(steps)


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        comparison: the measurements of :func:`compare_tokenizers` (the stage saves its
            tokenizers).
        kinds: the tokenizers measured (default all four, in curriculum order).
    """

    comparison: Comparison
    kinds: Sequence[str] = KINDS


def run(cfg: CompareConfig, inputs: Inputs) -> list[ItemResult]:
    """One :class:`ItemResult` per tokenizer: metrics, series, figures, texts and three findings.

    Metrics (``v<size>`` = requested vocabulary size): ``tokens_per_byte``, ``vocab_usage`` and
    ``fertility`` on ``val`` at every size and per source at the largest size; ``vocab_size``,
    ``unk_rate``, the parity numbers and round-trip counts.
    """
    comparison, config, kinds = inputs.comparison, cfg, inputs.kinds
    sizes = config.vocab_sizes
    largest = sizes[-1]
    c = comparison
    results = []
    for kind in kinds:
        m: dict[str, float] = {}
        for size in sizes:
            s = c.stats[(kind, size, HELD_OUT)]
            m[f"tokens_per_byte.val.v{size}"] = s.tokens_per_byte
            m[f"vocab_usage.val.v{size}"] = s.vocab_usage
            m[f"fertility.val.v{size}"] = s.fertility
            m[f"vocab_size.v{size}"] = float(c.vocab_sizes[(kind, size)])
            m[f"unk_rate.val.v{size}"] = c.unk_rate[(kind, size)]
        for group in c.groups[1:]:
            s = c.stats[(kind, largest, group)]
            m[f"tokens_per_byte.{group}.v{largest}"] = s.tokens_per_byte
            m[f"vocab_usage.{group}.v{largest}"] = s.vocab_usage
            m[f"fertility.{group}.v{largest}"] = s.fertility
        findings = []
        if c.parity:
            findings.append(_parity_finding(kind, c, sizes, config, m))
        findings.append(_round_trip_finding(kind, c, sizes, m, config.checks.min_round_trip_ok))
        tpb = [c.stats[(kind, s, HELD_OUT)].tokens_per_byte for s in sizes]
        m["compression.tpb_ratio_largest_to_smallest"] = tpb[-1] / tpb[0]
        findings.append(Finding.at_least(
            f"{LABELS[kind]}: tokens per byte on held-out text falls at every step up in vocabulary size "
            f"({sizes[0]} -> {largest}: {tpb[0]:.3f} -> {tpb[-1]:.3f})",
            "compression.falling_steps", _monotone_fraction(tpb), config.checks.min_falling_steps))
        if kind == "wordpiece" and "bpe" in kinds:
            for size in sizes:  # the sweep's arms differ in normaliser and pre-tokeniser: shown, not checked
                m[f"vocab_usage_minus_bpe.val.v{size}"] = (c.stats[("wordpiece", size, HELD_OUT)].vocab_usage
                                                           - c.stats[("bpe", size, HELD_OUT)].vocab_usage)
            if c.controlled:
                findings += controlled_findings(c.controlled, config, m)
        series = {f"{metric}_val": [(s, getattr(c.stats[(kind, s, HELD_OUT)], metric)) for s in sizes]
                  for metric in ("tokens_per_byte", "vocab_usage", "fertility")}
        figures = {f"{metric}.png": _figure(c, sizes, metric, kind, kinds)
                   for metric in ("tokens_per_byte", "vocab_usage", "fertility")}
        texts = {"sweep.tsv": _sweep_table(c, sizes, kind), "segmentations.txt": _segmentations(c, sizes, kind)}
        tok = c.tokenizers.get(kind)
        if tok is not None:
            texts[f"vocab_v{largest}.tsv"] = tok.vocab_table()
        results.append(ItemResult(item=ITEM[kind], metrics=m, series=series, figures=figures,
                                  texts=texts, findings=findings))
    return results


def _parity_finding(kind: str, c: Comparison, sizes: Sequence[int], config: CompareConfig,
                    m: dict[str, float]) -> Finding:
    tolerance = config.sp_tolerance
    if kind == "sentencepiece":
        worst = 0.0
        for size in sizes:
            p = c.parity[(kind, size)]
            m[f"parity.tpb_ours.v{size}"] = p["tpb_ours"]
            m[f"parity.tpb_sentencepiece.v{size}"] = p["tpb_reference"]
            m[f"parity.tpb_rel_diff.v{size}"] = p["tpb_rel_diff"]
            m[f"parity.reference_vocab_size.v{size}"] = p["reference_vocab_size"]
            worst = max(worst, p["tpb_rel_diff"])
        return Finding.at_most(
            f"SentencePiece: tokens per byte on held-out sentences within {tolerance:.0%} of the sentencepiece "
            "library trained on the same sentences at the same vocabulary size (worst over the sweep)",
            "parity.max_tpb_rel_diff", worst, tolerance, kind=INVARIANT)
    reference = {"bpe": "a tiktoken.Encoding built from our merge ranks",
                 "wordpiece": "HuggingFace tokenizers' WordPiece given our vocabulary",
                 "unigram": "HuggingFace tokenizers' Unigram (Viterbi) given our pieces and scores"}[kind]
    for size in sizes:
        m[f"parity.identical_docs.v{size}"] = c.parity[(kind, size)]["identical_docs"]
    worst = min(c.parity[(kind, s)]["identical_docs"] for s in sizes)
    return Finding.at_least(f"{LABELS[kind]}: ids identical to {reference} on every held-out document, "
                            "at every vocabulary size (fraction of documents, worst size)",
                            "parity.identical_docs", worst, config.checks.min_identical_docs,
                            kind=INVARIANT)


def controlled_findings(controlled: Mapping[tuple[str, int], Sequence[CompressionStats]],
                        config: CompareConfig, m: dict[str, float]) -> list[Finding]:
    """One finding per controlled size: WordPiece needs more tokens per word than BPE.

    The effect per fold is ``fertility_wordpiece / fertility_bpe - 1`` (paired: same training
    documents, same held-out words); it must clear ``checks.min_fertility_excess`` by two standard
    errors over the folds. Adds to ``m``, per size ``v<size>``: ``controlled.fertility.<arm>`` and
    ``controlled.vocab_usage.<arm>`` (means over folds), ``controlled.min_vocab_size.<arm>`` (the
    smallest vocabulary a fold reached: a small fold can run out of pairs seen twice before the
    size), ``controlled.fertility_excess`` with its ``_se``, and ``controlled.folds``.
    """
    treat, ctrl = CONTROLLED_ARMS
    margin = config.checks.min_fertility_excess
    m["controlled.folds"] = float(config.controlled.folds)
    findings = []
    for size in config.controlled.vocab_sizes:
        wp, bpe = controlled[(treat, size)], controlled[(ctrl, size)]
        for arm, stats in ((treat, wp), (ctrl, bpe)):
            m[f"controlled.fertility.{arm}.v{size}"] = sum(s.fertility for s in stats) / len(stats)
            m[f"controlled.vocab_usage.{arm}.v{size}"] = sum(s.vocab_usage for s in stats) / len(stats)
            m[f"controlled.min_vocab_size.{arm}.v{size}"] = float(min(_reached(s) for s in stats))
        reached = "/".join(f"{int(m[f'controlled.min_vocab_size.{arm}.v{size}'])}" for arm in CONTROLLED_ARMS)
        excess = [a.fertility / b.fertility - 1 for a, b in zip(wp, bpe)]
        f = Finding.compare(
            f"WordPiece vs BPE under the same normaliser and pre-tokeniser (BERT's: lowercased, split at "
            f"whitespace and punctuation), {size} ids each (smallest reached, WordPiece/BPE: {reached}), "
            f"trained on the same {len(excess)} disjoint folds "
            f"of the training documents: WordPiece's likelihood score leaves frequent words in pieces, so it "
            f"needs more tokens per held-out word than BPE (fertility_wp / fertility_bpe - 1 > {margin:g}; "
            "null model: the same tokenizer in both arms gives 0)",
            f"controlled.fertility_excess.v{size}", excess, margin=margin)
        m[f"controlled.fertility_excess.v{size}"] = f.value
        m[f"controlled.fertility_excess_se.v{size}"] = f.se if f.se is not None else float("nan")
        findings.append(f)
    return findings


def _reached(stats: CompressionStats) -> int:
    """The vocabulary size a measurement was made with (``vocab_used / vocab_usage``, exact once rounded)."""
    return round(stats.vocab_used / stats.vocab_usage)


def _round_trip_finding(kind: str, c: Comparison, sizes: Sequence[int], m: dict[str, float],
                        min_ok: float) -> Finding:
    rates = []
    for size in sizes:
        ok, checked = c.round_trip[(kind, size)]
        m[f"round_trip.docs_checked.v{size}"] = float(checked)
        rates.append(ok / checked if checked else 0.0)  # nothing checked proves nothing: fail
        m[f"round_trip.docs_ok.v{size}"] = float(ok)
    if kind in LOSSLESS:
        claim = f"{LABELS[kind]} is lossless: decode(encode(x)) == x exactly on every held-out document"
    else:
        what = "lowercased words" if kind == "wordpiece" else "words"
        claim = (f"{LABELS[kind]} drops only whitespace{' and case' if kind == 'wordpiece' else ''}: "
                 f"decode(encode(x)) gives x's {what} joined by single spaces on every held-out document "
                 "without unknown tokens")
    return Finding.at_least(claim, "round_trip.docs_ok_fraction", min(rates), min_ok, kind=INVARIANT)


def _sweep_table(c: Comparison, sizes: Sequence[int], kind: str) -> str:
    rows = ["kind\tvocab_size\treached\tgroup\ttokens_per_byte\tvocab_usage\tfertility\tn_tokens\tn_bytes"]
    for size in sizes:
        for group in c.groups:
            s = c.stats[(kind, size, group)]
            rows.append(f"{kind}\t{size}\t{c.vocab_sizes[(kind, size)]}\t{group}\t{s.tokens_per_byte:.5f}\t"
                        f"{s.vocab_usage:.5f}\t{s.fertility:.4f}\t{s.n_tokens}\t{s.n_bytes}")
    return "\n".join(rows) + "\n"


def _segmentations(c: Comparison, sizes: Sequence[int], kind: str) -> str:
    lines = [f"{LABELS[kind]}: one held-out sentence at each vocabulary size", f"text: {c.sample_text!r}", ""]
    for size in sizes:
        pieces = c.samples[(kind, size)]
        lines.append(f"v{size} ({len(pieces)} tokens): " + " | ".join(repr(p)[1:-1] for p in pieces))
    return "\n".join(lines) + "\n"


def _figure(c: Comparison, sizes: Sequence[int], metric: str, highlight: str, kinds: Sequence[str]) -> Any:
    """One panel per text group, one line per tokenizer against vocabulary size (log2 axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"tokens_per_byte": "tokens per byte (lower = better compression)",
              "vocab_usage": "vocabulary usage (fraction of ids used)",
              "fertility": "fertility (tokens per whitespace word)"}
    groups = c.groups
    fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3.4), sharey=True, squeeze=False)
    for ax, group in zip(axes[0], groups):
        for kind in kinds:
            ys = [getattr(c.stats[(kind, s, group)], metric) for s in sizes]
            bold = kind == highlight
            ax.plot(sizes, ys, marker="o", lw=2.8 if bold else 1.2, alpha=1.0 if bold else 0.6,
                    label=LABELS[kind], zorder=3 if bold else 2)
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(sizes), [str(s) for s in sizes], fontsize=7)
        ax.set_title(group if group != HELD_OUT else "val (all held-out)", fontsize=9)
        ax.set_xlabel("vocabulary size", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric.replace("_", " "), fontsize=8)
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{titles[metric]}; bold: {LABELS[highlight]}", fontsize=10)
    # Fixed margins instead of tight_layout (which re-measures every tick label: half the cost of
    # the figure); the stage saves with a tight bounding box anyway.
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.16, top=0.82, wspace=0.08)
    return fig
