"""The report, the summary and the closing block, on a fabricated metrics folder."""

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from nlpcurriculum import registry, report
from nlpcurriculum.results import Finding

TOK = "tokenization-and-embeddings/2"
KV1, KV2 = "kv-cache/1", "kv-cache/2"


def _figure(path: Path, wide: bool = False) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 3) if wide else (5, 4))
    ax.plot([1, 2, 3], [3, 1, 2])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def fabricate(root: Path) -> Path:
    """A project folder as a smoke run leaves it: two stages' metrics, timings, plots, a page."""
    (root / "metrics" / "timings").mkdir(parents=True)
    (root / "params").mkdir()
    (root / "params" / "pipeline.yaml").write_text(
        "# params/pipeline.yaml with profile 'smoke' applied (profiles/smoke/pipeline.yaml)\n"
        "ingest:\n  source: files\n  path: data/raw\n  pattern: '*.txt'\nreport:\n  title: x\n")
    _figure(root / "plots" / "tokenizer_compare" / "bpe.png")
    _figure(root / "plots" / "kv_cache" / "kv-cache-1_speedup.png", wide=True)
    (root / "reports" / "kv_cache").mkdir(parents=True)
    (root / "reports" / "kv_cache" / "cache_viz.html").write_text("<p>viz</p>")
    checks = {
        TOK: [Finding.invariant("ids equal <tiktoken>", "mismatches", 0, True, 0.0),
              Finding.compare("fewer tokens than bytes", "gain", [0.3, 0.31, 0.29], margin=0.05)],
        KV1: [Finding.at_most("cached output identical", "lengths_with_different_output", 1, 0,
                              kind="invariant"),
              Finding.compare("the cache wins per seed", "loss_gap", [1.25, 1.5, 1.25], [1.0, 1.0, 1.0],
                              margin=0.5)],
        KV2: [Finding.timing_ratio("a cached pass beats recomputing", "hit_pass_speedup",
                                   [1.0, 1.0, 1.0], [0.99, 1.0, 1.01], 1.1)],
    }
    stages = {"tokenizer_compare": [TOK], "kv_cache": [KV1, KV2]}
    for stage, items in stages.items():
        record = {"stage": stage, "metrics": {"n": 1}, "items": {}}
        timed = {"stage": stage, "host": {"cpu": "Test CPU 9000", "cores": 2, "torch_threads": 1},
                 "timings": {"wall_time_s": 60.0 if stage == "kv_cache" else 30.5}, "items": {}}
        for it in items:
            figs = sorted(str(p.relative_to(root)) for p in (root / "plots" / stage).glob("*.png")
                          if stage == "tokenizer_compare" or p.name.startswith(it.replace("/", "-")))
            record["items"][it] = {"metrics": {"tokens_per_byte": 0.25},
                                   "findings": [asdict(f) for f in checks[it] if not f.timed],
                                   "figures": figs}
            timed["items"][it] = {"timings": {"tokens_per_s": 1234.5},
                                  "findings": [asdict(f) for f in checks[it] if f.timed]}
        (root / "metrics" / f"{stage}.json").write_text(json.dumps(record))
        (root / "metrics" / "timings" / f"{stage}.json").write_text(json.dumps(timed))
    (root / "metrics" / "ingest.json").write_text(json.dumps(
        {"stage": "ingest", "metrics": {"documents": 150, "chars": 778690}, "items": {}}))
    (root / "metrics" / "report.json").write_text(json.dumps({"stage": "report", "items": {
        KV1: {"findings": [{"claim": "the report's own file is not a result", "passed": False}]}}}))
    return root


RUNS = {KV1: {"run_id": "abc", "experiment_id": "7", "stage": "kv_cache"}}
UI = "http://127.0.0.1:5000"


def test_summary_counts_invariants_and_findings_timed_ones_included(tmp_path):
    views = report.collect(fabricate(tmp_path), RUNS, UI)
    assert report.summary(views) == {
        "items": 3, "invariants": {"held": 1, "total": 2}, "findings": {"passed": 1, "failed": 2}}
    metrics = report.section_metrics(views)
    assert metrics["kv-cache.findings.failed"] == 2
    assert metrics["kv-cache.invariants.total"] == 1
    assert metrics["tokenization-and-embeddings.findings.passed"] == 1
    assert metrics[f"{TOK}.gain"] == pytest.approx(0.3)  # the key figure: the first finding's value
    assert metrics[f"{KV2}.hit_pass_speedup"] == pytest.approx(1.0)
    assert not any(k.startswith("mixture-of-experts") for k in metrics)  # no results: no keys


