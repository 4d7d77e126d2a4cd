"""params/*.yaml -> typed dataclasses, with named presets and the profiles that overlay them.

Layout. The knobs live in ``params/``, one file per curriculum section: a stage's section sits in
``params/<section_id>.yaml`` (the section of the stage's items in ``curriculum.yaml``, with '-'
written '_'), and the spine stages (:data:`SPINE_STAGES`) share ``params/pipeline.yaml``.
:func:`params_file` is the one place that decides. Inside a file the top-level key is the stage
name, so a section's keys, its dataclass fields and its MLflow params have the same names.

Loading. :func:`load_section` maps one stage's section onto the config dataclass of the component
it drives. A key the dataclass does not know, a missing required key or a value of the wrong type
fails at once, naming the file and the dotted key, before any work starts.

Presets. A mapping that says ``preset: NAME`` starts from the mapping ``NAME`` of
``params/presets.yaml`` (beside the params file) and overrides what it lists:
``model: {preset: byte_gpt, n_layers: 4}``. Expansion is shallow and happens before the
dataclass is built, so a config from a preset equals the one written out in full. ``preset`` is
therefore a reserved key in params files.

Profiles: ``profiles/<name>/<file>.yaml`` holds overrides of ``params/<file>.yaml`` with the same
nesting (the smoke profile shrinks every size so the whole pipeline runs in minutes).
:func:`apply_profile` writes the merged values into the params files by a comment-preserving
round trip, so DVC sees ordinary param changes and every comment stays; it saves the defaults in
``params/.defaults/`` first, and ``apply_profile("default")`` puts them back byte for byte. Every
overridden key must exist in the file it overlays (or in the preset its mapping names), so a
profile cannot drift from the files it overlays.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")

PARAMS_DIR = "params"
#: the spine of the DAG; their sections share ``params/pipeline.yaml``
SPINE_STAGES = ("ingest", "splits", "tokenizer", "pretrain", "evaluate", "report")
PIPELINE_FILE = "pipeline.yaml"
PRESETS_FILE = "presets.yaml"
PROFILES_DIR = "profiles"
PRESET_KEY = "preset"


class ParamsError(ValueError):
    """A params file is missing, malformed, or does not match its dataclass."""


def params_file(stage: str, root: str | Path = ".") -> Path:
    """The params file holding ``stage``'s section, e.g. ``params/mixture_of_experts.yaml``.

    Spine stages -> ``params/pipeline.yaml``; any other stage -> the file of the curriculum
    section whose items name it (``moe`` -> section ``mixture-of-experts``).

    Raises:
        ParamsError: when the stage is neither a spine stage nor named by an item, or when its
            items belong to more than one section.
    """
    if stage in SPINE_STAGES:
        name = PIPELINE_FILE
    else:
        from nlpcurriculum import registry

        ids = sorted({it.section_id for it in registry.items_of_stage(stage)})
        if len(ids) != 1:
            reason = f"items of {len(ids)} sections name it ({', '.join(ids)})" if ids else (
                "no item of curriculum.yaml names it")
            raise ParamsError(f"stage {stage!r} has no params file: {reason}, and it is not a "
                              f"spine stage ({', '.join(SPINE_STAGES)})")
        name = ids[0].replace("-", "_") + ".yaml"
    return Path(root) / PARAMS_DIR / name


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


def read_presets(path: str | Path) -> dict[str, dict[str, Any]]:
    """The presets file: ``{name: mapping}``."""
    return _check_presets(read_yaml(path), path)


def _check_presets(data: dict[str, Any], where: str | Path) -> dict[str, dict[str, Any]]:
    """Every preset is a mapping that does not itself name a preset."""
    for name, block in data.items():
        if not isinstance(block, dict):
            raise ParamsError(f"{where}: preset {name!r} must be a mapping, got {block!r}")
        if PRESET_KEY in block:
            raise ParamsError(f"{where}: preset {name!r} names another preset; write it out")
    return data


def resolve_presets(data: Any, presets: dict[str, dict] | None, where: str,
                    source: str | Path = PRESETS_FILE) -> Any:
    """``data`` with every ``{preset: NAME, **overrides}`` mapping expanded, at any depth.

    ``{preset: "byte_gpt", "n_layers": 4}`` -> ``{**presets["byte_gpt"], "n_layers": 4}``.

    Args:
        data: a section as read from its params file.
        presets: the presets by name (``None`` when there is no presets file).
        where: the file and dotted key of ``data``, for error messages.
        source: the presets file, for error messages.
    """
    if not isinstance(data, dict):
        return data
    out = {k: resolve_presets(v, presets, f"{where}.{k}", source) for k, v in data.items()}
    if PRESET_KEY not in out:
        return out
    name = out.pop(PRESET_KEY)
    if presets is None:
        raise ParamsError(f"{where}.{PRESET_KEY}: names preset {name!r}, but {source} is missing")
    if not isinstance(name, str) or name not in presets:
        raise ParamsError(f"{where}.{PRESET_KEY}: unknown preset {name!r} "
                          f"(presets in {source}: {', '.join(sorted(presets))})")
    return {**presets[name], **out}


def presets_used(data: Any) -> list[str]:
    """The preset names a section refers to, sorted (what its DVC stage tracks in presets.yaml)."""
    found: set[str] = set()
    if isinstance(data, dict):
        if isinstance(data.get(PRESET_KEY), str):
            found.add(data[PRESET_KEY])
        for value in data.values():
            found.update(presets_used(value))
    return sorted(found)


def load_section(name: str, cls: type[T], path: str | Path | None = None) -> T:
    """Load section ``name`` of ``path`` into dataclass ``cls``, checking keys and types.

    Args:
        name: the section (a stage name).
        cls: its config dataclass.
        path: the params file; default :func:`params_file` of ``name`` (under the working
            directory). Presets come from ``presets.yaml`` in the same folder.

    Raises:
        ParamsError: naming the file and the dotted key that is unknown, missing or mistyped.
    """
    path = Path(path) if path is not None else params_file(name)
    data = read_yaml(path)
    if name not in data:
        raise ParamsError(f"{path}: section {name!r} is missing")
    presets_path = path.parent / PRESETS_FILE
    section = data[name]
    if presets_used(section):
        presets = read_presets(presets_path) if presets_path.exists() else None
        section = resolve_presets(section, presets, f"{path}: {name}", presets_path)
    return from_dict(cls, section, where=f"{path}: {name}")


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


def merge_profile(base: dict[str, Any], overrides: dict[str, Any], where: str = "", *,
                  presets: dict[str, dict] | None = None, target: str = "the params file") -> dict:
    """Deep-merge ``overrides`` into ``base``; every overridden key must already exist.

    A key exists when ``base`` has it, or when ``base`` names a preset (``preset: NAME`` with
    ``NAME`` in ``presets``) that sets it: the override is then written beside ``preset``.

    Args:
        base: the params as written (a whole file, or a mapping inside it).
        overrides: the profile's mapping with the same nesting.
        where: dotted prefix of ``base`` inside the file (for messages).
        presets: the presets by name.
        target: the file ``base`` comes from (for messages).
    """
    known = dict(base)
    name = base.get(PRESET_KEY)
    if presets is not None and isinstance(name, str) and name in presets:
        known = {**presets[name], **base}
    merged = dict(base)
    for key, value in overrides.items():
        dotted = f"{where}{key}"
        if key not in known:
            raise ParamsError(f"profile key {dotted!r} does not exist in {target}")
        if isinstance(value, dict) and isinstance(known[key], dict):
            merged[key] = merge_profile(known[key], value, where=f"{dotted}.", presets=presets,
                                        target=target)
        else:
            merged[key] = value
    return merged


def _overlays(profile: str, root: Path) -> list[tuple[Path, Path]]:
    """``(profiles/<profile>/<file>.yaml, params/<file>.yaml)`` pairs, presets.yaml first."""
    folder = root / PROFILES_DIR / profile
    if not folder.is_dir():
        known = sorted(p.name for p in (root / PROFILES_DIR).glob("*") if p.is_dir())
        raise ParamsError(f"{folder}: no such profile (known: default, {', '.join(known)})")
    pairs = []
    for overlay in sorted(folder.glob("*.yaml"), key=lambda p: (p.name != PRESETS_FILE, p.name)):
        target = root / PARAMS_DIR / overlay.name
        if not target.exists():
            raise ParamsError(f"{overlay}: overlays {target.relative_to(root)}, which does not exist")
        pairs.append((overlay, target))
    return pairs


def profile_params(profile: str, root: str | Path = ".",
                   defaults: dict[Path, str] | None = None) -> dict[Path, dict[str, Any]]:
    """The params files a profile changes, with the profile applied: ``{params file: data}``.

    Nothing is written. ``default`` is the params as committed: no file changes.

    Args:
        profile: a folder of ``profiles/``, or ``default``.
        root: the project root.
        defaults: ``{params file: text}`` to overlay instead of what is on disk (the defaults
            of files another profile has changed).

    Raises:
        ParamsError: for an unknown profile, an overlay without a params file, or an
            overridden key that does not exist in the file it overlays.
    """
    root = Path(root)
    if profile == "default":
        return {}
    defaults = defaults or {}

    def read(path: Path) -> dict[str, Any]:
        return yaml.safe_load(defaults[path]) or {} if path in defaults else read_yaml(path)

    presets_path = root / PARAMS_DIR / PRESETS_FILE
    presets = _check_presets(read(presets_path), presets_path) if presets_path.exists() else None
    merged = {}
    for overlay, target in _overlays(profile, root):
        data = merge_profile(read(target), read_yaml(overlay), presets=presets,
                             target=str(target.relative_to(root)))
        if target == presets_path:  # later files see the profile's presets
            presets = _check_presets(data, target)
        merged[target] = data
    return merged


@dataclasses.dataclass
class ProfileChange:
    """What :func:`apply_profile` did: the params files it overlaid and those it restored."""

    profile: str
    applied: list[Path]
    restored: list[Path]
    #: where the defaults it restored came from, per file: the saved copy or ``git HEAD``
    restored_from: dict[Path, str] = dataclasses.field(default_factory=dict)


def apply_profile(profile: str, root: str | Path = ".", *, force: bool = False) -> ProfileChange:
    """Overlay ``profiles/<profile>/*.yaml`` onto ``params/`` under ``root``, keeping comments.

    Each params file the profile changes is rewritten by a comment-preserving YAML round trip
    (ruamel.yaml): only the overridden values change, every comment and the layout stay, and a
    first line names the profile. Before a file is first changed its text is saved in
    ``params/.defaults/`` (git-ignored), with a record of the profile and of what was written
    (:data:`PROFILE_STATE`). Profiles do not stack: a profile applies to the saved defaults, and
    the files a previous profile changed that this one does not are restored.

    ``default`` restores every saved file byte for byte and removes ``params/.defaults/``. A file
    that carries a profile's first line without a saved copy (its copy was lost, or an older
    version of this command wrote it) is restored from ``git HEAD``.

    Every overlay is checked before any file is written.

    Args:
        profile: a folder of ``profiles/``, or ``default``.
        root: the project root.
        force: overwrite params files edited since the last profile was applied (their edits
            are lost); without it such a file stops the command before anything is written.

    Raises:
        ParamsError: an unknown profile, an overridden key that does not exist, a file edited
            since a profile was applied (without ``force``), or a default that cannot be found.
    """
    from nlpcurriculum.io import write_json, write_text

    root = Path(root)
    saved_dir = root / PARAMS_DIR / DEFAULTS_DIR
    state = _read_state(root)
    edited = [] if force else _edited_since_applied(root, state)
    if edited:
        names = ", ".join(str(p.relative_to(root)) for p in edited)
        raise ParamsError(f"{names}: edited since profile {state['profile']!r} was applied; "
                          "nothing was written. Rerun with --force to overwrite the edit, or copy "
                          "it elsewhere first")
    defaults = _default_texts(root, state)  # {params file: its text without a profile}
    merged = profile_params(profile, root, defaults)  # checks every overlay against them
    texts: dict[Path, str] = {}
    for overlay, target in [] if profile == "default" else _overlays(profile, root):
        rel = target.relative_to(root).as_posix()
        header = (f"# profile {profile!r} applied to {rel} ({PROFILES_DIR}/{profile}/"
                  f"{target.name}); `python -m nlpcurriculum profile default` restores it\n")
        texts[target] = header + overlay_text(defaults.get(target, _read_text(target)),
                                              merged[target], where=rel)
    restored = {t: text for t, text in defaults.items() if t not in texts}

    for target in texts:  # save each default before its file changes
        saved, default = saved_dir / target.name, defaults.get(target, _read_text(target))
        if not saved.exists() or _read_text(saved) != default:
            write_text(saved, default)
    files = {t.name: hashlib.sha256(text.encode()).hexdigest() for t, text in texts.items()}
    if texts:
        write_json(saved_dir / PROFILE_STATE, {"profile": profile, "files": files})
    for target, text in {**restored, **texts}.items():
        if _read_text(target) != text:
            write_text(target, text)
    for target in restored:
        (saved_dir / target.name).unlink(missing_ok=True)
    if not texts and saved_dir.exists():
        (saved_dir / PROFILE_STATE).unlink(missing_ok=True)
        for leftover in saved_dir.glob("*.yaml"):  # a saved copy no file needs any more
            leftover.unlink()
        saved_dir.rmdir()
    sources = {t: ("the saved copy" if state and t.name in state["files"] else "git HEAD")
               for t in restored}
    return ProfileChange(profile, sorted(texts), sorted(restored), sources)


#: ``params/.defaults/``: the params files as they were before a profile changed them
DEFAULTS_DIR = ".defaults"
#: ``params/.defaults/applied.json``: ``{"profile": name, "files": {file name: sha256 of the text
#: written}}``, what tells an applied file from one edited afterwards
PROFILE_STATE = "applied.json"
# the first line apply_profile writes (and the one older versions wrote: "# params/x.yaml with
# profile 'smoke' applied (...)")
_PROFILE_LINE = re.compile(r"^# .*\bprofile '[^']+' applied\b")


def _read_text(path: Path) -> str:
    """The file's text with its line ends as they are (a restored file is byte-identical)."""
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def _read_state(root: Path) -> dict | None:
    path = root / PARAMS_DIR / DEFAULTS_DIR / PROFILE_STATE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        return {"profile": str(state["profile"]), "files": dict(state["files"])}
    except (ValueError, KeyError, TypeError) as exc:
        raise ParamsError(f"{path}: unreadable ({exc}); restore params/ with `git checkout "
                          f"params/` and delete {path.parent}") from exc


def _edited_since_applied(root: Path, state: dict | None) -> list[Path]:
    """The files a profile wrote that changed since: neither what it wrote nor the default."""
    if state is None:
        return []
    edited = []
    for name, digest in state["files"].items():
        target, saved = root / PARAMS_DIR / name, root / PARAMS_DIR / DEFAULTS_DIR / name
        if not target.exists():
            continue
        now = hashlib.sha256(target.read_bytes()).hexdigest()
        if now != digest and not (saved.exists() and saved.read_bytes() == target.read_bytes()):
            edited.append(target)
    return edited


def _default_texts(root: Path, state: dict | None) -> dict[Path, str]:
    """``{params file: its text without a profile}`` for every file a profile has changed.

    From the saved copies named by ``state``; a file that starts with a profile's line but has
    no saved copy comes from ``git HEAD``.
    """
    params = root / PARAMS_DIR
    texts = {}
    for name in (state or {}).get("files", {}):
        saved = params / DEFAULTS_DIR / name
        if not saved.exists():
            raise ParamsError(f"{saved}: the saved default of params/{name} is missing; restore "
                              f"it with `git checkout params/{name}`")
        texts[params / name] = _read_text(saved)
    for path in sorted(params.glob("*.yaml")):
        if path not in texts and _PROFILE_LINE.match(_read_text(path)):
            texts[path] = _committed_text(root, path)
    return texts


def _committed_text(root: Path, path: Path) -> str:
    """``path``'s text at ``git HEAD``, which must not itself carry a profile."""
    import subprocess

    rel = path.relative_to(root).as_posix()
    try:
        proc = subprocess.run(["git", "show", f"HEAD:./{rel}"], cwd=root, capture_output=True)
    except OSError:
        proc = None
    if proc is None or proc.returncode != 0:
        raise ParamsError(f"{rel}: a profile was applied to it and its default is neither saved "
                          "in params/.defaults/ nor committed in git")
    text = proc.stdout.decode("utf-8")
    if _PROFILE_LINE.match(text):
        raise ParamsError(f"{rel}: the committed version has a profile applied too; restore the "
                          "defaults by hand")
    return text


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same kind (``1``, ``1.0`` and ``True`` are equal in Python)."""
    def kind(v: Any) -> type | None:
        return bool if isinstance(v, bool) else float if isinstance(v, float) else None

    return a == b and kind(a) is kind(b)


def _yaml_round_trip():
    """A ruamel.yaml round-trip reader/writer set up like the params files: 2-space mappings,
    lists indented by 2 under their key, quotes kept, long lines kept, ``null`` written out."""
    from ruamel.yaml import YAML

    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return rt


def overlay_text(text: str, merged: dict[str, Any], where: str = "params") -> str:
    """``text`` (a params file) with its values set to ``merged``, comments and layout kept.

    ``merged`` is the file's data with a profile applied (:func:`profile_params`): values that
    differ are replaced in place (a flow-style list stays flow-style), keys a preset set are
    added at the end of their mapping; every comment stays where it was.

    Raises:
        ParamsError: when the written text does not read back as ``merged`` (a bug).
    """
    import io

    rt = _yaml_round_trip()
    doc = rt.load(text)
    _sync(doc, merged)
    out = io.StringIO()
    rt.dump(doc, out)
    result = out.getvalue()
    if yaml.safe_load(result) != merged:
        raise ParamsError(f"{where}: the profile's round trip did not write the merged params")
    return result


def _sync(node: dict, target: dict[str, Any]) -> None:
    """Set ruamel mapping ``node`` to ``target`` in place, touching only what differs."""
    from ruamel.yaml.comments import CommentedSeq

    for key, value in target.items():
        old = node.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            _sync(old, value)
        elif key not in node or not _same(old, value):
            if isinstance(value, list) and isinstance(old, CommentedSeq):
                seq = CommentedSeq(value)
                if old.fa.flow_style():
                    seq.fa.set_flow_style()
                value = seq
            node[key] = value


def profile_set_args(profile: str, root: str | Path = ".") -> list[str]:
    """The same overlay as ``dvc exp run -S file:key=value`` arguments.

    A key the file does not spell out (one its mapping's preset sets) is added, which DVC
    writes ``file:+key=value``. Lists and mappings are written without spaces, so the shell's
    word splitting of ``$(python -m nlpcurriculum profile NAME --set-args)`` keeps each whole.
    """
    root = Path(root)
    profile_params(profile, root)  # validate keys
    args = []
    for overlay, target in _overlays(profile, root):
        base = read_yaml(target)
        rel = target.relative_to(root).as_posix()
        for key, value in flatten(read_yaml(overlay)).items():
            plus = "" if _has_key(base, key.split(".")) else "+"
            args += ["-S", f"{rel}:{plus}{key}={_override_value(value)}"]
    return args


def _override_value(value: Any) -> str:
    """``value`` in the override grammar DVC's ``-S`` parses (Hydra's): JSON, but mapping keys
    unquoted (``{name:a,d_model:8}``)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    return json.dumps(value)


def _has_key(data: Any, path: list[str]) -> bool:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True
