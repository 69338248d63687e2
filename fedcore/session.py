"""The sans-I/O contract every multi-step protocol follows, and ``drive``, its one driver.

A protocol is a *session*: an object holding one party's state that takes messages in and
hands actions out, and never touches a socket, a clock or ``ctx``::

    start()              -> actions          # what to send first
    expect()             -> Recv | None      # what it waits for next; None: finished
    receive(src, msg)    -> actions          # one message in
    close()              -> actions          # a tolerant wait's deadline passed

An action is a ``Send(dst, tag, message)``, or a protocol's own work item (a batch to blind, a
model to fit) that ``drive`` hands to the protocol's ``handle`` callback; whatever ``handle``
returns is acted on too. ``drive(ctx, session)`` is the only code that does the I/O: it sends,
waits for what ``expect`` names (one source, or many under one deadline with the dropped, late
and garbled left out), and feeds the session until ``expect`` says it is done. So a protocol's
rules (its transition table) are all in its session module, and a session is tested by
feeding it messages, without parties or threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fedcore.context import Context, Garbled, Traffic
from fedcore.errors import PartyDropped, Timeout

__all__ = ["Garbled", "Recv", "Send", "Session", "drive", "perform"]


@dataclass(frozen=True)
class Send:
    """Action: send ``message`` to ``dst`` under ``tag``."""

    dst: str
    tag: str
    message: Any


@dataclass(frozen=True)
class Recv:
    """What a session waits for: one message under ``tag`` from each of ``sources``.

    Strict (the default): every source must answer within ``timeout`` (the job's when None);
    ``Timeout``, ``PartyDropped`` and ``DecodeError`` end the protocol. ``tolerant``: the sources
    share one deadline, a source that dropped or is late is left out, one whose bytes do not
    decode comes in as a ``Garbled`` message (so the session can record why), and then
    ``close()`` is called. ``poll_first`` (strict waits only): before blocking on a source, try
    it without waiting and call ``drive``'s ``idle`` hook when nothing is there (flush local
    work first, so a ring of parties waiting on each other cannot stall).
    """

    sources: tuple[str, ...]
    tag: str
    timeout: float | None = None
    tolerant: bool = False
    poll_first: bool = False

    def __post_init__(self) -> None:
        if self.tolerant and self.poll_first:
            raise ValueError(
                f"Recv {self.tag!r}: poll_first is for strict waits; a tolerant one shares a deadline"
            )


class Session(Protocol):
    """One party's side of a multi-step protocol (see the module docstring)."""

    def start(self) -> Sequence[Any]: ...

    def expect(self) -> Recv | None: ...

    def receive(self, src: str, message: Any) -> Sequence[Any]: ...

    def close(self) -> Sequence[Any]: ...


Handler = Callable[[Any], Iterable[Any] | None]


def perform(
    ctx: Context, actions: Iterable[Any], handle: Handler | None = None, *, lossy: bool = False
) -> None:
    """Carry out ``actions`` in order: send each ``Send``; give anything else to ``handle``.

    What ``handle`` returns is carried out next, before the rest (without recursion: a training
    job whose every round follows from the last one's work does not grow the stack).
    Consecutive sends of one message object under one tag (a round's start to every member)
    go out as one ``ctx.broadcast``, so the message is encoded once. With ``lossy`` a send to
    a party that is gone is skipped (an aggregator does not fail because a dropped client
    cannot get its answer).
    """
    pending: list[Iterator[Any]] = [iter(actions)]
    batch: list[Send] = []
    while pending:
        action = next(pending[-1], _EMPTY)
        if action is _EMPTY:
            pending.pop()
        elif isinstance(action, Send):
            if batch and not _joins(batch[0], action, ctx.party):
                _send(ctx, batch, lossy)
                batch = []
            batch.append(action)
        else:
            _send(ctx, batch, lossy)
            batch = []
            if handle is None:
                raise TypeError(f"a session returned {type(action).__name__}, and its driver has no handler")
            more = handle(action)
            if more is not None:
                pending.append(iter(more))
    _send(ctx, batch, lossy)


def _joins(first: Send, action: Send, me: str) -> bool:
    return action.message is first.message and action.tag == first.tag and me not in (first.dst, action.dst)


def _send(ctx: Context, batch: list[Send], lossy: bool) -> None:
    if len(batch) > 1:
        ctx.broadcast(batch[0].tag, batch[0].message, to=[s.dst for s in batch], lossy=lossy)
        return
    for action in batch:
        try:
            ctx.send(action.dst, action.tag, action.message)
        except PartyDropped:
            if not lossy:
                raise


def drive(
    ctx: Context,
    session: Session,
    *,
    timeout: float | None = None,
    handle: Handler | None = None,
    idle: Callable[[], None] | None = None,
    report: Callable[[Session], None] | None = None,
    lossy: bool = False,
) -> Traffic:
    """Run ``session`` to its end over ``ctx``; return the bytes it sent and received.

    Args:
        timeout: the wait of a ``Recv`` that names none (default: the job's).
        handle: carries out the protocol's own actions (anything but ``Send``).
        idle: called when a ``poll_first`` wait finds nothing yet.
        report: called before each wait (to report progress from the session's state).
        lossy: skip sends to parties that are gone (see ``perform``).
    """
    before = ctx.traffic.snapshot()
    perform(ctx, session.start(), handle, lossy=lossy)
    while (want := session.expect()) is not None:
        if report is not None:
            report(session)
        wait = timeout if want.timeout is None else want.timeout
        if want.tolerant:
            for src, message in ctx.collect(want.tag, want.sources, wait, tolerant=True):
                perform(ctx, session.receive(src, message), handle, lossy=lossy)
            perform(ctx, session.close(), handle, lossy=lossy)
            continue
        for src in want.sources:
            message = _poll(ctx, src, want.tag, idle) if want.poll_first else _EMPTY
            if message is _EMPTY:
                message = ctx.recv(src, want.tag, wait)
            perform(ctx, session.receive(src, message), handle, lossy=lossy)
    return ctx.traffic.snapshot() - before


_EMPTY: Any = object()  # "nothing there yet" (None is a message like any other)


def _poll(ctx: Context, src: str, tag: str, idle: Callable[[], None] | None) -> Any:
    try:
        return ctx.recv(src, tag, timeout=0)
    except Timeout:
        if idle is not None:
            idle()
        return _EMPTY
