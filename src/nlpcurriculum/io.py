"""Atomic file output: write to a temporary file beside the target, then rename.

A stage that fails half-way must leave the previous outputs intact (docs/CONVENTIONS.md,
convention 14: bad input gets a clear error and loses nothing). ``os.replace`` is atomic on POSIX
when both paths are on the same file system, which a sibling temporary file guarantees.

What each fault leaves behind:

* an exception inside the ``with`` block (bad input, a failed write): the temporary path is
  removed and the target is untouched;
* a full disk (``ENOSPC``/``EDQUOT``, or a writer that fails while the file system has no space
  left: ``np.save`` and ``torch.save`` report a short write without an errno): the same, and the
  error becomes :class:`DiskFullError`, one line naming the target;
* the process killed (``SIGKILL``) at any point: the target is the old one or the new one, never a
  mix. Data is flushed to disk (``fsync``) before the rename, and a folder is swapped in with one
  ``renameat2(RENAME_EXCHANGE)`` on Linux. The killed process's temporary path stays behind under
  a name that carries its pid (``.<name>.<pid>.<random>.tmp``, ignored by DVC through
  ``.dvcignore``); the next write of the same target removes it once that pid is gone.
"""

from __future__ import annotations

import ctypes
import errno
import json
import math
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# Below this many free bytes on the target's file system, a failed write counts as a full disk
# even when the writer lost the errno (numpy: "N requested and M written"; torch: "unexpected pos").
_FULL_BELOW_BYTES = 1 << 20


class DiskFullError(OSError):
    """The file system ran out of space while an output was written; the previous one is kept."""

    def __init__(self, target: str | os.PathLike):
        self.target = Path(target)
        message = (f"no space left on device while writing {_shown(self.target)}; the previous "
                   f"{self.target.name} is kept. Free some space and rerun")
        super().__init__(errno.ENOSPC, message, str(self.target))

    def __str__(self) -> str:
        return self.strerror


@contextmanager
def atomic_path(target: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``target``, on error it is removed.

    Args:
        target: the final file or directory.
        is_dir: yield a fresh directory instead of a file path.

    Raises:
        DiskFullError: the file system filled up while the block wrote (the cause is chained).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(target)
    prefix = f".{target.name}.{os.getpid()}."
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        # mkstemp/mkdtemp create private (0600/0700) paths; give outputs the usual permissions.
        _chmod_default(tmp)
        _fsync_tree(tmp)  # the data is on disk before the name points at it
        if is_dir:
            _replace_dir(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException as exc:
        full = isinstance(exc, Exception) and _is_disk_full(exc, target.parent)
        _remove(tmp)
        if full:
            raise DiskFullError(target) from exc
        raise


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (as a user typed it)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _is_disk_full(exc: BaseException, folder: Path) -> bool:
    """Whether ``exc`` (or an exception it chains) means the file system is out of space."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _DISK_FULL:
            return True
        error = error.__cause__ or error.__context__
    if not isinstance(exc, (OSError, RuntimeError)):
        return False  # a bug or a bad input in the block, not the disk
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs (Windows) or the folder is gone
        return False
    return stats.f_bavail * stats.f_frsize < _FULL_BELOW_BYTES


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_tree(path: Path) -> None:
    """Flush a file, or every file in a folder, to disk."""
    for p in ([path] if not path.is_dir() else [p for p in path.rglob("*") if p.is_file()]):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _replace_dir(tmp: Path, target: Path) -> None:
    """Put the folder ``tmp`` at ``target`` in one step, replacing a folder already there."""
    if not target.exists():
        os.replace(tmp, target)
        return
    if _exchange(tmp, target):  # target is now the new folder, tmp the old one
        shutil.rmtree(tmp, ignore_errors=True)
        return
    # No atomic swap here (not Linux, or a file system without it): two renames. A kill between
    # them leaves the old folder under the backup name; the next write puts it back.
    backup = tmp.with_suffix(".old")
    os.replace(target, backup)
    os.replace(tmp, target)
    shutil.rmtree(backup, ignore_errors=True)


# What follows ".<target name>." in a temporary path: the writer's pid, mkstemp's random part.
_LEFTOVER = re.compile(r"(\d+)\.[A-Za-z0-9_]+\.(?:tmp|old)")
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); ``False`` where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a libc without renameat2 (glibc < 2.28, musl)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # the kernel or file system cannot exchange
    raise OSError(err, os.strerror(err), str(b))


def _clean_leftovers(target: Path) -> None:
    """Remove what a killed writer of ``target`` left: its temporary path, or put back its backup.

    Only paths whose writer (the pid in their name) is gone are touched, so a live writer of the
    same target keeps its temporary path.
    """
    head = f".{target.name}."
    try:
        names = [n for n in os.listdir(target.parent) if n.startswith(head)]
    except OSError:
        return
    for name in names:
        match = _LEFTOVER.fullmatch(name[len(head):])
        if match is None or pid_alive(int(match.group(1))):
            continue
        path = target.parent / name
        if name.endswith(".old") and not target.exists():
            os.replace(path, target)  # killed between the two renames: the old folder goes back
        else:
            _remove(path)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (this process, and another user's, count as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
