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
    # the counts are metrics (columns of the runs table), on the child and summed on the parent
    assert {k: child.data.metrics[k] for k in tracking.check_counts(result)} == {
        "findings.passed": 2.0, "findings.failed": 0.0, "invariants.held": 0.0, "invariants.failed": 1.0}
    assert parent.data.metrics["findings.passed"] == 2.0
    assert parent.data.metrics["invariants.failed"] == 1.0
    # the child carries the knobs that shaped its item: the stage's params
    assert child.data.params == parent.data.params
    assert child.data.metrics["finding.0.value"] == 6.5
    assert child.data.metrics["finding.2.n"] == 3.0
    assert child.data.metrics["finding.2.se"] == pytest.approx(0.5 / 3 ** 0.5)
    assert "finding.0.se" not in child.data.metrics
    history = client.get_metric_history(child_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 2.0), (10, 1.5)]
    assert (store / "mlruns").is_dir()
    exp = client.get_experiment(run.experiment_id)
    assert exp.name == "KV Cache (Fast Inference)"
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the runs-table view
    latest = tracking.latest_runs_by_item(["KV Cache (Fast Inference)"])
    assert latest["kv-cache/1"]["run_id"] == child_id


def test_item_result_rejects_non_numeric_metrics():
    with pytest.raises(TypeError, match="not a number"):
        ItemResult(item="x/1", metrics={"a": "high"})


# -- a tracking server that is down -------------------------------------------------------------


@pytest.fixture
def http_server():
    """A local HTTP server answering every GET with the status in ``server.status``."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.server.paths.append(self.path)
            self.send_response(self.server.status)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    server.status, server.paths = 200, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_server_names_a_refused_connection(monkeypatch):
    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(tracking.TrackingServerError) as caught:
        tracking.check_server()
    assert str(caught.value) == (f"MLFLOW_TRACKING_URI {uri} does not answer (connection refused); "
                                 "start the server or unset the variable")


def test_check_server_gives_up_on_a_silent_server_after_its_timeout():
    import socket
    import time

    with socket.socket() as s:  # accepts connections (the backlog) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        uri = f"http://127.0.0.1:{s.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(tracking.TrackingServerError, match=r"\(no answer within 0.5 s\)"):
            tracking.check_server(uri, timeout=0.5)
        assert time.monotonic() - started < 5


def test_check_server_accepts_a_server_that_answers_and_refuses_a_failing_one(http_server):
    uri = f"http://127.0.0.1:{http_server.server_port}"
    tracking.check_server(uri)
    http_server.status = 404  # e.g. /health under a static prefix: the server still answers
    tracking.check_server(uri + "/")
    assert http_server.paths == ["/health", "/health"]
    http_server.status = 503  # a proxy in front of a stopped MLflow
    with pytest.raises(tracking.TrackingServerError, match=r"\(HTTP 503 from .*/health\)"):
        tracking.check_server(uri)


def test_check_server_checks_a_database_host_and_skips_local_stores(store):
    port = _closed_port()
    with pytest.raises(tracking.TrackingServerError, match="connection refused"):
        tracking.check_server(f"postgresql+psycopg2://u:p@127.0.0.1:{port}/mlflow")
    for uri in ("", f"sqlite:///{store / 'mlflow.db'}", str(store / "mlruns"), "file:///tmp/x"):
        tracking.check_server(uri)  # nothing to reach: no error, no waiting


def test_mlflow_http_retries_are_bounded_unless_the_user_sets_them(store, monkeypatch):
    for name in tracking.HTTP_DEFAULTS:
        monkeypatch.setenv(name, "unset")  # so that monkeypatch restores the variable after
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "5")
    tracking._client()
    from mlflow.environment_variables import (MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
                                              MLFLOW_HTTP_REQUEST_MAX_RETRIES)

    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 2
    assert MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get() == 5  # the user's value wins


def test_parent_sums_the_counts_of_its_items_and_old_experiments_get_the_kind_tag(store):
    mlflow = tracking._client()
    old = mlflow.create_experiment("Sampling")  # as an older version of the project left it
    ok = Finding.at_least("a", "x", 2.0, 1.0)
    bad = Finding.at_least("b", "y", 0.0, 1.0)
    with tracking.stage_run("sampling", "Sampling", {"top_k": 5}) as run:
        first = run.log_item(ItemResult(item="s/1", findings=[ok, bad]))
        second = run.log_item(ItemResult(item="s/2", findings=[bad]))
    assert run.experiment_id == old
    client = mlflow.MlflowClient()
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"
    parent = client.get_run(run.run_id).data.metrics
    assert (parent["findings.passed"], parent["findings.failed"]) == (1.0, 2.0)
    assert client.get_run(first).data.metrics["findings.failed"] == 1.0
    assert client.get_run(second).data.metrics["findings.passed"] == 0.0
    assert client.get_run(second).data.params == {"top_k": "5"}


MOE_PARAMS = """\
moe:                      # "Mixture of Experts (MoE)" items 1-3
  seq_len: 64
  variants: [[2, 1], [4, 1]]          # item 1: more MoE models
  dense_d_ff: [128, 1024]             # item 3: dense sweep (k*H, E*H)
  cbow:                   # Word2VecConfig of item 2 (arXiv:1301.3781)
    dim: 64               # a sub-key: the block's scope applies
  shared_by: 1            # items 1 (MoE), 3 (dense) and nothing else
  checks:
    min_balance: 0.9      # mixture-of-experts/2: normalized utilization entropy
    min_rounds: 5         # mixture-of-experts/2, 3: interleaved rounds
