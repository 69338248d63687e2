"""``fedcore simulate --transport grpc``: every party's real gRPC node on loopback, in one process.

Throwaway CA and certificates live in memory; each party gets a ``PeerNode`` bound to
127.0.0.1 port 0, and one job is opened on each. ``FaultPlan.kill`` is honoured: after its
K-th send a party's node stops abruptly (no abort) and the send raises ``PartyKilled``; the
others find out by heartbeat or a failed send, as they would with a crashed daemon.
Other link faults (drop, delay, duplicate, reorder) belong to the in-memory network and are
not applied here; gRPC's own retries and duplicate suppression are exercised instead.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
from collections.abc import Iterator

from fedcore.crypto import pki
from fedcore.sim.faults import FaultPlan, kill_switch
from fedcore.transport.base import Transport
from fedcore.transport.grpc import PeerNode, TlsMaterial

log = logging.getLogger("fedcore.sim")

FEDERATION = "sim"
HEARTBEAT_S = 0.25
PEER_TIMEOUT_S = 3.0


def _nodes(names: tuple[str, ...]) -> dict[str, PeerNode]:
    ca_cert, ca_key = pki.make_ca(FEDERATION, valid_days=1)
    nodes = {}
    for name in names:
        cert, key = pki.make_party_cert(ca_cert, ca_key, name, FEDERATION, ["127.0.0.1"], valid_days=1)
        nodes[name] = PeerNode(
            name,
            "127.0.0.1:0",
            {},
            TlsMaterial(ca_cert, cert, key),
            heartbeat_s=HEARTBEAT_S,
            peer_timeout_s=PEER_TIMEOUT_S,
        )
    return nodes


@contextlib.contextmanager
def grpc_network(names: tuple[str, ...], plan: FaultPlan | None = None) -> Iterator[dict[str, Transport]]:
    """Start one mTLS gRPC node per party on loopback and yield {name: Transport} for one job."""
    names = tuple(names)
    if plan is not None and plan.link_faults:
        log.warning(
            "simulate --transport grpc: link faults (drop, duplicate, reorder, delay) are not applied"
        )
    nodes = _nodes(names)
    started: list[PeerNode] = []
    try:
        ports = {}
        for name, node in nodes.items():
            ports[name] = node.start()
            started.append(node)
        book = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        job = f"sim-{secrets.token_hex(4)}"
        kill = dict(plan.kill) if plan is not None else {}
        transports: dict[str, Transport] = {}
        for name, node in nodes.items():
            node.set_peers(book)
            stop = functools.partial(node.stop, grace_s=0)  # abruptly: no abort, no goodbye
            transports[name] = kill_switch(node.open_job(job, names), kill.get(name), stop)
        yield transports
    finally:
        for node in started:
            node.stop(grace_s=0)
