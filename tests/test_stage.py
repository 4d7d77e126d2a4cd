"""`publish`: binary item files (e.g. an animated GIF) land in plots/<stage>/ and in MLflow;
`main_guard`: a stage answers --help with its docstring and ends with its wall time."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

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


def test_publish_writes_clock_readings_apart_so_the_metrics_file_is_the_same_on_a_rerun(project):
    """Timings and timed findings go to metrics/timings/<stage>.json; metrics/<stage>.json holds the
    deterministic part, byte-identical across two publishes whose clocks differ."""
    def publish_once(speedup: float) -> tuple[str, dict]:
        fast = Finding.timing_ratio("cache is faster", "speedup", [speedup, speedup * 1.1], [1.0, 1.0], 1.0)
        same = Finding.invariant("same tokens", "mismatches", 0, True)
        result = ItemResult(item="kv-cache/1", metrics={"mismatches": 0}, timings={"speedup": speedup},
                            findings=[same, fast])
        publish("kv_cache", {"seed": 1}, results=[result], started=0.0)
        return ((project / "metrics/kv_cache.json").read_text(),
                json.loads((project / "metrics/timings/kv_cache.json").read_text()))

    first, timed_first = publish_once(2.0)
    second, timed_second = publish_once(3.0)
    assert first == second
    assert [f["metric"] for f in json.loads(first)["items"]["kv-cache/1"]["findings"]] == ["mismatches"]
    item = timed_second["items"]["kv-cache/1"]
    assert item["timings"] == {"speedup": 3.0}
    assert [(f["metric"], f["timed"]) for f in item["findings"]] == [("speedup", True)]
    assert timed_first["items"]["kv-cache/1"]["timings"] == {"speedup": 2.0}
    assert timed_second["timings"]["wall_time_s"] > 0 and timed_second["host"]["cores"] >= 1


def test_publish_writes_stage_level_findings_of_a_stage_without_items(project):
    """The spine's pretrain has no item: its findings sit at the top of metrics/pretrain.json."""
    beats = Finding.compare("beats the bigram", "model_minus_bigram_loss", [4.0, 4.1], [5.0, 5.2],
                            margin=0.25, higher_is_better=False)
    record = publish("pretrain", {"seed": 1}, metrics={"val_loss": 4.05}, findings=[beats])
    saved = json.loads((project / "metrics/pretrain.json").read_text())
    assert saved == record and saved["items"] == {}
    assert [(f["metric"], f["passed"], f["n"]) for f in saved["findings"]] == [
        ("model_minus_bigram_loss", True, 2)]
    runs = mlflow.search_runs(experiment_names=["Pipeline"], output_format="list")
    logged = runs[0].data.metrics
    assert logged["finding.model_minus_bigram_loss.passed"] == 1.0 and logged["val_loss"] == 4.05


def test_item_result_refuses_a_name_that_is_both_a_metric_and_a_timing():
    with pytest.raises(ValueError, match="both metrics and timings"):
        ItemResult(item="x/1", metrics={"speedup": 1.0}, timings={"speedup": 2.0})


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


# -- faults while a real stage runs (a smoke-profile copy of the project) ----------------------

STAGE_OUTPUTS = ["data/interim/documents.parquet", "metrics/ingest.json"]
# Runs stages/ingest.py with pandas' parquet writer replaced by FAULT (a statement run first).
PATCHED_STAGE = """
import errno, io, runpy, sys, time
import pandas as pd
real = pd.DataFrame.to_parquet
def to_parquet(self, path, **kw):
    buffer = io.BytesIO()
    real(self, buffer, **kw)
    data = buffer.getvalue()
    open(path, "wb").write(data[: len(data) // 2])  # half the table is on disk
    {fault}
pd.DataFrame.to_parquet = to_parquet
runpy.run_path("stages/ingest.py", run_name="__main__")
"""
HANG = 'print("WRITING", flush=True); time.sleep(120)'
DISK_FULL = 'raise OSError(errno.ENOSPC, "No space left on device")'


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """A project copy where `ingest` ran once: ``(root, env, {output: bytes})``."""
    from tests.conftest import BIN, make_project_copy, run, stage_env

    root = make_project_copy(tmp_path_factory.mktemp("faults") / "project")
    run([str(BIN / "python"), "stages/ingest.py"], root)
    return root, stage_env(root), {p: (root / p).read_bytes() for p in STAGE_OUTPUTS}


def _outputs(root):
    return {p: (root / p).read_bytes() for p in STAGE_OUTPUTS}


def _temporaries(root):
    return sorted(str(p.relative_to(root)) for p in root.glob("**/.*.tmp"))


