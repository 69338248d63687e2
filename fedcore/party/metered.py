"""A job's transport as the daemon hands it to a script: metered per peer, and stoppable."""

from __future__ import annotations

from typing import Any

from fedcore.errors import PartyDropped
from fedcore.party.metrics import DaemonMetrics
from fedcore.transport import Transport
from fedcore.transport.base import Buffer, Payload
from fedcore.transport.wrapper import TransportWrapper


class PartyTransport(TransportWrapper):
    """Wraps a ``GrpcTransport``: counts bytes and messages per peer; ``stop`` ends the script's waits.

    Args:
        inner: the node's transport for this job.
        metrics: the daemon's Prometheus metrics.
    """

    def __init__(self, inner: Transport, metrics: DaemonMetrics):
        super().__init__(inner)
        self.metrics = metrics
        self.stopped: str | None = None

    def send(self, dst: str, tag: str, payload: Payload) -> None:
        self._check_stopped(dst, tag)
        self.inner.send(dst, tag, payload)
        size = (
            len(payload)
            if isinstance(payload, (bytes, bytearray, memoryview))
            else sum(len(p) for p in payload)
        )
        self.metrics.count_message(dst, "sent", size)

    def recv(self, src: str, tag: str, timeout_s: float) -> Buffer:
        self._check_stopped(src, tag)
        payload = self.inner.recv(src, tag, timeout_s)
        self.metrics.count_message(src, "received", len(payload))
        return payload

    def stop(self, step: str | None, reason: str) -> None:
        """End this party's side: its waits fail now, naming ``reason`` (cancel, leaving)."""
        self.stopped = reason
        box: Any = getattr(self.inner, "_box", None)  # the grpc mailbox: wake its blocked recv
        if box is not None:
            for peer in self.parties:
                if peer != self.party:
                    box.set_peer(peer, "dropped", step, reason)

    def _check_stopped(self, peer: str, tag: str) -> None:
        if self.stopped is not None:
            raise PartyDropped(
                f"{self.party} stopped its side before {tag!r} with {peer}: {self.stopped}", party=self.party
            )
