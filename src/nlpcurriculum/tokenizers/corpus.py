"""A tokenised corpus on disk: one stream of ids per split, for language-model training.

The pipeline's ``tokenizer`` stage trains one tokenizer (:class:`TokenizerSpec` picks the kind and
size) and encodes every split with :func:`encode_documents`; :func:`save_tokens` writes the
result and a later stage (``pretrain``) reads it back with :func:`load_tokens`. That is the whole
API a consumer needs::

    arrays, meta = load_tokens("data/processed/tokens")
    train = arrays["train"]            # (N,) int32 ids
    eos = meta["eos_id"]               # every document ends with it
    vocab = meta["vocab_size"]         # the embedding table's number of rows

Why one flat stream with an end-of-text id (as GPT-2 and nanoGPT's ``train.bin`` do): a language
model is trained on fixed-length windows cut anywhere in the stream, so document boundaries must
be *in* the data. Every document is followed by ``eos_id``, including the last, so the stream
always ends with it (a truncated file shows up as a missing final ``eos_id``).

Each kind's end-of-text token (:data:`EOS_TOKENS`) is a special token that text can never
produce: BPE's ``<|endoftext|>`` (literal occurrences in a document are encoded as ordinary
text), WordPiece's ``[SEP]`` (BERT's segment end; the pre-tokeniser splits a literal "[SEP]" at
its brackets), and ``</s>`` for Unigram and SentencePiece (special ids are never matched in text).
:func:`build_tokenizer` makes sure the tokenizer has it.

File format (docs/CONVENTIONS.md, convention 13), a folder holding:

* ``meta.json``: ``{"format": "nlpcurriculum-tokens", "version": 1, "kind": "bpe",
  "vocab_size": 4096, "eos_id": 4095, "n_tokens": {"train": N, "val": N, "test": N}}``;
* ``<split>.npy``: a 1-D ``int32`` numpy array (``numpy.save``, no pickles), ``n_tokens[split]``
  long, every id in ``[0, vocab_size)``.

:func:`load_tokens` checks every one of these facts and raises :class:`TokensFileError` naming the
file and the problem (or ``FileNotFoundError`` for a missing folder or file).

Left out: sharding into several files, memory-mapped writing for corpora larger than memory
(``load_tokens(mmap=True)`` does map them for reading), and uint16 storage (int32 keeps any
vocabulary size below 2**31 without a dtype switch).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nlpcurriculum.tokenizers.base import Tokenizer
from nlpcurriculum.tokenizers.bpe import BPEConfig, BPETokenizer
from nlpcurriculum.tokenizers.sentencepiece import SentencePieceConfig, SentencePieceTokenizer
from nlpcurriculum.tokenizers.unigram import UnigramConfig, UnigramTokenizer
from nlpcurriculum.tokenizers.wordpiece import WordPieceConfig, WordPieceTokenizer

TOKENS_FORMAT = "nlpcurriculum-tokens"
TOKENS_VERSION = 1
META_FILE = "meta.json"

EOS_TOKENS: dict[str, str] = {
    "bpe": "<|endoftext|>",
    "wordpiece": "[SEP]",
    "unigram": "</s>",
    "sentencepiece": "</s>",
}
"""The special token that ends every document in a token stream, by tokenizer kind."""

Kind = Literal["bpe", "wordpiece", "unigram", "sentencepiece"]


class TokensFileError(ValueError):
    """A saved token folder is corrupt: bad ``meta.json``, unreadable array, wrong dtype/shape/ids.

    Attributes:
        path: the file that was being read.
        problem: what is wrong with it, in words.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"cannot load tokens from {self.path!r}: {problem}")


@dataclass(frozen=True)
class TokenizerSpec:
    """Which tokenizer the pipeline trains (the ``tokenizer`` params section).

    Attributes:
        kind: ``bpe`` | ``wordpiece`` | ``unigram`` | ``sentencepiece``.
        vocab_size: total ids, special tokens (and SentencePiece's 256 byte pieces) included.
        min_frequency: bpe and wordpiece: a pair seen fewer times is never merged.
        lowercase: wordpiece only: BERT "uncased" normalisation.
        model_type: sentencepiece only: ``unigram`` or ``bpe`` inside.
        max_train_chars: train on the first documents up to this many characters (0: all).
    """

    kind: Kind = "bpe"
    vocab_size: int = 4096
    min_frequency: int = 2
    lowercase: bool = True
    model_type: Literal["unigram", "bpe"] = "unigram"
    max_train_chars: int = 0

    def __post_init__(self) -> None:
        if self.kind not in EOS_TOKENS:
            raise ValueError(f"kind must be one of {sorted(EOS_TOKENS)}, got {self.kind!r}")
        if self.vocab_size < 2 or self.vocab_size >= 2**31:
            raise ValueError(f"vocab_size must be in [2, 2**31), got {self.vocab_size}")
        if self.min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {self.min_frequency}")
        if self.model_type not in ("unigram", "bpe"):
            raise ValueError(f"model_type must be 'unigram' or 'bpe', got {self.model_type!r}")
        if self.max_train_chars < 0:
            raise ValueError(f"max_train_chars must be >= 0 (0 = all), got {self.max_train_chars}")


