"""The results of a run, read from ``metrics/``: the HTML report, the summary and its printed block.

Three views of the same records (each stage's deterministic ``metrics/<stage>.json`` and its clock
readings ``metrics/timings/<stage>.json``, joined with the curriculum registry):

* :func:`render`: one self-contained HTML page (inline CSS, images as base64, no script, no CDN:
  it opens offline). A header with the profile, corpus, git commit, date and total wall time;
  the failed checks first; a navigation with each section's counts and a "failed only" filter
  (a checkbox and CSS); per item its findings (n / mean / SE / margin) apart from its invariants,
  its plots (click one to enlarge it), its metrics folded under the plots and its timings apart,
  labelled as machine-dependent with the host; links to the interactive pages.
* :func:`summary`: ``metrics/summary.json``, the one file declared as DVC metrics: a handful of
  totals, so that ``dvc metrics show`` and ``dvc exp show`` fit a terminal. The per-section
  counts and each item's key figure are :func:`section_metrics` (``metrics/report.json``).
* :func:`summary_block`: the short text that ends ``dvc repro`` (the report stage prints it):
  items run, invariants and findings passed / failed, and each failed check with its item, claim,
  measured value, bound and where to look (report anchor, MLflow run).
"""

from __future__ import annotations

import base64
import html
import json
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlpcurriculum import registry

METRICS = "metrics"
TIMINGS = "metrics/timings"
SELF = "report"  # the report stage's own records are not results of the curriculum

