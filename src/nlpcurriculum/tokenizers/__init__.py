"""Tokenizers built from scratch: byte-level BPE, WordPiece, Unigram LM and SentencePiece.

Every variant subclasses :class:`Tokenizer` (``train`` / ``encode`` / ``decode`` / ``save`` /
``load``) and is tested for parity with its reference library: tiktoken (BPE), HuggingFace
``tokenizers`` (WordPiece, Unigram) and ``sentencepiece`` (SentencePiece). :mod:`.compression`
measures tokens per byte, vocabulary usage and fertility; :mod:`.corpus` builds the pipeline's
tokenizer and reads/writes token streams (``encode_documents``, ``save_tokens``, ``load_tokens``).
The curriculum experiment that compares them is
:mod:`nlpcurriculum.experiments.tokenization_and_embeddings.tokenizer_compare`.
:mod:`.bpe_reference` is the textbook BPE trainer (recount every pair after every merge) that the
fast one in :mod:`.bpe` is tested against.
"""

from nlpcurriculum.tokenizers.base import Tokenizer, TokenizerFileError, load_tokenizer, vocab_sidecar_path
from nlpcurriculum.tokenizers.bpe import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, BPEConfig, BPETokenizer, learn_merges
from nlpcurriculum.tokenizers.compression import (
    CompressionStats,
    compression_stats,
    corpus_compression_stats,
    fertility,
    tokens_per_byte,
    vocab_usage,
)
from nlpcurriculum.tokenizers.corpus import (
    EOS_TOKENS,
    TokenizerSpec,
    TokensFileError,
    build_tokenizer,
    encode_documents,
    eos_id,
    load_tokens,
    save_tokens,
    train_tokenizer,
)
from nlpcurriculum.tokenizers.sentencepiece import SentencePieceConfig, SentencePieceTokenizer
from nlpcurriculum.tokenizers.unigram import UnigramConfig, UnigramModel, UnigramTokenizer, train_unigram
from nlpcurriculum.tokenizers.wordpiece import WordPieceConfig, WordPieceTokenizer, bert_normalize, bert_pre_tokenize

TOKENIZERS: dict[str, type[Tokenizer]] = {
    cls.kind: cls for cls in (BPETokenizer, WordPieceTokenizer, UnigramTokenizer, SentencePieceTokenizer)
}
"""Every tokenizer class by its ``kind`` (the name in saved files and in params)."""

__all__ = [
    "BPEConfig", "BPETokenizer", "CompressionStats", "EOS_TOKENS", "GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN",
    "SentencePieceConfig", "SentencePieceTokenizer", "TOKENIZERS", "Tokenizer", "TokenizerFileError",
    "TokenizerSpec", "TokensFileError", "UnigramConfig", "UnigramModel", "UnigramTokenizer",
    "WordPieceConfig", "WordPieceTokenizer", "bert_normalize", "bert_pre_tokenize", "build_tokenizer",
    "compression_stats", "corpus_compression_stats", "encode_documents", "eos_id", "fertility",
    "learn_merges", "load_tokenizer", "load_tokens", "save_tokens", "tokens_per_byte", "train_tokenizer",
    "train_unigram", "vocab_sidecar_path", "vocab_usage",
]  # fmt: skip
