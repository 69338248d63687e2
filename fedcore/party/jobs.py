"""Job records and their state machine, kept live in memory and written through to the job store.

A job moves PROPOSED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED, or ends PROPOSED ->
REFUSED | CANCELLED | FAILED when a party refuses it or its initiator gives up before
starting it. A job that was PROPOSED or RUNNING when its daemon stopped is INTERRUPTED.
Every transition is in ``TRANSITIONS``; any other move raises ``ProtocolError``.
"""

from __future__ import annotations

import enum
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from fedcore.errors import ProtocolError
from fedcore.party.messages import Outcome, Progress, RemoteError, outcome_json
from fedcore.party.store import JobStore

MAX_LIVE_EVENTS = 1000


class JobState(enum.Enum):
    PROPOSED = "proposed"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def final(self) -> bool:
        return self not in (JobState.PROPOSED, JobState.RUNNING)


_ENDS = frozenset({JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED})
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PROPOSED: frozenset({JobState.RUNNING, JobState.REFUSED, *_ENDS}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, *_ENDS}),
}


def new_job_id() -> str:
    """A fresh random job id like ``j-3f9a0c2e1b``."""
    return "j-" + secrets.token_hex(5)


@dataclass
class Job:
    """One live job as this party knows it.

    ``own`` is this party's outcome once its side ended; ``outcomes`` (filled at the
    initiator) holds every party's.
    """

    job_id: str
    script: str
    sha256: str
    initiator: str
    parties: tuple[str, ...]
    params: dict[str, Any]
    seed: int
    timeout_s: float
    state: JobState = JobState.PROPOSED
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    step: str | None = None
    own: Outcome | None = None
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    events: list[Progress] = field(default_factory=list)
    events_total: int = 0
    collected: bool = False  # at the initiator: every party's outcome is in

    def events_since(self, seen: int) -> list[Progress]:
        """The events after the first ``seen`` (only the latest kept ones if many were dropped)."""
        fresh = self.events_total - seen
        return list(self.events[-fresh:]) if fresh > 0 else []

    def record(self) -> dict[str, Any]:
        """The job store's columns for this job."""
        return {
            "job_id": self.job_id, "script": self.script, "sha256": self.sha256, "params": self.params,
            "seed": self.seed, "timeout_s": self.timeout_s, "initiator": self.initiator,
            "parties": self.parties, "state": self.state.value, "created": self.created,
        }  # fmt: skip


class JobTable:
    """Thread-safe live jobs by id, written through to ``store``; keeps the last ``keep`` finished."""

    def __init__(self, store: JobStore, keep: int = 200):
        self.store = store
        self.keep = keep
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._cond = threading.Condition(threading.RLock())

    def add(self, job: Job) -> Job:
        with self._cond:
            if job.job_id in self._jobs:
                raise ProtocolError(f"job {job.job_id} already exists here")
            self.store.add_job(job.record())
            self._jobs[job.job_id] = job
            self._trim()
            return job

    def get(self, job_id: str) -> Job:
        with self._cond:
            job = self._jobs.get(job_id)
        if job is None:
            raise ProtocolError(f"no live job {job_id!r} here (unknown, finished long ago, or interrupted)")
        return job

    def find(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def move(self, job_id: str, state: JobState, *, error: str | None = None) -> Job:
        """Apply one transition; raises ProtocolError for a move not in TRANSITIONS."""
        with self._cond:
            job = self.get(job_id)
            if state not in TRANSITIONS.get(job.state, frozenset()):
                raise ProtocolError(f"job {job_id} cannot go from {job.state.value} to {state.value}")
            job.state = state
            now = time.time()
            if state is JobState.RUNNING:
                job.started = now
            if state.final:
                job.ended = now
                job.error = error
            self.store.set_state(
                job_id,
                state.value,
                at=now,
                reason=error,
                started=job.started if state is JobState.RUNNING else None,
                ended=job.ended if state.final else None,
            )
            self._cond.notify_all()
            return job

    def try_move(self, job_id: str, state: JobState, *, error: str | None = None) -> bool:
        """``move`` unless the job already ended (a cancel raced the end): False then."""
        try:
            self.move(job_id, state, error=error)
            return True
        except ProtocolError:
            return False

    def finish(
        self, job_id: str, state: JobState, party: str, outcome: Outcome, error: str | None = None
    ) -> bool:
        """End the job here as ``state`` with this party's ``outcome``, in one step (a poller never
        sees the state without the outcome); False if it had already ended (a cancel raced it)."""
        with self._cond:
            if not self.try_move(job_id, state, error=error):
                return False
            self.set_own(job_id, party, outcome)
            return True

    def add_event(self, job_id: str, event: Progress, *, own: bool = True) -> None:
        """Record a progress event; ``own`` events (this party's) also set the job's step."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                return
            if own and event.step and event.step != job.step:
                job.step = event.step
                self.store.set_fields(job_id, step=event.step)
            job.events.append(event)
            job.events_total += 1
            del job.events[:-MAX_LIVE_EVENTS]  # bounded: a chatty script keeps only its latest reports
            self.store.add_event(job_id, job.events_total, event)
            self._cond.notify_all()

    def set_outcome(self, job_id: str, party: str, outcome: Outcome) -> None:
        with self._cond:
            job = self.get(job_id)
            job.outcomes[party] = outcome
            self.store.set_outcome(job_id, party, outcome)
            self._cond.notify_all()

    def set_own(self, job_id: str, party: str, outcome: Outcome) -> None:
        """This party's own outcome."""
        with self._cond:
            job = self.get(job_id)
            job.own = job.outcomes[party] = outcome
            if isinstance(outcome, RemoteError):
                job.step = outcome.step or job.step
            self.store.set_outcome(job_id, party, outcome)
            self._cond.notify_all()

    def wait_change(self, job_id: str, seen_events: int, timeout_s: float, me: str | None = None) -> Job:
        """Block until job ``job_id`` is done or has more than ``seen_events`` events.

        Done is final here, or, at the initiator ``me``, every party's outcome collected.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                job = self.get(job_id)
                if (
                    job.collected
                    or (job.state.final and job.initiator != me)
                    or job.events_total > seen_events
                ):
                    return job
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return job
                self._cond.wait(remaining)

    def collected(self, job_id: str, seconds: float) -> None:
        """At the initiator: every party's outcome is in, after ``seconds`` of running."""
        with self._cond:
            job = self.get(job_id)
            job.collected = True
            self.store.set_fields(job_id, seconds=seconds)
            self._cond.notify_all()

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def running(self) -> list[Job]:
        with self._cond:
            return [j for j in self._jobs.values() if not j.state.final]

    def all(self) -> list[Job]:
        with self._cond:
            return list(self._jobs.values())

    def _trim(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.state.final]
        for key in finished[: max(0, len(finished) - self.keep)]:
            del self._jobs[key]


def outcomes_json(outcomes: dict[str, Outcome]) -> dict[str, Any]:
    """``{party: outcome_json}`` in the given order."""
    return {party: outcome_json(o) for party, o in outcomes.items()}
