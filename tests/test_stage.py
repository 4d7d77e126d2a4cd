"""`publish`: binary item files (e.g. an animated GIF) land in plots/<stage>/ and in MLflow;
`main_guard`: a stage answers --help with its docstring and ends with its wall time."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from nlpcurriculum.results import Finding, ItemResult
from nlpcurriculum.stage import publish


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield tmp_path
    mlflow.set_tracking_uri(None)


def test_publish_writes_item_files_and_logs_them_to_the_item_run(project):
    gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
    result = ItemResult(item="positional-embeddings/5", files={"anim.gif": gif},
                        findings=[Finding.at_most("same vector before", "d", 0.0, 0.0)])
    record = publish("positional_embeddings", {"seed": 1}, results=[result])
    target = project / "plots/positional_embeddings/positional-embeddings-5_anim.gif"
    assert target.read_bytes() == gif
    assert record["items"]["positional-embeddings/5"]["figures"] == [
        "plots/positional_embeddings/positional-embeddings-5_anim.gif"]
    saved = json.loads((project / "metrics/positional_embeddings.json").read_text())
    assert saved["items"]["positional-embeddings/5"]["findings"][0]["passed"] is True
    client = mlflow.MlflowClient()
    runs = client.search_runs(
        [mlflow.get_experiment_by_name("Positional Embeddings").experiment_id],
        filter_string="tags.`nlpc.item` = 'positional-embeddings/5'")
    assert [a.path for a in client.list_artifacts(runs[0].info.run_id)] == [target.name]


def test_item_result_rejects_files_that_are_not_bytes():
    with pytest.raises(TypeError, match="not bytes"):
        ItemResult(item="x/1", files={"a.gif": "GIF89a"})


def test_save_item_texts_writes_one_tables_file_or_one_file_per_text_and_replaces_the_folder(tmp_path):
    from nlpcurriculum.stage import save_item_texts

    results = [ItemResult(item="sec/1", texts={"a.txt": "alpha"}),
               ItemResult(item="sec/2", texts={"b.txt": "beta"})]
    out = tmp_path / "out"
    save_item_texts(out, results)
    assert [p.name for p in out.iterdir()] == ["tables.txt"]
    assert (out / "tables.txt").read_text() == "== sec/1 a.txt\nalpha\n== sec/2 b.txt\nbeta\n"
    save_item_texts(out, results, separate=True)  # the old tables.txt does not survive
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt"]
    assert (out / "b.txt").read_text() == "beta"


REPO = Path(__file__).resolve().parents[1]
STAGES = sorted((REPO / "stages").glob("*.py"))


def _python(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MPLBACKEND": "Agg"}
    env = {k: v for k, v in env.items() if not k.startswith("MLFLOW_")}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_stage_help_prints_its_docstring_and_does_no_work(tmp_path, flag):
    proc = _python([str(REPO / "stages/splits.py"), flag], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Stage `splits`") and "done in" not in proc.stdout
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no params read, no outputs, no mlflow.db


@pytest.mark.parametrize("script", STAGES, ids=lambda p: p.stem)
def test_every_stage_runs_through_main_guard_and_has_a_docstring(script):
    """--help works for a stage when its ``__main__`` block is ``main_guard(main)`` (checked here
    from the source, without running 30 stages)."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    assert (ast.get_docstring(tree) or "").startswith(f"Stage `{script.stem}`")
    guard = tree.body[-1]
    assert isinstance(guard, ast.If) and ast.unparse(guard.test) == "__name__ == '__main__'"
    assert [ast.unparse(s) for s in guard.body] == ["main_guard(main)"]


def test_main_guard_prints_the_wall_time_last(tmp_path):
    script = tmp_path / "toy.py"
    script.write_text('"""Stage `toy`: sleeps."""\nimport time\nfrom nlpcurriculum.stage import main_guard\n\n'
                      'def main():\n    time.sleep(0.2)\n    print("toy: 1 item")\n\n'
                      'if __name__ == "__main__":\n    main_guard(main)\n')
    lines = _python([str(script)], tmp_path).stdout.splitlines()
    assert lines[0] == "toy: 1 item"
    assert re.fullmatch(r"toy: done in \d+\.\d s", lines[1]) and float(lines[1].split()[3]) >= 0.2
    assert _python([str(script), "--help"], tmp_path).stdout == "Stage `toy`: sleeps.\n"
