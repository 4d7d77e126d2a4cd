"""The curriculum registry: sections -> items -> DVC stages -> status.

``curriculum.yaml`` (beside this module) is the one source: all 48 sections and 148 items of the
curriculum with their text, for each item the DVC stage(s) that run its experiment, and for each
section the module that holds its experiments (``nlpcurriculum.experiments.<module>``). Status is
derived, never stored: an item is ``implemented`` when it names at least one stage, ``planned``
otherwise. Tests keep that honest: every named stage must exist in ``dvc.yaml``, a section's module
must declare exactly its implemented items (``ITEMS``), and the pipeline test checks that each such
stage logs an MLflow child run for the item.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

IMPLEMENTED = "implemented"
PLANNED = "planned"


@dataclass(frozen=True)
class Item:
    """One curriculum item, e.g. ``Byte-Pair Encoding (BPE)``."""

    id: str
    text: str
    section_id: str
    section: str
    stages: tuple[str, ...]

    @property
    def status(self) -> str:
        return IMPLEMENTED if self.stages else PLANNED

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "section_id": self.section_id,
            "section": self.section,
            "item": self.text,
            "stage": self.stages[0] if self.stages else None,
            "stages": list(self.stages),
            "status": self.status,
        }


@dataclass(frozen=True)
class Section:
    """One curriculum section, e.g. ``KV Cache``.

    Attributes:
        id: the section id, e.g. ``"kv-cache"``.
        title: its title.
        items: its items, in curriculum order.
        module: the module of :mod:`nlpcurriculum.experiments` that holds its experiments, the id
            with ``-`` replaced by ``_`` (``"kv_cache"``); ``None`` for a section not begun.
    """

    id: str
    title: str
    items: tuple[Item, ...]
    module: str | None = None

    @property
    def module_path(self) -> str | None:
        """Where :attr:`module` lives under ``src/nlpcurriculum``: ``experiments/kv_cache.py``, or
        ``experiments/<module>/`` when the section has several stages (a package)."""
        if self.module is None:
            return None
        package = resources.files("nlpcurriculum").joinpath("experiments", self.module)
        return f"experiments/{self.module}/" if package.is_dir() else f"experiments/{self.module}.py"


@lru_cache(maxsize=1)
def sections() -> tuple[Section, ...]:
    """All curriculum sections in curriculum order."""
    text = resources.files("nlpcurriculum").joinpath("curriculum.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    out = []
    for sec in data["sections"]:
        items = tuple(
            Item(it["id"], it["text"], sec["id"], sec["title"], tuple(it.get("stages") or ()))
            for it in sec["items"]
        )
        out.append(Section(sec["id"], sec["title"], items, sec.get("module")))
    return tuple(out)


def items() -> list[Item]:
    """All items, in curriculum order."""
    return [it for sec in sections() for it in sec.items]


def item(item_id: str) -> Item:
    """The item with id ``item_id`` (``KeyError`` naming it otherwise)."""
    for it in items():
        if it.id == item_id:
            return it
    raise KeyError(f"no curriculum item {item_id!r}")


def items_of_stage(stage: str) -> list[Item]:
    """The items whose experiment stage ``stage`` runs."""
    return [it for it in items() if stage in it.stages]


def section_of_stage(stage: str) -> str | None:
    """The section title of a stage's items (a stage serves one section), or None."""
    titles = {it.section for it in items_of_stage(stage)}
    if len(titles) > 1:
        raise ValueError(f"stage {stage!r} serves several sections: {sorted(titles)}")
    return titles.pop() if titles else None


def counts() -> dict[str, int]:
    """``{"implemented": n, "planned": m}`` over all items."""
    out = {IMPLEMENTED: 0, PLANNED: 0}
    for it in items():
        out[it.status] += 1
    return out


def markdown_table(results: dict[str, str] | None = None, results_header: str = "Results") -> str:
    """The README's curriculum status table (one row per section).

    Args:
        results: an extra last column, ``{section id: cell}`` (the README's: each section's
            findings on the committed default run); sections it lacks get ``-``.
        results_header: that column's header.
    """
    extra = results is not None
    lines = [
        "| Section | Items | Implemented | Module | Stages |" + (f" {results_header} |" if extra else ""),
        "|---|---:|---:|---|---|" + ("---|" if extra else ""),
    ]
    for sec in sections():
        done = [it for it in sec.items if it.status == IMPLEMENTED]
        stages = sorted({s for it in sec.items for s in it.stages})
        module = f"`{sec.module_path}`" if sec.module else "-"
        lines.append(
            f"| {sec.title} | {len(sec.items)} | {len(done)} | {module} | "
            f"{', '.join(f'`{s}`' for s in stages) or '-'} |"
            + (f" {results.get(sec.id, '-')} |" if extra else "")
        )
    c = counts()
    lines.append(f"| **All {len(sections())} sections** | {sum(c.values())} | {c[IMPLEMENTED]} | | |"
                 + (f" {results.get('', '')} |" if extra else ""))
    return "\n".join(lines)
