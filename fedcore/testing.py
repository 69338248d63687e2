"""Test kit for fedcore users and fedcore itself.

- ``FaultPlan``: faults for the in-memory network: kill a party after K messages, delay,
  drop, duplicate and reorder messages on links (defined in ``fedcore.sim.faults``).
- ``local_network(names, faults)``: an in-memory N-party network.
- ``TransportConformance``: the transport test suite; subclass it in a test module and
  implement ``open_transports`` to run it against any ``Transport``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from fedcore import wire
from fedcore.errors import PartyDropped, ProtocolError, Timeout
from fedcore.session import Send, Session
from fedcore.sim.faults import FaultPlan, FaultyNetwork, PartyKilled
from fedcore.transport import LocalNetwork, Transport
from fedcore.wire import _registry


@contextlib.contextmanager
def expect_error(kind: type[BaseException]) -> Iterator[list[BaseException]]:
    """Like ``pytest.raises`` without needing pytest: the caught error lands in the list."""
    caught: list[BaseException] = []
    try:
        yield caught
    except kind as exc:
        caught.append(exc)
    if not caught:
        raise AssertionError(f"expected {kind.__name__}, nothing was raised")


__all__ = [
    "FaultPlan",
    "PartyKilled",
    "TransportConformance",
    "expect_error",
    "forged_encoding",
    "local_network",
    "run_sessions",
]


Delivered = tuple[str, str, str, Any]
"""(source, destination, tag, message) of one message ``run_sessions`` delivered."""


def run_sessions(
    sessions: Mapping[str, Session],
    handle: Callable[[str, Any], Iterable[Any] | None] | None = None,
    *,
    through_wire: bool = False,
) -> tuple[list[Delivered], list[Delivered]]:
    """Run sans-I/O sessions against each other in memory: no parties, threads or clocks.

    Every ``Send`` goes to a FIFO per (source, destination, tag); each pass, every session
    whose ``expect()`` names messages that are all there gets them, until no message moves. Other
    actions go to ``handle(party, action)`` at once, and what it returns is carried out too.
    With ``through_wire`` each message is encoded and decoded on the way, as a peer would see
    it. Strict waits only (a tolerant wait's deadline never passes here).

    Returns:
        (every message delivered in order, every message sent but never taken): a finished
        protocol leaves the second list empty.
    """
    queues: dict[tuple[str, str, str], deque[Any]] = {}
    delivered: list[Delivered] = []

    def act(party: str, actions: Iterable[Any]) -> None:
        for action in actions:
            if isinstance(action, Send):
                message = wire.decode(wire.encode(action.message)) if through_wire else action.message
                queues.setdefault((party, action.dst, action.tag), deque()).append(message)
            elif handle is None:
                raise TypeError(f"{party}'s session returned {type(action).__name__} and there is no handle")
            else:
                act(party, handle(party, action) or ())

    for party, session in sessions.items():
        act(party, session.start())
    moved = True
    while moved:
        moved = False
        for party, session in sessions.items():
            want = session.expect()
            if want is None:
                continue
            # as drive() does: a wait is met when every source's message is there, fed in order
            if all(queues.get((src, party, want.tag)) for src in want.sources):
                for src in want.sources:
                    message = queues[(src, party, want.tag)].popleft()
                    delivered.append((src, party, want.tag, message))
                    act(party, session.receive(src, message))
                moved = True
    left = [(src, dst, tag, m) for (src, dst, tag), queue in queues.items() for m in queue]
    return delivered, left


def forged_encoding(name: str, state: Any) -> bytes:
    """The bytes a hostile peer could send: wire type ``name`` carrying any ``state`` at all
    (for tests that the type's decoder refuses what its own encoder would never write)."""

    class Forged:
        pass

    _registry._BY_TYPE[Forged] = _registry.Registered(Forged, name, lambda _: state, lambda s: s)
    try:
        return wire.encode(Forged())
    finally:
        del _registry._BY_TYPE[Forged]


def local_network(names: list[str] | tuple[str, ...], faults: FaultPlan | None = None) -> LocalNetwork:
    """An in-memory network for ``names`` with optional faults."""
    return FaultyNetwork(names, faults)


class TransportConformance:
    """The transport conformance suite.

    Subclass it as ``class TestMyTransport(TransportConformance)`` and implement
    ``open_transports(names)`` as a context manager yielding ``{name: Transport}``.
    """

    timeout_s = 10.0

    @contextlib.contextmanager
    def open_transports(self, names: list[str]) -> Iterator[dict[str, Transport]]:
        raise NotImplementedError
        yield {}

    def test_round_trip(self) -> None:
        with self.open_transports(["alice", "bob"]) as t:
            t["alice"].send("bob", "x", b"hello")
            assert t["bob"].recv("alice", "x", self.timeout_s) == b"hello"

    def test_empty_payload(self) -> None:
        with self.open_transports(["alice", "bob"]) as t:
            t["alice"].send("bob", "x", b"")
            assert t["bob"].recv("alice", "x", self.timeout_s) == b""

    def test_send_does_not_wait_for_recv(self) -> None:
        with self.open_transports(["alice", "bob"]) as t:
            start = time.monotonic()
            for i in range(50):
                t["alice"].send("bob", "burst", i.to_bytes(2, "big"))
            assert time.monotonic() - start < self.timeout_s
            got = [int.from_bytes(t["bob"].recv("alice", "burst", self.timeout_s), "big") for _ in range(50)]
            assert got == list(range(50))

    def test_tags_are_independent_streams(self) -> None:
        with self.open_transports(["alice", "bob"]) as t:
            t["alice"].send("bob", "a", b"1")
            t["alice"].send("bob", "b", b"2")
            assert t["bob"].recv("alice", "b", self.timeout_s) == b"2"
            assert t["bob"].recv("alice", "a", self.timeout_s) == b"1"

    def test_sources_are_independent_streams(self) -> None:
        with self.open_transports(["alice", "bob", "carol"]) as t:
            t["alice"].send("carol", "v", b"from-alice")
            t["bob"].send("carol", "v", b"from-bob")
            assert t["carol"].recv("bob", "v", self.timeout_s) == b"from-bob"
            assert t["carol"].recv("alice", "v", self.timeout_s) == b"from-alice"

    def test_concurrent_senders(self) -> None:
        names = ["hub", "s1", "s2", "s3", "s4"]
        with self.open_transports(names) as t:

            def flood(src: str) -> None:
                for i in range(20):
                    t[src].send("hub", "n", f"{src}:{i}".encode())

            threads = [threading.Thread(target=flood, args=(s,)) for s in names[1:]]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            for src in names[1:]:
                got = [bytes(t["hub"].recv(src, "n", self.timeout_s)).decode() for _ in range(20)]
                assert got == [f"{src}:{i}" for i in range(20)]

    def test_large_payload(self) -> None:
        payload = bytes(range(256)) * (24 * 4096)  # 24 MiB: past gRPC's default message cap
        with self.open_transports(["alice", "bob"]) as t:
            t["alice"].send("bob", "big", payload)
            assert t["bob"].recv("alice", "big", 60.0) == payload

    def test_recv_timeout_names_party_and_tag(self) -> None:
        with self.open_transports(["alice", "bob"]) as t:
            start = time.monotonic()
            with expect_error(Timeout) as caught:
                t["bob"].recv("alice", "never", 0.3)
            assert 0.25 <= time.monotonic() - start < 5.0
            error = caught[0]
            assert isinstance(error, Timeout) and error.party == "alice" and error.tag == "never"
            assert "alice" in str(error) and "never" in str(error)

    def test_abort_reaches_waiting_receiver(self) -> None:
        with self.open_transports(["alice", "bob"]) as t:
            t["alice"].send("bob", "early", b"kept")
            result: dict[str, BaseException] = {}

            def wait() -> None:
                try:
                    t["bob"].recv("alice", "late", 30.0)
                except BaseException as exc:  # recorded for the assertion below
                    result["exc"] = exc

            waiter = threading.Thread(target=wait)
            waiter.start()
            time.sleep(0.05)
            start = time.monotonic()
            t["alice"].abort("step-3", "ValueError: bad input")
            waiter.join(10.0)
            assert time.monotonic() - start < 5.0
            exc = result.get("exc")
            assert isinstance(exc, PartyDropped) and exc.party == "alice" and exc.step == "step-3"
            # what alice sent before she failed is still delivered
            assert t["bob"].recv("alice", "early", self.timeout_s) == b"kept"

    def test_finished_party_does_not_hang_receiver(self) -> None:
        with self.open_transports(["alice", "bob"]) as t:
            t["alice"].finish()
            with expect_error(ProtocolError) as caught:
                t["bob"].recv("alice", "never-sent", 10.0)
            assert not isinstance(caught[0], (Timeout, PartyDropped))
            assert "alice" in str(caught[0])
