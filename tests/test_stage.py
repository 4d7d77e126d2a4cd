"""`publish`: binary item files (e.g. an animated GIF) land in plots/<stage>/ and in MLflow."""

import json

import mlflow
import pytest

from nlpcurriculum.results import Finding, ItemResult
from nlpcurriculum.stage import publish


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield tmp_path
    mlflow.set_tracking_uri(None)


def test_publish_writes_item_files_and_logs_them_to_the_item_run(project):
    gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
    result = ItemResult(item="positional-embeddings/5", files={"anim.gif": gif},
                        findings=[Finding.at_most("same vector before", "d", 0.0, 0.0)])
    record = publish("positional_embeddings", {"seed": 1}, results=[result])
    target = project / "plots/positional_embeddings/positional-embeddings-5_anim.gif"
    assert target.read_bytes() == gif
    assert record["items"]["positional-embeddings/5"]["figures"] == [
        "plots/positional_embeddings/positional-embeddings-5_anim.gif"]
    saved = json.loads((project / "metrics/positional_embeddings.json").read_text())
    assert saved["items"]["positional-embeddings/5"]["findings"][0]["passed"] is True
    client = mlflow.MlflowClient()
    runs = client.search_runs(
        [mlflow.get_experiment_by_name("Positional Embeddings").experiment_id],
        filter_string="tags.`nlpc.item` = 'positional-embeddings/5'")
    assert [a.path for a in client.list_artifacts(runs[0].info.run_id)] == [target.name]


def test_item_result_rejects_files_that_are_not_bytes():
    with pytest.raises(TypeError, match="not bytes"):
        ItemResult(item="x/1", files={"a.gif": "GIF89a"})


def test_save_item_texts_writes_one_tables_file_or_one_file_per_text_and_replaces_the_folder(tmp_path):
    from nlpcurriculum.stage import save_item_texts

    results = [ItemResult(item="sec/1", texts={"a.txt": "alpha"}),
               ItemResult(item="sec/2", texts={"b.txt": "beta"})]
    out = tmp_path / "out"
    save_item_texts(out, results)
    assert [p.name for p in out.iterdir()] == ["tables.txt"]
    assert (out / "tables.txt").read_text() == "== sec/1 a.txt\nalpha\n== sec/2 b.txt\nbeta\n"
    save_item_texts(out, results, separate=True)  # the old tables.txt does not survive
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt"]
    assert (out / "b.txt").read_text() == "beta"
