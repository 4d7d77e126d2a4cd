import gzip
import hashlib
import json
import shutil

import pytest

from nlpcurriculum.data.errors import ContractError
from nlpcurriculum.retrieval.beir import load_beir, read_qrels
from tests.retrieval.conftest import SCIFACT


def test_shipped_scifact_is_the_documented_data(scifact):
    # sha256 of the decompressed corpus and of the byte-exact copies, as data/beir_scifact/SOURCE.md lists
    def sha(b):
        return hashlib.sha256(b).hexdigest()
    assert sha(gzip.open(SCIFACT / "corpus.jsonl.gz").read()).startswith("ae39e2b331413acd")
    assert sha((SCIFACT / "queries.jsonl").read_bytes()).startswith("154a75771a103d59")
    assert sha((SCIFACT / "qrels/test.tsv").read_bytes()).startswith("0864bb985e0ca236")
    assert b"\r\n" in (SCIFACT / "qrels/test.tsv").read_bytes()
    assert len(scifact.corpus) == 5183 and len(scifact.queries) == 300
    assert sum(len(r) for r in scifact.qrels.values()) == 339
    # CRLF stripped: no id carries a carriage return
    assert not any("\r" in q or any("\r" in d for d in rel) for q, rel in scifact.qrels.items())
    assert list(scifact.queries["query_id"]) == list(scifact.qrels)
    assert scifact.documents()[0].startswith("Microstructural development of human newborn cerebral "
                                             "white matter assessed in vivo by diffusion tensor "
                                             "magnetic resonance imaging. Alterations of")


def test_train_split_loads_too():
    data = load_beir(SCIFACT, split="train")
    assert len(data.queries) == 809


def _tiny(folder, corpus=None, queries=None, qrels=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    corpus = corpus if corpus is not None else [
        {"_id": "d1", "title": "T", "text": "alpha"}, {"_id": 2, "text": "beta", "extra": 1}]
    queries = queries if queries is not None else [{"_id": "q1", "text": "alpha?"},
                                                   {"_id": "q9", "text": "unjudged"}]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (folder / "qrels/test.tsv").write_bytes(
        qrels if qrels is not None else b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\t2\t0\n")
    return folder


def test_plain_and_gzip_read_the_same(tmp_path):
    a = load_beir(_tiny(tmp_path / "a"))
    b = _tiny(tmp_path / "b")
    with open(b / "corpus.jsonl", "rb") as src, gzip.open(b / "corpus.jsonl.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    (b / "corpus.jsonl").unlink()
    b = load_beir(b)
    assert a.corpus.equals(b.corpus)
    # numeric _id -> string, missing title -> "", extra keys dropped; unjudged query q9 left out
    assert a.corpus["doc_id"].tolist() == ["d1", "2"] and a.corpus["title"].tolist() == ["T", ""]
    assert a.queries["query_id"].tolist() == ["q1"]
    assert a.qrels == {"q1": {"d1": 1, "2": 0}}


@pytest.mark.parametrize("change, message", [
    (dict(corpus=[{"_id": "d1", "text": "a"}, {"_id": "d1", "text": "b"}]), "beir_corpus"),
    (dict(corpus=[{"_id": "d1", "title": "", "text": ""}]), "title_or_text_not_empty"),
    (dict(queries=[{"_id": "q1", "text": 3}]), "'text' must be a string"),
    (dict(qrels=b"qid\tdid\tscore\nq1\td1\t1\n"), "expected the header"),
    (dict(qrels=b"query-id\tcorpus-id\tscore\r\nq1\td1\r\n"), "expected 3 tab-separated"),
    (dict(qrels=b"query-id\tcorpus-id\tscore\r\nq1\td1\tyes\r\n"), "not an integer"),
    (dict(qrels=b"query-id\tcorpus-id\tscore\nq1\tnope\t1\n"), "judged doc id(s) not in"),
    (dict(qrels=b"query-id\tcorpus-id\tscore\nq7\td1\t1\n"), "judged query id(s) not in"),
    (dict(qrels=b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t2\n"), "beir_qrels"),
])
def test_bad_folders_fail_naming_the_problem(tmp_path, change, message):
    with pytest.raises(ContractError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_beir(_tiny(tmp_path / "x", **change))


def test_bad_json_line_names_file_and_line(tmp_path):
    folder = _tiny(tmp_path / "x")
    with open(folder / "corpus.jsonl", "a") as fh:
        fh.write("{not json\n")
    with pytest.raises(ContractError, match=r"corpus.jsonl:3: not valid JSON"):
        load_beir(folder)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_beir(tmp_path / "nowhere")
    folder = _tiny(tmp_path / "x")
    (folder / "queries.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="no queries.jsonl"):
        load_beir(folder)
    with pytest.raises(FileNotFoundError, match="qrels file not found"):
        read_qrels(folder / "qrels" / "dev.tsv")


def test_subset_keeps_every_judged_document(scifact):
    small = scifact.subset(n_queries=20, n_docs=300, seed=1)
    assert len(small.queries) == 20 and len(small.corpus) == 300
    judged = {d for rel in small.qrels.values() for d in rel}
    assert judged <= set(small.corpus["doc_id"])
    assert set(small.qrels) == set(small.queries["query_id"])
    assert small.corpus.equals(scifact.subset(20, 300, seed=1).corpus)       # deterministic
    assert len(scifact.subset(0, 0).corpus) == len(scifact.corpus)


def test_on_corpus_keeps_only_answerable_queries(scifact):
    small = scifact.subset(n_queries=20, n_docs=300, seed=1)
    train = load_beir(SCIFACT, split="train").on_corpus(small.corpus)
    docs = set(small.corpus["doc_id"])
    assert train.corpus is small.corpus and 0 < len(train.queries) < 809
    assert all(rel and set(rel) <= docs and max(rel.values()) > 0 for rel in train.qrels.values())
    assert list(train.queries["query_id"]) == list(train.qrels)
