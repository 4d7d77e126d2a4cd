"""Heuristic quality filters: every rule fires with its reason code, clean prose passes."""

from __future__ import annotations

import time

import numpy as np
import pytest

from nlpcurriculum.data.filters import (
    KEEP,
    C4PageFilter,
    FilterResult,
    QualityFilterConfig,
    Reason,
    apply_filters,
    build_filters,
    duplicate_ngram_char_fraction,
    filter_document,
    top_ngram_char_fraction,
)
from nlpcurriculum.data.synthetic.base import make_paragraph


@pytest.fixture(scope="module")
def clean() -> list[str]:
    rng = np.random.default_rng(0)
    return [make_paragraph(rng, 12) for _ in range(50)]


def _prose(n_sentences: int = 12, seed: int = 1) -> str:
    return make_paragraph(np.random.default_rng(seed), n_sentences)


def test_clean_prose_passes_every_rule(clean):
    report = apply_filters(clean)
    assert report.keep.all() and report.counts == {"kept": len(clean)}
    assert report.reasons == [None] * len(clean)


@pytest.mark.parametrize(
    "doc,reason",
    [
        ("", Reason.EMPTY),
        (" \n\t ", Reason.EMPTY),
        ("The cat sat with the dog.", Reason.TOO_SHORT),
        ("the and of " + "x " * 200, Reason.MEAN_WORD_LENGTH),
        ("the and " + "supercalifragilistic " * 60, Reason.MEAN_WORD_LENGTH),
        (_prose() + " #tag" * 30, Reason.SYMBOL_RATIO),
        ("\n".join(f"- bullet item number {i} with the words of a list" for i in range(60)),
         Reason.BULLET_LINES),
        ("\n".join(f"line {i} of the text that trails off..." for i in range(30)),
         Reason.SYMBOL_RATIO),
        ("the and with " + " ".join("1234" for _ in range(60)), Reason.FEW_ALPHA_WORDS),
        ("the and with " + " ".join("ab12" for _ in range(60)), Reason.NON_ALPHA_CHARS),
        (" ".join(f"word{'abcdefghij'[i % 10]}x" for i in range(80)), Reason.NO_STOP_WORDS),
        ("\n".join([_prose(1, i) for i in range(5)] * 3 + [_prose(8, 99)]), Reason.DUPLICATE_LINES),
        (_prose(12) + " " + " ".join(["the river runs"] * 20), Reason.TOP_NGRAM),
        (_prose(10, 3) + " " + _prose(4, 4) + " " + _prose(4, 4), Reason.DUPLICATE_NGRAM),
        (_prose() + " Lorem ipsum dolor sit amet.", Reason.LOREM_IPSUM),
        (_prose() + " function f() { return 1; }", Reason.CURLY_BRACKET),
        ("\ufffd" * 5 + _prose(), Reason.REPLACEMENT_CHARS),
    ],
)
def test_each_rule_drops_with_its_reason(doc, reason):
    result = filter_document(doc, build_filters())
    assert result == FilterResult(False, reason)


def test_ellipsis_lines_rule_with_symbol_rule_relaxed():
    doc = "\n".join(f"line {i} of the text that trails off and the end..." for i in range(30))
    rules = build_filters(QualityFilterConfig(max_symbol_word_ratio=1.0))
    assert filter_document(doc, rules) == FilterResult(False, Reason.ELLIPSIS_LINES)


def test_repetition_fractions_hand_example():
    words = "a b a b a b".split()
    # "a b" occurs 3 times, 2 characters each, over 6 word characters.
    assert top_ngram_char_fraction(words, 2) == pytest.approx(1.0)
    # Both 5-grams occur once: nothing is covered by a repeated 5-gram.
    assert duplicate_ngram_char_fraction(words, 5) == 0.0
    # "x y z" twice in 7 words: the six words it covers carry 6 of 7 characters.
    assert duplicate_ngram_char_fraction("x y z q x y z".split(), 3) == pytest.approx(6 / 7)
    assert top_ngram_char_fraction([], 2) == 0.0


def test_counts_per_reason_add_up(clean):
    docs = clean[:10] + ["", "", "too short"] + [clean[0].encode() + b" \xff\xfe" * 40]
    report = apply_filters(docs)
    assert report.counts == {"kept": 10, "empty": 2, "invalid_utf8": 1, "too_short": 1}
    assert sum(report.counts.values()) == len(docs)
    assert report.keep.tolist() == [True] * 10 + [False] * 4


def test_invalid_utf8_bytes_are_decoded_not_crashing():
    doc = (_prose() + " and one bad byte").encode() + b"\xff"
    # One replacement character in ~500 (0.2% < 1%) is tolerated.
    assert filter_document(doc, build_filters()) == KEEP


def test_50mb_document_is_rejected_without_tokenising():
    doc = "word " * 10_500_000  # 52.5 MB
    t0 = time.perf_counter()
    result = filter_document(doc, build_filters())
    assert result == FilterResult(False, Reason.TOO_LONG)
    assert time.perf_counter() - t0 < 1.0


def test_all_duplicate_corpus_is_filtered_consistently(clean):
    report = apply_filters([clean[0]] * 200)
    assert report.keep.all()  # filters judge documents one by one; dedup removes the copies


def test_filter_result_requires_a_reason_exactly_when_dropped():
    with pytest.raises(ValueError):
        FilterResult(False)
    with pytest.raises(ValueError):
        FilterResult(True, "empty")
    assert C4PageFilter()("plain text") == KEEP


@pytest.mark.parametrize("kwargs", [{"min_words": 10, "max_words": 5}, {"min_alpha_word_frac": 1.5},
                                    {"top_ngram_max": {2: 2.0}}, {"max_chars": 0}])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        QualityFilterConfig(**kwargs)
