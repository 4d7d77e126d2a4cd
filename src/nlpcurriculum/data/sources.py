"""Corpus sources: where the documents of the pipeline come from.

* ``stdlib`` (default, offline): English that ships with Python itself. The documentation topics
  behind ``help()`` (``pydoc_data.topics``, one document per topic) and the docstrings of the
  standard library's modules (one document per module: its module, class and function docstrings,
  read with ``ast`` so nothing is imported or executed). About 2 MB.
* ``files``: a local file or folder (``path``, read recursively, optionally narrowed by the glob
  ``pattern``) of ``.txt``/``.md`` (a document per file), ``.jsonl`` and ``.parquet`` (a document
  per record, text in ``text_field``). Hidden files and folders (``.git``, ``.DS_Store``) are
  skipped. ``path`` is a file or folder, never a glob, because ``dvc.yaml`` makes it a dependency
  of the ``ingest`` stage (``${ingest.path}``): adding, changing or removing a file under it
  reruns ``ingest`` and what depends on it. The default ``data/raw`` is an empty folder kept in
  git for that reason.
* ``hub``: a Hugging Face ``datasets`` name, for users who are online. Offline is the default, so
  this fails at once with a message instead of hanging on the network.

Every loader returns a table with the ``documents`` contract: ``doc_id``, ``text``, ``source``,
``provenance`` (where exactly the text came from) and ``n_chars``.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import pandas as pd

# Parts of the standard library that are tests, demos or tooling rather than documented API.
_SKIPPED_STDLIB_DIRS = {
    "test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__", "lib2to3",
    "turtledemo", "ensurepip", "tkinter",
}  # fmt: skip


class SourceError(ValueError):
    """A corpus source is misconfigured, missing or unreadable."""


@dataclass
class SourceConfig:
    """The ``ingest`` section of params/pipeline.yaml.

    Attributes:
        source: ``stdlib``, ``files`` or ``hub``.
        path: for ``files``: a file or a folder (read recursively), relative to the project or
            absolute. Never a glob (DVC tracks it); always a path that exists, whatever the
            source, since it is the ``ingest`` stage's dependency (default: ``data/raw``).
        pattern: for ``files`` with a folder: a glob relative to it (``*.jsonl``,
            ``**/*.txt``); empty: every readable file under it.
        text_field: for ``.jsonl``/``.parquet``/``hub``: the column holding the text.
        hub_name: for ``hub``: a ``datasets`` name, e.g. ``roneneldan/TinyStories``.
        hub_split: for ``hub``: the split to read.
        allow_online: for ``hub``: must be true, a deliberate opt-in to network access.
        max_documents: keep at most this many documents (0: all), for quick runs.
        min_chars: drop documents shorter than this many characters (after stripping).
        on_decode_error: ``error`` stops at a file that is not UTF-8; ``replace`` substitutes
            U+FFFD and goes on.
    """

    source: Literal["stdlib", "files", "hub"] = "stdlib"
    path: str = "data/raw"
    pattern: str = ""
    text_field: str = "text"
    hub_name: str = ""
    hub_split: str = "train"
    allow_online: bool = False
    max_documents: int = 0
    min_chars: int = 1
    on_decode_error: Literal["error", "replace"] = "error"

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("path is empty: ingest needs a path, a file or folder, whatever the "
                             "source (DVC tracks it as the ingest stage's dependency; default data/raw)")
        if self.path.startswith("~"):
            raise ValueError(f"path {self.path!r}: DVC does not expand '~'; write the absolute path")
        if any(c in self.path for c in "*?["):
            first = min(self.path.index(c) for c in "*?[" if c in self.path)
            folder = os.path.dirname(self.path[:first]) or "."
            raise ValueError(
                f"path {self.path!r} is a glob, but DVC tracks ingest.path as a file or folder: "
                f"set path: {folder!r} and pattern: {os.path.relpath(self.path, folder)!r}")
        if os.path.isabs(self.pattern) or ".." in Path(self.pattern).parts:
            raise ValueError(f"pattern {self.pattern!r} must be a glob inside path (e.g. '*.jsonl')")
        if self.source == "hub" and not self.hub_name:
            raise ValueError("hub_name: source 'hub' needs a datasets name")
        if self.max_documents < 0 or self.min_chars < 1:
            raise ValueError("max_documents must be >= 0 and min_chars >= 1")


def load_documents(cfg: SourceConfig, root: str | Path = ".") -> tuple[pd.DataFrame, dict]:
    """Load the configured source as a documents table, plus counts of what was dropped.

    The counts (the ``ingest`` stage's metrics) include, for ``files``: ``files.read``,
    ``files.skipped.<suffix>`` (files of a kind the loader does not read, by suffix) and
    ``files.decode_replaced`` (files not valid UTF-8 whose bad bytes became U+FFFD, under
    ``on_decode_error: replace``).
    """
    file_stats: dict[str, int] = {}
    if cfg.source == "stdlib":
        records = list(_stdlib_records())
    elif cfg.source == "files":
        records = list(_file_records(cfg, Path(root), file_stats))
    else:
        records = list(_hub_records(cfg))
    kept, dropped_short = [], 0
    for source, provenance, text in records:
        text = text.strip()
        if len(text) < cfg.min_chars:
            dropped_short += 1
            continue
        kept.append((source, provenance, text))
    if cfg.max_documents:
        kept = kept[: cfg.max_documents]
    if not kept:
        raise SourceError(f"source {cfg.source!r} produced no documents: {dropped_short} of "
                          f"{len(records)} were shorter than ingest.min_chars ({cfg.min_chars})")
    df = pd.DataFrame(kept, columns=["source", "provenance", "text"])
    df.insert(0, "doc_id", [_doc_id(p, t) for _, p, t in kept])
    df["n_chars"] = df["text"].str.len().astype("int64")
    duplicate_ids = df["doc_id"].duplicated()
    stats = {"documents": int(len(df)), "dropped_short": dropped_short, **file_stats}
    if duplicate_ids.any():  # the same provenance and text twice (e.g. a file listed twice)
        stats["dropped_identical"] = int(duplicate_ids.sum())
        df = df[~duplicate_ids].reset_index(drop=True)
        stats["documents"] = int(len(df))
    return df, stats


def _doc_id(provenance: str, text: str) -> str:
    return hashlib.sha256(f"{provenance}\0{text}".encode()).hexdigest()[:16]


def _stdlib_records() -> Iterator[tuple[str, str, str]]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield "pydoc_topics", f"pydoc_data.topics:{name}", topics[name]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(_python_files(stdlib)):
        text = _module_docstrings(path)
        if text:
            yield "stdlib_docstrings", f"stdlib:{path.relative_to(stdlib)}", text


def _python_files(stdlib: Path) -> Iterator[Path]:
    for folder, subfolders, files in os.walk(stdlib):
        subfolders[:] = [
            d for d in subfolders
            if d not in _SKIPPED_STDLIB_DIRS and not d.startswith("config-")
        ]
        for name in files:
            if name.endswith(".py"):
                yield Path(folder) / name


def _module_docstrings(path: Path) -> str:
    """The module's, classes' and functions' docstrings, in source order."""
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError):
        return ""
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docs = [ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, kinds)]
    return "\n\n".join(d for d in docs if d)


READ_SUFFIXES = (".txt", ".md", ".jsonl", ".parquet")


def _file_records(cfg: SourceConfig, root: Path, stats: dict[str, int]) -> Iterator[tuple[str, str, str]]:
    """Records of every readable file under ``cfg.path``; ``stats`` counts read and skipped files."""
    base = root / cfg.path  # an absolute cfg.path replaces root
    if base.is_dir():
        found = [p for p in base.glob(cfg.pattern or "**/*") if p.is_file()]
        hidden = {p for p in found if any(part.startswith(".") for part in p.relative_to(base).parts)}
        if hidden:  # .gitkeep, .DS_Store, a .git folder: never documents
            stats["files.skipped.hidden"] = len(hidden)
            found = [p for p in found if p not in hidden]
    elif base.is_file():
        if cfg.pattern:
            raise SourceError(f"ingest.path {cfg.path!r} is a file; ingest.pattern "
                              f"{cfg.pattern!r} needs a folder (set pattern: '')")
        found = [base]
    else:
        raise SourceError(f"ingest.path {cfg.path!r}: no such file or folder")
    paths = sorted(p for p in found if p.suffix in READ_SUFFIXES)
    for skipped in found:
        if skipped.suffix not in READ_SUFFIXES:
            key = f"files.skipped.{skipped.suffix.lstrip('.') or 'no_suffix'}"
            stats[key] = stats.get(key, 0) + 1
    if not paths:
        where = f"ingest.path {cfg.path!r}" + (f" (pattern {cfg.pattern!r})" if cfg.pattern else "")
        raise SourceError(
            f"{where}: no .txt, .md, .jsonl or .parquet files found there"
            + (f" ({len(found)} other files skipped)" if found else "")
        )
    stats["files.read"] = len(paths)
    stats["files.decode_replaced"] = 0
    for path in paths:
        if path.suffix in {".txt", ".md"}:
            yield "files", str(path), _read_text(path, cfg.on_decode_error, stats)
        elif path.suffix == ".jsonl":
            yield from _jsonl_records(path, cfg, stats)
        else:
            yield from _parquet_records(path, cfg)


def _read_text(path: Path, on_error: str, stats: dict[str, int]) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if on_error == "replace":
            stats["files.decode_replaced"] += 1
            return data.decode("utf-8", errors="replace")
        raise SourceError(
            f"{path}: not valid UTF-8 at byte {exc.start} "
            "(set ingest.on_decode_error: replace to substitute U+FFFD)"
        ) from None


def _jsonl_records(path: Path, cfg: SourceConfig, stats: dict[str, int]) -> Iterator[tuple[str, str, str]]:
    for lineno, line in enumerate(_read_text(path, cfg.on_decode_error, stats).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{path}:{lineno}: not valid JSON: {exc.msg}") from None
        if not isinstance(record, dict) or cfg.text_field not in record:
            raise SourceError(f"{path}:{lineno}: no field {cfg.text_field!r} "
                              "(set ingest.text_field to the field that holds the text)")
        text = record[cfg.text_field]
        if not isinstance(text, str):
            raise SourceError(f"{path}:{lineno}: field {cfg.text_field!r} must be a string, "
                              f"got {type(text).__name__} {_preview(text)}")
        yield "files", f"{path}:{lineno}", text


def _parquet_records(path: Path, cfg: SourceConfig) -> Iterator[tuple[str, str, str]]:
    try:
        table = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise SourceError(f"{path}: cannot read parquet: {exc}") from None
    if cfg.text_field not in table.columns:
        raise SourceError(f"{path}: no column {cfg.text_field!r} (has {list(table.columns)})")
    texts = table[cfg.text_field].tolist()
    _check_strings(texts, f"{path}: column {cfg.text_field!r}")
    for i, text in enumerate(texts):
        yield "files", f"{path}#{i}", text


def _hub_records(cfg: SourceConfig) -> Iterator[tuple[str, str, str]]:
    if not cfg.allow_online:
        raise SourceError(
            f"ingest.source 'hub' ({cfg.hub_name!r}) needs the internet; this project runs "
            "offline by default. Set ingest.allow_online: true (and unset HF_DATASETS_OFFLINE) "
            "on a machine that is online, or download the data and use source: files."
        )
    os.environ.pop("HF_DATASETS_OFFLINE", None)
    os.environ.pop("HF_HUB_OFFLINE", None)
    import datasets

    ds = datasets.load_dataset(cfg.hub_name, split=cfg.hub_split)
    if cfg.text_field not in ds.column_names:
        raise SourceError(f"{cfg.hub_name}: no column {cfg.text_field!r} ({ds.column_names})")
    texts = ds[cfg.text_field]
    _check_strings(texts, f"{cfg.hub_name}: column {cfg.text_field!r}")
    for i, text in enumerate(texts):
        yield "hub", f"{cfg.hub_name}:{cfg.hub_split}#{i}", text


def _check_strings(values: list, where: str) -> None:
    """Fail on the first value that is not a string, naming its row (no silent ``str(42)``)."""
    for row, value in enumerate(values):
        if isinstance(value, str):
            continue
        what = ("missing (null)" if value is None or (isinstance(value, float) and value != value)
                else f"{type(value).__name__} {_preview(value)}")
        raise SourceError(f"{where} must hold strings; row {row} is {what}")


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
