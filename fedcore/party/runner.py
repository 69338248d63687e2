"""The job manager: proposing jobs to peers, answering proposals, running this party's side.

Peer control messages (``PeerNode.call`` kinds; bodies are ``fedcore.wire`` maps; the
sender's identity always comes from its TLS certificate, never from a body):

- ``job.propose`` (initiator -> party): script name, SHA-256, params, seed, parties, job id.
  The party checks its policy (``Policy.check``), loads its own copy of the script, checks
  the params and opens the job's transport, or raises ``PolicyRefused``/``ConfigError``.
- ``job.start`` / ``job.cancel`` (initiator -> party): run, or forget, a proposed job.
- ``job.wait`` (initiator -> party): long poll; returns new progress events, and the
  party's result or error once its side has finished. A party that does not answer for
  ``peer_timeout_s`` is reported lost.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedcore import wire
from fedcore.context import Context, ProgressEvent
from fedcore.errors import FedcoreError, PolicyRefused, ProtocolError
from fedcore.party.config import PartyConfig
from fedcore.party.jobs import Job, JobState, JobTable
from fedcore.party.policy import Policy
from fedcore.results import jsonable
from fedcore.runtime import Runtime
from fedcore.script import Script, load_script
from fedcore.transport import Transport, check_party_names

log = logging.getLogger("fedcore.party")

PROPOSAL_TTL_S = 60.0  # a proposed job never started is dropped after this long
WAIT_POLL_S = 2.0  # longest a job.wait long poll holds a peer's server thread


def encode_result(value: Any) -> bytes:
    """A party's result as wire bytes; values the codec refuses go as their JSON rendering."""
    try:
        return wire.encode(value)
    except (TypeError, ValueError, FedcoreError):
        return wire.encode(jsonable(value))


def error_text(exc: BaseException) -> str:
    """``Type: message`` plus, for a script's own bug, the file and line it came from."""
    text = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, FedcoreError):
        frames = traceback.extract_tb(exc.__traceback__)
        if frames:
            text += f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return text


