"""`fedcore simulate` as a user runs it: binary results (--out, --json summaries) and a clean exit."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
PLAIN_SUM = str(ROOT / "protocols" / "plain_sum.py")
SLOW_TASK = """
import time

def main(ctx, parties_done: int = 0) -> dict:
    if ctx.party == "p0":  # a long local task: the run is interrupted while it runs
        return {"slept": ctx.runtime.submit(time.sleep, 60).result()}
    return {}
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _fedcore(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedcore", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(),
        timeout=120,
    )


def test_out_writes_every_array_as_npy_named_in_the_json(tmp_path: Path) -> None:
    out = tmp_path / "res"
    run = _fedcore("simulate", PLAIN_SUM, "--parties", "4", "--param", "dim=50", "--out", str(out), "--json",
                   cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    printed = json.loads(run.stdout)
    assert json.loads((out / "results.json").read_text()) == printed
    entry = printed["parties"]["p0"]["sum"]
    assert entry["shape"] == [50] and entry["dtype"] == "float64"
    total = np.load(entry["file"], allow_pickle=False)
    inputs = [np.load(printed["parties"][p]["input"]["file"]) for p in ("p0", "p1", "p2", "p3")]
    assert np.allclose(total, np.sum(inputs, axis=0))
    assert Path(entry["file"]).parent == out / "p0"


def test_json_summarises_big_arrays_and_says_how_to_get_them(tmp_path: Path) -> None:
    run = _fedcore("simulate", PLAIN_SUM, "--parties", "3", "--param", "dim=40", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    printed = json.loads(run.stdout)
    summary = printed["parties"]["p1"]["input"]
    assert summary["shape"] == [40] and summary["dtype"] == "float64" and len(summary["first"]) == 5
    assert "--out" in summary["whole"] and "--out" in printed["arrays"]
    out = str(tmp_path / "o")
    whole = _fedcore(
        "simulate", PLAIN_SUM, "--parties", "3", "--param", "dim=40", "--out", out, "--json", cwd=tmp_path
    )
    array = np.load(json.loads(whole.stdout)["parties"]["p1"]["input"]["file"])
    assert hashlib.sha256(array.tobytes()).hexdigest() == summary["sha256"]
    assert array[:5].tolist() == summary["first"]
    small = _fedcore("simulate", PLAIN_SUM, "--parties", "2", "--param", "dim=3", "--json", cwd=tmp_path)
    assert len(json.loads(small.stdout)["parties"]["p0"]["sum"]) == 3  # small arrays stay inline


def test_human_summary_puts_a_partys_key_results_before_its_arrays(tmp_path: Path) -> None:
    script = tmp_path / "scored.py"
    script.write_text("import numpy as np\ndef main(ctx) -> dict:\n"
                      "    return {'weights': np.zeros(100), 'accuracy': 0.93}\n")  # fmt: skip
    run = _fedcore("simulate", str(script), "--parties", "2", cwd=tmp_path)
    line = next(x for x in run.stdout.splitlines() if x.strip().startswith("p0:"))
    assert line.index("accuracy") < line.index("weights") and "<float64[100]>" in line


def _group(pgid: int) -> list[str]:
    """The processes still in process group ``pgid``, as "pid command"."""
    left = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            left.append(f"{entry.name} {stat[stat.index('(') : stat.rindex(')') + 1]}")
    return left


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fedcore", "simulate", *args], cwd=cwd, env=_env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--parties", "2500", "--runtime", "processes"], 0),  # two coop workers, a process pool
        (["--parties", "2500", "--kill", "p2000:after=0", "--runtime", "processes"], 1),
        (["--parties", "4", "--engine", "threads", "--runtime", "processes"], 0),
    ],
)
def test_no_process_outlives_a_finished_run(tmp_path: Path, args: list[str], code: int) -> None:
    script = tmp_path / "square.py"
    script.write_text("def square(x):\n    return x * x\n\ndef main(ctx) -> dict:\n"
                      "    return {'s': ctx.runtime.submit(square, 3).result()}\n")  # fmt: skip
    proc = _start([str(script), *args, "--json"], tmp_path)
    proc.communicate(timeout=120)
    assert proc.returncode == code
    assert _group(proc.pid) == []


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_no_process_outlives_an_interrupted_run(tmp_path: Path, how: str) -> None:
    script = tmp_path / "slow.py"
    script.write_text(SLOW_TASK)
    proc = _start([str(script), "--parties", "2500", "--runtime", "processes"], tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_group(proc.pid)) < 4:  # the workers and the pool are up
        time.sleep(0.1)
    time.sleep(1.0)
    assert proc.poll() is None
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends to the whole group
    else:
        proc.terminate()  # what `timeout` sends: to the command only
    proc.communicate(timeout=60)
    assert proc.returncode in (130, 143, -signal.SIGTERM)
    assert _group(proc.pid) == []
