"""Simulation: every party of a job in one machine, over the same codec as the wire."""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedcore.context import DEFAULT_TIMEOUT_S, Context, ProgressSink
from fedcore.errors import ConfigError, FedcoreError
from fedcore.params import convert_params
from fedcore.party.messages import Ok, Outcome, RemoteError, outcome_json
from fedcore.runtime import Runtime, make_runtime
from fedcore.script import Script, load_script
from fedcore.testing import FaultPlan
from fedcore.transport import LocalNetwork, PartyKilled, Transport, check_party_names

Main = Callable[..., Any]
KILLED_BEFORE_START = "killed by fault injection before it started"
DEFAULT_OUTPUT_ROOT = Path("fedcore-output")  # relative to the working directory
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class SimResult:
    """Each party's outcome (``Ok`` with what ``main`` returned, or a ``RemoteError``), the wall
    time, the job id and the folder that holds every party's output folder
    (``<output_dir>/<party>/<job_id>``)."""

    outcomes: dict[str, Outcome]
    seconds: float
    job_id: str = "local"
    output_dir: Path | None = None

    @property
    def parties(self) -> dict[str, Any]:
        """party -> its result, or ``{"error": "Kind: message", "party", "step", "kind"}``."""
        return {
            name: outcome.result if isinstance(outcome, Ok) else outcome_json(outcome)
            for name, outcome in self.outcomes.items()
        }

    def errors(self) -> dict[str, str]:
        """party -> ``Kind: message`` for every party that failed."""
        return {name: str(o) for name, o in self.outcomes.items() if isinstance(o, RemoteError)}


def party_names(count: int | None, names: list[str] | None) -> tuple[str, ...]:
    """Default names ``p0..p{N-1}``, or the given names checked against ``count``."""
    if names:
        if count is not None and count != len(names):
            raise ConfigError(f"--parties {count} but {len(names)} party names were given")
        return check_party_names(names)
    if count is None or count < 1:
        raise ConfigError(f"a simulation needs at least one party, got {count!r}")
    return tuple(f"p{i}" for i in range(count))


