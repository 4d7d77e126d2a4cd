"""SentencePiece-style tokenizer: lossless round trip with byte fallback, and compression within
2% of the ``sentencepiece`` library trained on the same text at the same vocabulary size."""

from __future__ import annotations

import pytest

from nlpcurriculum.tokenizers import SentencePieceConfig, SentencePieceTokenizer
from nlpcurriculum.tokenizers.sentencepiece import split_words

import sentencepiece as spm

TOLERANCE = 0.02  # the bound on |ours / theirs - 1| for tokens per byte


def lines(text: str) -> list[str]:
    return [ln for ln in text.split("\n") if ln]


@pytest.fixture(scope="module")
def spm_models(train_text, tmp_path_factory):
    """The reference library trained on the same sentences with matching options."""
    folder = tmp_path_factory.mktemp("spm")
    corpus = folder / "train.txt"
    corpus.write_text("\n".join(lines(train_text)), encoding="utf-8")
    out = {}
    for model_type in ("unigram", "bpe"):
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(folder / model_type), vocab_size=1000, model_type=model_type,
            byte_fallback=True, character_coverage=0.9995, normalization_rule_name="identity",
            remove_extra_whitespaces=False, num_threads=1, minloglevel=2,
        )
        out[model_type] = spm.SentencePieceProcessor(model_file=str(folder / f"{model_type}.model"))
    return out


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_tokens_per_byte_within_two_percent_of_sentencepiece(model_type, spm_models, sp_unigram, sp_bpe, held_out):
    ours_tok = {"unigram": sp_unigram, "bpe": sp_bpe}[model_type]
    ref = spm_models[model_type]
    assert ref.get_piece_size() == ours_tok.vocab_size == 1000
    sentences = lines(held_out)
    n_bytes = sum(len(s.encode("utf-8")) for s in sentences)
    ours = sum(len(ours_tok.encode(s)) for s in sentences) / n_bytes
    theirs = sum(len(ref.encode(s)) for s in sentences) / n_bytes
    # measured on this corpus: unigram ours/theirs = 1.000, bpe = 1.000 (vocab 1000)
    assert abs(ours / theirs - 1) <= TOLERANCE, (ours, theirs)


def test_vocab_layout_matches_sentencepiece(sp_unigram, spm_models):
    ref = spm_models["unigram"]
    assert [ref.id_to_piece(i) for i in range(259)] == sp_unigram.pieces[:259]
    assert sp_unigram.pieces[:4] == ["<unk>", "<s>", "</s>", "<0x00>"]
    shared = set(sp_unigram.pieces) & {ref.id_to_piece(i) for i in range(1000)}
    assert len(shared) > 0.9 * 1000  # the learned vocabularies largely agree


def test_bpe_mode_learns_the_same_pieces_as_sentencepiece(sp_bpe, spm_models):
    ref = spm_models["bpe"]
    theirs = [ref.id_to_piece(i) for i in range(259, 1000)]
    ours = sp_bpe.pieces[259:]
    assert len(set(ours) & set(theirs)) > 0.97 * len(theirs)


@pytest.mark.parametrize("which", ["sp_unigram", "sp_bpe"])
def test_exact_round_trip_with_byte_fallback(which, all_tokenizers, held_out, unicode_extra):
    tok = all_tokenizers[which]
    texts = [held_out, unicode_extra, "", " ", "  two leading", "trailing  ", "\n\nnewlines\n", "literal ▁ marker▁",
             "▁start", "tab\tsep", "🤗", "\x00\x7f", "a" * 300]
    for text in texts:
        assert tok.decode(tok.encode(text)) == text


def test_hand_worked_example_from_the_docstring():
    tok = SentencePieceTokenizer(SentencePieceConfig(model_type="unigram"))
    learned = {"▁Hello": -2.0, "▁wor": -3.0, "ld": -3.0, "▁": -1.0, "H": -5.0, "e": -5.0, "l": -5.0,
               "o": -5.0, "w": -5.0, "r": -5.0, "d": -5.0}
    tok._build(["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + list(learned),
               [0.0] * 259 + list(learned.values()))
    assert split_words("▁Hello▁▁world☃") == ["▁Hello", "▁", "▁world☃"]
    pieces = tok.encode_as_pieces("Hello  world☃")
    assert pieces == ["▁Hello", "▁", "▁wor", "ld", "<0xE2>", "<0x98>", "<0x83>"]
    assert tok.decode(tok.encode("Hello  world☃")) == "Hello  world☃"


def test_unknown_characters_fall_back_to_bytes(sp_unigram):
    ids = sp_unigram.encode("🤗")
    assert [sp_unigram.pieces[i] for i in ids] == ["▁", "<0xF0>", "<0x9F>", "<0xA4>", "<0x97>"]
    assert 0 not in sp_unigram.encode("日本語 🚀 ∑")  # never <unk> with byte fallback


def test_without_byte_fallback_unknowns_become_unk(train_text):
    tok = SentencePieceTokenizer(SentencePieceConfig(byte_fallback=False)).train(train_text[:50_000], 400)
    assert tok.pieces[:3] == ["<unk>", "<s>", "</s>"] and tok.vocab_size == 400
    ids = tok.encode("a 🤗 b")
    assert 0 in ids
    # lossy: <unk> is rendered " ⁇ " (SentencePiece's default unk_surface) after "▁" -> " "
    assert tok.decode(ids) == "a  \u2047  b"


def test_unigram_mode_matches_hf_unigram_with_byte_fallback_word_by_word(sp_unigram, held_out, unicode_extra):
    import tokenizers as hf
    model = hf.models.Unigram([(p, s) for p, s in zip(sp_unigram.pieces, sp_unigram.scores)], unk_id=0,
                              byte_fallback=True)
    words = set(split_words(sp_unigram._escape((held_out + unicode_extra).replace("\n", " "))))
    for word in words:
        assert [t.id for t in model.tokenize(word)] == sp_unigram._encode_word(word, None)


def test_pieces_never_contain_an_inner_marker_or_mix_scripts(sp_unigram, sp_bpe):
    for tok in (sp_unigram, sp_bpe):
        for p in tok.pieces[259:]:
            assert "▁" not in p[1:], p
            assert not (any(c.isalpha() for c in p) and any(c in ".,;:()" for c in p)), p


def test_sample_encode_round_trips_and_is_seeded(sp_unigram, sp_bpe):
    text = "Subword regularization samples a different segmentation each time."
    a = sp_unigram.sample_encode(text, alpha=0.1, rng=7)
    assert sp_unigram.decode(a) == text
    assert a == sp_unigram.sample_encode(text, alpha=0.1, rng=7)
    assert len({tuple(sp_unigram.sample_encode(text, 0.1, -1, seed)) for seed in range(8)}) > 1
    assert sp_unigram.sample_encode(text, alpha=0.1, nbest_size=1) == sp_unigram.encode(text)
    with pytest.raises(ValueError, match="unigram"):
        sp_bpe.sample_encode(text)


def test_training_reads_lines_as_sentences():
    tok = SentencePieceTokenizer(SentencePieceConfig(model_type="bpe")).train("ab ab\nab ab\n" * 20, 259 + 3 + 2)
    assert "\n" not in tok.pieces
    assert tok.decode(tok.encode("ab\nab")) == "ab\nab"


def test_config_is_validated():
    with pytest.raises(ValueError, match="model_type"):
        SentencePieceConfig(model_type="wordpiece")
    with pytest.raises(ValueError, match="character_coverage"):
        SentencePieceConfig(character_coverage=0.0)
    with pytest.raises(ValueError, match="too small"):
        SentencePieceTokenizer().train("hello world", 100)
