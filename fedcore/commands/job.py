"""``fedcore job run|wait|result|cancel|status|logs|list``: jobs through the local daemon's API."""

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

WAIT_POLL_S = 10


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("job", help="run jobs through the local party daemon; follow, cancel and inspect them")
    jsub = p.add_subparsers(dest="job_command", required=True, metavar="ACTION")
    run = jsub.add_parser("run", help="propose a job to the parties, start it and wait for the results")
    run.add_argument("script", help="protocol script; every party must allow a file of that name and hash")
    config_arg(run)
    run.add_argument("--parties", required=True, help="comma-separated party ids, this party included")
    run.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="script parameter (JSON or string)"
    )
    run.add_argument("--seed", type=int, default=0, help="job seed (default 0)")
    run.add_argument(
        "--timeout", type=float, default=120.0, help="seconds any receive may wait (default 120)"
    )
    run.add_argument("--detach", action="store_true", help="print the job id and return at once")
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    run.set_defaults(func=run_job)
    for name, func, text in (
        ("wait", wait_job, "follow a job's progress until it ends, then print its results"),
        ("result", job_result, "a finished job's results (also after a restart), as job run prints them"),
        ("cancel", cancel_job, "cancel a job at every party (at its initiator) or at this party"),
        ("status", job_status, "one job's state at this party, its state changes and outcomes"),
        ("logs", job_logs, "a job's log lines at this party"),
    ):
        cmd = jsub.add_parser(name, help=text)
        cmd.add_argument("job_id")
        config_arg(cmd)
        cmd.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        cmd.set_defaults(func=func)
    listing = jsub.add_parser("list", help="every job in the local daemon's job store, newest first")
    config_arg(listing)
    listing.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    listing.set_defaults(func=list_jobs)


def config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default=os.environ.get("FEDCORE_CONFIG", "party.toml"),
        help="the local party's party.toml (default: $FEDCORE_CONFIG, else ./party.toml)",
    )


def client(args: argparse.Namespace) -> Any:
    from fedcore.party.client import ApiClient
    from fedcore.party.config import load_config

    return ApiClient(load_config(args.config))


def run_job(args: argparse.Namespace) -> int:
    from fedcore.party.messages import RunRequest
    from fedcore.party.policy import sha256_file

    script = Path(args.script)
    if not script.is_file():
        raise ConfigError(f"protocol script {script} does not exist")
    request = RunRequest(
        script.name, sha256_file(script), tuple(p.strip() for p in args.parties.split(",") if p.strip()),
        parse_params(args.param), args.seed, args.timeout,
    )  # fmt: skip
    with client(args) as api:
        started = api.post("/api/v1/jobs", request.to_json())
        job_id = started["job_id"]
        if args.detach:
            if args.json:
                print_json({"job_id": job_id})
            else:
                sys.stdout.write(f"{job_id}\n")
            return 0
        if not args.json:  # the id to reattach with (job wait ID); --json prints nothing but the result
            sys.stderr.write(f"job {job_id}: started with {', '.join(started['parties'])}\n")
        return _attached(args, api, job_id)


def _verbose(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "verbose", False))  # -v: a line per party per step


def _attached(args: argparse.Namespace, api: Any, job_id: str) -> int:
    try:
        _follow(api, job_id, args)
    except KeyboardInterrupt:
        sys.stderr.write(f"\ndetached from job {job_id}; it goes on at the daemons. Reattach with:\n"
                         f"  fedcore job wait {job_id} --config {args.config}\n")  # fmt: skip
        return 130
    return _print_result(args, api.get(f"/api/v1/jobs/{job_id}/result"))


def _follow(api: Any, job_id: str, args: argparse.Namespace) -> None:
    """Show the job's progress on stderr until it is done: one self-updating line on a terminal,
    a line per party per step with -v, nothing with --json."""
    seen, verbose = 0, _verbose(args)
    named = getattr(args, "parties", None)  # job wait has no --parties: the daemon knows them
    parties = (
        [p for p in named.split(",") if p.strip()] if named else api.get(f"/api/v1/jobs/{job_id}")["parties"]
    )
    with ProgressBoard(len(parties), enabled=not (args.json or verbose)) as board:
        while True:
            reply = api.get(f"/api/v1/jobs/{job_id}/wait", since=seen, timeout_s=WAIT_POLL_S)
            for event in reply["events"]:
                if verbose:
                    sys.stderr.write(progress_line(event) + "\n")
                else:
                    board(_event(event))
            sys.stderr.flush()
            seen = max(seen, int(reply["total"]))
            if reply["done"]:
                return


