"""ECDH-PSI for three or more parties on a ring, as a sans-I/O state machine.

Theory of operation
-------------------
The multi-party extension of DH-PSI by repeated commutative blinding (the "multi-party
commutative encryption" PSI of Vaidya and Clifton, "Secure set intersection cardinality
with application to association rule mining", J. Computer Security 13(4), 2005, sec. 3),
arranged so that one party learns the intersection and nothing of pairwise overlaps.

The ring is ``(L, C, P_2, ..., P_m)``: L, the leader, is the first party to receive the
result; C, the comparer, is the next. Every party j has a secret scalar k_j and its set's
*route*: ``H(x)^{k_j}`` (shuffled by j) travels once around the ring, each hop applying its
own key, until it carries all n keys -- its *tags* ``H(x)^{k_0...k_m}``.

1. RELAYING. Every party streams its own route (``Hop`` batches) to its ring successor and
   relays every route it receives from its predecessor: blind each batch; once the route is
   complete, shuffle it with a fresh secret permutation (except the leader's route, which
   must return in the leader's order) and pass it on. The last hop of a route (the ring
   predecessor of its origin) sends the tags (``Tags``) to the leader for the leader's
   route and to C for every other route.
2. COMPARING. C intersects the tag sets of all non-leader routes and sends the common tags,
   sorted (``Common``), to L.
3. AWAITING_COMMON -> DONE. L marks the positions of its own tags found among them.

What each party learns (semi-honest, no collusion, random oracle + DDH): every party sees
every set's size pass by. L learns the intersection and the size of the non-leaders' joint
intersection (the number of common tags). C learns the sizes of all intersections among
the non-leaders' sets (it holds their tags) but no element: every tag set reaches it
shuffled by parties other than C, so it cannot link a tag to an item, not even its own.
Other parties learn nothing more. Two colluding parties can learn more (e.g. C with the
last hop of C's own route links C's tags); the two-party protocol has no such caveat.

Like the pair session this follows the ``fedcore.session`` contract and does no I/O and no
curve work: ``start`` asks for our own route (``HashBlind`` work), ``receive`` returns
``Blind`` work, ``blinded`` takes it back and returns the ``Send`` actions. Every wait polls
first, so a party flushes its pending work before it blocks (on a ring that waits on itself,
held work would stall everyone).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fedcore import wire
from fedcore.crypto.ecdh_psi import POINT_BYTES
from fedcore.errors import ProtocolError
from fedcore.psi._protocol import BatchStream, HashBlind, _check_points, own_batches
from fedcore.session import Recv, Send

TAG_HOP, TAG_TAGS, TAG_COMMON = "psi/ring", "psi/tags", "psi/common"


class RingStage(enum.Enum):
    """Where one party of a ring session is."""

    RELAYING = "relaying"
    COMPARING = "comparing"
    AWAITING_COMMON = "awaiting_common"
    DONE = "done"


@wire.message("fedcore.psi.Hop", layout=wire.Layout.TUPLE)
@dataclass(frozen=True)
class Hop:
    """Batch ``index`` of ``origin``'s route, blinded by the keys of the hops so far."""

    origin: str
    index: int
    total_items: int
    values: bytes

    def __post_init__(self) -> None:
        _check_route_fields(self, "Hop")

    @property
    def count(self) -> int:
        return len(self.values) // POINT_BYTES


@wire.message("fedcore.psi.Tags", layout=wire.Layout.TUPLE)
@dataclass(frozen=True)
class Tags:
    """Batch ``index`` of ``origin``'s finished route (all keys applied), to L or C."""

    origin: str
    index: int
    total_items: int
    values: bytes

    def __post_init__(self) -> None:
        _check_route_fields(self, "Tags")

    @property
    def count(self) -> int:
        return len(self.values) // POINT_BYTES


@wire.message("fedcore.psi.Common", layout=wire.Layout.SINGLE)
@dataclass(frozen=True)
class Common:
    """C -> L: the tags common to every non-leader set, sorted."""

    values: bytes

    def __post_init__(self) -> None:
        _check_points(self.values, "Common")


def _check_route_fields(message: Hop | Tags, what: str) -> None:
    if not isinstance(message.origin, str):
        raise ValueError(f"{what}.origin must be a party name")
    for name in ("index", "total_items"):
        value = getattr(message, name)
        if type(value) is not int or value < 0:
            raise ValueError(f"{what}.{name} must be a non-negative int")
    _check_points(message.values, what)


