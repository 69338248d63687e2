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
    assert {"parties", "seconds", "job_id", "output_dir", "failed"} <= set(result)
    assert len(result["parties"]) == 5 and result["failed"] == []
    inputs = np.array([p["input"] for p in result["parties"].values()])
    assert np.allclose(result["parties"]["p0"]["sum"], inputs.sum(axis=0))


def test_simulate_with_names_params_and_kill_exits_1_and_lists_every_party() -> None:
    out = fedcore(
        "simulate",
        "protocols/plain_sum.py",
        "--party-names",
        "ann,bob,cy",
        "--param",
        "dim=3",
        "--kill",
        "cy:after=0",
        "--json",
    )
    assert out.returncode == 1, out.stderr
    document = json.loads(out.stdout)
    result = document["parties"]
    assert len(result["bob"]["input"]) == 3
    assert "killed" in result["cy"]["error"] and "cy" in result["ann"]["error"]
    assert result["cy"]["kind"] == "PartyKilled" and result["ann"]["party"] == "ann"
    assert document["failed"] == ["ann", "cy"]


def test_simulate_exits_1_when_every_party_failed(tmp_path: Path) -> None:
    path = tmp_path / "s.py"
    path.write_text("def main(ctx):\n    raise ValueError('no data')\n")
    out = fedcore("simulate", str(path), "--parties", "2")
    assert out.returncode == 1 and "2 parties, 2 failed" in out.stdout
    assert out.stdout.count("ValueError: no data") == 2


@pytest.mark.parametrize(
    "param, line",
    [
        ("rounds=abc", "--param rounds='abc': expected int"),
        ("rounds=2.5", "--param rounds='2.5': expected int"),
        ("secure=maybe", "--param secure='maybe': expected bool (true/false)"),
        ("partition=skewed", "--param partition='skewed': expected one of 'iid', 'dirichlet'"),
        ("min_parties=most", "--param min_parties='most': expected int | 'all'"),
    ],
)
def test_a_param_that_does_not_convert_is_exit_2_before_any_party_starts(
    tmp_path: Path, param: str, line: str
) -> None:
    out = fedcore(
        "simulate",
        str(ROOT / "protocols/fedavg_digits.py"),
        "--param",
        param,
        "--output-dir",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [f"fedcore: error: {line}"]
    assert list(tmp_path.iterdir()) == []


def test_simulate_files_go_to_the_output_dir(tmp_path: Path) -> None:
    script = tmp_path / "w.py"
    script.write_text(
        "def main(ctx, out: str = 'x.txt'):\n    ctx.output_path(out).write_text(ctx.party)\n    return {}\n"
    )
    out = fedcore(
        "simulate", str(script), "--parties", "2", "--param", "out=a/1.txt", "--job-id", "run1", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "fedcore-output/p1/run1/a/1.txt").read_text() == "p1"
    assert "files: 2 under" in out.stdout and "(job run1)" in out.stdout
    refused = fedcore(
        "simulate", str(script), "--parties", "2", "--param", "out=/tmp/x", "--json", cwd=tmp_path
    )
    parties = json.loads(refused.stdout)["parties"]
    assert refused.returncode == 1 and {p["kind"] for p in parties.values()} == {"PolicyRefused"}


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
        "a": 3,
        "b": [1, 2],
        "c": "hello",
        "d": True,
        "e": 0.001,
    }


def test_bench_codec_reports_both_sides() -> None:
    out = fedcore("bench", "codec", "--size-mb", "8", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    names = {row["path"] for row in result["rows"]}
    assert {"fedcore encode", "fedcore decode", "ndarray.tobytes", "np.frombuffer+copy"} <= names
    assert all(row["MB/s"] > 0 for row in result["rows"])


def test_bench_secagg_runs_on_both_engines_with_drops() -> None:
    for engine in ("coop", "threads"):
        out = fedcore(
            "bench", "secagg", "--parties", "12", "--dim", "2000", "--drop", "2", "--engine", engine, "--json"
        )
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["engine"] == engine and result["dropped_after_masked_input"] == 2
        assert result["included"] == 12  # dropped right after their masked input: still in the sum
        assert result["round_s"] > 0 and result["keystream_plus_key_agreement_bound_s"] > 0
        assert (result["round_cpu_s_all_parties"] is None) == (engine == "coop")
        assert result["workers"] >= 1 if engine == "coop" else result["workers"] == 1
