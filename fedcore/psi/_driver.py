"""``intersect``: drives ECDH-PSI sessions over a ``Context`` and its runtime.

Two parties run one ``PairSession`` each. With three or more, every party runs a
``RingSession`` whose leader is the first party of ``reveal_to`` (in job order); the leader
then sends the intersection to the other parties of ``reveal_to``. See ``fedcore.psi`` for
what each party learns.
"""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedcore import wire
from fedcore.context import Context
from fedcore.crypto.ecdh_psi import BlindingKey, blind_batch, hash_and_blind_batch
from fedcore.crypto.secret import ACCESS
from fedcore.errors import ConfigError, ProtocolError, Timeout
from fedcore.psi._ids import decode_id, unique_encoded
from fedcore.psi._protocol import Blinded, PairSession, Reblinded, Send, Stage
from fedcore.psi._ring import Common, Hop, RingSend, RingSession, RingStage, Tags

BATCH_ITEMS = 8192
TAG_BLINDED, TAG_REBLINDED, TAG_REVEALED = "psi/blinded", "psi/reblinded", "psi/revealed"


@dataclass(frozen=True)
class Revealed:
    """The leader's final intersection, as canonical encodings in sorted order."""

    ids: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.ids, tuple) or not all(isinstance(i, bytes) for i in self.ids):
            raise ValueError("Revealed.ids must be a tuple of bytes")


wire.register(Blinded, "fedcore.psi.Blinded",
              to_state=lambda m: (m.index, m.total_items, m.values),
              from_state=lambda s: Blinded(*s))
wire.register(Reblinded, "fedcore.psi.Reblinded",
              to_state=lambda m: (m.index, m.values), from_state=lambda s: Reblinded(*s))
wire.register(Hop, "fedcore.psi.Hop", to_state=lambda m: (m.origin, m.index, m.total_items, m.values),
              from_state=lambda s: Hop(*s))
wire.register(Tags, "fedcore.psi.Tags", to_state=lambda m: (m.origin, m.index, m.total_items, m.values),
              from_state=lambda s: Tags(*s))
wire.register(Common, "fedcore.psi.Common", to_state=lambda m: m.values, from_state=Common)
wire.register(Revealed, "fedcore.psi.Revealed",
              to_state=lambda m: list(m.ids), from_state=lambda s: Revealed(tuple(s)))


@dataclass(frozen=True)
class _Plan:
    parties: tuple[str, ...]
    reveal_to: tuple[str, ...]
    leader: str

    @property
    def ring(self) -> tuple[str, ...]:
        """Leader first, then the others in job order (three or more parties)."""
        return (self.leader, *(p for p in self.parties if p != self.leader))


def intersect(
    ctx: Context,
    ids: Iterable[Any],
    *,
    parties: Sequence[str] | None = None,
    reveal_to: Sequence[str] | None = None,
    return_positions: bool = False,
    timeout: float | None = None,
    batch_items: int = BATCH_ITEMS,
) -> list[Any] | None:
    """Intersect this party's ``ids`` with those of the other ``parties`` (see ``fedcore.psi``).

    Returns:
        For a party in ``reveal_to``: the common identifiers sorted by canonical encoding (the
        same order at every party), or with ``return_positions`` the position in ``ids`` of
        the first occurrence of each. ``None`` for the other parties.

    Raises:
        ConfigError: bad ``parties``/``reveal_to``, or this party is not among ``parties``.
        TypeError: an identifier is not a str or int.
        ProtocolError: a peer broke the protocol (Timeout / PartyDropped included).
    """
    plan = _make_plan(ctx, parties, reveal_to)
    if not isinstance(batch_items, int) or batch_items < 1:
        raise ConfigError(f"batch_items must be a positive int, got {batch_items!r}")
    encoded, first = unique_encoded(ids)
    if len(plan.parties) == 2:
        common = _run_pair(ctx, plan, encoded, timeout, batch_items)
    else:
        common = _reveal(ctx, plan, _run_ring(ctx, plan, encoded, timeout, batch_items), first, timeout)
    if ctx.party not in plan.reveal_to or common is None:
        return None
    ordered = sorted(common)
    return [first[e] for e in ordered] if return_positions else [decode_id(e) for e in ordered]


def _make_plan(ctx: Context, parties: Sequence[str] | None, reveal_to: Sequence[str] | None) -> _Plan:
    chosen = tuple(ctx.parties) if parties is None else tuple(parties)
    if len(set(chosen)) != len(chosen) or any(p not in ctx.parties for p in chosen):
        raise ConfigError(
            f"PSI parties must be distinct parties of the job {list(ctx.parties)}, got {list(chosen)}"
        )
    if len(chosen) < 2:
        raise ConfigError(f"PSI needs at least two parties, got {list(chosen)}")
    if ctx.party not in chosen:
        raise ConfigError(f"{ctx.party} called PSI but is not one of its parties {list(chosen)}")
    reveal = chosen if reveal_to is None else tuple(reveal_to)
    if not reveal or any(p not in chosen for p in reveal):
        raise ConfigError(
            f"reveal_to must be a non-empty subset of the PSI parties {list(chosen)}, got {list(reveal)}"
        )
    ordered = tuple(p for p in ctx.parties if p in chosen)
    leader = next(p for p in ordered if p in reveal)
    return _Plan(ordered, tuple(p for p in ordered if p in reveal), leader)


