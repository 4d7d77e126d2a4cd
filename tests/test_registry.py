import json
import subprocess
import sys

import yaml

from nlpcurriculum import registry
from nlpcurriculum.__main__ import render_readme
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
    assert render_readme(readme) == readme, "run `python -m nlpcurriculum readme`"
    assert registry.markdown_table() in readme
