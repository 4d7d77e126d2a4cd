"""Byte-level BPE: the hand-worked example, the incremental trainer against the textbook one
(``tokenizers/bpe_reference.py``), and parity with tiktoken built from our merges."""

from __future__ import annotations

from collections import Counter

import pytest
import regex

from nlpcurriculum.tokenizers import GPT4_SPLIT_PATTERN, BPEConfig, BPETokenizer, learn_merges
from nlpcurriculum.tokenizers.bpe import rank_merge, replace_surrogates
from nlpcurriculum.tokenizers.bpe_reference import learn_merges_reference

import tiktoken


def naive_merges(words: dict[tuple[int, ...], int], tokens: list[bytes], num: int, min_frequency: int,
                 can_merge=None):
    """The library's textbook trainer (recounts every pair after every merge) on a chunk table."""
    return learn_merges_reference(list(words), list(words.values()), tokens, num, min_frequency,
                                  can_merge).merges


def test_hand_worked_example_matches_docstring():
    tok = BPETokenizer(BPEConfig(min_frequency=1, special_tokens=())).train("aaabdaaabac", 256 + 3)
    assert tok.merges == [(97, 97), (97, 98), (256, 257)]
    assert [tok.token_bytes(i) for i in (256, 257, 258)] == [b"aa", b"ab", b"aaab"]
    assert tok.encode("aaabdaaabac") == [258, ord("d"), 258, ord("a"), ord("c")]  # "XdXac"


@pytest.mark.parametrize("min_frequency", [1, 2])
def test_incremental_trainer_equals_naive_recount(train_text, min_frequency):
    chunks = Counter(regex.findall(GPT4_SPLIT_PATTERN, train_text[:30_000]))
    words = {tuple(c.encode("utf-8")): n for c, n in chunks.items()}
    base = [bytes([i]) for i in range(256)]
    fast = learn_merges(list(words), list(words.values()), base, 300, min_frequency)
    slow = naive_merges(words, base, 300, min_frequency)
    assert len(slow) == 300
    assert fast.merges == slow


def test_overlapping_runs_are_counted_like_the_naive_trainer():
    # "aaaa" runs make (a,a) overlap with itself: the classic source of off-by-one counts.
    text = "aaaa aaa aaaaa ab aaab baaa " * 3
    chunks = Counter(regex.findall(GPT4_SPLIT_PATTERN, text))
    words = {tuple(c.encode()): n for c, n in chunks.items()}
    base = [bytes([i]) for i in range(256)]
    fast = learn_merges(list(words), list(words.values()), base, 8, 1)
    assert fast.merges == naive_merges(words, base, 8, 1)


def test_incremental_trainer_equals_the_reference_with_a_veto():
    # SentencePiece-BPE vetoes pairs (no piece spans two scripts): the fast trainer must skip them
    # exactly as the reference does
    chunks = Counter(("ab1 a1b 12ab b2a2 " * 7 + "abab 1212 ab12ab").split())  # mixed chunks
    words = {tuple(c.encode()): n for c, n in chunks.items()}
    base = [bytes([i]) for i in range(256)]

    def same_kind(x: bytes, y: bytes) -> bool:
        return x.isdigit() == y.isdigit()

    fast = learn_merges(list(words), list(words.values()), base, 20, 1, can_merge=same_kind)
    assert fast.merges == naive_merges(words, base, 20, 1, can_merge=same_kind)
    assert fast.merges != naive_merges(words, base, 20, 1)  # the veto changed something


def test_duplicate_paths_reuse_the_existing_token():
    # "aaa" can be reached as aa+a and a+aa; each byte string must keep a single id.
    tok = BPETokenizer(BPEConfig(min_frequency=1, special_tokens=())).train(["aaa aa a aaaa"] * 5 + [" aaaaa"] * 3, 300)
    contents = [tok.token_bytes(i) for i in range(tok.vocab_size)]
    assert len(set(contents)) == len(contents)


def test_vocab_layout_bytes_then_merges_then_specials(bpe):
    assert bpe.vocab_size == 512
    assert all(bpe.token_bytes(i) == bytes([i]) for i in range(256))
    assert bpe.special_tokens == {"<|endoftext|>": 511}
    assert len(bpe.merges) == 512 - 256 - 1
    # every merged token is the concatenation of the pair it came from
    for k, (a, b) in enumerate(bpe.merges):
        assert bpe.token_bytes(256 + k) == bpe.token_bytes(a) + bpe.token_bytes(b)


def test_matches_tiktoken_with_our_ranks_on_held_out_text(bpe, held_out, unicode_extra):
    enc = tiktoken.Encoding(name="ours", pat_str=bpe.config.pattern, mergeable_ranks=bpe.mergeable_ranks,
                            special_tokens=bpe.special_tokens)
    text = held_out + unicode_extra + " <|endoftext|> tail"
    ours = bpe.encode(text, allowed_special="all")
    assert ours == enc.encode(text, allowed_special="all")
    assert bpe.encode_ordinary(held_out) == enc.encode_ordinary(held_out)
    assert len(ours) < 0.5 * len(text.encode("utf-8"))  # it does compress


