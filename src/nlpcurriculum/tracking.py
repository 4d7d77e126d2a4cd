"""MLflow tracking: one experiment per curriculum section, one run per stage, a child run per item.

The tracking contract (docs/CONVENTIONS.md):

* Store: MLflow's embedded default, sqlite ``mlflow.db`` with artifacts in ``mlruns/`` at the
  project root; ``MLFLOW_TRACKING_URI`` points it elsewhere (a server, another database).
* Names: the experiment is the section's title; the parent run is the DVC stage; each curriculum
  item the stage covers gets a child run. Tags ``nlpc.section``, ``nlpc.item``, ``nlpc.stage`` and
  ``nlpc.git_commit`` (also MLflow's own ``mlflow.source.git.commit``) make them searchable.
* Content: the stage's params flattened (``model.d_model``) on the stage's run, and on each item's
  child run the knobs that shaped the item: the stage's params less those whose comment in the
  params file names other items only (``variants: ...  # item 1: ...`` is not item 2's knob;
  :func:`item_scopes`), step series as MLflow step metrics, figures as PNG
  artifacts, and every check as tags ``finding.<i>.claim`` / ``.kind`` (``finding`` or
  ``invariant``) / ``.passed`` plus the metrics ``finding.<i>.value`` and, where known,
  ``.threshold``, ``.n`` and ``.se``. The counts ``findings.passed``, ``findings.failed``,
  ``invariants.held`` and ``invariants.failed`` are metrics of each child run and, summed, of the
  stage's run, so the runs table shows them as columns.
* Experiments are tagged ``mlflow.experimentKind = custom_model_development`` (model training,
  not GenAI), the kind ``mlflow ui`` shows in the experiment's header. The runs table is the
  "Model training" side of the UI (``#/experiments/<id>/runs?workflowType=machine_learning``).
* Key models: :meth:`StageRun.log_model` logs a torch model with ``mlflow.pytorch.log_model`` and
  can register it in the model registry (the sqlite store supports it; the base LM is
  ``nlpcurriculum-base``).
* Telemetry is off unless the user turns it on.
* A server that is down fails the stage before its work: :func:`check_server` (called by
  ``stage.main_guard``) asks ``MLFLOW_TRACKING_URI`` once, with a short timeout, and raises
  :class:`TrackingServerError` (one line, exit status 2, no output touched). A server that stops
  answering later costs at most a few seconds of retries, not MLflow's default of minutes
  (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and ``..._BACKOFF_FACTOR`` get small defaults; set them
  to override).

MLflow is imported lazily (it costs 2-3 s): a stage does its work first, then logs.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from nlpcurriculum.params import flatten
from nlpcurriculum.results import FINDING, INVARIANT, ItemResult

PIPELINE_EXPERIMENT = "Pipeline"  # spine stages that belong to no curriculum section

# The experiment tag that tells `mlflow ui` (3.x) the experiment is model training (runs, params,
# metrics), so it need not ask for, or guess, the experiment's kind.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")

# MLflow limits a param value to 6000 characters; keep well under it.
_MAX_PARAM_CHARS = 500


def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``dvc.yaml``."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists():
            return folder
    return here


def tracking_uri(root: str | Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the sqlite store at the project root."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{project_root(root) / 'mlflow.db'}"


# MLflow's HTTP client retries 7 times with exponential backoff by default: about 4 minutes
# before a refused connection becomes an error. A stage logs after its work is done, so a server
# lost mid-stage should cost seconds: 2 retries, 1 s and 2 s apart.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}
PROBE_TIMEOUT_S = 5.0  # how long check_server waits for the server's first answer
_DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}


class TrackingServerError(RuntimeError):
    """``MLFLOW_TRACKING_URI`` names a server that does not answer."""


def _quiet_defaults() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def check_server(uri: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail at once when the tracking store is a server that does not answer.

    An ``http(s)`` URI gets one ``GET <uri>/health`` (any answer below HTTP 500 counts: a proxy or
    an auth layer in front of MLflow may answer 404 or 401 there); a database URI with a host
    gets one TCP connection. File and sqlite stores (the default) need no server.

    Args:
        uri: the tracking URI; default ``MLFLOW_TRACKING_URI`` (nothing to check when unset).
        timeout: seconds to wait for the answer.

    Raises:
        TrackingServerError: one line naming the URI, why it failed, and what to do.
    """
    from urllib.parse import urlsplit

    uri = uri if uri is not None else os.environ.get("MLFLOW_TRACKING_URI", "")
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0].lower()  # postgresql+psycopg2 -> postgresql
    if not parts.hostname or scheme in ("file", "sqlite", "databricks", "uc"):
        return
    problem = None
    try:
        if scheme in ("http", "https"):
            problem = _http_problem(uri.rstrip("/") + "/health", timeout)
        else:
            port = parts.port or _DEFAULT_PORTS.get(scheme)
            if port is None:
                return
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        problem = _network_problem(exc, timeout)
    if problem:
        raise TrackingServerError(f"MLFLOW_TRACKING_URI {uri} does not answer ({problem}); "
                                  "start the server or unset the variable")


