"""ECDH-PSI between two parties, as a sans-I/O state machine (messages in, actions out).

Theory of operation
-------------------
The Diffie-Hellman PSI of Huberman, Franklin and Hogg ("Enhancing privacy and trust in
electronic communities", EC 1999), as described by De Cristofaro and Tsudik (FC 2010, sec. 3)
and used by SecretFlow's ECDH-PSI. Party A holds set X and secret ``a``; B holds Y and ``b``;
``H`` hashes an identifier to Curve25519 (``fedcore.crypto.ecdh_psi``).

1. BLINDING. Each side shuffles its set with a secret permutation and streams
   ``Blinded`` batches of ``H(x)^a`` (resp. ``H(y)^b``) to the other. Every batch carries the
   sender's set size, so the stream ends when that many values arrived (an empty set sends
   one empty batch).
2. Each side blinds the peer's values again, ``H(y)^(ba)``. If the peer is to learn the
   result, it returns them as ``Reblinded`` batches, in the order received, so the peer can
   line them up with its own (shuffled) items. If this side is to learn the result, it keeps
   the set of those doubly blinded values.
3. AWAITING_RETURN -> DONE. A side that learns waits for its own values back, ``H(x)^(ab)``,
   and reports the positions (in its shuffled order) whose value is in the peer's set.

What each side learns (semi-honest, random oracle, DDH on Curve25519 and its twist): the other
set's size, and -- only if it is a receiver -- which of its own items are in the other set.
The peer's values it sees are blinded by an unknown exponent and shuffled, so neither the
other items nor their order leak. A dishonest peer can lie about its set (any PSI allows
that), stall (Timeout) or send malformed batches (ProtocolError naming it); it cannot make
this side reveal more than the above. There is no dropout rule: PSI needs both sides.

This module does no I/O and no curve work. It follows the ``fedcore.session`` contract:
``start`` asks for our own batches (``HashBlind`` work items), ``expect`` names what comes
next, ``receive`` returns ``Reblind`` work items; ``blinded`` and ``reblinded`` take the
finished work and return the ``Send`` actions (tag chosen here). The driver
(``fedcore.psi._driver``) runs the work on its runtime and carries the sends.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from fedcore import wire
from fedcore.crypto.ecdh_psi import POINT_BYTES
from fedcore.errors import ProtocolError
from fedcore.session import Recv, Send

BATCH_ITEMS = 8192
TAG_BLINDED, TAG_REBLINDED = "psi/blinded", "psi/reblinded"


class Stage(enum.Enum):
    """Where one side of a pair session is."""

    BLINDING = "blinding"
    AWAITING_RETURN = "awaiting_return"
    DONE = "done"


def _check_points(values: bytes, what: str) -> None:
    if not isinstance(values, bytes) or len(values) % POINT_BYTES:
        raise ValueError(f"{what}.values must be bytes, a multiple of {POINT_BYTES} long")


@wire.message("fedcore.psi.Blinded", layout=wire.Layout.TUPLE)
@dataclass(frozen=True)
class Blinded:
    """One batch of the sender's shuffled set, blinded once by the sender: ``H(x)^a``."""

    index: int
    total_items: int
    values: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.index, int) or self.index < 0:
            raise ValueError("Blinded.index must be a non-negative int")
        if not isinstance(self.total_items, int) or self.total_items < 0:
            raise ValueError("Blinded.total_items must be a non-negative int")
        _check_points(self.values, "Blinded")

    @property
    def count(self) -> int:
        return len(self.values) // POINT_BYTES


@wire.message("fedcore.psi.Reblinded", layout=wire.Layout.TUPLE)
@dataclass(frozen=True)
class Reblinded:
    """Batch ``index`` of the receiver's own ``Blinded`` stream, blinded again: ``H(x)^(ab)``."""

    index: int
    values: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.index, int) or self.index < 0:
            raise ValueError("Reblinded.index must be a non-negative int")
        _check_points(self.values, "Reblinded")


