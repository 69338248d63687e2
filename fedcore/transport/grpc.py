"""The mutual-TLS gRPC transport: one ``PeerNode`` per party daemon, one ``GrpcTransport`` per job.

A node serves ``fedcore.v1.Party`` on one port for every job and keeps one channel per peer.
``send`` streams a value in chunks under an envelope (job, src, dst, tag, seq) and returns once
the receiver's node has it (not when the receiving script reads it); while the peer cannot be
reached it retries with backoff for ``peer_timeout_s``, and the receiver's mailbox drops repeats,
so a value is delivered exactly once across retries and restarts. The receiver takes the sender
from its certificate; messages for a job it has not opened yet wait in a bounded buffer.
A heartbeat pings every peer; one silent for ``peer_timeout_s`` is marked dropped in every job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from fedcore.crypto import pki
from fedcore.errors import ConfigError, FedcoreError, PartyDropped
from fedcore.transport._grpc_client import (
    PeerCheck,
    PeerLink,
    as_parts,
    check_peer,
    peer_certificate,
    split_address,
)
from fedcore.transport._grpc_server import (
    JOB_ID,
    MAX_REASON_BYTES,
    MAX_STEP_BYTES,
    Inboxes,
    OpenJob,
    PartyServicer,
)
from fedcore.transport._grpc_wire import BULK, TlsFiles, TlsMaterial, deserialize_frame, log, server_options
from fedcore.transport._guard import Membership, PortLimits, Revoked, StreamGuard, safe
from fedcore.transport.base import Mailbox, Payload, Transport, check_party_names, check_tag
from fedcore.wire import party_pb2 as pb

__all__ = [
    "GrpcTransport",
    "PeerCheck",
    "PeerNode",
    "PortLimits",
    "Revoked",
    "TlsFiles",
    "TlsMaterial",
    "peer_certificate",
    "split_address",
]

SERVICE = "fedcore.v1.Party"
_EVENT_WINDOW_S = 2.0  # how long abort/finish keep trying an unreachable peer


class PeerNode:
    """One party's gRPC endpoint: server, peer channels, heartbeat and job mailboxes.

    Args:
        party_id: this party; must match the party id in ``tls.cert_pem``.
        listen: bind address, e.g. ``"127.0.0.1:7101"`` (port 0 picks a free port).
        peers: peer id -> address to dial.
        tls: the federation CA, this party's certificate and key.
        max_value_bytes: the largest value accepted from a peer.
        mailbox_bytes: bound on unread bytes per job (and on messages buffered for unopened jobs).
        heartbeat_s: ping interval.
        peer_timeout_s: a peer silent this long is dropped; also the send retry window.
        control_handler: ``(src, kind, body) -> reply body`` for ``Control`` calls from peers.
        limits: what one peer can make this node hold (streams, idle deadline, keepalive,
            connection age, pending buffer).
        revoked: certificates refused although the CA signed them.

    Only this party and the parties of ``peers`` are served; any other certificate, even one the
    CA signed, is refused (``AuthError``) on its first call.
    """

    def __init__(
        self,
        party_id: str,
        listen: str,
        peers: dict[str, str],
        tls: TlsMaterial,
        *,
        max_value_bytes: int = 2**31,
        mailbox_bytes: int | None = None,
        heartbeat_s: float = 1.0,
        peer_timeout_s: float = 5.0,
        control_handler: Callable[[str, str, bytes], bytes] | None = None,
        limits: PortLimits | None = None,
        revoked: Revoked | None = None,
    ):
        federation, cert_party = pki.party_identity(tls.cert_pem)
        if cert_party != party_id:
            raise ConfigError(f"the certificate is for {cert_party!r}, not for party {party_id!r}")
        self.party_id, self.federation, self.listen, self.tls = party_id, federation, listen, tls
        self.max_value_bytes = max_value_bytes
        self.heartbeat_s, self.peer_timeout_s = heartbeat_s, peer_timeout_s
        self.port: int | None = None
        self._peers: dict[str, str] = {}
        self._links: dict[str, PeerLink] = {}
        self._last_seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.limits = limits or PortLimits()
        pending = min(self.limits.pending_bytes, mailbox_bytes or self.limits.pending_bytes)
        self.inboxes = Inboxes(party_id, mailbox_bytes, pending)
        self.membership = Membership(party_id, revoked or Revoked())
        self.guard = StreamGuard(party_id, self.limits)
        self._servicer = PartyServicer(
            party_id,
            federation,
            self.inboxes,
            max_value_bytes,
            self._seen,
            control_handler,
            self.membership,
            self.guard,
        )
        self._server: grpc.Server | None = None
        self._heartbeat: threading.Thread | None = None
        self.set_peers(peers)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> int:
        """Bind and serve; returns the bound port."""
        limits = self.limits
        # every peer can hold its peer_streams workers and some are left over for the rest
        workers = max(32, limits.peer_streams * (len(self._peers) + 1) + 8)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"fc-{self.party_id}"),
            # no SO_REUSEPORT: a second daemon on the same port must fail, not share it
            options=[
                *server_options(limits.keepalive_s, limits.connection_age_s, limits.peer_streams),
                *BULK,
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=4 * workers,  # past that, calls are refused, not queued
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, self._handlers()),))
        health_servicer = health.HealthServicer()
        for name in ("", SERVICE):
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        try:
            port = server.add_secure_port(self.listen, self.tls.server_credentials())
        except RuntimeError as exc:
            raise ConfigError(f"{self.party_id} cannot listen on {self.listen}: {exc}") from None
        if not port:
            raise ConfigError(f"{self.party_id} cannot listen on {self.listen} (address in use?)")
        server.start()
        self.guard.start()
        self._server, self.port = server, port
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"fc-heartbeat-{self.party_id}", daemon=True
        )
        self._heartbeat.start()
        log.info("party=%s serving %s on %s (port %d)", self.party_id, SERVICE, self.listen, port)
        return port

    def _handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        servicer = self._servicer
        # all client-streaming, Ping and Control too: see PartyServicer for why
        return {
            "Send": grpc.stream_unary_rpc_method_handler(
                servicer.Send,
                request_deserializer=deserialize_frame,
                response_serializer=pb.SendReply.SerializeToString,
            ),
            "Control": grpc.stream_unary_rpc_method_handler(
                servicer.Control,
                request_deserializer=pb.ControlRequest.FromString,
                response_serializer=pb.ControlReply.SerializeToString,
            ),
            "Ping": grpc.stream_unary_rpc_method_handler(
                servicer.Ping,
                request_deserializer=pb.PingRequest.FromString,
                response_serializer=pb.PingReply.SerializeToString,
            ),
        }

    def stop(self, grace_s: float | None = 1.0) -> None:
        """Stop serving (letting calls in flight finish for ``grace_s``) and close every channel."""
        self._stopped.set()
        self.guard.stop()
        if self._server is not None:
            self._server.stop(grace_s).wait()
        with self._lock:
            links, self._links = list(self._links.values()), {}
        for link in links:
            link.close()
        log.info("party=%s stopped", self.party_id)

    def set_peers(self, peers: dict[str, str]) -> None:
        """Replace the peer address book (channels to changed addresses are reopened)."""
        check_party_names(list(peers))
        with self._lock:
            old = self._links
            self._peers = {p: a for p, a in peers.items() if p != self.party_id}
            self._links = {p: link for p, link in old.items() if self._peers.get(p) == link.address}
            self.membership.set_peers(list(self._peers))
            self.inboxes.peer_count = max(1, len(self._peers))
        for peer, link in old.items():
            if self._links.get(peer) is not link:
                link.close()

    def _link(self, peer: str) -> PeerLink:
        if self._stopped.is_set():
            raise PartyDropped(f"{self.party_id}'s node is stopped; cannot reach {peer}", party=self.party_id)
        with self._lock:
            link = self._links.get(peer)
            if link is None:
                address = self._peers.get(peer)
                if address is None:
                    raise ConfigError(f"{self.party_id} has no address for peer {peer!r}; add it to [peers]")
                link = self._links[peer] = PeerLink(
                    self.party_id, peer, address, self.tls, self.max_value_bytes, self.limits.keepalive_s
                )
            return link

    # ------------------------------------------------------------------ jobs

    def open_job(self, job_id: str, parties: tuple[str, ...]) -> GrpcTransport:
        """Open a job's mailbox (delivering what peers sent early) and return its transport."""
        parties = check_party_names(list(parties))
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise ConfigError(f"bad job id {job_id!r}: use 1-128 letters, digits, '_', '.', ':' or '-'")
        if self.party_id not in parties:
            raise ConfigError(f"{self.party_id} is not one of the job's parties {list(parties)}")
        missing = [p for p in parties if p != self.party_id and p not in self._peers]
        if missing:
            raise ConfigError(f"{self.party_id} has no address for {missing}; add them to [peers]")
        box = self.inboxes.open(job_id, parties)
        log.info("job=%s party=%s opened with %s", job_id, self.party_id, ",".join(parties))
        return GrpcTransport(self, job_id, parties, box)

    def close_job(self, job_id: str) -> None:
        """Forget a job: later messages for it are refused."""
        self.inboxes.close(job_id)
        log.info("job=%s party=%s closed", job_id, self.party_id)

    # ------------------------------------------------------------------ control

    def call(self, peer: str, kind: str, body: bytes, timeout_s: float) -> bytes:
        """Send a control request to ``peer``; returns its handler's reply.

        Raises:
            FedcoreError: the handler's own error, with its type (e.g. ``PolicyRefused``).
            PartyDropped: the peer is unreachable.  Timeout: it did not answer in time.
        """
        reply = self._link(peer).call(kind, body, timeout_s)
        self._seen(peer)
        return reply

    def check_peer(self, peer: str, timeout_s: float = 5.0) -> PeerCheck:
        """Dial ``peer`` and report reachability, TLS verification and the identity it presents."""
        try:
            link = self._link(peer)
        except ConfigError as exc:
            return PeerCheck(peer, "", False, False, None, str(exc))
        return check_peer(link, self.tls, timeout_s)

    # ------------------------------------------------------------------ heartbeat

    def _seen(self, peer: str) -> None:
        self._last_seen[peer] = time.monotonic()

    def last_contact(self, peer: str) -> float:
        """``time.monotonic()`` of the last successful exchange with ``peer`` (0.0 if none):
        a call from it, an answered ping, an acknowledged send, a control reply."""
        return self._last_seen.get(peer, 0.0)

    def _beat(self) -> None:
        while not self._stopped.wait(self.heartbeat_s):
            jobs = self.inboxes.jobs()
            watched = {p for job in jobs.values() for p in job.parties if p != self.party_id}
            calls = []
            for peer in watched:
                try:
                    link = self._link(peer)
                except ConfigError:
                    continue
                call = link.ping_future(max(self.heartbeat_s, 0.5))
                calls.append((peer, call))
            for peer, call in calls:
                try:
                    call.result()
                    self._seen(peer)
                except grpc.RpcError:
                    pass
            self._drop_silent(jobs)

    def _drop_silent(self, jobs: dict[str, OpenJob]) -> None:
        now = time.monotonic()
        for job_id, job in jobs.items():
            for peer in job.parties:
                if peer == self.party_id or job.box.peer(peer).status != "alive":
                    continue
                last = max(self._last_seen.get(peer, 0.0), job.opened_at)
                if now - last > self.peer_timeout_s:
                    reason = f"no heartbeat for {self.peer_timeout_s:g} s"
                    log.warning("job=%s party=%s peer %s dropped: %s", job_id, self.party_id, peer, reason)
                    job.box.set_peer(peer, "dropped", None, reason)


