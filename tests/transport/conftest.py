"""Fixtures for the gRPC transport tests: a throwaway federation CA and started nodes on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fedcore.crypto import pki


class Federation:
    """A throwaway CA that issues party TLS material."""

    def __init__(self, name: str = "demo"):
        self.name = name
        self.ca_pem, self.ca_key = pki.make_ca(name)

    def tls(self, party: str, *, trust: bytes | None = None) -> Any:
        from fedcore.transport.grpc import TlsMaterial

        cert, key = pki.make_party_cert(self.ca_pem, self.ca_key, party, self.name, ["127.0.0.1"])
        return TlsMaterial(trust or self.ca_pem, cert, key)


@pytest.fixture(scope="session")
def federation() -> Federation:
    return Federation("demo")


@pytest.fixture
def make_nodes(federation: Federation) -> Iterator[Callable[..., contextlib.AbstractContextManager[dict]]]:
    """``with make_nodes(["alice", "bob"], **node_kwargs) as nodes``: started, peers wired up."""
    from fedcore.transport.grpc import PeerNode

    @contextlib.contextmanager
    def make(names: list[str], **kwargs: Any) -> Iterator[dict[str, PeerNode]]:
        nodes = {n: PeerNode(n, "127.0.0.1:0", {}, federation.tls(n), **kwargs) for n in names}
        try:
            book = {n: f"127.0.0.1:{node.start()}" for n, node in nodes.items()}
            for node in nodes.values():
                node.set_peers(book)
            yield nodes
        finally:
            for node in nodes.values():
                node.stop(0)

    yield make
