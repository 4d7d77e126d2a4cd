"""Token streams: every kind has an end-of-text id, encode_documents joins documents with it, and
save_tokens/load_tokens round-trip while every kind of damage to the folder fails clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nlpcurriculum.tokenizers import (
    EOS_TOKENS,
    BPETokenizer,
    TokenizerSpec,
    TokensFileError,
    UnigramTokenizer,
    build_tokenizer,
    encode_documents,
    eos_id,
    load_tokens,
    save_tokens,
    train_tokenizer,
)
from nlpcurriculum.tokenizers.corpus import take_chars

DOCS = ["The cat sat on the mat.", "A dog, a log; and 42 frogs!", "Naïve café — 日本"]
SIZES = {"bpe": 300, "wordpiece": 200, "unigram": 200, "sentencepiece": 400}


@pytest.fixture(scope="module")
def small_text(train_text) -> list[str]:
    return [train_text[i : i + 2_000] for i in range(0, 30_000, 2_000)]


@pytest.fixture(scope="module")
def trained(small_text) -> dict:
    return {kind: train_tokenizer(TokenizerSpec(kind=kind, vocab_size=size), small_text)
            for kind, size in SIZES.items()}


@pytest.fixture(scope="module")
def bpe_small(trained) -> BPETokenizer:
    return trained["bpe"]


@pytest.mark.parametrize("kind", sorted(SIZES))
def test_every_kind_has_its_end_of_text_token(kind, trained):
    tok = trained[kind]
    eos = eos_id(tok)
    assert tok.id_to_token(eos) == EOS_TOKENS[kind]
    assert 0 <= eos < tok.vocab_size
    # text never produces it, even when the document spells it out
    docs = [f"see {EOS_TOKENS[kind]} here"] + DOCS
    assert int((encode_documents(tok, docs) == eos).sum()) == len(docs)


@pytest.mark.parametrize("kind", sorted(SIZES))
def test_encode_documents_is_each_encoding_followed_by_eos(kind, trained):
    tok = trained[kind]
    eos = eos_id(tok)
    stream = encode_documents(tok, DOCS)
    assert stream.dtype == np.int32 and stream.ndim == 1
    expected = []
    for doc in DOCS:
        ids = tok.encode_ordinary(doc) if kind == "bpe" else tok.encode(doc)
        expected += ids + [eos]
    assert stream.tolist() == expected
    assert int((stream == eos).sum()) == len(DOCS)
    assert encode_documents(tok, []).shape == (0,)


def test_bpe_stream_decodes_back_to_the_documents(bpe_small):
    stream = encode_documents(bpe_small, DOCS)
    text = bpe_small.decode(stream.tolist())
    assert text == "<|endoftext|>".join(DOCS) + "<|endoftext|>"


def test_library_default_unigram_has_no_eos_and_says_so(small_text):
    tok = UnigramTokenizer().train(small_text, 200)
    with pytest.raises(ValueError, match="no special '</s>' token.*build_tokenizer"):
        eos_id(tok)


def test_spec_validation_and_builder():
    with pytest.raises(ValueError, match="kind must be one of"):
        TokenizerSpec(kind="char")
    with pytest.raises(ValueError, match="max_train_chars"):
        TokenizerSpec(max_train_chars=-1)
    assert build_tokenizer(TokenizerSpec(kind="unigram")).config.special_tokens == ("<unk>", "</s>")
    assert build_tokenizer(TokenizerSpec(kind="sentencepiece", model_type="bpe")).config.model_type == "bpe"


def test_take_chars_cuts_at_the_limit():
    assert take_chars(["abc", "defg", "hi"], 0) == ["abc", "defg", "hi"]
    assert take_chars(["abc", "defg", "hi"], 5) == ["abc", "de"]
    assert take_chars(["abc", "defg"], 7) == ["abc", "defg"]
    assert take_chars(["abcdef"], 2) == ["ab"]


def test_max_train_chars_limits_training(small_text):
    short = train_tokenizer(TokenizerSpec(kind="bpe", vocab_size=400, max_train_chars=500), small_text)
    full = train_tokenizer(TokenizerSpec(kind="bpe", vocab_size=400), small_text)
    assert short.vocab_size < full.vocab_size == 400  # 500 chars cannot support 143 merges


# ----------------------------------------------------------------------------- files
@pytest.fixture
def saved(tmp_path, bpe_small):
    arrays = {"train": encode_documents(bpe_small, DOCS * 3), "val": encode_documents(bpe_small, DOCS[:1])}
    folder = tmp_path / "tokens"
    meta = save_tokens(folder, arrays, kind="bpe", vocab_size=bpe_small.vocab_size, eos_id=eos_id(bpe_small))
    return folder, arrays, meta


def test_save_and_load_round_trip(saved, bpe_small):
    folder, arrays, meta = saved
    loaded, meta2 = load_tokens(folder)
    assert meta2 == meta == {"format": "nlpcurriculum-tokens", "version": 1, "kind": "bpe",
                             "vocab_size": bpe_small.vocab_size, "eos_id": eos_id(bpe_small),
                             "n_tokens": {"train": len(arrays["train"]), "val": len(arrays["val"])}}
    for split, arr in arrays.items():
        assert np.array_equal(loaded[split], arr) and loaded[split].dtype == np.int32
    only_val, _ = load_tokens(folder, splits=["val"], mmap=True)
    assert list(only_val) == ["val"] and np.array_equal(only_val["val"], arrays["val"])
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "train.npy", "val.npy"]


def test_save_refuses_bad_arrays(tmp_path):
    with pytest.raises(ValueError, match="dtype is int64"):
        save_tokens(tmp_path / "t", {"train": np.array([1, 2, 0])}, kind="bpe", vocab_size=10, eos_id=0)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        save_tokens(tmp_path / "t", {"train": np.array([1, 12, 0], np.int32)}, kind="bpe", vocab_size=10, eos_id=0)
    assert not (tmp_path / "t").exists()


def _rewrite_meta(folder, **changes):
    meta = json.loads((folder / "meta.json").read_text())
    meta.update(changes)
    (folder / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (lambda f: (f / "meta.json").unlink(), FileNotFoundError, "token metadata not found"),
        (lambda f: (f / "val.npy").unlink(), FileNotFoundError, "val.npy: token file not found"),
        (lambda f: (f / "meta.json").write_text('{"format": "nlpcurr'), TokensFileError, "not valid JSON"),
        (lambda f: _rewrite_meta(f, format="other"), TokensFileError, "not an nlpcurriculum-tokens file"),
        (lambda f: _rewrite_meta(f, version=2), TokensFileError, "unsupported version 2"),
        (lambda f: _rewrite_meta(f, eos_id=10**6), TokensFileError, "eos_id 1000000 is outside"),
        (lambda f: _rewrite_meta(f, n_tokens={"train": 5, "val": 7}), TokensFileError, "but meta.json says 5"),
        (lambda f: (f / "train.npy").write_bytes((f / "train.npy").read_bytes()[:100]), TokensFileError,
         "not a readable .npy array"),
        (lambda f: np.save(f / "train.npy", np.load(f / "train.npy").astype(np.int64)), TokensFileError,
         "dtype is int64, expected int32"),
        (lambda f: np.save(f / "train.npy", np.load(f / "train.npy").reshape(-1, 1)), TokensFileError,
         "expected 1-D"),
        (lambda f: np.save(f / "train.npy", np.load(f / "train.npy")[:-1]), TokensFileError,
         "does not end with eos_id"),
        (lambda f: np.save(f / "train.npy", np.load(f / "train.npy") + 10_000), TokensFileError,
         "outside the vocabulary"),
        (lambda f: np.save(f / "train.npy", np.array([object()]), allow_pickle=True), TokensFileError,
         "not a readable .npy array"),
    ],
    ids=["no-meta", "no-split-file", "truncated-meta", "wrong-format", "wrong-version", "bad-eos",
         "length-mismatch", "truncated-npy", "wrong-dtype", "wrong-shape", "no-final-eos", "ids-out-of-range",
         "pickled-objects"],
)
def test_load_fails_clearly_on_damaged_folders(saved, damage, error, message):
    folder, _, _ = saved
    damage(folder)
    with pytest.raises(error, match=message) as info:
        load_tokens(folder)
    assert str(folder) in str(info.value)


def test_load_names_a_missing_folder_and_unknown_split(tmp_path, saved):
    with pytest.raises(FileNotFoundError, match="token folder not found.*tokenizer"):
        load_tokens(tmp_path / "nowhere")
    with pytest.raises(TokensFileError, match="has no split 'test'"):
        load_tokens(saved[0], splits=["test"])
