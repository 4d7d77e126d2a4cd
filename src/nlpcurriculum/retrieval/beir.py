"""Read a BEIR-format retrieval benchmark folder under pandera contracts.

The format (Thakur et al. 2021, as the ``BeIR/*`` sets ship it)::

    <folder>/corpus.jsonl       {"_id": str, "title": str, "text": str} per line (extra keys ignored)
    <folder>/queries.jsonl      {"_id": str, "text": str} per line
    <folder>/qrels/<split>.tsv  header "query-id<TAB>corpus-id<TAB>score", one judgment per line

Either ``.jsonl`` file may be gzip-compressed (``corpus.jsonl.gz``); qrels lines may end in CRLF
(SciFact's do) or LF. Ids are strings even when they look like numbers (``"4983"``). Queries
without a judgment in the split are not part of that split's evaluation (BEIR evaluates only the
judged queries), so :func:`load_beir` keeps the judged ones, in file order.

Errors name the file, the line and the problem (:class:`~nlpcurriculum.data.errors.ContractError`),
so a user pointing the params at their own folder learns what to fix.

Example (the copy shipped in ``data/beir_scifact/``)::

    data = load_beir("data/beir_scifact", split="test")
    len(data.corpus), len(data.queries)   # (5183, 300)
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from nlpcurriculum.data.errors import ContractError
from nlpcurriculum.data.schemas import validate

__all__ = ["BeirData", "CORPUS", "QRELS", "QUERIES", "load_beir", "read_jsonl", "read_qrels"]

CORPUS = pa.DataFrameSchema(
    {
        "doc_id": pa.Column(str, pa.Check.str_length(min_value=1), unique=True),
        "title": pa.Column(str),
        "text": pa.Column(str),
    },
    strict=True,
    name="beir_corpus",
    checks=pa.Check(lambda df: (df["title"].str.len() + df["text"].str.len()) > 0,
                    name="title_or_text_not_empty"),
)
"""A BEIR corpus: one row per document, id unique, title and text (one of them non-empty)."""

QUERIES = pa.DataFrameSchema(
    {
        "query_id": pa.Column(str, pa.Check.str_length(min_value=1), unique=True),
        "text": pa.Column(str, pa.Check.str_length(min_value=1)),
    },
    strict=True,
    name="beir_queries",
)
"""BEIR queries: one row per query, id unique, non-empty text."""

QRELS = pa.DataFrameSchema(
    {
        "query_id": pa.Column(str, pa.Check.str_length(min_value=1)),
        "doc_id": pa.Column(str, pa.Check.str_length(min_value=1)),
        "score": pa.Column(int, pa.Check.ge(0)),
    },
    strict=True,
    unique=["query_id", "doc_id"],
    name="beir_qrels",
)
"""Relevance judgments: one graded score (>= 0) per (query, document) pair, each pair once."""

QRELS_HEADER = ("query-id", "corpus-id", "score")


@dataclass(frozen=True)
class BeirData:
    """One split of a BEIR benchmark.

    Attributes:
        corpus: ``doc_id``, ``title``, ``text`` (the :data:`CORPUS` contract), file order.
        queries: ``query_id``, ``text`` (:data:`QUERIES`): the judged queries of the split.
        qrels: ``{query_id: {doc_id: score}}``, every query of ``queries`` present.
        name: where it came from (the folder and split), for messages.
    """

    corpus: pd.DataFrame
    queries: pd.DataFrame
    qrels: dict[str, dict[str, int]]
    name: str = ""

    def documents(self) -> list[str]:
        """The text every retriever here indexes: ``title + " " + text`` (the bm25s benchmark's)."""
        return (self.corpus["title"] + " " + self.corpus["text"]).tolist()

    def on_corpus(self, corpus: pd.DataFrame) -> "BeirData":
        """These queries judged against another corpus (a subset's): judgments of documents not
        in ``corpus`` are dropped, then queries left without a relevant (>= 1) document."""
        docs = set(corpus["doc_id"])
        qrels = {q: {d: s for d, s in rel.items() if d in docs} for q, rel in self.qrels.items()}
        qrels = {q: rel for q, rel in qrels.items() if any(s > 0 for s in rel.values())}
        queries = self.queries[self.queries["query_id"].isin(qrels)].reset_index(drop=True)
        return BeirData(corpus, queries, qrels, f"{self.name} on a corpus of {len(corpus)}")

    def subset(self, n_queries: int, n_docs: int, seed: int = 0) -> "BeirData":
        """A smaller benchmark: ``n_queries`` judged queries and a corpus of ``n_docs`` documents.

        The corpus keeps every document judged for a kept query, then fills up with documents
        drawn at random (``seed``), in the original order; a retrieval task on the subset is
        easier than on the whole corpus (fewer distractors), which is what a smoke run needs.
        ``n_queries``/``n_docs`` of 0 or more than there are keep everything.
        """
        rng = np.random.default_rng(seed)
        queries = self.queries
        if 0 < n_queries < len(queries):
            keep = np.sort(rng.choice(len(queries), size=n_queries, replace=False))
            queries = queries.iloc[keep].reset_index(drop=True)
        qrels = {q: self.qrels[q] for q in queries["query_id"]}
        corpus = self.corpus
        if 0 < n_docs < len(corpus):
            judged = {d for rel in qrels.values() for d in rel}
            is_judged = corpus["doc_id"].isin(judged).to_numpy()
            others = np.flatnonzero(~is_judged)
            fill = max(0, n_docs - int(is_judged.sum()))
            chosen = rng.choice(others, size=min(fill, len(others)), replace=False)
            mask = is_judged.copy()
            mask[chosen] = True
            corpus = corpus[mask].reset_index(drop=True)
        return BeirData(corpus, queries, qrels, f"{self.name} subset({n_queries}, {n_docs}, {seed})")


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _find(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"{folder}: no {stem}.jsonl or {stem}.jsonl.gz (a BEIR-format folder "
                            f"holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv)")


def read_jsonl(path: str | Path, fields: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """The records of a JSON-lines file (``.gz`` read as gzip), only ``fields`` kept.

    ``_id`` values that are JSON numbers become strings; a missing ``title`` becomes ``""``
    (some BEIR sets omit it). Blank lines are skipped.

    Raises:
        ContractError: a line that is not a JSON object, or lacks one of ``fields``, naming the
            file and the line number.
    """
    path = Path(path)
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ContractError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ContractError(f"{path}:{lineno}: a line must be a JSON object")
            if "title" in fields and "title" not in record:
                record["title"] = ""
            missing = [f for f in fields if f not in record]
            if missing:
                raise ContractError(f"{path}:{lineno}: missing key(s) {missing}")
            out = {}
            for f in fields:
                value = record[f]
                if f == "_id" and isinstance(value, int) and not isinstance(value, bool):
                    value = str(value)
                if not isinstance(value, str):
                    raise ContractError(f"{path}:{lineno}: {f!r} must be a string, got "
                                        f"{type(value).__name__}")
                out[f] = value
            yield out


def read_qrels(path: str | Path) -> pd.DataFrame:
    """A qrels TSV as a table ``query_id, doc_id, score`` (:data:`QRELS` contract).

    The header line ``query-id<TAB>corpus-id<TAB>score`` is required; CRLF and LF both work.

    Raises:
        FileNotFoundError: no such file.
        ContractError: a missing header, a line without three fields, a score that is not an
            integer, or a pair judged twice.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: qrels file not found")
    rows = []
    with open(path, encoding="utf-8", newline="") as fh:
        lines = (line.rstrip("\r\n") for line in fh)
        header = next(lines, "")
        if tuple(header.split("\t")) != QRELS_HEADER:
            raise ContractError(f"{path}:1: expected the header {'<TAB>'.join(QRELS_HEADER)!r}, "
                                f"got {header[:60]!r}")
        for lineno, line in enumerate(lines, start=2):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise ContractError(f"{path}:{lineno}: expected 3 tab-separated fields, got "
                                    f"{len(parts)}: {line[:60]!r}")
            try:
                score = int(parts[2])
            except ValueError:
                raise ContractError(f"{path}:{lineno}: score {parts[2]!r} is not an integer") from None
            rows.append((parts[0], parts[1], score))
    table = pd.DataFrame(rows, columns=["query_id", "doc_id", "score"])
    table["score"] = table["score"].astype(int)
    return validate(table, QRELS, origin=str(path))


def load_beir(folder: str | Path, split: str = "test") -> BeirData:
    """Load one split of a BEIR-format folder, every contract checked.

    Beyond each table's contract, every judged query must be in ``queries.jsonl`` and every
    judged document in the corpus, and the split must judge at least one query.

    Raises:
        FileNotFoundError: the folder or one of its files is missing (named).
        ContractError: a table breaks its contract, or the tables do not match (named).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder (retrieval params name a BEIR-format folder)")
    corpus_path, queries_path = _find(folder, "corpus"), _find(folder, "queries")
    corpus = pd.DataFrame(list(read_jsonl(corpus_path, ("_id", "title", "text"))),
                          columns=["_id", "title", "text"]).rename(columns={"_id": "doc_id"})
    corpus = validate(corpus, CORPUS, origin=str(corpus_path))
    queries = pd.DataFrame(list(read_jsonl(queries_path, ("_id", "text"))),
                           columns=["_id", "text"]).rename(columns={"_id": "query_id"})
    queries = validate(queries, QUERIES, origin=str(queries_path))
    qrels_path = folder / "qrels" / f"{split}.tsv"
    table = read_qrels(qrels_path)
    if table.empty:
        raise ContractError(f"{qrels_path}: no judgments")
    unknown_q = sorted(set(table["query_id"]) - set(queries["query_id"]))
    if unknown_q:
        raise ContractError(f"{qrels_path}: {len(unknown_q)} judged query id(s) not in "
                            f"{queries_path.name}, e.g. {unknown_q[0]!r}")
    unknown_d = sorted(set(table["doc_id"]) - set(corpus["doc_id"]))
    if unknown_d:
        raise ContractError(f"{qrels_path}: {len(unknown_d)} judged doc id(s) not in "
                            f"{corpus_path.name}, e.g. {unknown_d[0]!r}")
    qrels: dict[str, dict[str, int]] = {}
    for q, d, s in table.itertuples(index=False):
        qrels.setdefault(q, {})[d] = int(s)
    judged = queries[queries["query_id"].isin(qrels)].reset_index(drop=True)
    return BeirData(corpus, judged, qrels, f"{folder} ({split})")
