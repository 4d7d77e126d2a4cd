"""The Prefect flow over dvc.yaml: same dvc.lock as `dvc repro`, and a scheduled deployment."""

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import BIN, make_project_copy, run, stage_env

pytestmark = pytest.mark.slow
PY = str(BIN / "python")


def lock_entries(root: Path, stages: list[str]) -> dict:
    """The stages' dvc.lock entries, less their ``metrics/timings/`` outputs: clock readings
    (``stage.publish``), different on every run, so their hashes differ between two runs."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {stage: {**lock[stage], "outs": [o for o in lock[stage].get("outs", [])
                                             if not o["path"].startswith("metrics/timings/")]}
            for stage in stages}


# The spine up to the tokenizer, plus `synthetic`, which is independent of it, so the flow runs
# tasks concurrently; the whole DAG is what `reproduced` ran with `dvc repro`.
FLOW_TARGETS = ["tokenizer", "synthetic"]


UI = "http://mlflow.example:5001"


def test_flow_leaves_the_same_lock_as_dvc_repro(reproduced: Path, tmp_path: Path):
    root = make_project_copy(tmp_path / "flow")
    # two workers whatever the machine's default (cores // 2): the tasks overlap
    proc = run([PY, "flows/pipeline.py", "run", "--stages", *FLOW_TARGETS, "--mlflow-ui", UI,
                "--workers", "2"], root)
    assert "Finished in state Completed" in proc.stdout + proc.stderr
    ran = ["ingest", "dedup", "filter", "splits", "tokenizer", "synthetic"]  # with upstream
    assert lock_entries(root, ran) == lock_entries(reproduced, ran)
    # The summary outlives the temporary server: a file beside the report, its path printed last.
    assert proc.stdout.splitlines()[-1] == "summary: reports/flow_summary.md"
    summary = (root / "reports" / "flow_summary.md").read_text()
    assert summary == _artifact(root)
    assert "| splits | ran |" in summary and "| splits | train.documents |" in summary
    links = re.findall(r"\[MLflow run\]\(([^)]*)\)", summary)
    assert links and all(link.startswith(f"{UI}/#/experiments/") for link in links)
    # Up to date now: a second flow run reproduces nothing and leaves the lock byte-identical.
    before = (root / "dvc.lock").read_bytes()
    proc = run([PY, "flows/pipeline.py", "run", "--stages", "splits"], root)
    assert "Running stage" not in proc.stdout + proc.stderr
    assert (root / "dvc.lock").read_bytes() == before
    assert "| splits | up to date |" in (root / "reports" / "flow_summary.md").read_text()


def _artifact(root: Path) -> str:
    """The newest ``pipeline-summary`` artifact in the temporary server's database."""
    db = sqlite3.connect(root / ".prefect" / "prefect.db")
    (markdown,) = db.execute("select data from artifact where key='pipeline-summary' "
                             "order by created desc").fetchone()
    return json.loads(markdown) if markdown.startswith('"') else markdown


# A Prefect console line: "08:44:14.274 | ERROR   | Task run 'dvc-ingest' - message"
LOG_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) \| (\w+)\s*\| (.+?) - (.*)$")


def _log(output: str) -> list[tuple[float, str, str, str]]:
    """``(seconds of day, level, logger, message)`` of each Prefect log line of ``output``."""
    found = []
    for line in output.splitlines():
        m = LOG_LINE.match(line)
        if m:
            h, mi, sec, ms, level, name, message = m.groups()
            found.append((int(h) * 3600 + int(mi) * 60 + int(sec) + int(ms) / 1000, level, name,
                          message))
    return found


