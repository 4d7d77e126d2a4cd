import json

import pandas as pd
import pytest

from nlpcurriculum.data.schemas import DOCUMENTS, SPLITS, ContractError, read_table, validate, write_table
from nlpcurriculum.data.sources import SourceConfig, SourceError, load_documents
from nlpcurriculum.data.errors import CorpusTooSmallError
from nlpcurriculum.data.splits import SplitConfig, assign_splits, split_warnings


def test_stdlib_source_is_about_two_megabytes_of_english_with_provenance():
    docs, stats = load_documents(SourceConfig())
    validate(docs, DOCUMENTS, "stdlib")
    assert 1_500_000 < docs["n_chars"].sum() < 3_000_000
    assert set(docs["source"]) == {"pydoc_topics", "stdlib_docstrings"}
    assert docs["provenance"].str.startswith(("pydoc_data.topics:", "stdlib:")).all()
    assert stats["documents"] == len(docs)
    again, _ = load_documents(SourceConfig())
    pd.testing.assert_frame_equal(docs, again)


def test_files_source_reads_text_jsonl_and_parquet(tmp_path):
    (tmp_path / "a.txt").write_text("first document here")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "json one"}) + "\n\n" + json.dumps({"text": "json two"}) + "\n")
    pd.DataFrame({"text": ["parquet doc"]}).to_parquet(tmp_path / "c.parquet")
    docs, _ = load_documents(SourceConfig(source="files", path=str(tmp_path), min_chars=1))
    assert list(docs["text"]) == ["first document here", "json one", "json two", "parquet doc"]
    assert docs["provenance"].iloc[1].endswith("b.jsonl:1")
    validate(docs, DOCUMENTS, "files")


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "no .txt, .md, .jsonl or .parquet files found"),
        (lambda p: (p / "x.txt").write_bytes(b"ok \xff\xfe bad"), "not valid UTF-8 at byte 3"),
        (lambda p: (p / "x.jsonl").write_text("{broken\n"), "x.jsonl:1: not valid JSON"),
        (lambda p: (p / "x.jsonl").write_text('{"body": "x"}\n'), r"x.jsonl:1: no field 'text' \(set ingest.text_field"),
        (lambda p: (p / "x.jsonl").write_text('{"text": "ok"}\n{"text": 42}\n'),
         "x.jsonl:2: field 'text' must be a string, got int 42"),
        (lambda p: pd.DataFrame({"text": list(range(100))}).to_parquet(p / "n.parquet"),
         r"n.parquet: column 'text' must hold strings; row 0 is int 0"),
        (lambda p: pd.DataFrame({"text": ["fine", None]}).to_parquet(p / "n.parquet"),
         r"n.parquet: column 'text' must hold strings; row 1 is missing \(null\)"),
        (lambda p: (p / "notes.pdf").write_bytes(b"%PDF"), r"no .txt.* found there \(1 other files skipped\)"),
        (lambda p: (p / "x.parquet").write_bytes(b"PAR1 garbage"), "cannot read parquet"),
        (lambda p: (p / "x.txt").write_text("   "),
         r"produced no documents: 1 of 1 were shorter than ingest.min_chars \(1\)"),
    ],
)
def test_bad_file_sources_fail_clearly(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(SourceError, match=message):
        load_documents(SourceConfig(source="files", path=str(tmp_path)))


def test_invalid_utf8_can_be_replaced_and_is_counted(tmp_path):
    (tmp_path / "x.txt").write_bytes(b"ok \xff bad")
    (tmp_path / "y.txt").write_text("clean")
    docs, stats = load_documents(SourceConfig(source="files", path=str(tmp_path), on_decode_error="replace"))
    assert docs["text"].iloc[0] == "ok \ufffd bad"
    assert stats["files.read"] == 2 and stats["files.decode_replaced"] == 1


def test_files_of_other_kinds_are_skipped_and_counted_by_suffix(tmp_path):
    (tmp_path / "a.txt").write_text("a document")
    for name in ("b.pdf", "c.pdf", "d.html", "README"):
        (tmp_path / name).write_text("not read")
    docs, stats = load_documents(SourceConfig(source="files", path=str(tmp_path)))
    assert list(docs["text"]) == ["a document"]
    assert stats["files.read"] == 1
    assert (stats["files.skipped.pdf"], stats["files.skipped.html"], stats["files.skipped.no_suffix"]) == (2, 1, 1)


def test_pattern_narrows_a_folder_and_hidden_files_are_skipped(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "top record"}) + "\n")
    (tmp_path / "sub/b.jsonl").write_text(json.dumps({"text": "nested record"}) + "\n")
    (tmp_path / "c.txt").write_text("a text file")
    (tmp_path / ".gitkeep").write_text("# not a document")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git/notes.txt").write_text("not a document either")
    top, _ = load_documents(SourceConfig(source="files", path=str(tmp_path), pattern="*.jsonl"))
    assert list(top["text"]) == ["top record"]
    nested, _ = load_documents(SourceConfig(source="files", path=str(tmp_path), pattern="**/*.jsonl"))
    assert list(nested["text"]) == ["top record", "nested record"]
    everything, stats = load_documents(SourceConfig(source="files", path=str(tmp_path)))
    assert list(everything["text"]) == ["top record", "a text file", "nested record"]
    assert stats["files.skipped.hidden"] == 2 and stats["files.read"] == 3


