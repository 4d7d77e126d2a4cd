"""Stage `report`: the self-contained HTML page of the whole curriculum.

Reads the registry, every stage's `metrics/*.json` and `plots/`, and the MLflow runs (for links);
writes `reports/index.html` and `metrics/report.json`, and logs the page to MLflow.
"""

import time
from dataclasses import dataclass
from pathlib import Path

from nlpcurriculum import registry, report, tracking
from nlpcurriculum.io import write_text
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish

OUTPUT = "reports/index.html"


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
    views = report.collect(Path("."), runs, cfg.mlflow_ui_url)
    write_text(OUTPUT, report.render(views, cfg.title))
    findings = [f for v in views for f in v.findings]
    counts = registry.counts()
    metrics = {
        "items.implemented": counts[registry.IMPLEMENTED],
        "items.planned": counts[registry.PLANNED],
        "findings.total": len(findings),
        "findings.passed": sum(bool(f.get("passed")) for f in findings),
    }
    publish("report", {"report": cfg}, metrics=metrics, started=started, artifacts=[OUTPUT])
    print(f"report: {OUTPUT} ({metrics['items.implemented']} items implemented)")


if __name__ == "__main__":
    main_guard(main)