def test_closing_block_names_each_failure_its_claim_value_bound_and_where_to_look(tmp_path):
    views = report.collect(fabricate(tmp_path), RUNS, UI)
    block = report.summary_block(views, "reports/index.html")
    lines = block.splitlines()
    assert lines[1] == "3 items run: invariants 1/2 held, findings 1/3 passed, 2 failed"
    # invariants first (a bug), each failed check under its item with the item's MLflow run
    assert lines[2:6] == [
        "FAILED invariants (a bug, not a result): 1 (each item in reports/index.html#<item>)",
        f"  kv-cache/1  MLflow: {UI}/#/experiments/7/runs/abc",
        "    - cached output identical",
        "      lengths_with_different_output = 1 (bound 0)",
    ]
    assert lines[6:12] == [
        "FAILED findings: 2 (each item in reports/index.html#<item>)",
        f"  kv-cache/1  MLflow: {UI}/#/experiments/7/runs/abc",
        "    - the cache wins per seed",
        "      loss_gap = 0.3333 (bound 0.5, n=3, SE 0.08333)",  # mean effect, margin, n, SE
        "  kv-cache/2",  # no MLflow run found
        "    - [timed] a cached pass beats recomputing",
    ]
    assert lines[12].startswith("      hit_pass_speedup = 1 (bound 1.1, n=3, SE ")
    assert "fewer tokens than bytes" not in block  # passed: not listed
    assert "the report's own file" not in block
    not_run = block[block.index("not run ("):block.index("report: ")]
    implemented = registry.counts()[registry.IMPLEMENTED]
    assert not_run.startswith(f"not run ({implemented - 3} implemented items without results)")
    assert " moe," in not_run and " kv_cache," in not_run  # kv-cache/3 has no results
    assert lines[-2:] == ["report: reports/index.html", "=" * 72]
    assert max(len(line) for line in lines) <= 100


def test_closing_block_cuts_a_long_claim_to_one_line():
    it = registry.item(KV1)
    claim = "the cache " + "really " * 40 + "helps"
    view = report.ItemView(it, stage="kv_cache", findings=[
        {"claim": claim, "metric": "m", "value": 0.5, "threshold": 1.0, "passed": False}])
    lines = report.summary_block([view], width=80).splitlines()
    shown = next(line for line in lines if line.startswith("    - "))
    assert shown.startswith("    - the cache really") and shown.endswith(" ...") and len(shown) <= 76


@pytest.mark.slow
def test_report_stage_prints_the_block_last_and_writes_the_summary(tmp_path):
    """``python stages/report.py`` as DVC runs it (MLflow's sqlite store in the project)."""
    root = fabricate(tmp_path)
    (root / "dvc.yaml").write_text("stages: {}\n")  # marks the project root for the MLflow store
    script = Path(__file__).parents[1] / "stages" / "report.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(script)], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip().splitlines()
    # the stage's last words: the block, then its wall time
    assert printed[-1].startswith("report: done in ")
    assert printed[-3:-1] == ["report: reports/index.html", "=" * 72]
    block = printed[printed.index("=" * 72):]
    assert block[1] == "3 items run: invariants 1/2 held, findings 1/3 passed, 2 failed"
    summary = json.loads((root / "metrics" / "summary.json").read_text())
    assert summary == {"items": 3, "invariants": {"held": 1, "total": 2},
                       "findings": {"passed": 1, "failed": 2}}
    published = json.loads((root / "metrics" / "report.json").read_text())["metrics"]
    assert published["kv-cache.findings.failed"] == 2 and published["items.implemented"] > 0
    assert "smoke" in (root / "reports" / "index.html").read_text()


