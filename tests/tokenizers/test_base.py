"""The shared save/load format: versioned JSON + readable sidecar, and clear errors on bad files."""

from __future__ import annotations

import json

import pytest

from nlpcurriculum.tokenizers import (
    TOKENIZERS,
    BPETokenizer,
    Tokenizer,
    TokenizerFileError,
    UnigramTokenizer,
    WordPieceTokenizer,
    load_tokenizer,
    vocab_sidecar_path,
)

KINDS = ["bpe", "wordpiece", "unigram", "sp_unigram", "sp_bpe"]
SAMPLE = "Round trip: the tokenizer saved and loaded encodes this the same way. Ünïcödé 🤗"


@pytest.mark.parametrize("which", KINDS)
def test_save_then_load_gives_identical_encodings(which, all_tokenizers, held_out, tmp_path):
    tok = all_tokenizers[which]
    path = tok.save(tmp_path / f"{which}.json")
    again = load_tokenizer(path)
    assert type(again) is type(tok)
    assert again.config == tok.config
    assert again.vocab_size == tok.vocab_size
    text = held_out[:20_000] + SAMPLE
    assert again.encode(text) == tok.encode(text)
    assert again.decode(again.encode(text)) == tok.decode(tok.encode(text))
    assert type(tok).load(path).encode(SAMPLE) == tok.encode(SAMPLE)


@pytest.mark.parametrize("which", KINDS)
def test_file_has_versioned_header_and_readable_sidecar(which, all_tokenizers, tmp_path):
    tok = all_tokenizers[which]
    path = tok.save(tmp_path / "tok.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == "nlpcurriculum-tokenizer" and doc["version"] == 1 and doc["kind"] == tok.kind
    side = vocab_sidecar_path(path)
    assert side.name == "tok.json.vocab"
    rows = side.read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("# nlpcurriculum-tokenizer v1") and rows[1] == "id\ttoken\tscore"
    body = [r.split("\t") for r in rows[2:]]
    assert len(body) == tok.vocab_size
    assert [int(r[0]) for r in body] == list(range(tok.vocab_size))
    assert all(len(r) == 3 for r in body)
    assert "\n" not in "".join(r[1] for r in body)  # whitespace tokens are escaped


def test_missing_file_is_a_clear_error(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(TokenizerFileError, match="does not exist") as info:
        load_tokenizer(path)
    assert info.value.path == str(path)


def test_truncated_file_is_a_clear_error(bpe, tmp_path):
    path = bpe.save(tmp_path / "t.json")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(TokenizerFileError, match="truncated or corrupt") as info:
        load_tokenizer(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d.update(format="something-else"), "not an nlpcurriculum-tokenizer file"),
        (lambda d: d.update(version=2), "unsupported format version 2"),
        (lambda d: d.update(kind="morfessor"), "unknown tokenizer kind 'morfessor'"),
        (lambda d: d.pop("state"), "missing or malformed 'state'"),
        (lambda d: d["state"].update(merges=[[1, 2, 3]]), "corrupt 'bpe' tokenizer content"),
        (lambda d: d["state"].update(merges=[[100000, 1]]), "corrupt 'bpe' tokenizer content"),
        (lambda d: d["config"].update(min_frequency=0), "min_frequency"),
        (lambda d: d["config"].update(colour="blue"), "unknown config keys"),
    ],
)
def test_corrupt_content_is_a_clear_error(bpe, tmp_path, mutate, message):
    path = bpe.save(tmp_path / "t.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    mutate(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(TokenizerFileError, match=message):
        load_tokenizer(path)


def test_empty_and_non_utf8_files_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(TokenizerFileError, match="empty"):
        load_tokenizer(empty)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TokenizerFileError, match="UTF-8"):
        load_tokenizer(binary)


def test_loading_the_wrong_kind_is_a_clear_error(bpe, wordpiece, tmp_path):
    path = bpe.save(tmp_path / "bpe.json")
    with pytest.raises(TokenizerFileError, match="holds a 'bpe' tokenizer, not a 'wordpiece' one"):
        WordPieceTokenizer.load(path)
    with pytest.raises(TokenizerFileError, match="not a 'unigram'"):
        UnigramTokenizer.load(path)
    assert isinstance(Tokenizer.load(path), BPETokenizer)


def test_save_refuses_an_untrained_tokenizer_and_config_types_are_checked(tmp_path):
    with pytest.raises(RuntimeError, match="not trained"):
        BPETokenizer().save(tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(TypeError, match="expects a BPEConfig"):
        BPETokenizer(config=object())


def test_registry_lists_every_kind():
    assert set(TOKENIZERS) == {"bpe", "wordpiece", "unigram", "sentencepiece"}
    assert all(cls.kind == kind for kind, cls in TOKENIZERS.items())


def test_loading_by_kind_works_after_importing_only_base(wordpiece, tmp_path):
    # a fresh interpreter that names only `base`: the package's __init__ (run first by Python)
    # has registered every variant, so the file's kind resolves without base importing them
    import subprocess
    import sys

    path = wordpiece.save(tmp_path / "wp.json")
    code = ("from nlpcurriculum.tokenizers.base import load_tokenizer; "
            f"print(type(load_tokenizer({str(path)!r})).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "WordPieceTokenizer"
