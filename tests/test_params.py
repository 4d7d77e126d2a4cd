import ast
import importlib
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from nlpcurriculum.params import (
    PRESETS_FILE,
    ParamsError,
    apply_profile,
    flatten,
    load_section,
    merge_profile,
    params_file,
    presets_used,
    profile_params,
    profile_set_args,
    read_presets,
    read_yaml,
)
from tests.conftest import REPO, params_copy


@dataclass
class Inner:
    width: int = 4
    rate: float = 0.5


@dataclass
class Outer:
    name: str
    mode: Literal["a", "b"] = "a"
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    inner: Inner = field(default_factory=Inner)
    label: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must not be empty")


def write(tmp_path, data) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_load_section_builds_nested_dataclass(tmp_path):
    path = write(tmp_path, {"s": {"name": "x", "mode": "b", "inner": {"rate": 2}, "sizes": [3]}})
    cfg = load_section("s", Outer, path)
    assert cfg == Outer(name="x", mode="b", sizes=[3], inner=Inner(width=4, rate=2.0))
    assert isinstance(cfg.inner.rate, float)


@pytest.mark.parametrize(
    "section, message",
    [
        ({"name": "x", "colour": 1}, "s.colour: unknown key"),
        ({"name": "x", "inner": {"widht": 3}}, "s.inner.widht: unknown key"),
        ({"name": 3}, "s.name: expected str, got int 3"),
        ({"name": "x", "inner": {"width": 2.5}}, "s.inner.width: expected int"),
        ({"name": "x", "inner": {"width": True}}, "s.inner.width: expected int"),
        ({"name": "x", "mode": "c"}, "s.mode: 'c' is not one of ['a', 'b']"),
        ({"name": "x", "sizes": "12"}, "s.sizes: expected a list"),
        ({"mode": "a"}, "s.name: required key is missing"),
        ({"name": ""}, "name must not be empty"),
    ],
)
def test_bad_section_fails_naming_file_and_key(tmp_path, section, message):
    path = write(tmp_path, {"s": section})
    with pytest.raises(ParamsError) as err:
        load_section("s", Outer, path)
    assert message in str(err.value)
    assert str(tmp_path / "params.yaml") in str(err.value)


@dataclass
class Optional_:
    inner: Inner | None = None


def test_optional_nested_dataclass_loads_and_names_the_bad_key(tmp_path):
    path = write(tmp_path, {"s": {"inner": {"width": 3}}, "t": {"inner": None}, "u": {}})
    assert load_section("s", Optional_, path) == Optional_(inner=Inner(width=3))
    assert load_section("t", Optional_, path) == Optional_(inner=None)
    assert load_section("u", Optional_, path) == Optional_(inner=None)
    for inner, message in [({"widht": 3}, "s.inner.widht: unknown key"),
                           ({"width": "x"}, "s.inner.width: expected int, got str 'x'")]:
        path = write(tmp_path, {"s": {"inner": inner}})
        with pytest.raises(ParamsError, match=message):
            load_section("s", Optional_, path)
    path = write(tmp_path, {"s": {"inner": 3}})
    with pytest.raises(ParamsError, match="s.inner: 3 matches none of"):
        load_section("s", Optional_, path)


def test_missing_file_and_section_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_section("s", Outer, tmp_path / "nope.yaml")
    path = write(tmp_path, {"other": {}})
    with pytest.raises(ParamsError, match="section 's' is missing"):
        load_section("s", Outer, path)
    (tmp_path / "params.yaml").write_text("s: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_section("s", Outer, path)


def test_flatten_uses_dotted_keys():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": Inner()}) == {
        "a.b": 1, "a.c.d": [1, 2], "e.width": 4, "e.rate": 0.5,
    }  # fmt: skip


def test_profile_cannot_add_keys():
    base = {"a": {"b": 1, "c": 2}}
    assert merge_profile(base, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}}
    with pytest.raises(ParamsError, match="'a.z' does not exist in the params file"):
        merge_profile(base, {"a": {"z": 1}})


def test_profile_may_override_what_a_preset_sets():
    presets = {"small": {"width": 4, "rate": 0.5}}
    base = {"s": {"inner": {"preset": "small", "rate": 1.0}}}
    merged = merge_profile(base, {"s": {"inner": {"width": 2}}}, presets=presets, target="p.yaml")
    assert merged == {"s": {"inner": {"preset": "small", "rate": 1.0, "width": 2}}}
    with pytest.raises(ParamsError, match="'s.inner.depth' does not exist in p.yaml"):
        merge_profile(base, {"s": {"inner": {"depth": 2}}}, presets=presets, target="p.yaml")


