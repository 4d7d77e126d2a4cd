"""Prefect flow over the DVC pipeline: one task per DVC stage, built from dvc.yaml.

DVC owns the graph and the caching; Prefect adds orchestration: retries at stage boundaries,
independent stages run concurrently where the cores allow (``--workers``, default cores // 2,
each stage with its share of the cores as threads: one at a time on 2 cores), ad-hoc runs of
everything / one section / named stages, cron schedules, and a pass/FAIL summary of each stage
and item with MLflow links. Each task runs
``dvc repro --single-item <stage>`` once its upstream tasks are done, so a flow run leaves the same
``dvc.lock`` as ``dvc repro``; the stage's output goes to the task's log line by line as it is
printed.

    python flows/pipeline.py run                               # everything
    python flows/pipeline.py run --section tokenization-and-embeddings
    python flows/pipeline.py run --stages splits report        # these and their upstream
    python flows/pipeline.py run --mlflow-ui http://host:5000  # where the run links point
    python flows/pipeline.py run --workers 4                   # stages at once (default cores // 2)
    python flows/pipeline.py serve --cron "0 3 * * *"          # scheduled (needs a server)

With no ``PREFECT_API_URL`` Prefect starts a temporary local server (about 15-20 s); its state
lives in ``.prefect/`` inside the project, and the summary is written to
``reports/flow_summary.md`` (beside the report; git-ignored, not a DVC output), whose path the
run prints at the end. With a server the summary is the flow run's ``pipeline-summary``
artifact. Run links point at ``--mlflow-ui``, else ``$NLPC_MLFLOW_UI``, else the report's
``report.mlflow_ui_url`` param (http://127.0.0.1:5000).

One checkout runs one pipeline at a time. A flow holds ``.dvc/tmp/pipeline-flow.lock`` while it
runs, and before it starts it looks for DVC processes working in the checkout (the pids in DVC's
stage locks, ``.dvc/tmp/rwlock``, and the holder of its repo lock, ``.dvc/tmp/lock``); either
one stops it with one line naming the other run and exit status 2, before Prefect starts. A
``dvc repro`` that starts after the flow makes a task fail with DVC's "is busy" error: that task
is not retried, and the flow ends with one line naming the other run. A stage that fails with a
user error (exit status 2: bad params, a broken contract) is not retried either: its one-line
error is in the task's log once, and the flow ends with it. Only crashes (any other exit status)
are retried.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections import deque
from contextlib import contextmanager
from datetime import datetime, timezone
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
from prefect.runtime import flow_run  # noqa: E402
from prefect.settings import get_current_settings  # noqa: E402
from prefect.states import Failed  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from nlpcurriculum import dag  # noqa: E402
from nlpcurriculum.io import pid_alive, write_text  # noqa: E402

#: a Prefect server is configured (PREFECT_API_URL, or the active Prefect profile), read before a
#: run starts a temporary one
SERVER_CONFIGURED = bool(get_current_settings().api.url)
SUMMARY_FILE = Path("reports/flow_summary.md")  # the summary without a server, beside the report
ARTIFACT_KEY = "pipeline-summary"
MLFLOW_UI_ENV = "NLPC_MLFLOW_UI"
MLFLOW_UI_DEFAULT = "http://127.0.0.1:5000"


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers(cores: int | None = None) -> int:
    """Stages run side by side only two cores apiece: ``cores // 2``, at least 1.

    A stage uses every core it is given (torch's intra-op threads), and two stages sharing
    cores slow each other far beyond twice: on 2 cores, with 2 workers, the ``ssm`` stage (440 s
    alone) ran for over 56 minutes beside other stages, as each of its many small parallel ops
    waited for a thread the other stage had taken. So a 2-core machine runs one stage at a time,
    like ``dvc repro``.
    """
    return max(1, (usable_cores() if cores is None else cores) // 2)


def stage_threads(workers: int, cores: int | None = None) -> int:
    """Threads per stage when ``workers`` stages share the cores (``OMP_NUM_THREADS``)."""
    return max(1, (usable_cores() if cores is None else cores) // workers)


def _env(threads: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if threads is not None:  # torch's default intra-op threads; a user's own setting wins
        env.setdefault("OMP_NUM_THREADS", str(threads))
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"  # stages (and DVC) print each line as it happens, into the pipe
    return env


FLOW_LOCK = Path(".dvc/tmp/pipeline-flow.lock")
# DVC's error when a path a stage needs is locked by another DVC process:
#   ERROR: failed to reproduce 'x': '<path>' is busy, it is being blocked by:
#     (PID 123): /path/to/dvc repro x
_BLOCKER = re.compile(r"^\s*\(PID (\d+)\): (.+)$", re.MULTILINE)


class StageError(RuntimeError):
    """A stage failed in a way a retry cannot fix; the message is one line for the user."""

    stage: str | None = None  # set by the flow: the stage that failed
    kind: str = "user error (exit 2)"


class CheckoutBusy(StageError):
    """Another DVC run or pipeline flow is working in this checkout."""

    kind = "busy checkout"


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
    """The error for a failed ``dvc repro --single-item <stage>``, from its exit code and output.

    A :class:`StageError` (not retried) for DVC's "is busy" error and for the stage's own
    one-line user error (exit 2); a ``RuntimeError`` (a crash, retried) otherwise. The output
    itself is already in the task's log: the crash's message only points there.
    """
    if "is busy, it is being blocked by" in output:
        blockers = {int(pid): _shorten(cmd.strip()) for pid, cmd in _BLOCKER.findall(output)}
        return CheckoutBusy(f"stage {stage!r} did not run: its files are in use by another DVC "
                            f"run ({_describe(blockers)}); wait for it to finish or stop it, "
                            "then rerun")
    errors = [line.removeprefix("error: ") for line in output.splitlines()
              if line.startswith("error: ")]
    if "exited with 2" in output and errors:  # the stage's own one-line user error
        return StageError(f"stage {stage!r}: {errors[-1]}")
    return RuntimeError(f"stage {stage!r} crashed (exit {returncode}); its output is in the log "
                        "above")


def _retry_unless_final(task, task_run, state) -> bool:
    """Prefect retry condition: retry a failure, unless a retry cannot help."""
    return not isinstance(_error_of(state), StageError)


def _error_of(state) -> BaseException | None:
    """The exception a failed task state holds (raised, or returned as its data)."""
    try:
        data = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - a result that cannot be read is no StageError
        return None
    return data if isinstance(data, BaseException) else None


def stream(cmd: list[str], emit, cwd: Path = ROOT, keep: int = 200,
           threads: int | None = None) -> tuple[int, str]:
    """Run ``cmd`` with stderr merged into stdout; ``emit`` each line as it is printed.

    Returns the exit status and the last ``keep`` lines (what :func:`stage_failure` reads).
    ``threads``: ``OMP_NUM_THREADS`` of the command, unless the environment sets it.
    """
    tail: deque[str] = deque(maxlen=keep)
    with subprocess.Popen(cmd, cwd=cwd, env=_env(threads), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace",
                          bufsize=1) as proc:
        for line in proc.stdout:  # a "\r" progress redraw counts as a line too
            line = line.rstrip()
            if line:
                tail.append(line)
                emit(line)
    return proc.returncode, "\n".join(tail)


def _log_line(logger, line: str) -> None:
    """A stage's output line at the level it announces (``error:``, DVC's ``ERROR:``, ...)."""
    head = line.split(":", 1)[0].strip().lower()
    level = {"error": logging.ERROR, "warning": logging.WARNING}.get(head, logging.INFO)
    logger.log(level, "%s", line)


@task(retries=2, retry_delay_seconds=3, retry_condition_fn=_retry_unless_final,
      task_run_name="dvc-{stage}")
def run_stage(stage: str, force: bool = False, threads: int | None = None):
    """Reproduce one DVC stage (its upstream already ran): ``{"ran": bool, "record": metrics}``.

    ``threads``: the stage's default torch threads (its share of the cores; a stage whose params
    set its threads keeps them).

    The stage's output is logged line by line while it runs. A user error or a busy checkout
    returns a Failed state (its message points at the error already in the log; the
    :class:`StageError` is its data), which is not retried; a crash raises and is retried.

    ``--wait-for-lock``: DVC holds its repo lock for a moment before and after each stage; two
    tasks of this flow wait for each other there instead of failing.
    """
    logger = get_run_logger()
    cmd = [str(BIN / "dvc"), "--wait-for-lock", "repro", "--single-item", stage]
    cmd += ["--force"] if force else []
    logger.info("$ dvc %s", " ".join(cmd[1:]))
    returncode, output = stream(cmd, lambda line: _log_line(logger, line), threads=threads)
    if returncode != 0:
        error = stage_failure(stage, returncode, output)
        if isinstance(error, StageError):
            return Failed(message=f"{error.kind}, not retried: its error is in the log above",
                          data=error)
        raise error
    return {"ran": "didn't change, skipping" not in output, "record": stage_record(stage)}


def stage_record(stage: str, root: Path = ROOT) -> dict:
    """``metrics/<stage>.json``, each item's timed findings (``metrics/timings/``) added back."""
    path = root / "metrics" / f"{stage}.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    timed = root / "metrics" / "timings" / f"{stage}.json"
    if record and timed.exists():
        for item, rec in (json.loads(timed.read_text()).get("items") or {}).items():
            if item in record.get("items", {}):
                record["items"][item]["findings"] = [
                    *record["items"][item].get("findings", []), *rec.get("findings", [])]
    return record


