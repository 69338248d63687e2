"""Federated training rounds: seconds per round of protocols/fedavg_digits.py, plain vs secure aggregation."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DESCRIPTION = "seconds per FedAvg round on the digits MLP, with and without secure aggregation"
SCRIPT = Path(__file__).resolve().parents[2] / "protocols" / "fedavg_digits.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parties", type=int, default=100, help="number of parties (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per run (default 3)")
    parser.add_argument("--script", default=str(SCRIPT), help="the fedavg_digits protocol script")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds any receive may wait")


def _secagg_available() -> str | None:
    try:
        import fedcore.secagg  # noqa: F401
    except ImportError as exc:
        return f"fedcore.secagg cannot be imported ({exc}); secure rows skipped"
    return None


def _one(args: argparse.Namespace, secure: bool, runtime: Any) -> dict[str, Any]:
    from fedcore.sim import simulate

    params = {"rounds": args.rounds, "secure": secure}
    result = simulate(
        args.script, parties=args.parties, params=params, runtime=runtime, timeout_s=args.timeout
    )
    coordinator = result.parties[next(iter(result.parties))]
    if "error" in coordinator:
        return {"aggregation": "secure" if secure else "plain", "error": coordinator["error"]}
    per_round = [h["seconds"] for h in coordinator["history"]]
    later = per_round[1:] or per_round
    return {
        "aggregation": "secure (SecAgg+)" if secure else "plain",
        "parties": args.parties,
        "rounds": len(per_round),
        "s/round": sum(later) / len(later),
        "first round s": per_round[0],
        "job seconds": result.seconds,
        "accuracy": coordinator["accuracy"],
        "failed parties": len(result.errors()),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from fedcore.runtime import make_runtime

    runtime = make_runtime("inline")
    missing = _secagg_available()
    try:
        rows = [_one(args, False, runtime)]
        if missing is None:
            rows.append(_one(args, True, runtime))
    finally:
        runtime.close()
    out: dict[str, Any] = {
        "job": f"protocols/fedavg_digits.py, {args.parties} parties, {args.rounds} rounds, MLP 64-32-10",
        "note": "s/round: the coordinator's mean wall time per round after the first (the first, with "
        "every party's first torch call, is shown apart): broadcast, local training at every party "
        "(threads of one process), collection, aggregation, evaluation",
    }
    if missing:
        out["secure"] = missing
    out["rows"] = rows
    if len(rows) == 2 and "error" not in rows[0] and "error" not in rows[1]:
        out["secure overhead x"] = rows[1]["s/round"] / rows[0]["s/round"]
    return out
