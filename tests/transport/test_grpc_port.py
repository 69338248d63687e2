"""A second node on a port already in use fails loudly instead of sharing it (no SO_REUSEPORT)."""

from __future__ import annotations

import pytest

from fedcore.errors import ConfigError
from fedcore.transport.grpc import PeerNode


def test_second_node_on_the_same_port_is_refused(federation) -> None:
    first = PeerNode("alice", "127.0.0.1:0", {}, federation.tls("alice"))
    port = first.start()
    try:
        second = PeerNode("alice", f"127.0.0.1:{port}", {}, federation.tls("alice"))
        with pytest.raises(ConfigError, match="cannot listen"):
            second.start()
    finally:
        first.stop(0)
