"""Federated training rounds: seconds per round and peak memory of protocols/fedavg_digits.py.

Default: plain vs secure aggregation, every party training. With ``--fraction F``: a round
that samples a fraction F of the parties beside the same job with every party training (the
baseline), e.g. ``fedcore bench fl --parties 1000 --fraction 0.01``. Every row runs in its own
process, so its peak resident memory (``ru_maxrss``) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DESCRIPTION = (
    "seconds per FedAvg round and peak memory on the digits MLP: plain vs secure, or sampled vs every party"
)
SCRIPT = Path(__file__).resolve().parents[2] / "protocols" / "fedavg_digits.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parties", type=int, default=100, help="number of parties (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per run (default 3)")
    parser.add_argument("--fraction", type=float, help="sample this fraction per round, beside every party")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--script", default=str(SCRIPT), help="the fedavg_digits protocol script")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds any receive may wait")


def _secagg_available() -> str | None:
    try:
        import fedcore.secagg  # noqa: F401
    except ImportError as exc:
        return f"fedcore.secagg cannot be imported ({exc}); secure rows skipped"
    return None


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One row, in this (fresh) process: run the job, time its rounds, read the peak memory."""
    from fedcore.runtime import make_runtime
    from fedcore.sim import simulate

    with make_runtime("inline") as runtime:
        result = simulate(
            spec["script"], parties=spec["parties"], params=spec["params"], runtime=runtime,
            timeout_s=spec["timeout"],
        )  # fmt: skip
    coordinator = result.parties[next(iter(result.parties))]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if "error" in coordinator:
        return {"error": coordinator["error"], "peak MiB": peak_mib}
    per_round = [h["seconds"] for h in coordinator["history"]]
    later = per_round[1:] or per_round
    return {
        "s/round": sum(later) / len(later),
        "first round s": per_round[0],
        "parties/round": sum(h["parties"] for h in coordinator["history"]) / len(per_round),
        "job seconds": result.seconds,
        "peak MiB": peak_mib,
        "accuracy": coordinator["accuracy"],
        "failed parties": len(result.errors()),
    }


def _row(label: str, args: argparse.Namespace, params: dict[str, Any]) -> dict[str, Any]:
    spec = {"script": args.script, "parties": args.parties, "params": params, "timeout": args.timeout}
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "fedcore.bench.fl", json.dumps(spec)], capture_output=True, text=True,
        timeout=args.timeout * (args.rounds + 2),
    )  # fmt: skip
    row: dict[str, Any] = {"run": label, "parties": args.parties}
    if proc.returncode != 0:
        return {**row, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    row["wall s"] = time.perf_counter() - began
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = {"rounds": args.rounds, "device": args.device}
    if args.fraction is not None:
        rows = [
            _row(f"fraction {args.fraction:g}", args, {**base, "fraction": args.fraction}),
            _row("every party (baseline)", args, base),
        ]
    else:
        rows = [_row("plain", args, base)]
        missing = _secagg_available()
        if missing is None:
            rows.append(_row("secure (SecAgg+)", args, {**base, "secure": True}))
    out: dict[str, Any] = {
        "job": f"protocols/fedavg_digits.py, {args.parties} parties, {args.rounds} rounds, MLP 64-32-10, "
        f"device {args.device}",
        "note": "s/round: the coordinator's mean wall time per round after the first (the first, with every "
        "party's first torch call, is shown apart): pick, broadcast, local training at the picked parties "
        "(threads of one process), collection, aggregation, evaluation. peak MiB: the row's own process",
        "rows": rows,
    }
    if len(rows) == 2 and "error" not in rows[0] and "error" not in rows[1]:
        ratio = rows[1]["s/round"] / rows[0]["s/round"]
        if args.fraction is not None:
            out["every party / sampled, s/round x"] = ratio
            out["every party / sampled, peak memory x"] = rows[1]["peak MiB"] / rows[0]["peak MiB"]
        else:
            out["secure overhead x"] = ratio
    return out


if __name__ == "__main__":
    print(json.dumps(child(json.loads(sys.argv[1]))))