def select_stages(stages: list[str] | None, section: str | None) -> tuple[dict, list[str]]:
    graph = dag.load(ROOT / "dvc.yaml")
    if section:
        return graph, dag.stages_of_section(graph, section)
    if stages:
        return graph, dag.with_upstream(graph, stages)
    return graph, dag.topological(graph)


@flow(name="nlpcurriculum-pipeline", task_runner=ThreadPoolTaskRunner(max_workers=default_workers()))
def pipeline(
    stages: list[str] | None = None, section: str | None = None, force: bool = False,
    mlflow_ui: str | None = None, workers: int | None = None,
) -> dict[str, dict]:
    """Run the DVC stages (all, a section's, or named ones with their upstream) as tasks.

    Ends with the pass/FAIL summary (:func:`summary_markdown`): the ``pipeline-summary``
    artifact on a configured server, else ``reports/flow_summary.md``. A checkout that is busy,
    or a stage that fails, ends the flow in a Failed state whose message is one line; its data
    is the :class:`StageError` (the stage's own one-line error).

    Args:
        mlflow_ui: the MLflow UI the run links point at (default: :func:`mlflow_ui_base`).
        workers: stages run at once, each with its share of the cores as default threads
            (default :func:`default_workers`); the task runner must have as many workers
            (:func:`with_workers`).
    """
    try:
        with flow_lock(ROOT):
            check_idle(ROOT)
            threads = stage_threads(workers or default_workers())
            return _run_tasks(stages, section, force, mlflow_ui_base(mlflow_ui), threads)
    except StageError as exc:
        if isinstance(exc, CheckoutBusy) or exc.stage is None:
            return Failed(message=str(exc), data=exc)
        return Failed(message=f"stage {exc.stage!r} failed: {exc.kind}; its error is in the "
                              "log above", data=exc)


