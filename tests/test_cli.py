"""The fedcore command as a user runs it: real subprocesses, exit codes, output shapes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]


def fedcore(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedcore.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_simulate_json_prints_one_object_with_a_correct_sum() -> None:
    out = fedcore("simulate", "protocols/plain_sum.py", "--parties", "5", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {"parties", "seconds"} and len(result["parties"]) == 5
    inputs = np.array([p["input"] for p in result["parties"].values()])
    assert np.allclose(result["parties"]["p0"]["sum"], inputs.sum(axis=0))


def test_simulate_with_names_params_and_kill() -> None:
    out = fedcore(
        "simulate", "protocols/plain_sum.py", "--party-names", "ann,bob,cy", "--param", "dim=3",
        "--kill", "cy:after=0", "--json",
    )
    result = json.loads(out.stdout)["parties"]
    assert len(result["bob"]["input"]) == 3
    assert "killed" in result["cy"]["error"] and "cy" in result["ann"]["error"]


def test_simulate_without_json_prints_a_summary() -> None:
    out = fedcore("simulate", "protocols/plain_sum.py", "--parties", "2")
    assert out.returncode == 0 and "2 parties, 0 failed" in out.stdout


@pytest.mark.parametrize(
    "script, extra, message",
    [
        ("def main(ctx:\n", [], "syntax error"),
        ("x = 1\n", [], "has no main"),
        ("def main(ctx, dim=1):\n    return {}\n", ["--param", "dims=3"], "unknown parameter 'dims'"),
        ("def main(ctx):\n    return {}\n", ["--party-names", "ok,not ok"], "bad party name"),
        ("def main(ctx):\n    return {}\n", ["--kill", "p0:later=2"], "--kill"),
    ],
)
def test_bad_input_gets_one_line_exit_2_no_traceback(
    tmp_path: Path, script: str, extra: list[str], message: str
) -> None:
    path = tmp_path / "s.py"
    path.write_text(script)
    out = fedcore("simulate", str(path), *extra)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in out.stderr


def test_params_parse_as_json_else_string() -> None:
    from fedcore.commands._common import parse_params

    assert parse_params(["a=3", "b=[1,2]", "c=hello", "d=true", "e=1e-3"]) == {
        "a": 3, "b": [1, 2], "c": "hello", "d": True, "e": 0.001,
    }


def test_bench_codec_reports_both_sides() -> None:
    out = fedcore("bench", "codec", "--size-mb", "8", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    names = {row["path"] for row in result["rows"]}
    assert {"fedcore encode", "fedcore decode", "ndarray.tobytes", "np.frombuffer+copy"} <= names
    assert all(row["MB/s"] > 0 for row in result["rows"])
