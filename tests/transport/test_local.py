"""The in-memory transport passes the conformance suite, with and without faults."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from fedcore.errors import ConfigError, Timeout
from fedcore.testing import FaultPlan, PartyKilled, TransportConformance, local_network
from fedcore.transport import Transport
from fedcore.transport.base import Mailbox, PeerBoard


class TestLocalTransport(TransportConformance):
    @contextlib.contextmanager
    def open_transports(self, names: list[str]) -> Iterator[dict[str, Transport]]:
        network = local_network(names)
        yield {n: network.transport(n) for n in names}


class TestLocalTransportUnderDuplicationAndReordering(TransportConformance):
    """Exactly-once, in-order delivery must survive a network that duplicates and reorders."""

    @contextlib.contextmanager
    def open_transports(self, names: list[str]) -> Iterator[dict[str, Transport]]:
        network = local_network(names, FaultPlan(duplicate=0.5, reorder=0.5, seed=7))
        yield {n: network.transport(n) for n in names}


def test_dropped_messages_time_out_naming_the_sender() -> None:
    network = local_network(["a", "b"], FaultPlan(drop=1.0))
    network.transport("a").send("b", "x", b"lost")
    with pytest.raises(Timeout, match="'x' from a"):
        network.transport("b").recv("a", "x", 0.1)


def test_delay_applies_to_the_named_link_only() -> None:
    network = local_network(["a", "b", "c"], FaultPlan(delay={("a", "b"): 0.2}))
    a = network.transport("a")
    a.send("b", "x", b"slow")
    a.send("c", "x", b"fast")
    assert network.transport("c").recv("a", "x", 0.05) == b"fast"
    with pytest.raises(Timeout):
        network.transport("b").recv("a", "x", 0.05)
    assert network.transport("b").recv("a", "x", 5.0) == b"slow"


def test_kill_after_k_messages_stops_the_sender_and_tells_the_others() -> None:
    network = local_network(["a", "b"], FaultPlan(kill={"a": 2}))
    a, b = network.transport("a"), network.transport("b")
    a.send("b", "m", b"1")
    with pytest.raises(PartyKilled):
        a.send("b", "m", b"2")
    assert b.recv("a", "m", 1.0) == b"1"
    assert b.recv("a", "m", 1.0) == b"2"  # the K-th message left before the crash
    with pytest.raises(Exception, match="killed by fault injection after 2 messages"):
        b.recv("a", "m", 1.0)


def test_unknown_destination_is_a_config_error() -> None:
    network = local_network(["a", "b"])
    with pytest.raises(ConfigError, match="not a party"):
        network.transport("a").send("zed", "x", b"")


@pytest.mark.parametrize("names", [["a", "a"], ["1abc"], ["has space"], [""], ["x" * 65]])
def test_bad_party_names_are_refused(names: list[str]) -> None:
    with pytest.raises(ConfigError, match="party name"):
        local_network(names)


def test_fault_plan_validates_its_probabilities() -> None:
    with pytest.raises(ValueError, match="probability"):
        FaultPlan(drop=1.5)


def test_a_party_ending_wakes_only_the_receives_waiting_on_it() -> None:
    """A job's end costs O(N) wake-ups, not O(N^2): the board wakes the waiters on that party."""
    woken: list[str] = []

    class Counting(Mailbox):
        def wake(self) -> None:
            woken.append(self.party)
            super().wake()

    board = PeerBoard()
    boxes = {f"r{i}": Counting(f"r{i}", board=board) for i in range(20)}
    waiters = [
        threading.Thread(target=lambda b=b, i=i: _swallow(b.take, f"s{i % 2}", "x", 5.0))
        for i, b in enumerate(boxes.values())
    ]
    for w in waiters:
        w.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sum(len(v) for v in board._waiting.values()) < 20:
        time.sleep(0.01)
    board.set("s0", "finished")
    for w in waiters[::2]:
        w.join(5)
    assert sorted(woken) == sorted(f"r{i}" for i in range(0, 20, 2))
    board.set("s1", "finished")
    for w in waiters:
        w.join(5)
    assert len(woken) == 20


def _swallow(fn, *args) -> None:
    with contextlib.suppress(Exception):  # the receive ends in ProtocolError: the peer finished
        fn(*args)