"""


def test_item_scopes_read_the_items_each_knob_serves_from_its_comment():
    assert tracking.item_scopes(MOE_PARAMS, "mixture-of-experts") == {
        "moe": {1, 2, 3}, "moe.variants": {1}, "moe.dense_d_ff": {3}, "moe.cbow": {2},
        "moe.shared_by": {1, 3}, "moe.checks.min_balance": {2}, "moe.checks.min_rounds": {2, 3}}
    flat = {k: "v" for k in ("moe.seq_len", "moe.variants", "moe.dense_d_ff", "moe.cbow.dim",
                             "moe.shared_by", "moe.checks.min_balance", "moe.checks.min_rounds")}
    scopes = tracking.item_scopes(MOE_PARAMS, "mixture-of-experts")
    assert sorted(tracking.item_params(flat, scopes, "mixture-of-experts/2")) == [
        "moe.cbow.dim", "moe.checks.min_balance", "moe.checks.min_rounds", "moe.seq_len"]
    assert sorted(tracking.item_params(flat, scopes, "mixture-of-experts/1")) == [
        "moe.seq_len", "moe.shared_by", "moe.variants"]
    assert tracking.item_params(flat, {}, "mixture-of-experts/1") == flat  # no comments: all


def test_child_run_carries_its_own_knobs_from_the_stage_params_file(store):
    (store / "params").mkdir()
    (store / "params" / "mixture_of_experts.yaml").write_text(MOE_PARAMS)
    params = {"moe": {"seq_len": 64, "variants": [[2, 1]], "dense_d_ff": [128], "cbow": {"dim": 64},
                      "shared_by": 1, "checks": {"min_balance": 0.9, "min_rounds": 5}}}
    with tracking.stage_run("moe", "Mixture of Experts (MoE)", params) as run:
        two = run.log_item(ItemResult(item="mixture-of-experts/2"))
    client = mlflow.MlflowClient()
    child = client.get_run(two).data
    assert child.params == {"moe.seq_len": "64", "moe.cbow.dim": "64", "moe.checks.min_balance": "0.9",
                            "moe.checks.min_rounds": "5"}
    assert child.tags["nlpc.params_scope"] == "item"
    assert len(client.get_run(run.run_id).data.params) == 7  # the stage's run keeps them all
