import json

import pandas as pd
import pytest

from nlpcurriculum.data.schemas import DOCUMENTS, SPLITS, ContractError, read_table, validate, write_table
from nlpcurriculum.data.sources import SourceConfig, SourceError, load_documents
from nlpcurriculum.data.splits import SplitConfig, assign_splits


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
        (lambda p: (p / "x.txt").write_text("   "), "produced no documents"),
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


def test_hub_source_is_offline_by_default_and_fails_at_once():
    with pytest.raises(SourceError, match="needs the internet"):
        load_documents(SourceConfig(source="hub", hub_name="roneneldan/TinyStories"))


def test_source_config_checks_itself():
    with pytest.raises(ValueError, match="needs a path"):
        SourceConfig(source="files")


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
