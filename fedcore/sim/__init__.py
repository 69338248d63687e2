"""Simulation: every party of a job in one machine (or a Ray cluster), over the same codec as
the wire, with faults injected on purpose. The one home of simulation:

- ``simulate`` (here): the entry point of every engine; ``fedcore simulate`` calls it once.
- ``fedcore.sim.faults``: ``FaultPlan``, ``PartyKilled``, the faulty in-memory network and
  the ``KillSwitch`` for real transports.
- ``fedcore.sim._party``: ``run_party``, one party's script run to its end, which the
  daemon's job runner uses too.
- ``fedcore.sim.loopback``: ``--transport grpc``, real mTLS nodes on 127.0.0.1.
- ``fedcore.sim.ray``: ``--engine ray``, each party a Ray actor (``simulate_on_ray``).

Three engines run the parties (``engine=``):

- ``coop`` (the default with the in-memory transport): each party is a greenlet; the parties
  are spread over one worker process per core from 2,000 parties up. A waiting party costs a
  parked greenlet, not an OS thread, so 100,000 parties fit in memory and end in O(N).
  Waits that yield: ``ctx.recv``/``gather``/``transport.recv`` and the futures of
  ``ctx.runtime``. See ``fedcore.sim._hub`` for what a script must not do under it.
- ``threads``: one OS thread per party, as before; for ``transport="grpc"`` and for scripts
  that wait on each other outside ``ctx`` (a lock held across ``recv``, a shared queue).
- ``ray``: each party a Ray actor on a cluster, the parties over mTLS gRPC (``fedcore.sim.ray``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from fedcore.context import DEFAULT_TIMEOUT_S, ProgressSink
from fedcore.errors import ConfigError
from fedcore.params import convert_params
from fedcore.runtime import Runtime, make_runtime
from fedcore.script import Script, load_script
from fedcore.sim._job import DEFAULT_OUTPUT_ROOT, SimResult, new_job_id, party_names
from fedcore.sim._party import KILLED_BEFORE_START, Main, Run, party_output_dir, run_party
from fedcore.sim.faults import FaultPlan, FaultyNetwork, PartyKilled
from fedcore.sim.ray import simulate_on_ray
from fedcore.transport import Transport

ENGINES = ("coop", "threads", "ray")
__all__ = [
    "DEFAULT_OUTPUT_ROOT",
    "ENGINES",
    "KILLED_BEFORE_START",
    "FaultPlan",
    "PartyKilled",
    "SimResult",
    "new_job_id",
    "party_names",
    "party_output_dir",
    "run_party",
    "simulate",
    "simulate_on_ray",
]


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
    runtime: Runtime | str | None = None,
    transport: str = "local",
    data: Mapping[str, Mapping[str, Any]] | None = None,
    progress: ProgressSink | None = None,
    output_dir: str | Path | None = None,
    job_id: str | None = None,
    engine: str | None = None,
    workers: int | None = None,
    address: str | None = None,
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
        runtime: a shared runtime, or the name of a backend to make one of (closed at the end);
            by default one process pool sized to the machine. Under ``ray`` each actor makes
            its own of this backend (default ``ray``).
        transport: ``local`` (in memory) or ``grpc`` (mTLS on loopback); under ``ray`` the
            parties always talk over gRPC.
        data: party -> {source name: path or value} for ``ctx.data``.
        progress: receives every party's progress events.
        output_dir: each party's files go under ``<output_dir>/<party>/<job_id>/`` (made only
            when the script writes; default ``./fedcore-output``).
        job_id: names the run and its output folders (default ``sim-<time>-<random>``).
        engine: ``coop`` (default for the local transport), ``threads`` (default for grpc) or
            ``ray`` (a script path only; no ``data``, no progress events, link faults not applied).
        workers: worker processes of the coop engine (default: one below 2,000 parties, else
            one per core); each gets its own runtime of the same backend.
        address: the Ray cluster under ``ray``; None attaches to the local instance or starts one.

    Raises:
        ConfigError: a bad script, parameter (checked against ``main``'s annotations before any
            party starts), party name, fault or job id.
    """
    if engine == "ray":
        all_names = party_names(parties if not names else len(names), names)
        return _on_ray(
            script,
            all_names,
            params,
            seed,
            timeout_s,
            faults,
            kill,
            runtime,
            data,
            output_dir,
            job_id,
            address,
        )
    main, module_name, path = _resolve(script, dict(params or {}))
    params = convert_params(main, dict(params or {}))
    job = new_job_id(job_id)
    root = Path(output_dir if output_dir is not None else DEFAULT_OUTPUT_ROOT).absolute()
    all_names = party_names(parties if not names else len(names), names)
    plan = _merge_kill(faults, kill, all_names)
    engine = _engine(engine, transport)
    own_runtime = not isinstance(runtime, Runtime)
    if not isinstance(runtime, Runtime):
        runtime = make_runtime(runtime or "processes")
    script_ref = (module_name, str(path)) if module_name and path else None
    if script_ref:
        runtime.register_script(*script_ref)
    run = Run(main, params, seed, timeout_s, job, root, data, progress)
    try:
        if engine == "coop":
            from fedcore.sim._coop import default_workers, run_coop

            count = default_workers(len(all_names), runtime) if workers is None else _workers(workers)
            outcomes, seconds = run_coop(run, all_names, runtime, plan, count, script_ref)
        else:
            from fedcore.sim._threads import run_threads

            with _open_network(transport, all_names, plan) as transports:
                outcomes, seconds = run_threads(run, transports, runtime, plan)
        return SimResult(outcomes, seconds, job, root)
    finally:
        if own_runtime:
            runtime.close()


