"""How well a tokenizer compresses text: tokens per byte, vocabulary usage, fertility.

These are the numbers a vocabulary-size sweep plots (curriculum "Tokenization & Embeddings"):

* **tokens per byte** (lower is better compression; its inverse, bytes per token, is what
  tokenizer papers often quote; a byte-level tokenizer with no merges scores 1.0);
* **vocabulary usage**: the fraction of the vocabulary that occurs at least once when encoding
  the text (a large vocabulary on a small or out-of-domain text leaves many ids unused, and
  their embeddings untrained);
* **fertility**: tokens per whitespace-separated word (Rust et al., 2021, arXiv:2012.15613;
  1.0 means every word is a single token).

Left out: Rényi efficiency and other entropy-based measures of the token distribution.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from nlpcurriculum.tokenizers.base import Tokenizer


@dataclass(frozen=True)
class CompressionStats:
    """Compression of one text by one tokenizer.

    Attributes:
        n_bytes: UTF-8 bytes of the text.
        n_chars: characters of the text.
        n_words: whitespace-separated words of the text.
        n_tokens: tokens the tokenizer produced.
        tokens_per_byte: ``n_tokens / n_bytes``.
        bytes_per_token: ``n_bytes / n_tokens``.
        fertility: ``n_tokens / n_words``.
        vocab_used: distinct ids in the encoding.
        vocab_usage: ``vocab_used / vocab_size``.
    """

    n_bytes: int
    n_chars: int
    n_words: int
    n_tokens: int
    tokens_per_byte: float
    bytes_per_token: float
    fertility: float
    vocab_used: int
    vocab_usage: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def compression_stats(tokenizer: Tokenizer, text: str, ids: Sequence[int] | None = None) -> CompressionStats:
    """Encode ``text`` once (unless ``ids`` are given) and measure it.

    Raises:
        ValueError: the text is empty (every ratio would divide by zero).
    """
    if not text:
        raise ValueError("cannot measure compression on an empty text")
    if ids is None:
        ids = tokenizer.encode(text)
    n_bytes = len(text.encode("utf-8"))
    n_words = len(text.split())
    n_tokens = len(ids)
    used = len(set(ids))
    return CompressionStats(
        n_bytes=n_bytes,
        n_chars=len(text),
        n_words=n_words,
        n_tokens=n_tokens,
        tokens_per_byte=n_tokens / n_bytes,
        bytes_per_token=n_bytes / n_tokens if n_tokens else float("inf"),
        fertility=n_tokens / n_words if n_words else float("nan"),
        vocab_used=used,
        vocab_usage=used / tokenizer.vocab_size,
    )


def corpus_compression_stats(
    tokenizer: Tokenizer, texts: Iterable[str], ids: Iterable[Sequence[int]] | None = None
) -> CompressionStats:
    """Measure a corpus of documents: every count summed over documents, then the ratios.

    Each document is encoded on its own (no token spans two documents), which is how a corpus is
    tokenised for training; :func:`compression_stats` on the documents joined would let a
    tokenizer merge across document boundaries. ``vocab_used`` counts ids used anywhere.

    Args:
        tokenizer: a trained tokenizer.
        texts: the documents.
        ids: their encodings, if already computed (same order as ``texts``).

    Raises:
        ValueError: the corpus has no bytes.
    """
    texts = list(texts)
    encodings = [tokenizer.encode(t) for t in texts] if ids is None else [list(x) for x in ids]
    if len(encodings) != len(texts):
        raise ValueError(f"{len(texts)} documents but {len(encodings)} encodings")
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    if n_bytes == 0:
        raise ValueError("cannot measure compression on an empty corpus")
    n_words = sum(len(t.split()) for t in texts)
    n_tokens = sum(len(e) for e in encodings)
    used = len(set().union(*encodings)) if encodings else 0
    return CompressionStats(
        n_bytes=n_bytes,
        n_chars=sum(len(t) for t in texts),
        n_words=n_words,
        n_tokens=n_tokens,
        tokens_per_byte=n_tokens / n_bytes,
        bytes_per_token=n_bytes / n_tokens if n_tokens else float("inf"),
        fertility=n_tokens / n_words if n_words else float("nan"),
        vocab_used=used,
        vocab_usage=used / tokenizer.vocab_size,
    )


def tokens_per_byte(tokenizer: Tokenizer, text: str) -> float:
    """Tokens per UTF-8 byte of ``text`` (lower = better compression)."""
    return compression_stats(tokenizer, text).tokens_per_byte


def vocab_usage(tokenizer: Tokenizer, text: str) -> float:
    """Fraction of the vocabulary used at least once when encoding ``text``."""
    return compression_stats(tokenizer, text).vocab_usage


def fertility(tokenizer: Tokenizer, text: str) -> float:
    """Tokens per whitespace-separated word of ``text``."""
    return compression_stats(tokenizer, text).fertility