def test_a_relative_path_is_read_from_the_project_root(tmp_path):
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "data/raw/a.md").write_text("# A note\n\nwith some words")
    docs, _ = load_documents(SourceConfig(source="files", path="data/raw"), root=tmp_path)
    assert docs["provenance"].tolist() == [str(tmp_path / "data/raw/a.md")]


@pytest.mark.parametrize(
    "path, pattern, message",
    [
        ("missing", "", "ingest.path 'missing': no such file or folder"),
        ("a.txt", "*.txt", r"ingest.path 'a.txt' is a file; ingest.pattern '\*.txt' needs a folder"),
        (".", "*.csv", r"ingest.path '.' \(pattern '\*.csv'\): no .txt, .md, .jsonl or .parquet"),
    ],
)
def test_bad_path_or_pattern_names_the_keys(tmp_path, path, pattern, message):
    (tmp_path / "a.txt").write_text("a document")
    with pytest.raises(SourceError, match=message):
        load_documents(SourceConfig(source="files", path=path, pattern=pattern), root=tmp_path)


def test_hub_source_is_offline_by_default_and_fails_at_once():
    with pytest.raises(SourceError, match="needs the internet"):
        load_documents(SourceConfig(source="hub", hub_name="roneneldan/TinyStories"))


def test_source_config_checks_itself():
    with pytest.raises(ValueError, match="needs a path"):
        SourceConfig(source="files", path="")
    with pytest.raises(ValueError, match=r"is a glob.*set path: '/c/my corpus' and pattern: '\*\*/\*.jsonl'"):
        SourceConfig(source="files", path="/c/my corpus/**/*.jsonl")
    with pytest.raises(ValueError, match="DVC does not expand '~'"):
        SourceConfig(source="files", path="~/corpus")
    with pytest.raises(ValueError, match="must be a glob inside path"):
        SourceConfig(source="files", path="c", pattern="../*.txt")


def _docs(n_a: int, n_b: int) -> pd.DataFrame:
    rows = [(f"a{i}", f"text a{i}", "A") for i in range(n_a)] + [(f"b{i}", f"text b{i}", "B") for i in range(n_b)]
    df = pd.DataFrame(rows, columns=["doc_id", "text", "source"])
    df["provenance"] = "test"
    df["n_chars"] = df["text"].str.len()
    return df[["doc_id", "text", "source", "provenance", "n_chars"]]


