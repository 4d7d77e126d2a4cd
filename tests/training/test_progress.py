"""Progress bars: a line per interval in a log, live redraws on a terminal, silent when off, and
the trainer's results the same with or without its bar."""

from __future__ import annotations

import io
import re
import time

import pytest
import torch

from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.progress import progress
from nlpcurriculum.training.trainer import Trainer, TrainerConfig

LINE = re.compile(r"sweep: (\d+)/12 run \(\d+%\), \d\d:\d\d elapsed, \d\d:\d\d left, [\d.]+run/s, now=\d+")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _loop(stream: io.StringIO, step_s: float = 0.05, n: int = 12) -> None:
    with progress(total=n, desc="sweep", unit="run", stream=stream) as bar:
        for k in range(n):
            time.sleep(step_s)
            bar.set_postfix(now=k, refresh=False)
            bar.update(1)


def test_in_a_log_one_whole_line_per_interval_and_a_last_one(monkeypatch):
    monkeypatch.setenv("NLPC_PROGRESS", "0.2")  # seconds between lines
    log = io.StringIO()
    _loop(log)  # 12 x 0.05 s = 0.6 s
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()
    assert 2 <= len(lines) <= 4, lines  # not one per step: about 0.6 / 0.2, then the last one
    assert len(set(line.split(",")[0] for line in lines)) == len(lines)  # no count twice
    assert all(LINE.fullmatch(line) for line in lines), lines
    assert lines[-1].startswith("sweep: 12/12 run (100%)")


def test_a_loop_shorter_than_the_interval_prints_nothing(monkeypatch):
    monkeypatch.delenv("NLPC_PROGRESS", raising=False)  # 30 s
    log = io.StringIO()
    _loop(log, step_s=0.0)
    assert log.getvalue() == ""


def test_off_prints_nothing_and_still_counts(monkeypatch):
    monkeypatch.setenv("NLPC_PROGRESS", "0")
    log = io.StringIO()
    bar = progress(range(5), desc="x", stream=log)
    assert list(bar) == [0, 1, 2, 3, 4] and log.getvalue() == ""


def test_on_a_terminal_the_bar_redraws_in_place(monkeypatch):
    monkeypatch.delenv("NLPC_PROGRESS", raising=False)
    tty = Terminal()
    _loop(tty, step_s=0.1)  # 1.2 s: past the one-second delay
    out = tty.getvalue()
    assert "\r" in out and "sweep:" in out and "12/12" in out
    assert out.count("\n") <= 1  # redraws, not lines


def _train(progress_on: bool) -> list[float]:
    from nlpcurriculum.models import MiniFormerConfig, build_model

    torch.manual_seed(0)
    model = build_model(MiniFormerConfig(vocab_size=32, d_model=16, n_layers=1, n_heads=2, max_seq_len=8))
    data = TokenBatcher(torch.arange(400) % 32, 8, seed=0)
    cfg = TrainerConfig(max_steps=12, warmup_steps=2, batch_size=4, eval_every=0, progress=progress_on,
                        seed=3)
    return [h["loss"] for h in Trainer(model, cfg, data).train().history]


def test_trainer_bar_reports_steps_and_loss_without_changing_the_run(monkeypatch, capsys):
    monkeypatch.setenv("NLPC_PROGRESS", "0.000001")  # a line at (nearly) every redraw chance
    with_bar = _train(True)
    err = capsys.readouterr().err
    assert re.search(r"^train: 12/12 step \(100%\), .*loss=\d\.\d{4}, lr=", err, re.M), err
    without = _train(False)
    assert capsys.readouterr().err == ""
    assert with_bar == pytest.approx(without, abs=0)
