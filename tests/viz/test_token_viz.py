"""Token visualizer: spans tile the text, ids match encode(), partial UTF-8 is shown honestly,
and the HTML is self-contained and escaped."""

from __future__ import annotations

import io
import re

import pytest
import tiktoken

from nlpcurriculum.viz import FunctionTokenizer, TokenChunk, render_html, render_terminal, token_chunks

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
TEXT = "The queen <script>alert('x')</script> visited Paris.\nDu café, 你好! 🙂"


@pytest.fixture(scope="module")
def toy_tiktoken() -> tiktoken.Encoding:
    """A tiktoken encoder with all 256 bytes plus a few merges, one of them half of "你"."""
    ranks = {bytes([i]): i for i in range(256)}
    for tok in [b"Th", b"The", b" q", b" qu", b"ee", b" quee", b" queen", b"\xe4\xbd"]:
        ranks[tok] = len(ranks)
    return tiktoken.Encoding("toy", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={})


@pytest.fixture(scope="module")
def bpe():
    from nlpcurriculum.data.synthetic.stories import generate_stories
    from nlpcurriculum.tokenizers import BPETokenizer

    return BPETokenizer().train(" ".join(generate_stories(100, seed=0)), 300)


@pytest.fixture(scope="module")
def sentencepiece_model():
    import sentencepiece as spm
    from nlpcurriculum.data.synthetic.stories import generate_stories

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(generate_stories(300, seed=0)), model_writer=model,
                                   vocab_size=400, byte_fallback=True, character_coverage=1.0,
                                   minloglevel=2)
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


def _check_tiles(text: str, chunks: list[TokenChunk]) -> None:
    assert "".join(c.text for c in chunks) == text
    pos = 0
    for c in chunks:
        assert c.start == pos and c.text == text[c.start : c.end]
        pos = c.end
    assert pos == len(text)


def test_byte_level_chunks_tile_text_and_ids_match(toy_tiktoken):
    chunks = token_chunks(TEXT, toy_tiktoken)
    _check_tiles(TEXT, chunks)
    assert [c.id for c in chunks] == toy_tiktoken.encode(TEXT)
    assert chunks[0].text == "The" and chunks[1].text == " queen"


def test_split_utf8_character_gets_empty_span_and_hex_display(toy_tiktoken):
    text = "你"  # e4 bd a0; the toy vocabulary has "e4 bd" but not the whole character
    chunks = token_chunks(text, toy_tiktoken)
    assert [toy_tiktoken.decode_single_token_bytes(c.id) for c in chunks] == [b"\xe4\xbd", b"\xa0"]
    assert [(c.text, c.start, c.end) for c in chunks] == [("", 0, 0), ("你", 0, 1)]
    shown = render_terminal(text, toy_tiktoken, color=False).splitlines()[1]
    assert shown == r"\xe4\xbd|\xa0"
    page = render_html(text, {"toy": toy_tiktoken})
    assert r"\xe4\xbd" in page and "partial" in page and "\ufffd" not in page


def test_hand_worked_example_from_docstring():
    pieces = [b"hi", b" \xe4\xbd", b"\xa0"]
    tok = FunctionTokenizer(lambda t: [0, 1, 2], lambda i: pieces[i])
    chunks = token_chunks("hi 你", tok)
    assert [(c.start, c.end) for c in chunks] == [(0, 2), (2, 3), (3, 4)]


def test_project_bpe_tokenizer(bpe):
    text = "Once upon a time, the queen found 3 coins. 你好 🙂"
    chunks = token_chunks(text, bpe)
    _check_tiles(text, chunks)
    assert [c.id for c in chunks] == bpe.encode(text)


@pytest.mark.parametrize("text", ["Hello world 你好 the king.", "Hello  world\n the   king.", " The queen"])
def test_sentencepiece_chunks_tile_text(sentencepiece_model, text):
    chunks = token_chunks(text, sentencepiece_model)
    _check_tiles(text, chunks)
    assert [c.id for c in chunks] == sentencepiece_model.encode(text)
    pieces = [sentencepiece_model.id_to_piece(c.id) for c in chunks]
    for c, p in zip(chunks, pieces):  # a word piece covers its own text (after ▁ -> space)
        if not p.startswith("<0x") and p.strip("\u2581"):
            assert c.text.lower().endswith(p.replace("\u2581", " ").lower().lstrip(" "))


def test_sentencepiece_byte_fallback_shows_byte_pieces(sentencepiece_model):
    text = "the 你"
    shown = render_terminal(text, sentencepiece_model, color=False).splitlines()[1].split("|")
    assert shown[-3:] == ["<0xE4>", "<0xBD>", "<0xA0>"]
    assert [c.text for c in token_chunks(text, sentencepiece_model)][-3:] == ["", "", "你"]


