"""Prefect flow over the DVC pipeline: one task per DVC stage, built from dvc.yaml.

DVC owns the graph and the caching; Prefect adds orchestration: retries at stage boundaries,
independent stages run concurrently, ad-hoc runs of everything / one section / named stages, cron
schedules, and a markdown artifact with each stage's metrics and MLflow links. Each task runs
``dvc repro --single-item <stage>`` once its upstream tasks are done, so a flow run leaves the same
``dvc.lock`` as ``dvc repro``.

    python flows/pipeline.py run                               # everything
    python flows/pipeline.py run --section tokenization-and-embeddings
    python flows/pipeline.py run --stages splits report        # these and their upstream
    python flows/pipeline.py serve --cron "0 3 * * *"          # scheduled (needs a server)

With no ``PREFECT_API_URL`` Prefect starts a temporary local server (about 15-20 s); its state
lives in ``.prefect/`` inside the project.

One checkout runs one pipeline at a time. A flow holds ``.dvc/tmp/pipeline-flow.lock`` while it
runs, and before it starts it looks for DVC processes working in the checkout (the pids in DVC's
stage locks, ``.dvc/tmp/rwlock``, and the holder of its repo lock, ``.dvc/tmp/lock``); either
one stops it with one line naming the other run and exit status 2, before Prefect starts. A
``dvc repro`` that starts after the flow makes a task fail with DVC's "is busy" error: that task
is not retried, and the flow ends with one line naming the other run. A stage that fails with a
user error (exit status 2: bad params, a broken contract) is not retried either.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the virtualenv's bin: dvc, and `python` for stage commands

os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "true")

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.futures import wait  # noqa: E402
from prefect.states import Failed  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from nlpcurriculum import dag  # noqa: E402
from nlpcurriculum.io import pid_alive  # noqa: E402


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


FLOW_LOCK = Path(".dvc/tmp/pipeline-flow.lock")
# DVC's error when a path a stage needs is locked by another DVC process:
#   ERROR: failed to reproduce 'x': '<path>' is busy, it is being blocked by:
#     (PID 123): /path/to/dvc repro x
_BLOCKER = re.compile(r"^\s*\(PID (\d+)\): (.+)$", re.MULTILINE)


class StageError(RuntimeError):
    """A stage failed in a way a retry cannot fix; the message is one line for the user."""


class CheckoutBusy(StageError):
    """Another DVC run or pipeline flow is working in this checkout."""


def _command(pid: int) -> str:
    """A process's command line, its program shown by name (``dvc repro x``), or ``?``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    argv = [a for a in argv if a]
    return " ".join([Path(argv[0]).name, *argv[1:]]) if argv else "?"


def _shorten(cmd: str) -> str:
    head, _, rest = cmd.partition(" ")
    return " ".join(filter(None, [Path(head).name, rest]))


def dvc_runs(root: Path) -> dict[int, str]:
    """DVC processes working in the checkout at ``root`` now: ``{pid: command}``.

    A running stage is in DVC's stage locks (``.dvc/tmp/rwlock``, with its pid and command); a
    DVC command between stages holds the repo lock (``.dvc/tmp/lock``, an ``flock`` with the
    holder's pid inside). Entries of processes that are gone do not count.
    """
    tmp = root / ".dvc" / "tmp"
    runs: dict[int, str] = {}
    try:
        locks = json.loads((tmp / "rwlock").read_text())
    except (OSError, ValueError):  # none yet, or being rewritten at this instant
        locks = {}
    for mode in ("read", "write"):
        for infos in (locks.get(mode) or {}).values():
            for info in infos if isinstance(infos, list) else [infos]:
                pid = int(info.get("pid", 0))
                if pid and pid != os.getpid() and pid_alive(pid):
                    runs[pid] = _shorten(str(info.get("cmd", "?")))
    holder = _lock_holder(tmp / "lock")
    if holder and holder != os.getpid() and holder not in runs:
        runs[holder] = _command(holder)
    return runs


