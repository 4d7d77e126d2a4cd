"""Shared corpus and trained tokenizers for the tokenizer tests (trained once per session).

Text: the standard library's documentation topics (``pydoc_data.topics``, ~465 KB of English
with code). Training uses the first 200 KB; held-out checks use a later, disjoint 100 KB.
"""

from __future__ import annotations

import pytest

TRAIN_CHARS = 200_000
HELD_OUT = slice(300_000, 400_000)
UNICODE_EXTRA = (
    "\nNaïve café déjà vu — “quoted” ‘text’ … 日本語のテキスト 中文 한국어 Ελληνικά Кириллица "
    "emoji 🤗🚀👩‍👩‍👧 flags 🇫🇷 math ∑∫√∞ ≤ ≥ tabs\there  double  spaces \r\n end"
)


@pytest.fixture(scope="session")
def corpus() -> str:
    from pydoc_data.topics import topics

    return "\n".join(topics[k] for k in sorted(topics))


@pytest.fixture(scope="session")
def train_text(corpus: str) -> str:
    return corpus[:TRAIN_CHARS]


@pytest.fixture(scope="session")
def held_out(corpus: str) -> str:
    text = corpus[HELD_OUT]
    assert len(text) > 50_000
    return text


@pytest.fixture(scope="session")
def bpe(train_text: str):
    from nlpcurriculum.tokenizers import BPETokenizer

    return BPETokenizer().train(train_text, 512)


@pytest.fixture(scope="session")
def wordpiece(train_text: str):
    from nlpcurriculum.tokenizers import WordPieceTokenizer

    return WordPieceTokenizer().train(train_text, 600)


@pytest.fixture(scope="session")
def unigram(train_text: str):
    from nlpcurriculum.tokenizers import UnigramTokenizer

    return UnigramTokenizer().train(train_text, 600)


@pytest.fixture(scope="session")
def sp_unigram(train_text: str):
    from nlpcurriculum.tokenizers import SentencePieceConfig, SentencePieceTokenizer

    return SentencePieceTokenizer(SentencePieceConfig(model_type="unigram")).train(train_text, 1000)


@pytest.fixture(scope="session")
def sp_bpe(train_text: str):
    from nlpcurriculum.tokenizers import SentencePieceConfig, SentencePieceTokenizer

    return SentencePieceTokenizer(SentencePieceConfig(model_type="bpe")).train(train_text, 1000)


@pytest.fixture(scope="session")
def all_tokenizers(bpe, wordpiece, unigram, sp_unigram, sp_bpe) -> dict:
    return {"bpe": bpe, "wordpiece": wordpiece, "unigram": unigram, "sp_unigram": sp_unigram, "sp_bpe": sp_bpe}


@pytest.fixture(scope="session")
def unicode_extra() -> str:
    """Text the training data lacks: accents, CJK, emoji (with ZWJ sequences), tabs, CRLF."""
    return UNICODE_EXTRA
