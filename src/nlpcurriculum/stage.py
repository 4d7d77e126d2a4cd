"""What every stage script shares: the offline environment, error reporting and publishing.

A stage script (``stages/<name>.py``) reads its params, validates its inputs, calls the library,
writes its outputs atomically and then calls :func:`publish`, which writes, in this order:

1. ``plots/<stage>/`` — each item's figures (PNG), binary files (``ItemResult.files``, e.g. a GIF)
   and step series (JSON rows, for ``dvc plots``);
2. the MLflow parent run of the stage and one child run per curriculum item;
3. ``metrics/timings/<stage>.json`` — what a clock or the allocator measured (the stage's wall time,
   each item's ``timings`` and its timed findings) with the machine it ran on;
4. ``metrics/<stage>.json`` — the stage's and each item's deterministic metrics and checked
   findings: a rerun of unchanged work writes the same bytes, so the default run's file is
   committed and ``git diff`` / ``dvc metrics diff`` show only real changes.

The metrics file comes last, so its presence means the stage finished. :func:`main_guard` turns
the errors a user can cause (bad params, a broken contract, a missing file, a tracking server
that is down, a full disk) into one clear line on stderr and exit status 2, instead of a
traceback.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable

from nlpcurriculum.io import DiskFullError, atomic_path, write_json
from nlpcurriculum.results import INVARIANT, Finding, ItemResult

METRICS_DIR = Path("metrics")
TIMINGS_DIR = METRICS_DIR / "timings"
PLOTS_DIR = Path("plots")


def offline_defaults() -> None:
    """No network at run time unless the user opts in; no telemetry."""
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


def main_guard(main: Callable[[], Any]) -> None:
    """Run a stage's ``main``; user errors become one line on stderr and exit status 2.

    Before ``main`` starts, a tracking server named by ``MLFLOW_TRACKING_URI`` must answer
    (:func:`tracking.check_server`): a server that is down fails the stage in a moment instead of
    after its work, and no output is touched. A full disk while an output is written
    (:class:`~nlpcurriculum.io.DiskFullError`) is reported with the output's path; the previous
    output is kept.

    ``python stages/<stage>.py --help`` (or ``-h``) prints the script's docstring and exits 0
    without running it. A stage that finishes prints its wall time as its last line
    (``moe: done in 93.4 s``).
    """
    script = main.__globals__  # the stage script's namespace: its docstring and file
    if main.__module__ == "__main__" and {"-h", "--help"} & set(sys.argv[1:]):
        print((script.get("__doc__") or "").strip())
        sys.exit(0)
    started = time.perf_counter()
    from nlpcurriculum import tracking
    from nlpcurriculum.data.schemas import ContractError
    from nlpcurriculum.data.sources import SourceError
    from nlpcurriculum.params import ParamsError
    from nlpcurriculum.tokenizers.base import TokenizerFileError
    from nlpcurriculum.tokenizers.corpus import TokensFileError

    offline_defaults()
    try:
        tracking.check_server()
        main()
    except Exception as exc:
        message = user_error(exc, (ParamsError, ContractError, SourceError, FileNotFoundError,
                                   TokenizerFileError, TokensFileError,
                                   tracking.TrackingServerError))
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    name = Path(script.get("__file__") or main.__module__).stem
    print(f"{name}: done in {time.perf_counter() - started:.1f} s", flush=True)


def user_error(exc: Exception, handled: tuple[type[Exception], ...] = ()) -> str | None:
    """The one-line message for an error the user can fix, or ``None`` for a bug (a traceback).

    Args:
        exc: the error a stage raised.
        handled: the error types whose message is already that line.
    """
    # CheckpointError lives beside torch; importing it here would make every stage pay for
    # torch. If its module was never imported, no checkpoint error can have been raised.
    checkpoint = sys.modules.get("nlpcurriculum.models.checkpoint")
    if checkpoint is not None:
        handled = (*handled, checkpoint.CheckpointError)
    if isinstance(exc, handled + (DiskFullError,)):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" while writing {exc.filename}" if exc.filename else ""
        return f"no space left on device{where}. Free some space and rerun"
    mlflow_errors = sys.modules.get("mlflow.exceptions")
    if mlflow_errors is not None and isinstance(exc, mlflow_errors.MlflowException):
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "API request to" in first and "failed with exception" in first:
            # The server answered check_server but went away while the stage logged.
            return (f"the MLflow tracking server stopped answering while the stage logged its "
                    f"results; the stage is not recorded: {first[:300]}")
    return None


def item_slug(item_id: str) -> str:
    """``"kv-cache/2"`` -> ``"kv-cache-2"`` (a file-name-safe item id)."""
    return item_id.replace("/", "-")


def item_tables(results: list[ItemResult]) -> str:
    """Every text artifact of ``results`` in one document, each under a ``== <item> <name>`` line."""
    return "".join(f"== {r.item} {name}\n{text}\n" for r in results for name, text in r.texts.items())


def save_item_texts(folder: str | Path, results: list[ItemResult], separate: bool = False) -> None:
    """Write the items' text artifacts into ``folder``, replacing it atomically.

    Args:
        folder: the stage's output folder (a DVC ``out``).
        results: the stage's items.
        separate: each text as its own file under its name, instead of one ``tables.txt``
            (:func:`item_tables`).
    """
    with atomic_path(folder, is_dir=True) as tmp:
        if not separate:
            (tmp / "tables.txt").write_text(item_tables(results), encoding="utf-8")
            return
        for r in results:
            for name, text in r.texts.items():
                (tmp / name).write_text(text, encoding="utf-8")


def print_findings(stage: str, results: list[ItemResult]) -> None:
    """One line per item on stdout: each check's metric, measured value and pass / FAIL.

    Invariants are marked ``[invariant]``; a comparison over samples shows ``n`` and its SE.
    """
    for r in results:
        print(f"{stage}: {r.item}: " + "; ".join(_check_line(f) for f in r.findings))


def _check_line(f: Finding) -> str:
    spread = f" +- {f.se:.2g} (n={f.n})" if f.n is not None and f.se is not None else ""
    tag = " [invariant]" if f.kind == INVARIANT else ""
    return f"{f.metric}={f.value:.4g}{spread} {'pass' if f.passed else 'FAIL'}{tag}"


def save_figure(figure: Any, target: Path) -> None:
    """Save a matplotlib figure as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)


