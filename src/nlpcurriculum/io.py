"""Atomic file output: write to a temporary file beside the target, then rename.

A stage that fails half-way must leave the previous outputs intact (docs/CONVENTIONS.md,
convention 14: bad input gets a clear error and loses nothing). ``os.replace`` is atomic on POSIX when both paths are on the same
file system, which a sibling temporary file guarantees.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(target: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``target``, on error it is removed.

    Args:
        target: the final file or directory.
        is_dir: yield a fresh directory instead of a file path.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        # mkstemp/mkdtemp create private (0600/0700) paths; give outputs the usual permissions.
        _chmod_default(tmp)
        if is_dir:
            backup = None
            if target.exists():
                backup = target.with_name(f".{target.name}.old")
                shutil.rmtree(backup, ignore_errors=True)
                os.replace(target, backup)
            os.replace(tmp, target)
            if backup is not None:
                shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _chmod_default(path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    for p in paths:
        p.chmod((0o777 if p.is_dir() else 0o666) & ~umask)


def _json_safe(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null rather than produce an invalid file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(target: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(_json_safe(obj), indent=2, sort_keys=True) + "\n")


def write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8), atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
