"""Atomic outputs: an error, a full disk or a SIGKILL mid-write leaves the previous output intact.

The kill tests run a real writer (metrics JSON, a PNG figure, a parquet table, a torch
checkpoint, a folder of texts) in a child process whose low-level write blocks half-way, kill it
with SIGKILL there, and compare the output byte for byte with what was there before.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nlpcurriculum import io
from nlpcurriculum.io import DiskFullError, atomic_path, write_json, write_text


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".old")))


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (or the file itself) with its bytes."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# -- errors and a full disk -------------------------------------------------------------------


def test_error_inside_the_block_keeps_the_old_file_and_folder(tmp_path):
    write_text(tmp_path / "a.txt", "old")
    with pytest.raises(ValueError, match="bad input"):
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("half")
            raise ValueError("bad input")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("old folder")
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "d", is_dir=True) as tmp:
            (tmp / "y.txt").write_text("new")
            raise ValueError("bad input")
    assert (tmp_path / "a.txt").read_text() == "old"
    assert tree(tmp_path / "d") == {"x.txt": b"old folder"}
    assert leftovers(tmp_path) == []


def test_folder_is_replaced_whole(tmp_path):
    target = tmp_path / "out"
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "a.txt").write_text("1")
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "b.txt").write_text("2")
    assert tree(target) == {"b.txt": b"2"}  # a.txt of the old folder does not survive
    assert leftovers(tmp_path) == []


def test_folder_swap_without_renameat2_gives_the_same_result(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "_exchange", lambda a, b: False)  # e.g. macOS, or no RENAME_EXCHANGE
    target = tmp_path / "out"
    for text in ("1", "2"):
        with atomic_path(target, is_dir=True) as tmp:
            (tmp / "a.txt").write_text(text)
    assert tree(target) == {"a.txt": b"2"}
    assert leftovers(tmp_path) == []


def _enospc_half_way(self, data, *args, **kwargs):
    """A ``Path.write_text`` on a disk that fills up after half the data."""
    with open(self, "w") as f:
        f.write(data[: len(data) // 2])
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_keeps_the_old_file_removes_the_temp_and_names_the_path(tmp_path, monkeypatch):
    target = tmp_path / "metrics" / "stage.json"
    write_json(target, {"old": 1})
    before = target.read_bytes()
    monkeypatch.setattr(Path, "write_text", _enospc_half_way)
    with pytest.raises(DiskFullError) as caught:
        write_json(target, {"new": list(range(1000))})
    assert target.read_bytes() == before
    assert leftovers(target.parent) == []
    assert caught.value.errno == errno.ENOSPC
    assert str(caught.value) == (f"no space left on device while writing {target}; the previous "
                                 "stage.json is kept. Free some space and rerun")


def test_full_disk_is_recognised_when_the_writer_loses_the_errno(tmp_path, monkeypatch):
    """torch.save reports a short write as ``RuntimeError: ... unexpected pos``, numpy as an
    ``OSError`` without errno: on a file system with no space left, both mean a full disk."""
    target = tmp_path / "model.pt"
    write_text(target, "old")

    class Full:  # what os.statvfs says on a full file system
        f_bavail, f_frsize = 0, 4096

    monkeypatch.setattr(io.os, "statvfs", lambda path: Full())
    with pytest.raises(DiskFullError, match="while writing .*model.pt"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"PK\x03\x04 half")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    with pytest.raises(ValueError):  # a bug in the block stays itself, even on a full disk
        with atomic_path(target) as tmp:
            raise ValueError("not the disk")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_a_real_error_on_a_disk_with_space_is_not_called_a_full_disk(tmp_path):
    with pytest.raises(RuntimeError, match="unexpected pos"):
        with atomic_path(tmp_path / "model.pt"):
            raise RuntimeError("unexpected pos 576 vs 534")


# -- SIGKILL mid-write ------------------------------------------------------------------------

# A child writes one output with a low-level write patched to write half, say so, and hang.
CHILD = textwrap.dedent('''
    import io as _io, sys, time
    from pathlib import Path

    def hang(*args, **kwargs):
        print("WRITING", flush=True)
        time.sleep(120)

    def half_then_hang(path, data):
        Path(path).write_bytes(data[: len(data) // 2])
        hang()

    kind, target = sys.argv[1], Path(sys.argv[2])
    if kind == "metrics":
        from nlpcurriculum.io import write_json
        Path.write_text = lambda self, text, **kw: half_then_hang(self, text.encode())
        write_json(target, {"new": list(range(10000))})
    elif kind == "figure":
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.figure import Figure
        from nlpcurriculum.stage import save_figure
        real = Figure.savefig
        def savefig(self, fname, **kw):
            buffer = _io.BytesIO()
            real(self, buffer, **kw)
            half_then_hang(fname, buffer.getvalue())
        Figure.savefig = savefig
        fig, ax = plt.subplots()
        ax.plot([3, 1, 2])
        save_figure(fig, target)
    elif kind == "table":
        import pandas as pd
        from nlpcurriculum.data.schemas import DOCUMENTS, write_table
        real = pd.DataFrame.to_parquet
        def to_parquet(self, path, **kw):
            buffer = _io.BytesIO()
            real(self, buffer, **kw)
            half_then_hang(path, buffer.getvalue())
        pd.DataFrame.to_parquet = to_parquet
        texts = ["new text %d" % i for i in range(50)]
        write_table(pd.DataFrame({"doc_id": [str(i) for i in range(50)], "text": texts,
                                  "source": "s", "provenance": "p",
                                  "n_chars": [len(t) for t in texts]}), target, DOCUMENTS)
    elif kind == "checkpoint":
        import torch
        from nlpcurriculum.training.checkpoint import save_checkpoint
        real = torch.save
        def save(obj, f, **kw):
            buffer = _io.BytesIO()
            real(obj, buffer, **kw)
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            f.flush()
            hang()
        torch.save = save
        save_checkpoint(target, model=torch.nn.Linear(4, 4), step=2)
    elif kind == "folder":
        from nlpcurriculum.results import ItemResult
        from nlpcurriculum.stage import save_item_texts
        real = Path.write_text
        def write_text(self, text, **kw):  # the first file is whole, the second hangs half-way
            if any(self.parent.iterdir()):
                half_then_hang(self, text.encode())
            return real(self, text, **kw)
        Path.write_text = write_text
        save_item_texts(target, [ItemResult(item="s/1", texts={"a.txt": "new a", "b.txt": "new b"})],
                        separate=True)
    elif kind == "folder-swap":  # killed after the new folder is in place, before the old is gone
        import shutil
        from nlpcurriculum import io
        from nlpcurriculum.io import atomic_path
        io.shutil.rmtree = lambda *a, **kw: hang()
        with atomic_path(target, is_dir=True) as tmp:
            (tmp / "a.txt").write_text("new a")
    elif kind == "folder-two-renames":  # no renameat2: killed between the two renames
        import os
        from nlpcurriculum import io
        from nlpcurriculum.io import atomic_path
        io._exchange = lambda a, b: False
        real, calls = os.replace, []
        def replace(src, dst):
            calls.append(dst)
            if len(calls) == 2:
                hang()
            real(src, dst)
        io.os.replace = replace
        with atomic_path(target, is_dir=True) as tmp:
            (tmp / "a.txt").write_text("new a")
''')


def _old_output(kind: str, target: Path) -> None:
    """What the previous (complete) run left at ``target``."""
    if kind.startswith("folder"):
        target.mkdir()
        (target / "a.txt").write_text("old a")
        (target / "tables.txt").write_text("old tables")
    elif kind == "checkpoint":
        target.write_bytes(b"old checkpoint bytes")
        target.with_name(target.name + ".json").write_text('{"step": 1}\n')
    else:
        target.write_bytes(f"old {kind} bytes".encode())


def _kill_while_writing(kind: str, target: Path) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", CHILD, kind, str(target)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    if line.strip() != "WRITING":
        child.kill()
        raise AssertionError(f"the writer did not reach its write: {line!r} {child.stderr.read()}")
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return child


@pytest.mark.parametrize("kind, name", [
    ("metrics", "stage.json"), ("figure", "item_curve.png"), ("table", "documents.parquet"),
    ("checkpoint", "model.pt"), ("folder", "tables"), ("folder-two-renames", "tables"),
])
def test_sigkill_mid_write_keeps_the_previous_output(tmp_path, kind, name):
    target = tmp_path / name
    _old_output(kind, target)
    before = {p.name: tree(p) for p in tmp_path.iterdir()}
    child = _kill_while_writing(kind, target)
    if kind == "folder-two-renames":  # the old folder waits under the backup name
        assert not target.exists()
        (backup,) = [p for p in tmp_path.iterdir() if p.name.endswith(".old")]
        assert tree(backup) == before[name]
    else:
        assert {p.name: tree(p) for p in tmp_path.iterdir() if p.name in before} == before
        # the killed writer's temporary path stays behind, named after it
        assert [n.startswith(f".{name}.{child.pid}.") for n in leftovers(tmp_path)] == [True]
    # The next write of the same output first cleans up after the dead writer (the old folder
    # goes back under its name), then replaces the output as usual.
    folder = kind.startswith("folder")
    with atomic_path(target, is_dir=folder) as tmp:
        assert leftovers(tmp_path) == [tmp.name]
        assert {p.name: tree(p) for p in tmp_path.iterdir() if p.name in before} == before
        (tmp / "a.txt").write_text("next") if folder else tmp.write_text("next")
    assert leftovers(tmp_path) == []
    assert tree(target) == ({"a.txt": b"next"} if folder else {name: b"next"})


def test_sigkill_after_the_folder_swap_leaves_the_new_folder_and_cleans_up_later(tmp_path):
    target = tmp_path / "tables"
    _old_output("folder", target)
    child = _kill_while_writing("folder-swap", target)
    assert tree(target) == {"a.txt": b"new a"}  # swapped in whole: the new folder, complete
    (old,) = leftovers(tmp_path)  # the old folder, under the dead writer's temporary name
    assert old.startswith(f".tables.{child.pid}.")
    write_text(tmp_path / "other.txt", "x")  # another target's write does not touch it
    assert leftovers(tmp_path) == [old]
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "a.txt").write_text("newer a")
    assert leftovers(tmp_path) == []
    assert tree(target) == {"a.txt": b"newer a"}


def test_a_live_writers_temporary_path_is_left_alone(tmp_path):
    """Only leftovers of processes that are gone are removed; pid 1 is always alive."""
    live = tmp_path / ".out.txt.1.abcd1234.tmp"
    live.write_text("someone else's write in progress")
    write_text(tmp_path / "out.txt", "mine")
    assert live.exists()
    assert (tmp_path / "out.txt").read_text() == "mine"


def test_outputs_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {"a": float("nan")})
        with atomic_path(tmp_path / "d", is_dir=True) as tmp:
            (tmp / "f").write_text("x")
    finally:
        os.umask(umask)
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": None}
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
