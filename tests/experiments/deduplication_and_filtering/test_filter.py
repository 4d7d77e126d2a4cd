"""The filter experiment: rank AUC, injected junk, and its report on a user's own corpus."""

import numpy as np
import pandas as pd
import pytest

from nlpcurriculum.data.cleaning import filter_documents
from nlpcurriculum.data.synthetic.base import make_paragraph
from nlpcurriculum.experiments.deduplication_and_filtering.filter import (
    JUNK_KINDS,
    FilterStageConfig,
    Inputs,
    make_junk,
    rank_auc,
    run,
)


def test_rank_auc_hand_example():
    # positives {3, 1}, negatives {2, 1}: pairs (3>2), (3>1), (1<2), (1=1 -> 0.5) -> 2.5 / 4.
    assert rank_auc(np.array([3.0, 1.0]), np.array([2.0, 1.0])) == pytest.approx(0.625)
    assert rank_auc(np.array([5.0]), np.array([1.0, 2.0])) == 1.0


@pytest.mark.parametrize("kind", JUNK_KINDS)
def test_junk_keeps_length_and_breaks_the_text(kind):
    text = " ".join(f"w{i}" for i in range(48))
    junk = make_junk(text, kind, np.random.default_rng(0))
    assert junk != text
    assert len(junk.split()) == 48
    if kind == "shuffled":
        assert sorted(junk.split()) == sorted(text.split())


def test_unknown_junk_kind_is_named():
    with pytest.raises(ValueError, match="unknown junk kind 'x'"):
        make_junk("a b", "x", np.random.default_rng(0))


def _user_corpus(n: int = 24) -> tuple[list[str], pd.DataFrame]:
    """``n`` English paragraphs as a user's corpus: every document has source ``files``."""
    rng = np.random.default_rng(0)
    texts = [make_paragraph(rng, 8) for _ in range(n)]
    docs = pd.DataFrame({"doc_id": [f"d{i}" for i in range(n)], "text": texts, "source": "files",
                         "provenance": "test", "n_chars": [len(t) for t in texts]})
    return texts, docs


def test_clean_sources_of_the_built_in_corpus_adapt_to_a_users_corpus():
    """The default clean_sources names the stdlib's pydoc_topics; a user corpus has only 'files'."""
    texts, docs = _user_corpus()
    cfg = FilterStageConfig(clean_sources=["pydoc_topics"], junk_per_kind=3)
    cfg.quality.min_words, cfg.quality.c4_rules = 20, False
    tables = filter_documents(docs, cfg.quality, cfg.perplexity)
    (result,) = run(cfg, Inputs(texts, ["files"] * 24, tables))
    assert result.metrics["clean.documents"] == 24  # all of them, not none
    assert "(files)" in result.findings[0].claim
    assert tables.warnings == ["filter.clean_sources ['pydoc_topics'] names no source of this corpus; "
                               "using all of its sources ['files'] (set filter.clean_sources to some "
                               "of these, or [] for all)"]


def test_the_report_runs_with_the_perplexity_filter_off():
    """No document is scored then; the histogram used to fail on an empty concatenation."""
    texts, docs = _user_corpus()
    cfg = FilterStageConfig(junk_per_kind=3)
    cfg.quality.min_words, cfg.quality.c4_rules, cfg.perplexity.enabled = 20, False, False
    tables = filter_documents(docs, cfg.quality, cfg.perplexity)
    (result,) = run(cfg, Inputs(texts, ["files"] * 24, tables))
    assert "junk.shuffled.perplexity_auc" not in result.metrics
    assert result.metrics["junk.per_kind"] == 0  # junk is made from scored reference documents