def test_a_params_typo_fails_once_without_retries_and_says_so_once(project: Path):
    """A user error (exit 2) is not retried: one attempt, its one-line error once in the log
    (at ERROR level) and once as the command's last line; the summary file says FAILED."""
    params = project / "params" / "pipeline.yaml"
    params.write_text(params.read_text().replace("  max_documents:", "  max_documnets:"))
    proc = run([PY, "flows/pipeline.py", "run", "--stages", "dedup"], project, check=False)
    output = proc.stdout + proc.stderr
    message = "params/pipeline.yaml: ingest.max_documnets: unknown key (known keys: "
    assert proc.returncode == 1, output
    assert output.count("repro --single-item ingest") == 1  # one attempt
    assert "Retry" not in output and "Traceback" not in output
    hits = [(level, text) for _, level, _, text in _log(output) if message in text]
    assert len(hits) == 1, hits  # the stage's own line; the task's and flow's states point at it
    assert hits[0][0] == "ERROR" and hits[0][1].startswith(f"error: {message}")
    failed = [name for _, _, name, text in _log(output)
              if text.startswith("Finished in state Failed")]
    assert len(failed) == 2 and failed[0] == "Task run 'dvc-ingest'", failed  # and the flow run
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and error_lines[0].startswith(f"error: stage 'ingest': {message}")
    assert "summary: reports/flow_summary.md" in proc.stdout.splitlines()
    summary = (project / "reports" / "flow_summary.md").read_text()
    assert summary.startswith("# nlpcurriculum pipeline: FAILED")
    assert f"| ingest | **FAILED**: {message}" in summary
    assert "| dedup | not run (an upstream stage failed) | |" in summary
    assert not (project / "metrics" / "dedup.json").exists()


def add_stage(project: Path, stage: str) -> None:
    """Put a stage's YAML (``"\\n  name:\\n    cmd: ..."``) first under ``stages:`` in dvc.yaml (a
    top-level key, ``metrics:``, follows the stages, so appending would land inside it)."""
    dvc_yaml = project / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("\nstages:\n", "\nstages:" + stage.rstrip("\n") + "\n", 1))


# A stage that prints a line, works 4 s, prints another: the first must reach the log at once.
SLOW_STAGE = """
  slow:
    cmd: echo first-line && sleep 4 && echo second-line && touch slow.txt
    outs:
      - slow.txt
"""


def test_stage_output_reaches_the_log_while_the_stage_runs(project: Path):
    add_stage(project, SLOW_STAGE)
    proc = run([PY, "flows/pipeline.py", "run", "--stages", "slow"], project)
    log = [(t, text) for t, _, name, text in _log(proc.stdout + proc.stderr)
           if name == "Task run 'dvc-slow'"]
    when = {text: t for t, text in log}
    assert [text for _, text in log if text.endswith("-line")] == ["first-line", "second-line"]
    assert (when["second-line"] - when["first-line"]) % 86400 >= 3.5  # logged as printed
    done = [t for t, text in log if text.startswith("Finished in state Completed")]
    assert len(done) == 1 and (done[0] - when["first-line"]) % 86400 >= 3.5


def test_flow_rejects_unknown_stage_and_section(project: Path):
    proc = run([PY, "flows/pipeline.py", "run", "--stages", "nope"], project, check=False)
    assert proc.returncode == 2 and "unknown stage(s) ['nope']" in proc.stderr
    proc = run([PY, "flows/pipeline.py", "run", "--section", "nope"], project, check=False)
    assert proc.returncode == 2 and "unknown section 'nope'" in proc.stderr
    proc = run([PY, "flows/pipeline.py", "run", "--workers", "0"], project, check=False)
    assert proc.returncode == 2 and "--workers must be >= 1, got 0" in proc.stderr


WORKERS = """
import os, sys
sys.path.insert(0, "flows")
import pipeline
print([pipeline.default_workers(c) for c in (1, 2, 3, 4, 16)])
print([pipeline.stage_threads(w, c) for w, c in ((1, 2), (2, 4), (8, 16), (3, 2))])
print(pipeline._env(3)["OMP_NUM_THREADS"], pipeline._env().get("OMP_NUM_THREADS"))
os.environ["OMP_NUM_THREADS"] = "5"
print(pipeline._env(3)["OMP_NUM_THREADS"])
"""


