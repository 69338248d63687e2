"""The receiving end of the gRPC transport: job inboxes and the ``fedcore.v1.Party`` servicer.

Every call's sender is the party id in its TLS client certificate. Envelopes claiming another
source are refused (``AuthError``) and logged. A value's declared size is checked against the
per-value limit before anything is buffered; its chunks land in one preallocated buffer.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
import numpy as np

from fedcore.crypto import pki
from fedcore.errors import AuthError, FedcoreError, ProtocolError
from fedcore.transport._grpc_wire import abort_with, log
from fedcore.transport.base import Mailbox
from fedcore.wire import party_pb2 as pb
from fedcore.wire import party_pb2_grpc as pb_grpc

ControlHandler = Callable[[str, str, bytes], bytes]
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
MAX_PENDING_JOBS = 256
PENDING_TTL_S = 600.0  # messages for a job not opened within this long are dropped
_BIG = 1 << 20  # values at least this large are returned as a memoryview, not copied to bytes
_EVENT_OVERHEAD = 256  # bytes charged per buffered event, so empty payloads still count
_STATUS = {pb.Envelope.ABORT: "dropped", pb.Envelope.FINISH: "finished"}


@dataclass
class _Pending:
    """Messages for a job this node has not opened yet."""

    events: list[tuple[pb.Envelope, bytes | memoryview]] = field(default_factory=list)
    seen: set[tuple[str, str, int]] = field(default_factory=set)
    since: float = field(default_factory=time.monotonic)


@dataclass
class OpenJob:
    box: Mailbox
    parties: frozenset[str]
    opened_at: float


class Inboxes:
    """The node's mailboxes, one per open job, plus a bounded buffer for jobs not opened yet."""

    def __init__(self, party: str, mailbox_bytes: int | None, pending_bytes: int):
        self.party = party
        self.mailbox_bytes = mailbox_bytes
        self.pending_bytes = pending_bytes
        self._jobs: dict[str, OpenJob] = {}
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._pending_used = 0
        self._closed: deque[str] = deque(maxlen=4096)
        self._lock = threading.Lock()

    def open(self, job: str, parties: tuple[str, ...]) -> Mailbox:
        with self._lock:
            if job in self._jobs:
                raise ProtocolError(f"job {job!r} is already open at {self.party}")
            box = Mailbox(self.party, self.mailbox_bytes)
            self._jobs[job] = OpenJob(box, frozenset(parties), time.monotonic())
            pending = self._pending.get(job)
            events = pending.events if pending else []
            self._drop_pending(job)
        for env, payload in events:
            if env.src not in parties:
                log.warning(
                    "job=%s party=%s dropped early message from %s: not a party of the job",
                    job,
                    self.party,
                    env.src,
                )
                continue
            self._apply(box, env, payload)
        return box

    def close(self, job: str) -> None:
        """Forget a job, and anything buffered for it; later messages for it are refused."""
        with self._lock:
            self._jobs.pop(job, None)
            self._closed.append(job)
            self._drop_pending(job)

    def _drop_pending(self, job: str) -> None:
        pending = self._pending.pop(job, None)
        if pending is not None:
            self._pending_used -= sum(len(payload) + _EVENT_OVERHEAD for _, payload in pending.events)

    def jobs(self) -> dict[str, OpenJob]:
        with self._lock:
            return dict(self._jobs)

    def admit(self, env: pb.Envelope, max_value_bytes: int) -> None:
        """Refuse a value before buffering it: too large, closed job, or sender not in the job."""
        if env.total_bytes > max_value_bytes:
            raise ProtocolError(
                f"{env.src} sent {env.tag!r} of {env.total_bytes} bytes to {self.party} (job {env.job}), "
                f"above its max_value_bytes limit of {max_value_bytes}; raise [limits] max_value_bytes"
            )
        if self.mailbox_bytes is not None and env.total_bytes > self.mailbox_bytes:
            raise ProtocolError(
                f"{env.src} sent {env.tag!r} of {env.total_bytes} bytes to {self.party} (job {env.job}), "
                f"above its mailbox_bytes limit of {self.mailbox_bytes}; raise [limits] mailbox_bytes"
            )
        with self._lock:
            job = self._jobs.get(env.job)
            if job is not None and env.src not in job.parties:
                raise AuthError(f"{env.src} is not a party of job {env.job} at {self.party}")
            if job is None and env.job in self._closed:
                raise ProtocolError(f"job {env.job} is already closed at {self.party}")

    def accept(self, env: pb.Envelope, payload: bytes | memoryview) -> bool:
        """Deliver a message (or buffer it until its job opens); False for a duplicate."""
        with self._lock:
            job = self._jobs.get(env.job)
            if job is None:
                return self._buffer(env, payload)
        return self._apply(job.box, env, payload)

    def _buffer(self, env: pb.Envelope, payload: bytes | memoryview) -> bool:
        if env.job in self._closed:
            raise ProtocolError(f"job {env.job} is already closed at {self.party}")
        self._expire_pending()
        pending = self._pending.get(env.job)
        if pending is None:
            if len(self._pending) >= MAX_PENDING_JOBS:
                raise ProtocolError(
                    f"{self.party} holds messages for {MAX_PENDING_JOBS} unopened jobs already"
                )
            pending = self._pending[env.job] = _Pending()
        key = (env.src, env.tag, env.seq) if env.kind == pb.Envelope.DATA else (env.src, "", -1 - env.kind)
        if key in pending.seen:
            return False
        cost = len(payload) + _EVENT_OVERHEAD
        if self._pending_used + cost > self.pending_bytes:
            raise ProtocolError(
                f"{self.party} has no room for messages of job {env.job} before it starts "
                f"({self.pending_bytes} bytes buffered at most)"
            )
        self._pending_used += cost
        pending.seen.add(key)
        pending.events.append((env, payload))
        return True

    def _expire_pending(self) -> None:
        """Forget early messages of jobs that were never opened (refused by policy, say)."""
        now = time.monotonic()
        for job in [j for j, p in self._pending.items() if now - p.since > PENDING_TTL_S]:
            log.warning(
                "job=%s party=%s never opened: dropping the messages peers sent for it", job, self.party
            )
            self._drop_pending(job)

    def _apply(self, box: Mailbox, env: pb.Envelope, payload: bytes | memoryview) -> bool:
        if env.kind == pb.Envelope.DATA:
            return box.deliver(env.src, env.tag, env.seq, payload)  # type: ignore[arg-type]
        box.set_peer(env.src, _STATUS[env.kind], env.step or None, env.reason)
        log.info(
            "job=%s party=%s peer %s %s%s",
            env.job,
            self.party,
            env.src,
            _STATUS[env.kind],
            f" at step {env.step!r}: {env.reason!r}" if env.kind == pb.Envelope.ABORT else "",
        )
        return True


