"""Vendor Vega, Vega-Lite and Vega-Embed into the offline `dvc plots` page.

    python scripts/vendor_vega.py                  # the pinned versions below
    python scripts/vendor_vega.py --vega 5.33.1 --vega-lite 5.23.0 --vega-embed 6.29.0

Needs `npm` and the npm registry (the only step of the project that does). It

1. fetches the three packages with `npm pack` and takes each one's single-file browser bundle,
   ``build/<name>.min.js``, unchanged;
2. puts each bundle, byte for byte, into its ``<script data-package="<name>">`` block of
   ``dvc_plots_template/index.html`` (DVC's HTML template for `dvc plots show`, set in
   ``.dvc/config``), with its version and SHA-256 as attributes; the rest of the page is
   hand-written and left as it is;
3. writes the licences beside it: each package's own (``licenses/<name>.LICENSE``) and those of
   every package in their production dependency tree (``licenses/THIRD_PARTY_LICENSES.txt``,
   from `npm install --omit=dev --omit=optional` of the three: the bundles contain a subset of
   them; optional ones, such as a native rollup binary vega-tooltip lists, are build tools);
4. rewrites the versions table of ``dvc_plots_template/README.md``.

tests/test_dvc_plots.py checks that the blocks match the table (checksums and sizes) and that
`dvc plots show` renders every plot in chromium with the network blocked.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = ROOT / "dvc_plots_template"
PAGE = TEMPLATE_DIR / "index.html"
README = TEMPLATE_DIR / "README.md"
LICENSES = TEMPLATE_DIR / "licenses"
# The majors DVC's own page uses (vega@5, vega-lite@5, vega-embed@6; its templates are
# Vega-Lite v5 specs), at their latest releases when vendored.
PINNED = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
BLOCK = re.compile(r'<script data-package="(?P<name>[\w-]+)"[^>]*>.*?</script>', re.S)
TABLE_BEGIN, TABLE_END = "<!-- vendored:begin -->", "<!-- vendored:end -->"
LICENCE_FILE = re.compile(r"^(licen[cs]e|copying)(\.|-|$)", re.I)


def npm(args: list[str], cwd: Path) -> str:
    return subprocess.run(["npm", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _repository(info: dict) -> str:
    """A package.json's repository URL, normalised (``git+https://...git`` -> ``https://...``)."""
    repo = info.get("repository") or ""
    url = repo.get("url", "") if isinstance(repo, dict) else repo
    return url.removeprefix("git+").removesuffix(".git")


def fetch(versions: dict[str, str], tmp: Path) -> dict[str, dict]:
    """``npm pack`` each package; returns ``{name: {version, bundle, licence, tarball, integrity}}``."""
    specs = [f"{name}@{version}" for name, version in versions.items()]
    packed = json.loads(npm(["pack", *specs, "--json", "--pack-destination", str(tmp)], tmp))
    out = {}
    for entry in packed:
        name = entry["name"]
        with tarfile.open(tmp / entry["filename"]) as tar:
            bundle = tar.extractfile(f"package/build/{name}.min.js").read()
            names = [m.name for m in tar.getmembers()]
            info = json.loads(tar.extractfile("package/package.json").read())
            licence = next((tar.extractfile(n).read() for n in names
                            if n.count("/") == 1 and LICENCE_FILE.match(n.split("/")[1])), None)
        out[name] = {"version": entry["version"], "bundle": bundle, "licence": licence,
                     "tarball": f"https://registry.npmjs.org/{name}/-/{name}-{entry['version']}.tgz",
                     "integrity": entry["integrity"], "repository": _repository(info)}
    return out


def dependency_tree(versions: dict[str, str], tmp: Path) -> list[dict]:
    """Every package `npm install --omit=dev --omit=optional` of the three brings, with its
    licence text and repository."""
    tree = tmp / "tree"
    tree.mkdir()
    (tree / "package.json").write_text('{"name": "vendor-vega", "private": true}\n')
    npm(["install", "--omit=dev", "--omit=optional", "--ignore-scripts", "--no-audit", "--no-fund",
         "--no-package-lock", *(f"{n}@{v}" for n, v in versions.items())], tree)
    found = []
    for meta in sorted((tree / "node_modules").rglob("package.json")):
        folder = meta.parent
        scoped = folder.parent.name.startswith("@")
        if (folder.parent.parent if scoped else folder.parent).name != "node_modules":
            continue  # a package.json inside a package (e.g. build/package.json), not a package
        info = json.loads(meta.read_text(encoding="utf-8"))
        if "name" not in info or "version" not in info:
            continue
        files = sorted(p for p in folder.iterdir() if p.is_file() and LICENCE_FILE.match(p.name))
        found.append({"name": info["name"], "version": info["version"],
                      "license": info.get("license", "?"), "repository": _repository(info),
                      "text": files[0].read_text(encoding="utf-8", errors="replace") if files else None})
    return found


