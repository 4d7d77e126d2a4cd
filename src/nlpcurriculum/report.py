"""The curriculum report: one self-contained HTML page of every section and item.

For each of the 48 sections and 148 items: its status from the registry and, for implemented
items, the latest metrics and expected-finding checks (pass/fail with the measured number) from
``metrics/<stage>.json``, the plots from ``plots/<stage>/`` embedded as base64 PNG, and a link to
the item's MLflow run. Inline CSS only, no scripts, no CDN: it opens offline.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlpcurriculum import registry

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1.5em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.summary{color:#555} .item{border:1px solid #e3e3e3;border-radius:6px;padding:.6em .9em;margin:.6em 0}
.badge{display:inline-block;border-radius:4px;padding:0 .5em;font-size:.8em;margin-right:.5em}
.implemented{background:#d7f5dd;color:#135f24} .planned{background:#eee;color:#666}
.pass{color:#135f24;font-weight:600} .fail{color:#a31515;font-weight:600}
table{border-collapse:collapse;margin:.4em 0;font-size:.9em} td,th{border:1px solid #e3e3e3;padding:.15em .5em}
td.num{text-align:right;font-variant-numeric:tabular-nums} img{max-width:48%;margin:.3em;border:1px solid #eee}
.muted{color:#777;font-size:.9em} nav a{margin-right:.8em}
"""


@dataclass
class ItemView:
    """What the report shows of one item."""

    item: registry.Item
    metrics: dict[str, Any] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    run_url: str | None = None


def collect(root: Path, runs: dict[str, dict[str, str]], mlflow_ui: str) -> list[ItemView]:
    """Join the registry with the stages' metrics files and the MLflow runs."""
    records = _item_records(root / "metrics")
    timed = _item_records(root / "metrics" / "timings")
    views = []
    for it in registry.items():
        view = ItemView(it)
        rec = records.get(it.id)
        if rec:
            clocked = timed.get(it.id, {})
            view.metrics = {**rec.get("metrics", {}), **clocked.get("timings", {})}
            view.findings = rec.get("findings", []) + clocked.get("findings", [])
            view.figures = [root / p for p in rec.get("figures", [])]
        run = runs.get(it.id)
        if run:
            base = mlflow_ui.rstrip("/")
            view.run_url = f"{base}/#/experiments/{run['experiment_id']}/runs/{run['run_id']}"
        views.append(view)
    return views


def _item_records(folder: Path) -> dict[str, dict[str, Any]]:
    """``{item id: its record}`` from every ``<stage>.json`` in ``folder`` (unreadable files skipped)."""
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        for item_id, rec in (data.get("items") or {}).items():
            records[item_id] = rec
    return records


def render(views: list[ItemView], title: str = "nlpcurriculum report") -> str:
    """The whole page as one HTML string."""
    by_section: dict[str, list[ItemView]] = {}
    for v in views:
        by_section.setdefault(v.item.section_id, []).append(v)
    n_done = sum(v.item.status == registry.IMPLEMENTED for v in views)
    checks = [f for v in views for f in v.findings]
    findings = [f for f in checks if f.get("kind", "finding") == "finding"]
    invariants = [f for f in checks if f.get("kind") == "invariant"]
    n_pass = sum(bool(f.get("passed")) for f in findings)
    n_held = sum(bool(f.get("passed")) for f in invariants)
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class=summary>{n_done} of {len(views)} curriculum items implemented; "
        f"{n_pass} of {len(findings)} expected findings pass; "
        f"{n_held} of {len(invariants)} invariants hold.</p><nav>",
    ]
    for sec in registry.sections():
        done = sum(it.status == registry.IMPLEMENTED for it in sec.items)
        out.append(f"<a href='#{sec.id}'>{_e(sec.title)} ({done}/{len(sec.items)})</a>")
    out.append("</nav>")
    for sec in registry.sections():
        out.append(f"<h2 id='{sec.id}'>{_e(sec.title)}</h2>")
        for v in by_section[sec.id]:
            out.append(_render_item(v))
    out.append("</body></html>")
    return "\n".join(out)


def _render_item(v: ItemView) -> str:
    it = v.item
    parts = [
        f"<div class=item id='{_e(it.id)}'><span class='badge {it.status}'>{it.status}</span>"
        f"<b>{_e(it.text)}</b> <span class=muted>{_e(it.id)}"
    ]
    if it.stages:
        parts.append(" &middot; stage " + ", ".join(f"<code>{_e(s)}</code>" for s in it.stages))
    if v.run_url:
        parts.append(f" &middot; <a href='{_e(v.run_url)}'>MLflow run</a>")
    parts.append("</span>")
    if it.status == registry.IMPLEMENTED and not (v.metrics or v.findings):
        parts.append("<p class=muted>No results yet: run <code>dvc repro</code>.</p>")
    for kind, heading in (("finding", "finding"), ("invariant", "invariant (holds by construction)")):
        checks = [f for f in v.findings if f.get("kind", "finding") == kind]
        if checks:
            parts.append(_checks_table(checks, heading))
    if v.metrics:
        parts.append("<table>")
        for name, value in sorted(v.metrics.items()):
            parts.append(f"<tr><td>{_e(name)}</td><td class=num>{_num(value)}</td></tr>")
        parts.append("</table>")
    for path in v.figures:
        if path.exists() and path.suffix == ".png":
            data = base64.b64encode(path.read_bytes()).decode()
            parts.append(f"<img alt='{_e(path.name)}' src='data:image/png;base64,{data}'>")
    parts.append("</div>")
    return "".join(parts)


def _checks_table(checks: list[dict[str, Any]], heading: str) -> str:
    """A table of checks: claim, measured value (with n and SE for comparisons), bound, verdict."""
    rows = [f"<table><tr><th>{_e(heading)}</th><th>measured</th><th>n</th><th>SE</th>"
            "<th>bound</th><th>check</th></tr>"]
    for f in checks:
        ok = bool(f.get("passed"))
        rows.append(
            f"<tr><td>{_e(f.get('claim', ''))}</td>"
            f"<td>{_e(f.get('metric'))} = {_num(f.get('value'))}</td>"
            f"<td class=num>{_num(f.get('n'), '')}</td><td class=num>{_num(f.get('se'), '')}</td>"
            f"<td class=num>{_num(f.get('threshold'), '')}</td>"
            f"<td class={'pass' if ok else 'fail'}>{'PASS' if ok else 'FAIL'}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(value: Any, missing: str = "None") -> str:
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:.4g}"
    return _e(value)
