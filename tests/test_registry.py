import importlib
import json
import pkgutil
import subprocess
import sys

import yaml

from nlpcurriculum import registry
from nlpcurriculum.__main__ import render_architecture, render_readme
from tests.conftest import REPO


def test_registry_holds_the_whole_curriculum():
    sections = registry.sections()
    assert len(sections) == 48
    assert len(registry.items()) == 148
    assert sections[0].title == "Tokenization & Embeddings"
    assert registry.item("tokenization-and-embeddings/2").text == "Byte-Pair Encoding (BPE)"
    assert sections[-1].items[-1].text == "measure accuracy drop from graph optimizations"
    ids = [it.id for it in registry.items()]
    assert len(set(ids)) == len(ids)


def test_every_registered_stage_exists_in_dvc_yaml():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for it in registry.items():
        for stage in it.stages:
            assert stage in stages, f"{it.id} names stage {stage!r}, which dvc.yaml lacks"
            assert registry.section_of_stage(stage) == it.section


def test_status_is_derived_from_stages():
    for it in registry.items():
        assert it.status == ("implemented" if it.stages else "planned")
    counts = registry.counts()
    assert counts["implemented"] + counts["planned"] == 148


def test_status_json_cli_lists_every_item():
    out = subprocess.run(
        [sys.executable, "-m", "nlpcurriculum", "status", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout
    rows = json.loads(out)
    assert len(rows) == 148
    assert {"section", "item", "stage", "status"} <= set(rows[0])
    assert {r["status"] for r in rows} <= {"implemented", "planned"}
    text = subprocess.run(
        [sys.executable, "-m", "nlpcurriculum", "status"], capture_output=True, text=True, check=True
    ).stdout
    assert "of 148 items implemented" in text


def test_readme_status_table_is_generated_from_registry():
    readme = (REPO / "README.md").read_text()
    assert render_readme(readme, REPO) == readme, "run `python -m nlpcurriculum readme`"
    assert registry.markdown_table().splitlines()[2].removesuffix(" |") in readme


def test_architecture_stage_table_is_generated_from_registry_and_dvc_yaml():
    doc = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    assert render_architecture(doc, REPO / "dvc.yaml") == doc, "run `python -m nlpcurriculum readme`"
    # one row per stage, each implemented section's module beside its stages
    assert "| Mixture of Experts (MoE) | `experiments/mixture_of_experts.py` | `moe` | `splits` |" in doc
    assert "| Pipeline (the spine) | - | `report` | every other stage | `reports/index.html` |" in doc


def _stage_modules(package) -> dict[str, object]:
    """The modules of a section package that declare ``ITEMS`` (its stage modules), by name."""
    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if hasattr(module, "ITEMS"):
            found[info.name] = module
    return found


def test_every_section_module_declares_exactly_its_implemented_items():
    begun = [sec for sec in registry.sections() if any(it.stages for it in sec.items)]
    assert begun, "no section has an implemented item"
    for sec in registry.sections():
        if sec.module is not None:
            assert sec.module == sec.id.replace("-", "_"), f"{sec.id}: module {sec.module!r}"
    for sec in begun:
        assert sec.module is not None, f"{sec.id} has implemented items but names no module"
        module = importlib.import_module(f"nlpcurriculum.experiments.{sec.module}")
        implemented = {it.id for it in sec.items if it.stages}
        if hasattr(module, "__path__"):  # a package: one module per stage, named after the stage
            stage_modules = _stage_modules(module)
            declared = [item for m in stage_modules.values() for item in m.ITEMS]
            for name, stage_module in stage_modules.items():
                assert set(stage_module.ITEMS) == {it.id for it in registry.items_of_stage(name)}, (
                    f"{sec.module}.{name}: ITEMS differ from the items of stage {name!r}")
            assert sorted(module.ITEMS) == sorted(declared), f"{sec.module}.ITEMS is not its stages' ITEMS"
        else:
            declared = list(module.ITEMS)
        assert isinstance(module.ITEMS, tuple)
        assert len(declared) == len(set(declared)), f"{sec.module} declares an item twice"
        assert set(declared) == implemented, (
            f"{sec.module} declares {sorted(set(declared))}, the registry implements {sorted(implemented)}")
        assert (REPO / "src/nlpcurriculum" / sec.module_path).exists()
