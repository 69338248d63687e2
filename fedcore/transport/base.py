"""The transport seam: how one party's encoded messages reach another's mailbox.

A transport moves opaque byte payloads between the parties of one job. Its promises, which
the conformance suite in ``fedcore.testing`` checks for every implementation:

- ``send`` does not wait for the receiver to call ``recv``.
- Messages with the same (src, dst, tag) are delivered exactly once and in send order,
  even when the network below duplicates, reorders or retries them.
- ``recv`` waits at most ``timeout_s`` and then raises ``Timeout`` naming the party and tag.
- A message a party sent before it stopped is still delivered; once it has stopped and
  nothing is left from it, ``recv`` raises ``PartyDropped`` at once, naming it (and the step
  it reported when it aborted). A party whose script returned is "finished": waiting on it
  raises ``ProtocolError`` instead of hanging.
"""

from __future__ import annotations

import abc
import enum
import math
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fedcore.errors import ConfigError, PartyDropped, ProtocolError, Timeout

Buffer = bytes | bytearray | memoryview
Payload = Buffer | Sequence[Buffer]
"""What ``send`` takes: bytes, or a list of buffers such as ``wire.encode_parts`` returns."""


def join_payload(payload: Payload) -> bytes:
    """A payload as one bytes object (no copy when it already is one)."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    return b"".join(payload)


MAX_TAG_BYTES = 256
"""The longest tag (UTF-8 bytes) a message may carry; receivers refuse longer ones."""
EVENT_OVERHEAD = 256
"""Bytes every message counts against a mailbox beside its payload and tag: none counts as 0."""


def check_tag(tag: str) -> None:
    """Raise ``ConfigError`` for a tag that is not a string or is over ``MAX_TAG_BYTES``."""
    if not isinstance(tag, str):
        raise ConfigError(f"a message tag is a string, got {type(tag).__name__}")
    size = len(tag.encode())
    if size > MAX_TAG_BYTES:
        raise ConfigError(f"tag {tag[:40]!r}... is {size} bytes: tags are at most {MAX_TAG_BYTES} bytes")


def message_bytes(tag: str, payload: Buffer) -> int:
    """What one message counts against a mailbox: payload, tag and a fixed overhead."""
    return len(payload) + len(tag.encode()) + EVENT_OVERHEAD


PARTY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def check_party_names(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate a list of party names: unique, 1-64 chars of letters, digits, ``_ . -``."""
    for name in names:
        if not isinstance(name, str) or not PARTY_NAME.match(name):
            raise ConfigError(
                f"bad party name {name!r}: use 1-64 letters, digits, '_', '.' or '-', starting with a letter"
            )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"party name {name!r} is given twice: party names must be unique")
        seen.add(name)
    return tuple(names)


class Transport(abc.ABC):
    """Moves byte payloads for one party of one job."""

    party: str
    parties: tuple[str, ...]

    @abc.abstractmethod
    def send(self, dst: str, tag: str, payload: Payload) -> None:
        """Queue ``payload`` for ``dst`` under ``tag``; returns without waiting for ``recv``.

        ``payload`` may be a list of buffers (``wire.encode_parts``), which a streaming
        transport sends without joining; they must not change until ``send`` returns.
        """

    @abc.abstractmethod
    def recv(self, src: str, tag: str, timeout_s: float) -> Buffer:
        """Return the next payload from ``src`` under ``tag`` (a writable buffer is the caller's own).

        Raises:
            Timeout: nothing arrived within ``timeout_s``.
            PartyDropped: ``src`` stopped and nothing from it is left under ``tag``.
            ProtocolError: ``src`` finished its script without sending under ``tag``.
        """

    @abc.abstractmethod
    def abort(self, step: str | None, reason: str) -> None:
        """Tell every other party that this party failed (at ``step``, because ``reason``)."""

    def finish(self) -> None:  # noqa: B027 - optional for transports that need no goodbye
        """Tell the others this party's script returned normally."""

    def close(self) -> None:  # noqa: B027
        """Release the transport's resources."""


class Condition(Protocol):
    """What a mailbox needs of a condition variable (``threading.Condition`` has it)."""

    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: Any) -> Any: ...
    def wait(self, timeout: float | None = None) -> bool: ...
    def notify_all(self) -> None: ...


class PeerStatus(enum.StrEnum):
    """A peer's liveness as a mailbox knows it; ``dropped`` is final."""

    ALIVE = "alive"
    FINISHED = "finished"
    DROPPED = "dropped"


@dataclass
class PeerState:
    """What a mailbox knows about one peer's liveness."""

    status: PeerStatus = PeerStatus.ALIVE
    step: str | None = None
    reason: str = ""


@dataclass
class _Stream:
    """In-order, exactly-once reassembly of one (src, tag) stream."""

    next_seq: int = 0
    ready: deque[bytes] = field(default_factory=deque)
    early: dict[int, bytes] = field(default_factory=dict)


