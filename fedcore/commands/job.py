"""``fedcore job run|list|status``: start a job through the local daemon and inspect jobs."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from fedcore.commands._common import ProgressBoard, parse_params, print_json, summarize
from fedcore.context import ProgressEvent
from fedcore.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("job", help="run a job through the local party daemon, list and inspect jobs")
    jsub = p.add_subparsers(dest="job_command", required=True, metavar="ACTION")
    run = jsub.add_parser("run", help="propose a job to the parties and wait for the results")
    run.add_argument("script", help="protocol script; every party must allow a file of that name and hash")
    _config_arg(run)
    run.add_argument("--parties", required=True, help="comma-separated party ids, this party included")
    run.add_argument("--param", action="append", metavar="KEY=VALUE",
                     help="script parameter (JSON or string)")
    run.add_argument("--seed", type=int, default=0, help="job seed (default 0)")
    run.add_argument("--timeout", type=float, default=120.0,
                     help="seconds any receive may wait (default 120)")
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    run.set_defaults(func=run_job)
    listing = jsub.add_parser("list", help="jobs the local daemon knows")
    _config_arg(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=list_jobs)
    status = jsub.add_parser("status", help="one job's state, step, error and outcome")
    status.add_argument("job_id")
    _config_arg(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=job_status)


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=os.environ.get("FEDCORE_CONFIG", "party.toml"),
                   help="the local party's party.toml (default: $FEDCORE_CONFIG, else ./party.toml)")


def _endpoint(config_path: str) -> Any:
    from fedcore.party.config import load_config

    return load_config(config_path).control


def run_job(args: argparse.Namespace) -> int:
    from fedcore import wire
    from fedcore.party import control
    from fedcore.party.policy import sha256_file

    script = Path(args.script)
    if not script.is_file():
        raise ConfigError(f"protocol script {script} does not exist")
    request = {
        "op": "run", "script": script.name, "sha256": sha256_file(script),
        "parties": [p.strip() for p in args.parties.split(",") if p.strip()],
        "params": parse_params(args.param), "seed": args.seed, "timeout_s": args.timeout,
    }
    start = time.monotonic()
    result: dict[str, Any] = {}
    verbose = bool(getattr(args, "verbose", False))  # -v: a line per party per step, as before
    board = ProgressBoard(len(request["parties"]), enabled=not (args.json or verbose))
    with board:
        for frame in control.request(_endpoint(args.config), request):
            if frame.get("event") == "result":
                result = frame
            elif verbose:
                _print_frame(frame)
            elif frame.get("event") == "progress":
                board(_event(frame))
    parties = {p: v if isinstance(v, dict) else wire.decode(v) for p, v in result["parties"].items()}
    failed = [p for p, v in parties.items() if isinstance(v, dict) and set(v) == {"error"}]
    seconds = time.monotonic() - start
    if args.json:
        print_json({"parties": parties, "seconds": seconds})
    else:
        head = f"job {result['job_id']}: {len(parties)} parties, {len(failed)} failed, {seconds:.2f} s"
        sys.stdout.write(head + "\n")
        for name, value in parties.items():
            sys.stdout.write(f"  {name}: {summarize(value)}\n")
    return 1 if failed else 0


def _print_frame(frame: dict[str, Any]) -> None:
    if frame.get("event") == "started":
        sys.stderr.write(f"job {frame['job_id']}: started with {', '.join(frame['parties'])}\n")
    elif frame.get("event") == "progress":
        sys.stderr.write(_progress_line(frame) + "\n")
    sys.stderr.flush()


def _event(frame: dict[str, Any]) -> ProgressEvent:
    def number(key: str) -> float | None:
        value = frame.get(key)
        return float(value) if isinstance(value, (int, float)) else None

    text = {k: frame[k] if isinstance(frame.get(k), str) else None for k in ("party", "step", "message")}
    return ProgressEvent(text["party"] or "?", text["step"], number("done"), number("total"), text["message"])


def _progress_line(frame: dict[str, Any]) -> str:
    parts = [f"  {frame.get('party')}"]
    if frame.get("step"):
        parts.append(f"step {frame['step']}")
    if frame.get("done") is not None and frame.get("total"):
        parts.append(f"{frame['done']:g}/{frame['total']:g}")
    if frame.get("message"):
        parts.append(str(frame["message"]))
    return " | ".join(parts)


def list_jobs(args: argparse.Namespace) -> int:
    from fedcore.party import control

    jobs = control.call(_endpoint(args.config), {"op": "jobs"})["jobs"]
    if args.json:
        print_json({"jobs": jobs})
        return 0
    for job in jobs:
        sys.stdout.write(f"{job['job_id']}  {job['state']:<9}  {job['script']}  "
                         f"initiator {job['initiator']}  "
                         f"parties {','.join(job['parties'])}\n")
    if not jobs:
        sys.stdout.write("no jobs\n")
    return 0


def job_status(args: argparse.Namespace) -> int:
    from fedcore.party import control

    job = control.call(_endpoint(args.config), {"op": "job", "job_id": args.job_id})["job"]
    if args.json:
        print_json({"job": job})
        return 0
    sys.stdout.write(f"{job['job_id']}: {job['state']} {job['script']} (initiator {job['initiator']}, "
                     f"parties {','.join(job['parties'])}, step {job['step']})\n")
    if job.get("error"):
        sys.stdout.write(f"  error: {job['error']}\n")
    for party, outcome in (job.get("outcome") or {}).items():
        sys.stdout.write(f"  {party}: {outcome}\n")
    return 0