@dataclass(frozen=True)
class Blind:
    """Work item: blind this batch of ``origin``'s route with our key, then call ``blinded``."""

    origin: str
    index: int
    values: bytes


@dataclass
class _Stream(BatchStream):
    """One incoming stream of batches (a route at a hop, or tags at their destination)."""

    done_batches: int = 0
    parts: list[bytes] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.complete and self.done_batches == self.batches


def batches_of(values: bytes, batch_items: int) -> list[bytes]:
    """Cut concatenated points into batches; an empty set is one empty batch."""
    step = batch_items * POINT_BYTES
    return [values[i : i + step] for i in range(0, len(values), step)] or [b""]


def permute(values: bytes, order: Sequence[int]) -> bytes:
    """Reorder concatenated points: output point i is input point ``order[i]``."""
    return b"".join(values[k * POINT_BYTES : (k + 1) * POINT_BYTES] for k in order)


class RingSession:
    """One party of a ring PSI run (see the module header).

    Args:
        me: this party.
        ring: ``(leader, comparer, ...)``, the same tuple at every party (three or more).
        own_items: this party's set size.
        shuffle: returns a fresh secret permutation of ``range(count)``.
        batch_items: points per batch when a finished route is passed on.
    """

    def __init__(
        self,
        me: str,
        ring: Sequence[str],
        own_items: int,
        *,
        shuffle: Callable[[int], Sequence[int]],
        batch_items: int,
    ):
        self.me, self.ring = me, tuple(ring)
        if len(self.ring) < 3 or len(set(self.ring)) != len(self.ring) or me not in self.ring:
            raise ValueError("a ring needs three or more distinct parties, this one among them")
        self.leader, self.comparer = self.ring[0], self.ring[1]
        position = self.ring.index(me)
        self.successor, self.predecessor = self.ring[(position + 1) % len(self.ring)], self.ring[position - 1]
        self.own_items, self._shuffle, self._batch_items = own_items, shuffle, batch_items
        self._own_sent = 0
        self.routes = {origin: _Stream() for origin in self.ring if origin != me}
        self.tags: dict[str, bytes] = {}
        self._tags_in = {
            o: _Stream() for o in self.ring if self.destination(o) == me and self.last_hop(o) != me
        }
        self.common: bytes | None = None
        self._common_sent = False
        self.stage = RingStage.RELAYING

    def last_hop(self, origin: str) -> str:
        return self.ring[self.ring.index(origin) - 1]

    def destination(self, origin: str) -> str:
        return self.leader if origin == self.leader else self.comparer

    def _where(self, kind: str, sender: str, origin: str, index: int) -> str:
        return f"PSI {kind} batch {index} of {origin}'s set from {sender} to {self.me}"

    # -------------------------------------------------------------- the session contract

    def start(self) -> list[HashBlind]:
        """Our whole set, as work: each batch comes back through ``own_blinded``."""
        return own_batches(self.own_items, self._batch_items)

    def expect(self) -> Recv | None:
        """What to wait for next (polling first); None once nothing more is to come."""
        if not all(s.complete for s in self.routes.values()):
            return Recv((self.predecessor,), TAG_HOP, poll_first=True)
        for origin, stream in self._tags_in.items():
            if not stream.complete:
                return Recv((self.last_hop(origin),), TAG_TAGS, poll_first=True)
        if self.me == self.leader and self.common is None:
            return Recv((self.comparer,), TAG_COMMON, poll_first=True)
        return None

    def close(self) -> list[Send]:
        return []  # no tolerant waits: the ring needs every party

    def own_blinded(self, values: bytes) -> Send:
        """Our next batch of ``H(x)^k`` is ready: it starts our route at our successor."""
        message = Hop(self.me, self._own_sent, self.own_items, values)
        self._own_sent += 1
        return Send(self.successor, TAG_HOP, message)

    def receive(self, sender: str, message: object) -> list[Blind | Send]:
        """Take one message; returns the curve work it calls for and what it lets us send.

        Raises:
            ProtocolError: wrong sender, kind, route or order, or inconsistent sizes.
        """
        work = self._take(sender, message)
        return [*work, *self.advance()]

    def _take(self, sender: str, message: object) -> list[Blind]:
        """Check and keep one message; returns the curve work it calls for.

        Raises:
            ProtocolError: wrong sender, kind, route or order, or inconsistent sizes.
        """
        if isinstance(message, Hop):
            if sender != self.predecessor or message.origin not in self.routes:
                raise ProtocolError(f"PSI at {self.me}: unexpected Hop of {message.origin!r} from {sender}")
            where = self._where("Hop", sender, message.origin, message.index)
            self.routes[message.origin].accept(message, where)
            return [Blind(message.origin, message.index, message.values)]
        if isinstance(message, Tags):
            stream = self._tags_in.get(message.origin)
            if stream is None or sender != self.last_hop(message.origin):
                raise ProtocolError(f"PSI at {self.me}: unexpected Tags of {message.origin!r} from {sender}")
            stream.accept(message, self._where("Tags", sender, message.origin, message.index))
            stream.parts.append(message.values)
            if stream.complete:
                self.tags[message.origin] = b"".join(stream.parts)
            return []
        if isinstance(message, Common):
            if self.me != self.leader or sender != self.comparer or self.common is not None:
                raise ProtocolError(f"PSI at {self.me}: unexpected Common from {sender}")
            self.common = message.values
            return []
        raise ProtocolError(f"PSI at {self.me}: {sender} sent a {type(message).__name__}")

    def blinded(self, origin: str, index: int, values: bytes) -> list[Send]:
        """Our blinding of batch ``index`` of ``origin``'s route is done; pass the route on when whole."""
        return [*self._relay(origin, index, values), *self.advance()]

    def _relay(self, origin: str, index: int, values: bytes) -> list[Send]:
        stream = self.routes[origin]
        if index != stream.done_batches:
            raise ValueError(f"blinded batches must be reported in order: expected {stream.done_batches}")
        stream.parts.append(values)
        stream.done_batches += 1
        if not stream.finished:
            return []
        data, total = b"".join(stream.parts), stream.total or 0
        stream.parts = []
        if origin != self.leader:
            data = permute(data, self._shuffle(total))
        if self.successor != origin:
            return [
                Send(self.successor, TAG_HOP, Hop(origin, i, total, b))
                for i, b in enumerate(batches_of(data, self._batch_items))
            ]
        destination = self.destination(origin)
        if destination == self.me:
            self.tags[origin] = data
            return []
        return [
            Send(destination, TAG_TAGS, Tags(origin, i, total, b))
            for i, b in enumerate(batches_of(data, self._batch_items))
        ]

    def advance(self) -> list[Send]:
        """Move on once the work is done: C sends the common tags; stages update.

        ``receive`` and ``blinded`` call it; calling it again sends nothing twice.
        """
        sends: list[Send] = []
        relayed = all(s.finished for s in self.routes.values())
        non_leaders = [o for o in self.ring if o != self.leader]
        if self.me == self.comparer and not self._common_sent and all(o in self.tags for o in non_leaders):
            sends.append(Send(self.leader, TAG_COMMON, Common(self._intersect(non_leaders))))
            self._common_sent = True
        if not relayed:
            self.stage = RingStage.RELAYING
        elif self.me == self.comparer and not self._common_sent:
            self.stage = RingStage.COMPARING
        elif self.me == self.leader and (self.common is None or self.leader not in self.tags):
            self.stage = RingStage.AWAITING_COMMON
        else:
            self.stage = RingStage.DONE
        return sends

    def _intersect(self, origins: list[str]) -> bytes:
        common: set[bytes] | None = None
        for origin in origins:
            data = self.tags[origin]
            tags = {data[i : i + POINT_BYTES] for i in range(0, len(data), POINT_BYTES)}
            common = tags if common is None else common & tags
        return b"".join(sorted(common or ()))

    def matches(self) -> list[int]:
        """Leader only: positions (in its shuffled order) of its items in every other set.

        Raises:
            ProtocolError: not the leader, or not done.
        """
        if self.me != self.leader or self.stage is not RingStage.DONE or self.common is None:
            raise ProtocolError(f"PSI at {self.me}: no ring result (stage {self.stage.value})")
        common = {self.common[i : i + POINT_BYTES] for i in range(0, len(self.common), POINT_BYTES)}
        own = self.tags[self.leader]
        return [k for k in range(self.own_items) if own[k * POINT_BYTES : (k + 1) * POINT_BYTES] in common]
