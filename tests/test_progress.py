"""The progress line: round r/R, accuracy, loss, parties, elapsed and ETA on a terminal; silence otherwise."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from fedcore.commands._common import ProgressBoard
from fedcore.context import ProgressEvent

ROOT = Path(__file__).parents[1]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_line_follows_the_coordinator_with_its_metrics() -> None:
    stream = Terminal()
    board = ProgressBoard(10, stream=stream, interval_s=3600)
    with board:
        board(ProgressEvent("p3", "round 4", 3, 20, None))
        board(ProgressEvent("p0", "round 4", 4, 20, "accuracy 0.9512, loss 0.2, parties 10"))
        board._update()
        drawn = stream.getvalue()
    assert "round 4/20" in drawn and "accuracy 0.9512, loss 0.2, parties 10" in drawn
    assert "<" in drawn.split("accuracy")[1]  # elapsed<remaining from tqdm
    assert board.line() == "round 4/20 | accuracy 0.9512, loss 0.2, parties 10"


def test_nothing_is_drawn_when_piped_or_disabled() -> None:
    piped = io.StringIO()
    with ProgressBoard(3, stream=piped) as board:
        board(ProgressEvent("p0", "round 1", 1, 2, "accuracy 0.5"))
    terminal = Terminal()
    with ProgressBoard(3, stream=terminal, enabled=False) as board:
        board(ProgressEvent("p0", "round 1", 1, 2, "accuracy 0.5"))
        board._update()
    assert piped.getvalue() == "" and terminal.getvalue() == ""


def test_simulate_json_prints_only_the_result() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "fedcore", "simulate", str(ROOT / "protocols" / "fedavg_digits.py"),
           "--parties", "3", "--param", "rounds=1", "--json"]  # fmt: skip
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stderr == ""
    out = json.loads(run.stdout)
    assert run.stdout.count("\n") == 1 and out["parties"]["p0"]["history"][0]["parties"] == 3