SURROGATE_TEXTS = [
    "lone high \ud800 in the middle",
    "lone low \udc00",
    "a pair \ud83d\ude00 (an emoji split in two) and 😀 whole",
    "reversed \ude00\ud83d, doubled high \ud800\ud800\udc00, at the end \udbff",
    "\ud800",
    "specials <|endoftext|>\ud83d<|endoftext|>\ude00 around halves",
    "digits 12\udfff34 and punctuation !!\ud800??",
]


@pytest.mark.parametrize("text", SURROGATE_TEXTS)
def test_surrogates_are_encoded_like_tiktoken(bpe, text):
    enc = tiktoken.Encoding(name="ours", pat_str=bpe.config.pattern, mergeable_ranks=bpe.mergeable_ranks,
                            special_tokens=bpe.special_tokens)
    assert bpe.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    assert bpe.encode_ordinary(text) == enc.encode_ordinary(text)
    assert bpe.encode(text, allowed_special="none") == enc.encode(text, allowed_special=set(), disallowed_special=())
    with pytest.raises(UnicodeEncodeError):
        text.encode("utf-8")  # the case this test is about: UTF-8 cannot hold the text as it is


def test_replace_surrogates_joins_pairs_and_replaces_lone_halves(bpe):
    assert replace_surrogates("a\ud83d\ude00b") == "a😀b"
    assert replace_surrogates("\ud800x\udc00") == "\ufffdx\ufffd"
    assert replace_surrogates("plain é 😀") == "plain é 😀"
    assert bpe.decode(bpe.encode("x\ud800y")) == "x\ufffdy"


def test_exact_round_trip_including_unicode_and_emoji(bpe, held_out, unicode_extra):
    for text in (held_out, unicode_extra, "", " ", "\n\n", "🤗" * 7, "a\u0301\u0302 ﷽ \x00\x01"):
        assert bpe.decode(bpe.encode(text)) == text


def test_special_tokens_are_raised_allowed_or_split(bpe):
    text = "a<|endoftext|>b"
    with pytest.raises(ValueError, match="special token"):
        bpe.encode(text)
    ids = bpe.encode(text, allowed_special="all")
    assert ids.count(511) == 1 and bpe.decode(ids) == text
    as_text = bpe.encode(text, allowed_special="none")
    assert 511 not in as_text and bpe.decode(as_text) == text
    assert bpe.encode(text, allowed_special={"<|endoftext|>"}) == ids
    with pytest.raises(ValueError, match="unknown special"):
        bpe.encode(text, allowed_special={"<|nope|>"})


def test_special_tokens_are_removed_from_training_text():
    text = "hello<|endoftext|>world " * 50
    tok = BPETokenizer().train(text, 300)
    learned = [tok.token_bytes(i) for i in range(256, 256 + len(tok.merges))]
    assert b"hello" in learned and b"world" in learned
    assert not any(b"<" in t or b"|" in t or b"endof" in t for t in learned)


def test_cache_does_not_change_results(bpe, held_out):
    cold = BPETokenizer(BPEConfig(cache_size=0))
    cold._set_state(bpe._get_state())
    assert cold.encode_ordinary(held_out[:20_000]) == bpe.encode_ordinary(held_out[:20_000])
    assert cold._cache == {}


def test_min_frequency_stops_training_early():
    tok = BPETokenizer(BPEConfig(min_frequency=2)).train("abcdef ghijkl", 1000)
    assert tok.vocab_size == 257  # no pair occurs twice: only bytes and the special token


def test_rank_merge_prefers_lowest_rank_then_leftmost():
    ranks = {"ab": 0, "bc": 1, "abc": 2}
    assert rank_merge(list("abc"), ranks) == ["abc"]
    assert rank_merge(list("bcab"), {"ab": 0, "ca": 1}) == ["b", "c", "ab"]
    assert rank_merge(list("aaa"), {"aa": 0}) == ["aa", "a"]  # leftmost first


def test_accepts_an_iterable_of_documents_and_rejects_bytes():
    docs = ["the cat sat", "the cat ran", "the dog sat"] * 20
    a = BPETokenizer().train(docs, 270)
    b = BPETokenizer().train(iter(docs), 270)
    assert a.merges == b.merges
    with pytest.raises(TypeError, match="bytes"):
        BPETokenizer().train(b"raw bytes", 300)
    with pytest.raises(TypeError, match="item 1"):
        BPETokenizer().train(["ok", 3], 300)


def test_bad_config_and_vocab_size_are_rejected():
    with pytest.raises(ValueError, match="regex"):
        BPEConfig(pattern="(")
    with pytest.raises(ValueError, match="duplicates"):
        BPEConfig(special_tokens=("<a>", "<a>"))
    with pytest.raises(ValueError, match="too small"):
        BPETokenizer().train("text", 200)
    with pytest.raises(RuntimeError, match="not trained"):
        BPETokenizer().encode("x")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        BPETokenizer().train("abab abab", 260).decode([10_000])
