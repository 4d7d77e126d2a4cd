"""params.yaml -> typed dataclasses, and the profiles that overlay it.

Every stage reads its knobs with :func:`load_section`, which maps one top-level section of
``params.yaml`` onto the config dataclass of the component it drives. The same key names appear in
params.yaml, the dataclass and the MLflow params (DESIGN.md, convention 3). A key the dataclass does
not know, a missing required key or a value of the wrong type fails at once, naming the file and
the dotted key, before any work starts.

Profiles: ``profiles/<name>.yaml`` holds overrides with the same nesting as params.yaml (the smoke
profile shrinks every size so the whole pipeline runs in minutes). :func:`apply_profile` writes
the merged result back to params.yaml, so DVC sees ordinary param changes; every overridden key
must exist in params.yaml, so a profile cannot drift from the file it overlays.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")

PARAMS_FILE = "params.yaml"


class ParamsError(ValueError):
    """A params file is missing, malformed, or does not match its dataclass."""


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_section(name: str, cls: type[T], path: str | Path = PARAMS_FILE) -> T:
    """Load section ``name`` of ``path`` into dataclass ``cls``, checking keys and types.

    Raises:
        ParamsError: naming the file and the dotted key that is unknown, missing or mistyped.
    """
    data = read_yaml(path)
    if name not in data:
        raise ParamsError(f"{path}: section {name!r} is missing")
    return from_dict(cls, data[name], where=f"{path}: {name}")


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclasses."""
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(
            f"{where}.{unknown[0]}: unknown key (known keys: {', '.join(sorted(fields))})"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}")
    missing = [
        f.name
        for f in fields.values()
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ParamsError(f"{where}.{missing[0]}: required key is missing")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ParamsError(f"{where}: {exc}") from exc


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Check ``value`` against type ``tp`` (ints are accepted for floats)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        nested = [option for option in get_args(tp) if dataclasses.is_dataclass(option)]
        if isinstance(value, dict) and len(nested) == 1:
            # a mapping can only mean the dataclass (``Inner | None``): let it name the bad key
            return from_dict(nested[0], value, where)
        errors = []
        for option in get_args(tp):
            try:
                return _coerce(option, value, where)
            except ParamsError as exc:
                errors.append(str(exc))
        raise ParamsError(f"{where}: {value!r} matches none of {_type_name(tp)}")
    if tp is type(None):
        if value is None:
            return None
        raise ParamsError(f"{where}: expected null, got {value!r}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ParamsError(f"{where}: {value!r} is not one of {list(get_args(tp))}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ParamsError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        (item_tp, *_) = get_args(tp) or (Any,)
        items = [_coerce(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        key_tp, val_tp = get_args(tp) or (Any, Any)
        return {
            _coerce(key_tp, k, f"{where}.{k}"): _coerce(val_tp, v, f"{where}.{k}")
            for k, v in value.items()
        }
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp in (str, bool):
        if isinstance(value, tp):
            return value
    else:
        raise ParamsError(f"{where}: unsupported field type {tp!r}")
    raise ParamsError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists become their string form (for MLflow)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        if isinstance(value, dict):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def merge_profile(base: dict[str, Any], overrides: dict[str, Any], where: str = "") -> dict:
    """Deep-merge ``overrides`` into ``base``; every overridden key must already exist."""
    merged = dict(base)
    for key, value in overrides.items():
        dotted = f"{where}{key}"
        if key not in base:
            raise ParamsError(f"profile key {dotted!r} does not exist in {PARAMS_FILE}")
        if isinstance(value, dict) and isinstance(base[key], dict):
            merged[key] = merge_profile(base[key], value, where=f"{dotted}.")
        else:
            merged[key] = value
    return merged


def apply_profile(profile: str, root: str | Path = ".") -> dict[str, Any]:
    """Overlay ``profiles/<profile>.yaml`` onto ``params.yaml`` under ``root`` and write it back.

    ``default`` is the params.yaml as committed, so applying it is a no-op.
    """
    from nlpcurriculum.io import write_text

    root = Path(root)
    params_path = root / PARAMS_FILE
    base = read_yaml(params_path)
    if profile == "default":
        return base
    profile_path = root / "profiles" / f"{profile}.yaml"
    if not profile_path.exists():
        known = sorted(p.stem for p in (root / "profiles").glob("*.yaml"))
        raise ParamsError(f"{profile_path}: no such profile (known: default, {', '.join(known)})")
    merged = merge_profile(base, read_yaml(profile_path))
    header = f"# params.yaml with profile {profile!r} applied (profiles/{profile}.yaml)\n"
    write_text(params_path, header + yaml.safe_dump(merged, sort_keys=False))
    return merged


def profile_set_args(profile: str, root: str | Path = ".") -> list[str]:
    """The same overlay as ``dvc exp run -S key=value`` arguments."""
    root = Path(root)
    overrides = read_yaml(root / "profiles" / f"{profile}.yaml")
    merge_profile(read_yaml(root / PARAMS_FILE), overrides)  # validate keys
    args = []
    for key, value in flatten(overrides).items():
        args += ["-S", f"{key}={json.dumps(value)}"]  # JSON is valid YAML
    return args