def _http_problem(url: str, timeout: float) -> str | None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} from {url}" if exc.code >= 500 else None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, OSError):
            raise reason from exc
        return str(reason)


def _network_problem(exc: OSError, timeout: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return f"host not found: {exc.strerror}"
    return exc.strerror or str(exc)


def git_commit(root: str | Path | None = None) -> str:
    """The commit of the working tree, ``-dirty`` when it has uncommitted changes."""
    cwd = project_root(root)
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def _client():
    _quiet_defaults()
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


def get_or_create_experiment(name: str) -> str:
    """The id of experiment ``name``, creating it with artifacts under ``mlruns/``."""
    mlflow = _client()
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        if EXPERIMENT_KIND[0] not in experiment.tags:  # created before the tag existed
            mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, *EXPERIMENT_KIND)
        return experiment.experiment_id
    location = None
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        location = (project_root() / "mlruns").as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location, tags=dict([EXPERIMENT_KIND]))
    except Exception:  # created concurrently by another stage: read it back
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _params_for_mlflow(params: dict[str, Any]) -> dict[str, str]:
    flat = flatten(params)
    return {k: str(v)[:_MAX_PARAM_CHARS] for k, v in flat.items()}


@dataclass
class StageRun:
    """An open MLflow run for one execution of a DVC stage."""

    stage: str
    section: str
    run_id: str
    experiment_id: str
    commit: str
    params: dict[str, str] = field(default_factory=dict)  # flattened, as logged on the stage's run
    scopes: dict[str, set[int]] = field(default_factory=dict)  # item_scopes of its params file
    counts: dict[str, int] = field(default_factory=dict)  # the checks of the items logged so far

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_figure(self, figure: Any, name: str) -> None:
        import mlflow

        mlflow.log_figure(figure, name)

    def log_text(self, text: str, name: str) -> None:
        import mlflow

        mlflow.log_text(text, name)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path)

    def log_series(self, series: dict[str, list[tuple[int, float]]]) -> None:
        """Step curves (``{name: [(step, value), ...]}``) as step metrics of this run."""
        _log_series(self.run_id, series)

    def log_model(self, model: Any, name: str = "model", registered_name: str | None = None) -> str:
        """Log a torch model as an MLflow model; optionally register it; returns its model URI.

        Args:
            model: a ``torch.nn.Module`` (pickled whole: its classes must be importable, i.e.
                ``nlpcurriculum`` installed, where it is loaded).
            name: the logged model's name within the run.
            registered_name: a model-registry name; each call adds a new version.
        """
        import mlflow.pytorch
        import torch

        # Pinning the requirement skips MLflow's inference, which imports the model's whole
        # package tree in a subprocess (tens of seconds) to guess the same answer.
        info = mlflow.pytorch.log_model(
            model,
            name=name,
            registered_model_name=registered_name,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            serialization_format="pickle",  # the whole module; "pt2" needs a traced example
        )
        return info.model_uri

    def log_item(self, result: ItemResult, item_text: str = "") -> str:
        """Log one item's params, metrics, series, texts and findings as a child run; returns its id.

        The child carries the stage's params (the item's experiment reads its knobs from the
        stage's config) and the counts of its checks as metrics (:func:`check_counts`), which
        also add up into :attr:`counts` for the stage's run. Figures are saved by the stage
        (``plots/``) and logged from those files.
        """
        import mlflow

        with mlflow.start_run(
            experiment_id=self.experiment_id,
            run_name=result.item,
            nested=True,
            tags={
                "nlpc.section": self.section,
                "nlpc.item": result.item,
                "nlpc.item_text": item_text,
                "nlpc.stage": self.stage,
                "nlpc.git_commit": self.commit,
                "mlflow.source.git.commit": self.commit,
            },
        ) as child:
            params = item_params(self.params, self.scopes, result.item)
            if params:
                mlflow.log_params(params)
                # "item": the params file's comments left out other items' knobs
                mlflow.set_tag("nlpc.params_scope", "item" if len(params) < len(self.params) else "stage")
            if result.metrics or result.timings:
                mlflow.log_metrics({k: float(v) for k, v in {**result.metrics, **result.timings}.items()})
            _log_series(child.info.run_id, result.series)
            for name, text in result.texts.items():
                mlflow.log_text(text, name)
            for i, finding in enumerate(result.findings):
                mlflow.set_tags(
                    {
                        f"finding.{i}.claim": finding.claim,
                        f"finding.{i}.metric": finding.metric,
                        f"finding.{i}.kind": finding.kind,
                        f"finding.{i}.passed": str(finding.passed).lower(),
                    }
                )
                numbers = {"value": finding.value, "threshold": finding.threshold,
                           "n": finding.n, "se": finding.se}
                mlflow.log_metrics({f"finding.{i}.{k}": float(v)
                                    for k, v in numbers.items() if v is not None})
            counts = check_counts(result)
            mlflow.log_metrics({k: float(v) for k, v in counts.items()})
            for key, value in counts.items():
                self.counts[key] = self.counts.get(key, 0) + value
            return child.info.run_id


