"""What bounds a peer on the peer port: membership, per-peer call slots, idle deadlines, safe logs.

A peer that holds a CA-signed certificate can still try to stall or exhaust the daemon. The
server's handlers hold a worker thread each, so every call first takes one of its peer's
``peer_streams`` slots (over the cap it is refused at once), and a single watchdog thread
cancels a call that waits for the peer's next frame longer than ``stream_idle_s``. One peer
can therefore hold at most its share of the workers, never all of them. Strings a peer chose
(tags, steps, reasons, claimed ids) go into log lines only through ``safe``, and refusals are
logged through a per-peer rate limit so that a peer cannot fill the disk.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import grpc

from fedcore.errors import AuthError, ProtocolError
from fedcore.transport._grpc_wire import log

LOG_TEXT_CHARS = 80  # peer-supplied text in a log line is cut to this many characters


@dataclass(frozen=True)
class PortLimits:
    """Bounds on what one peer can make this node hold (``[limits]`` keys of the same names).

    Attributes:
        peer_streams: concurrent calls (streams) one peer may have open at this node.
        stream_idle_s: a call waiting this long for the peer's next frame is cancelled.
        keepalive_s: HTTP/2 keepalive ping interval; a connection silent to pings is closed.
        connection_age_s: a connection is closed (after a grace period) once this old; the
            peer reconnects, so a connection cannot be held forever.
        pending_bytes: bytes buffered for jobs not opened yet, all peers together (each peer
            gets an equal share).
    """

    peer_streams: int = 16
    stream_idle_s: float = 30.0
    keepalive_s: float = 30.0
    connection_age_s: float = 3600.0
    pending_bytes: int = 64 << 20


@dataclass(frozen=True)
class Revoked:
    """Certificates refused although the CA signed them: by party id, or by serial number."""

    ids: frozenset[str] = frozenset()
    serials: frozenset[int] = frozenset()


def safe(text: object, limit: int = LOG_TEXT_CHARS) -> str:
    """Peer-supplied text for a log line: control and non-ASCII characters escaped, cut to ``limit``."""
    raw = str(text)
    cut = raw[:limit]
    escaped = repr(cut)[1:-1].encode("ascii", "backslashreplace").decode("ascii")
    return escaped + (f"...(+{len(raw) - limit} chars)" if len(raw) > limit else "")


class RateLimit:
    """At most ``burst`` log lines per key per ``window_s``; counts what it suppressed."""

    def __init__(self, burst: int = 10, window_s: float = 60.0, keys: int = 1024):
        self.burst, self.window_s, self.keys = burst, window_s, keys
        self._state: OrderedDict[str, list[float]] = OrderedDict()  # key -> [window start, sent, dropped]
        self._lock = threading.Lock()

    def allow(self, key: str) -> tuple[bool, int]:
        """Whether to log now, and how many lines for ``key`` were suppressed since the last one."""
        now = time.monotonic()
        with self._lock:
            state = self._state.get(key)
            if state is None or now - state[0] > self.window_s:
                dropped = int(state[2]) if state else 0
                self._state[key] = [now, 1, 0]
                self._state.move_to_end(key)
                while len(self._state) > self.keys:
                    self._state.popitem(last=False)
                return True, dropped
            if state[1] < self.burst:
                state[1] += 1
                dropped, state[2] = int(state[2]), 0
                return True, dropped
            state[2] += 1
            return False, 0


@dataclass
class Slot:
    """One call a peer holds; ``waiting`` while the handler waits for the peer's next frame."""

    peer: str
    context: grpc.ServicerContext
    last: float = field(default_factory=time.monotonic)
    waiting: bool = True

    def touch(self) -> None:
        self.last = time.monotonic()


class StreamGuard:
    """Per-peer call slots and the idle-deadline watchdog (one thread for every call)."""

    def __init__(self, party: str, limits: PortLimits):
        self.party, self.limits = party, limits
        self._slots: dict[int, Slot] = {}
        self._per_peer: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"fc-idle-{party}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def take(self, peer: str, context: grpc.ServicerContext) -> Slot:
        """A slot for one call of ``peer``.

        Raises:
            ProtocolError: ``peer`` already holds ``peer_streams`` calls here.
        """
        with self._lock:
            held = self._per_peer.get(peer, 0)
            if held >= self.limits.peer_streams:
                raise ProtocolError(
                    f"{peer} already has {held} calls open at {self.party}, the most one peer may "
                    "hold ([limits] peer_streams); finish or cancel some first"
                )
            self._per_peer[peer] = held + 1
            slot = Slot(peer, context)
            self._slots[id(slot)] = slot
        return slot

    def give(self, slot: Slot) -> None:
        with self._lock:
            if self._slots.pop(id(slot), None) is not None:
                self._per_peer[slot.peer] -= 1
                if not self._per_peer[slot.peer]:
                    del self._per_peer[slot.peer]

    def held(self, peer: str) -> int:
        with self._lock:
            return self._per_peer.get(peer, 0)

    def _watch(self) -> None:
        idle_s = self.limits.stream_idle_s
        while not self._stopped.wait(min(1.0, idle_s / 4)):
            now = time.monotonic()
            with self._lock:
                stale = [s for s in self._slots.values() if s.waiting and now - s.last > idle_s]
            for slot in stale:
                slot.waiting = False  # cancel once
                slot.context.cancel()  # wakes the handler's request iterator: its thread is free again
                log.warning(
                    "party=%s cancelled a call from %s that sent nothing for %g s ([limits] stream_idle_s)",
                    self.party,
                    slot.peer,
                    idle_s,
                )


class Membership:
    """Who may call this node: itself and its configured peers, minus revoked certificates."""

    def __init__(self, party: str, revoked: Revoked):
        self.party = party
        self.revoked = revoked
        self.members: frozenset[str] = frozenset({party})

    def set_peers(self, peers: list[str]) -> None:
        self.members = frozenset({self.party, *peers})

    def check(self, party: str, serial: int) -> None:
        """Raises ``AuthError`` for a certificate of a non-member or a revoked one."""
        if party in self.revoked.ids or serial in self.revoked.serials:
            raise AuthError(
                f"the certificate of {party} (serial {serial:#x}) is revoked at {self.party} "
                "([revocation] in its party.toml): it is no longer served"
            )
        if party not in self.members:
            raise AuthError(
                f"{party} is not a member of {self.party}'s federation (not in its [peers]): refused"
            )
