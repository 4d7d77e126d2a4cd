"""Progress bars for long loops (training steps, sweeps over runs) that do not flood a log.

:func:`progress` returns a ``tqdm`` bar (iterate over it, or call ``update``) on stderr, shaped by
where stderr goes:

- **a terminal** (``dvc repro`` or ``python stages/<stage>.py`` typed in a shell): a live bar with
  the step, rate and time left, redrawn at most twice a second and shown only once the loop has
  run for a second; a bar opened inside another one (a training run inside a sweep) is cleared
  when it ends, so a sweep leaves one line.
- **a file or a pipe** (Prefect's task log, CI, ``dvc repro 2> log``): no redraws; one plain line
  every ``NLPC_PROGRESS`` seconds (default 30) while the loop runs, and a last line when it ends,
  e.g. ``train: 400/1000 step (40%), 00:12 elapsed, 00:18 left, 33.3 step/s, loss=4.81``. A loop
  shorter than that interval prints nothing.

``NLPC_PROGRESS=0`` (or ``off``) turns every bar off; a number sets the log interval in seconds.
The bars only display: a run computes the same with or without them.

Left out: bars in multi-process code (``training/distributed/`` workers) and in library loops
that are short on every profile.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TextIO

from tqdm import tqdm

__all__ = ["LOG_INTERVAL_S", "progress"]

LOG_INTERVAL_S = 30.0  # seconds between two lines when stderr is not a terminal
_LOG_FORMAT = ("{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {elapsed} elapsed, {remaining} left, "
               "{rate_fmt}{postfix}")
_LOG_FORMAT_OPEN = "{desc}: {n_fmt} {unit}, {elapsed} elapsed, {rate_fmt}{postfix}"  # unknown total


class _Lines:
    """A file for tqdm that turns its in-place redraws into whole lines of ``stream``.

    tqdm redraws with ``"\\r" + status``, moves between nested bars with newlines and
    cursor-up escapes, and clears with blanks; each non-blank status becomes one line.
    """

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        for part in text.replace("\x1b[A", "\n").replace("\r", "\n").split("\n"):
            if part.strip():
                self.stream.write(part.rstrip() + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


class _LogBar(tqdm):
    """tqdm for a log: the closing line only when the count moved since the last line printed."""

    def close(self) -> None:
        if not self.disable and getattr(self, "last_print_n", None) == self.n:
            self.leave = False  # that line is already in the log
        super().close()


def _setting() -> float | None:
    """``NLPC_PROGRESS``: ``None`` when bars are off, else the log interval in seconds."""
    raw = os.environ.get("NLPC_PROGRESS", "").strip().lower()
    if raw in ("0", "off", "false", "no"):
        return None
    try:
        return float(raw) if raw else LOG_INTERVAL_S
    except ValueError:
        return LOG_INTERVAL_S


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str, unit: str = "it",
             leave: bool | None = None, enabled: bool = True, initial: int = 0,
             stream: TextIO | None = None) -> tqdm:
    """A progress bar for a long loop, live on a terminal and one line per interval in a log.

    Args:
        iterable: what the loop runs over (its length is the total when it has one).
        total: the number of steps, when there is no iterable or it has no length.
        desc: what is counted, shown first (``"train"``, ``"moe: runs"``).
        unit: the unit of one step (``"step"``, ``"run"``).
        leave: keep the finished bar; ``None``: only when no other bar is open (tqdm's rule).
        enabled: ``False`` gives a silent bar (it still counts), as does ``NLPC_PROGRESS=0``.
        initial: steps already done (a resumed run).
        stream: where to write (default ``sys.stderr``); its ``isatty`` picks the mode.
    """
    stream = stream if stream is not None else sys.stderr
    interval = _setting()
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    common = dict(total=total, desc=desc, unit=unit, leave=leave, initial=initial,
                  disable=not enabled or interval is None)
    if getattr(stream, "isatty", lambda: False)():
        return tqdm(iterable, file=stream, mininterval=0.5, delay=1.0, dynamic_ncols=True, **common)
    interval = interval or LOG_INTERVAL_S
    return _LogBar(iterable, file=_Lines(stream), mininterval=interval, maxinterval=interval, delay=interval,
                ascii=True, bar_format=_LOG_FORMAT if total else _LOG_FORMAT_OPEN, **common)
