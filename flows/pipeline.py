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
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the virtualenv's bin: dvc, and `python` for stage commands

os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "true")

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from nlpcurriculum import dag  # noqa: E402


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@task(retries=2, retry_delay_seconds=3, task_run_name="dvc-{stage}")
def run_stage(stage: str, force: bool = False) -> dict:
    """Reproduce one DVC stage (its upstream already ran); returns its metrics record."""
    logger = get_run_logger()
    cmd = [str(BIN / "dvc"), "repro", "--single-item", stage] + (["--force"] if force else [])
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    logger.info("%s\n%s", " ".join(cmd[1:]), output[-3000:])
    if proc.returncode != 0:
        raise RuntimeError(f"stage {stage!r} failed (exit {proc.returncode}):\n{output[-2000:]}")
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
    """Run the DVC stages (all, a section's, or named ones with their upstream) as tasks."""
    graph, order = select_stages(stages, section)
    futures = {}
    for stage in order:
        upstream = [futures[u] for u in graph[stage] if u in futures]
        futures[stage] = run_stage.submit(stage, force=force, wait_for=upstream)
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
        pipeline(**params)
    else:
        pipeline.serve(name=args.name, cron=args.cron, parameters=params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
