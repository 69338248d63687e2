"""``drive``: one small toy protocol run over a real local simulation of three parties.

The toy: the leader p0 sends ``Ask`` to the others; each answers with a number; the leader
records what came in (or was garbled) and, once the wait ends, announces the total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from fedcore import Context, simulate, wire
from fedcore.errors import PartyDropped
from fedcore.runtime import make_runtime
from fedcore.session import Garbled, Recv, Send, drive, perform
from fedcore.transport import Transport

ASK, ANSWER, TOTAL = "toy/ask", "toy/answer", "toy/total"


@pytest.fixture(scope="module")
def runtime():
    rt = make_runtime("inline")
    yield rt
    rt.close()


@dataclass
class Leader:
    """p0's side: ask everyone, take the answers (strict or tolerant), announce the total."""

    others: tuple[str, ...]
    tolerant: bool = False
    timeout: float | None = None
    answers: dict[str, int] = field(default_factory=dict)
    garbled: dict[str, str] = field(default_factory=dict)
    closed: int = 0
    done: bool = False

    def start(self) -> Sequence[Any]:
        ask = {"question": "your number"}  # one object for everyone: sent as one broadcast
        return [Send(dst, ASK, ask) for dst in self.others]

    def expect(self) -> Recv | None:
        if self.done:
            return None
        return Recv(self.others, ANSWER, self.timeout, tolerant=self.tolerant)

    def receive(self, src: str, message: Any) -> Sequence[Any]:
        if isinstance(message, Garbled):
            self.garbled[src] = message.reason
        else:
            self.answers[src] = int(message)
        if not self.tolerant and len(self.answers) == len(self.others):
            return self._finish()
        return []

    def close(self) -> Sequence[Any]:
        self.closed += 1
        return self._finish()

    def _finish(self) -> list[Send]:
        self.done = True
        total = sum(self.answers.values())
        return [Send(dst, TOTAL, total) for dst in self.answers]


@dataclass
class Follower:
    """p1/p2's side: answer the leader's question with ``number``, then hear the total."""

    number: int
    stage: str = "asked"
    total: int | None = None

    def start(self) -> Sequence[Any]:
        return []

    def expect(self) -> Recv | None:
        return {"asked": Recv(("p0",), ASK), "answered": Recv(("p0",), TOTAL)}.get(self.stage)

    def receive(self, src: str, message: Any) -> Sequence[Any]:
        if self.stage == "asked":
            self.stage = "answered"
            return [Send(src, ANSWER, self.number)]
        self.stage, self.total = "done", int(message)
        return []

    def close(self) -> Sequence[Any]:
        raise AssertionError("a follower never waits tolerantly")


def size(value: Any) -> int:
    return len(wire.encode(value))


def test_strict_waits_run_the_protocol_and_count_the_encoded_bytes(runtime) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party == "p0":
            leader = Leader(ctx.others)
            traffic = drive(ctx, leader, timeout=10)
            return {"answers": leader.answers, "sent": traffic.sent, "received": traffic.received}
        follower = Follower(10 * int(ctx.party[1:]))
        traffic = drive(ctx, follower, timeout=10)
        return {"total": follower.total, "sent": traffic.sent, "received": traffic.received}

    out = simulate(main, parties=3, runtime=runtime).parties
    assert out["p0"]["answers"] == {"p1": 10, "p2": 20}
    assert out["p1"]["total"] == out["p2"]["total"] == 30
    ask = size({"question": "your number"})
    assert out["p0"]["sent"] == 2 * ask + 2 * size(30)
    assert out["p0"]["received"] == size(10) + size(20)
    assert (out["p2"]["sent"], out["p2"]["received"]) == (size(20), ask + size(30))


def test_a_strict_wait_on_a_dropped_party_raises(runtime) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party == "p0":
            drive(ctx, Leader(ctx.others), timeout=10)
            return {}
        drive(ctx, Follower(1), timeout=10)
        return {}

    out = simulate(main, parties=3, kill={"p2": 0}, runtime=runtime).parties
    assert out["p0"]["kind"] == "PartyDropped" and "p2" in out["p0"]["error"]


