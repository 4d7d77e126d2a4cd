"""WordPiece: the likelihood-score trainer, BERT normalisation/pre-tokenisation, and parity with
``tokenizers.models.WordPiece`` given our vocabulary."""

from __future__ import annotations

import pytest

import unicodedata

from nlpcurriculum.tokenizers import WordPieceConfig, WordPieceTokenizer, bert_normalize, bert_pre_tokenize
from nlpcurriculum.tokenizers import wordpiece as wp
from nlpcurriculum.tokenizers.wordpiece import (
    HF_DIFFERENCE_RANGES,
    HF_DIFFERENCES,
    HF_DIFFERENCES_MEASURED_WITH,
    _learn_wordpiece_merges,
    expected_hf_differences,
    lowercase_per_character,
    scan_hf_differences,
)

import tokenizers as hf
from tokenizers import models, normalizers, pre_tokenizers  # noqa: E402

TRICKY = [
    "Hello, World! It's 3.14-ish; (x+y)*z == $5 @home #tag ~ok",
    "Ünïcödé ÀÉÎÕÜ straße ǅ ﬁ İstanbul",
    "中文字符和日本語のかな 한국어",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u3000ideographic\u2009thin",
    "control\x00chars\x07and\ufffdreplacement\u200bzero-width\u200dzwj",
    "“curly” ‘quotes’ — dashes … ellipsis ¿¡ «guillemets» ‽ ⁂",
    "emoji 🤗🚀 and symbols ∑ ± © ® ™ € ¥",
    "ΟΔΟΣ ΣΟΦΟΣ, Σ. ΑΣ",  # final sigmas: lowercased one character at a time, as tokenizers does
    "unassigned \u0378\U000e0000 newer emoji \U0001fa75\U0001f6dc private \ue000\U000f0000 tags \U000e0041",
]


def hf_wordpiece(tok: WordPieceTokenizer) -> hf.Tokenizer:
    c = tok.config
    t = hf.Tokenizer(models.WordPiece(vocab=tok.get_vocab(), unk_token=c.unk_token,
                                      max_input_chars_per_word=c.max_input_chars_per_word))
    t.normalizer = normalizers.BertNormalizer(clean_text=c.clean_text, handle_chinese_chars=c.handle_chinese_chars,
                                              strip_accents=c.strip_accents, lowercase=c.lowercase)
    t.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return t


def naive_wordpiece(words: dict[str, int], vocab_size: int, min_frequency: int) -> list[str]:
    """Recompute every score from scratch after every merge (the slow reference)."""
    from collections import Counter

    units = ["[UNK]"] + sorted({w[0] for w in words} | {"##" + c for w in words for c in w[1:]})
    uid = {u: i for i, u in enumerate(units)}
    split = {w: [uid[w[0]]] + [uid["##" + c] for c in w[1:]] for w in words}
    while len(units) < vocab_size:
        uc, pc = Counter(), Counter()
        for w, f in words.items():
            s = split[w]
            for u in s:
                uc[u] += f
            for p in zip(s, s[1:]):
                pc[p] += f
        pairs = [p for p in pc if pc[p] >= min_frequency]
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-(pc[p] / (uc[p[0]] * uc[p[1]])), p))
        merged = units[best[0]] + units[best[1]][2:]
        z = uid.get(merged)
        if z is None:
            z = uid[merged] = len(units)
            units.append(merged)
        for w in words:
            s, out, i = split[w], [], 0
            while i < len(s):
                if i < len(s) - 1 and (s[i], s[i + 1]) == best:
                    out.append(z)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            split[w] = out
    return units


def test_hand_worked_example_merges_the_rare_pair_first():
    text = " ".join(["hug"] * 10 + ["pug"] * 5 + ["pun"] * 12 + ["bun"] * 4 + ["hugs"] * 5)
    cfg = WordPieceConfig(min_frequency=1, special_tokens=("[UNK]",))
    tok = WordPieceTokenizer(cfg).train(text, 1 + 7 + 2)  # [UNK] + alphabet + two merges
    assert tok.vocab[-2:] == ["##gs", "##ug"]  # 1/20 beats 1/36; then the smallest tied pair


