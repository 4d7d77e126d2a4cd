"""Compression measures: tokens per byte, vocabulary usage, fertility."""

from __future__ import annotations

import pytest

from nlpcurriculum.tokenizers import (
    BPEConfig,
    BPETokenizer,
    compression_stats,
    fertility,
    tokens_per_byte,
    vocab_usage,
)


def test_a_byte_tokenizer_without_merges_has_one_token_per_byte():
    tok = BPETokenizer(BPEConfig(special_tokens=())).train("x", 256)
    text = "héllo wörld 🤗"
    stats = compression_stats(tok, text)
    assert stats.n_bytes == len(text.encode("utf-8")) == stats.n_tokens
    assert stats.tokens_per_byte == 1.0 and stats.bytes_per_token == 1.0
    assert stats.n_words == 3 and stats.fertility == pytest.approx(stats.n_tokens / 3)
    assert stats.vocab_used == len(set(text.encode("utf-8")))
    assert stats.vocab_usage == pytest.approx(stats.vocab_used / 256)


def test_hand_computed_stats_on_a_toy_text():
    tok = BPETokenizer(BPEConfig(min_frequency=1, special_tokens=())).train("aaabdaaabac", 256 + 3)
    stats = compression_stats(tok, "aaabdaaabac")  # -> aaab d aaab a c
    assert (stats.n_tokens, stats.n_bytes, stats.n_words, stats.vocab_used) == (5, 11, 1, 4)
    assert stats.tokens_per_byte == pytest.approx(5 / 11)
    assert stats.fertility == 5.0
    assert stats.vocab_usage == pytest.approx(4 / 259)
    assert set(stats.as_dict()) >= {"tokens_per_byte", "fertility", "vocab_usage"}


def test_more_merges_compress_better_but_leave_more_of_the_vocab_unused(train_text, held_out):
    sizes = (300, 1000, 4000)
    toks = [BPETokenizer().train(train_text, v) for v in sizes]
    text = held_out[:30_000]
    tpb = [tokens_per_byte(t, text) for t in toks]
    assert tpb[2] < tpb[1] < tpb[0] < 1.0
    fert = [fertility(t, text) for t in toks]
    assert fert[2] < fert[1] < fert[0]
    # At 300 most ids are raw bytes this English text never uses; past the text's needs
    # (measured here: 0.44, 0.68, 0.32) usage falls again as merges outgrow 30 KB of text.
    usage = [vocab_usage(t, text) for t in toks]
    assert usage[1] > usage[0] and usage[1] > usage[2]


def test_every_tokenizer_can_be_measured(all_tokenizers, held_out):
    text = held_out[:10_000]
    for name, tok in all_tokenizers.items():
        stats = compression_stats(tok, text)
        assert stats.tokens_per_byte < 1.0, name  # every tokenizer compresses English text
        assert stats.vocab_used == len(set(tok.encode(text))), name
        assert stats.vocab_usage == pytest.approx(stats.vocab_used / tok.vocab_size), name


def test_empty_text_is_rejected(bpe):
    with pytest.raises(ValueError, match="empty"):
        compression_stats(bpe, "")
