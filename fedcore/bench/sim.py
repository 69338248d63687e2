"""Simulation scale: wall time and peak memory of plain_sum for many parties."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = "wall time and peak memory of protocols/plain_sum.py for 100, 1000, 5000 parties"

_CHILD = """
import json, resource, sys, time
from fedcore import simulate
from fedcore.runtime import make_runtime
script, parties, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
start = time.perf_counter()
with make_runtime("threads") as rt:
    result = simulate(script, parties=parties, params={"dim": dim}, runtime=rt)
wall = time.perf_counter() - start
print(json.dumps({"seconds": wall, "errors": len(result.errors()),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parties", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--dim", type=int, default=1000)
    parser.add_argument("--script", default=None, help="protocol script (default protocols/plain_sum.py)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    script = args.script or str(Path(__file__).resolve().parents[2] / "protocols" / "plain_sum.py")
    rows = []
    for count in args.parties:
        # a fresh process per size, so peak memory is that run's alone
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, script, str(count), str(args.dim)],
            capture_output=True, text=True, check=True,
        )
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"parties": count, "dim": args.dim, **measured})
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"script": Path(script).name, "bench_process_rss_mb": self_rss, "rows": rows}
