"""Fault injection: the faults a simulation can inject, and the two places they take effect.

- ``FaultPlan`` says what goes wrong: a party killed after its K-th message, and lost,
  duplicated, reordered or delayed messages on links (seeded dice, so a run can be replayed).
- ``FaultyNetwork`` is the in-memory network under a plan: every link fault and every kill.
- ``KillSwitch`` wraps a real transport (gRPC on loopback, a Ray actor's node): after the
  K-th send it stops the party's node abruptly, as a crash would; link faults do not apply.

Either way the killed party's script sees ``PartyKilled``, and the others see it drop.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from fedcore.transport import LocalNetwork, Transport
from fedcore.transport.base import Payload
from fedcore.transport.local import Scheduler
from fedcore.transport.wrapper import TransportWrapper

__all__ = ["FaultPlan", "FaultyNetwork", "KillSwitch", "LinkFaults", "PartyKilled", "kill_switch"]


class PartyKilled(BaseException):
    """Raised inside a party's script when fault injection kills it.

    A ``BaseException`` so that a script's ``except Exception`` cannot swallow a crash.
    """


class LinkFaults(Protocol):
    """What a ``FaultyNetwork`` asks its fault plan (``FaultPlan`` is the one fedcore has)."""

    def deliveries(self, src: str, dst: str, tag: str) -> list[float]:
        """Delays (seconds) at which to deliver one message; [] drops it, two entries duplicate it."""
        ...

    def kill_after_send(self, src: str, sent: int) -> bool:
        """Whether ``src`` dies right after its ``sent``-th message."""
        ...


@dataclass
class FaultPlan:
    """Faults to inject into a simulation.

    Args:
        kill: party -> K: the party dies abruptly right after its K-th message
            (K=0: it never starts; the simulator handles that case).
        drop: probability that a message is lost.
        duplicate: probability that a message is delivered twice.
        reorder: probability that a message is held back by up to ``reorder_window_s``.
        delay: (src, dst) -> seconds added to every message on that link; "*" matches any.
        seed: seed of the fault dice, so a failing run can be replayed.
    """

    kill: Mapping[str, int] = field(default_factory=dict)
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_window_s: float = 0.02
    delay: Mapping[tuple[str, str], float] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"FaultPlan.{name} is a probability in [0, 1], got {value}")
        for party, after in self.kill.items():
            if not isinstance(after, int) or after < 0:
                raise ValueError(f"kill {party}: after must be a non-negative integer, got {after!r}")
        self._dice = random.Random(self.seed)
        self._lock = threading.Lock()

    @property
    def link_faults(self) -> bool:
        """Whether any message may be lost, duplicated, reordered or delayed."""
        return bool(self.drop or self.duplicate or self.reorder or self.delay)

    def _link_delay(self, src: str, dst: str) -> float:
        for key in ((src, dst), (src, "*"), ("*", dst), ("*", "*")):
            if key in self.delay:
                return self.delay[key]
        return 0.0

    def deliveries(self, src: str, dst: str, tag: str) -> list[float]:
        base = self._link_delay(src, dst)
        with self._lock:
            if self._dice.random() < self.drop:
                return []
            copies = 2 if self._dice.random() < self.duplicate else 1
            out = []
            for _ in range(copies):
                jitter = 0.0
                if self._dice.random() < self.reorder:
                    jitter = self._dice.uniform(0.001, self.reorder_window_s)
                out.append(base + jitter)
        return out

    def kill_after_send(self, src: str, sent: int) -> bool:
        return self.kill.get(src) == sent


class FaultyNetwork(LocalNetwork):
    """A ``LocalNetwork`` whose links follow ``faults``; without a plan it is a plain one.

    A party killed by the plan is marked dropped at every other party (after what it sent
    before, delayed or not, is delivered) and its send raises ``PartyKilled``.
    """

    def __init__(
        self,
        parties: Iterable[str],
        faults: LinkFaults | None = None,
        *,
        mailbox_bytes: int | None = None,
        scheduler: Scheduler | None = None,
        local: Iterable[str] | None = None,
        forward: Callable[[str, str, str, int, bytes], None] | None = None,
    ):
        super().__init__(parties, mailbox_bytes, scheduler, local, forward)
        self.faults = faults
        self._sent: dict[str, int] = defaultdict(int)
        self._count = threading.Lock()

    def deliveries(self, src: str, dst: str, tag: str) -> list[float]:
        return [0.0] if self.faults is None else self.faults.deliveries(src, dst, tag)

    def post(self, src: str, dst: str, tag: str, payload: bytes) -> None:
        super().post(src, dst, tag, payload)
        if self.faults is None:
            return
        with self._count:
            self._sent[src] += 1
            sent = self._sent[src]
        if self.faults.kill_after_send(src, sent):
            self.drop(src, None, f"killed by fault injection after {sent} messages")
            raise PartyKilled(src)


class KillSwitch(TransportWrapper):
    """Wraps a party's transport; right after its ``after``-th send, ``on_kill()`` runs (stop the
    node abruptly: no abort, no goodbye) and the send raises ``PartyKilled``, as a crash would."""

    def __init__(self, inner: Transport, after: int, on_kill: Callable[[], object]):
        super().__init__(inner)
        self.after, self.on_kill = after, on_kill
        self._sent = 0
        self._lock = threading.Lock()

    def send(self, dst: str, tag: str, payload: Payload) -> None:
        self.inner.send(dst, tag, payload)
        with self._lock:
            self._sent += 1
            dead = self._sent == self.after
        if dead:
            self.on_kill()
            raise PartyKilled(self.party)


def kill_switch(transport: Transport, after: int | None, on_kill: Callable[[], object]) -> Transport:
    """``transport`` under a ``KillSwitch`` when the party is to die after ``after`` sends; as it
    is when it is not (None), or when it never starts (0: see ``killed_before_start``)."""
    return KillSwitch(transport, after, on_kill) if after else transport