def build_tokenizer(spec: TokenizerSpec) -> Tokenizer:
    """An untrained tokenizer of ``spec.kind`` whose vocabulary will hold its end-of-text token."""
    if spec.kind == "bpe":
        return BPETokenizer(BPEConfig(min_frequency=spec.min_frequency, special_tokens=(EOS_TOKENS["bpe"],)))
    if spec.kind == "wordpiece":
        return WordPieceTokenizer(WordPieceConfig(lowercase=spec.lowercase, min_frequency=spec.min_frequency))
    if spec.kind == "unigram":
        # The library default has only <unk>; a stream needs a document separator as well.
        return UnigramTokenizer(UnigramConfig(special_tokens=("<unk>", EOS_TOKENS["unigram"])))
    return SentencePieceTokenizer(SentencePieceConfig(model_type=spec.model_type))


def take_chars(texts: Iterable[str], max_chars: int) -> list[str]:
    """The first documents up to ``max_chars`` characters in total (0: all of them).

    The document that crosses the limit is cut there, so a limit smaller than the first
    document still yields some text.
    """
    if max_chars < 0:
        raise ValueError(f"max_chars must be >= 0, got {max_chars}")
    out: list[str] = []
    total = 0
    for text in texts:
        if max_chars and total + len(text) > max_chars:
            if max_chars - total > 0:
                out.append(text[: max_chars - total])
            break
        out.append(text)
        total += len(text)
    return out


def train_tokenizer(spec: TokenizerSpec, texts: Sequence[str]) -> Tokenizer:
    """Build the tokenizer of ``spec`` and train it on ``texts`` (cut to ``spec.max_train_chars``)."""
    texts = take_chars(texts, spec.max_train_chars)
    if not any(texts):
        raise ValueError("no training text")
    return build_tokenizer(spec).train(texts, spec.vocab_size)


def eos_id(tokenizer: Tokenizer) -> int:
    """The id of the tokenizer's end-of-text token (:data:`EOS_TOKENS`).

    Raises:
        ValueError: the tokenizer is of an unknown kind or its vocabulary lacks the token
            (e.g. a Unigram tokenizer built with the library default, which has only ``<unk>``).
    """
    token = EOS_TOKENS.get(tokenizer.kind)
    if token is None:
        raise ValueError(f"no end-of-text token is defined for tokenizer kind {tokenizer.kind!r}")
    found: int | None = None
    if isinstance(tokenizer, BPETokenizer):
        found = tokenizer.special_tokens.get(token)
    elif isinstance(tokenizer, WordPieceTokenizer):
        found = tokenizer.token_to_id(token) if token in tokenizer.config.special_tokens else None
    elif isinstance(tokenizer, UnigramTokenizer):
        specials = tokenizer.config.special_tokens
        found = specials.index(token) if token in specials and tokenizer.is_trained else None
    elif isinstance(tokenizer, SentencePieceTokenizer):
        found = tokenizer.pieces.index(token) if token in tokenizer.pieces[:3] else None
    if found is None:
        raise ValueError(f"the {tokenizer.kind!r} tokenizer has no special {token!r} token to end documents "
                         "with: build it with build_tokenizer() (or add it to its special tokens)")
    return int(found)


def encode_text(tokenizer: Tokenizer, text: str) -> list[int]:
    """Encode one document as plain text: special tokens written in it are not special."""
    if isinstance(tokenizer, BPETokenizer):
        # A document that quotes "<|endoftext|>" must not end early: encode it as plain text.
        return tokenizer.encode_ordinary(text)
    return tokenizer.encode(text)


def encode_documents(tokenizer: Tokenizer, texts: Iterable[str], eos: int | None = None) -> np.ndarray:
    """Encode documents into one stream, each document followed by the end-of-text id.

    Args:
        tokenizer: a trained tokenizer.
        texts: the documents, in order.
        eos: the separator id; default :func:`eos_id` of the tokenizer.

    Returns:
        ``(N,)`` int32 array: ``doc_1 ids, eos, doc_2 ids, eos, ...`` (empty for no documents).
    """
    if eos is None:
        eos = eos_id(tokenizer)
    if not 0 <= eos < tokenizer.vocab_size:
        raise ValueError(f"eos id {eos} is outside the vocabulary [0, {tokenizer.vocab_size})")
    ids: list[int] = []
    for text in texts:
        ids.extend(encode_text(tokenizer, text))
        ids.append(eos)
    return np.asarray(ids, dtype=np.int32)


