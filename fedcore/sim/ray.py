"""Simulation on a Ray cluster: each party a Ray actor, parties talking over mutual-TLS gRPC.

``simulate_on_ray(script, names=[...])`` runs ``main(ctx, **params)`` of a protocol script once
per party, like ``fedcore.sim.simulate`` (which calls it for ``engine="ray"``), but places
every party in its own Ray actor (spread over the cluster's nodes) and connects them with the
real gRPC transport (``PeerNode``) under throwaway certificates of a throwaway federation CA,
so a simulation grows past one machine.

How a run goes:

1. The driver loads the script (checking ``params``), connects to Ray (``address``; None
   attaches to the local instance or starts one on loopback), and makes a CA.
2. One actor per party reports the IP of its node; the driver issues it a certificate for that
   address. The CA key never leaves the driver; each party's throwaway key travels to its actor
   inside the operator's own Ray cluster.
3. Each actor starts a ``PeerNode`` on its node IP (free port) and reports the port; every
   actor learns every address, opens the job, and runs ``main`` with the script's source
   shipped to it (the script need not exist on the workers), on a runtime of its own (by
   default the ``ray`` backend, so local tasks spread over the cluster too).
4. ``kill={party: K}``: the party stops its node abruptly right after its K-th send (no abort,
   no goodbye); the others find out through the heartbeat, as they would with a real crash.

Outcomes come back as in ``simulate``: ``Ok`` with what ``main`` returned, or a ``RemoteError``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fedcore.context import DEFAULT_TIMEOUT_S
from fedcore.errors import ConfigError
from fedcore.params import convert_params
from fedcore.results import Outcome, RemoteError
from fedcore.script import load_script
from fedcore.sim._job import DEFAULT_OUTPUT_ROOT, SimResult, new_job_id, party_names
from fedcore.sim._party import Run, killed_before_start, run_party
from fedcore.sim.faults import kill_switch
from fedcore.transport import Transport

FEDERATION = "raysim"


class PartyHost:
    """The body of one party's Ray actor: a ``PeerNode`` and one job run on it."""

    def __init__(self, party: str, heartbeat_s: float, peer_timeout_s: float):
        self.party = party
        self.heartbeat_s, self.peer_timeout_s = heartbeat_s, peer_timeout_s
        self.node: Any = None

    def node_ip(self) -> str:
        import ray

        node_ip: Callable[[], str] = ray.util.get_node_ip_address  # untyped in Ray
        return node_ip()

    def start(self, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, host: str) -> int:
        """Serve the party's gRPC endpoint on ``host`` at a free port; returns the port.

        ``key_pem`` arrives as bytes (Ray pickles actor arguments, and a ``Secret`` refuses
        that) and is wrapped again at once.
        """
        from fedcore.crypto.secret import Secret
        from fedcore.transport.grpc import PeerNode, TlsMaterial

        tls = TlsMaterial(ca_pem, cert_pem, Secret(key_pem, f"{self.party} private key"))
        self.node = PeerNode(
            self.party,
            f"{host}:0",
            {},
            tls,
            heartbeat_s=self.heartbeat_s,
            peer_timeout_s=self.peer_timeout_s,
        )
        return int(self.node.start())

    def set_peers(self, addresses: dict[str, str]) -> None:
        """Admit every other party of the job (called on every actor before any job starts, so
        no party dials one that does not know it yet)."""
        self.node.set_peers({p: a for p, a in addresses.items() if p != self.party})

    def run(self, job: dict[str, Any]) -> Outcome:
        """Open the job with every party's address and run ``main``; returns its outcome."""
        from fedcore.runtime import make_runtime
        from fedcore.runtime._ray import load_scripts

        module_name, path, source = job["script"]
        load_scripts({module_name: (path, source)})
        main = sys.modules[module_name].main
        transport: Transport = self.node.open_job(job["job_id"], tuple(job["parties"]))
        if job["kill"] == 0:
            return killed_before_start(self.party, transport)
        transport = kill_switch(transport, job["kill"], lambda: self.node.stop(grace_s=0))
        run = Run(main, job["params"], job["seed"], job["timeout_s"], job["job_id"], Path(job["output_root"]))
        with make_runtime(job["runtime"]) as runtime:
            runtime.register_script(module_name, path)
            return run_party(main, run.context(self.party, transport, runtime), run.params)

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop(grace_s=0.5)


