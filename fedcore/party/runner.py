"""The job manager: answering peers' job messages and running this party's side of jobs.

Peer control messages are the typed ones of ``fedcore.party.messages`` (Control call kind =
``MessageKind`` value, body = ``messages.encode``); the sender's identity always comes from its
TLS certificate, never from a body:

- PROPOSE -> ACCEPT | REFUSE: the party checks its policy (``Policy.check``), loads its own
  copy of the script, checks the params and opens the job's transport.
- START / CANCEL / ABORT (initiator only): run, cancel (recorded ``cancelled``) or fail a job.
- WAIT -> STATUS: long poll; new progress events, and this party's outcome once its side ended.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from fedcore import wire
from fedcore.context import Context, ProgressEvent
from fedcore.errors import FedcoreError, PolicyRefused, ProtocolError
from fedcore.params import convert_params
from fedcore.party import messages as m
from fedcore.party.config import PartyConfig
from fedcore.party.jobs import Job, JobState, JobTable
from fedcore.party.metered import PartyTransport
from fedcore.party.metrics import DaemonMetrics
from fedcore.party.policy import Policy
from fedcore.party.proposals import Deadlines, ProposalBook
from fedcore.party.store import JobStore
from fedcore.results import jsonable
from fedcore.runtime import Runtime
from fedcore.script import Script, load_script
from fedcore.sim._party import run_party
from fedcore.transport._guard import RateLimit, safe

log = logging.getLogger("fedcore.party")

MAX_SCRIPT_NAME = 256  # characters in a proposed script name
WAIT_POLL_S = 2.0  # longest a job.wait long poll holds a peer's server thread
_CONTEXT_ARGS = frozenset(inspect.signature(Context).parameters)


class JobRunner:
    """Runs this party's side of jobs and answers peers' job messages.

    Args:
        config: this party's configuration.
        node: the started ``PeerNode`` (``open_job``, ``call``).
        runtime_factory: builds the local runtime on first use.
        store: the party's job store.
        metrics: the daemon's Prometheus metrics.
    """

    def __init__(
        self,
        config: PartyConfig,
        node: Any,
        runtime_factory: Callable[[], Runtime],
        store: JobStore,
        metrics: DaemonMetrics,
    ):
        self.config = config
        self.me = config.party_id
        self.node = node
        self.policy = Policy(self.me, config.policy)
        self.store = store
        self.metrics = metrics
        self.jobs = JobTable(store)
        self.closing = False
        self._runtime_factory = runtime_factory
        self._runtime: Runtime | None = None
        self._lock = threading.Lock()
        self._transports: dict[str, PartyTransport] = {}
        self._scripts: dict[str, Script] = {}
        self._threads: dict[str, threading.Thread] = {}
        limits = config.limits
        self.proposals = ProposalBook(self.me, limits.pending_proposals, limits.pending_proposals_per_peer)
        self.deadlines = Deadlines(f"fc-deadlines-{self.me}")  # one thread for every timer
        self._refusal_logs = RateLimit()

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
        # every party checks the values against its own copy of main(): rounds=2.5 is refused here
        job.params = convert_params(script.main, job.params)
        self.jobs.add(job)
        transport = PartyTransport(self.node.open_job(job.job_id, list(job.parties)), self.metrics)
        with self._lock:
            self._transports[job.job_id] = transport
            self._scripts[job.job_id] = script
        self.log(job.job_id, f"accepted {job.script} from {initiator} (parties {','.join(job.parties)})")

    def start(self, job_id: str) -> None:
        """Start this party's side of a prepared job in its own thread."""
        job = self.jobs.move(job_id, JobState.RUNNING)
        self.proposals.settle(job_id)
        thread = threading.Thread(target=self._run_party, args=(job,), name=f"job-{job_id}", daemon=True)
        with self._lock:
            self._threads[job_id] = thread
        thread.start()
        self.log(job_id, "started")

    def end(self, job_id: str, state: JobState, reason: str, kind: str) -> bool:
        """End this party's side now as ``state`` (cancelled, failed, interrupted); False if it had ended.

        A proposed job is released; a running one records the outcome and its script's waits
        fail at once (a script busy computing ends at its next message, its result dropped).
        """
        job = self.jobs.find(job_id)
        self.proposals.settle(job_id)
        if job is None or job.state.final:
            return False
        was_running = job.state is JobState.RUNNING
        if not self.jobs.finish(
            job_id, state, self.me, m.RemoteError(self.me, job.step, kind, reason), reason
        ):
            return False
        self.log(job_id, f"{state.value}: {reason}")
        if was_running:
            with self._lock:
                transport = self._transports.get(job_id)
            if transport is not None:
                transport.stop(job.step, reason)
        else:
            self._release(job_id)
        return True

    def leave(self, reason: str) -> list[str]:
        """Leave every running job: peers are told (a dropout to them), this side stops."""
        left = []
        for job in self.jobs.running():
            with self._lock:
                transport = self._transports.get(job.job_id)
            if transport is not None and job.state is JobState.RUNNING:
                transport.abort(job.step, reason)  # the peers' mailboxes mark this party dropped
            if self.end(job.job_id, JobState.INTERRUPTED, reason, "PartyDropped"):
                left.append(job.job_id)
        return left

    def abort(self, job_id: str, step: str | None, reason: str) -> None:
        """Abort this party's side of a running job: the others fail fast, naming this party."""
        with self._lock:
            transport = self._transports.get(job_id)
        if transport is not None:
            transport.abort(step, reason)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for running jobs' threads to end; True when none is left."""
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
        self.store.add_log(job_id, message)

    def _context(self, job: Job, transport: PartyTransport) -> Context:
        def sink(event: ProgressEvent) -> None:
            progress = m.Progress(
                event.party, event.step, event.done, event.total, event.message, time.time()
            )
            self.jobs.add_event(job.job_id, progress)

        def metrics_sink(round_: int, values: dict[str, Any]) -> None:
            self.store.add_metrics(job.job_id, self.me, int(round_), dict(values))
            seconds = values.get("seconds")
            if isinstance(seconds, (int, float)):
                self.metrics.round_done(job.script, float(seconds))

        extra: dict[str, Any] = {}
        if "metrics_sink" in _CONTEXT_ARGS:  # per-round metrics, where Context offers them
            extra["metrics_sink"] = metrics_sink
        if "output_root" in _CONTEXT_ARGS:  # this party's own folder; an initiator never picks it
            extra["output_dir"] = self.store.folder / "jobs" / job.job_id / "output"
            extra["output_root"] = self.store.folder / "jobs"
        return Context(
            self.me,
            transport,
            self.runtime(),
            params=job.params,
            seed=job.seed,
            job_id=job.job_id,
            data={k: str(v) for k, v in self.config.data.items()},
            progress_sink=sink,
            timeout_s=job.timeout_s,
            **extra,
        )

    def _run_party(self, job: Job) -> None:
        with self._lock:
            transport = self._transports[job.job_id]
            script = self._scripts[job.job_id]
        ctx = self._context(job, transport)

        def main(ctx: Context, **params: Any) -> Any:  # a failed registration fails like the script
            self.runtime().register_script(script.module_name, str(script.path))
            return script.main(ctx, **params)

        try:
            # a cancelled side (stopped) does not abort: its peers were told by the cancel
            outcome = run_party(main, ctx, job.params, stopped=lambda: transport.stopped is not None)
            if isinstance(outcome, m.Ok):
                if self.jobs.finish(job.job_id, JobState.SUCCEEDED, self.me, m.Ok(wire_safe(outcome.result))):
                    self.log(job.job_id, "succeeded")
            elif self.jobs.finish(job.job_id, JobState.FAILED, self.me, outcome, str(outcome)):
                self.log(job.job_id, f"failed at step {outcome.step!r}: {outcome}")
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
        if linger_s > 0:
            self.deadlines.after(linger_s, transport.close)  # then the node refuses its messages
        else:
            transport.close()

    # ------------------------------------------------------------------ peer side

    def handle_peer(self, src: str, kind: str, body: bytes) -> bytes:
        """``control_handler`` of the PeerNode: ``src`` comes from the peer's certificate."""
        message = m.decode(body, m.kind_of(kind))
        if isinstance(message, m.Propose):
            return m.encode(self._on_propose(src, message))
        if isinstance(message, m.Wait):
            return m.encode(self._on_wait(src, message))
        if isinstance(message, (m.Start, m.Cancel, m.Abort)):
            self._own_job(src, message.job_id)
            if isinstance(message, m.Start):
                if self.jobs.get(message.job_id).state is JobState.PROPOSED:  # a retried start is a no-op
                    self.start(message.job_id)
            elif isinstance(message, m.Cancel):
                self.end(message.job_id, JobState.CANCELLED, message.reason, "Cancelled")
            else:
                self.end(message.job_id, JobState.FAILED, message.reason, "Aborted")
            return m.encode(m.Accept(message.job_id))
        raise ProtocolError(f"{self.me} does not take a {kind} message from {src}")

    def _on_propose(self, src: str, proposal: m.Propose) -> m.Accept | m.Refuse:
        job = job_from_proposal(proposal, initiator=src)
        if self._known_proposal(job):  # a retry after a lost reply (a connection reset)
            return m.Accept(job.job_id)
        try:
            self.proposals.admit(src, job.job_id)
            self.prepare(job, src)
        except FedcoreError as exc:
            self.proposals.settle(job.job_id)
            self.metrics.refused(exc)
            self._log_refusal(src, job, exc)
            return m.Refuse(job.job_id, self.me, type(exc).__name__, str(exc))
        self.deadlines.after(self.config.limits.proposal_ttl_s, lambda: self._expire(job.job_id))
        return m.Accept(job.job_id)

    def _log_refusal(self, src: str, job: Job, exc: FedcoreError) -> None:
        allowed, dropped = self._refusal_logs.allow(src)  # a peer's flood cannot fill the disk
        if allowed:
            more = f" ({dropped} more refusals not logged)" if dropped else ""
            log.info(
                "job=%s party=%s refused %s from %s: %s%s",
                job.job_id, self.me, safe(job.script), src, safe(exc, 200), more,
            )  # fmt: skip

    def _expire(self, job_id: str) -> None:
        job = self.jobs.find(job_id)
        if job is not None and job.state is JobState.PROPOSED:
            self.end(job_id, JobState.CANCELLED, "never started by its initiator", "Cancelled")

    def _known_proposal(self, job: Job) -> bool:
        known = self.jobs.find(job.job_id)
        return (
            known is not None
            and known.state is JobState.PROPOSED
            and known.initiator == job.initiator
            and known.sha256 == job.sha256
        )

    def _own_job(self, src: str, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if src != job.initiator:
            raise ProtocolError(f"{src} is not the initiator of job {job_id} ({job.initiator} is)")
        return job

    def _on_wait(self, src: str, wait: m.Wait) -> m.Status:
        self._own_job(src, wait.job_id)
        job = self.jobs.wait_change(wait.job_id, wait.seen, min(float(wait.wait_s), WAIT_POLL_S))
        return m.Status(
            job.job_id,
            job.state.value,
            tuple(job.events_since(wait.seen)),
            job.events_total,
            job.step,
            job.own if job.state.final else None,
        )


def wire_safe(value: Any) -> Any:
    """``value`` if the codec takes it, else its JSON rendering (a script may return anything)."""
    try:
        wire.encode(value)
        return value
    except (TypeError, ValueError, FedcoreError):
        return jsonable(value)


def job_from_proposal(proposal: m.Propose, *, initiator: str) -> Job:
    """A validated proposal as a Job (the initiator is the certified sender)."""
    if len(proposal.script) > MAX_SCRIPT_NAME:
        raise ProtocolError(
            f"job.propose from {initiator}: a script name is at most {MAX_SCRIPT_NAME} characters"
        )
    if initiator not in proposal.parties:
        raise ProtocolError(f"job.propose from {initiator}: the initiator is not a party of the job")
    return Job(
        job_id=proposal.job_id,
        script=proposal.script,
        sha256=proposal.sha256,
        initiator=initiator,
        parties=proposal.parties,
        params=dict(proposal.params),
        seed=proposal.seed,
        timeout_s=float(proposal.timeout_s),
    )