def test_a_tolerant_wait_skips_the_dropped_and_hands_in_the_garbled(runtime) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party == "p0":
            leader = Leader(ctx.others, tolerant=True, timeout=10)
            traffic = drive(ctx, leader)
            return {
                "answers": leader.answers,
                "garbled": leader.garbled,
                "closed": leader.closed,
                "received": traffic.received,
            }
        ctx.recv("p0", ASK, timeout=10)
        ctx.transport.send("p0", ANSWER, b"\xc1 not a fedcore encoding")  # a hostile peer's bytes
        return {}

    out = simulate(main, parties=3, kill={"p1": 0}, runtime=runtime).parties
    leader = out["p0"]
    assert leader["answers"] == {} and leader["closed"] == 1
    assert set(leader["garbled"]) == {"p2"} and "'toy/answer' from p2 to p0" in leader["garbled"]["p2"]
    assert leader["received"] == len(b"\xc1 not a fedcore encoding")


def test_a_tolerant_wait_leaves_out_a_late_party_at_the_deadline(runtime) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party == "p0":
            leader = Leader(ctx.others, tolerant=True, timeout=0.5)
            drive(ctx, leader)
            ctx.send("p2", "bye", None)
            return {"answers": leader.answers, "closed": leader.closed}
        if ctx.party == "p1":
            drive(ctx, Follower(7), timeout=10)
            return {}
        ctx.recv("p0", ASK, timeout=10)  # p2 hears the question, stays, and never answers
        ctx.recv("p0", "bye", timeout=10)
        return {}

    out = simulate(main, parties=3, runtime=runtime).parties
    assert out["p0"] == {"answers": {"p1": 7}, "closed": 1}


@dataclass
class Poller:
    """Waits for one value from p1 with ``poll_first``."""

    source: str
    got: Any = None

    def start(self) -> Sequence[Any]:
        return []

    def expect(self) -> Recv | None:
        return None if self.got is not None else Recv((self.source,), "v", 10, poll_first=True)

    def receive(self, src: str, message: Any) -> Sequence[Any]:
        self.got = message
        return []

    def close(self) -> Sequence[Any]:
        return []


def test_poll_first_calls_idle_only_when_nothing_is_there(runtime) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party == "p0":
            # p1 answers only once nudged: only the idle hook (flushing our work) unblocks it
            calls: list[int] = []

            def idle() -> None:
                calls.append(1)
                ctx.send("p1", "nudge", None)

            waiting = Poller("p1")
            drive(ctx, waiting, idle=idle)
            # p1 sends "v" before "hello": once hello is in, "v" is already there to poll
            ctx.recv("p1", "hello", timeout=10)
            ready = Poller("p1")
            drive(ctx, ready, idle=lambda: calls.append(2))
            return {"calls": calls, "got": [waiting.got, ready.got]}
        if ctx.party == "p1":
            ctx.recv("p0", "nudge", timeout=10)
            ctx.send("p0", "v", "first")
            ctx.send("p0", "v", "second")
            ctx.send("p0", "hello", None)
        return {}

    out = simulate(main, parties=3, runtime=runtime).parties
    assert out["p0"] == {"calls": [1], "got": ["first", "second"]}
    with pytest.raises(ValueError, match="poll_first is for strict waits"):
        Recv(("p1",), "v", tolerant=True, poll_first=True)


@dataclass(frozen=True)
class Square:
    """A work item: square ``x`` locally and send the result to ``dst``."""

    x: int
    dst: str


@dataclass
class Worker:
    """Hands its driver a local work item instead of a ``Send``."""

    started: bool = False

    def start(self) -> Sequence[Any]:
        return [Square(7, "p1")]

    def expect(self) -> Recv | None:
        return None

    def receive(self, src: str, message: Any) -> Sequence[Any]:
        return []

    def close(self) -> Sequence[Any]:
        return []