def test_dvc_metrics_show_fits_a_terminal(tmp_path):
    """``dvc metrics show`` on the summary, as DVC prints it: two lines of 104 columns."""
    root = fabricate(tmp_path / "project")
    views = report.collect(root, {}, UI)
    (root / "metrics" / "summary.json").write_text(json.dumps(report.summary(views)))
    (root / "dvc.yaml").write_text("stages: {}\nmetrics:\n  - metrics/summary.json\n")
    dvc = str(Path(sys.executable).with_name("dvc"))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "COLUMNS": "200"}
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([dvc, "init", "-q"], cwd=root, check=True, env=env)
    shown = subprocess.run([dvc, "metrics", "show"], cwd=root, check=True, env=env,
                           capture_output=True, text=True).stdout
    lines = shown.strip().splitlines()
    assert lines[0].split() == ["Path", "findings.failed", "findings.passed", "invariants.held",
                                "invariants.total", "items"]
    assert lines[1].split() == ["metrics/summary.json", "2", "1", "1", "2", "3"]
    assert max(len(line) for line in lines) <= 110  # 104 with counts under 1000


def test_run_info_reads_profile_corpus_wall_time_and_pages(tmp_path):
    info = report.run_info(fabricate(tmp_path), commit="abc", date="2026-12-06")
    assert info.profile == "smoke"
    assert info.corpus == "files data/raw (*.txt): 150 documents, 778,690 characters"
    assert info.wall_time_s == pytest.approx(90.5)
    assert info.hosts["kv_cache"]["cpu"] == "Test CPU 9000"
    assert info.pages == [("KV-cache visualizer", "kv_cache/cache_viz.html")]
    (tmp_path / "params" / "pipeline.yaml").write_text("ingest:\n  source: stdlib\n")
    assert report.run_info(tmp_path).profile == "default"
    # the first line apply_profile writes now, in any params file it changed
    (tmp_path / "params" / "kv_cache.yaml").write_text(
        "# profile 'tiny' applied to params/kv_cache.yaml (profiles/tiny/kv_cache.yaml)\nkv_cache: {}\n")
    assert report.run_info(tmp_path).profile == "tiny"


def test_report_lists_every_item_and_embeds_results_offline(tmp_path):
    root = fabricate(tmp_path)
    views = report.collect(root, RUNS, UI)
    page = report.render(views, info=report.run_info(root, "abc", "2026-12-06"))
    for it in registry.items():
        assert f"id='{it.id}'" in page
    assert page.count("data:image/png;base64,") == 2  # the tokenizer item's plot and kv-cache/1's
    assert f"{UI}/#/experiments/7/runs/abc" in page
    assert "ids equal &lt;tiktoken&gt;" in page
    assert ">PASS<" in page and ">FAIL<" in page
    assert "<b>2</b> of 3 findings failed, 1 passed; 1 of 2 invariants hold" in page
    assert "invariant (holds by construction)" in page
    # a comparison's row: mean effect, n, SE, margin
    assert "<td class=num>0.3333</td><td class=num>3</td><td class=num>0.08333</td><td class=num>0.5</td>" in page
    assert page.index("id=failures") < page.index("<nav>") < page.index("<main>")
    assert "<script" not in page and "src='http" not in page and 'src="http' not in page


