"""What every engine shares: one job's settings, a party's context, and running one party."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedcore.context import Context, ProgressSink
from fedcore.errors import FedcoreError
from fedcore.party.messages import Ok, Outcome, RemoteError
from fedcore.runtime import Runtime
from fedcore.transport import PartyKilled, Transport

Main = Callable[..., Any]
KILLED_BEFORE_START = "killed by fault injection before it started"


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
    data: Mapping[str, Mapping[str, Any]] | None
    progress: ProgressSink | None

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


def killed_before_start(name: str, transport: Transport) -> Outcome:
    transport.abort(None, KILLED_BEFORE_START)
    return RemoteError(name, None, "PartyKilled", KILLED_BEFORE_START)


def run_one(main: Main, ctx: Context, params: dict[str, Any], results: dict[str, Outcome]) -> None:
    """Run one party's ``main`` and record its outcome; tell the others how it ended."""
    try:
        results[ctx.party] = Ok(main(ctx, **params))
        ctx.transport.finish()
    except PartyKilled:
        message = f"killed by fault injection (at step {ctx.step!r})"
        results[ctx.party] = RemoteError(ctx.party, ctx.step, "PartyKilled", message)
    except FedcoreError as exc:
        _fail(ctx, results, exc)
    except Exception as exc:  # the script's own bug: report it with where it happened
        _fail(ctx, results, exc, detail=_last_frame(exc))


def _fail(ctx: Context, results: dict[str, Outcome], exc: BaseException, detail: str = "") -> None:
    outcome = RemoteError.from_exception(ctx.party, ctx.step, exc, detail)
    results[ctx.party] = outcome
    ctx.transport.abort(ctx.step, str(outcome))


def _last_frame(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {Path(last.filename).name}:{last.lineno})"
