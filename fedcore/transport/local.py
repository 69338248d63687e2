"""The in-memory transport: every party of a simulation in one process, one mailbox each.

Every message is delivered at once; a subclass may delay, drop or duplicate it through
``LocalNetwork.deliveries`` (fault injection, ``fedcore.sim.faults``), and what a party sent
before it stopped still arrives before the news that it stopped.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Protocol

from fedcore.errors import ConfigError
from fedcore.transport.base import (
    Condition,
    Mailbox,
    Payload,
    PeerBoard,
    Transport,
    check_party_names,
    check_tag,
    join_payload,
)


class Scheduler(Protocol):
    """How the network waits: OS threads (the default) or a cooperative engine's tasks."""

    def condition(self) -> Condition:
        """A condition variable for one mailbox."""
        ...

    def call_later(self, delay_s: float, action: Callable[[], object]) -> None:
        """Run ``action`` after ``delay_s`` seconds (a delayed or reordered delivery)."""
        ...


class ThreadScheduler:
    """Every party is an OS thread: mailboxes wait on ``threading.Condition``, delays on timers."""

    def condition(self) -> Condition:
        return threading.Condition()

    def call_later(self, delay_s: float, action: Callable[[], object]) -> None:
        timer = threading.Timer(delay_s, action)
        timer.daemon = True
        timer.start()


class LocalNetwork:
    """An in-memory network of named parties.

    Args:
        parties: the party names, in the order every party sees.
        mailbox_bytes: optional bound on the bytes waiting in each mailbox.
        scheduler: how receivers wait and delays fire (default: OS threads).
        local: the parties whose mailboxes live here (default all); a message to another party
            goes to ``forward(src, dst, tag, seq, payload)`` (the worker-process engine).
    """

    def __init__(
        self,
        parties: Iterable[str],
        mailbox_bytes: int | None = None,
        scheduler: Scheduler | None = None,
        local: Iterable[str] | None = None,
        forward: Callable[[str, str, str, int, bytes], None] | None = None,
    ):
        self.parties = check_party_names(list(parties))
        self.board = PeerBoard()
        self.scheduler: Scheduler = scheduler or ThreadScheduler()
        here = self.parties if local is None else tuple(local)
        self._mailboxes = {p: Mailbox(p, mailbox_bytes, self.board, self.scheduler.condition()) for p in here}
        self._known = frozenset(self.parties)
        self._forward = forward
        self._delayed: dict[str, int] = defaultdict(int)  # per sender: delayed deliveries in flight
        self._deferred: dict[str, Callable[[], object]] = {}  # a status change waiting for them
        self._seq: dict[tuple[str, str, str], int] = defaultdict(int)
        self._lock = threading.Lock()

    def transport(self, party: str) -> LocalTransport:
        if party not in self._mailboxes:
            raise ConfigError(f"{party!r} is not a party of this network {list(self.parties)}")
        return LocalTransport(self, party)

    def mailbox(self, party: str) -> Mailbox:
        return self._mailboxes[party]

    def post(self, src: str, dst: str, tag: str, payload: bytes) -> None:
        if dst not in self._known:
            raise ConfigError(f"{src} sent {tag!r} to {dst!r}, which is not a party of this job")
        check_tag(tag)  # the same cap as between daemons: what runs in simulation runs there
        with self._lock:
            seq = self._seq[(src, dst, tag)]
            self._seq[(src, dst, tag)] = seq + 1
        deliver = self._deliverer(src, dst, tag, seq, payload)
        for delay in self.deliveries(src, dst, tag):
            if delay <= 0:
                deliver()
                continue
            with self._lock:
                self._delayed[src] += 1
            self.scheduler.call_later(delay, lambda: self._late(src, deliver))

    def deliveries(self, src: str, dst: str, tag: str) -> list[float]:
        """Delays (seconds) at which to deliver one message: here one, at once. A subclass may
        return [] (drop it), two entries (duplicate it) or later times (delay, reorder)."""
        return [0.0]

    def _deliverer(self, src: str, dst: str, tag: str, seq: int, payload: bytes) -> Callable[[], object]:
        box = self._mailboxes.get(dst)
        if box is not None:
            return lambda: box.deliver(src, tag, seq, payload)
        forward = self._forward
        if forward is None:
            raise ConfigError(f"{dst!r} has no mailbox in this network and there is nowhere to forward to")
        return lambda: forward(src, dst, tag, seq, payload)

    def _late(self, src: str, deliver: Callable[[], object]) -> None:
        deliver()
        with self._lock:
            self._delayed[src] -= 1
            then = self._deferred.pop(src, None) if self._delayed[src] == 0 else None
        if then is not None:
            then()

    def _after_sent(self, party: str, announce: Callable[[], object]) -> None:
        """``announce`` once every delayed message of ``party`` is delivered: what a party sent
        before it stopped reaches its receiver before the news that it stopped."""
        with self._lock:
            if self._delayed[party] > 0:
                self._deferred.setdefault(party, announce)  # the first way it ended is the one told
                return
        announce()

    def announce(self, party: str, status: str, step: str | None, reason: str) -> None:
        """Tell every mailbox here that ``party`` finished or dropped."""
        self.board.set(party, status, step, reason)

    def drop(self, party: str, step: str | None, reason: str) -> None:
        """Mark ``party`` as gone at every other party (a crash or an abort)."""
        self._after_sent(party, lambda: self.announce(party, "dropped", step, reason))

    def finish(self, party: str) -> None:
        self._after_sent(party, lambda: self.announce(party, "finished", None, ""))


class LocalTransport(Transport):
    """One party's end of a ``LocalNetwork``."""

    def __init__(self, network: LocalNetwork, party: str):
        self.network = network
        self.party = party
        self.parties = network.parties
        self._box = network.mailbox(party)

    def send(self, dst: str, tag: str, payload: Payload) -> None:
        self.network.post(self.party, dst, tag, join_payload(payload))

    def recv(self, src: str, tag: str, timeout_s: float) -> bytes:
        if src not in self.parties:
            raise ConfigError(f"{self.party} waits for {tag!r} from {src!r}, not a party of this job")
        return self._box.take(src, tag, timeout_s)

    def abort(self, step: str | None, reason: str) -> None:
        self.network.drop(self.party, step, reason)

    def finish(self) -> None:
        self.network.finish(self.party)
