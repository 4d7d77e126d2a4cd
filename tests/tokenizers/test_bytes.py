"""Byte tokens: UTF-8 bytes as ids, documents joined (and optionally ended) by a separator."""

import pytest
import torch

from nlpcurriculum.tokenizers.bytes import BYTE_VOCAB, byte_tokens


def test_byte_tokens_hand_worked_example():
    ids = byte_tokens(["hi", "é"])
    assert ids.tolist() == [104, 105, 10, 10, 195, 169]  # é is two bytes, C3 A9
    assert ids.dtype == torch.int64 and int(ids.max()) < BYTE_VOCAB == 256


def test_byte_tokens_end_with_the_separator_when_asked():
    assert byte_tokens(["ab", "é"], "\x00", end=True).tolist() == [97, 98, 0, 0xC3, 0xA9, 0]
    assert byte_tokens(["ab", "é"], "\x00").tolist() == [97, 98, 0, 0xC3, 0xA9]
    assert byte_tokens([""], "\x00", end=True).tolist() == [0]  # an empty document still ends
    assert byte_tokens(["hé", "x"]).tolist() == list("hé\n\nx".encode("utf-8"))


@pytest.mark.parametrize("texts, end", [([""], False), ([], False), ([], True)])
def test_byte_tokens_reject_an_empty_corpus(texts, end):
    with pytest.raises(ValueError, match="empty"):
        byte_tokens(texts, end=end)
