"""Table-level dedup and filtering: bad input (copies, empty, invalid UTF-8, a 50 MB document)."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from nlpcurriculum.data.cleaning import (
    NothingLeftError,
    PerplexityStageConfig,
    dedup_documents,
    filter_documents,
    reference_fold,
    resolve_sources,
)
from nlpcurriculum.data.filters import QualityFilterConfig
from nlpcurriculum.data.lsh import DedupConfig
from nlpcurriculum.data.schemas import DOCUMENTS, DROPPED, read_table, validate, write_table
from nlpcurriculum.data.synthetic.base import make_paragraph


def table(texts: list[str], source: str = "src") -> pd.DataFrame:
    return pd.DataFrame({
        "doc_id": [f"{source}-{i}" for i in range(len(texts))],
        "text": texts,
        "source": source,
        "provenance": [f"test:{i}" for i in range(len(texts))],
        "n_chars": [len(t) for t in texts],
    })


def prose(n: int, seed: int = 0, sentences: int = 8) -> list[str]:
    rng = np.random.default_rng(seed)
    return [make_paragraph(rng, sentences) for _ in range(n)]


QUALITY = QualityFilterConfig(min_words=20, c4_rules=False)
PPL = PerplexityStageConfig(reference_sources=["src"], percentile=95.0)


def test_dedup_keeps_one_document_per_cluster_of_copies():
    base = prose(3, seed=1)
    texts = [base[0]] * 5 + [base[1] + " extra words here"] + [base[1]] + [base[2]]
    out = dedup_documents(table(texts), DedupConfig())
    validate(out.kept, DOCUMENTS, "kept")
    validate(out.dropped, DROPPED, "dropped")
    assert out.counts["kept"] == 3
    assert out.counts["exact_duplicate"] == 4
    assert out.counts["near_duplicate"] == 1
    assert out.counts["clusters_collapsed"] == 2
    first = table(texts)["doc_id"][0]
    assert (out.dropped.loc[out.dropped.reason == "exact_duplicate", "kept_doc_id"] == first).all()


def test_dedup_of_all_copies_leaves_one_document():
    out = dedup_documents(table([prose(1)[0]] * 50))
    assert len(out.kept) == 1
    assert out.counts == {"kept": 1, "exact_duplicate": 49, "near_duplicate": 0,
                          "clusters_collapsed": 1}


def test_a_corpus_without_duplicates_gives_an_empty_but_typed_dropped_table(tmp_path):
    """Issue: an empty dropped table came out with float64 columns and broke its contract."""
    out = dedup_documents(table(prose(6, seed=8)))
    assert out.counts["kept"] == 6 and len(out.dropped) == 0
    write_table(out.dropped, tmp_path / "dropped.parquet", DROPPED)  # validates, then writes
    assert list(read_table(tmp_path / "dropped.parquet", DROPPED).columns) == list(out.dropped.columns)
    kept = filter_documents(table(prose(30, seed=9)), QUALITY, PerplexityStageConfig(enabled=False))
    assert len(kept.dropped) == 0
    validate(kept.dropped, DROPPED, "filter dropped")


def test_reference_sources_adapt_to_a_corpus_without_the_built_in_sources():
    docs = table(prose(30, seed=10), source="files")  # a user's corpus: every source is "files"
    out = filter_documents(docs, QUALITY, PerplexityStageConfig())  # default []: every source
    assert out.reference_sources == ["files"] and out.warnings == [] and out.is_reference.all()
    stdlib_names = PerplexityStageConfig(reference_sources=["pydoc_topics", "stdlib_docstrings"])
    adapted = filter_documents(docs, QUALITY, stdlib_names)
    assert adapted.reference_sources == ["files"]
    (line,) = adapted.warnings
    assert line == ("filter.perplexity.reference_sources ['pydoc_topics', 'stdlib_docstrings'] names "
                    "no source of this corpus; using all of its sources ['files'] (set "
                    "filter.perplexity.reference_sources to some of these, or [] for all)")
    np.testing.assert_array_equal(adapted.perplexity, out.perplexity)
    mixed = pd.concat([docs, table(prose(5, seed=11), source="web")], ignore_index=True)
    assert filter_documents(mixed, QUALITY, PerplexityStageConfig(reference_sources=["files", "x"])
                            ).reference_sources == ["files"]  # listed and present: used as is


def test_resolve_sources():
    assert resolve_sources([], ["b", "a", "b"], "k") == (["a", "b"], None)
    assert resolve_sources(["b", "z"], ["a", "b"], "k") == (["b"], None)
    chosen, note = resolve_sources(["z"], ["a"], "my.key")
    assert chosen == ["a"] and note.startswith("my.key ['z'] names no source of this corpus")


def test_a_reference_too_small_for_two_folds_names_the_key_and_the_rule():
    docs = pd.concat([table(prose(20, seed=12), source="web"), table(["too short to pass"], "ref")],
                     ignore_index=True)
    with pytest.raises(NothingLeftError, match=(
            r"^filter: the perplexity filter's clean reference \(sources \['ref'\], set by "
            r"filter.perplexity.reference_sources\) has 0 of 1 documents left after the heuristic "
            r"rules, and needs at least one in each of its two folds; most were dropped as "
            r"'too_short': relax filter.quality.min_words; or set filter.perplexity.enabled: false$")):
        filter_documents(docs, QUALITY, PerplexityStageConfig(reference_sources=["ref"]))


def test_a_non_english_corpus_dropped_whole_says_which_rule_to_relax():
    german = ["Der alte Bäcker trägt einen schweren Korb am frühen Morgen durch die stille Stadt "
              f"und grüßt die Nachbarn am Markt, Tag {i} von vielen im langen Sommer dort."
              for i in range(6)]
    with pytest.raises(NothingLeftError, match=(
            r"every one of 6 documents was dropped \(\{'kept': 0, 'no_stop_words': 6\}\); most "
            r"were dropped as 'no_stop_words': relax filter.quality.min_stop_words \(the stop "
            r"words are English; 0 turns the rule off\)")):
        filter_documents(table(german), QUALITY, PerplexityStageConfig(enabled=False))
    relaxed = QualityFilterConfig(min_words=20, c4_rules=False, min_stop_words=0)
    assert filter_documents(table(german), relaxed, PerplexityStageConfig()).counts["kept"] >= 5


def test_empty_input_is_refused_with_a_clear_message():
    empty = table([]).astype({"n_chars": "int64"})
    with pytest.raises(NothingLeftError, match="dedup: the input table has no documents"):
        dedup_documents(empty)
    with pytest.raises(NothingLeftError, match="filter: the input table has no documents"):
        filter_documents(empty, QUALITY, PPL)


def test_filter_that_drops_everything_says_so_with_counts():
    junk = ["zz qq xx " * 10] * 4
    with pytest.raises(NothingLeftError, match=r"every one of 4 documents was dropped \(\{'kept': 0"):
        filter_documents(table(junk), QUALITY, PerplexityStageConfig(enabled=False))


def test_invalid_utf8_is_dropped_with_its_reason_code():
    texts = prose(12, seed=2)
    damaged = b"\xff\xfe".join(t.encode() for t in prose(1, seed=3)[0].split(". "))
    texts.append(damaged.decode("utf-8", errors="replace") + " \ufffd" * 20)  # ingest's policy
    texts.append("one bad \ufffd character " + prose(1, seed=4)[0])
    out = filter_documents(table(texts), QUALITY, PerplexityStageConfig(enabled=False))
    reasons = dict(zip(out.dropped.provenance, out.dropped.reason))
    assert reasons["test:12"] == "invalid_utf8"
    assert "test:13" not in reasons  # one bad character in 300 is within the allowed share
    validate(out.dropped, DROPPED, "dropped")
    # Dedup hashes damaged text as is: the valid parts still match nothing here.
    assert dedup_documents(table(texts)).counts["kept"] == len(texts)


def test_perplexity_filter_is_cross_fitted_and_drops_shuffled_text():
    clean = prose(40, seed=5)
    rng = np.random.default_rng(0)
    shuffled = [" ".join(rng.permutation(t.split())) for t in prose(5, seed=6)]
    docs = pd.concat([table(clean), table(shuffled, source="web")], ignore_index=True)
    out = filter_documents(docs, QUALITY, PPL)
    fold = reference_fold(docs["doc_id"][:40], PPL.seed)
    assert set(out.fold[:40]) == {0, 1} and (out.fold[:40] == fold).all()
    assert (out.fold[40:] == -1).all()
    # The threshold is the 95th percentile of held-out reference perplexities.
    assert out.threshold == pytest.approx(np.percentile(out.reference_perplexities, 95))
    assert np.all(out.perplexity[40:] > np.median(out.perplexity[:40]))
    assert out.counts["perplexity_too_high"] >= 5
    assert set(out.dropped.doc_id) >= {f"web-{i}" for i in range(5)}  # every shuffled one


def test_a_50_mb_document_costs_bounded_memory_and_time():
    big = "word " * 10_000_000  # 50 MB of ASCII
    docs = table(prose(30, seed=7) + [big.strip()])
    tracemalloc.start()
    t0 = time.perf_counter()
    dd = dedup_documents(docs, DedupConfig())
    ft = filter_documents(dd.kept, QUALITY, PPL)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert dict(zip(ft.dropped.provenance, ft.dropped.reason))["test:30"] == "too_long"
    assert len(ft.dropped.loc[ft.dropped.provenance == "test:30", "preview"].iloc[0]) == 200
    # A word list of the document would be ~10M str objects (> 500 MB); we allow 3 copies.
    assert peak < 150e6, f"peak {peak / 1e6:.0f} MB"
    assert elapsed < 30.0