@dataclass(frozen=True)
class HashBlind:
    """Work item: hash our items ``[start, stop)`` (in our shuffled order) to the curve and
    blind them with our key, then call ``blinded`` (an empty set is one empty batch)."""

    start: int
    stop: int


def own_batches(own_items: int, batch_items: int) -> list[HashBlind]:
    """Our set cut into batches of ``batch_items``; an empty set is one empty batch."""
    return [HashBlind(i, min(i + batch_items, own_items)) for i in range(0, max(1, own_items), batch_items)]


@dataclass(frozen=True)
class Reblind:
    """Work item: blind the peer's batch ``index`` with our key, then call ``reblinded``."""

    peer: str
    index: int
    values: bytes


@dataclass
class BatchStream:
    """Counts one incoming stream of batches and refuses any batch that breaks its order or size."""

    total: int | None = None
    received: int = 0
    batches: int = 0

    def accept(self, message: Any, where: str) -> None:
        """Check and count a batch (``index``, ``count``, ``total_items``) or raise ProtocolError."""
        if self.complete:
            raise ProtocolError(f"{where}: the stream was already complete")
        if message.index != self.batches:
            raise ProtocolError(f"{where}: expected batch {self.batches}")
        if self.total is not None and message.total_items != self.total:
            raise ProtocolError(f"{where}: set size changed from {self.total} to {message.total_items}")
        if self.received + message.count > message.total_items:
            raise ProtocolError(f"{where}: more values than its set size {message.total_items}")
        if message.count == 0 and message.total_items != 0:
            raise ProtocolError(f"{where}: an empty batch from a non-empty set")
        self.total = message.total_items
        self.received += message.count
        self.batches += 1

    @property
    def complete(self) -> bool:
        return self.total is not None and self.received == self.total