def test_stages_share_the_cores_two_threads_apiece(project: Path):
    """One stage at a time on 2 cores (two stages sharing them slowed each other far beyond 2x);
    each of ``w`` workers gets ``cores // w`` threads unless the user set ``OMP_NUM_THREADS``."""
    env = {k: v for k, v in stage_env(project).items() if k != "OMP_NUM_THREADS"}
    out = run([PY, "-c", WORKERS], project, env=env).stdout.splitlines()
    assert out == ["[1, 1, 1, 2, 8]", "[2, 2, 2, 1]", "3 None", "5"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_scheduled_deployment_runs_on_a_local_server(project: Path):
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = stage_env(project)
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    serve = None
    try:
        def healthy():
            try:
                return httpx.get(f"{api}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(healthy, 120, "the Prefect server")
        serve_env = {**env, "PREFECT_API_URL": api}
        serve = subprocess.Popen(
            [PY, "flows/pipeline.py", "serve", "--cron", "0 3 * * *", "--name", "nightly",
             "--stages", "ingest"],
            cwd=project, env=serve_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def deployment():
            r = httpx.post(f"{api}/deployments/filter", json={}, timeout=30)
            if r.status_code != 200:
                return None
            found = [d for d in r.json() if d["name"] == "nightly"]
            return found[0] if found else None

        dep = _wait(deployment, 120, "the deployment")
        crons = [s["schedule"].get("cron") for s in dep["schedules"]]
        assert crons == ["0 3 * * *"]
        assert dep["parameters"]["stages"] == ["ingest"]

        def created_run():  # the server's sqlite can be briefly busy: retry until it answers
            r = httpx.post(f"{api}/deployments/{dep['id']}/create_flow_run", json={}, timeout=30)
            return r.json() if r.status_code in (200, 201) else None

        flow_run = _wait(created_run, 60, "a flow run created from the deployment")

        def finished():
            r = httpx.get(f"{api}/flow_runs/{flow_run['id']}", timeout=30)
            state = r.json()["state"]["type"] if r.status_code == 200 else None
            return state if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

        assert _wait(finished, 180, "the triggered flow run") == "COMPLETED"
        record = json.loads((project / "metrics" / "ingest.json").read_text())
        assert record["metrics"]["documents"] == 150
        # With a server the summary is the run's artifact there, not a file in the checkout.
        r = httpx.post(f"{api}/artifacts/filter", timeout=30,
                       json={"artifacts": {"key": {"any_": ["pipeline-summary"]}}})
        assert [a["flow_run_id"] for a in r.json()] == [flow_run["id"]]
        assert "| ingest | ran |" in r.json()[0]["data"]
        assert not (project / "reports" / "flow_summary.md").exists()
    finally:
        if serve is not None:
            _stop(serve)  # stop the runner before the server it talks to, or it hangs
        _stop(server)


# -- two runs in one checkout -----------------------------------------------------------------

# A stage that reads ingest's output and runs until the test creates `release`: while it runs,
# its `dvc repro` holds DVC's stage lock on data/interim/documents.parquet.
HOLD_STAGE = """
  hold:
    cmd: touch holding && while [ ! -e release ]; do sleep 0.2; done && echo held > held.txt
    deps:
      - data/interim/documents.parquet
    outs:
      - held.txt
"""
# The flow, as if the other run started after the flow's own check of the checkout.
MID_FLOW = """
import sys
sys.path.insert(0, "flows")
import pipeline
pipeline.check_idle = lambda root: None
sys.exit(pipeline.main(["run", "--stages", "ingest", "--force"]))
"""
INGEST_OUTPUTS = ["data/interim/documents.parquet", "metrics/ingest.json"]


def _ingest_state(root: Path) -> dict:
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["ingest"]
    return {"lock": lock, **{p: (root / p).read_bytes() for p in INGEST_OUTPUTS}}


def test_runs_started_beside_a_running_dvc_repro_fail_in_one_line_and_corrupt_nothing(project: Path):
    dvc = str(BIN / "dvc")
    run([dvc, "repro", "ingest"], project)
    add_stage(project, HOLD_STAGE)
    before = _ingest_state(project)
    holder = subprocess.Popen([dvc, "repro", "hold"], cwd=project, env=stage_env(project),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    busy = (f"another DVC run (PID {holder.pid}: dvc repro hold); wait for it to finish or stop "
            "it, then rerun")
    try:
        _wait(lambda: (project / "holding").exists() or holder.poll() is not None, 120,
              "the other `dvc repro` to start its stage")
        assert holder.poll() is None, holder.stdout.read()

        # dvc repro + dvc repro: DVC's own stage lock names the other run.
        proc = run([dvc, "repro", "--force", "ingest"], project, check=False)
        assert proc.returncode != 0
        assert "is busy, it is being blocked by" in proc.stderr
        assert f"(PID {holder.pid}): " in proc.stderr

        # The flow checks the checkout before Prefect starts: one line, exit status 2.
        proc = run([PY, "flows/pipeline.py", "run", "--stages", "dedup"], project, check=False)
        assert proc.returncode == 2
        assert proc.stderr.strip() == (f"error: another DVC run is working in {project} "
                                       f"(PID {holder.pid}: dvc repro hold); wait for it to "
                                       "finish or stop it, then rerun")
        assert proc.stdout == ""  # no Prefect server was started

        # A run that starts after that check: the task fails once (no retries), one line.
        proc = run([PY, "-c", MID_FLOW], project, check=False)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 1
        assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
            f"error: stage 'ingest' did not run: its files are in use by {busy}"]
        assert output.count("repro --single-item ingest") == 1
        assert "Retry" not in output and "Traceback" not in output
    finally:
        (project / "release").touch()
        holder.wait(timeout=120)
    assert holder.returncode == 0
    assert _ingest_state(project) == before  # outputs and their dvc.lock entry untouched
    assert "up to date" in run([dvc, "status", "hold"], project).stdout


HOLD_FLOW_LOCK = """
import sys, time
sys.path.insert(0, "flows")
import pipeline
with pipeline.flow_lock(pipeline.ROOT):
    print("LOCKED", flush=True)
    time.sleep(120)
"""
HOLD_REPO_LOCK = """
import time, zc.lockfile
lock = zc.lockfile.LockFile(".dvc/tmp/lock")  # as DVC takes its repo lock
print("LOCKED", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("script, other", [
    (HOLD_FLOW_LOCK, "another pipeline flow is running"),
    (HOLD_REPO_LOCK, "another DVC run is working"),
], ids=["second-flow", "dvc-between-stages"])
def test_flow_refuses_a_checkout_another_flow_or_dvc_holds(project: Path, tmp_path: Path,
                                                           script: str, other: str):
    (project / ".dvc" / "tmp").mkdir(exist_ok=True)
    path = tmp_path / "hold.py"
    path.write_text(script)
    holder = subprocess.Popen([PY, str(path)], cwd=project, env=stage_env(project),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "LOCKED", holder.stderr.read()
        proc = run([PY, "flows/pipeline.py", "run", "--stages", "ingest"], project, check=False)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {other} in {project} (PID {holder.pid}: python "
                                   f"{path}); wait for it to finish or stop it, then rerun")
    assert not (project / "metrics" / "ingest.json").exists()


CLASSIFY = r"""
import sys
sys.path.insert(0, "flows")
import pipeline
from prefect.states import Failed
outputs = [
    "ERROR: failed to reproduce 'x': '/p/a' is busy, it is being blocked by:\n"
    "  (PID 12): /venv/bin/dvc repro x\n\nIf there are no processes with such PIDs, ...",
    "> python stages/x.py\nerror: params/pipeline.yaml: x.seed: expected int, got str 'zero'\n"
    "ERROR: failed to reproduce 'x': failed to run: python stages/x.py, exited with 2",
    "Traceback (most recent call last):\nKeyError: 'a'\n"
    "ERROR: failed to reproduce 'x': failed to run: python stages/x.py, exited with 1",
]
for output in outputs:
    error = pipeline.stage_failure("x", 255, output)
    retried = pipeline._retry_unless_final(None, None, Failed(data=error))
    print(type(error).__name__, retried, str(error).splitlines()[0], sep=" | ")
"""


def test_only_failures_a_retry_can_fix_are_retried(project: Path):
    """A busy checkout and a stage's user error (exit 2) end the task at once, in one line."""
    lines = run([PY, "-c", CLASSIFY], project).stdout.splitlines()
    assert lines == [
        "CheckoutBusy | False | stage 'x' did not run: its files are in use by another DVC run "
        "(PID 12: dvc repro x); wait for it to finish or stop it, then rerun",
        "StageError | False | stage 'x': params/pipeline.yaml: x.seed: expected int, got str 'zero'",
        "RuntimeError | True | stage 'x' crashed (exit 255); its output is in the log above",
    ]


SUMMARY = r"""
import os, sys
sys.path.insert(0, "flows")
import pipeline
passed = {"claim": "c", "metric": "m", "value": 1.0, "threshold": 0.5, "passed": True}
failed = {"claim": "loss falls", "metric": "val_loss_drop", "value": 0.0123456,
          "threshold": 0.1, "passed": False}
outcomes = {
    "a": {"ran": False, "record": {"metrics": {"n": 3}, "items": {"i1": {"findings": [passed]}}}},
    "b": {"ran": True, "record": {"items": {"i2": {"findings": [passed, failed]}}}},
    "c": {"error": pipeline.StageError("stage 'c': params/x.yaml: c.k: unknown key | here")},
    "d": {},
}
runs = {"i2": {"experiment_id": "7", "run_id": "r2"}}
print(pipeline.summary_markdown(outcomes, "http://ui:1", runs=runs), end="")
print(pipeline.mlflow_ui_base("http://opt/"), pipeline.mlflow_ui_base())
os.environ["NLPC_MLFLOW_UI"] = "http://env:2"
print(pipeline.mlflow_ui_base("http://opt"), pipeline.mlflow_ui_base())
"""


def test_summary_puts_failures_first_and_links_runs_at_the_chosen_ui(project: Path):
    params = project / "params" / "pipeline.yaml"
    params.write_text(params.read_text().replace("mlflow_ui_url: http://127.0.0.1:5000",
                                                 "mlflow_ui_url: http://params:3"))
    lines = run([PY, "-c", SUMMARY], project).stdout.splitlines()
    assert lines[0] == "# nlpcurriculum pipeline: FAILED"
    assert lines[2].endswith("; stages: 1 ran, 1 up to date, 1 FAILED, 1 not run.")
    assert lines[5:11] == [
        "|---|---|---|",
        "| a | up to date | 1 of 1 pass |",
        "| b | ran | 1 of 2 pass |",
        "| c | **FAILED**: params/x.yaml: c.k: unknown key \\| here | |",
        "| d | not run (an upstream stage failed) | |",
        "",
    ]
    assert lines[11:14] == ["## Failed findings", "",
                            "- `i2` (b): loss falls: val_loss_drop = 0.01235 (bound 0.1) "
                            "[MLflow run](http://ui:1/#/experiments/7/runs/r2)"]
    assert "| b | i2 | **FAIL** (1 of 2) | [MLflow run](http://ui:1/#/experiments/7/runs/r2) |" in lines
    assert "| a | i1 | pass (1) |  |" in lines and "| a | n | 3 |" in lines
    # --mlflow-ui, else $NLPC_MLFLOW_UI, else the report's param
    assert lines[-2:] == ["http://opt http://params:3", "http://opt http://env:2"]