_ITEM_NUMBERS = re.compile(r"\bitems?\s+((?:\d+(?:\s*-\s*\d+)?(?:\s*(?:,|and|&)\s*)?)+)")


def _numbers(text: str) -> set[int]:
    """``"1-3"`` -> {1, 2, 3}; ``"5 , 6 and 8"`` -> {5, 6, 8}."""
    found: set[int] = set()
    for a, b in re.findall(r"(\d+)(?:\s*-\s*(\d+))?", text):
        found.update(range(int(a), int(b or a) + 1))
    return found


def item_scopes(text: str, section_id: str) -> dict[str, set[int]]:
    """The params whose comment names the items they serve: ``{dotted key: item numbers}``.

    Read from a params file's text: a key's comment that says ``item 3``, ``items 1-3``,
    ``items 5 (CBOW), 6 (skip-gram)``, ``kv-cache/2`` or ``kv-cache/2, 3`` names those items of
    ``section_id``.
    Keys whose comment names no item are not listed (they serve the whole stage).
    """
    scopes: dict[str, set[int]] = {}
    stack: list[tuple[int, str]] = []  # (indent, key) of the keys above the current line
    for line in text.splitlines():
        match = re.match(r"^(\s*)([A-Za-z_][\w-]*)\s*:(.*)$", line)
        if not match:
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        comment = rest.split("#", 1)[1] if "#" in rest else ""
        comment = re.sub(r"\([^)]*\)", " ", comment)  # "item 5 (arXiv:1301.3781)" -> "item 5"
        named = set()
        for listed in _ITEM_NUMBERS.findall(comment):
            named |= _numbers(listed)
        for listed in re.findall(rf"\b{re.escape(section_id)}/(\d+(?:\s*[-,&]\s*\d+)*)", comment):
            named |= _numbers(listed)
        if named:
            scopes[".".join(k for _, k in stack)] = named
    return scopes