def test_handle_carries_out_work_items_and_their_follow_up_actions(runtime) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party == "p0":
            done: list[Square] = []

            def handle(action: Any) -> list[Send]:
                done.append(action)
                return [Send(action.dst, "square", action.x**2)]

            traffic = drive(ctx, Worker(), handle=handle)
            with pytest.raises(TypeError, match="Square, and its driver has no handler"):
                drive(ctx, Worker())
            return {"done": len(done), "sent": traffic.sent}
        if ctx.party == "p1":
            return {"square": ctx.recv("p0", "square", timeout=10)}
        return {}

    out = simulate(main, parties=3, runtime=runtime).parties
    assert out["p0"] == {"done": 1, "sent": size(49)} and out["p1"] == {"square": 49}


class GoneAfterwards(Transport):
    """A party's transport on which ``gone`` has left: sending to it raises ``PartyDropped``,
    as the gRPC transport does for a peer it cannot reach."""

    def __init__(self, inner: Transport, gone: str):
        self.inner, self.gone = inner, gone
        self.party, self.parties = inner.party, inner.parties

    def send(self, dst: str, tag: str, payload: Any) -> None:
        if dst == self.gone:
            raise PartyDropped(f"{dst} is gone", party=dst)
        self.inner.send(dst, tag, payload)

    def recv(self, src: str, tag: str, timeout_s: float) -> Any:
        return self.inner.recv(src, tag, timeout_s)

    def abort(self, step: str | None, reason: str) -> None:
        self.inner.abort(step, reason)


@pytest.mark.parametrize("one_message", [True, False], ids=["broadcast", "separate"])
def test_lossy_sends_skip_a_party_that_is_gone(runtime, one_message: bool) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party == "p0":
            view = Context("p0", GoneAfterwards(ctx.transport, "p1"), ctx.runtime)
            shared = "hi"
            sends = [Send(dst, "hi", shared if one_message else f"hi {dst}") for dst in ("p1", "p2")]
            with pytest.raises(PartyDropped, match="p1 is gone"):
                perform(view, sends)
            perform(view, sends, lossy=True)
            return {"sent": view.traffic.sent}
        if ctx.party == "p2":
            return {"got": [ctx.recv("p0", "hi", timeout=10)]}
        return {}

    out = simulate(main, parties=3, runtime=runtime).parties
    if one_message:  # a broadcast stops at the first gone party only when not lossy
        assert out["p2"] == {"got": ["hi"]}
    else:
        assert out["p2"] == {"got": ["hi p2"]}
    assert out["p0"]["sent"] == (size("hi") if one_message else size("hi p2"))


class CountingContext(Context):
    """A context that counts its broadcasts."""

    broadcasts = 0

    def broadcast(self, tag: str, value: Any, **kw: Any) -> None:
        self.broadcasts += 1
        super().broadcast(tag, value, **kw)


def test_one_message_to_many_is_one_broadcast_and_chained_work_does_not_recurse(runtime) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party == "p0":
            view = CountingContext("p0", ctx.transport, ctx.runtime)
            shared = {"model": list(range(5))}
            sends = [Send("p1", "m", shared), Send("p2", "m", shared), Send("p1", "m", {"just": "p1"})]
            perform(view, sends)
            # each work item's answer is the next one: 5000 deep would overflow a recursive perform
            perform(
                view, [Square(5000, "p2")], lambda a: [Square(a.x - 1, a.dst) if a.x else Send(a.dst, "m", 0)]
            )
            return {"broadcasts": view.broadcasts, "sent": view.traffic.sent}
        return {"got": [ctx.recv("p0", "m", timeout=10) for _ in range(2)]}

    out = simulate(main, parties=3, runtime=runtime).parties
    shared = {"model": list(range(5))}
    assert out["p0"] == {"broadcasts": 1, "sent": 2 * size(shared) + size({"just": "p1"}) + size(0)}
    assert out["p1"] == {"got": [shared, {"just": "p1"}]} and out["p2"] == {"got": [shared, 0]}