def _lock_holder(path: Path) -> int | None:
    """The pid holding DVC's repo lock file, or ``None`` when nobody holds it."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 64).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _describe(runs: dict[int, str]) -> str:
    return "; ".join(f"PID {pid}: {cmd}" if pid > 0 else "an unknown process"
                     for pid, cmd in sorted(runs.items()))


def check_idle(root: Path) -> None:
    """Raise :class:`CheckoutBusy` when a DVC process is working in the checkout."""
    runs = dvc_runs(root)
    if runs:
        raise CheckoutBusy(f"another DVC run is working in {root} ({_describe(runs)}); wait for "
                           "it to finish or stop it, then rerun")


_held_flow_lock = False


@contextmanager
def flow_lock(root: Path) -> Iterator[None]:
    """Hold the checkout's pipeline-flow lock (re-entrant in one process).

    Raises:
        CheckoutBusy: another flow holds it; the message names its pid and command.
    """
    import fcntl

    global _held_flow_lock
    if _held_flow_lock:
        yield
        return
    path = root / FLOW_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "an unknown process"
            raise CheckoutBusy(f"another pipeline flow is running in {root} ({holder}); wait "
                               "for it to finish or stop it, then rerun") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"PID {os.getpid()}: {_command(os.getpid())}\n".encode())
        _held_flow_lock = True
        try:
            yield
        finally:
            _held_flow_lock = False
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def stage_failure(stage: str, returncode: int, output: str) -> Exception:
    """The error for a failed ``dvc repro --single-item <stage>``, from its exit code and output."""
    if "is busy, it is being blocked by" in output:
        blockers = {int(pid): _shorten(cmd.strip()) for pid, cmd in _BLOCKER.findall(output)}
        return CheckoutBusy(f"stage {stage!r} did not run: its files are in use by another DVC "
                            f"run ({_describe(blockers)}); wait for it to finish or stop it, "
                            "then rerun")
    errors = [line.removeprefix("error: ") for line in output.splitlines()
              if line.startswith("error: ")]
    if "exited with 2" in output and errors:  # the stage's own one-line user error
        return StageError(f"stage {stage!r}: {errors[-1]}")
    return RuntimeError(f"stage {stage!r} failed (exit {returncode}):\n{output[-2000:]}")


def _retry_unless_final(task, task_run, state) -> bool:
    """Prefect retry condition: retry a failure, unless a retry cannot help."""
    return not isinstance(state.data, StageError)


@task(retries=2, retry_delay_seconds=3, retry_condition_fn=_retry_unless_final,
      task_run_name="dvc-{stage}")
def run_stage(stage: str, force: bool = False) -> dict:
    """Reproduce one DVC stage (its upstream already ran); returns its metrics record.

    ``--wait-for-lock``: DVC holds its repo lock for a moment before and after each stage; two
    tasks of this flow wait for each other there instead of failing.
    """
    logger = get_run_logger()
    cmd = [str(BIN / "dvc"), "--wait-for-lock", "repro", "--single-item", stage]
    cmd += ["--force"] if force else []
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    logger.info("%s\n%s", " ".join(cmd[1:]), output[-3000:])
    if proc.returncode != 0:
        raise stage_failure(stage, proc.returncode, output)
    metrics_file = ROOT / "metrics" / f"{stage}.json"
    return json.loads(metrics_file.read_text()) if metrics_file.exists() else {}


def select_stages(stages: list[str] | None, section: str | None) -> tuple[dict, list[str]]:
    graph = dag.load(ROOT / "dvc.yaml")
    if section:
        return graph, dag.stages_of_section(graph, section)
    if stages:
        return graph, dag.with_upstream(graph, stages)
    return graph, dag.topological(graph)


@flow(name="nlpcurriculum-pipeline", task_runner=ThreadPoolTaskRunner(max_workers=2))
def pipeline(
    stages: list[str] | None = None, section: str | None = None, force: bool = False
) -> dict[str, dict]:
    """Run the DVC stages (all, a section's, or named ones with their upstream) as tasks.

    A checkout that is busy, or a stage that fails, ends the flow in a Failed state whose
    message is one line (the stage's output is in the task's log).
    """
    try:
        with flow_lock(ROOT):
            check_idle(ROOT)
            return _run_tasks(stages, section, force)
    except StageError as exc:
        return Failed(message=str(exc))


def _run_tasks(stages: list[str] | None, section: str | None, force: bool) -> dict[str, dict]:
    graph, order = select_stages(stages, section)
    futures = {}
    for stage in order:
        upstream = [futures[u] for u in graph[stage] if u in futures]
        futures[stage] = run_stage.submit(stage, force=force, wait_for=upstream)
    wait(list(futures.values()))
    for stage in order:  # the first stage that failed (its downstream did not start)
        state = futures[stage].state
        if state.is_failed():
            error = state.result(raise_on_failure=False)
            if isinstance(error, StageError):
                raise error
            raise StageError(f"stage {stage!r} failed; its output is in the log above")
    results = {stage: future.result() for stage, future in futures.items()}
    create_markdown_artifact(
        key="pipeline-metrics", markdown=metrics_markdown(results), description="stage metrics"
    )
    return results


def metrics_markdown(results: dict[str, dict]) -> str:
    """A markdown table of each stage's metrics, with the MLflow runs of its items."""
    from nlpcurriculum import registry, tracking

    ui = "http://127.0.0.1:5000"
    titles = [s.title for s in registry.sections()]
    runs = tracking.latest_runs_by_item(titles)
    lines = ["# nlpcurriculum pipeline", "", "| stage | metric | value |", "|---|---|---:|"]
    for stage, record in results.items():
        for name, value in sorted((record.get("metrics") or {}).items()):
            lines.append(f"| {stage} | {name} | {value} |")
    item_lines = []
    for stage, record in results.items():
        for item_id, rec in (record.get("items") or {}).items():
            ok = all(f.get("passed") for f in rec.get("findings", []))
            run = runs.get(item_id)
            link = (
                f"[MLflow run]({ui}/#/experiments/{run['experiment_id']}/runs/{run['run_id']})"
                if run
                else ""
            )
            item_lines.append(f"| {stage} | {item_id} | {'pass' if ok else 'FAIL'} | {link} |")
    if item_lines:
        lines += ["", "| stage | item | findings | run |", "|---|---|---|---|", *item_lines]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the DVC pipeline as a Prefect flow.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--stages", nargs="+", help="these stages and their upstream")
        p.add_argument("--section", help="a curriculum section id or title")
        p.add_argument("--force", action="store_true", help="rerun even if unchanged")
    sub.choices["serve"].add_argument("--cron", required=True, help='e.g. "0 3 * * *"')
    sub.choices["serve"].add_argument("--name", default="scheduled")
    args = parser.parse_args(argv)
    params = {"stages": args.stages, "section": args.section, "force": args.force}
    try:
        select_stages(args.stages, args.section)  # fail fast on a bad name
    except dag.DagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "run":
        try:
            with flow_lock(ROOT):
                check_idle(ROOT)  # before Prefect's server starts: a busy checkout fails at once
                state = pipeline(**params, return_state=True)
        except CheckoutBusy as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if state.is_failed():
            print(f"error: {state.message}", file=sys.stderr)
            return 1
    else:
        pipeline.serve(name=args.name, cron=args.cron, parameters=params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