class PairSession:
    """One side of a two-party ECDH-PSI run.

    Args:
        me: this party.
        peer: the other party.
        i_learn: whether this side receives the result.
        peer_learns: whether the peer receives it (we then return its values reblinded).
        own_items: this side's set size.
        batch_items: points per batch of our own stream (``start``'s work items).
    """

    def __init__(
        self,
        me: str,
        peer: str,
        *,
        i_learn: bool,
        peer_learns: bool,
        own_items: int,
        batch_items: int = BATCH_ITEMS,
    ):
        if type(batch_items) is not int or batch_items < 1:
            raise ValueError(f"batch_items must be a positive int, got {batch_items!r}")
        self.me, self.peer = me, peer
        self.i_learn, self.peer_learns = i_learn, peer_learns
        self.own_items, self.batch_items = own_items, batch_items
        self.stage = Stage.BLINDING
        self._sent_counts: list[int] = []
        self._peer_stream = BatchStream()
        self._peer_reblinded = 0
        self._returned: list[bytes] = []
        self.peer_double: set[bytes] = set()

    # -------------------------------------------------------------- the session contract

    def start(self) -> list[HashBlind]:
        """Our whole set, as work: each batch comes back through ``blinded``."""
        return own_batches(self.own_items, self.batch_items)

    def expect(self) -> Recv | None:
        """The peer's blinded stream, then (if we learn) our own values back; None at the end.

        Every wait polls first: while nothing has come, the driver finishes our pending curve
        work (and so sends what the peer waits for) before it blocks.
        """
        if not self.peer_stream_complete:
            return Recv((self.peer,), TAG_BLINDED, poll_first=True)
        if self.i_learn and not self._returned_all:
            return Recv((self.peer,), TAG_REBLINDED, poll_first=True)
        return None

    def close(self) -> list[Send]:
        return []  # no tolerant waits: PSI needs both sides

    # -------------------------------------------------------------- our stream

    def blinded(self, values: bytes) -> Send:
        """Our next batch of ``H(x)^a`` is ready: the message that carries it to the peer."""
        message = Blinded(len(self._sent_counts), self.own_items, values)
        if sum(self._sent_counts) + message.count > self.own_items:
            raise ValueError("more blinded values than the set size given to the session")
        self._sent_counts.append(message.count)
        return Send(self.peer, TAG_BLINDED, message)

    @property
    def sent_all(self) -> bool:
        return bool(self._sent_counts) and sum(self._sent_counts) == self.own_items

    # -------------------------------------------------------------- from the peer

    def receive(self, sender: str, message: object) -> list[Reblind]:
        """Take one message from the peer; returns the curve work it calls for.

        Raises:
            ProtocolError: the message is from the wrong party, of the wrong kind or stage,
                out of order, or inconsistent with what came before.
        """
        if sender != self.peer:
            raise ProtocolError(f"PSI at {self.me}: message from {sender}, expected only {self.peer}")
        if isinstance(message, Blinded):
            return [self._on_blinded(message)]
        if isinstance(message, Reblinded):
            self._on_reblinded(message)
            return []
        raise ProtocolError(f"PSI at {self.me}: {sender} sent a {type(message).__name__}")

    def _on_blinded(self, message: Blinded) -> Reblind:
        where = f"PSI Blinded batch {message.index} from {self.peer} to {self.me}"
        self._peer_stream.accept(message, where)
        return Reblind(self.peer, message.index, message.values)

    def _on_reblinded(self, message: Reblinded) -> None:
        where = f"PSI Reblinded batch {message.index} from {self.peer} to {self.me}"
        if not self.i_learn:
            raise ProtocolError(f"{where}: {self.me} does not receive the result")
        if message.index != len(self._returned):
            raise ProtocolError(f"{where}: expected batch {len(self._returned)}")
        if message.index >= len(self._sent_counts):
            raise ProtocolError(f"{where}: only {len(self._sent_counts)} batches were sent")
        expected = self._sent_counts[message.index]
        if len(message.values) != expected * POINT_BYTES:
            got = len(message.values) // POINT_BYTES
            raise ProtocolError(f"{where}: expected {expected} values, got {got}")
        self._returned.append(message.values)
        self._advance()

    # -------------------------------------------------------------- our work done

    def reblinded(self, index: int, values: bytes) -> list[Send]:
        """The peer's batch ``index`` is blinded again: keep it and/or send it back."""
        if index != self._peer_reblinded:
            raise ValueError(f"reblinded batches must be reported in order: expected {self._peer_reblinded}")
        self._peer_reblinded += 1
        if self.i_learn:
            self.peer_double.update(values[i : i + POINT_BYTES] for i in range(0, len(values), POINT_BYTES))
        self._advance()
        return [Send(self.peer, TAG_REBLINDED, Reblinded(index, values))] if self.peer_learns else []

    @property
    def peer_stream_complete(self) -> bool:
        return self._peer_stream.complete

    def _advance(self) -> None:
        if (
            self.stage is Stage.BLINDING
            and self.peer_stream_complete
            and (self._peer_reblinded == self._peer_stream.batches)
        ):
            self.stage = Stage.AWAITING_RETURN
        if self.stage is Stage.AWAITING_RETURN and (self._returned_all or not self.i_learn):
            self.stage = Stage.DONE

    @property
    def _returned_all(self) -> bool:
        return self.sent_all and len(self._returned) == len(self._sent_counts)

    # -------------------------------------------------------------- result

    @property
    def peer_size(self) -> int | None:
        """The peer's set size, once its first batch arrived."""
        return self._peer_stream.total

    def matches(self) -> list[int]:
        """Positions, in our shuffled order, of our items that are in the peer's set.

        Raises:
            ProtocolError: called before the session is done or on a side that does not learn.
        """
        if not self.i_learn or self.stage is not Stage.DONE:
            raise ProtocolError(f"PSI at {self.me}: no result with {self.peer} (stage {self.stage.value})")
        own = b"".join(self._returned)
        peer = self.peer_double
        return [k for k in range(self.own_items) if own[k * POINT_BYTES : (k + 1) * POINT_BYTES] in peer]
