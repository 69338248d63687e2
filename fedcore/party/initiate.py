"""The initiator's side of a job: propose to every party, start, collect progress and outcomes.

``submit`` proposes synchronously (a refusal is the operator's error at once) and then drives
the job in a background thread, so the job does not depend on the operator's connection:
the CLI may detach, exit, and come back with ``fedcore job wait``/``result``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from fedcore.errors import ConfigError, FedcoreError, PartyDropped, PolicyRefused
from fedcore.party import messages as m
from fedcore.party.jobs import Job, JobState, new_job_id
from fedcore.party.runner import WAIT_POLL_S, JobRunner
from fedcore.transport import check_party_names

CALL_TIMEOUT_S = 15.0
EVENTS_PER_POLL = 1000  # the most progress events one poll reply may add (a job keeps 1000)
EVENT_TEXT_CHARS = 512  # a peer's progress step or message is cut to this


def job_from_request(runner: JobRunner, req: m.RunRequest) -> Job:
    """Check an operator's run request against this party's config: a Job initiated here."""
    me, peers = runner.me, runner.config.peers
    parties = list(check_party_names(list(req.parties)))
    if me not in parties:
        raise ConfigError(f"--parties {','.join(parties)} must include this daemon's party {me!r}")
    unknown = [p for p in parties if p != me and p not in peers]
    if unknown:
        raise ConfigError(f"--parties names {', '.join(unknown)}, not in [peers] of {runner.config.path}")
    revoked = [p for p in parties if p in runner.config.revocation.ids]
    if revoked:
        raise ConfigError(
            f"--parties names {', '.join(revoked)}, revoked in [revocation] of {runner.config.path}"
        )
    return Job(
        job_id=new_job_id(),
        script=req.script,
        sha256=req.sha256,
        initiator=me,
        parties=tuple(parties),
        params=dict(req.params),
        seed=req.seed,
        timeout_s=req.timeout_s,
    )


def submit(runner: JobRunner, req: m.RunRequest) -> Job:
    """Propose a job to its parties and start it in the background; returns it once started.

    Raises:
        PolicyRefused: a party (this one included) refused; the message names it and why.
        ConfigError: a malformed request or bad parameters.
    """
    if runner.closing:
        raise PolicyRefused(f"the daemon of {runner.me} is shutting down; no new jobs")
    job = job_from_request(runner, req)
    runner.prepare(job, runner.me)
    others = [p for p in job.parties if p != runner.me]
    try:
        _propose_all(runner, job, others)
    except BaseException:  # never leave it half-proposed
        runner.end(job.job_id, JobState.REFUSED, "a party refused it", "PolicyRefused")
        raise
    thread = threading.Thread(
        target=_drive, args=(runner, job, others), name=f"drive-{job.job_id}", daemon=True
    )
    thread.start()
    return job


def cancel(runner: JobRunner, job_id: str) -> list[str]:
    """The operator cancels a job here; at its initiator every party is told. Returns who was told."""
    job = runner.store.job(job_id)
    reason = f"cancelled by the operator of {runner.me}"
    told: list[str] = []
    if job["initiator"] == runner.me:
        others = [p for p in job["parties"] if p != runner.me]
        errors = _call_all(runner, others, m.Cancel(job_id, reason))
        told = [p for p in others if p not in errors]
    runner.end(job_id, JobState.CANCELLED, reason, "Cancelled")
    return told


def _drive(runner: JobRunner, job: Job, others: list[str]) -> None:
    start = time.monotonic()
    try:
        _start_all(runner, job, others)
        _collect(runner, job, others)
    except Exception as exc:  # a daemon bug must still close the job for its operator
        runner.log(job.job_id, f"collecting failed: {type(exc).__name__}: {exc}")
        for party in job.parties:
            if party not in job.outcomes:
                runner.jobs.set_outcome(job.job_id, party, m.RemoteError.from_exception(party, job.step, exc))
    outcome = ", ".join(f"{p} {'ok' if o.ok else 'failed'}" for p, o in job.outcomes.items())
    runner.log(job.job_id, f"collected: {outcome}")
    runner.jobs.collected(job.job_id, time.monotonic() - start)


def _propose_all(runner: JobRunner, job: Job, others: list[str]) -> None:
    proposal = m.Propose(job.job_id, job.script, job.sha256, job.params, job.seed, job.parties, job.timeout_s)
    # a peer that just restarted may still be in the channel's reconnect backoff: retry a little
    errors = _call_all(runner, others, proposal, retry_s=runner.config.limits.peer_timeout_s)
    if not errors:
        return
    accepted = [p for p in others if p not in errors]
    _call_all(runner, accepted, m.Cancel(job.job_id, "another party refused the job"))
    reasons = "; ".join(str(e) for e in errors.values())
    runner.log(job.job_id, f"refused: {reasons!r}")  # peers' text, escaped
    if all(isinstance(e, PolicyRefused) for e in errors.values()):
        raise PolicyRefused(reasons)
    first = next(iter(errors.values()))
    raise type(first)(reasons) if isinstance(first, FedcoreError) else FedcoreError(reasons)


def _start_all(runner: JobRunner, job: Job, others: list[str]) -> None:
    # start is idempotent at peers, so a start lost to a connection reset is sent again
    errors = _call_all(runner, others, m.Start(job.job_id), retry_s=runner.config.limits.peer_timeout_s)
    runner.start(job.job_id)
    if errors:  # the started parties learn it from this party's abort and fail fast
        reasons = "; ".join(f"{p}: {e}" for p, e in errors.items())
        runner.abort(job.job_id, "start", f"the job could not start at every party: {reasons}")


def _call_all(
    runner: JobRunner, peers: list[str], message: m.Message, retry_s: float = 0.0
) -> dict[str, BaseException]:
    """Send ``message`` to every peer in parallel, retrying an unreachable one; errors by peer."""
    if not peers:
        return {}
    body = m.encode(message)

    def one(peer: str) -> BaseException | None:
        deadline = time.monotonic() + retry_s
        while True:
            try:
                reply = m.decode(
                    runner.node.call(peer, message.kind.value, body, timeout_s=CALL_TIMEOUT_S),
                    m.MessageKind.ACCEPT,
                    m.MessageKind.REFUSE,
                )
                return m.refusal_error(reply) if isinstance(reply, m.Refuse) else None
            except PartyDropped as exc:  # not reached: the request never arrived, so retrying is safe
                if time.monotonic() >= deadline:
                    return exc
                time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
            except FedcoreError as exc:
                return exc

    with ThreadPoolExecutor(max_workers=len(peers)) as pool:
        outcomes = dict(zip(peers, pool.map(one, peers), strict=True))
    return {p: e for p, e in outcomes.items() if e is not None}


def _collect(runner: JobRunner, job: Job, others: list[str]) -> None:
    """Wait for every party's outcome (own and peers'), within the job deadline."""
    deadline = time.monotonic() + runner.config.limits.job_timeout_s
    pollers = [
        threading.Thread(target=_poll_peer, args=(runner, job, peer, deadline), daemon=True)
        for peer in others
    ]
    for thread in pollers:
        thread.start()
    seen = 0
    while True:
        current = runner.jobs.wait_change(job.job_id, seen, 2.0)
        seen = current.events_total
        if current.state.final and runner.me not in current.outcomes and current.own is not None:
            runner.jobs.set_outcome(job.job_id, runner.me, current.own)
        if all(p in job.outcomes for p in job.parties):
            return
        if time.monotonic() > deadline:
            _give_up(runner, job)
            return


def _give_up(runner: JobRunner, job: Job) -> None:
    limit = runner.config.limits.job_timeout_s
    reason = f"no outcome within job_timeout_s = {limit:g} s"
    for party in job.parties:
        if party not in job.outcomes:
            runner.jobs.set_outcome(job.job_id, party, m.RemoteError(party, job.step, "Timeout", reason))
    runner.abort(job.job_id, job.step, f"job_timeout_s = {limit:g} s passed at the initiator")


def peer_event(peer: str, event: m.Progress) -> m.Progress:
    """A progress event from ``peer``'s reply: its party is the certified peer (never a field
    of the reply) and its strings are cut."""

    def cut(text: str | None) -> str | None:
        return None if text is None else text[:EVENT_TEXT_CHARS]

    return replace(event, party=peer, step=cut(event.step), message=cut(event.message))


def _poll_peer(runner: JobRunner, job: Job, peer: str, deadline: float) -> None:
    """Long-poll ``peer`` for progress and its outcome.

    ``peer`` is lost only after ``peer_timeout_s`` without any successful exchange with it (a
    poll, a heartbeat, a message either way), across reconnects: a link that resets while
    messages still get through loses polls, not the peer. After a failed poll the next one
    returns at once, so that it fits between two resets.
    """
    limits = runner.config.limits
    seen, last_ok, last_error, step, wait_s = 0, time.monotonic(), "", None, WAIT_POLL_S
    put: Callable[[m.Outcome], None] = lambda o: runner.jobs.set_outcome(job.job_id, peer, o)  # noqa: E731
    while time.monotonic() < deadline:
        body = m.encode(m.Wait(job.job_id, seen, wait_s))
        try:
            raw = runner.node.call(
                peer, m.MessageKind.WAIT.value, body, timeout_s=wait_s + limits.peer_timeout_s
            )
            status = m.decode(raw, m.MessageKind.STATUS)
        except FedcoreError as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            contact = max(last_ok, runner.node.last_contact(peer))
            if time.monotonic() - contact > limits.peer_timeout_s:
                at = f" at step {step!r}" if step else ""
                put(
                    m.RemoteError(
                        peer,
                        step,
                        "PartyDropped",
                        f"lost contact with {peer}{at} for {limits.peer_timeout_s:g} s ({last_error})",
                    )
                )
                return
            wait_s = 0.0
            time.sleep(min(limits.heartbeat_s, 0.25))  # retry pacing while the link blips
            continue
        assert isinstance(status, m.Status)  # decode checked the kind
        last_ok, wait_s = time.monotonic(), WAIT_POLL_S
        for event in status.events[-EVENTS_PER_POLL:]:
            runner.jobs.add_event(job.job_id, peer_event(peer, event), own=False)
        seen, step = status.total, status.step or step
        if status.outcome is not None:
            put(status.outcome)
            return
        if JobState(status.state).final if status.state in _STATES else False:
            put(m.RemoteError(peer, step, "ProtocolError", f"{peer} ended {status.state} without an outcome"))
            return
    put(m.RemoteError(peer, step, "Timeout", "the job deadline passed at the initiator"))


_STATES = {s.value for s in JobState}