def save_tokens(folder: str | os.PathLike, arrays: Mapping[str, np.ndarray], *, kind: str,
                vocab_size: int, eos_id: int) -> dict[str, Any]:
    """Write ``<split>.npy`` for every array and ``meta.json``, replacing ``folder`` atomically.

    Returns:
        The metadata written.

    Raises:
        ValueError: an array is not 1-D int32 or holds an id outside ``[0, vocab_size)``.
    """
    from nlpcurriculum.io import atomic_path

    meta = {"format": TOKENS_FORMAT, "version": TOKENS_VERSION, "kind": kind, "vocab_size": int(vocab_size),
            "eos_id": int(eos_id), "n_tokens": {}}
    for split, arr in arrays.items():
        problem = _array_problem(arr, vocab_size, eos_id)
        if problem:
            raise ValueError(f"tokens of split {split!r}: {problem}")
        meta["n_tokens"][split] = int(arr.shape[0])
    with atomic_path(folder, is_dir=True) as tmp:
        for split, arr in arrays.items():
            np.save(tmp / f"{split}.npy", arr, allow_pickle=False)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def load_tokens(folder: str | os.PathLike, splits: Iterable[str] | None = None,
                mmap: bool = False) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a folder written by :func:`save_tokens`, checking the format and every array.

    Args:
        folder: the token folder (``data/processed/tokens``).
        splits: which splits to load (default: all listed in ``meta.json``).
        mmap: memory-map the arrays read-only instead of reading them into memory.

    Returns:
        ``({split: (N,) int32 array}, meta)``.

    Raises:
        FileNotFoundError: the folder, ``meta.json`` or a split's file is missing.
        TokensFileError: ``meta.json`` is not valid or not of this format/version, or an array is
            unreadable, not 1-D int32, of another length than ``meta.json`` says, holds an id outside
            the vocabulary, or does not end with ``eos_id``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: token folder not found (run the `tokenizer` stage)")
    meta_path = folder / META_FILE
    meta = _read_meta(meta_path)
    wanted = list(meta["n_tokens"]) if splits is None else list(splits)
    arrays: dict[str, np.ndarray] = {}
    for split in wanted:
        if split not in meta["n_tokens"]:
            raise TokensFileError(meta_path, f"has no split {split!r} (it lists {sorted(meta['n_tokens'])})")
        path = folder / f"{split}.npy"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: token file not found (meta.json lists it; rerun the `tokenizer` stage)")
        try:
            arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise TokensFileError(path, f"not a readable .npy array, truncated or corrupt ({err})") from None
        problem = _array_problem(arr, meta["vocab_size"], meta["eos_id"])
        if problem is None and arr.shape[0] != meta["n_tokens"][split]:
            problem = f"holds {arr.shape[0]} tokens but meta.json says {meta['n_tokens'][split]}"
        if problem:
            raise TokensFileError(path, problem)
        arrays[split] = arr
    return arrays, meta


def _read_meta(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: token metadata not found (rerun the `tokenizer` stage)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TokensFileError(path, f"not valid JSON, truncated or corrupt ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != TOKENS_FORMAT:
        raise TokensFileError(path, f"not an {TOKENS_FORMAT} file (missing or wrong 'format' field)")
    if meta.get("version") != TOKENS_VERSION:
        raise TokensFileError(path, f"unsupported version {meta.get('version')!r} (this code reads {TOKENS_VERSION})")
    for key in ("vocab_size", "eos_id"):
        if not isinstance(meta.get(key), int) or isinstance(meta.get(key), bool):
            raise TokensFileError(path, f"missing or non-integer {key!r}")
    if not 0 <= meta["eos_id"] < meta["vocab_size"]:
        raise TokensFileError(path, f"eos_id {meta['eos_id']} is outside the vocabulary [0, {meta['vocab_size']})")
    counts = meta.get("n_tokens")
    if not isinstance(counts, dict) or not all(isinstance(v, int) and v >= 0 for v in counts.values()):
        raise TokensFileError(path, "'n_tokens' must map each split to a non-negative int")
    if not isinstance(meta.get("kind"), str):
        raise TokensFileError(path, "missing 'kind'")
    return meta


def _array_problem(arr: Any, vocab_size: int, eos: int) -> str | None:
    """What is wrong with a token array, or None."""
    if not isinstance(arr, np.ndarray):
        return f"expected a numpy array, got {type(arr).__name__}"
    if arr.dtype != np.int32:
        return f"dtype is {arr.dtype}, expected int32"
    if arr.ndim != 1:
        return f"shape is {arr.shape}, expected 1-D"
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= vocab_size:
            return f"ids span [{lo}, {hi}], outside the vocabulary [0, {vocab_size})"
        if int(arr[-1]) != eos:
            return f"does not end with eos_id {eos} (a truncated stream?)"
    return None