class PeerBoard:
    """Liveness of the parties of a job, shared by the mailboxes that read it.

    One board per network in simulation (so a party finishing is one write, not one per
    mailbox), one per mailbox on the wire. Mailboxes blocked in ``take`` register under the
    peer they wait on, so a status change wakes exactly those (a job of N parties ending is
    O(N) wake-ups, not O(N^2)).
    """

    def __init__(self) -> None:
        self._peers: dict[str, PeerState] = {}
        self._waiting: dict[str, set[Mailbox]] = {}
        self._lock = threading.Lock()

    def get(self, party: str) -> PeerState | None:
        return self._peers.get(party)

    def set(self, party: str, status: PeerStatus | str, step: str | None = None, reason: str = "") -> None:
        """Record ``party``'s status; ``ValueError`` for a status that is not a ``PeerStatus``."""
        new = PeerStatus(status)
        with self._lock:
            current = self._peers.get(party)
            if current is not None and current.status is PeerStatus.DROPPED:
                return  # the first reason a party was lost is the one worth reporting
            self._peers[party] = PeerState(new, step, reason)
            waiting = list(self._waiting.get(party, ()))
        for box in waiting:
            box.wake()

    def waiting(self, box: Mailbox, src: str, on: bool) -> None:
        """Register (or unregister) ``box`` as blocked on a message from ``src``."""
        with self._lock:
            if on:
                self._waiting.setdefault(src, set()).add(box)
                return
            boxes = self._waiting.get(src)
            if boxes is not None:
                boxes.discard(box)
                if not boxes:
                    del self._waiting[src]


class Mailbox:
    """A party's inbox: sequenced streams per (src, tag) plus peer liveness.

    Transports feed it ``deliver(src, tag, seq, payload)`` in any order and any number of
    times; it hands ``recv`` each seq once, in order.

    ``cond`` replaces the ``threading.Condition`` that ``take`` waits on, so a cooperative
    engine can park a task instead of an OS thread (``fedcore.sim._hub.CoopCondition``).
    """

    def __init__(
        self,
        party: str,
        max_bytes: int | None = None,
        board: PeerBoard | None = None,
        cond: Condition | None = None,
    ):
        self.party = party
        self.max_bytes = max_bytes
        self._bytes = 0
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._board = board or PeerBoard()
        self._cond: Condition = threading.Condition() if cond is None else cond

    def deliver(self, src: str, tag: str, seq: int, payload: bytes) -> bool:
        """Accept one sequenced message; returns False for a duplicate."""
        with self._cond:
            stream = self._streams.setdefault((src, tag), _Stream())
            if seq < stream.next_seq or seq in stream.early:
                return False
            cost = message_bytes(tag, payload)
            if self.max_bytes is not None and self._bytes + cost > self.max_bytes:
                raise ProtocolError(
                    f"mailbox of {self.party} is full ({self.max_bytes} bytes): {src} sent "
                    f"more than the receiver has read; raise the job's mailbox limit or read sooner"
                )
            self._bytes += cost
            stream.early[seq] = payload
            while stream.next_seq in stream.early:
                stream.ready.append(stream.early.pop(stream.next_seq))
                stream.next_seq += 1
            self._cond.notify_all()
            return True

    @property
    def used(self) -> int:
        """Bytes the unread messages count against ``max_bytes``."""
        return self._bytes

    def set_peer(self, src: str, status: PeerStatus | str, step: str | None = None, reason: str = "") -> None:
        """Record that ``src`` finished or dropped; wakes every waiting ``recv``."""
        self._board.set(src, status, step, reason)

    def peer(self, src: str) -> PeerState:
        return self._board.get(src) or PeerState()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def take(self, src: str, tag: str, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s if math.isfinite(timeout_s) else math.inf
        with self._cond:
            while True:
                stream = self._streams.get((src, tag))
                if stream is not None and stream.ready:
                    payload = stream.ready.popleft()
                    self._bytes -= message_bytes(tag, payload)
                    return payload
                self._raise_if_gone(src, tag)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Timeout(
                        f"{self.party} waited {timeout_s:g} s for {tag!r} from {src} and got "
                        f"nothing; is {src} running and at the same step?",
                        party=src,
                        tag=tag,
                    )
                self._board.waiting(self, src, True)
                try:
                    self._raise_if_gone(src, tag)  # re-check: a change may have raced the register
                    self._cond.wait(min(remaining, 3600.0))
                finally:
                    self._board.waiting(self, src, False)

    def _raise_if_gone(self, src: str, tag: str) -> None:
        state = self._board.get(src)
        if state is None or state.status is PeerStatus.ALIVE:
            return
        if state.status is PeerStatus.FINISHED:
            raise ProtocolError(
                f"{src} finished its script without sending {tag!r} to {self.party}: "
                "the parties disagree about the protocol's steps"
            )
        at = f" at step {state.step!r}" if state.step else ""
        raise PartyDropped(
            f"{src} dropped out{at} ({state.reason}) before sending {tag!r} to {self.party}",
            party=src,
            step=state.step,
        )