def _engine(engine: str | None, transport: str) -> str:
    if transport not in ("local", "grpc"):
        raise ConfigError(f"unknown transport {transport!r}: use local or grpc")
    if engine is None or engine == "local":  # "local" was the engine's name before coop
        return "coop" if transport == "local" else "threads"
    if engine not in ("coop", "threads"):
        raise ConfigError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if engine == "coop" and transport != "local":
        raise ConfigError("--transport grpc blocks in gRPC while it waits: use it with --engine threads")
    return engine


def _workers(count: int) -> int:
    if not isinstance(count, int) or count < 1:
        raise ConfigError(f"workers must be a positive integer, got {count!r}")
    return count


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


def _on_ray(
    script: str | Path | Main,
    names: tuple[str, ...],
    params: Mapping[str, Any] | None,
    seed: int,
    timeout_s: float,
    faults: FaultPlan | None,
    kill: Mapping[str, int] | None,
    runtime: Runtime | str | None,
    data: Mapping[str, Mapping[str, Any]] | None,
    output_dir: str | Path | None,
    job_id: str | None,
    address: str | None,
) -> SimResult:
    if callable(script):
        raise ConfigError(
            "the ray engine runs a script file (its source goes to every actor), not a function"
        )
    if data:
        raise ConfigError("the ray engine takes no data=: each party reads its own data on its node")
    if faults is not None and faults.link_faults:
        logging.getLogger("fedcore.sim").warning(
            "simulate --engine ray: link faults (drop, duplicate, reorder, delay) are not applied"
        )
    backend = runtime.name if isinstance(runtime, Runtime) else runtime or "ray"
    return simulate_on_ray(
        script,
        names=list(names),
        params=params,
        seed=seed,
        timeout_s=timeout_s,
        kill={**(faults.kill if faults is not None else {}), **(kill or {})},  # checked there
        address=address,
        runtime=backend,
        output_dir=output_dir,
        job_id=job_id,
    )


@contextlib.contextmanager
def _local_network(names: tuple[str, ...], plan: FaultPlan | None) -> Iterator[dict[str, Transport]]:
    network = FaultyNetwork(names, plan)
    yield {name: network.transport(name) for name in network.parties}


def _open_network(kind: str, names: tuple[str, ...], plan: FaultPlan | None) -> Any:
    if kind == "local":
        return _local_network(names, plan)
    if kind == "grpc":
        from fedcore.sim.loopback import grpc_network

        return grpc_network(names, plan)
    raise ConfigError(f"unknown transport {kind!r}: use local or grpc")
