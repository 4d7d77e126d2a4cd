import pytest

from nlpcurriculum import dag
from tests.conftest import REPO


def write(tmp_path, text):
    path = tmp_path / "dvc.yaml"
    path.write_text(text)
    return path


def test_edges_come_from_outs_and_folders(tmp_path):
    graph = dag.load(write(tmp_path, """
stages:
  a: {cmd: x, outs: [data/a.parquet]}
  b: {cmd: x, deps: [data/a.parquet], outs: [data/b]}
  c: {cmd: x, deps: [data/b/train.parquet], outs: [{metrics/c.json: {cache: false}}]}
  d: {cmd: x, deps: [metrics/c.json, data/a.parquet]}
  e: {cmd: x}
"""))
    assert graph == {"a": set(), "b": {"a"}, "c": {"b"}, "d": {"a", "c"}, "e": set()}
    assert dag.topological(graph) == ["a", "b", "c", "d", "e"]
    assert dag.with_upstream(graph, ["c"]) == ["a", "b", "c"]
    with pytest.raises(dag.DagError, match="unknown stage"):
        dag.with_upstream(graph, ["zz"])


def test_cycle_is_reported(tmp_path):
    graph = dag.load(write(tmp_path, """
stages:
  a: {cmd: x, deps: [b.txt], outs: [a.txt]}
  b: {cmd: x, deps: [a.txt], outs: [b.txt]}
"""))
    with pytest.raises(dag.DagError, match="cycle"):
        dag.topological(graph)


def test_project_dag_ends_in_report():
    graph = dag.load(REPO / "dvc.yaml")
    order = dag.topological(graph)
    assert order[0] == "ingest" and order[-1] == "report"
    assert "ingest" in dag.with_upstream(graph, ["splits"])


def test_report_reads_every_stage_metrics():
    """The report stage depends on each other stage's metrics file, so it reruns after any stage."""
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    report_deps = set(stages["report"]["deps"])
    missing = [
        name for name in stages
        if name != "report" and f"metrics/{name}.json" not in report_deps
    ]
    assert not missing, f"report's deps lack the metrics of: {missing}"


def test_stage_table_rows_follow_the_dag(tmp_path):
    path = write(tmp_path, """
stages:
  ingest: {cmd: x, outs: [data/a.parquet]}
  moe: {cmd: x, deps: [data/a.parquet], outs: [reports/moe, {metrics/moe.json: {cache: false}}]}
""")
    assert {name: dag.outputs(spec) for name, spec in dag.read_stages(path).items()} == {
        "ingest": ["data/a.parquet"], "moe": ["reports/moe", "metrics/moe.json"]}
    rows = dag.stage_table(path).splitlines()
    assert rows[2] == "| Pipeline (the spine) | - | `ingest` | - | `data/a.parquet` |"
    # the registry names moe's section and module; metrics files are left out of "writes"
    assert rows[3] == ("| Mixture of Experts (MoE) | `experiments/mixture_of_experts.py` | `moe` | "
                       "`ingest` | `reports/moe` |")
