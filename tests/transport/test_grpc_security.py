"""Refusals: each with a clear error, and the node still serving afterwards."""

from __future__ import annotations

import logging

import grpc
import pytest

from fedcore.crypto import pki
from fedcore.crypto.secret import Secret
from fedcore.errors import AuthError, PartyDropped, ProtocolError, Timeout
from fedcore.transport._grpc_client import PeerLink
from fedcore.transport.grpc import PeerNode, TlsMaterial
from fedcore.wire import party_pb2 as pb
from fedcore.wire import party_pb2_grpc as pb_grpc

from .conftest import Federation

PARTIES = ("alice", "bob", "carol")


def _still_serving(nodes: dict[str, PeerNode], job: str = "ok") -> None:
    ta = nodes["alice"].open_job(job, ("alice", "bob"))
    tb = nodes["bob"].open_job(job, ("alice", "bob"))
    ta.send("bob", "after", b"still here")
    assert tb.recv("alice", "after", 10.0) == b"still here"


def _ping(address: str, creds: grpc.ChannelCredentials) -> pb.PingReply:
    with grpc.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", "bob")]) as ch:
        return pb_grpc.PartyStub(ch).Ping(pb.PingRequest(src="mallory"), timeout=5.0)


def test_client_without_certificate_is_refused(make_nodes, federation: Federation) -> None:
    with make_nodes(["alice", "bob"]) as nodes:
        address = nodes["alice"]._peers["bob"]
        with pytest.raises(grpc.RpcError) as caught:
            _ping(address, grpc.ssl_channel_credentials(root_certificates=federation.ca_pem))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        _still_serving(nodes)


def test_client_with_certificate_of_another_ca_is_refused(make_nodes, federation: Federation) -> None:
    other = Federation("demo")  # same federation name, different CA: the chain decides
    with make_nodes(["alice", "bob"]) as nodes:
        address = nodes["alice"]._peers["bob"]
        mallory = PeerNode(
            "alice", "127.0.0.1:0", {"bob": address}, other.tls("alice", trust=federation.ca_pem)
        )
        with pytest.raises(PartyDropped) as caught:  # the TLS handshake fails: bob is unreachable to it
            mallory.call("bob", "hello", b"", 5.0)
        assert caught.value.party == "bob" and "unreachable" in str(caught.value)
        report = mallory.check_peer("bob", 5.0)
        assert report.reachable and report.tls_verified and report.identity == "bob"
        assert report.error is not None and "refused our call or our certificate" in report.error
        mallory.stop(0)
        _still_serving(nodes)


def test_party_claiming_another_id_is_refused_and_logged(make_nodes, federation, caplog) -> None:
    with make_nodes(list(PARTIES)) as nodes:
        carol = nodes["carol"].open_job("j", PARTIES)
        bob_tls = nodes["bob"].tls  # a real client holding bob's valid certificate
        link = PeerLink("bob", "carol", nodes["bob"]._peers["carol"], bob_tls)
        forged = pb.Envelope(job="j", src="alice", dst="carol", tag="x", seq=0, total_bytes=3)
        with caplog.at_level(logging.WARNING, logger="fedcore.transport"), pytest.raises(AuthError) as caught:
            link.send(forged, [memoryview(b"bad")], 2.0, 5.0)
        link.close()
        assert "'alice'" in str(caught.value) and "'bob'" in str(caught.value)
        assert any("REFUSED" in r.getMessage() and "src=alice" in r.getMessage() for r in caplog.records)
        with pytest.raises(Timeout):
            carol.recv("alice", "x", 0.3)  # nothing was delivered under alice's name
        nodes["alice"].open_job("j", PARTIES).send("carol", "x", b"real")
        assert carol.recv("alice", "x", 5.0) == b"real"


@pytest.mark.parametrize("size", [5_000, 3 << 20])  # one frame, and a stream the receiver cuts off
def test_value_above_max_value_bytes_is_refused_before_buffering(make_nodes, size: int) -> None:
    with make_nodes(["alice", "bob"], max_value_bytes=4_096) as nodes:
        ta = nodes["alice"].open_job("j", ("alice", "bob"))
        tb = nodes["bob"].open_job("j", ("alice", "bob"))
        with pytest.raises(ProtocolError) as caught:
            ta.send("bob", "big", bytes(size))
        assert "max_value_bytes" in str(caught.value) and "4096" in str(caught.value)
        assert str(size) in str(caught.value)
        ta.send("bob", "small", bytes(4_096))
        assert len(tb.recv("alice", "small", 5.0)) == 4_096


def test_envelope_for_another_party_or_non_member_is_refused(make_nodes) -> None:
    with make_nodes(list(PARTIES)) as nodes:
        nodes["bob"].open_job("pair", ("alice", "bob"))
        carol = nodes["carol"].open_job("pair-c", PARTIES)
        link = PeerLink("carol", "bob", nodes["carol"]._peers["bob"], nodes["carol"].tls)
        outsider = pb.Envelope(job="pair", src="carol", dst="bob", tag="x", total_bytes=1)
        with pytest.raises(AuthError, match="not a party of job pair"):
            link.send(outsider, [memoryview(b"x")], 2.0, 5.0)
        misrouted = pb.Envelope(job="pair", src="carol", dst="alice", tag="x", total_bytes=1)
        with pytest.raises(ProtocolError, match="for 'alice'"):
            link.send(misrouted, [memoryview(b"x")], 2.0, 5.0)
        link.close()
        assert carol.party == "carol"


def test_node_refuses_a_certificate_for_another_party(federation: Federation) -> None:
    with pytest.raises(Exception, match="certificate is for 'bob'"):
        PeerNode("alice", "127.0.0.1:0", {}, federation.tls("bob"))
    cert, _ = pki.make_party_cert(federation.ca_pem, federation.ca_key, "bob", "demo", [])
    tls = TlsMaterial(federation.ca_pem, cert, Secret(b"not-a-key-bytes", "key"))
    assert "hidden" in repr(tls) and "not-a-key-bytes" not in repr(tls)
    with pytest.raises(TypeError, match="private key as a Secret"):
        TlsMaterial(federation.ca_pem, cert, b"not-a-key-bytes")  # type: ignore[arg-type]
