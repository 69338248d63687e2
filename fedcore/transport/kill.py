"""A transport wrapper that crashes its party after K sends: fault injection for real transports."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fedcore.transport.base import Payload, Transport
from fedcore.transport.local import PartyKilled


class KillSwitch(Transport):
    """Wraps a party's transport; right after its ``after``-th send, ``on_kill()`` runs (stop the
    node abruptly: no abort, no goodbye) and the send raises ``PartyKilled``, as a crash would."""

    def __init__(self, inner: Transport, after: int, on_kill: Callable[[], object]):
        self.inner, self.after, self.on_kill = inner, after, on_kill
        self.party, self.parties = inner.party, inner.parties
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

    def recv(self, src: str, tag: str, timeout_s: float) -> bytes:
        return self.inner.recv(src, tag, timeout_s)

    def abort(self, step: str | None, reason: str) -> None:
        self.inner.abort(step, reason)

    def finish(self) -> None:
        self.inner.finish()

    def close(self) -> None:
        self.inner.close()