def item_params(params: dict[str, str], scopes: dict[str, set[int]], item: str) -> dict[str, str]:
    """The stage's flattened ``params`` that serve ``item`` (``"moe/2"``): all but those whose
    nearest commented key (:func:`item_scopes`) names other items only."""
    number = item.rsplit("/", 1)[-1]
    if not number.isdigit() or not scopes:
        return dict(params)
    kept = {}
    for key, value in params.items():
        parts = key.split(".")
        nearest = next((scopes[".".join(parts[:n])] for n in range(len(parts), 0, -1)
                        if ".".join(parts[:n]) in scopes), None)
        if nearest is None or int(number) in nearest:
            kept[key] = value
    return kept


def _stage_scopes(stage: str) -> dict[str, set[int]]:
    """:func:`item_scopes` of the stage's params file ({} when it has none)."""
    from nlpcurriculum import registry
    from nlpcurriculum.params import ParamsError, params_file

    try:
        path = params_file(stage, project_root())
        text = path.read_text(encoding="utf-8")
    except (ParamsError, OSError):
        return {}
    sections = {it.section_id for it in registry.items_of_stage(stage)}
    return item_scopes(text, sections.pop()) if len(sections) == 1 else {}


def check_counts(result: ItemResult) -> dict[str, int]:
    """``findings.passed`` / ``.failed`` and ``invariants.held`` / ``.failed`` of one item."""
    findings = [f.passed for f in result.findings if f.kind == FINDING]
    invariants = [f.passed for f in result.findings if f.kind == INVARIANT]
    return {"findings.passed": sum(findings), "findings.failed": len(findings) - sum(findings),
            "invariants.held": sum(invariants), "invariants.failed": len(invariants) - sum(invariants)}


def _log_series(run_id: str, series: dict[str, list[tuple[int, float]]]) -> None:
    """Step curves in batches: one database write per 1000 points, not one per point."""
    import time

    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    points = [
        Metric(name, float(value), now, int(step))
        for name, curve in series.items()
        for step, value in curve
    ]
    client = mlflow.MlflowClient()
    for start in range(0, len(points), 1000):
        client.log_batch(run_id, metrics=points[start : start + 1000])


@contextmanager
def stage_run(stage: str, section: str, params: dict[str, Any] | None = None) -> Iterator[StageRun]:
    """Open the parent MLflow run of a stage execution.

    Args:
        stage: the DVC stage name.
        section: the curriculum section title (the experiment), or ``PIPELINE_EXPERIMENT``.
        params: the stage's params (nested dicts or dataclasses), logged flattened.
    """
    mlflow = _client()
    experiment_id = get_or_create_experiment(section)
    commit = git_commit()
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=stage,
        tags={
            "nlpc.section": section,
            "nlpc.stage": stage,
            "nlpc.git_commit": commit,
            "mlflow.source.git.commit": commit,
        },
    ) as run:
        flat = _params_for_mlflow(params) if params else {}
        if flat:
            mlflow.log_params(flat)
        handle = StageRun(stage, section, run.info.run_id, experiment_id, commit, flat,
                          _stage_scopes(stage) if flat else {})
        yield handle
        if handle.counts:  # the stage's items, summed: a column of the runs table
            mlflow.log_metrics({k: float(v) for k, v in handle.counts.items()})


def latest_runs_by_item(section_titles: list[str]) -> dict[str, dict[str, str]]:
    """For each item id, the newest child run: ``{item: {"run_id", "experiment_id", "stage"}}``."""
    mlflow = _client()
    experiments = [mlflow.get_experiment_by_name(t) for t in section_titles]
    ids = [e.experiment_id for e in experiments if e is not None]
    if not ids:
        return {}
    runs = mlflow.search_runs(
        experiment_ids=ids,
        filter_string="tags.`nlpc.item` LIKE '%'",
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )
    latest: dict[str, dict[str, str]] = {}
    for run in runs:
        item = run.data.tags.get("nlpc.item")
        if item and item not in latest:
            latest[item] = {
                "run_id": run.info.run_id,
                "experiment_id": run.info.experiment_id,
                "stage": run.data.tags.get("nlpc.stage", ""),
            }
    return latest