def publish(
    stage: str,
    params: dict[str, Any],
    metrics: dict[str, float] | None = None,
    results: list[ItemResult] = (),
    timings: dict[str, float] | None = None,
    findings: Sequence[Finding] = (),
    section: str | None = None,
    started: float | None = None,
    artifacts: list[str | Path] = (),
    series: dict[str, list[tuple[int, float]]] | None = None,
    timing_series: dict[str, list[tuple[int, float]]] | None = None,
    model: Any = None,
    registered_model: str | None = None,
) -> dict[str, Any]:
    """Write plots, log to MLflow and write ``metrics/<stage>.json``; returns the metrics record.

    Args:
        stage: the DVC stage name.
        params: the stage's params (dicts or dataclasses), logged flattened.
        metrics: stage-level scalar metrics (deterministic).
        timings: stage-level clock readings (tokens per second, seconds); the wall time is added.
        results: one :class:`ItemResult` per curriculum item the stage covers.
        findings: stage-level checks of a stage that serves no item (the spine's ``pretrain``
            beats its count-model control), written under ``"findings"`` beside ``metrics``.
        section: the MLflow experiment; defaults to the section of the stage's items in the
            registry, or the ``Pipeline`` experiment for spine stages.
        started: ``time.time()`` at the stage's start, to log its wall time.
        artifacts: files to attach to the stage's MLflow run (e.g. the report page).
        series: stage-level step curves ``{name: [(step, value), ...]}``: MLflow step metrics
            of the stage's run and ``plots/<stage>/<name>.json`` rows for ``dvc plots``.
        timing_series: step curves of timings (tokens per second): MLflow only, like the wall
            time, because they differ from run to run and ``plots/`` must not.
        model: a torch model to log with ``mlflow.pytorch.log_model`` (a key model).
        registered_model: also register ``model`` under this model-registry name.
    """
    from nlpcurriculum import registry, tracking

    params = {k: asdict(v) if is_dataclass(v) else v for k, v in params.items()}
    from nlpcurriculum.metrics.hardware import host

    metrics = dict(metrics or {})
    # Clock readings go to metrics/timings/: metrics/<stage>.json stays deterministic, so a rerun
    # (or a Prefect run) of unchanged work leaves the same dvc.lock and `dvc metrics diff` shows
    # only real changes.
    timing = dict(timings or {})
    if started is not None:
        timing["wall_time_s"] = round(time.time() - started, 3)
    section = section or registry.section_of_stage(stage) or tracking.PIPELINE_EXPERIMENT
    plots = PLOTS_DIR / stage
    record: dict[str, Any] = {"stage": stage, "metrics": metrics, "items": {}}
    timed: dict[str, Any] = {"stage": stage, "host": host(), "timings": timing, "items": {}}
    if findings:
        record["findings"] = [asdict(f) for f in findings if not f.timed]
        timed["findings"] = [asdict(f) for f in findings if f.timed]

    for name, points in (series or {}).items():
        _write_series(plots / f"{name}.json", name, points)
    for result in results:
        slug = item_slug(result.item)
        files = []
        for name, figure in result.figures.items():
            target = plots / f"{slug}_{name}"
            save_figure(figure, target)
            files.append(str(target))
        for name, data in result.files.items():  # binary artifacts, e.g. an animated GIF
            target = plots / f"{slug}_{name}"
            with atomic_path(target) as tmp:
                tmp.write_bytes(data)
            files.append(str(target))
        for name, points in result.series.items():
            _write_series(plots / f"{slug}_{name}.json", name, points)
        record["items"][result.item] = {
            "metrics": result.metrics,
            "findings": [asdict(f) for f in result.findings if not f.timed],
            "figures": files,
        }
        timed["items"][result.item] = {
            "timings": result.timings,
            "findings": [asdict(f) for f in result.findings if f.timed],
        }

    checked = {}  # stage-level findings in MLflow: the measured value and 1/0 for passed
    for f in findings:
        checked[f"finding.{f.metric}"] = f.value
        checked[f"finding.{f.metric}.passed"] = float(f.passed)
    with tracking.stage_run(stage, section, params) as run:
        if metrics or timing or checked:
            run.log_metrics({**metrics, **timing, **checked})
        if series or timing_series:
            run.log_series({**(series or {}), **(timing_series or {})})
        for path in artifacts:
            run.log_artifact(path)
        if model is not None:
            run.log_model(model, "model", registered_model)
        for result in results:
            text = registry.item(result.item).text
            child = run.log_item(result, item_text=text)
            for path in record["items"][result.item]["figures"]:
                _log_file_to_run(child, path)
    write_json(TIMINGS_DIR / f"{stage}.json", timed)
    write_json(METRICS_DIR / f"{stage}.json", record)
    return record


def _write_series(target: Path, name: str, points: list[tuple[int, float]]) -> None:
    rows = [{"step": int(s), name: float(v)} for s, v in points]
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(rows))


def _log_file_to_run(run_id: str, path: str) -> None:
    import mlflow

    mlflow.MlflowClient().log_artifact(run_id, path)
