"""Delivery guarantees of the gRPC transport: exactly once across retries, early messages, heartbeats."""

from __future__ import annotations

import logging
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fedcore.errors import PartyDropped, PolicyRefused, ProtocolError, Timeout
from fedcore.transport.grpc import PeerNode

PAIR = ("alice", "bob")


class _Flag(logging.Handler):
    """Sets an event when a log record contains ``needle``."""

    def __init__(self, needle: str):
        super().__init__()
        self.needle, self.event = needle, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.event.set()


def test_lost_acknowledgement_is_retried_and_delivered_once(federation) -> None:
    alice = PeerNode("alice", "127.0.0.1:0", {}, federation.tls("alice"))
    bob = PeerNode("bob", "127.0.0.1:0", {}, federation.tls("bob"))
    lost: list[int] = []
    real_accept, real_send = bob._servicer.inboxes.accept, bob._servicer.Send

    def accept_then_lose_ack(env, payload):  # delivered, but the sender never hears so
        ok = real_accept(env, payload)
        if not lost:
            lost.append(env.seq)
            raise _LostAck()
        return ok

    def send(request_iterator, context):  # the connection drops before the reply
        try:
            return real_send(request_iterator, context)
        except _LostAck:
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection lost before the acknowledgement")

    bob._servicer.inboxes.accept = accept_then_lose_ack
    bob._servicer.Send = send  # before start(), which binds the handlers
    try:
        book = {"alice": f"127.0.0.1:{alice.start()}", "bob": f"127.0.0.1:{bob.start()}"}
        alice.set_peers(book)
        bob.set_peers(book)
        ta, tb = alice.open_job("j", PAIR), bob.open_job("j", PAIR)
        ta.send("bob", "m", b"once")
        ta.send("bob", "m", b"next")
        assert lost == [0]
        assert tb.recv("alice", "m", 5.0) == b"once"
        assert tb.recv("alice", "m", 5.0) == b"next"
        with pytest.raises(Timeout):
            tb.recv("alice", "m", 0.3)
    finally:
        alice.stop(0)
        bob.stop(0)


class _LostAck(Exception):
    pass


def test_receiver_restarting_within_retry_window_gets_every_message_once(federation) -> None:
    alice = PeerNode("alice", "127.0.0.1:0", {}, federation.tls("alice"), peer_timeout_s=10.0)
    bob = PeerNode("bob", "127.0.0.1:0", {}, federation.tls("bob"), peer_timeout_s=10.0)
    flag = _Flag("retrying")
    logger = logging.getLogger("fedcore.transport")
    level = logger.level
    logger.addHandler(flag)
    logger.setLevel(logging.INFO)
    try:
        book = {"alice": f"127.0.0.1:{alice.start()}", "bob": f"127.0.0.1:{bob.start()}"}
        alice.set_peers(book)
        bob.set_peers(book)
        ta = alice.open_job("j", PAIR)
        bob.stop(0)
        sent = threading.Thread(target=lambda: [ta.send("bob", "m", bytes([i]) * (i + 1)) for i in range(3)])
        sent.start()
        assert flag.event.wait(10.0)  # alice is retrying while bob is down
        bob = PeerNode("bob", book["bob"], book, federation.tls("bob"), peer_timeout_s=10.0)
        bob.start()
        tb = bob.open_job("j", PAIR)
        sent.join(15.0)
        assert not sent.is_alive()
        assert [tb.recv("alice", "m", 5.0) for _ in range(3)] == [b"\x00", b"\x01\x01", b"\x02\x02\x02"]
        with pytest.raises(Timeout):
            tb.recv("alice", "m", 0.3)
    finally:
        logger.removeHandler(flag)
        logger.setLevel(level)
        alice.stop(0)
        bob.stop(0)


def test_messages_before_the_receiver_opens_the_job_wait_for_it(make_nodes) -> None:
    with make_nodes(["alice", "bob", "carol"]) as nodes:
        parties = ("alice", "bob", "carol")
        ta = nodes["alice"].open_job("late", parties)
        tc = nodes["carol"].open_job("late", parties)
        ta.send("bob", "x", b"early bird")
        ta.send("bob", "x", bytes(2 << 20))
        tc.abort("step-1", "carol failed early")
        tb = nodes["bob"].open_job("late", parties)
        assert tb.recv("alice", "x", 5.0) == b"early bird"
        assert len(tb.recv("alice", "x", 5.0)) == 2 << 20
        with pytest.raises(PartyDropped) as caught:
            tb.recv("carol", "y", 5.0)
        assert caught.value.party == "carol" and caught.value.step == "step-1"


