import mlflow
import pytest

from nlpcurriculum import tracking
from nlpcurriculum.results import Finding, ItemResult


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield tmp_path
    mlflow.set_tracking_uri(None)


def test_default_store_is_sqlite_at_project_root(store, monkeypatch):
    (store / "sub").mkdir()
    monkeypatch.chdir(store / "sub")
    assert tracking.tracking_uri() == f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.tracking_uri() == "http://127.0.0.1:5999"


def test_stage_run_logs_parent_and_item_child_with_tags_params_series_and_findings(store):
    result = ItemResult(
        item="kv-cache/1",
        metrics={"speedup": 6.5},
        series={"loss": [(0, 2.0), (10, 1.5)]},
        texts={"samples.txt": "hello"},
        findings=[Finding.at_least("cache is faster", "speedup", 6.5, 5.0),
                  Finding.at_most("output identical", "mismatches", 1, 0, kind="invariant"),
                  Finding.compare("cache wins per seed", "gain", [2.0, 2.5, 3.0], [1.0, 1.0, 1.0],
                                  margin=0.5)],
    )
    with tracking.stage_run("kv_cache", "KV Cache (Fast Inference)", {"model": {"d": 8}, "seed": 1}) as run:
        run.log_metrics({"stage_metric": 1.0})
        child_id = run.log_item(result, item_text="record & reuse KV states")
    assert (store / "mlflow.db").exists()
    client = mlflow.MlflowClient()
    parent = client.get_run(run.run_id)
    child = client.get_run(child_id)
    assert parent.data.params == {"model.d": "8", "seed": "1"}
    assert parent.data.tags["nlpc.stage"] == "kv_cache"
    assert parent.data.tags["nlpc.git_commit"]
    assert child.data.tags["mlflow.parentRunId"] == run.run_id
    assert child.info.experiment_id == parent.info.experiment_id == run.experiment_id
    assert child.data.tags["nlpc.item"] == "kv-cache/1"
    assert child.data.tags["nlpc.section"] == "KV Cache (Fast Inference)"
    assert child.data.tags["finding.0.passed"] == "true"
    assert child.data.tags["finding.1.passed"] == "false"
    assert child.data.tags["finding.1.kind"] == "invariant"
    assert child.data.tags["findings.passed"] == "true"
    assert child.data.tags["invariants.held"] == "false"
    assert child.data.metrics["finding.0.value"] == 6.5
    assert child.data.metrics["finding.2.n"] == 3.0
    assert child.data.metrics["finding.2.se"] == pytest.approx(0.5 / 3 ** 0.5)
    assert "finding.0.se" not in child.data.metrics
    history = client.get_metric_history(child_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 2.0), (10, 1.5)]
    assert (store / "mlruns").is_dir()
    exp = client.get_experiment(run.experiment_id)
    assert exp.name == "KV Cache (Fast Inference)"
    latest = tracking.latest_runs_by_item(["KV Cache (Fast Inference)"])
    assert latest["kv-cache/1"]["run_id"] == child_id


def test_item_result_rejects_non_numeric_metrics():
    with pytest.raises(TypeError, match="not a number"):
        ItemResult(item="x/1", metrics={"a": "high"})