def test_wordpiece_like_pieces_with_unknown_and_markers():
    pieces = ["[CLS]", "the", "qu", "##een", "[UNK]", "!", "[SEP]"]
    tok = FunctionTokenizer(lambda t: list(range(len(pieces))), lambda i: pieces[i])
    text = "The queen 你好!"
    chunks = token_chunks(text, tok)
    _check_tiles(text, chunks)
    assert [c.text for c in chunks] == ["", "The", " qu", "een", " 你好", "!", ""]


def test_huggingface_offsets_are_used():
    import tokenizers
    from tokenizers import models, normalizers, pre_tokenizers, trainers

    tk = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.train_from_iterator(["the queen visited the king", "hello world"] * 20,
                           trainers.WordPieceTrainer(vocab_size=60, special_tokens=["[UNK]"]))
    text = "The Queen  visited"
    enc = tk.encode(text)
    chunks = token_chunks(text, tk)
    assert [c.id for c in chunks] == enc.ids
    assert [(c.start, c.end) for c in chunks] == [tuple(o) for o in enc.offsets]
    assert chunks[0].text == "The"


def test_html_is_escaped_self_contained_and_side_by_side(toy_tiktoken, bpe):
    page = render_html(TEXT, {"toy <tiktoken>": toy_tiktoken, "bpe": bpe})
    assert "<script" not in page.lower()
    assert "&lt;" in page
    assert "&lt;tiktoken&gt;" in page
    assert not re.search(r"(src|href)\s*=|https?://|@import", page)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    n_tik, n_bpe = len(toy_tiktoken.encode(TEXT)), len(bpe.encode(TEXT))
    assert f"({n_tik} tokens)" in page and f"({n_bpe} tokens)" in page
    assert "repeat(2, minmax(0, 1fr))" in page
    # every id appears below its token
    ids_shown = re.findall(r'<span class="i">(\d+)</span>', page)
    assert ids_shown == [str(i) for i in toy_tiktoken.encode(TEXT) + bpe.encode(TEXT)]


def test_terminal_rendering(toy_tiktoken):
    out = render_terminal("The queen\nsat", toy_tiktoken)
    assert "\x1b[48;5;" in out and out.endswith("\n")
    ids = toy_tiktoken.encode("The queen\nsat")
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out).splitlines()
    assert plain[0] == f"{len(ids)} tokens, 13 characters"
    assert plain[1] == "The queen\u21b5" and plain[2] == "sat"
    assert plain[3].split() == [str(i) for i in ids]
    no_colour = render_terminal("The queen", toy_tiktoken, color=False)
    assert "\x1b" not in no_colour and no_colour.splitlines()[1] == "The| queen"


def test_bad_tokenizers_raise_clear_errors():
    with pytest.raises(TypeError, match="no encode"):
        token_chunks("x", object())

    class OnlyEncode:
        def encode(self, text):
            return [1]

    with pytest.raises(TypeError, match="per-id text function"):
        token_chunks("x", OnlyEncode())
    with pytest.raises(ValueError, match="at least one tokenizer"):
        render_html("x", {})


def test_a_long_token_stays_inside_its_column_in_chromium(tmp_path, bpe):
    """A WordPiece [UNK] covers a whole unknown word; a 135-character one used to overflow its
    box across the next columns. It wraps inside its own column now."""
    from tests.browser import offline_page

    word = "Pneumonoultramicroscopicsilicovolcanoconiosis" * 3
    text = f"the queen {word} said hello"
    pieces = ["the", "qu", "##een", "[UNK]", "said", "hello"]
    wordpiece = FunctionTokenizer(lambda t: list(range(len(pieces))), lambda i: pieces[i])
    assert max(len(c.text) for c in token_chunks(text, wordpiece)) > 130
    page = tmp_path / "tokens.html"
    page.write_text(render_html(text, {"WordPiece": wordpiece, "BPE": bpe, "BPE again": bpe, "BPE 3": bpe}))
    with offline_page(page, width=1000) as view:
        overflow = view.page.evaluate("""() => [...document.querySelectorAll('section')].map(s => {
            const edge = s.getBoundingClientRect().right;
            return [...s.querySelectorAll('.tok')].filter(t => t.getBoundingClientRect().right > edge).length;
        })""")
        longest = view.page.locator("section").first.locator(".tok .t", has_text=word[:50])
        assert longest.bounding_box()["height"] > 2 * view.page.locator(".tok .t").first.bounding_box()["height"]
    assert overflow == [0, 0, 0, 0]
