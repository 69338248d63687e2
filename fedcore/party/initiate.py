"""The initiator's side of a job: propose to every party, start, stream progress, collect results."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fedcore import wire
from fedcore.errors import ConfigError, FedcoreError, PartyDropped, PolicyRefused
from fedcore.party.jobs import Job, JobState, new_job_id
from fedcore.party.runner import WAIT_POLL_S, JobRunner
from fedcore.transport import check_party_names

Emit = Callable[[dict[str, Any]], None]
CALL_TIMEOUT_S = 15.0


def job_from_request(runner: JobRunner, req: dict[str, Any]) -> Job:
    """Validate an operator's ``run`` request into a Job initiated by this party."""
    me, peers = runner.me, runner.config.peers
    parties = req.get("parties")
    if not isinstance(parties, list) or not parties:
        raise ConfigError("--parties: expected a comma-separated list of party ids")
    parties = list(check_party_names([str(p) for p in parties]))
    if me not in parties:
        raise ConfigError(f"--parties {','.join(parties)} must include this daemon's party {me!r}")
    unknown = [p for p in parties if p != me and p not in peers]
    if unknown:
        raise ConfigError(f"--parties names {', '.join(unknown)}, not in [peers] of {runner.config.path}")
    for key, kind in (("script", str), ("sha256", str), ("params", dict), ("seed", int)):
        if not isinstance(req.get(key), kind):
            raise ConfigError(f"run request: {key} is missing or not {kind.__name__}")
    timeout_s = req.get("timeout_s")
    if not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout_s!r}")
    return Job(
        job_id=new_job_id(), script=req["script"], sha256=req["sha256"], initiator=me,
        parties=tuple(parties), params=req["params"], seed=req["seed"], timeout_s=float(timeout_s),
    )


def run_job(runner: JobRunner, req: dict[str, Any], emit: Emit) -> None:
    """Run one job for the operator: ``emit`` gets started/progress/tick frames then the result.

    Raises:
        PolicyRefused: a party (this one included) refused; the message names it and why.
        ConfigError: a malformed request or bad parameters.
    """
    if runner.closing:
        raise FedcoreError(f"the daemon of {runner.me} is shutting down; no new jobs")
    job = job_from_request(runner, req)
    runner.prepare(job, runner.me)
    others = [p for p in job.parties if p != runner.me]
    try:
        emit({"event": "started", "job_id": job.job_id, "parties": list(job.parties)})
        _propose_all(runner, job, others)
    except BaseException:  # the operator left or a call failed oddly: never leave it half-proposed
        runner.cancel(job.job_id, JobState.CANCELLED, "the initiator gave up before starting it")
        raise
    _start_all(runner, job, others)
    start = time.monotonic()
    results = _collect(runner, job, others, emit)
    outcome = {p: ("ok" if not _is_error(r) else r["error"]) for p, r in results.items()}
    job.outcome = outcome
    runner.log(job.job_id, "collected: " + ", ".join(f"{p} {'ok' if v == 'ok' else 'failed'}"
                                                    for p, v in outcome.items()))
    parties = {p: r if _is_error(r) else r["result"] for p, r in results.items()}
    emit({"event": "result", "job_id": job.job_id, "parties": parties,
          "seconds": time.monotonic() - start, "final": True})


def _is_error(entry: dict[str, Any]) -> bool:
    return "error" in entry


def _propose_all(runner: JobRunner, job: Job, others: list[str]) -> None:
    body = wire.encode({
        "job_id": job.job_id, "script": job.script, "sha256": job.sha256, "params": job.params,
        "seed": job.seed, "parties": list(job.parties), "timeout_s": job.timeout_s,
    })
    # a peer that just restarted may still be in the channel's reconnect backoff: retry a little
    errors = _call_all(runner, others, "job.propose", body, retry_s=runner.config.limits.peer_timeout_s)
    if not errors:
        return
    accepted = [p for p in others if p not in errors]
    cancel = wire.encode({"job_id": job.job_id})
    _call_all(runner, accepted, "job.cancel", cancel)
    reasons = "; ".join(str(e) for e in errors.values())
    runner.cancel(job.job_id, JobState.REFUSED, reasons)
    first = next(iter(errors.values()))
    if all(isinstance(e, PolicyRefused) for e in errors.values()):
        raise PolicyRefused(reasons)
    raise type(first)(reasons) if isinstance(first, FedcoreError) else FedcoreError(reasons)


def _start_all(runner: JobRunner, job: Job, others: list[str]) -> None:
    errors = _call_all(runner, others, "job.start", wire.encode({"job_id": job.job_id}))
    runner.start(job.job_id)
    if errors:  # the started parties learn it from this party's abort and fail fast
        reasons = "; ".join(f"{p}: {e}" for p, e in errors.items())
        runner.abort(job.job_id, "start", f"the job could not start at every party: {reasons}")