def _event(event: dict[str, Any]) -> ProgressEvent:
    def number(key: str) -> float | None:
        value = event.get(key)
        return float(value) if isinstance(value, (int, float)) else None

    text = {k: event[k] if isinstance(event.get(k), str) else None for k in ("party", "step", "message")}
    return ProgressEvent(text["party"] or "?", text["step"], number("done"), number("total"), text["message"])


def progress_line(event: dict[str, Any]) -> str:
    parts = [f"  {event.get('party')}"]
    if event.get("step"):
        parts.append(f"step {event['step']}")
    if event.get("done") is not None and event.get("total"):
        parts.append(f"{event['done']:g}/{event['total']:g}")
    if event.get("message"):
        parts.append(str(event["message"]))
    return " | ".join(parts)


def _failed(parties: dict[str, Any]) -> list[str]:
    """Parties whose outcome is an error (``outcome_json`` renders those with kind and party)."""
    return [p for p, v in parties.items() if isinstance(v, dict) and {"error", "kind", "party"} <= set(v)]


def _print_result(args: argparse.Namespace, result: dict[str, Any]) -> int:
    parties, seconds = result["parties"], result.get("seconds")
    failed = _failed(parties)
    if args.json:
        print_json({"job_id": result["job_id"], "parties": parties, "seconds": seconds})
    else:
        took = f"{seconds:.2f} s" if isinstance(seconds, (int, float)) else "time unknown"
        sys.stdout.write(f"job {result['job_id']}: {result['state']}, {len(parties)} parties, "
                         f"{len(failed)} failed, {took}\n")  # fmt: skip
        for name, value in parties.items():
            shown = value["error"] if name in failed else summarize(value)
            sys.stdout.write(f"  {name}: {shown}\n")
        for party, files in (result.get("files") or {}).items():
            if files:
                sys.stdout.write(f"  files of {party} in {result.get('output_dir')}: {', '.join(files)}\n")
    return 1 if failed or not parties else 0


def wait_job(args: argparse.Namespace) -> int:
    with client(args) as api:
        return _attached(args, api, args.job_id)


def job_result(args: argparse.Namespace) -> int:
    with client(args) as api:
        result = api.get(f"/api/v1/jobs/{args.job_id}/result")
    if result["state"] in ("proposed", "running") and not result["parties"]:
        sys.stderr.write(f"job {args.job_id} is {result['state']}; follow it with: "
                         f"fedcore job wait {args.job_id} --config {args.config}\n")  # fmt: skip
        return 1
    return _print_result(args, result)


def cancel_job(args: argparse.Namespace) -> int:
    with client(args) as api:
        reply = api.post(f"/api/v1/jobs/{args.job_id}/cancel")
    if args.json:
        print_json(reply)
    else:
        told = f"; told {', '.join(reply['told'])}" if reply["told"] else ""
        sys.stdout.write(f"job {args.job_id}: {reply['state']}{told}\n")
    return 0


def job_status(args: argparse.Namespace) -> int:
    with client(args) as api:
        job = api.get(f"/api/v1/jobs/{args.job_id}")
    if args.json:
        print_json({"job": job})
        return 0
    out = sys.stdout
    out.write(f"{job['job_id']}: {job['state']} {job['script']} (initiator {job['initiator']}, "
              f"parties {','.join(job['parties'])}, step {job['step']})\n")  # fmt: skip
    if job.get("error"):
        out.write(f"  error: {job['error']}\n")
    for change in job["states"]:
        why = f": {change['reason']}" if change["reason"] else ""
        out.write(f"  {_clock(change['at'])} {change['state']}{why}\n")
    for party, outcome in job["outcomes"].items():
        shown = outcome["error"] if party in _failed({party: outcome}) else "ok"
        out.write(f"  {party}: {shown}\n")
    return 0


def job_logs(args: argparse.Namespace) -> int:
    with client(args) as api:
        reply = api.get(f"/api/v1/jobs/{args.job_id}/logs")
    if args.json:
        print_json(reply)
    else:
        sys.stdout.write("".join(f"{line}\n" for line in reply["log"]))
    return 0


def list_jobs(args: argparse.Namespace) -> int:
    with client(args) as api:
        jobs = api.get("/api/v1/jobs")["jobs"]
    if args.json:
        print_json({"jobs": jobs})
        return 0
    if not jobs:
        sys.stdout.write("no jobs\n")
        return 0
    rows = [("JOB", "STATE", "SCRIPT", "STARTED", "DURATION", "PARTIES", "INITIATOR")]
    for job in jobs:
        started = _clock(job["started"]) if job["started"] else "-"
        took = f"{job['seconds']:.1f} s" if isinstance(job["seconds"], (int, float)) else "-"
        rows.append((job["job_id"], job["state"], job["script"], started, took, ",".join(job["parties"]),
                     job["initiator"]))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
    return 0


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
