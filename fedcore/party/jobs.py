"""Job records and their state machine, shared by the daemon's control and peer handlers.

A job moves PROPOSED -> RUNNING -> SUCCEEDED | FAILED, or ends PROPOSED -> REFUSED |
CANCELLED when a party refuses it or its initiator gives up before starting it. Every
transition is in ``TRANSITIONS``; any other move raises ``ProtocolError``.
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


class JobState(enum.Enum):
    PROPOSED = "proposed"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self not in (JobState.PROPOSED, JobState.RUNNING)


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PROPOSED: frozenset({JobState.RUNNING, JobState.REFUSED, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED}),
}


def new_job_id() -> str:
    """A fresh random job id like ``j-3f9a0c2e1b``."""
    return "j-" + secrets.token_hex(5)


@dataclass
class Job:
    """One job as this party knows it.

    ``events`` holds progress reports (dicts) in arrival order; ``results`` (at the
    initiator only) maps party -> wire-encoded result or ``{"error": ...}``.
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
    result: bytes | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    events_total: int = 0
    outcome: dict[str, str] | None = None

    def events_since(self, seen: int) -> list[dict[str, Any]]:
        """The events after the first ``seen`` (only the latest kept ones if many were dropped)."""
        fresh = self.events_total - seen
        return list(self.events[-fresh:]) if fresh > 0 else []

    def summary(self) -> dict[str, Any]:
        """A JSON-able view for ``job list`` / ``job status`` (no result payload)."""
        return {
            "job_id": self.job_id, "script": self.script, "sha256": self.sha256,
            "initiator": self.initiator, "parties": list(self.parties), "params": self.params,
            "seed": self.seed, "state": self.state.value, "step": self.step, "error": self.error,
            "created": self.created, "started": self.started, "ended": self.ended,
            "outcome": self.outcome,
        }


class JobTable:
    """Thread-safe jobs by id; keeps every live job and the last ``keep`` finished ones."""

    def __init__(self, keep: int = 200):
        self.keep = keep
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._cond = threading.Condition()

    def add(self, job: Job) -> Job:
        with self._cond:
            if job.job_id in self._jobs:
                raise ProtocolError(f"job {job.job_id} already exists here")
            self._jobs[job.job_id] = job
            self._trim()
            return job

    def get(self, job_id: str) -> Job:
        with self._cond:
            job = self._jobs.get(job_id)
        if job is None:
            raise ProtocolError(f"no job {job_id!r} here (unknown, or the daemon restarted)")
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
            self._cond.notify_all()
            return job

    def add_event(self, job_id: str, event: dict[str, Any], *, own: bool = True) -> None:
        """Record a progress event; ``own`` events (this party's) also set the job's step."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                return
            if own and event.get("step"):
                job.step = event["step"]
            job.events.append(event)
            job.events_total += 1
            del job.events[:-1000]  # bounded: a chatty script keeps only its latest reports
            self._cond.notify_all()

    def wait_change(self, job_id: str, seen_events: int, timeout_s: float) -> Job:
        """Block until job ``job_id`` is final or has more than ``seen_events`` events."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                job = self.get(job_id)
                if job.state.final or job.events_total > seen_events:
                    return job
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return job
                self._cond.wait(remaining)

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