def test_report_in_a_browser_failures_first_filter_zoom_and_folded_tables(tmp_path):
    """What a reader sees in chromium, the network blocked."""
    from tests.browser import offline_page

    root = fabricate(tmp_path)
    page_path = root / "reports" / "index.html"
    views = report.collect(root, RUNS, UI)
    page_path.write_text(report.render(views, info=report.run_info(root, "abc1234", "2026-12-06")))
    with offline_page(page_path, width=1280, height=900) as op:
        p = op.page
        assert op.blocked == [] and op.errors == []
        header = p.locator("#run").inner_text()
        for text in ("smoke", "150 documents", "abc1234", "2026-12-06", "1.5 min"):
            assert text in header
        assert p.get_by_role("link", name="KV-cache visualizer").is_visible()
        # failures come first: their list is on the first screen, above the sections
        failures = p.locator("#failures")
        assert failures.bounding_box()["y"] < 900
        assert failures.locator("li").count() == 3
        assert "kv-cache/2" in failures.inner_text() and "fewer tokens" not in failures.inner_text()
        # the navigation counts each section's failures
        nav_kv = p.locator("nav a[href='#kv-cache']")
        assert nav_kv.inner_text().endswith("(3/3 items; findings 0/2; invariants 0/1) 3 failed")
        # folded: metrics and timings tables hidden until opened
        item = p.locator("[id='tokenization-and-embeddings/2']")
        metrics_cell = item.locator("details:not(.timings) td", has_text="tokens_per_byte")
        assert not metrics_cell.is_visible()
        item.locator("details:not(.timings) summary").click()
        assert metrics_cell.is_visible()
        assert "machine-dependent" in item.locator("details.timings summary").inner_text()
        assert "Test CPU 9000" in p.locator("#timings").inner_text()
        # "failed only" hides passing items and sections, keeps the failing ones
        assert item.is_visible()
        p.click("label[for=failed-only]")
        assert not item.is_visible()
        assert not p.locator("[id='mixture-of-experts/1']").is_visible()
        assert p.locator("[id='kv-cache/1']").is_visible()
        assert not p.locator("nav a[href='#mixture-of-experts']").is_visible()
        p.click("label[for=failed-only]")
        # a plot is readable in place and fills the window when clicked
        img = p.locator("[id='kv-cache/1'] .figs img").first
        img.scroll_into_view_if_needed()
        small = img.bounding_box()
        assert small["width"] >= 600  # a wide row of panels takes the whole row
        img.click()
        big = img.bounding_box()
        assert big["width"] > 1100
        p.screenshot(path=str(tmp_path / "zoomed.png"))
        p.mouse.click(5, 5)  # outside the image: back in place
        assert img.bounding_box()["width"] == pytest.approx(small["width"], abs=1)


def test_readme_column_reads_the_run_git_holds_not_the_working_tree(tmp_path):
    from nlpcurriculum.__main__ import RESULTS_HEADER, committed_results, render_readme

    root = fabricate(tmp_path)
    assert committed_results(root)["kv-cache"] == "not run"  # not a git work tree
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    assert committed_results(root)["kv-cache"] == "not run"  # nothing in git yet
    subprocess.run(["git", "add", "metrics"], cwd=root, check=True)
    (root / "metrics" / "kv_cache.json").write_text("{}")  # a later run, not committed
    cells = committed_results(root)
    # the staged file, not the working tree's; kv-cache/3 has no results but its stage ran
    assert cells["kv-cache"] == "0 passed, 2 failed; invariants 0/1"
    assert cells["tokenization-and-embeddings"].startswith("1 passed, 0 failed; invariants 1/1; not run: ")
    assert "`word_embeddings`" in cells["tokenization-and-embeddings"]
    assert cells["mixture-of-experts"] == "not run"
    assert cells["vision-language-pretraining-basics"] == "-"
    assert cells[""] == "1 passed, 2 failed"
    readme = ("x\n<!-- status:start (generated by `python -m nlpcurriculum readme`) -->\n"
              "old\n<!-- status:end -->\n")
    table = render_readme(readme, root)
    assert f"| {RESULTS_HEADER} |" in table
    assert "| `kv_cache` | 0 passed, 2 failed; invariants 0/1 |" in table


def test_every_item_is_one_div_of_class_item(tmp_path):
    """tests/test_pipeline.py counts the page's items by ``class=item``."""
    views = report.collect(fabricate(tmp_path), RUNS, UI)
    page = report.render(views)
    assert page.count("class=item") == len(registry.items())
    assert page.count("class=item data-failed") == 2  # kv-cache/1 and kv-cache/2


def test_closing_block_for_the_flow_links_runs_and_survives_an_unreadable_store(tmp_path, monkeypatch):
    from nlpcurriculum import tracking

    root = fabricate(tmp_path)
    monkeypatch.setattr(tracking, "latest_runs_by_item", lambda titles: RUNS)
    assert f"  kv-cache/1  MLflow: {UI}/#/experiments/7/runs/abc" in report.closing_block(root, UI).splitlines()

    def down(titles):
        raise RuntimeError("store unreadable")

    monkeypatch.setattr(tracking, "latest_runs_by_item", down)
    block = report.closing_block(root, UI)
    assert "FAILED findings: 2" in block and "MLflow:" not in block
