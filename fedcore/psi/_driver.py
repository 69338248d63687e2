"""``intersect``: drives ECDH-PSI sessions over a ``Context`` and its runtime.

Two parties run one ``PairSession`` each. With three or more, every party runs a
``RingSession`` whose leader is the first party of ``reveal_to`` (in job order); the leader
then sends the intersection to the other parties of ``reveal_to``. See ``fedcore.psi`` for
what each party learns. Both are ``fedcore.session.drive`` calls: the sessions' curve work
(hashing our set, blinding a peer's batch) runs on the runtime, a few batches in flight
(``_Window``), and goes back into the session as each finishes.
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
from fedcore.errors import ConfigError, ProtocolError
from fedcore.psi._ids import decode_id, unique_encoded
from fedcore.psi._protocol import (
    BATCH_ITEMS,
    TAG_BLINDED,
    TAG_REBLINDED,
    HashBlind,
    PairSession,
    Reblind,
    Stage,
)
from fedcore.psi._ring import Blind, RingSession, RingStage
from fedcore.session import Session, drive, perform

__all__ = ["BATCH_ITEMS", "TAG_BLINDED", "TAG_REBLINDED", "TAG_REVEALED", "Revealed", "intersect"]

TAG_REVEALED = "psi/revealed"


@wire.message("fedcore.psi.Revealed", layout=wire.Layout.SINGLE, lists=("ids",))
@dataclass(frozen=True)
class Revealed:
    """The leader's final intersection, as canonical encodings in sorted order."""

    ids: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.ids, tuple) or not all(isinstance(i, bytes) for i in self.ids):
            raise ValueError("Revealed.ids must be a tuple of bytes")


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


def _secret_order(count: int) -> list[int]:
    rng = np.random.default_rng(int.from_bytes(os.urandom(32), "big"))
    order: list[int] = rng.permutation(count).tolist()
    return order


def _run(
    ctx: Context,
    session: Session,
    window: _Window,
    handle: Callable[[Any], None],
    timeout: float | None,
    report: Callable[[Session], None] | None = None,
) -> None:
    """Drive ``session`` to its end, then finish the work still in flight.

    ``idle`` drains the window: a party flushes its own pending work (whose results the
    peers wait for) before it blocks on a receive.
    """
    drive(ctx, session, timeout=timeout, handle=handle, idle=window.drain, report=report)
    window.drain()


def _run_pair(
    ctx: Context, plan: _Plan, encoded: list[bytes], timeout: float | None, batch_items: int
) -> set[bytes] | None:
    scalar = BlindingKey.generate().scalar_for_local_worker(ACCESS)
    shuffled = [encoded[i] for i in _secret_order(len(encoded))]
    peer = next(p for p in plan.parties if p != ctx.party)
    session = PairSession(
        ctx.party,
        peer,
        i_learn=ctx.party in plan.reveal_to,
        peer_learns=peer in plan.reveal_to,
        own_items=len(encoded),
        batch_items=batch_items,
    )
    window = _Window(ctx)

    def own_done(values: bytes) -> None:
        perform(ctx, [session.blinded(values)])

    def peer_done(values: bytes, *, index: int) -> None:
        perform(ctx, session.reblinded(index, values))

    def handle(work: Any) -> None:
        if isinstance(work, HashBlind):
            window.submit(own_done, hash_and_blind_batch, scalar, shuffled[work.start : work.stop])
        elif isinstance(work, Reblind):
            done = functools.partial(peer_done, index=work.index)
            window.submit(done, _blind_peer_batch, scalar, work.values)
        else:
            raise TypeError(f"PSI: no handler for {type(work).__name__}")

    steps: list[str] = []

    def report(_: Session) -> None:  # once per step, not per batch
        step = "psi/match" if session.peer_stream_complete else "psi/reblind"
        if step not in steps:
            steps.append(step)
            ctx.progress(step=step)

    ctx.progress(step="psi/blind")
    _run(ctx, session, window, handle, timeout, report)
    if session.stage is not Stage.DONE:
        raise ProtocolError(f"PSI at {ctx.party}: the run with {peer} ended at stage {session.stage.value}")
    return {shuffled[k] for k in session.matches()} if session.i_learn else None


def _run_ring(
    ctx: Context, plan: _Plan, encoded: list[bytes], timeout: float | None, batch_items: int
) -> set[bytes] | None:
    scalar = BlindingKey.generate().scalar_for_local_worker(ACCESS)
    shuffled = [encoded[i] for i in _secret_order(len(encoded))]
    session = RingSession(ctx.party, plan.ring, len(encoded), shuffle=_secret_order, batch_items=batch_items)
    window = _Window(ctx)

    def own_done(values: bytes) -> None:
        perform(ctx, [session.own_blinded(values)])

    def relay_done(values: bytes, *, origin: str, index: int) -> None:
        perform(ctx, session.blinded(origin, index, values))

    def handle(work: Any) -> None:
        if isinstance(work, HashBlind):
            window.submit(own_done, hash_and_blind_batch, scalar, shuffled[work.start : work.stop])
        elif isinstance(work, Blind):
            done = functools.partial(relay_done, origin=work.origin, index=work.index)
            window.submit(done, _blind_peer_batch, scalar, work.values)
        else:
            raise TypeError(f"PSI: no handler for {type(work).__name__}")

    ctx.progress(step="psi/ring")
    _run(ctx, session, window, handle, timeout)
    perform(ctx, session.advance())
    if session.stage is not RingStage.DONE:
        raise ProtocolError(f"PSI at {ctx.party}: the ring ended at stage {session.stage.value}")
    return {shuffled[k] for k in session.matches()} if ctx.party == plan.leader else None


def _blind_peer_batch(scalar: bytes, values: bytes) -> bytes:
    try:
        return blind_batch(scalar, values)
    except ValueError:
        raise ProtocolError("PSI: a peer sent a point of low order") from None


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