# Interactive pages the stages write under reports/<stage>/, by file name: what the link says.
INTERACTIVE = {
    "token_viz.html": "token visualizer",
    "cache_viz.html": "KV-cache visualizer",
    "position_encoding_3d.html": "3D positional encoding",
    "beam_trace.html": "beam search trace",
    "dashboard.html": "sampler dashboard (snapshot)",
}

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1180px;padding:1.2em 1.5em;color:#222}
h1{margin:.1em 0 .3em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.4em}
h2 .counts{font-size:.6em;font-weight:normal;color:#555;margin-left:.6em}
.run td,.run th{border:0;padding:.05em .8em .05em 0;text-align:left} .run th{color:#555;font-weight:normal}
.totals{font-size:1.05em;margin:.6em 0} .totals b{font-size:1.15em}
.item{border:1px solid #e3e3e3;border-radius:6px;padding:.6em .9em;margin:.6em 0}
.item[data-failed]{border-color:#e8a0a0;border-left:5px solid #c33}
.badge{display:inline-block;border-radius:4px;padding:0 .5em;font-size:.8em;margin-right:.5em}
.implemented{background:#d7f5dd;color:#135f24} .planned{background:#eee;color:#666}
.pass{color:#135f24;font-weight:600} .fail{color:#a31515;font-weight:600}
table{border-collapse:collapse;margin:.4em 0;font-size:.9em} td,th{border:1px solid #e3e3e3;padding:.15em .5em}
th{background:#f6f6f6;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.failrow td{background:#fff0f0}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:.6em;margin:.5em 0}
.figs img{width:100%;border:1px solid #eee;cursor:zoom-in;background:#fff} .figs img.wide{grid-column:1/-1}
.figs img:focus{position:fixed;top:2vh;left:2vw;width:96vw;height:96vh;object-fit:contain;z-index:10;
  cursor:zoom-out;box-shadow:0 0 0 100vmax rgba(0,0,0,.65);outline:none}
details{margin:.3em 0} summary{cursor:pointer;color:#345}
details.timings summary{color:#7a5a00}
.muted{color:#777;font-size:.9em}
nav{columns:3 18em;font-size:.9em;margin:.5em 0 1em} nav a{display:block;text-decoration:none}
nav .nfail{color:#a31515;font-weight:600}
.filter{font-weight:600;margin:.5em 0;display:inline-block;background:#fff3f3;border:1px solid #e8a0a0;
  border-radius:4px;padding:.2em .6em;cursor:pointer}
#failed-only:checked ~ main .item:not([data-failed]),
#failed-only:checked ~ main section:not(.failed),
#failed-only:checked ~ nav a:not(.failed){display:none}
#failures li{margin:.4em 0}
.filter::before{content:"\\2610  "} #failed-only:checked + .filter{background:#c33;color:#fff}
#failed-only:checked + .filter::before{content:"\\2611  "}
"""


@dataclass
class ItemView:
    """What the report shows of one item.

    Attributes:
        item: the registry's item.
        stage: the stage whose ``metrics/<stage>.json`` holds the item ("" when it has no results).
        metrics: deterministic metrics.
        timings: clock and allocator readings (machine-dependent).
        findings: every check as a dict (``Finding`` fields; ``timed`` ones come from the timings
            file), findings and invariants alike.
        figures: the item's plot files.
        run_url: the item's MLflow child run, if one was found.
    """

    item: registry.Item
    stage: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    run_url: str | None = None

    @property
    def ran(self) -> bool:
        """Whether a stage recorded results for the item."""
        return bool(self.stage)

    def checks(self, kind: str) -> list[dict[str, Any]]:
        """The item's checks of one kind (``"finding"`` or ``"invariant"``)."""
        return [f for f in self.findings if f.get("kind", "finding") == kind]

    def failed(self) -> list[dict[str, Any]]:
        return [f for f in self.findings if not f.get("passed")]


@dataclass
class RunInfo:
    """The header of a run: where its numbers came from."""

    profile: str = "default"
    corpus: str = ""
    commit: str = ""
    date: str = ""
    wall_time_s: float = 0.0
    stage_wall_s: dict[str, float] = field(default_factory=dict)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage -> host record
    pages: list[tuple[str, str]] = field(default_factory=list)  # (label, path relative to the page)


# -- reading ------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def stage_records(folder: Path) -> dict[str, dict[str, Any]]:
    """``{stage: its record}`` from every ``<stage>.json`` in ``folder`` (unreadable files and
    the report's own record skipped)."""
    records = {}
    for path in sorted(folder.glob("*.json")):
        data = _read_json(path)
        if data is not None and path.stem not in (SELF, "summary"):
            records[path.stem] = data
    return records


def git_records(root: Path, rev: str = "") -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The stage records git holds: ``(metrics/<stage>.json, metrics/timings/<stage>.json)`` by stage.

    Args:
        root: the project folder (inside a git work tree).
        rev: a commit (``"HEAD"``), or ``""`` for git's index: what is committed, or staged for
            the next commit, whatever the working tree holds (a smoke run's files, say).

    Raises:
        OSError: git is missing or ``root`` is not in a git work tree.
    """
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        if done.returncode:
            raise OSError(f"git {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    listing = (git("ls-tree", "-r", "--name-only", rev, "--", METRICS) if rev
               else git("ls-files", "--", METRICS))
    found: tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]] = ({}, {})
    for path in listing.splitlines():
        p = Path(path)
        folder = {Path(METRICS): 0, Path(TIMINGS): 1}.get(p.parent)
        if folder is None or p.suffix != ".json" or p.stem in (SELF, "summary"):
            continue
        try:
            data = json.loads(git("show", f"{rev}:{path}"))
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            found[folder][p.stem] = data
    return found


def collect(root: Path, runs: dict[str, dict[str, str]], mlflow_ui: str,
            records: tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]] | None = None,
            ) -> list[ItemView]:
    """Join the registry with the stages' metrics and timings files and the MLflow runs.

    Args:
        root: the project folder (holding ``metrics/``).
        runs: ``{item id: {"run_id", "experiment_id"}}`` (``tracking.latest_runs_by_item``).
        mlflow_ui: the base URL of ``mlflow ui``, for the run links.
        records: the stage records to read instead of ``root``'s files: ``(metrics by stage,
            timings by stage)``, e.g. the committed ones (:func:`git_records`).
    """
    records, timed = records or (stage_records(root / METRICS), stage_records(root / TIMINGS))
    by_item: dict[str, tuple[str, dict[str, Any]]] = {}
    for stage, data in records.items():
        for item_id, rec in (data.get("items") or {}).items():
            by_item[item_id] = (stage, rec)
    views = []
    for it in registry.items():
        view = ItemView(it)
        if it.id in by_item:
            stage, rec = by_item[it.id]
            clocked = ((timed.get(stage) or {}).get("items") or {}).get(it.id, {})
            view.stage = stage
            view.metrics = dict(rec.get("metrics") or {})
            view.timings = dict(clocked.get("timings") or {})
            view.findings = list(rec.get("findings") or []) + [
                {**f, "timed": True} for f in clocked.get("findings") or []]
            view.figures = [root / p for p in rec.get("figures") or []]
        run = runs.get(it.id)
        if run:
            base = mlflow_ui.rstrip("/")
            view.run_url = f"{base}/#/experiments/{run['experiment_id']}/runs/{run['run_id']}"
        views.append(view)
    return views


def run_info(root: Path, commit: str = "", date: str = "") -> RunInfo:
    """The run's header from ``params/pipeline.yaml``, ``metrics/`` and ``reports/``.

    The profile is read from the first line that applying a profile writes into the params files
    it changes (``# profile 'smoke' applied to ...``; older versions: ``# params/x.yaml with
    profile 'smoke' applied``); without one the params are the defaults.
    """
    info = RunInfo(commit=commit, date=date)
    for path in sorted((root / "params").glob("*.yaml")):
        with open(path, encoding="utf-8") as f:
            match = re.match(r"# .*\bprofile '([^']+)' applied\b", f.readline())
        if match:
            info.profile = match.group(1)
            break
    params_path = root / "params" / "pipeline.yaml"
    text = params_path.read_text(encoding="utf-8") if params_path.exists() else ""
    info.corpus = _corpus(root, text)
    for stage, data in stage_records(root / TIMINGS).items():
        wall = (data.get("timings") or {}).get("wall_time_s")
        if isinstance(wall, (int, float)):
            info.stage_wall_s[stage] = float(wall)
        if data.get("host"):
            info.hosts[stage] = data["host"]
    info.wall_time_s = sum(info.stage_wall_s.values())
    for page in sorted((root / "reports").glob("*/*.html")):
        label = INTERACTIVE.get(page.name)
        if label:
            info.pages.append((label, page.relative_to(root / "reports").as_posix()))
    return info


def _corpus(root: Path, params_text: str) -> str:
    """The corpus in words: the ingest source (and its path or hub name) and its size."""
    import yaml

    try:
        ingest = (yaml.safe_load(params_text) or {}).get("ingest") or {}
    except yaml.YAMLError:
        ingest = {}
    source = str(ingest.get("source", "?"))
    if source == "files":
        source += f" {ingest.get('path', '')}" + (f" ({ingest['pattern']})" if ingest.get("pattern") else "")
    elif source == "hub":
        source += f" {ingest.get('hub_name', '')}"
    counts = ((_read_json(root / METRICS / "ingest.json") or {}).get("metrics")) or {}
    if "documents" in counts:
        source += f": {counts['documents']:,} documents"
        if "chars" in counts:
            source += f", {counts['chars']:,} characters"
    return source


# -- summaries ----------------------------------------------------------------------------------


def _tally(checks: list[dict[str, Any]]) -> tuple[int, int]:
    """(passed, failed)."""
    passed = sum(bool(f.get("passed")) for f in checks)
    return passed, len(checks) - passed


def summary(views: list[ItemView]) -> dict[str, Any]:
    """``metrics/summary.json``: items run, invariants held / total, findings passed / failed.

    Five numbers, so that ``dvc metrics show`` prints two lines of 104 columns and ``dvc exp show``
    keeps them in view; timed findings (speed-ups) count with the others.
    """
    ran = [v for v in views if v.ran]
    inv_held, inv_failed = _tally([f for v in ran for f in v.checks("invariant")])
    passed, failed = _tally([f for v in ran for f in v.checks("finding")])
    return {
        "items": len(ran),
        "invariants": {"held": inv_held, "total": inv_held + inv_failed},
        "findings": {"passed": passed, "failed": failed},
    }


def key_figure(view: ItemView) -> tuple[str, float] | None:
    """An item's key figure: the measured value of its first finding (else of its first check)."""
    checks = view.checks("finding") or view.findings
    for f in checks:
        if isinstance(f.get("value"), (int, float)):
            return str(f.get("metric")), float(f["value"])
    return None


def section_metrics(views: list[ItemView]) -> dict[str, float]:
    """Per-section counts and each item's key figure, flat (``metrics/report.json``, MLflow).

    Keys: ``<section id>.findings.passed`` / ``.failed``, ``<section id>.invariants.held`` /
    ``.total`` for every section with results, and ``<item id>.<metric>`` for each item's key
    figure. ``dvc metrics diff --targets metrics/report.json`` lists them one per row.
    """
    out: dict[str, float] = {}
    for sec in registry.sections():
        ran = [v for v in views if v.item.section_id == sec.id and v.ran]
        if not ran:
            continue
        passed, failed = _tally([f for v in ran for f in v.checks("finding")])
        held, broken = _tally([f for v in ran for f in v.checks("invariant")])
        out.update({f"{sec.id}.findings.passed": passed, f"{sec.id}.findings.failed": failed,
                    f"{sec.id}.invariants.held": held, f"{sec.id}.invariants.total": held + broken})
        for v in ran:
            key = key_figure(v)
            if key:  # MLflow's metric names: letters, digits, _ - . / and spaces
                out[f"{v.item.id}." + re.sub(r"[^\w\-./ ]", "_", key[0])] = key[1]
    return out


def status_cell(section: registry.Section, views: list[ItemView]) -> str:
    """A section's results in one README cell: ``12 passed, 1 failed; invariants 20/20``.

    ``-`` for a section with nothing implemented, ``not run`` when no stage of it has results,
    and ``not run: <stages>`` after the counts for the stages of it that have none.
    """
    mine = [v for v in views if v.item.section_id == section.id and v.item.status == registry.IMPLEMENTED]
    if not mine:
        return "-"
    ran = [v for v in mine if v.ran]
    if not ran:
        return "not run"
    passed, failed = _tally([f for v in ran for f in v.checks("finding")])
    held, broken = _tally([f for v in ran for f in v.checks("invariant")])
    cell = f"{passed} passed, {failed} failed"
    if held + broken:
        cell += f"; invariants {held}/{held + broken}"
    missing = sorted({s for v in mine if not v.ran for s in v.item.stages} - {v.stage for v in ran})
    if missing:
        cell += "; not run: " + ", ".join(f"`{s}`" for s in missing)
    return cell


def bound_text(f: dict[str, Any]) -> str:
    """The bound a check was held to, in words: ``bound 1.2`` plus n and SE for a comparison."""
    parts = []
    if f.get("threshold") is not None:
        parts.append(f"bound {_num(f['threshold'])}")
    if f.get("n") is not None:
        parts.append(f"n={f['n']}")
    if f.get("se") is not None:
        parts.append(f"SE {_num(f['se'])}")
    return ", ".join(parts) or "no bound recorded"


def summary_block(views: list[ItemView], page: str = "reports/index.html", width: int = 100) -> str:
    """The short text that ends a run: totals, then each failed check and where to look.

    Failed invariants first (a bug), then failed findings, grouped by item: a line with the item
    and its MLflow run, then per failed check its claim (cut to one line; the report has it
    whole) and its measured value with the bound (and n, SE for a comparison). Each item's
    section of the report is ``<page>#<item id>``.

    Args:
        views: :func:`collect`'s items.
        page: the report's path, for the anchors (``reports/index.html#kv-cache/1``).
        width: the longest claim line.
    """
    s = summary(views)
    inv, fnd = s["invariants"], s["findings"]
    ran = [v for v in views if v.ran]
    lines = [
        "=" * min(width, 72),
        f"{s['items']} items run: invariants {inv['held']}/{inv['total']} held, "
        f"findings {fnd['passed']}/{fnd['passed'] + fnd['failed']} passed, {fnd['failed']} failed",
    ]
    for kind, heading in (("invariant", "FAILED invariants (a bug, not a result)"),
                          ("finding", "FAILED findings")):
        failed = {v.item.id: (v, [f for f in v.checks(kind) if not f.get("passed")]) for v in ran}
        failed = {k: vf for k, vf in failed.items() if vf[1]}
        if not failed:
            continue
        n = sum(len(fs) for _, fs in failed.values())
        lines.append(f"{heading}: {n} (each item in {page}#<item>)")
        for item_id, (v, checks) in failed.items():
            lines.append(f"  {item_id}" + (f"  MLflow: {v.run_url}" if v.run_url else ""))
            for f in checks:
                timed = "[timed] " if f.get("timed") else ""
                lines.append(textwrap.shorten(f"{timed}{f.get('claim', '')}", width - 4,
                                              placeholder=" ...", initial_indent="    - "))
                lines.append(f"      {f.get('metric')} = {_num(f.get('value'))} ({bound_text(f)})")
    missing = [v.item for v in views if v.item.status == registry.IMPLEMENTED and not v.ran]
    if missing:
        stages = sorted({s for it in missing for s in it.stages})
        lines += textwrap.wrap(f"not run ({len(missing)} implemented items without results): "
                               f"stages {', '.join(stages)}", width, subsequent_indent="    ")
    lines.append(f"report: {page}")
    lines.append("=" * min(width, 72))
    return "\n".join(lines)


def closing_block(root: Path, mlflow_ui: str = "http://127.0.0.1:5000",
                  page: str = "reports/index.html") -> str:
    """:func:`summary_block` of the results under ``root``, with the items' MLflow runs.

    For a caller other than the report stage (the Prefect flow's end): one call, and a tracking
    store that cannot be read only costs the MLflow links.
    """
    from nlpcurriculum import tracking

    try:
        runs = tracking.latest_runs_by_item([s.title for s in registry.sections()])
    except Exception:  # noqa: BLE001 - the block is still worth printing without links
        runs = {}
    return summary_block(collect(root, runs, mlflow_ui), page)


# -- the page -----------------------------------------------------------------------------------


def render(views: list[ItemView], title: str = "nlpcurriculum report", info: RunInfo | None = None) -> str:
    """The whole page as one HTML string."""
    info = info or RunInfo()
    s = summary(views)
    inv, fnd = s["invariants"], s["findings"]
    n_done = sum(v.item.status == registry.IMPLEMENTED for v in views)
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _header(info),
        f"<p class=totals id=totals><b>{fnd['failed']}</b> of {fnd['passed'] + fnd['failed']} "
        f"findings failed, {fnd['passed']} passed; {inv['held']} of {inv['total']} invariants hold; "
        f"{s['items']} items run, {n_done} of {len(views)} curriculum items implemented.</p>",
        _failures(views),
        "<input type=checkbox id=failed-only hidden>"
        "<label for=failed-only class=filter>show failed only</label>",
        "<nav>",
    ]
    for sec in registry.sections():
        mine = [v for v in views if v.item.section_id == sec.id]
        done = sum(v.item.status == registry.IMPLEMENTED for v in mine)
        n_fail = sum(len(v.failed()) for v in mine)
        fail = f" <span class=nfail>{n_fail} failed</span>" if n_fail else ""
        cls = " class=failed" if n_fail else ""
        out.append(f"<a href='#{sec.id}'{cls}>{_e(sec.title)} ({_counts(mine, done, len(mine))}){fail}</a>")
    out.append("</nav><main>")
    for sec in registry.sections():
        mine = [v for v in views if v.item.section_id == sec.id]
        done = sum(v.item.status == registry.IMPLEMENTED for v in mine)
        cls = " class=failed" if any(v.failed() for v in mine) else ""
        out.append(f"<section id='sec-{sec.id}'{cls}><h2 id='{sec.id}'>{_e(sec.title)}"
                   f"<span class=counts>{_counts(mine, done, len(mine))}</span></h2>")
        out += [_render_item(v) for v in mine]
        out.append("</section>")
    out.append("</main>")
    out.append(_timings(info))
    out.append("</body></html>")
    return "\n".join(out)


def _counts(views: list[ItemView], done: int, total: int) -> str:
    """``3/4 items; findings 5/6; invariants 4/4`` for a section."""
    text = f"{done}/{total} items"
    findings = [f for v in views for f in v.checks("finding")]
    invariants = [f for v in views for f in v.checks("invariant")]
    if findings:
        text += f"; findings {_tally(findings)[0]}/{len(findings)}"
    if invariants:
        text += f"; invariants {_tally(invariants)[0]}/{len(invariants)}"
    return text


def _header(info: RunInfo) -> str:
    rows = [("profile", info.profile), ("corpus", info.corpus or "?"),
            ("git commit", info.commit or "?"), ("date", info.date or "?"),
            ("total wall time", f"{info.wall_time_s / 60:.1f} min ({info.wall_time_s:.0f} s: the sum of "
                                f"{len(info.stage_wall_s)} stages' wall times in their last runs, from "
                                "their start to their results, imports and MLflow logging aside; "
                                "see Timings below)")]
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    if info.pages:
        links = " &middot; ".join(f"<a href='{_e(p)}'>{_e(label)}</a>" for label, p in info.pages)
        cells += f"<tr><th>interactive pages</th><td>{links}</td></tr>"
    return f"<table class=run id=run>{cells}</table>"


def _failures(views: list[ItemView]) -> str:
    """The failed checks, invariants first (a bug), each linked to its item."""
    failed = [(v, f) for v in views for f in v.findings if not f.get("passed")]
    if not failed:
        return "<section id=failures><h2>Failures</h2><p class=pass>none: every check passed.</p></section>"
    failed.sort(key=lambda vf: vf[1].get("kind", "finding") != "invariant")
    rows = []
    for v, f in failed:
        kind = f.get("kind", "finding") + (" (timed)" if f.get("timed") else "")
        rows.append(f"<li><a href='#{_e(v.item.id)}'>{_e(v.item.id)}</a> "
                    f"<span class=muted>{_e(v.item.text)} &middot; {_e(kind)}</span><br>"
                    f"{_e(f.get('claim', ''))}<br><span class=fail>{_e(f.get('metric'))} = "
                    f"{_num(f.get('value'))}</span> <span class=muted>({_e(bound_text(f))})</span></li>")
    return (f"<section id=failures class=failed><h2>Failures ({len(failed)})</h2><ol>"
            + "".join(rows) + "</ol></section>")


def _render_item(v: ItemView) -> str:
    it = v.item
    failed = " data-failed" if v.failed() else ""
    parts = [
        f"<div class=item{failed} id='{_e(it.id)}'><span class='badge {it.status}'>{it.status}</span>"
        f"<b>{_e(it.text)}</b> <span class=muted>{_e(it.id)}"
    ]
    if it.stages:
        parts.append(" &middot; stage " + ", ".join(f"<code>{_e(s)}</code>" for s in it.stages))
    if v.run_url:
        parts.append(f" &middot; <a href='{_e(v.run_url)}'>MLflow run</a>")
    parts.append("</span>")
    if it.status == registry.IMPLEMENTED and not v.ran:
        parts.append("<p class=muted>No results yet: run <code>dvc repro</code>.</p>")
    if v.checks("finding"):
        parts.append(_findings_table(v.checks("finding")))
    if v.checks("invariant"):
        parts.append(_invariants_table(v.checks("invariant")))
    figures = [p for p in v.figures if p.exists() and p.suffix in (".png", ".gif")]
    if figures:
        parts.append("<div class=figs>")
        for path in figures:
            mime = "image/gif" if path.suffix == ".gif" else "image/png"
            raw = path.read_bytes()
            size = _image_size(raw)
            wide = " class=wide" if size and size[0] > 2 * size[1] else ""  # a row of panels
            data = base64.b64encode(raw).decode()
            parts.append(f"<img{wide} tabindex=0 title='click to enlarge, click outside to close' "
                         f"alt='{_e(path.name)}' src='data:{mime};base64,{data}'>")
        parts.append("</div>")
    if v.metrics:
        parts.append(f"<details><summary>metrics ({len(v.metrics)})</summary>{_values(v.metrics)}</details>")
    if v.timings:
        parts.append(f"<details class=timings><summary>timings ({len(v.timings)}): clock readings, "
                     f"machine-dependent (host under Timings)</summary>{_values(v.timings)}</details>")
    parts.append("</div>")
    return "".join(parts)


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or GIF from its header, else None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    return None


def _values(values: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td class=num>{_num(x)}</td></tr>" for k, x in sorted(values.items()))
    return f"<table>{rows}</table>"


def _verdict(f: dict[str, Any]) -> str:
    ok = bool(f.get("passed"))
    return f"<td class={'pass' if ok else 'fail'}>{'PASS' if ok else 'FAIL'}</td>"


def _findings_table(checks: list[dict[str, Any]]) -> str:
    """Findings: claim, metric, mean effect (or value), n, SE, margin (bound), verdict."""
    rows = ["<table class=findings><tr><th>finding</th><th>metric</th><th>mean</th><th>n</th>"
            "<th>SE</th><th>margin / bound</th><th>check</th></tr>"]
    for f in checks:
        row = " class=failrow" if not f.get("passed") else ""
        timed = " <span class=muted>(timed)</span>" if f.get("timed") else ""
        rows.append(
            f"<tr{row}><td>{_e(f.get('claim', ''))}{timed}</td><td>{_e(f.get('metric'))}</td>"
            f"<td class=num>{_num(f.get('value'))}</td><td class=num>{_num(f.get('n'), '')}</td>"
            f"<td class=num>{_num(f.get('se'), '')}</td><td class=num>{_num(f.get('threshold'), '')}</td>"
            f"{_verdict(f)}</tr>")
    rows.append("</table>")
    return "".join(rows)


def _invariants_table(checks: list[dict[str, Any]]) -> str:
    """Invariants (hold by construction): claim, metric, value, bound, verdict."""
    rows = ["<table class=invariants><tr><th>invariant (holds by construction)</th><th>metric</th>"
            "<th>value</th><th>bound</th><th>check</th></tr>"]
    for f in checks:
        row = " class=failrow" if not f.get("passed") else ""
        rows.append(
            f"<tr{row}><td>{_e(f.get('claim', ''))}</td><td>{_e(f.get('metric'))}</td>"
            f"<td class=num>{_num(f.get('value'))}</td><td class=num>{_num(f.get('threshold'), '')}</td>"
            f"{_verdict(f)}</tr>")
    rows.append("</table>")
    return "".join(rows)


def _timings(info: RunInfo) -> str:
    """Each stage's wall time and the machine it ran on: machine-dependent, unlike the rest."""
    if not info.stage_wall_s:
        return ""
    rows = []
    for stage, wall in sorted(info.stage_wall_s.items(), key=lambda kv: -kv[1]):
        host = info.hosts.get(stage) or {}
        where = str(host.get("cpu", "?"))
        where += f", {host['cores']} cores" if host.get("cores") else ""
        where += f", {host['torch_threads']} torch threads" if host.get("torch_threads") else ""
        rows.append(f"<tr><td>{_e(stage)}</td><td class=num>{wall:.1f}</td>"
                    f"<td>{_e(where)}</td></tr>")
    return ("<section id=timings><h2>Timings (machine-dependent)</h2><p class=muted>Clock readings of "
            "the last run of each stage (metrics/timings/): they vary with the machine and its load, "
            "unlike the results above.</p><table><tr><th>stage</th><th>wall time (s)</th>"
            "<th>host</th></tr>" + "".join(rows) + "</table></section>")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(value: Any, missing: str = "None") -> str:
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:.4g}"
    return _e(value)