def make_layout(root, files: dict[str, str], overlays: dict[str, str]) -> None:
    """params/<name> and profiles/tiny/<name> under ``root`` from YAML texts."""
    for folder, texts in (("params", files), ("profiles/tiny", overlays)):
        (root / folder).mkdir(parents=True)
        for name, text in texts.items():
            (root / folder / name).write_text(text)


def test_apply_profile_rewrites_each_file_and_set_args_match(tmp_path):
    make_layout(tmp_path,
                {"one.yaml": "# kept when overlaid\na:\n  b: 1   # the b\n  c: x\n",
                 "two.yaml": "# comment\nd:\n  e: {preset: p, f: 1}\n",
                 "untouched.yaml": "# stays as written\ng: 1\n",
                 "presets.yaml": "p:\n  f: 0\n  h: [1, 2]\n"},
                {"one.yaml": "a:\n  b: 2\n", "two.yaml": "d:\n  e: {f: 3, h: [4, 5]}\n"})
    assert profile_set_args("tiny", tmp_path) == [
        "-S", "params/one.yaml:a.b=2",
        "-S", "params/two.yaml:d.e.f=3",
        "-S", "params/two.yaml:+d.e.h=[4,5]",  # set by the preset: DVC must add the key
    ]
    change = apply_profile("tiny", tmp_path)
    assert [p.name for p in change.applied] == ["one.yaml", "two.yaml"] and change.restored == []
    read = lambda name: yaml.safe_load((tmp_path / "params" / name).read_text())  # noqa: E731
    assert read("one.yaml") == {"a": {"b": 2, "c": "x"}}
    assert read("two.yaml") == {"d": {"e": {"preset": "p", "f": 3, "h": [4, 5]}}}
    # Comments and layout stay; a first line names the profile and the way back.
    assert (tmp_path / "params/one.yaml").read_text() == (
        "# profile 'tiny' applied to params/one.yaml (profiles/tiny/one.yaml); "
        "`python -m nlpcurriculum profile default` restores it\n"
        "# kept when overlaid\na:\n  b: 2   # the b\n  c: x\n")
    assert (tmp_path / "params/two.yaml").read_text().endswith(
        "# comment\nd:\n  e: {preset: p, f: 3, h: [4, 5]}\n")
    assert (tmp_path / "params/untouched.yaml").read_text() == "# stays as written\ng: 1\n"
    with pytest.raises(ParamsError, match="no such profile"):
        apply_profile("huge", tmp_path)