def test_incremental_trainer_equals_naive_recount(train_text):
    from collections import Counter

    words = Counter(bert_pre_tokenize(bert_normalize(train_text[:20_000])))
    for min_frequency in (1, 2):
        expected = naive_wordpiece(dict(words), 400, min_frequency)
        units = ["[UNK]"] + sorted({w[0] for w in words} | {"##" + c for w in words for c in w[1:]})
        uid = {u: i for i, u in enumerate(units)}
        seqs = [[uid[w[0]]] + [uid["##" + c] for c in w[1:]] for w in words]
        got = _learn_wordpiece_merges(seqs, list(words.values()), units, uid, 400, min_frequency, "##")
        assert got == expected


@pytest.mark.parametrize("text", TRICKY)
@pytest.mark.parametrize("lowercase", [True, False])
def test_normalizer_and_pre_tokenizer_match_bert(text, lowercase):
    ref = normalizers.BertNormalizer(lowercase=lowercase)
    assert bert_normalize(text, lowercase=lowercase) == ref.normalize_str(text)
    words = [w for w, _ in pre_tokenizers.BertPreTokenizer().pre_tokenize_str(ref.normalize_str(text))]
    assert bert_pre_tokenize(ref.normalize_str(text)) == words


def test_matches_hf_wordpiece_on_held_out_text(wordpiece, held_out, unicode_extra):
    text = held_out + "\n".join(TRICKY) + unicode_extra
    ours = wordpiece.encode(text)
    assert ours == hf_wordpiece(wordpiece).encode(text, add_special_tokens=False).ids
    assert wordpiece.token_to_id("[UNK]") in ours  # the check covered unknown words too


def test_matches_hf_wordpiece_cased(train_text, held_out):
    tok = WordPieceTokenizer(WordPieceConfig(lowercase=False)).train(train_text, 500)
    assert tok.encode(held_out) == hf_wordpiece(tok).encode(held_out, add_special_tokens=False).ids


def test_greedy_longest_match_and_unknown_words():
    cfg = WordPieceConfig(special_tokens=("[UNK]",), max_input_chars_per_word=8)
    tok = WordPieceTokenizer(cfg)
    tok._build(["[UNK]", "un", "unaff", "##aff", "##able", "##a", "##ff", "a", "b", "##b"])
    assert [tok.vocab[i] for i in tok.encode("unaffable")] == ["[UNK]"]  # 9 chars > 8
    tok = WordPieceTokenizer(WordPieceConfig(special_tokens=("[UNK]",)))
    tok._build(["[UNK]", "un", "unaff", "##aff", "##able", "##a", "##ff", "a", "b", "##b"])
    assert [tok.vocab[i] for i in tok.encode("unaffable")] == ["unaff", "##able"]
    assert [tok.vocab[i] for i in tok.encode("unable abb ax")] == ["un", "##able", "a", "##b", "##b", "[UNK]"]


def test_decode_joins_continuations_and_round_trips_to_canonical_form(wordpiece, held_out):
    unk = wordpiece.token_to_id("[UNK]")
    ids = wordpiece.encode(held_out)
    expected = " ".join(
        w if wordpiece.encode(w) != [unk] else "[UNK]" for w in wordpiece.pre_tokenize(held_out)
    )
    assert wordpiece.decode(ids) == expected
    assert wordpiece.decode(wordpiece.encode("Hello, World!")) == wordpiece.canonical("Hello, World!") == "hello , world !"


def test_vocab_has_specials_first_and_exact_size(wordpiece):
    assert wordpiece.vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert wordpiece.vocab_size == 600
    assert len(set(wordpiece.vocab)) == 600
    assert any(t.startswith("##") and len(t) > 3 for t in wordpiece.vocab)


def test_config_is_validated():
    with pytest.raises(ValueError, match="unk_token"):
        WordPieceConfig(unk_token="<unk>")
    with pytest.raises(ValueError, match="max_input_chars_per_word"):
        WordPieceConfig(max_input_chars_per_word=0)
    with pytest.raises(ValueError, match="too small"):
        WordPieceTokenizer().train("some text with letters", 10)


