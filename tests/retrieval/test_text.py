import bm25s
import Stemmer

from nlpcurriculum.retrieval.text import STOPWORDS_EN, Analyzer


def test_docstring_example():
    assert Analyzer().tokens("The cells were 5x more active in vivo.") == [
        "cell", "were", "5x", "more", "activ", "vivo"]
    assert Analyzer(stem=False).tokens("The cells, a b") == ["cells"]
    assert Analyzer().tokens("a I ?") == []


def test_same_terms_as_bm25s_tokenize_on_scifact(scifact):
    from bm25s.stopwords import STOPWORDS_EN as BM25S_EN

    assert STOPWORDS_EN == frozenset(BM25S_EN)
    texts = scifact.queries["text"].tolist() + scifact.documents()[:500]
    ref = bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"),
                         return_ids=False, show_progress=False)
    assert Analyzer().batch(texts) == [list(t) for t in ref]
