"""Simulation scale: wall time and peak memory of plain_sum and secure_sum for many parties.

Each size runs in a fresh process (so peak memory is that run's alone) on the default engine,
with the thread engine as the baseline where it finishes (``--baseline-max`` parties; above
that it is the run that does not end). Peak memory is the largest sum of the resident sizes of
the run's process and all its descendants (the coop engine's workers), sampled every 0.1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

DESCRIPTION = "seconds and peak memory of plain_sum and secure_sum for 1k/10k(/100k) parties"

_CHILD = """
import json, sys, time
from fedcore import simulate
from fedcore.runtime import make_runtime
script, parties, dim, engine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
start = time.perf_counter()
with make_runtime("threads") as rt:
    result = simulate(script, parties=parties, params={"dim": dim}, runtime=rt, engine=engine,
                      output_dir=sys.argv[5])
print(json.dumps({"seconds": time.perf_counter() - start, "failed": len(result.errors())}))
"""
SCRIPTS = {"plain_sum": ("plain_sum.py", 1000), "secure_sum": ("secure_sum.py", 1000)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parties", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--scripts", nargs="+", default=list(SCRIPTS), choices=list(SCRIPTS))
    parser.add_argument("--dim", type=int, default=1000, help="vector length (default 1000)")
    parser.add_argument(
        "--baseline-max", type=int, default=1000,
        help="run the thread engine as the baseline up to this many parties (default 1000)",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one run may take")


def run(args: argparse.Namespace) -> dict[str, Any]:
    protocols = Path(__file__).resolve().parents[2] / "protocols"
    rows = []
    for name in args.scripts:
        script = str(protocols / SCRIPTS[name][0])
        for count in args.parties:
            row: dict[str, Any] = {"script": name, "parties": count, "dim": args.dim}
            coop = measure(script, count, args.dim, "coop", args.timeout)
            row.update({"seconds": coop["seconds"], "peak_mb": coop["peak_mb"], "failed": coop["failed"]})
            if count <= args.baseline_max:
                threads = measure(script, count, args.dim, "threads", args.timeout)
                row.update({"threads_seconds": threads["seconds"], "threads_peak_mb": threads["peak_mb"]})
                if coop["seconds"] and threads["seconds"]:
                    row["speedup"] = threads["seconds"] / coop["seconds"]
            rows.append(row)
    return {"engine": "coop (baseline: threads)", "cores": os.cpu_count(), "load": _load(), "rows": rows}


def measure(script: str, parties: int, dim: int, engine: str, timeout_s: float) -> dict[str, Any]:
    """One run in a fresh process: seconds (None if it timed out), failed parties, peak MB."""
    out_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"fedcore-bench-sim-{os.getpid()}"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, script, str(parties), str(dim), engine, str(out_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    peak = _PeakRss(proc.pid)
    peak.start()
    try:
        stdout, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        return {"seconds": None, "failed": None, "peak_mb": peak.stop()}
    measured = json.loads(stdout.strip().splitlines()[-1])
    return {**measured, "peak_mb": peak.stop()}


class _PeakRss(threading.Thread):
    """Samples the summed resident size of a process and its descendants."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_kb = pid, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.1):
            self.peak_kb = max(self.peak_kb, _tree_rss_kb(self.pid))

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak_kb / 1024


def _tree_rss_kb(root: int) -> int:
    """RSS of every process in ``root``'s session (the run started a new one)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) != root:  # the session id
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