def write_licences(packages: dict[str, dict], tree: list[dict]) -> None:
    LICENSES.mkdir(parents=True, exist_ok=True)
    by_name = {p["name"]: p for p in tree}
    for name, pkg in packages.items():
        text = pkg["licence"]
        if text is None:  # vega's npm package ships none; the packages of its repository carry it
            donor = next(p for p in tree if p["repository"] == pkg["repository"] and p["text"])
            text = donor["text"].encode()
            pkg["licence_from"] = f"{donor['name']}@{donor['version']} (same repository)"
        (LICENSES / f"{name}.LICENSE").write_bytes(text)
    lines = ["Licences of every package in the production dependency tree of "
             + ", ".join(f"{n}@{p['version']}" for n, p in packages.items())
             + " (npm install --omit=dev --omit=optional), written by scripts/vendor_vega.py.",
             "The single-file bundles in dvc_plots_template/index.html contain a subset of them.",
             "A package without a licence file of its own is listed with its package.json licence.", ""]
    for p in sorted(by_name.values(), key=lambda p: p["name"]):
        if p["name"] in packages:
            continue
        lines.append(f"== {p['name']}@{p['version']} ({p['license']})")
        lines.append(p["text"].rstrip() if p["text"] else "(no licence file in the package)")
        lines.append("")
    (LICENSES / "THIRD_PARTY_LICENSES.txt").write_text("\n".join(lines), encoding="utf-8")


def write_page(packages: dict[str, dict]) -> None:
    page = PAGE.read_text(encoding="utf-8")
    seen = set()

    def block(match: re.Match) -> str:
        name = match["name"]
        pkg = packages[name]
        js = pkg["bundle"].decode("utf-8")
        assert "</script" not in js.lower(), f"{name}: the bundle would end its own script element"
        seen.add(name)
        return (f'<script data-package="{name}" data-version="{pkg["version"]}" '
                f'data-sha256="{hashlib.sha256(pkg["bundle"]).hexdigest()}">{js}</script>')

    page = BLOCK.sub(block, page)
    missing = set(packages) - seen
    if missing:
        raise SystemExit(f"{PAGE}: no <script data-package> block for {sorted(missing)}")
    PAGE.write_text(page, encoding="utf-8")


def write_table(packages: dict[str, dict]) -> None:
    rows = ["| package | version | file | bytes | SHA-256 | npm tarball (integrity) | licence |",
            "|---|---|---|---:|---|---|---|"]
    for name, pkg in packages.items():
        licence = f"[licenses/{name}.LICENSE](licenses/{name}.LICENSE)"
        if "licence_from" in pkg:
            licence += f", taken from {pkg['licence_from']}"
        rows.append(f"| {name} | {pkg['version']} | build/{name}.min.js | {len(pkg['bundle'])} | "
                    f"`{hashlib.sha256(pkg['bundle']).hexdigest()}` | {pkg['tarball']} "
                    f"(`{pkg['integrity']}`) | {licence} |")
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    README.write_text(f"{head}{TABLE_BEGIN}\n" + "\n".join(rows) + f"\n{TABLE_END}{tail}",
                      encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, version in PINNED.items():
        parser.add_argument(f"--{name}", default=version, help=f"version (default {version})")
    args = parser.parse_args()
    versions = {name: getattr(args, name.replace("-", "_")) for name in PINNED}
    with tempfile.TemporaryDirectory() as tmp:
        packages = fetch(versions, Path(tmp))
        tree = dependency_tree(versions, Path(tmp))
    write_licences(packages, tree)
    write_page(packages)
    write_table(packages)
    for name, pkg in packages.items():
        print(f"{name}@{pkg['version']}: {len(pkg['bundle'])} bytes")


if __name__ == "__main__":
    main()
