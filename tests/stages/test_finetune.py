"""The `finetune` and `instruct` stages' params and the one-line error for a bad custom dataset."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nlpcurriculum.experiments.finetuning_vs_instruction_tuning_vs_rlhf.finetune import FinetuneConfig
from nlpcurriculum.experiments.finetuning_vs_instruction_tuning_vs_rlhf.instruct import InstructConfig
from nlpcurriculum.params import load_section, params_file
from tests.conftest import REPO, params_copy


@pytest.mark.parametrize("profile", ["default", "smoke"])
def test_params_sections_load_in_every_profile(profile, tmp_path):
    root = params_copy(tmp_path, profile)
    ft = load_section("finetune", FinetuneConfig, params_file("finetune", root))
    it = load_section("instruct", InstructConfig, params_file("instruct", root))
    assert len(ft.seeds) >= 3 and len(it.seeds) >= 3
    assert (REPO / ft.data).is_file()  # the shipped default dataset
    if profile == "smoke":
        assert ft.train.max_steps <= 10 and it.train.max_steps <= 10
    else:
        assert ft.train.max_steps >= 100 and it.train.max_steps >= 100


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ('{"body": "no text field"}\n', "line 1 has no 'text' field (its fields: body)"),
])
def test_a_bad_custom_dataset_stops_the_stage_with_one_line_and_exit_2(tmp_path, content, message):
    root = params_copy(tmp_path)
    data = tmp_path / "mine.jsonl"
    if content is not None:
        data.write_text(content)
    path = params_file("finetune", root)
    path.write_text(path.read_text().replace("data/custom/release_notes.jsonl", str(data)))
    out = subprocess.run([sys.executable, str(REPO / "stages" / "finetune.py")], cwd=root,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and str(data) in out.stderr
    assert "Traceback" not in out.stderr
    assert not (root / "models").exists()  # nothing written