def mlflow_ui_base(option: str | None = None, root: Path = ROOT) -> str:
    """Where MLflow run links point: ``option``, else ``$NLPC_MLFLOW_UI``, else the report's
    ``report.mlflow_ui_url`` param, else http://127.0.0.1:5000; no trailing slash."""
    url = option or os.environ.get(MLFLOW_UI_ENV)
    if not url:
        try:
            from nlpcurriculum.params import PIPELINE_FILE, PARAMS_DIR, read_yaml

            data = read_yaml(root / PARAMS_DIR / PIPELINE_FILE)
            url = (data.get("report") or {}).get("mlflow_ui_url")
        except ValueError:  # unreadable params: the report stage will say why
            url = None
    return str(url or MLFLOW_UI_DEFAULT).rstrip("/")


def with_workers(workers: int | None):
    """The flow with ``workers`` task threads (None: :func:`default_workers`)."""
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    return pipeline.with_options(
        task_runner=ThreadPoolTaskRunner(max_workers=workers or default_workers()))


def _run_tasks(stages: list[str] | None, section: str | None, force: bool,
               mlflow_ui: str, threads: int) -> dict[str, dict]:
    started = time.time()
    graph, order = select_stages(stages, section)
    futures = {}
    for stage in order:
        upstream = [futures[u] for u in graph[stage] if u in futures]
        futures[stage] = run_stage.submit(stage, force=force, threads=threads, wait_for=upstream)
    wait(list(futures.values()))
    outcomes: dict[str, dict] = {}
    first_error: StageError | None = None
    for stage in order:
        state = futures[stage].state
        if state.is_completed():
            outcomes[stage] = futures[stage].result()
        elif state.is_failed() and not _upstream_failed(state):
            error = _error_of(state)
            if not isinstance(error, StageError):
                error = StageError(f"stage {stage!r} crashed; its output is in the log above")
                error.kind = "crash"
            error.stage = stage
            outcomes[stage] = {"error": error}
            first_error = first_error or error
        else:  # an upstream stage failed
            outcomes[stage] = {}
    publish_summary(summary_markdown(outcomes, mlflow_ui, started))
    if first_error is not None:
        raise first_error
    return {stage: outcome["record"] for stage, outcome in outcomes.items()}