class GrpcTransport(Transport):
    """One party's end of one job over its ``PeerNode``."""

    def __init__(self, node: PeerNode, job_id: str, parties: tuple[str, ...], box: Mailbox):
        self.node, self.job_id, self.party, self.parties = node, job_id, node.party_id, parties
        self._box = box
        self._seq: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def _check_peer(self, peer: str, verb: str, tag: str) -> None:
        if peer not in self.parties or peer == self.party:
            raise ConfigError(f"{self.party} {verb} {tag!r} {peer!r}, not another party of job {self.job_id}")

    def send(self, dst: str, tag: str, payload: Payload) -> None:
        """Deliver ``payload`` (bytes, or a list of buffers such as ``wire.encode_parts``) to ``dst``.

        Returns once ``dst``'s node holds it, not when its script reads it.

        Raises:
            ProtocolError: ``dst`` refused it (too large for its limits, job closed there).
            PartyDropped: ``dst`` stayed unreachable for the retry window (``peer_timeout_s``).
        """
        self._check_peer(dst, "sends to", tag)
        check_tag(tag)
        if not self._still_there(dst, tag):
            return
        parts = as_parts(payload)
        size = sum(len(p) for p in parts)
        with self._lock:
            seq = self._seq.get((dst, tag), 0)
            self._seq[(dst, tag)] = seq + 1
        env = pb.Envelope(
            job=self.job_id,
            src=self.party,
            dst=dst,
            tag=tag,
            seq=seq,
            total_bytes=size,
            kind=pb.Envelope.DATA,
        )
        timeout_s = 4 * self.node.peer_timeout_s + size / 5e6  # a hung peer; a dead one fails sooner
        self.node._link(dst).send(env, parts, self.node.peer_timeout_s, timeout_s)
        self.node._seen(dst)

    def _still_there(self, dst: str, tag: str) -> bool:
        """False for a peer whose script finished (it will read nothing more; the value is dropped,
        as in the local transport); raises ``PartyDropped`` for one known to be gone."""
        state = self._box.peer(dst)
        if state.status == "finished":
            log.info(
                "job=%s party=%s dropped %r for %s, which has finished", self.job_id, self.party, tag, dst
            )
            return False
        if state.status == "dropped":
            at = f" at step {state.step!r}" if state.step else ""
            raise PartyDropped(
                f"{self.party} cannot send {tag!r} to {dst}: {dst} dropped out{at} ({state.reason})",
                party=dst,
                step=state.step,
            )
        return True

    def recv(self, src: str, tag: str, timeout_s: float) -> bytes:
        """The next payload from ``src`` under ``tag``: bytes, or for values of 1 MiB and more a
        read-only-by-convention memoryview over the receive buffer (``wire.decode`` takes both)."""
        self._check_peer(src, "waits for", tag)
        return self._box.take(src, tag, timeout_s)

    def abort(self, step: str | None, reason: str) -> None:
        log.warning(
            "job=%s party=%s aborting at step %r: %s", self.job_id, self.party, step, safe(reason, 300)
        )
        self._tell_all(pb.Envelope.ABORT, _cut(step or "", MAX_STEP_BYTES), _cut(reason, MAX_REASON_BYTES))

    def finish(self) -> None:
        self._tell_all(pb.Envelope.FINISH, "", "")

    def close(self) -> None:
        self.node.close_job(self.job_id)

    def _tell_all(self, kind: int, step: str, reason: str) -> None:
        """Send a job event to every peer still there, in parallel, best effort."""
        threads = []
        for peer in self.parties:
            if peer == self.party or self._box.peer(peer).status == "dropped":
                continue
            env = pb.Envelope(
                job=self.job_id,
                src=self.party,
                dst=peer,
                kind=kind,  # type: ignore[arg-type]
                step=step,
                reason=reason,
            )
            thread = threading.Thread(target=self._tell, args=(peer, env), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(_EVENT_WINDOW_S + 1.0)

    def _tell(self, peer: str, env: pb.Envelope) -> None:
        try:
            self.node._link(peer).send(env, [], _EVENT_WINDOW_S, _EVENT_WINDOW_S)
        except (FedcoreError, PartyDropped) as exc:
            log.info("job=%s party=%s could not tell %s: %s", self.job_id, self.party, peer, exc)


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (receivers refuse longer step and reason)."""
    data = text.encode()
    return text if len(data) <= limit else data[: limit - 3].decode("utf-8", "ignore") + "..."