def _texts(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.yaml"))}


def test_smoke_keeps_every_comment_and_default_restores_the_files_byte_for_byte(tmp_path):
    """The project's own params: smoke changes values only (every comment line survives, in
    order); `profile default` afterwards leaves each file byte-identical to the committed one."""
    root = params_copy(tmp_path)
    original = _texts(REPO / "params")
    change = apply_profile("smoke", root)
    applied = _texts(root / "params")
    smoke = {p.name for p in (REPO / "profiles/smoke").glob("*.yaml")}
    assert {p.name for p in change.applied} == smoke
    for name in (p.name for p in change.applied):
        before, after = original[name].decode(), applied[name].decode()
        comments = lambda text: [line[line.index("#"):] for line in text.splitlines()  # noqa: E731
                                 if "#" in line]
        assert comments(after)[1:] == comments(before), name  # [0]: the profile's own line
        assert yaml.safe_load(after) != yaml.safe_load(before), name  # values did change
    expected = {p.name: data for p, data in profile_params("smoke", REPO).items()}
    assert {n: yaml.safe_load(t) for n, t in applied.items() if n in expected} == expected
    assert apply_profile("smoke", root).applied == change.applied  # again: the same bytes
    assert _texts(root / "params") == applied

    restored = apply_profile("default", root).restored
    assert [p.name for p in restored] == [p.name for p in change.applied]
    assert _texts(root / "params") == original
    assert not (root / "params/.defaults").exists()
    assert apply_profile("default", root).restored == []  # nothing left to restore


def test_profiles_do_not_stack_and_an_edit_is_not_overwritten(tmp_path):
    make_layout(tmp_path, {"one.yaml": "a: 1  # one\r\n", "two.yaml": "b: 1  # two\n"},
                {"one.yaml": "a: 2\n"})
    (tmp_path / "profiles/other").mkdir()
    (tmp_path / "profiles/other/two.yaml").write_text("b: 3\n")
    original = _texts(tmp_path / "params")
    apply_profile("tiny", tmp_path)
    change = apply_profile("other", tmp_path)  # from the defaults, not on top of tiny
    assert [p.name for p in change.restored] == ["one.yaml"]
    assert (tmp_path / "params/one.yaml").read_bytes() == original["one.yaml"]
    assert yaml.safe_load((tmp_path / "params/two.yaml").read_text()) == {"b": 3}

    (tmp_path / "params/two.yaml").write_text("b: 4  # mine\n")  # the user's edit
    with pytest.raises(ParamsError, match=r"params/two\.yaml: edited since profile 'other' was "
                                          r"applied; nothing was written"):
        apply_profile("default", tmp_path)
    assert (tmp_path / "params/two.yaml").read_text() == "b: 4  # mine\n"
    apply_profile("default", tmp_path, force=True)
    assert _texts(tmp_path / "params") == original


def test_default_restores_a_file_without_saved_copy_from_git_head(tmp_path, capsys, monkeypatch):
    """A file that names a profile in its first line but has no saved default (an older version
    of the command wrote it, or params/.defaults/ was deleted) comes back from git HEAD."""
    import subprocess

    from nlpcurriculum.__main__ import main

    make_layout(tmp_path, {"one.yaml": "# default\na: 1\n", "two.yaml": "b: 1\n"},
                {"one.yaml": "a: 2\n"})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    for cmd in (["git", "init", "-q"], [*git, "add", "-A"], [*git, "commit", "-qm", "c"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "params/one.yaml").write_text(
        "# params/one.yaml with profile 'tiny' applied (profiles/tiny/one.yaml)\na: 2\n")
    monkeypatch.chdir(tmp_path)
    assert main(["profile", "default"]) == 0
    assert (tmp_path / "params/one.yaml").read_text() == "# default\na: 1\n"
    assert capsys.readouterr().out.splitlines() == [
        "restored params/one.yaml (the defaults, from git HEAD)",
        "params/ holds the defaults (1 files restored)"]
    assert main(["profile", "tiny"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "applied profiles/tiny/one.yaml to params/one.yaml",
        "profile 'tiny' applied to 1 params files; `python -m nlpcurriculum profile default` "
        "restores the defaults"]
    (tmp_path / "params/one.yaml").write_text("a: 5\n")
    assert main(["profile", "default"]) == 2
    assert "edited since profile 'tiny' was applied" in capsys.readouterr().err


def test_overlay_without_params_file_is_an_error_naming_it(tmp_path):
    make_layout(tmp_path, {"one.yaml": "a: 1\n"}, {"one.yaml": "a: 2\n", "gone.yaml": "x: 1\n"})
    for action in (apply_profile, profile_set_args):
        with pytest.raises(ParamsError, match=r"gone\.yaml: overlays params/gone\.yaml, which does not exist"):
            action("tiny", tmp_path)
    assert (tmp_path / "params/one.yaml").read_text() == "a: 1\n"  # nothing written


def test_presets_expand_and_overrides_win(tmp_path):
    (tmp_path / "presets.yaml").write_text("small: {width: 2, rate: 0.25}\n")
    path = write(tmp_path, {"s": {"name": "x", "inner": {"preset": "small", "rate": 1}}})
    assert load_section("s", Outer, path).inner == Inner(width=2, rate=1.0)
    assert presets_used(read_yaml(path)["s"]) == ["small"]


@pytest.mark.parametrize(
    "inner, presets, message",
    [
        ({"preset": "smal"}, "small: {width: 2}\n", "s.inner.preset: unknown preset 'smal' (presets in"),
        ({"preset": "small"}, None, "s.inner.preset: names preset 'small', but"),
        ({"preset": "small"}, "small: {widht: 2}\n", "s.inner.widht: unknown key"),
        ({"preset": "small"}, "small: {width: two}\n", "s.inner.width: expected int, got str 'two'"),
    ],
    ids=["unknown-preset", "no-presets-file", "preset-unknown-key", "preset-wrong-type"],
)
def test_bad_preset_fails_naming_file_and_key(tmp_path, inner, presets, message):
    if presets is not None:
        (tmp_path / "presets.yaml").write_text(presets)
    path = write(tmp_path, {"s": {"name": "x", "inner": inner}})
    with pytest.raises(ParamsError) as err:
        load_section("s", Outer, path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_params_file_of_spine_and_section_stages():
    assert params_file("splits") == Path("params/pipeline.yaml")
    assert params_file("moe", "/r") == Path("/r/params/mixture_of_experts.yaml")
    assert params_file("dedup_impact").name == "deduplication_and_filtering.yaml"
    with pytest.raises(ParamsError, match="stage 'nope' has no params file: no item"):
        params_file("nope")


def test_section_of_a_missing_params_file_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamsError, match=r"params/mixture_of_experts\.yaml: params file not found"):
        load_section("moe", Outer)
    (tmp_path / "params").mkdir()
    (tmp_path / "params/mixture_of_experts.yaml").write_text("moe:\n  name: x\n  colour: 1\n")
    with pytest.raises(ParamsError, match=r"params/mixture_of_experts\.yaml: moe\.colour: unknown key"):
        load_section("moe", Outer)


# Sections a stage reads besides its own: the report's header names the corpus (`ingest.path`).
ALSO_READS = {"report": ["ingest"]}


def test_every_section_sits_in_its_stages_file_and_dvc_tracks_it():
    """Each params file holds exactly the sections params_file() sends to it, one per stage; each
    dvc.yaml stage tracks its section and the presets it names, and nothing else."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    sections = {}
    for path in sorted((REPO / "params").glob("*.yaml")):
        if path.name == PRESETS_FILE:
            continue
        for name, section in read_yaml(path).items():
            assert params_file(name, REPO) == path, f"{path.name}: section {name!r} belongs elsewhere"
            sections[name] = section
    assert set(sections) == set(stages)
    presets_path = REPO / "params" / PRESETS_FILE
    presets = read_presets(presets_path) if presets_path.exists() else {}
    used = set()
    for stage, spec in stages.items():
        expected = [{f"params/{params_file(stage).name}": [stage, *ALSO_READS.get(stage, [])]}]
        if presets_used(sections[stage]):
            expected.append({f"params/{PRESETS_FILE}": presets_used(sections[stage])})
            used.update(presets_used(sections[stage]))
        assert spec.get("params") == expected, f"dvc.yaml stage {stage}: params"
    assert used == set(presets), f"unused presets: {sorted(set(presets) - used)}"


@pytest.mark.parametrize("profile", ["smoke"])
def test_set_args_through_dvc_equal_the_applied_profile(tmp_path, profile):
    """`dvc exp run $(... --set-args)` must leave the params files apply_profile writes: apply the
    arguments with DVC's own -S machinery to one copy and compare with the profile applied."""
    from dvc.utils.hydra import apply_overrides

    applied = params_copy(tmp_path / "applied", profile)
    by_dvc = params_copy(tmp_path / "dvc")
    args = profile_set_args(profile, REPO)
    overrides: dict[str, list[str]] = {}
    for flag, arg in zip(args[::2], args[1::2]):
        assert flag == "-S"
        file, override = arg.split(":", 1)
        overrides.setdefault(file, []).append(override)
    for file, items in overrides.items():
        apply_overrides(by_dvc / file, items)
    for path in sorted((applied / "params").glob("*.yaml")):
        assert read_yaml(by_dvc / "params" / path.name) == read_yaml(path), path.name


def stage_configs() -> dict[str, type]:
    """``{section: config class}`` as each stage script calls ``load_section(section, Class)``."""
    found = {}
    for script in sorted((REPO / "stages").glob("*.py")):
        tree = ast.parse(script.read_text())
        origin = {a.asname or a.name: node.module for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) for a in node.names}
        consts = {n.targets[0].id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                  and isinstance(n.targets[0], ast.Name) and isinstance(n.value, ast.Constant)}
        modules = {a.asname or a.name: f"{node.module}.{a.name}" for node in ast.walk(tree)
                   if isinstance(node, ast.ImportFrom) for a in node.names}
        for node in ast.walk(tree):
            called = getattr(node.func, "id", None) if isinstance(node, ast.Call) else None
            if called not in ("run_section", "load_section"):
                continue
            # run_section(STAGE, experiment, Config) or load_section(STAGE, Config)
            name_arg, cls_arg = node.args[0], node.args[2 if called == "run_section" else 1]
            name = name_arg.value if isinstance(name_arg, ast.Constant) else consts[name_arg.id]
            if isinstance(cls_arg, ast.Attribute):  # experiment.Config: the module imported as `experiment`
                found[name] = getattr(importlib.import_module(modules[cls_arg.value.id]), cls_arg.attr)
            elif cls_arg.id in origin:
                found[name] = getattr(importlib.import_module(origin[cls_arg.id]), cls_arg.id)
            else:  # a dataclass defined in the stage script itself
                found[name] = runpy.run_path(str(script), run_name="not_main")[cls_arg.id]
    return found


def test_project_params_load_for_every_stage_and_profile(tmp_path):
    """Every stage's section, presets expanded, loads into the dataclass its script uses, with the
    committed params and with every profile applied."""
    configs = stage_configs()
    assert set(configs) == set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    for profile in ["default"] + [p.name for p in (REPO / "profiles").iterdir() if p.is_dir()]:
        root = params_copy(tmp_path / profile, profile)
        for stage, cls in configs.items():
            cfg = load_section(stage, cls, params_file(stage, root))
            assert isinstance(cfg, cls)


def test_every_check_states_its_reason():
    """Each key under a section's `checks:` carries a one-line reason (a YAML comment)."""
    seen = 0
    for path in sorted((REPO / "params").glob("*.yaml")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("checks:"):
                indent = len(line) - len(line.lstrip())
                for child in lines[i + 1:]:
                    if not child.strip() or len(child) - len(child.lstrip()) <= indent:
                        break
                    seen += 1
                    assert "#" in child, f"{path.name}: {child.strip()!r} states no reason"
    assert seen > 0