def test_splits_are_deterministic_stratified_and_disjoint():
    docs = _docs(200, 40)
    cfg = SplitConfig(val_fraction=0.1, test_fraction=0.2, seed=3)
    out = validate(assign_splits(docs, cfg), SPLITS, "test")
    counts = out.groupby(["source", "split"]).size().to_dict()
    assert counts == {("A", "train"): 140, ("A", "val"): 20, ("A", "test"): 40,
                      ("B", "train"): 28, ("B", "val"): 4, ("B", "test"): 8}
    assert out["doc_id"].is_unique and set(out["doc_id"]) == set(docs["doc_id"])
    pd.testing.assert_frame_equal(out, assign_splits(docs.sample(frac=1, random_state=1), cfg))
    other_seed = assign_splits(docs, SplitConfig(val_fraction=0.1, test_fraction=0.2, seed=4))
    assert set(other_seed[other_seed.split == "val"].doc_id) != set(out[out.split == "val"].doc_id)


def test_split_assignment_is_stable_when_other_sources_change():
    base = assign_splits(_docs(100, 10), SplitConfig())
    grown = assign_splits(_docs(100, 30), SplitConfig())
    a = lambda df: df[df.source == "A"].set_index("doc_id")["split"].sort_index()
    pd.testing.assert_series_equal(a(base), a(grown))


def test_a_small_corpus_still_gets_one_document_in_val_and_test_and_a_warning():
    cfg = SplitConfig(val_fraction=0.1, test_fraction=0.1)
    out = validate(assign_splits(_docs(4, 3), cfg), SPLITS, "test")  # each source rounds to 0
    assert out["split"].value_counts().to_dict() == {"train": 5, "val": 1, "test": 1}
    again = assign_splits(_docs(4, 3).iloc[::-1], cfg)
    pd.testing.assert_frame_equal(out, again)  # still deterministic
    (line,) = split_warnings(out)
    assert line == ("splits: val and test under 5 documents (train 5 (35 chars), val 1 (7 chars), "
                    "test 1 (7 chars)): their numbers will be noise; add documents or raise "
                    "splits.val_fraction / splits.test_fraction")
    three = assign_splits(_docs(3, 0), cfg)
    assert sorted(three["split"]) == ["test", "train", "val"]
    assert split_warnings(assign_splits(_docs(100, 0), cfg)) == []  # 10 and 10: no warning
    # A zero fraction asks for no split: nothing is moved there.
    assert set(assign_splits(_docs(4, 0), SplitConfig(0.0, 0.1))["split"]) == {"train", "test"}


def test_too_few_documents_for_three_splits_fail_in_one_line():
    with pytest.raises(CorpusTooSmallError, match=r"^splits: 2 document\(s\) left after dedup and "
                       r"filter, but test, train, val need one each: add documents .*ingest.path"):
        assign_splits(_docs(2, 0), SplitConfig())
    assert len(assign_splits(_docs(2, 0), SplitConfig(0.0, 0.5))) == 2


def test_contract_violation_names_column_check_and_row(tmp_path):
    docs = _docs(3, 0)
    docs.loc[1, "text"] = ""
    docs.loc[1, "n_chars"] = 0
    with pytest.raises(ContractError) as err:
        write_table(docs, tmp_path / "out.parquet", DOCUMENTS)
    message = str(err.value)
    assert "'documents' contract" in message and "column 'text'" in message
    assert "str_length" in message and "failing row 1" in message and "'doc_id': 'a1'" in message
    assert not (tmp_path / "out.parquet").exists()


def test_read_table_rejects_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ContractError, match="not a readable parquet file"):
        read_table(bad, DOCUMENTS)
    with pytest.raises(FileNotFoundError, match="input table not found"):
        read_table(tmp_path / "missing.parquet", DOCUMENTS)
    write_table(_docs(2, 1), tmp_path / "ok.parquet", DOCUMENTS)
    assert len(read_table(tmp_path / "ok.parquet", DOCUMENTS)) == 3