def simulate_on_ray(
    script: str | Path,
    *,
    names: list[str],
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    kill: Mapping[str, int] | None = None,
    address: str | None = None,
    runtime: str = "ray",
    heartbeat_s: float = 1.0,
    peer_timeout_s: float = 10.0,
    output_dir: str | Path | None = None,
    job_id: str | None = None,
) -> SimResult:
    """Run ``main(ctx, **params)`` of ``script`` once per party, each party a Ray actor.

    Args:
        script: a protocol script path.
        names: the party names.
        params: keyword arguments for ``main``.
        seed: job seed; each party's ``ctx.rng`` derives from it (as in ``simulate``).
        timeout_s: default deadline of every ``recv``.
        kill: party -> K: the party's node goes dark right after its K-th send.
        address: Ray cluster address; None attaches to the local instance or starts one.
        runtime: each party's local runtime backend inside its actor (``ray``, ``threads``, ...).
        heartbeat_s: gRPC heartbeat interval between parties.
        peer_timeout_s: a party silent this long is dropped by the others.
        output_dir: each party writes under ``<output_dir>/<party>/<job_id>/`` on the node its
            actor runs on (the same absolute path on every node; default ``./fedcore-output``
            of the driver).
        job_id: names the run and its output folders (default ``sim-<time>-<random>``).

    Raises:
        ConfigError: Ray is not installed, the cluster is unreachable, bad names or params.
    """
    ray = _import_ray()
    from fedcore.runtime._ray import acquire, release

    loaded = load_script(script)
    loaded.check_params(dict(params or {}))
    params = convert_params(loaded.main, dict(params or {}))
    job_id = new_job_id(job_id)
    root = Path(output_dir if output_dir is not None else DEFAULT_OUTPUT_ROOT).absolute()
    all_names = party_names(len(names), names)
    kill = dict(kill or {})
    for name in kill:
        if name not in all_names:
            raise ConfigError(f"--kill names {name!r}, which is not a party of this run")
    owner = acquire(address, None)
    try:
        job = {
            "job_id": job_id,
            "output_root": str(root),
            "parties": list(all_names),
            "script": (loaded.module_name, str(loaded.path), loaded.path.read_text(encoding="utf-8")),
            "params": params,
            "seed": seed,
            "timeout_s": timeout_s,
            "runtime": runtime,
        }
        return _run(ray, job, kill, heartbeat_s, peer_timeout_s)
    finally:
        if owner:
            release()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"--engine ray needs Ray ({exc}): pip install 'fedcore[ray]'") from None
    return ray


def _run(
    ray: Any, job: dict[str, Any], kill: dict[str, int], heartbeat_s: float, peer_timeout_s: float
) -> SimResult:
    """Place the actors, wire them up, run the job and collect every party's result."""
    from fedcore.crypto import pki
    from fedcore.crypto.secret import ACCESS

    actor_cls = ray.remote(PartyHost).options(num_cpus=0, scheduling_strategy="SPREAD")
    names: list[str] = job["parties"]
    actors = {name: actor_cls.remote(name, heartbeat_s, peer_timeout_s) for name in names}
    try:
        ips = dict(zip(names, ray.get([actors[n].node_ip.remote() for n in names]), strict=True))
        ca_cert, ca_key = pki.make_ca(FEDERATION, valid_days=1)
        starts = []
        for name in names:
            cert, key = pki.make_party_cert(ca_cert, ca_key, name, FEDERATION, [ips[name]], valid_days=1)
            # the actor's arguments are pickled to it: the key leaves its Secret here, to Ray
            starts.append(actors[name].start.remote(ca_cert, cert, key.reveal(ACCESS), ips[name]))
        ports = ray.get(starts)
        job["addresses"] = {n: f"{ips[n]}:{port}" for n, port in zip(names, ports, strict=True)}
        ray.get([actors[n].set_peers.remote(job["addresses"]) for n in names])
        start = time.perf_counter()
        runs = {n: actors[n].run.remote({**job, "kill": kill.get(n)}) for n in names}
        results = {n: _result(ray, n, runs[n]) for n in names}
        seconds = time.perf_counter() - start
        ray.wait([actor.stop.remote() for actor in actors.values()], num_returns=len(actors), timeout=10)
        return SimResult(results, seconds, job["job_id"], Path(job["output_root"]))
    finally:
        for actor in actors.values():
            ray.kill(actor)


def _result(ray: Any, party: str, ref: Any) -> Outcome:
    """A party's outcome, or a RemoteError naming its actor's failure."""
    try:
        outcome: Outcome = ray.get(ref)
        return outcome
    except ray.exceptions.RayError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return RemoteError(party, None, type(exc).__name__, first)
