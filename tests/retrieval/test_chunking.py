import numpy as np
import pytest

from nlpcurriculum.retrieval.bm25 import BM25Index
from nlpcurriculum.retrieval.chunking import (HierarchicalIndex, chunk_corpus, max_per_doc,
                                              split_paragraphs, split_sentences, window_chunks,
                                              window_count)
from nlpcurriculum.retrieval.text import Analyzer


def test_docstring_example_and_sentence_rule():
    assert window_chunks("a b c d e f g h i j", size=4, overlap=2) == [
        "a b c d", "c d e f", "e f g h", "g h i j"]
    assert split_sentences("One. Two? (Three) 4 cats! five.") == ["One.", "Two?", "(Three) 4 cats! five."]
    assert split_sentences("") == []


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 10, 11, 64, 65, 200])
@pytest.mark.parametrize("size, overlap", [(4, 2), (4, 0), (64, 32), (5, 4), (1, 0)])
def test_windows_cover_every_word_and_match_the_count_formula(n, size, overlap):
    words = [f"w{i}" for i in range(n)]
    chunks = window_chunks(" ".join(words), size, overlap)
    assert len(chunks) == window_count(n, size, overlap)
    seen = [w for c in chunks for w in c.split()]
    assert set(seen) == set(words)
    assert all(len(c.split()) <= size for c in chunks)
    for a, b in zip(chunks, chunks[1:]):                      # consecutive windows share `overlap`
        assert a.split()[size - overlap:] == b.split()[:overlap] or len(b.split()) < overlap


def test_paragraphs_blank_lines_then_structured_sections():
    assert split_paragraphs("a b.\n\nc d.") == ["a b.", "c d."]
    text = "BACKGROUND Cells die. MDSC were high. METHODS AND FINDINGS We did it. RESULTS It works."
    assert split_paragraphs(text) == ["BACKGROUND Cells die. MDSC were high.",
                                      "METHODS AND FINDINGS We did it.", "RESULTS It works."]
    assert split_paragraphs("Plain abstract. No headings here.") == ["Plain abstract. No headings here."]


def test_chunk_corpus_keeps_owners_and_titles():
    cc = chunk_corpus(["T1", "T2"], ["A b. C d.", ""], "sentence")
    assert cc.texts == ["T1 A b.", "T1 C d.", "T2"] and cc.chunk_doc.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="unknown chunker"):
        chunk_corpus(["t"], ["x"], "pages")


def test_max_per_doc():
    scores = np.array([[1.0, 3.0, 2.0, 0.5]])
    assert max_per_doc(scores, np.array([0, 0, 1, 2])).tolist() == [[3.0, 2.0, 0.5]]


def _tiny_corpus():
    rng = np.random.default_rng(0)
    vocab = [f"t{i}" for i in range(40)]
    titles = [f"title {i}" for i in range(30)]
    texts = [" ".join(". ".join(" ".join(rng.choice(vocab, 6)) for _ in range(rng.integers(1, 5))).split())
             .replace(" . ", ". ").title() for _ in range(30)]
    return titles, texts


def test_hierarchical_search_with_all_candidates_is_flat_maxp():
    titles, texts = _tiny_corpus()
    an = Analyzer(stem=False)
    cc = chunk_corpus(titles, texts, "sentence")
    queries = [an.tokens(" ".join(np.random.default_rng(s).choice([f"t{i}" for i in range(40)], 3)))
               for s in range(12)]
    h = HierarchicalIndex(an.batch([f"{a} {b}" for a, b in zip(titles, texts)]),
                          {"sentence": (an.batch(cc.texts), cc.chunk_doc)})
    idx, val, scored = h.search(queries, k=30, coarse_k=30, weights={"sentence": 1.0}, doc_weight=0.0)
    flat = max_per_doc(BM25Index.build(an.batch(cc.texts)).scores(queries), cc.chunk_doc)
    assert np.allclose(val, -np.sort(-flat, axis=1))
    assert np.allclose(np.take_along_axis(flat, idx, axis=1), val)
    assert scored == len(queries) * len(cc.texts)
    # fewer candidates: fewer units scored; the scores are still doc + w * best unit
    idx5, val5, scored5 = h.search(queries, k=5, coarse_k=5, weights={"sentence": 0.5})
    assert scored5 < scored and idx5.shape == (12, 5)
    doc_scores = h.docs.scores(queries)
    expect = np.take_along_axis(doc_scores, idx5, 1) + 0.5 * np.take_along_axis(flat, idx5, 1)
    assert np.allclose(val5, expect)
