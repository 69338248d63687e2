"""Simulation: every party of a job in one machine, over the same codec as the wire."""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedcore.context import DEFAULT_TIMEOUT_S, Context, ProgressSink
from fedcore.errors import ConfigError, FedcoreError
from fedcore.runtime import Runtime, make_runtime
from fedcore.script import Script, load_script
from fedcore.testing import FaultPlan
from fedcore.transport import LocalNetwork, PartyKilled, Transport, check_party_names

Main = Callable[..., Any]


@dataclass
class SimResult:
    """What each party's ``main`` returned (or ``{"error": ...}``) and the wall time."""

    parties: dict[str, Any]
    seconds: float

    def errors(self) -> dict[str, str]:
        return {
            name: result["error"]
            for name, result in self.parties.items()
            if isinstance(result, dict) and set(result) == {"error"}
        }


def party_names(count: int | None, names: list[str] | None) -> tuple[str, ...]:
    """Default names ``p0..p{N-1}``, or the given names checked against ``count``."""
    if names:
        if count is not None and count != len(names):
            raise ConfigError(f"--parties {count} but {len(names)} party names were given")
        return check_party_names(names)
    if count is None or count < 1:
        raise ConfigError(f"a simulation needs at least one party, got {count!r}")
    return tuple(f"p{i}" for i in range(count))


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
    """
    params = dict(params or {})
    main, module_name, path = _resolve(script, params)
    all_names = party_names(parties if not names else len(names), names)
    plan = _merge_kill(faults, kill, all_names)
    own_runtime = runtime is None
    runtime = runtime or make_runtime("processes")
    if module_name and path:
        runtime.register_script(module_name, str(path))
    try:
        with _open_network(transport, all_names, plan) as transports:
            return _run_parties(main, transports, runtime, plan, params, seed, timeout_s, data, progress)
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


def _run_parties(
    main: Main,
    transports: dict[str, Transport],
    runtime: Runtime,
    plan: FaultPlan | None,
    params: dict[str, Any],
    seed: int,
    timeout_s: float,
    data: Mapping[str, Mapping[str, Any]] | None,
    progress: ProgressSink | None,
) -> SimResult:
    results: dict[str, Any] = {}
    start = time.perf_counter()
    threads = []
    for name, transport in transports.items():
        if plan is not None and plan.kill.get(name) == 0:
            transport.abort(None, "killed by fault injection before it started")
            results[name] = {"error": "killed by fault injection before it started"}
            continue
        ctx = Context(
            name, transport, runtime, params=params, seed=seed, timeout_s=timeout_s,
            data=(data or {}).get(name), progress_sink=progress,
        )
        thread = threading.Thread(target=_run_one, args=(main, ctx, params, results), name=f"party-{name}")
        threads.append(thread)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = {name: results[name] for name in transports}
    return SimResult(ordered, time.perf_counter() - start)


def _run_one(main: Main, ctx: Context, params: dict[str, Any], results: dict[str, Any]) -> None:
    try:
        results[ctx.party] = main(ctx, **params)
        ctx.transport.finish()
    except PartyKilled:
        results[ctx.party] = {"error": f"killed by fault injection (at step {ctx.step!r})"}
    except FedcoreError as exc:
        _fail(ctx, results, exc)
    except Exception as exc:  # the script's own bug: report it with where it happened
        _fail(ctx, results, exc, detail=_last_frame(exc))


def _fail(ctx: Context, results: dict[str, Any], exc: BaseException, detail: str = "") -> None:
    message = f"{type(exc).__name__}: {exc}{detail}"
    results[ctx.party] = {"error": message}
    ctx.transport.abort(ctx.step, message)


def _last_frame(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {Path(last.filename).name}:{last.lineno})"
