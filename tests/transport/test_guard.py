"""Peer-port guards in one process: safe log text, rate limit, revocation, tag and mailbox caps."""

from __future__ import annotations

import time

import pytest

from fedcore.crypto import pki
from fedcore.errors import AuthError, ConfigError, ProtocolError
from fedcore.transport import LocalNetwork, Mailbox
from fedcore.transport._guard import RateLimit, safe
from fedcore.transport.base import EVENT_OVERHEAD, MAX_TAG_BYTES
from fedcore.transport.grpc import PeerNode, Revoked, TlsMaterial

from .conftest import Federation


def test_safe_escapes_control_characters_and_truncates() -> None:
    assert safe("a\nb\r\x1b[31mé") == "a\\nb\\r\\x1b[31m\\xe9"
    long = safe("x" * 500, 80)
    assert long.startswith("x" * 80) and long.endswith("...(+420 chars)")
    assert "\n" not in safe("\n" * 1000)


def test_rate_limit_allows_a_burst_then_counts_what_it_dropped() -> None:
    limit = RateLimit(burst=3, window_s=0.2)
    assert [limit.allow("carol")[0] for _ in range(5)] == [True, True, True, False, False]
    assert limit.allow("alice") == (True, 0)  # per peer
    time.sleep(0.25)
    assert limit.allow("carol") == (True, 2)  # the next line says how many were not logged


def test_revoked_serial_is_refused_and_a_reissued_certificate_is_served(federation: Federation) -> None:
    old = federation.tls("alice")
    serial = pki_serial(old)
    bob = PeerNode(
        "bob",
        "127.0.0.1:0",
        {"alice": "127.0.0.1:9", "carol": "127.0.0.1:9"},
        federation.tls("bob"),
        control_handler=lambda src, kind, body: body,
        revoked=Revoked(serials=frozenset({serial})),
    )
    book = {"bob": f"127.0.0.1:{bob.start()}"}
    nodes = [
        PeerNode(p, "127.0.0.1:0", book, tls)
        for p, tls in (
            ("alice", old),
            ("alice", federation.tls("alice")),
            ("mallory", federation.tls("mallory")),
        )
    ]
    try:
        with pytest.raises(AuthError, match="revoked"):
            nodes[0].call("bob", "echo", b"x", 5.0)
        assert nodes[1].call("bob", "echo", b"x", 5.0) == b"x"  # the renewed certificate
        with pytest.raises(AuthError, match="not a member"):
            nodes[2].call("bob", "echo", b"x", 5.0)  # CA-signed, but not in bob's [peers]
    finally:
        for node in (*nodes, bob):
            node.stop(0)


def pki_serial(tls: TlsMaterial) -> int:
    from cryptography import x509

    assert pki.party_id_from_cert(tls.cert_pem)
    return x509.load_pem_x509_certificate(tls.cert_pem).serial_number


def test_tags_over_the_cap_are_refused_at_the_sender(make_nodes) -> None:
    tag = "t" * (MAX_TAG_BYTES + 1)
    with make_nodes(["alice", "bob"]) as nodes:
        ta = nodes["alice"].open_job("j", ("alice", "bob"))
        nodes["bob"].open_job("j", ("alice", "bob"))
        with pytest.raises(ConfigError, match="tags are at most 256 bytes"):
            ta.send("bob", tag, b"x")
    local = LocalNetwork(["alice", "bob"]).transport("alice")
    with pytest.raises(ConfigError, match="tags are at most 256 bytes"):
        local.send("bob", tag, b"x")  # the same rule in simulation


def test_empty_messages_count_against_the_mailbox() -> None:
    box = Mailbox("bob", max_bytes=3 * (EVENT_OVERHEAD + 1) + 10)
    for seq in range(3):
        assert box.deliver("alice", "t", seq, b"")
    with pytest.raises(ProtocolError, match="mailbox of bob is full"):
        box.deliver("alice", "t", 3, b"")
    assert box.take("alice", "t", 1.0) == b""
    assert box.used == 2 * (EVENT_OVERHEAD + 1)


def test_a_burst_over_the_stream_cap_backs_off_and_gets_through(make_nodes) -> None:
    import threading

    from fedcore.transport.grpc import PortLimits

    with make_nodes(["alice", "bob"], limits=PortLimits(peer_streams=2)) as nodes:
        ta = nodes["alice"].open_job("j", ("alice", "bob"))
        tb = nodes["bob"].open_job("j", ("alice", "bob"))
        value = bytes(4 << 20)
        senders = [threading.Thread(target=ta.send, args=("bob", f"v{i}", value)) for i in range(8)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(30)
        assert all(len(tb.recv("alice", f"v{i}", 10.0)) == len(value) for i in range(8))


def test_connection_age_ends_a_stream_that_trickles_forever(federation: Federation) -> None:
    """A stream that sends a byte now and then beats the idle deadline, not the connection age."""
    import threading

    import grpc

    from fedcore.transport.grpc import PortLimits
    from fedcore.wire import party_pb2 as pb

    limits = PortLimits(stream_idle_s=30.0, connection_age_s=1.0)
    bob = PeerNode("bob", "127.0.0.1:0", {"alice": "127.0.0.1:9"}, federation.tls("bob"), limits=limits)
    port = bob.start()
    channel = grpc.secure_channel(
        f"127.0.0.1:{port}",
        federation.tls("alice").channel_credentials(),
        options=[("grpc.ssl_target_name_override", "bob")],
    )
    stop = threading.Event()

    def trickle():
        env = pb.Envelope(job="j", src="alice", dst="bob", tag="t", total_bytes=1 << 20)
        yield pb.Frame(header=env).SerializeToString()
        while not stop.wait(0.2):
            yield pb.Frame(chunk=b"x").SerializeToString()

    start = time.monotonic()
    try:
        with pytest.raises(grpc.RpcError) as caught:
            channel.stream_unary("/fedcore.v1.Party/Send")(trickle(), timeout=20)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # the sender would reconnect and retry
        assert time.monotonic() - start < 8  # age 1 s + grace 1 s, far below the 20 s deadline
    finally:
        stop.set()
        channel.close()
        bob.stop(0)
