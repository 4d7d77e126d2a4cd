"""`dvc repro` of the whole pipeline on the smoke profile, in a temporary copy of the project."""

import json
import sqlite3
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nlpcurriculum import dag, registry
from nlpcurriculum.params import params_file
from tests.conftest import BIN, run

pytestmark = pytest.mark.slow
DVC = str(BIN / "dvc")


def test_repro_writes_outputs_lock_and_mlflow_runs(reproduced: Path):
    root = reproduced
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert set(lock) == set(stages)
    for stage in stages:
        record = json.loads((root / "metrics" / f"{stage}.json").read_text())
        assert record["stage"] == stage
    splits = {n: pd.read_parquet(root / "data/processed/splits" / f"{n}.parquet") for n in ("train", "val", "test")}
    # smoke: ingest.max_documents = 150 go in; dedup and filter drop some, each counted.
    dedup = json.loads((root / "metrics/dedup.json").read_text())["metrics"]
    kept = json.loads((root / "metrics/filter.json").read_text())["metrics"]["kept"]
    assert dedup["documents_in"] == 150
    assert 0 < kept < dedup["kept"] <= 150
    assert sum(len(s) for s in splits.values()) == kept
    assert all(len(s) > 0 for s in splits.values())
    page = (root / "reports/index.html").read_text()
    assert page.count("class=item") == 148

    db = sqlite3.connect(root / "mlflow.db")
    run_stages = {r[0] for r in db.execute(
        "select value from tags where key='nlpc.stage'")}
    assert set(stages) <= run_stages
    item_runs = {r[0] for r in db.execute("select value from tags where key='nlpc.item'")}
    implemented = {it.id for it in registry.items() if it.status == "implemented"}
    assert implemented <= item_runs, f"items without an MLflow run: {implemented - item_runs}"
    for item_id in implemented:
        stage = registry.item(item_id).stages[0]
        record = json.loads((root / "metrics" / f"{stage}.json").read_text())
        timed = json.loads((root / "metrics" / "timings" / f"{stage}.json").read_text())
        findings = record["items"][item_id]["findings"] + timed["items"][item_id]["findings"]
        assert findings, f"{item_id} checks no expected finding"


def test_text_and_html_outputs_sit_under_reports(reproduced: Path):
    """Weights under models/, data under data/, tables, text and HTML under reports/<stage>/
    (tests/test_dvc_deps.py checks the declared outputs; this checks what the stages wrote)."""
    stages = dag.read_stages(reproduced / "dvc.yaml")
    misplaced = [
        f"{name}: {path.relative_to(reproduced)}"
        for name, spec in stages.items()
        for out in dag.entry_paths(spec.get("outs")) if out.startswith(("models/", "data/"))
        for path in [reproduced / out, *(reproduced / out).rglob("*")]
        if path.is_file() and path.suffix in {".txt", ".html", ".md"}
    ]
    assert not misplaced, "text or HTML outputs outside reports/<stage>/:\n" + "\n".join(misplaced)
    assert (reproduced / "reports/moe/tables.txt").is_file()
    assert (reproduced / "reports/evaluate/samples.txt").is_file()


def test_second_repro_does_nothing(reproduced: Path):
    out = run([DVC, "repro"], reproduced).stdout
    assert "Running stage" not in out
    assert "up to date" in out
    status = run([DVC, "status"], reproduced).stdout
    assert "up to date" in status


def _snapshot(root: Path) -> dict[str, bytes]:
    paths = [root / "dvc.lock", *root.glob("data/**/*.parquet"), *root.glob("metrics/*.json")]
    return {str(p.relative_to(root)): p.read_bytes() for p in paths if p.is_file()}


def set_params(root: Path, **changes) -> None:
    """Edit the params files: ``set_params(root, splits={"seed": "zero"})``."""
    for section, values in changes.items():
        path = params_file(section, root)
        params = yaml.safe_load(path.read_text())
        params[section].update(values)
        path.write_text(yaml.safe_dump(params))


def rewrite_documents(root: Path, **columns) -> None:
    path = root / "data/interim/documents.parquet"
    pd.read_parquet(path).assign(**columns).to_parquet(path, index=False)


@pytest.mark.parametrize(
    "break_it, stage, message",
    [
        (lambda r: set_params(r, splits={"val_fracton": 0.2}),
         "splits", "params/pipeline.yaml: splits.val_fracton: unknown key"),
        (lambda r: set_params(r, splits={"seed": "zero"}),
         "splits", "splits.seed: expected int, got str 'zero'"),
        (lambda r: set_params(r, ingest={"source": "files", "path": "no/such/dir"}),
         "ingest", "ingest.path 'no/such/dir': no such file or folder"),
        (lambda r: (r / "data/interim/documents.parquet").write_bytes(b"PAR1 truncated"),
         "dedup", "documents.parquet: not a readable parquet file"),
        (lambda r: rewrite_documents(r, n_chars=-1),
         "dedup", "column 'n_chars' failed check 'greater_than_or_equal_to(1)'; failing row 0"),
    ],
    ids=["unknown-key", "wrong-type", "missing-source-path", "corrupt-parquet", "schema-violation"],
)
def test_bad_input_fails_clearly_and_keeps_earlier_outputs(project: Path, break_it, stage, message):
    run([DVC, "repro", "splits"], project)  # the spine stages these inputs feed
    before = _snapshot(project)
    break_it(project)
    proc = run([DVC, "repro", "--single-item", stage, "--force"], project, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    after = _snapshot(project)
    for path, content in before.items():
        if path != "data/interim/documents.parquet":  # the file this test broke on purpose
            assert after[path] == content, f"{path} changed after a failed stage"
    assert not list(project.glob("data/**/.*.tmp")), "a temporary file was left behind"


def test_stage_fixed_overhead_is_small(reproduced: Path):
    """Importing a stage module must not pull in torch, mlflow or datasets (lazy imports)."""
    code = ("import sys, runpy; sys.argv=['x']; runpy.run_path('stages/splits.py', run_name='not_main');"
            "heavy = [m for m in ('torch', 'mlflow', 'datasets', 'prefect') if m in sys.modules];"
            "print(','.join(heavy))")
    out = run([sys.executable, "-c", code], reproduced).stdout.strip()
    assert out == ""


def test_dag_of_project_has_no_dangling_deps(reproduced: Path):
    graph = dag.load(reproduced / "dvc.yaml")
    assert dag.topological(graph)[-1] == "report"