def test_send_to_a_party_known_gone_or_finished(make_nodes) -> None:
    with make_nodes(["alice", "bob", "carol"]) as nodes:
        parties = ("alice", "bob", "carol")
        ta, tb, tc = (nodes[p].open_job("g", parties) for p in parties)
        tb.abort("round-2", "bob's data is missing")
        with pytest.raises(PartyDropped) as caught:
            ta.send("bob", "x", b"for nobody")
        assert caught.value.party == "bob" and caught.value.step == "round-2"
        tc.finish()
        ta.send("carol", "x", b"ignored")  # carol reads nothing more: dropped, as in the local transport


def test_messages_for_unopened_jobs_are_bounded(make_nodes) -> None:
    with make_nodes(list(PAIR), mailbox_bytes=10_000) as nodes:
        ta = nodes["alice"].open_job("later", PAIR)
        ta.send("bob", "x", bytes(6_000))
        with pytest.raises(ProtocolError, match="no room for messages of job later"):
            ta.send("bob", "x", bytes(6_000))
        nodes["bob"].close_job("later")  # e.g. refused by policy: what waited is dropped
        tb = nodes["bob"].open_job("next", PAIR)
        nodes["alice"].open_job("next", PAIR).send("bob", "y", bytes(9_000))
        assert len(tb.recv("alice", "y", 5.0)) == 9_000


def test_closed_job_refuses_late_messages(make_nodes) -> None:
    with make_nodes(list(PAIR)) as nodes:
        ta = nodes["alice"].open_job("done", PAIR)
        nodes["bob"].open_job("done", PAIR).close()
        with pytest.raises(ProtocolError, match="already closed"):
            ta.send("bob", "x", b"late")


def test_stopped_peer_is_dropped_by_heartbeat(make_nodes) -> None:
    with make_nodes(list(PAIR), heartbeat_s=0.1, peer_timeout_s=1.0) as nodes:
        nodes["alice"].open_job("hb", PAIR)
        tb = nodes["bob"].open_job("hb", PAIR)
        nodes["alice"].stop(0)
        start = time.monotonic()
        with pytest.raises(PartyDropped) as caught:
            tb.recv("alice", "never", 30.0)
        assert time.monotonic() - start < 5.0
        assert caught.value.party == "alice" and "no heartbeat for 1 s" in str(caught.value)


def test_control_call_carries_identity_and_typed_errors(federation) -> None:
    seen = []

    def handler(src: str, kind: str, body: bytes) -> bytes:
        seen.append((src, kind))
        if kind == "propose":
            raise PolicyRefused("bob refuses job j-1: script demo.py is not allowed")
        if kind == "crash":
            raise KeyError("bug")
        return body[::-1]

    # bob serves only members: alice is in its [peers] (the address is never dialled here)
    bob = PeerNode(
        "bob", "127.0.0.1:0", {"alice": "127.0.0.1:9"}, federation.tls("bob"), control_handler=handler
    )
    book = {"bob": f"127.0.0.1:{bob.start()}"}
    alice = PeerNode("alice", "127.0.0.1:0", book, federation.tls("alice"))
    try:
        assert alice.call("bob", "echo", b"abc", 5.0) == b"cba"
        with pytest.raises(PolicyRefused, match=r"script demo\.py is not allowed"):
            alice.call("bob", "propose", b"", 5.0)
        with pytest.raises(ProtocolError, match="KeyError"):
            alice.call("bob", "crash", b"", 5.0)
        assert seen == [("alice", "echo"), ("alice", "propose"), ("alice", "crash")]
        bob.stop(0)
        with pytest.raises(PartyDropped) as caught:
            alice.call("bob", "echo", b"", 2.0)
        assert caught.value.party == "bob"
    finally:
        alice.stop(0)
        bob.stop(0)


def test_check_peer_reports_identity_and_failures(make_nodes, federation) -> None:
    with make_nodes(["alice", "bob", "carol"]) as nodes:
        alice = nodes["alice"]
        ok = alice.check_peer("bob", 5.0)
        assert (ok.reachable, ok.tls_verified, ok.identity, ok.error) == (True, True, "bob", None)
        book = dict(alice._peers)
        alice.set_peers({**book, "bob": book["carol"]})  # a wrong address book: carol answers
        wrong = alice.check_peer("bob", 5.0)
        assert wrong.tls_verified and wrong.identity == "carol" and "expected 'bob'" in wrong.error
        nodes["bob"].stop(0)
        alice.set_peers(book)
        down = alice.check_peer("bob", 2.0)
        assert not down.reachable and down.identity is None and "cannot connect" in down.error
        unknown = alice.check_peer("dave", 1.0)
        assert not unknown.reachable and "no address" in unknown.error


def test_health_service_answers_serving(make_nodes) -> None:
    with make_nodes(list(PAIR)) as nodes:
        tls = nodes["alice"].tls
        options = [("grpc.ssl_target_name_override", "bob")]
        with grpc.secure_channel(nodes["alice"]._peers["bob"], tls.channel_credentials(), options) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            for service in ("", "fedcore.v1.Party"):
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5.0)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