def new_job_id(job_id: str | None = None) -> str:
    """``job_id`` checked as a folder name, or a fresh ``sim-YYYYmmdd-HHMMSS-xxxx``."""
    if job_id is None:
        return f"sim-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    if not _JOB_ID.match(job_id):
        raise ConfigError(
            f"job id {job_id!r}: expected 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return job_id


def party_output_dir(root: Path, party: str, job_id: str) -> Path:
    """A simulated party's output folder: its job folders are siblings, as at a daemon."""
    return root / party / job_id


def simulate(
    script: str | Path | Main,
    *,
    parties: int | None = 3,
    names: list[str] | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    kill: Mapping[str, int] | None = None,
    faults: FaultPlan | None = None,
    runtime: Runtime | None = None,
    transport: str = "local",
    data: Mapping[str, Mapping[str, Any]] | None = None,
    progress: ProgressSink | None = None,
    output_dir: str | Path | None = None,
    job_id: str | None = None,
) -> SimResult:
    """Run ``main(ctx, **params)`` of ``script`` once per party and collect the results.

    Args:
        script: a protocol script path, or a ``main`` function.
        parties: how many parties (names ``p0..``), unless ``names`` is given.
        names: explicit party names.
        params: keyword arguments for ``main``.
        seed: job seed; each party's ``ctx.rng`` derives from it.
        timeout_s: default deadline of every ``recv``.
        kill: party -> K: the party dies abruptly after sending K messages.
        faults: a full fault plan (``kill`` is merged into it).
        runtime: a shared runtime; by default one process pool sized to the machine.
        transport: ``local`` (in memory) or ``grpc`` (mTLS on loopback).
        data: party -> {source name: path or value} for ``ctx.data``.
        progress: receives every party's progress events.
        output_dir: each party's files go under ``<output_dir>/<party>/<job_id>/`` (made only
            when the script writes; default ``./fedcore-output``).
        job_id: names the run and its output folders (default ``sim-<time>-<random>``).

    Raises:
        ConfigError: a bad script, parameter (checked against ``main``'s annotations before any
            party starts), party name, fault or job id.
    """
    main, module_name, path = _resolve(script, dict(params or {}))
    params = convert_params(main, dict(params or {}))
    job = new_job_id(job_id)
    root = Path(output_dir if output_dir is not None else DEFAULT_OUTPUT_ROOT).absolute()
    all_names = party_names(parties if not names else len(names), names)
    plan = _merge_kill(faults, kill, all_names)
    own_runtime = runtime is None
    runtime = runtime or make_runtime("processes")
    if module_name and path:
        runtime.register_script(module_name, str(path))
    try:
        with _open_network(transport, all_names, plan) as transports:
            run = _Run(main, params, seed, timeout_s, job, root, data, progress)
            return _run_parties(run, transports, runtime, plan)
    finally:
        if own_runtime:
            runtime.close()


def _resolve(script: str | Path | Main, params: Mapping[str, Any]) -> tuple[Main, str | None, Path | None]:
    if callable(script):
        return script, None, None
    loaded: Script = load_script(script)
    loaded.check_params(params)
    return loaded.main, loaded.module_name, loaded.path


def _merge_kill(
    faults: FaultPlan | None, kill: Mapping[str, int] | None, names: tuple[str, ...]
) -> FaultPlan | None:
    kill = dict(kill or {})
    for name in kill:
        if name not in names:
            raise ConfigError(f"--kill names {name!r}, which is not a party of this run {list(names)[:5]}...")
    if not kill:
        return faults
    if faults is None:
        return FaultPlan(kill=kill)
    faults.kill = {**faults.kill, **kill}
    return faults


@contextlib.contextmanager
def _local_network(names: tuple[str, ...], plan: FaultPlan | None) -> Iterator[dict[str, Transport]]:
    network = LocalNetwork(names, faults=plan)
    yield {name: network.transport(name) for name in network.parties}


def _open_network(kind: str, names: tuple[str, ...], plan: FaultPlan | None) -> Any:
    if kind == "local":
        return _local_network(names, plan)
    if kind == "grpc":
        from fedcore.transport.grpc_sim import grpc_network

        return grpc_network(names, plan)
    raise ConfigError(f"unknown transport {kind!r}: use local or grpc")


@dataclass(frozen=True)
class _Run:
    """What every party of one simulated job shares."""

    main: Main
    params: dict[str, Any]
    seed: int
    timeout_s: float
    job_id: str
    output_root: Path
    data: Mapping[str, Mapping[str, Any]] | None
    progress: ProgressSink | None


def _run_parties(
    run: _Run, transports: dict[str, Transport], runtime: Runtime, plan: FaultPlan | None
) -> SimResult:
    results: dict[str, Outcome] = {}
    start = time.perf_counter()
    threads = []
    for name, transport in transports.items():
        if plan is not None and plan.kill.get(name) == 0:
            transport.abort(None, KILLED_BEFORE_START)
            results[name] = RemoteError(name, None, "PartyKilled", KILLED_BEFORE_START)
            continue
        ctx = Context(
            name,
            transport,
            runtime,
            params=run.params,
            seed=run.seed,
            timeout_s=run.timeout_s,
            job_id=run.job_id,
            data=(run.data or {}).get(name),
            progress_sink=run.progress,
            output_dir=party_output_dir(run.output_root, name, run.job_id),
        )
        thread = threading.Thread(
            target=_run_one, args=(run.main, ctx, run.params, results), name=f"party-{name}"
        )
        threads.append(thread)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = {name: results[name] for name in transports}
    return SimResult(ordered, time.perf_counter() - start, run.job_id, run.output_root)


def _run_one(main: Main, ctx: Context, params: dict[str, Any], results: dict[str, Outcome]) -> None:
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
