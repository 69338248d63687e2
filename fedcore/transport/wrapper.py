"""A transport that wraps another: the base of the daemon's metered job transport and of fault
injection's kill switch, which each change a call or two and forward the rest."""

from __future__ import annotations

from fedcore.transport.base import Buffer, Payload, Transport


class TransportWrapper(Transport):
    """Forwards every call to ``inner``, the party's own transport; override what you change."""

    def __init__(self, inner: Transport):
        self.inner = inner
        self.party, self.parties = inner.party, inner.parties

    def send(self, dst: str, tag: str, payload: Payload) -> None:
        self.inner.send(dst, tag, payload)

    def recv(self, src: str, tag: str, timeout_s: float) -> Buffer:
        return self.inner.recv(src, tag, timeout_s)

    def abort(self, step: str | None, reason: str) -> None:
        self.inner.abort(step, reason)

    def finish(self) -> None:
        self.inner.finish()

    def close(self) -> None:
        self.inner.close()
