"""Stage `report`: the results of the run, as a page, a summary and a closing block.

Reads the registry, every stage's `metrics/*.json` and `metrics/timings/*.json`, `plots/`, and the
MLflow runs (for links); writes `reports/index.html` (one self-contained page), `metrics/summary.json`
(the only file declared as DVC metrics: items run, invariants held, findings passed / failed) and
`metrics/report.json` (per-section counts, each item's key figure), logs the page to MLflow, and
prints the closing block: the totals and every failed check with its item, claim, measured value,
bound, report anchor and MLflow run. It is the last stage, so `dvc repro` ends with that block.
"""

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from nlpcurriculum import registry, report, tracking
from nlpcurriculum.io import write_json, write_text
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish

OUTPUT = "reports/index.html"
SUMMARY = "metrics/summary.json"


@dataclass
class ReportConfig:
    """The `report` section: the page title and where `mlflow ui` serves (for run links)."""

    title: str = "nlpcurriculum report"
    mlflow_ui_url: str = "http://127.0.0.1:5000"


def main() -> None:
    started = time.time()
    cfg = load_section("report", ReportConfig)
    titles = [s.title for s in registry.sections()]
    runs = tracking.latest_runs_by_item(titles)
    root = Path(".")
    views = report.collect(root, runs, cfg.mlflow_ui_url)
    info = report.run_info(root, commit=tracking.git_commit(),
                           date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    write_text(OUTPUT, report.render(views, cfg.title, info))
    summary = report.summary(views)
    write_json(SUMMARY, summary)
    counts = registry.counts()
    metrics = {
        "items.implemented": counts[registry.IMPLEMENTED],
        "items.planned": counts[registry.PLANNED],
        **report.section_metrics(views),
    }
    publish("report", {"report": cfg}, metrics=metrics, started=started, artifacts=[OUTPUT])
    print(report.summary_block(views, OUTPUT), flush=True)


if __name__ == "__main__":
    main_guard(main)