def _upstream_failed(state) -> bool:
    """A task Prefect never started because a task it waits for failed."""
    return state.name == "NotReady" or "upstream" in (state.message or "").lower()


def publish_summary(markdown: str) -> None:
    """The summary as the run's artifact; without a server also ``reports/flow_summary.md``,
    whose path is logged (a temporary server's artifacts are gone after the run)."""
    logger = get_run_logger()
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=markdown,
                             description="pass/FAIL of each stage and item")
    if SERVER_CONFIGURED:
        ui = get_current_settings().ui_url
        where = f"{ui}/runs/flow-run/{flow_run.id}" if ui else f"flow run {flow_run.name}"
        logger.info("summary: artifact %r of %s", ARTIFACT_KEY, where)
    else:
        write_text(ROOT / SUMMARY_FILE, markdown)
        logger.info("summary: %s", SUMMARY_FILE)


def summary_markdown(outcomes: dict[str, dict], mlflow_ui: str, started: float | None = None,
                     runs: dict[str, dict] | None = None) -> str:
    """The pass/FAIL summary of a flow run, as markdown.

    Args:
        outcomes: per stage in run order: ``{"ran": bool, "record": metrics}`` when it finished,
            ``{"error": StageError}`` when it failed, ``{}`` when it did not start.
        mlflow_ui: the MLflow UI base of the run links.
        started: the run's start (``time.time()``), for its wall time.
        runs: ``{item id: {"experiment_id", "run_id"}}``; default the latest MLflow run of
            each item (MLflow is not asked when no stage has items).
    """
    if runs is None:
        runs = {}
        if any((o.get("record") or {}).get("items") for o in outcomes.values()):
            from nlpcurriculum import registry, tracking

            runs = tracking.latest_runs_by_item([s.title for s in registry.sections()])

    def link(item: str) -> str:
        run = runs.get(item)
        return (f"[MLflow run]({mlflow_ui}/#/experiments/{run['experiment_id']}/runs/"
                f"{run['run_id']})" if run else "")

    stage_rows, item_rows, failed, metric_rows = [], [], [], []
    counts = {"ran": 0, "up to date": 0, "FAILED": 0, "not run": 0}
    for stage, outcome in outcomes.items():
        if "error" in outcome:
            counts["FAILED"] += 1
            message = str(outcome["error"]).removeprefix(f"stage {stage!r}").lstrip(": ")
            stage_rows.append(f"| {stage} | **FAILED**: {_cell(message)} | |")
            continue
        if "record" not in outcome:
            counts["not run"] += 1
            stage_rows.append(f"| {stage} | not run (an upstream stage failed) | |")
            continue
        status = "ran" if outcome.get("ran", True) else "up to date"
        counts[status] += 1
        record = outcome["record"] or {}
        n_pass = n_all = 0
        for item, rec in (record.get("items") or {}).items():
            findings = rec.get("findings") or []
            bad = [f for f in findings if not f.get("passed")]
            n_all, n_pass = n_all + len(findings), n_pass + len(findings) - len(bad)
            verdict = f"**FAIL** ({len(bad)} of {len(findings)})" if bad else (
                f"pass ({len(findings)})" if findings else "-")
            item_rows.append(f"| {stage} | {item} | {verdict} | {link(item)} |")
            failed += [f"- `{item}` ({stage}): {_finding(f)} {link(item)}".rstrip() for f in bad]
        for name, value in sorted((record.get("metrics") or {}).items()):
            metric_rows.append(f"| {stage} | {name} | {value} |")
        verdict = f"{n_pass} of {n_all} pass" if n_all else ""
        stage_rows.append(f"| {stage} | {status} | {verdict} |")

    outcome = "FAILED" if counts["FAILED"] else (
        f"{len(failed)} findings failed" if failed else "passed")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    wall = f", {time.time() - started:.0f} s" if started else ""
    lines = [f"# nlpcurriculum pipeline: {outcome}", "",
             f"{when}{wall}; stages: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n)
             + ".", "", "| stage | result | findings |", "|---|---|---|", *stage_rows]
    if failed:
        lines += ["", "## Failed findings", "", *failed]
    if item_rows:
        lines += ["", "## Items", "", "| stage | item | findings | run |", "|---|---|---|---|",
                  *item_rows]
    if metric_rows:
        lines += ["", "## Stage metrics", "", "| stage | metric | value |", "|---|---|---:|",
                  *metric_rows]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _finding(f: dict) -> str:
    """``claim: metric = value (bound threshold)``, as a failed finding is listed."""
    value = f.get("value")
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    bound = f" (bound {f['threshold']})" if f.get("threshold") is not None else ""
    return f"{f.get('claim', '?')}: {f.get('metric', '?')} = {shown}{bound}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the DVC pipeline as a Prefect flow.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--stages", nargs="+", help="these stages and their upstream")
        p.add_argument("--section", help="a curriculum section id or title")
        p.add_argument("--force", action="store_true", help="rerun even if unchanged")
        p.add_argument("--mlflow-ui", metavar="URL",
                       help=f"the MLflow UI the summary's run links point at (default: "
                            f"${MLFLOW_UI_ENV}, else params report.mlflow_ui_url, "
                            f"{MLFLOW_UI_DEFAULT})")
        p.add_argument("--workers", type=int, metavar="N",
                       help=f"stages run at once, sharing the cores (default: cores // 2 = "
                            f"{default_workers()} here)")
    sub.choices["serve"].add_argument("--cron", required=True, help='e.g. "0 3 * * *"')
    sub.choices["serve"].add_argument("--name", default="scheduled")
    args = parser.parse_args(argv)
    params = {"stages": args.stages, "section": args.section, "force": args.force,
              "mlflow_ui": args.mlflow_ui, "workers": args.workers}
    try:
        select_stages(args.stages, args.section)  # fail fast on a bad name
        flow_run_fn = with_workers(args.workers)
    except (dag.DagError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        flow_run_fn.serve(name=args.name, cron=args.cron, parameters=params)
        return 0
    try:
        with flow_lock(ROOT):
            check_idle(ROOT)  # before Prefect's server starts: a busy checkout fails at once
            state = flow_run_fn(**params, return_state=True)
    except CheckoutBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not SERVER_CONFIGURED and (ROOT / SUMMARY_FILE).exists():
        print(f"summary: {SUMMARY_FILE}")
    if state.is_failed():
        error = _error_of(state)
        print(f"error: {error if isinstance(error, StageError) else state.message}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