class _Window:
    """Keeps up to ``size`` tasks in flight on the runtime and hands back results in order."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.size = 3 * max(1, ctx.runtime.workers)
        self.pending: deque[tuple[Callable[[Any], None], Future[Any]]] = deque()

    def submit(self, done: Callable[[Any], None], fn: Callable[..., Any], *args: Any) -> None:
        while len(self.pending) >= self.size:
            self.pop()
        self.pending.append((done, self.ctx.runtime.submit(fn, *args)))

    def pop(self) -> None:
        done, future = self.pending.popleft()
        done(future.result())

    def drain(self) -> None:
        while self.pending:
            self.pop()


def _secret_order(count: int) -> np.ndarray:
    return np.random.default_rng(int.from_bytes(os.urandom(32), "big")).permutation(count)


def _hash_and_send(
    window: _Window, scalar: bytes, shuffled: list[bytes], batch_items: int, deliver: Callable[[bytes], None]
) -> None:
    for start in range(0, max(1, len(shuffled)), batch_items):
        window.submit(deliver, hash_and_blind_batch, scalar, shuffled[start : start + batch_items])


def _run_pair(
    ctx: Context, plan: _Plan, encoded: list[bytes], timeout: float | None, batch_items: int
) -> set[bytes] | None:
    scalar = BlindingKey.generate().scalar_for_local_worker(ACCESS)
    shuffled = [encoded[i] for i in _secret_order(len(encoded))]
    peer = next(p for p in plan.parties if p != ctx.party)
    session = PairSession(ctx.party, peer, i_learn=ctx.party in plan.reveal_to,
                          peer_learns=peer in plan.reveal_to, own_items=len(encoded))
    window = _Window(ctx)
    ctx.progress(step="psi/blind")
    _hash_and_send(window, scalar, shuffled, batch_items, lambda v: _send_all(ctx, [session.blinded(v)]))
    window.drain()
    ctx.progress(step="psi/reblind")
    _reblind_peer(ctx, session, window, scalar, timeout)
    window.drain()
    if not session.i_learn:
        return None
    ctx.progress(step="psi/match")
    while not _returned_all(session):
        session.receive(peer, ctx.recv(peer, TAG_REBLINDED, timeout))
    return {shuffled[k] for k in session.matches()}


def _run_ring(
    ctx: Context, plan: _Plan, encoded: list[bytes], timeout: float | None, batch_items: int
) -> set[bytes] | None:
    scalar = BlindingKey.generate().scalar_for_local_worker(ACCESS)
    shuffled = [encoded[i] for i in _secret_order(len(encoded))]
    session = RingSession(ctx.party, plan.ring, len(encoded), shuffle=_secret_order, batch_items=batch_items)
    window = _Window(ctx)

    def deliver(values: bytes, *, origin: str, index: int) -> None:
        _send_ring(ctx, session.blinded(origin, index, values) + session.advance())

    ctx.progress(step="psi/ring")
    _hash_and_send(window, scalar, shuffled, batch_items, lambda v: _send_ring(ctx, [session.own_blinded(v)]))
    while (waiting := session.expect()) is not None:
        message = _poll(ctx, *waiting)
        if message is None:  # nothing there yet: flush our own work first, or the ring could stall
            window.drain()
            message = ctx.recv(*waiting, timeout)
        for work in session.receive(waiting[0], message):
            callback = functools.partial(deliver, origin=work.origin, index=work.index)
            window.submit(callback, _blind_peer_batch, scalar, work.values)
        _send_ring(ctx, session.advance())
    window.drain()
    _send_ring(ctx, session.advance())
    if session.stage is not RingStage.DONE:
        raise ProtocolError(f"PSI at {ctx.party}: the ring ended at stage {session.stage.value}")
    return {shuffled[k] for k in session.matches()} if ctx.party == plan.leader else None


def _poll(ctx: Context, src: str, tag: str) -> Any:
    try:
        return ctx.recv(src, tag, timeout=0)
    except Timeout:
        return None


def _send_ring(ctx: Context, sends: list[RingSend]) -> None:
    for send in sends:
        ctx.send(send.dst, send.message.TAG, send.message)


def _returned_all(session: PairSession) -> bool:
    return session.stage is Stage.DONE


def _reblind_peer(
    ctx: Context, session: PairSession, window: _Window, scalar: bytes, timeout: float | None
) -> None:
    def done(values: bytes, *, index: int) -> None:
        _send_all(ctx, session.reblinded(index, values))

    while not session.peer_stream_complete:
        for work in session.receive(session.peer, ctx.recv(session.peer, TAG_BLINDED, timeout)):
            callback = functools.partial(done, index=work.index)
            window.submit(callback, _blind_peer_batch, scalar, work.values)


def _blind_peer_batch(scalar: bytes, values: bytes) -> bytes:
    try:
        return blind_batch(scalar, values)
    except ValueError:
        raise ProtocolError("PSI: a peer sent a point of low order") from None


def _send_all(ctx: Context, sends: list[Send]) -> None:
    for send in sends:
        tag = TAG_BLINDED if isinstance(send.message, Blinded) else TAG_REBLINDED
        ctx.send(send.dst, tag, send.message)


def _reveal(
    ctx: Context, plan: _Plan, common: set[bytes] | None, first: dict[bytes, int], timeout: float | None
) -> set[bytes] | None:
    others = [p for p in plan.reveal_to if p != plan.leader]
    if ctx.party == plan.leader:
        ctx.broadcast(TAG_REVEALED, Revealed(tuple(sorted(common or ()))), to=others)
        return common
    if ctx.party not in others:
        return None
    message = ctx.recv(plan.leader, TAG_REVEALED, timeout)
    if not isinstance(message, Revealed):
        raise ProtocolError(f"PSI: {plan.leader} sent a {type(message).__name__} as the result")
    unknown = sum(1 for e in message.ids if e not in first)
    if unknown:
        raise ProtocolError(
            f"PSI result from {plan.leader} names {unknown} identifiers {ctx.party} does not hold"
        )
    return set(message.ids)
