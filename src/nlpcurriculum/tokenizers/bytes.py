"""Byte tokens: a text's UTF-8 bytes are its token ids (vocabulary 256, nothing to train).

Every text is representable, and a loss per token is a loss per byte (bits per byte =
loss / ln 2), so byte-level experiments are comparable across stages and independent of any
trained tokenizer. Several documents become one stream joined by a separator: a blank line
(``"\\n\\n"``, the default) or a byte that never occurs in text, such as NUL, used as an
end-of-text token (``separator="\\x00", end=True``: every document, the last one too, is
followed by it).

Worked example (tested): ``byte_tokens(["hi", "é"])`` -> ``"hi\\n\\né"`` ->
``[104, 105, 10, 10, 195, 169]`` (``é`` is two bytes in UTF-8).

Left out: decoding (``bytes(ids).decode("utf-8", errors="replace")``), byte-fallback inside
learned vocabularies (see :mod:`~nlpcurriculum.tokenizers.bpe` and
:mod:`~nlpcurriculum.tokenizers.sentencepiece`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["BYTE_VOCAB", "byte_tokens"]

BYTE_VOCAB = 256  # UTF-8 bytes: every text is representable, nothing to train


def byte_tokens(texts: Sequence[str], separator: str = "\n\n", *, end: bool = False) -> Tensor:
    """Join ``texts`` with ``separator`` (and end with it when ``end``); the UTF-8 bytes as ids.

    Returns:
        ``(N,)`` int64 ids in ``0..255``.

    Raises:
        ValueError: when there is no byte at all (no text, or only empty ones and no separator).
    """
    joined = separator.join(texts) + (separator if end and texts else "")
    data = joined.encode("utf-8")
    if not data:
        raise ValueError("no text to tokenize: the corpus is empty")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
