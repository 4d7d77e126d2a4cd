"""The token visualizer item: sample paragraphs (turns between sources, skips headings, cuts at a
word boundary) and the item's checked findings."""

from __future__ import annotations

import pytest

from nlpcurriculum.experiments.tokenization_and_embeddings.token_viz import (
    ITEMS,
    UNSEEN_TEXTS,
    Inputs,
    TokenVizConfig,
    chunks_show_decode,
    run,
    sample_paragraphs,
    token_viz_item,
)
from tests.viz.test_token_viz import TEXT, bpe, toy_tiktoken  # noqa: F401  (the visualizer tests' text and fixtures)

LONG = "word " * 100  # 500 characters


def test_takes_turns_between_groups_and_skips_short_paragraphs():
    groups = {
        "a": ["Heading\n*******\n\n" + "alpha " * 30, "alpha two " * 20],
        "b": ["beta " * 30],
    }
    out = sample_paragraphs(groups, 3, max_chars=300)
    assert [s.split()[0] for s in out] == ["alpha", "beta", "alpha"]
    assert not any("Heading" in s for s in out)


def test_a_corpus_of_short_texts_shows_each_documents_longest_paragraph():
    """A user's corpus may have no paragraph of 120 characters: show what there is."""
    groups = {"a": ["Title\n\nA short note, longer than its title."], "b": ["Kurz.", "  "]}
    assert sample_paragraphs(groups, 3) == ["A short note, longer than its title.", "Kurz."]
    long_and_short = {"a": ["short one", "tiny " + LONG]}  # one long paragraph: only it is shown
    assert sample_paragraphs(long_and_short, 2) == [sample_paragraphs({"a": ["tiny " + LONG]}, 1)[0]]


def test_cuts_at_the_last_space_before_the_limit():
    (sample,) = sample_paragraphs({"a": [LONG]}, 1, max_chars=203)
    assert len(sample) <= 203 and sample.endswith("word") and LONG.startswith(sample)


def test_returns_what_there_is_and_fails_clearly_when_nothing_fits():
    assert len(sample_paragraphs({"a": [LONG, LONG]}, 5)) == 2
    with pytest.raises(ValueError, match="no document has a non-blank paragraph"):
        sample_paragraphs({"a": ["  \n\n "]}, 1)
    with pytest.raises(ValueError, match="n must be >= 1"):
        sample_paragraphs({"a": [LONG]}, 0)


def test_token_viz_item(toy_tiktoken, bpe):
    result = token_viz_item("tokenization-and-embeddings/7", TEXT, {"toy": toy_tiktoken, "bpe": bpe})
    assert all(f.passed for f in result.findings) and len(result.findings) == 4
    assert result.metrics["toy/tokens"] == len(toy_tiktoken.encode(TEXT))
    assert result.texts["token_viz.html"].startswith("<!DOCTYPE html>")
    assert "== bpe" in result.texts["token_viz.txt"]

    class GappyOffsets:  # a HuggingFace-like tokenizer whose offsets skip the "b"
        def encode(self, text):
            return type("Encoding", (), {"ids": [7], "offsets": [(0, 1)]})()

        def id_to_token(self, i):
            return "a"

    result = token_viz_item("x/1", "ab", {"gappy": GappyOffsets()})
    by_metric = {f.metric: f.passed for f in result.findings}
    assert by_metric == {"gappy/ids_match": True, "gappy/chunks_cover_text": False}


def test_unseen_scripts_match_tiktoken_and_fall_back_to_bytes(bpe):
    """An English BPE on Georgian, Tamil, ...: the same ids as tiktoken with its ranks, and several
    times the tokens per character; a BPE that learned merges for those scripts fails the second."""
    result = token_viz_item("x/1", TEXT, {"bpe": bpe}, unseen_texts=UNSEEN_TEXTS)
    unseen = {f.metric: f for f in result.findings if "unseen" in f.metric}
    assert set(unseen) == {"bpe/unseen_ids_match", "bpe/unseen_cost_ratio", "bpe/unseen_chunks_decode"}
    assert all(f.kind == "finding" and f.passed for f in unseen.values())
    assert result.metrics["bpe/unseen_ids_match"] == 1.0
    assert result.metrics["bpe/unseen_single_byte_share"] > 0.9  # the byte fallback
    assert result.metrics["bpe/unseen_chunks_decode"] == 1.0 and result.metrics["bpe/unseen_partial_share"] > 0.5
    m = result.metrics
    ratio = m["bpe/unseen_tokens_per_char"] / m["bpe/tokens_per_char"]
    assert m["bpe/unseen_cost_ratio"] == pytest.approx(ratio) and m["unseen.texts"] == len(UNSEEN_TEXTS)
    from nlpcurriculum.tokenizers import BPETokenizer

    seen = BPETokenizer().train(" ".join(UNSEEN_TEXTS * 20), 600)  # merges for exactly those scripts
    result = token_viz_item("x/1", TEXT, {"seen": seen}, unseen_texts=UNSEEN_TEXTS)
    cost = next(f for f in result.findings if f.metric == "seen/unseen_cost_ratio")
    assert not cost.passed and result.metrics["seen/unseen_single_byte_share"] < 0.5


def test_run_is_the_item_on_the_stage_text(toy_tiktoken):
    (result,) = run(TokenVizConfig(), Inputs(TEXT, {"toy": toy_tiktoken}))
    assert result.item == ITEMS[0] == "tokenization-and-embeddings/7"
    assert result.metrics == token_viz_item(ITEMS[0], TEXT, {"toy": toy_tiktoken}).metrics


def test_unseen_findings_fail_for_a_wrong_visualizer_or_wrong_ids(bpe):
    """Null models: chunks labelled with decode([id], errors="replace"), and an encoder that drops
    the last id of each text."""
    from nlpcurriculum.tokenizers import BPETokenizer
    from nlpcurriculum.viz.token_viz import TokenChunk, token_chunks

    text = UNSEEN_TEXTS[0]
    ok, partial, n = chunks_show_decode(text, token_chunks(text, bpe), bpe)
    assert ok and 0 < partial < n
    naive = [TokenChunk(bpe.token_bytes(i).decode("utf-8", errors="replace"), i, 0, 0) for i in bpe.encode(text)]
    assert chunks_show_decode(text, naive, bpe)[0] is False
    chunks = token_chunks(text, bpe)  # off by one token: each chunk shows its successor's text
    shifted = [c._replace(text=chunks[k + 1].text if k + 1 < len(chunks) else "") for k, c in enumerate(chunks)]
    assert chunks_show_decode(text, shifted, bpe)[0] is False

    class Drops(BPETokenizer):
        def encode_ordinary(self, text):
            return super().encode_ordinary(text)[:-1]

    broken = Drops(bpe.config)
    broken.__dict__.update(bpe.__dict__)  # the same trained state
    result = token_viz_item("x/1", TEXT, {"bpe": broken}, unseen_texts=UNSEEN_TEXTS)
    ids = next(f for f in result.findings if f.metric == "bpe/unseen_ids_match")
    assert ids.value == 0.0 and not ids.passed