class PartyServicer(pb_grpc.PartyServicer):
    """Serves ``fedcore.v1.Party`` for one node."""

    def __init__(
        self,
        party: str,
        federation: str,
        inboxes: Inboxes,
        max_value_bytes: int,
        seen: Callable[[str], None],
        control_handler: ControlHandler | None,
    ):
        self.party = party
        self.federation = federation
        self.inboxes = inboxes
        self.max_value_bytes = max_value_bytes
        self.seen = seen
        self.control_handler = control_handler
        self._ids: dict[bytes, tuple[str, str]] = {}

    def peer_id(self, context: grpc.ServicerContext) -> str:
        """The caller's party id, from its verified TLS client certificate."""
        certs = context.auth_context().get("x509_pem_cert") or []
        if not certs:
            abort_with(
                context,
                AuthError("no client certificate: fedcore peers use mutual TLS"),
                grpc.StatusCode.UNAUTHENTICATED,
            )
        pem = certs[0]
        identity = self._ids.get(pem)
        if identity is None:
            try:
                identity = pki.party_identity(pem)
            except AuthError as exc:
                log.warning("party=%s refused a peer: %s", self.party, exc)
                abort_with(context, exc, grpc.StatusCode.UNAUTHENTICATED)
            if len(self._ids) > 1024:
                self._ids.clear()
            self._ids[pem] = identity
        if identity[0] != self.federation:
            abort_with(
                context,
                AuthError(
                    f"certificate of {identity[1]} is for federation {identity[0]!r}, not {self.federation!r}"
                ),
                grpc.StatusCode.UNAUTHENTICATED,
            )
        self.seen(identity[1])
        return identity[1]

    def Send(
        self, request_iterator: Iterator[pb.Frame | memoryview], context: grpc.ServicerContext
    ) -> pb.SendReply:
        src = self.peer_id(context)
        first = next(request_iterator, None)
        if not isinstance(first, pb.Frame) or not first.HasField("header"):
            abort_with(context, ProtocolError(f"{src} opened a Send without an envelope"))
        env = first.header
        try:
            self._check_envelope(src, env)
            payload = b""
            if env.kind == pb.Envelope.DATA:
                self.inboxes.admit(env, self.max_value_bytes)
                payload = self._assemble(src, env, first.chunk, request_iterator)
            duplicate = not self.inboxes.accept(env, payload)
        except FedcoreError as exc:
            abort_with(context, exc)
        except grpc.RpcError:  # the sender went away mid-stream; it retries or has given up
            log.info("job=%s party=%s stream of %r from %s broke off", env.job, self.party, env.tag, src)
            return pb.SendReply()
        if duplicate:
            log.info(
                "job=%s party=%s dropped duplicate %s#%d from %s", env.job, self.party, env.tag, env.seq, src
            )
        return pb.SendReply(duplicate=duplicate)

    def _check_envelope(self, src: str, env: pb.Envelope) -> None:
        if env.src != src:
            log.warning(
                "job=%s party=%s REFUSED envelope claiming src=%s from a peer whose certificate says %s",
                env.job,
                self.party,
                env.src,
                src,
            )
            raise AuthError(
                f"envelope claims to come from {env.src!r} but the sender's certificate is {src!r}: refused"
            )
        if env.dst != self.party:
            raise ProtocolError(f"{src} sent a message for {env.dst!r} to {self.party}")
        if not JOB_ID.match(env.job):
            raise ProtocolError(f"{src} sent a message with a malformed job id {env.job[:140]!r}")
        if env.kind not in _STATUS and env.kind != pb.Envelope.DATA:
            raise ProtocolError(f"{src} sent an envelope of unknown kind {env.kind}")

    def _assemble(
        self, src: str, env: pb.Envelope, head: bytes, chunks: Iterator[pb.Frame | memoryview]
    ) -> bytes | memoryview:
        """Copy a value's chunks into one buffer of the declared (already admitted) size."""
        total = env.total_bytes
        # numpy's allocator asks for huge pages and skips zeroing: filling 256 MiB costs far less
        # than filling a bytearray of the same size.
        view = memoryview(np.empty(total, np.uint8)) if total >= _BIG else memoryview(bytearray(total))
        pos = len(head)
        if pos > total:
            raise ProtocolError(f"{src} sent more bytes than the {total} it declared for {env.tag!r}")
        view[:pos] = head
        for item in chunks:
            chunk = item.chunk if isinstance(item, pb.Frame) else item
            end = pos + len(chunk)
            if end > total:
                raise ProtocolError(f"{src} sent more bytes than the {total} it declared for {env.tag!r}")
            view[pos:end] = chunk
            pos = end
            self.seen(src)  # a long transfer is a sign of life too
        if pos != total:
            raise ProtocolError(f"{src} sent {pos} of the {total} bytes it declared for {env.tag!r}")
        return view if total >= _BIG else view.tobytes()

    def Control(self, request: pb.ControlRequest, context: grpc.ServicerContext) -> pb.ControlReply:
        src = self.peer_id(context)
        if self.control_handler is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{self.party} takes no control requests")
        try:
            body = self.control_handler(src, request.kind, request.body)
        except FedcoreError as exc:
            log.info("party=%s control %r from %s refused: %s", self.party, request.kind, src, exc)
            abort_with(context, exc)
        except Exception as exc:  # a handler bug must not kill the server; the caller gets its type
            log.exception("party=%s control handler failed on %r from %s", self.party, request.kind, src)
            context.abort(
                grpc.StatusCode.INTERNAL,
                f"{self.party} failed to handle {request.kind!r}: {type(exc).__name__}",
            )
        return pb.ControlReply(body=body)

    def Ping(self, request: pb.PingRequest, context: grpc.ServicerContext) -> pb.PingReply:
        self.peer_id(context)
        return pb.PingReply(party=self.party)