# ---------------------------------------------------------------------- all of Unicode
def test_scan_of_all_unicode_finds_exactly_the_documented_differences():
    # The default options bring every documented cause into play (about 10 s).
    versions = {"tokenizers": hf.__version__, "unicodedata": unicodedata.unidata_version}
    found = set(scan_hf_differences(WordPieceConfig()))
    expected = expected_hf_differences(WordPieceConfig())
    assert found == expected, (
        f"undocumented: {sorted(f'{c:04X}' for c in found - expected)[:20]}, "
        f"no longer differing: {sorted(f'{c:04X}' for c in expected - found)[:20]}; "
        f"HF_DIFFERENCES was measured with {HF_DIFFERENCES_MEASURED_WITH}, this run has {versions}: "
        "run benchmarks/scan_wordpiece_unicode.py and update the module docstring and HF_DIFFERENCE_RANGES"
    )


@pytest.mark.parametrize("config", [
    WordPieceConfig(lowercase=False),
    WordPieceConfig(lowercase=True, strip_accents=False, clean_text=False),
    WordPieceConfig(lowercase=False, strip_accents=True, handle_chinese_chars=False),
], ids=["cased", "uncased-accents-kept-no-clean", "cased-accents-stripped"])  # fmt: skip
def test_each_option_set_differs_only_where_its_causes_apply(config):
    # Every documented code point plus the BMP's first rows: the options switch causes on and off.
    domain = sorted(set().union(*HF_DIFFERENCES.values()) | set(range(0x3000)))
    assert set(scan_hf_differences(config, domain)) == expected_hf_differences(config) & set(domain)


def test_documented_differences_by_option():
    assert len(expected_hf_differences()) == 559
    cased = expected_hf_differences(WordPieceConfig(lowercase=False))
    assert cased == HF_DIFFERENCES["punctuation"] | HF_DIFFERENCES["format"]
    cfg = WordPieceConfig(lowercase=False, strip_accents=True, clean_text=False)
    assert expected_hf_differences(cfg) == HF_DIFFERENCES["punctuation"] | HF_DIFFERENCES["accents"]
    assert {len(v) for v in HF_DIFFERENCES.values()} == {106, 13, 55, 385}
    assert 0x2E43 in HF_DIFFERENCES["punctuation"] and 0x0898 in HF_DIFFERENCES["accents"]


def test_module_docstring_lists_every_documented_range():
    doc = " ".join(wp.__doc__.split())
    for cause, ranges in HF_DIFFERENCE_RANGES.items():
        assert f"Code points: {ranges}." in doc, cause
        assert f"**{cause}** ({len(HF_DIFFERENCES[cause])}," in doc


def test_scan_reports_a_difference_it_is_shown(monkeypatch):
    # Our pre-tokeniser made to miss "!" and our normaliser made to drop "q": the scan must see both.
    real_normalize, real_pre_tokenize = wp.bert_normalize, wp.bert_pre_tokenize
    monkeypatch.setattr(wp, "bert_normalize", lambda text, **kw: real_normalize(text, **kw).replace("q", ""))
    monkeypatch.setattr(wp, "bert_pre_tokenize", lambda text: [w for w in real_pre_tokenize(text) if w != "!"])
    assert scan_hf_differences(code_points=range(0x20, 0x80), chunk=16) == [ord("!"), ord("Q"), ord("q")]


def test_lowercase_is_per_character_everywhere():
    text = "".join(chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)
    assert lowercase_per_character(text) == "".join(c.lower() for c in text)
    assert lowercase_per_character("ΟΔΟΣ ΑΣ.") == "οδοσ ασ." != "ΟΔΟΣ ΑΣ.".lower()
    assert bert_normalize("ΟΔΟΣ") == normalizers.BertNormalizer().normalize_str("ΟΔΟΣ")


def test_unassigned_code_points_are_kept_and_encode_as_unknown(wordpiece):
    # Cn is not a "control" character: tokenizers keeps it, so the word is [UNK] in both.
    text = "a \u0378 b \U000e0000 c \U0001fa75"
    assert bert_normalize(text) == text
    assert bert_normalize("x\ue000\U000f0000\u00ad\x07y") == "xy"  # Co, Cf and Cc are dropped
    unk = wordpiece.token_to_id("[UNK]")
    ours = wordpiece.encode(text)
    assert ours.count(unk) == 3
    assert ours == hf_wordpiece(wordpiece).encode(text, add_special_tokens=False).ids

