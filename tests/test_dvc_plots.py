"""`dvc plots show` renders every plot offline (dvc_plots_template/, named in .dvc/config).

1. The template carries Vega, Vega-Lite and Vega-Embed inline, each block byte for byte the npm
   bundle the README's table names (version, size, SHA-256), with the licences beside them, and
   loads nothing from the web.
2. The real command on a small DVC project (a curve and a figure) writes a page that draws both
   in headless chromium with every network request blocked, also when written elsewhere (``-o``).
3. On the smoke run of the whole pipeline, every declared plot renders: one Vega view with data
   marks per step-series file, one loaded image per figure file, no request leaves the machine,
   no console error (slow: it needs the ``reproduced`` smoke project).
"""

from __future__ import annotations

import configparser
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from tests.browser import offline_page
from tests.conftest import BIN, REPO, run

TEMPLATE_DIR = REPO / "dvc_plots_template"
TEMPLATE = TEMPLATE_DIR / "index.html"
BLOCK = re.compile(r'<script data-package="([\w-]+)" data-version="([\w.-]+)" '
                   r'data-sha256="([0-9a-f]{64})">(.*?)</script>', re.S)
IMAGE_SUFFIXES = {".png", ".gif", ".jpg", ".jpeg", ".svg"}

# Per plot: the rows of its data and, per kind of data mark (line, symbol, rule, ...; not axes,
# legends or frames), how many items the Vega view drew; or the error its vegaEmbed call failed with.
MARK_ITEMS = """async () => {
  const walk = (node, found) => {
    if (node.marktype && node.marktype !== 'group' && node.role === 'mark') {
      found[node.marktype] = (found[node.marktype] || 0) + node.items.length;
    }
    for (const item of node.items || []) for (const child of item.items || []) walk(child, found);
    return found;
  };
  const results = await Promise.allSettled(window.dvcPlots);
  return results.map(r => r.status !== 'fulfilled' ? 'error: ' + r.reason : {
    rows: ((r.value.spec.data || {}).values || []).length,
    marks: walk(r.value.view.scenegraph().root, {}),
  });
}"""
IMAGES_LOADED = "() => [...document.images].map(i => i.complete && i.naturalWidth > 0)"


def test_template_carries_the_vendored_bundles_and_nothing_from_the_web():
    page = TEMPLATE.read_text(encoding="utf-8")
    readme = (TEMPLATE_DIR / "README.md").read_text(encoding="utf-8")
    blocks = BLOCK.findall(page)
    assert [b[0] for b in blocks] == ["vega", "vega-lite", "vega-embed"]  # load order matters
    for name, version, sha256, js in blocks:
        data = js.encode("utf-8")
        assert hashlib.sha256(data).hexdigest() == sha256, f"{name}: block differs from its checksum"
        assert f"| {name} | {version} | build/{name}.min.js | {len(data)} | `{sha256}` |" in readme
        licence = (TEMPLATE_DIR / "licenses" / f"{name}.LICENSE").read_text(encoding="utf-8")
        assert "University of Washington Interactive Data Lab" in licence and "Redistribution" in licence
    assert (TEMPLATE_DIR / "licenses/THIRD_PARTY_LICENSES.txt").stat().st_size > 10_000
    outside = BLOCK.sub("", page)  # the hand-written rest of the page
    assert not re.search(r"<script[^>]*\bsrc=|<link[^>]*\bhref=|https?://", outside)
    assert "{plot_divs}" in outside and "{scripts}" not in outside  # DVC's CDN tags stay out
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc/config")
    configured = (REPO / ".dvc" / config["plots"]["html_template"]).resolve()
    assert configured == TEMPLATE


def _small_project(root: Path) -> Path:
    """A DVC project (no git) with the repository's plots config, one curve and one figure."""
    root.mkdir()
    run([str(BIN / "dvc"), "init", "--no-scm", "-q"], root)
    shutil.copy(REPO / ".dvc/config", root / ".dvc/config")
    shutil.copytree(TEMPLATE_DIR, root / TEMPLATE_DIR.name)
    (root / "plots").mkdir()
    rows = [{"step": s, "loss": 4.0 / (s + 1)} for s in range(10)]
    (root / "plots/loss.json").write_text(json.dumps(rows))
    _png(root / "plots/figure.png")
    (root / "dvc.yaml").write_text("plots:\n  - plots/loss.json:\n      x: step\n      y: loss\n"
                                   "  - plots/figure.png\n")
    return root


def _png(path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(path, format="png")
    plt.close(fig)


@pytest.mark.timeout(300)
def test_dvc_plots_show_draws_a_curve_and_a_figure_offline(tmp_path):
    root = _small_project(tmp_path / "project")
    out = tmp_path / "elsewhere" / "plots"  # -o: the page must not depend on where it is written
    proc = run([str(BIN / "dvc"), "plots", "show", "-o", str(out)], root)
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "cdn.jsdelivr" not in html and 'data-package="vega"' in html, proc.stdout
    with offline_page(out / "index.html") as view:
        drawn = view.page.evaluate(MARK_ITEMS)
        images = view.page.evaluate(IMAGES_LOADED)
        assert len(drawn) == 1 and drawn[0]["rows"] == 10
        assert drawn[0]["marks"]["line"] >= 10  # every row is a point of the drawn curve
        assert images == [True]
        assert view.blocked == [] and view.errors == []


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_plot_of_the_smoke_run_renders_offline(reproduced, tmp_path):
    out = tmp_path / "dvc_plots"  # -o: the shared project stays as it is
    run([str(BIN / "dvc"), "plots", "show", "-o", str(out)], reproduced)
    files = [p for p in (reproduced / "plots").rglob("*") if p.is_file()]
    series = [p for p in files if p.suffix == ".json"]
    figures = [p for p in files if p.suffix in IMAGE_SUFFIXES]
    with offline_page(out / "index.html") as view:
        drawn = view.page.evaluate(MARK_ITEMS)
        images = view.page.evaluate(IMAGES_LOADED)
        view.page.screenshot(path=str(tmp_path / "dvc_plots.png"))  # kept under pytest's basetemp
    assert len(series) > 50 and len(drawn) == len(series)  # one Vega view per step-series file
    empty = [d for d in drawn if isinstance(d, str) or not d["marks"].get("line", 0) >= d["rows"] > 0]
    assert empty == []
    assert len(figures) > 50 and len(images) == len(figures) and all(images)
    assert view.blocked == [] and view.errors == []
