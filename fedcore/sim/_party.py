"""Running one party: what every engine shares, and what the daemon's job runner uses too.

``run_party`` is the one place a party's script runs to its end: ``main(ctx, **params)``, then
the transport is told how it ended (``finish`` after a return, ``abort`` after a failure, so
the others fail fast naming this party and step; nothing after a fault-injected kill, whose
fault already dropped it), and the end is one ``Outcome``. The cooperative, thread and Ray
engines call it for each simulated party, ``fedcore.party.runner`` for its daemon's side of a job.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedcore.context import Context, ProgressSink
from fedcore.errors import FedcoreError
from fedcore.results import Ok, Outcome, RemoteError
from fedcore.runtime import Runtime
from fedcore.sim.faults import PartyKilled
from fedcore.transport import Transport

Main = Callable[..., Any]
KILLED_BEFORE_START = "killed by fault injection before it started"


def run_party(
    main: Main, ctx: Context, params: Mapping[str, Any], *, stopped: Callable[[], bool] | None = None
) -> Outcome:
    """Run ``main(ctx, **params)`` for ``ctx.party`` and end its side of the job.

    Args:
        main: the script's ``main``.
        ctx: the party's context; its transport is finished or aborted here.
        params: keyword arguments for ``main``, already converted.
        stopped: whether this side was stopped from outside (a cancelled daemon job): then a
            failure is not sent to the others as an abort, since they were told already.

    Returns:
        ``Ok`` with what ``main`` returned, or a ``RemoteError`` naming the party, the step and
        the error (for the script's own bug, the file and line it came from).
    """
    try:
        result = main(ctx, **params)
        ctx.transport.finish()
        return Ok(result)
    except PartyKilled:
        message = f"killed by fault injection (at step {ctx.step!r})"
        return RemoteError(ctx.party, ctx.step, "PartyKilled", message)
    except Exception as exc:  # the script's failure ends this party's side, never its host
        outcome = RemoteError.from_exception(ctx.party, ctx.step, exc, error_detail(exc))
        if stopped is None or not stopped():
            ctx.transport.abort(ctx.step, str(outcome))
        return outcome


def killed_before_start(name: str, transport: Transport) -> Outcome:
    """The outcome of a party that fault injection kills before it starts (``kill`` K=0); the
    others learn it at once."""
    transport.abort(None, KILLED_BEFORE_START)
    return RemoteError(name, None, "PartyKilled", KILLED_BEFORE_START)


def error_detail(exc: BaseException) -> str:
    """For a script's own bug (not a FedcoreError), `` (at file.py:LINE)`` where it came from."""
    if isinstance(exc, FedcoreError):
        return ""
    frames = traceback.extract_tb(exc.__traceback__)
    return f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""


def party_output_dir(root: Path, party: str, job_id: str) -> Path:
    """A simulated party's output folder: its job folders are siblings, as at a daemon."""
    return root / party / job_id


@dataclass(frozen=True)
class Run:
    """What every party of one simulated job shares."""

    main: Main
    params: dict[str, Any]
    seed: int
    timeout_s: float
    job_id: str
    output_root: Path
    data: Mapping[str, Mapping[str, Any]] | None = None
    progress: ProgressSink | None = None

    def context(self, name: str, transport: Transport, runtime: Runtime) -> Context:
        return Context(
            name,
            transport,
            runtime,
            params=self.params,
            seed=self.seed,
            timeout_s=self.timeout_s,
            job_id=self.job_id,
            data=(self.data or {}).get(name),
            progress_sink=self.progress,
            output_dir=party_output_dir(self.output_root, name, self.job_id),
        )

    def party(
        self, name: str, transport: Transport, runtime: Runtime, results: dict[str, Outcome]
    ) -> Callable[[], None]:
        """The body of party ``name``'s thread or greenlet: it records its outcome in ``results``."""
        ctx = self.context(name, transport, runtime)

        def body() -> None:
            results[name] = run_party(self.main, ctx, self.params)

        return body