def test_stage_killed_while_writing_keeps_its_previous_outputs(ingested):
    import signal
    import subprocess
    import sys

    root, env, before = ingested
    child = subprocess.Popen([sys.executable, "-c", PATCHED_STAGE.format(fault=HANG)], cwd=root,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "WRITING", child.stderr.read()
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert _outputs(root) == before
    (left,) = _temporaries(root)  # the dead stage's half table, under its pid
    assert left.startswith(f"data/interim/.documents.parquet.{child.pid}.")
    proc = subprocess.run([sys.executable, "stages/ingest.py"], cwd=root, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert _outputs(root) == before  # the rerun writes the same bytes, and cleans up
    assert _temporaries(root) == []


def test_full_disk_fails_in_one_line_naming_the_output_and_keeps_it(ingested):
    import subprocess
    import sys

    root, env, before = ingested
    proc = subprocess.run([sys.executable, "-c", PATCHED_STAGE.format(fault=DISK_FULL)],
                          cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: no space left on device while writing data/interim/documents.parquet; the "
        "previous documents.parquet is kept. Free some space and rerun")
    assert _outputs(root) == before
    assert _temporaries(root) == []


def test_tracking_server_down_fails_fast_in_one_line_before_the_work(ingested):
    import socket
    import subprocess
    import sys
    import time

    root, env, before = ingested
    with socket.socket() as s:  # a port on which nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mtimes = {p: (root / p).stat().st_mtime_ns for p in STAGE_OUTPUTS}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "stages/ingest.py"], cwd=root,
                          env={**env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"},
                          capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: MLFLOW_TRACKING_URI http://127.0.0.1:{port} does not answer (connection "
        "refused); start the server or unset the variable")
    assert took < 30, f"took {took:.0f} s"  # MLflow's own retries take about 4 minutes
    assert _outputs(root) == before
    assert {p: (root / p).stat().st_mtime_ns for p in STAGE_OUTPUTS} == mtimes  # not even rewritten


def test_user_error_lines_for_a_full_disk_and_a_server_lost_mid_stage():
    import errno

    from mlflow.exceptions import MlflowException

    from nlpcurriculum.stage import user_error

    assert user_error(OSError(errno.ENOSPC, "No space left on device", "mlruns/0/x.png")) == (
        "no space left on device while writing mlruns/0/x.png. Free some space and rerun")
    lost = MlflowException("API request to http://127.0.0.1:5999/api/2.0/mlflow/runs/create "
                           "failed with exception HTTPConnectionPool(host='127.0.0.1', "
                           "port=5999): Max retries exceeded")
    assert user_error(lost).startswith("the MLflow tracking server stopped answering while the "
                                       "stage logged its results; the stage is not recorded: "
                                       "API request to http://127.0.0.1:5999/")
    assert user_error(MlflowException("RESOURCE_DOES_NOT_EXIST: run 'x' not found")) is None
    assert user_error(KeyError("a bug")) is None  # a traceback, not a line


REPO = Path(__file__).resolve().parents[1]
STAGES = sorted((REPO / "stages").glob("*.py"))


def _python(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MPLBACKEND": "Agg"}
    env = {k: v for k, v in env.items() if not k.startswith("MLFLOW_")}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_stage_help_prints_its_docstring_and_does_no_work(tmp_path, flag):
    proc = _python([str(REPO / "stages/splits.py"), flag], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Stage `splits`") and "done in" not in proc.stdout
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no params read, no outputs, no mlflow.db


@pytest.mark.parametrize("script", STAGES, ids=lambda p: p.stem)
def test_every_stage_runs_through_main_guard_and_has_a_docstring(script):
    """--help works for a stage when its ``__main__`` block is ``main_guard(main)`` (checked here
    from the source, without running 30 stages)."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    assert (ast.get_docstring(tree) or "").startswith(f"Stage `{script.stem}`")
    guard = tree.body[-1]
    assert isinstance(guard, ast.If) and ast.unparse(guard.test) == "__name__ == '__main__'"
    assert [ast.unparse(s) for s in guard.body] == ["main_guard(main)"]


def test_main_guard_prints_the_wall_time_last(tmp_path):
    script = tmp_path / "toy.py"
    script.write_text('"""Stage `toy`: sleeps."""\nimport time\nfrom nlpcurriculum.stage import main_guard\n\n'
                      'def main():\n    time.sleep(0.2)\n    print("toy: 1 item")\n\n'
                      'if __name__ == "__main__":\n    main_guard(main)\n')
    lines = _python([str(script)], tmp_path).stdout.splitlines()
    assert lines[0] == "toy: 1 item"
    assert re.fullmatch(r"toy: done in \d+\.\d s", lines[1]) and float(lines[1].split()[3]) >= 0.2
    assert _python([str(script), "--help"], tmp_path).stdout == "Stage `toy`: sleeps.\n"
