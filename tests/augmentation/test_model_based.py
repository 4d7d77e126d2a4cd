"""Model-based augmentation: pseudo-language, translator data, lockstep decoding, LM rewrites,
embedding neighbours, edit similarity."""

import numpy as np
import pytest
import torch

from nlpcurriculum.augmentation.model_based import (
    EN2PS,
    EOS,
    PAD,
    PS2EN,
    UNK,
    PairBatcher,
    PseudoLanguage,
    char_similarity,
    chunk_words,
    embedding_neighbours,
    encode_pair,
    lm_continue,
    lm_rewrite,
    translate,
    WordCodec,
)
from nlpcurriculum.embeddings.vectors import WordVectors
from nlpcurriculum.models.miniformer import MiniFormerConfig


def test_pseudo_language_is_invertible_and_reorders():
    lang = PseudoLanguage(seed=3)
    text = "The quick brown fox jumps over the lazy dog."
    ps = lang.to_pseudo(text)
    assert lang.from_pseudo(ps) == "the quick brown fox jumps over the lazy dog"
    en_words, ps_words = "the quick brown fox".split(), ps.split()[:4]
    # pairs swapped: pseudo word 0 is the cipher of English word 1, and so on
    assert [len(w) for w in ps_words] == [len(en_words[i]) for i in (1, 0, 3, 2)]
    assert ps != "the quick brown fox jumps over the lazy dog"
    fwd, inv = lang._tables()
    assert sorted(fwd.values()) == sorted(fwd) and all(inv[fwd[c]] == c for c in fwd)


def test_word_codec_and_chunks():
    codec = WordCodec.build(["b a b", "c b a", "zz"], min_count=2)
    assert codec.words[5:] == ["b", "a"]  # by count, then alphabetical; zz and c are rare
    assert codec.encode("a c b") == [6, UNK, 5]
    assert codec.decode([6, UNK, 5, EOS]) == "a b"  # specials dropped
    assert chunk_words("a b c d e", 2) == ["a b", "c d", "e"]
    with pytest.raises(ValueError, match="max_words"):
        chunk_words("a", 0)


def test_pair_batcher_scores_only_the_target():
    ids, start = encode_pair([7, 8], [9, 10, 11], EN2PS, src_len=4)
    assert ids == [PAD, PAD, 7, 8, EN2PS, 9, 10, 11, EOS]
    assert start == 5
    b = PairBatcher([([7, 8], [9, 10, 11])], src_len=4)
    assert b.x.shape == (2, 9)  # both directions, length 2 * 4 + 2 - 1
    assert [v for v in b.y[0].tolist() if v != -100] == [9, 10, 11, EOS]
    assert [v for v in b.y[1].tolist() if v != -100] == [7, 8, EOS]
    assert b.x[0, 4] == EN2PS and b.x[1, 4] == PS2EN
    with pytest.raises(ValueError, match="src_len"):
        PairBatcher([([1] * 6, [2])], src_len=4)


class _Stub(torch.nn.Module):
    """Emits ``answer`` then EOS whatever the input (position = length - prompt length)."""

    def __init__(self, answer, prompt_len: int):
        super().__init__()
        self.answer, self.prompt_len = list(answer) + [EOS], prompt_len
        self.config = MiniFormerConfig(max_seq_len=512)

    def forward(self, ids):
        k = ids.shape[1] - self.prompt_len
        logits = torch.zeros(ids.shape[0], ids.shape[1], 32)
        logits[:, -1, self.answer[min(k, len(self.answer) - 1)]] = 10.0
        return type("Out", (), {"logits": logits})()


def test_translate_and_lm_continue_decode_in_lockstep():
    out = translate(_Stub([9, 10], prompt_len=5), [[5], [6, 7]], EN2PS, src_len=4)
    assert out == [[9, 10], [9, 10]]
    with pytest.raises(ValueError, match="direction"):
        translate(_Stub([9], 5), [[5]], 7, src_len=4)
    # banned EOS: the stub's end id is never chosen, so rows run to max_new
    outs = lm_continue(_Stub([9, 10], prompt_len=2), [[5, 6], [7, 8]], 3, banned=[EOS])
    assert [o[:2] for o in outs] == [[9, 10], [9, 10]] and all(len(o) == 3 and EOS not in o for o in outs)
    with pytest.raises(ValueError, match="one length"):
        lm_continue(_Stub([9], 2), [[1], [1, 2]], 3)


def test_lm_rewrite_keeps_prefix_and_replaces_at_rate():
    stub = _Stub([9, 10, 11, 12, 13], prompt_len=1)  # at position t the stub proposes answer[t]
    docs = [[5, 6, 7, 8], [5, 6]]
    assert lm_rewrite(stub, docs, start=2, rate=0.0) == docs
    assert lm_rewrite(stub, docs, start=2, rate=1.0) == [[5, 6, 11, 12], [5, 6]]
    gen = torch.Generator().manual_seed(0)
    out = lm_rewrite(stub, [[5] * 400], start=0, rate=0.3, generator=gen)[0]
    assert 0.2 < np.mean([t != 5 for t in out]) < 0.4
    with pytest.raises(ValueError, match="rate"):
        lm_rewrite(stub, docs, start=0, rate=1.5)


def test_embedding_neighbours_threshold_and_band():
    words = ["the", "cat", "kitten", "dog", "zebra"]  # rank order = frequency order
    vecs = np.array([[1, 0, 0], [0, 1, 0], [0, 0.99, 0.1], [0, 0.8, 0.6], [0.05, 1, 0]])
    table = WordVectors(words, vecs)
    strict = embedding_neighbours([table], k=4, min_cos=0.95, band=0)
    assert strict("cat") == ("zebra", "kitten")  # dog (cos 0.8) is below the threshold
    banded = embedding_neighbours([table], k=4, min_cos=0.95, band=0.6)
    assert banded("cat") == ("kitten",)  # log2(4+1) - log2(1+1) = 1.32 > 0.6: zebra drops out
    assert strict("unknown") == ()
    with pytest.raises(ValueError, match="min_cos"):
        embedding_neighbours([table], min_cos=2.0)


def test_edit_similarity_by_hand():
    ref = "the cat sat on the mat".split()
    cand = "the cat sat on a mat".split()
    assert char_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert char_similarity(ref, cand) == pytest.approx(1 - 1 / 6)
    assert char_similarity("", "") == 1.0