def _call_all(runner: JobRunner, peers: list[str], kind: str, body: bytes,
              retry_s: float = 0.0) -> dict[str, BaseException]:
    """Call every peer in parallel, retrying an unreachable one for ``retry_s``; errors by peer."""
    if not peers:
        return {}

    def one(peer: str) -> BaseException | None:
        deadline = time.monotonic() + retry_s
        while True:
            try:
                runner.node.call(peer, kind, body, timeout_s=CALL_TIMEOUT_S)
                return None
            except PartyDropped as exc:  # not reached: the request never arrived, so retrying is safe
                if time.monotonic() >= deadline:
                    return exc
                time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
            except FedcoreError as exc:
                return exc

    with ThreadPoolExecutor(max_workers=len(peers)) as pool:
        outcomes = dict(zip(peers, pool.map(one, peers), strict=True))
    return {p: e for p, e in outcomes.items() if e is not None}


def _collect(runner: JobRunner, job: Job, others: list[str], emit: Emit) -> dict[str, dict[str, Any]]:
    """Wait for every party's result (own and peers'), streaming progress, within the deadline."""
    results: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + runner.config.limits.job_timeout_s

    def put(party: str, entry: dict[str, Any]) -> None:
        with lock:
            results.setdefault(party, entry)
        runner.jobs.notify()

    pollers = [
        threading.Thread(target=_poll_peer, args=(runner, job, peer, deadline, put), daemon=True)
        for peer in others
    ]
    for thread in pollers:
        thread.start()
    seen = 0
    while True:
        current = runner.jobs.wait_change(job.job_id, seen, 2.0)
        seen = _stream(current, seen, emit)
        if current.state.final:
            put(runner.me, _own_entry(current))
        with lock:
            done = len(results) == len(job.parties)
        if done:
            # a poller adds a peer's last events before its result: send what came after our snapshot
            _stream(runner.jobs.get(job.job_id), seen, emit)
            break
        if time.monotonic() > deadline:
            _give_up(runner, job, results, lock)
            break
        emit({"event": "tick"})
    with lock:
        return {p: results[p] for p in job.parties}


def _stream(job: Job, seen: int, emit: Emit) -> int:
    """Emit the job's progress events after the first ``seen``; returns the new count."""
    for event in job.events_since(seen):
        emit({"event": "progress", **event})
    return job.events_total


def _own_entry(job: Job) -> dict[str, Any]:
    if job.state is JobState.SUCCEEDED and job.result is not None:
        return {"result": job.result}
    return {"error": job.error or f"ended {job.state.value}"}


def _give_up(runner: JobRunner, job: Job, results: dict[str, Any], lock: threading.Lock) -> None:
    limit = runner.config.limits.job_timeout_s
    with lock:
        for party in job.parties:
            results.setdefault(party, {"error": f"Timeout: no result from {party} within "
                                                f"job_timeout_s = {limit:g} s"})
    runner.abort(job.job_id, job.step, f"job_timeout_s = {limit:g} s passed at the initiator")


def _poll_peer(runner: JobRunner, job: Job, peer: str, deadline: float,
               put: Callable[[str, dict[str, Any]], None]) -> None:
    """Long-poll ``peer`` for progress and its result; report it lost after peer_timeout_s of silence."""
    limits = runner.config.limits
    seen, last_ok, last_error, step = 0, time.monotonic(), "", None
    while time.monotonic() < deadline:
        body = wire.encode({"job_id": job.job_id, "seen": seen, "wait_s": WAIT_POLL_S})
        try:
            reply = wire.decode(runner.node.call(peer, "job.wait", body,
                                                 timeout_s=WAIT_POLL_S + limits.peer_timeout_s))
        except FedcoreError as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() - last_ok > limits.peer_timeout_s:
                at = f" at step {step!r}" if step else ""
                put(peer, {"error": f"PartyDropped: lost contact with {peer}{at} for "
                                    f"{limits.peer_timeout_s:g} s ({last_error})"})
                return
            time.sleep(limits.heartbeat_s)  # retry pacing while the peer may be blipping
            continue
        last_ok = time.monotonic()
        for event in reply.get("events", []):
            runner.jobs.add_event(job.job_id, event, own=False)
        seen = int(reply.get("total", seen))
        step = reply.get("step") or step
        state = reply.get("state")
        if state == JobState.SUCCEEDED.value:
            put(peer, {"result": reply.get("result")})
            return
        if state in (JobState.FAILED.value, JobState.CANCELLED.value, JobState.REFUSED.value):
            put(peer, {"error": str(reply.get("error") or f"ended {state}")})
            return
