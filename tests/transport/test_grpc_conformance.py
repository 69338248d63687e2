"""The transport conformance suite, run against real mTLS gRPC nodes on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from fedcore.sim.loopback import grpc_network
from fedcore.testing import TransportConformance
from fedcore.transport import Transport


class TestGrpcTransport(TransportConformance):
    @contextlib.contextmanager
    def open_transports(self, names: list[str]) -> Iterator[dict[str, Transport]]:
        with grpc_network(tuple(names), None) as transports:
            yield transports
