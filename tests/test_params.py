from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from nlpcurriculum.params import (
    ParamsError,
    apply_profile,
    flatten,
    load_section,
    merge_profile,
    profile_set_args,
)


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
    with pytest.raises(ParamsError, match="'a.z' does not exist"):
        merge_profile(base, {"a": {"z": 1}})


def test_apply_profile_rewrites_params_and_set_args_match(tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "params.yaml").write_text("a:\n  b: 1\n  c: x\n")
    (tmp_path / "profiles" / "tiny.yaml").write_text("a:\n  b: 2\n")
    assert profile_set_args("tiny", tmp_path) == ["-S", "a.b=2"]
    apply_profile("tiny", tmp_path)
    assert yaml.safe_load((tmp_path / "params.yaml").read_text()) == {"a": {"b": 2, "c": "x"}}
    with pytest.raises(ParamsError, match="no such profile"):
        apply_profile("huge", tmp_path)


def test_project_params_and_smoke_profile_load(tmp_path):
    """The committed params.yaml and every profile load into the stages' dataclasses."""
    import shutil

    from nlpcurriculum.data.sources import SourceConfig
    from nlpcurriculum.data.splits import SplitConfig
    from tests.conftest import REPO

    for profile in ["default"] + [p.stem for p in (REPO / "profiles").glob("*.yaml")]:
        shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
        shutil.copytree(REPO / "profiles", tmp_path / "profiles", dirs_exist_ok=True)
        apply_profile(profile, tmp_path)
        assert load_section("ingest", SourceConfig, tmp_path / "params.yaml").source == "stdlib"
        assert load_section("splits", SplitConfig, tmp_path / "params.yaml").seed == 0
