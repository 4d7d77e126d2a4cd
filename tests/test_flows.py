"""The Prefect flow over dvc.yaml: same dvc.lock as `dvc repro`, and a scheduled deployment."""

import json
import os
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
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {stage: lock[stage] for stage in stages}


# The spine up to the tokenizer, plus `synthetic`, which is independent of it, so the flow runs
# tasks concurrently; the whole DAG is what `reproduced` ran with `dvc repro`.
FLOW_TARGETS = ["tokenizer", "synthetic"]


def test_flow_leaves_the_same_lock_as_dvc_repro(reproduced: Path, tmp_path: Path):
    root = make_project_copy(tmp_path / "flow")
    proc = run([PY, "flows/pipeline.py", "run", "--stages", *FLOW_TARGETS], root)
    assert "Finished in state Completed" in proc.stdout + proc.stderr
    ran = ["ingest", "dedup", "filter", "splits", "tokenizer", "synthetic"]  # with upstream
    assert lock_entries(root, ran) == lock_entries(reproduced, ran)
    db = sqlite3.connect(root / ".prefect" / "prefect.db")
    (markdown,) = db.execute("select data from artifact where key='pipeline-metrics'").fetchone()
    assert "| splits | train.documents |" in markdown
    # Up to date now: a second flow run reproduces nothing and leaves the lock byte-identical.
    before = (root / "dvc.lock").read_bytes()
    proc = run([PY, "flows/pipeline.py", "run", "--stages", "splits"], root)
    assert "Running stage" not in proc.stdout + proc.stderr
    assert (root / "dvc.lock").read_bytes() == before


def test_flow_rejects_unknown_stage_and_section(project: Path):
    proc = run([PY, "flows/pipeline.py", "run", "--stages", "nope"], project, check=False)
    assert proc.returncode == 2 and "unknown stage(s) ['nope']" in proc.stderr
    proc = run([PY, "flows/pipeline.py", "run", "--section", "nope"], project, check=False)
    assert proc.returncode == 2 and "unknown section 'nope'" in proc.stderr


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
    finally:
        if serve is not None:
            _stop(serve)  # stop the runner before the server it talks to, or it hangs
        _stop(server)