class JobRunner:
    """Runs this party's side of jobs and answers peers' job messages.

    Args:
        config: this party's configuration.
        node: the started ``PeerNode`` (``open_job``, ``close_job``, ``call``).
        runtime_factory: builds the local runtime on first use.
    """

    def __init__(self, config: PartyConfig, node: Any, runtime_factory: Callable[[], Runtime]):
        self.config = config
        self.me = config.party_id
        self.node = node
        self.policy = Policy(self.me, config.policy)
        self.jobs = JobTable()
        self.closing = False
        self._runtime_factory = runtime_factory
        self._runtime: Runtime | None = None
        self._lock = threading.Lock()
        self._transports: dict[str, Transport] = {}
        self._scripts: dict[str, Script] = {}
        self._threads: dict[str, threading.Thread] = {}

    # ------------------------------------------------------------------ shared steps

    def runtime(self) -> Runtime:
        with self._lock:
            if self._runtime is None:
                self._runtime = self._runtime_factory()
            return self._runtime

    def close_runtime(self) -> None:
        with self._lock:
            runtime, self._runtime = self._runtime, None
        if runtime is not None:
            runtime.close()

    def prepare(self, job: Job, initiator: str) -> None:
        """Policy check, script load, params check, job transport: a job ready to start.

        Raises:
            PolicyRefused: the policy refuses it (or the daemon is shutting down).
            ConfigError: bad parameters for the script.
        """
        if self.closing:
            raise PolicyRefused(f"{self.me} refuses the job: its daemon is shutting down")
        if self.me not in job.parties:
            raise ProtocolError(f"job {job.job_id} does not include {self.me} among {list(job.parties)}")
        allowed = self.policy.check(job.script, job.sha256, initiator)
        script = load_script(allowed.path)
        script.check_params(job.params)
        self.jobs.add(job)
        transport = self.node.open_job(job.job_id, list(job.parties))
        with self._lock:
            self._transports[job.job_id] = transport
            self._scripts[job.job_id] = script
        self.log(job.job_id, f"accepted {job.script} from {initiator} (parties {','.join(job.parties)})")

    def start(self, job_id: str) -> None:
        """Start this party's side of a prepared job in its own thread."""
        job = self.jobs.move(job_id, JobState.RUNNING)
        thread = threading.Thread(target=self._run_party, args=(job,), name=f"job-{job_id}", daemon=True)
        with self._lock:
            self._threads[job_id] = thread
        thread.start()
        self.log(job_id, "started")

    def cancel(self, job_id: str, state: JobState = JobState.CANCELLED, reason: str = "") -> None:
        job = self.jobs.find(job_id)
        if job is not None and job.state is JobState.PROPOSED:
            self.jobs.move(job_id, state, error=reason or None)
            self._release(job_id)
            self.log(job_id, f"{state.value}{': ' + reason if reason else ''}")

    def abort(self, job_id: str, step: str | None, reason: str) -> None:
        """Abort this party's side of a running job: the others fail fast, naming this party."""
        with self._lock:
            transport = self._transports.get(job_id)
        if transport is not None:
            transport.abort(step, reason)

    def abort_all(self, reason: str) -> None:
        """Abort every running job (daemon shutdown)."""
        for job in self.jobs.running():
            self.abort(job.job_id, job.step, reason)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for running jobs to end; True when none is left."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                threads = list(self._threads.values())
            if not threads:
                return True
            threads[0].join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            return not self._threads

    def log(self, job_id: str, message: str) -> None:
        log.info("job=%s party=%s %s", job_id, self.me, message)

    def _run_party(self, job: Job) -> None:
        with self._lock:
            transport = self._transports[job.job_id]
            script = self._scripts[job.job_id]

        def sink(event: ProgressEvent) -> None:
            self.jobs.add_event(job.job_id, {
                "party": event.party, "step": event.step, "done": event.done,
                "total": event.total, "message": event.message,
            })

        ctx = Context(
            self.me, transport, self.runtime(), params=job.params, seed=job.seed, job_id=job.job_id,
            data={k: str(v) for k, v in self.config.data.items()}, progress_sink=sink,
            timeout_s=job.timeout_s,
        )
        try:
            self.runtime().register_script(script.module_name, str(script.path))
            result = script.main(ctx, **job.params)
            transport.finish()
            job.result = encode_result(result)
            self.jobs.move(job.job_id, JobState.SUCCEEDED)
            self.log(job.job_id, "succeeded")
        except Exception as exc:  # the script's failure ends this party's side, never the daemon
            message = error_text(exc)
            job.step = ctx.step
            transport.abort(ctx.step, message)
            self.jobs.move(job.job_id, JobState.FAILED, error=message)
            self.log(job.job_id, f"failed at step {ctx.step!r}: {message}")
        finally:
            self._release(job.job_id, linger_s=self.config.limits.peer_timeout_s)

    def _release(self, job_id: str, linger_s: float = 0.0) -> None:
        """Close the job's transport, after ``linger_s`` so its last messages get out."""
        with self._lock:
            transport = self._transports.pop(job_id, None)
            self._scripts.pop(job_id, None)
            self._threads.pop(job_id, None)
        if transport is None:
            return

        def close() -> None:
            transport.close()  # the node forgets the job: later messages for it are refused

        if linger_s > 0:
            timer = threading.Timer(linger_s, close)
            timer.daemon = True
            timer.start()
        else:
            close()

    # ------------------------------------------------------------------ peer side

    def handle_peer(self, src: str, kind: str, body: bytes) -> bytes:
        """``control_handler`` of the PeerNode: ``src`` comes from the peer's certificate."""
        request = wire.decode(body)
        if not isinstance(request, dict) or not isinstance(request.get("job_id"), str):
            raise ProtocolError(f"{kind} from {src}: expected a map with a job_id")
        handlers = {
            "job.propose": self._on_propose, "job.start": self._on_start,
            "job.cancel": self._on_cancel, "job.wait": self._on_wait,
        }
        handler = handlers.get(kind)
        if handler is None:
            raise ProtocolError(f"{self.me} does not know the control message {kind!r} from {src}")
        return wire.encode(handler(src, request))

    def _on_propose(self, src: str, req: dict[str, Any]) -> dict[str, Any]:
        job = job_from_proposal(req, initiator=src)
        try:
            self.prepare(job, src)
        except FedcoreError as exc:
            self.log(job.job_id, f"refused {job.script!r} from {src}: {exc}")
            raise
        timer = threading.Timer(PROPOSAL_TTL_S, self.cancel, args=(job.job_id, JobState.CANCELLED,
                                                                   "never started by its initiator"))
        timer.daemon = True
        timer.start()
        return {"accepted": True}

    def _own_job(self, src: str, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if src != job.initiator:
            raise ProtocolError(f"{src} is not the initiator of job {job_id} ({job.initiator} is)")
        return job

    def _on_start(self, src: str, req: dict[str, Any]) -> dict[str, Any]:
        self._own_job(src, req["job_id"])
        self.start(req["job_id"])
        return {"started": True}

    def _on_cancel(self, src: str, req: dict[str, Any]) -> dict[str, Any]:
        self._own_job(src, req["job_id"])
        self.cancel(req["job_id"], reason=f"cancelled by {src}")
        return {"cancelled": True}

    def _on_wait(self, src: str, req: dict[str, Any]) -> dict[str, Any]:
        self._own_job(src, req["job_id"])
        seen = req.get("seen", 0)
        wait_s = req.get("wait_s", WAIT_POLL_S)
        if not isinstance(seen, int) or not isinstance(wait_s, (int, float)):
            raise ProtocolError("job.wait: seen must be an int and wait_s a number")
        job = self.jobs.wait_change(req["job_id"], seen, min(max(float(wait_s), 0.0), WAIT_POLL_S))
        return {
            "state": job.state.value, "events": job.events_since(seen), "total": job.events_total,
            "result": job.result if job.state is JobState.SUCCEEDED else None,
            "error": job.error, "step": job.step,
        }


def job_from_proposal(req: dict[str, Any], *, initiator: str) -> Job:
    """Validate a ``job.propose`` body into a Job (the initiator is the certified sender)."""
    checks = {
        "job_id": str, "script": str, "sha256": str, "params": dict, "seed": int,
        "parties": list, "timeout_s": (int, float),
    }
    for key, kind in checks.items():
        if not isinstance(req.get(key), kind) or isinstance(req.get(key), bool):
            raise ProtocolError(f"job.propose from {initiator}: {key} is missing or not {kind}")
    parties = check_party_names([str(p) for p in req["parties"]])
    if initiator not in parties:
        raise ProtocolError(f"job.propose from {initiator}: the initiator is not a party of the job")
    return Job(
        job_id=req["job_id"], script=req["script"], sha256=req["sha256"], initiator=initiator,
        parties=parties, params=dict(req["params"]), seed=req["seed"], timeout_s=float(req["timeout_s"]),
    )

