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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
import numpy as np
from cryptography import x509

from fedcore.crypto import pki
from fedcore.errors import AuthError, FedcoreError, ProtocolError
from fedcore.transport._grpc_wire import abort_with, log
from fedcore.transport._guard import Membership, RateLimit, Slot, StreamGuard, safe
from fedcore.transport.base import EVENT_OVERHEAD, MAX_TAG_BYTES, Mailbox
from fedcore.wire import party_pb2 as pb
from fedcore.wire import party_pb2_grpc as pb_grpc

ControlHandler = Callable[[str, str, bytes], bytes]
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
MAX_PENDING_JOBS = 256
MAX_PENDING_JOBS_PER_PEER = 64
MAX_STEP_BYTES = 256
MAX_REASON_BYTES = 4096
MAX_KIND_BYTES = 64
PENDING_TTL_S = 600.0  # messages for a job not opened within this long are dropped
_BIG = 1 << 20  # values at least this large are returned as a memoryview, not copied to bytes

_STATUS = {pb.Envelope.ABORT: "dropped", pb.Envelope.FINISH: "finished"}


def message_cost(env: pb.Envelope) -> int:
    """What one message counts against a mailbox or the pending buffer: its payload, its strings
    at their real size, and a fixed overhead, so that no message counts as 0 bytes."""
    strings = len(env.tag.encode()) + len(env.step.encode()) + len(env.reason.encode())
    return int(env.total_bytes) + strings + EVENT_OVERHEAD


def check_strings(src: str, env: pb.Envelope) -> None:
    """Refuse an envelope whose peer-chosen strings are over their caps."""
    for name, text, cap in (
        ("tag", env.tag, MAX_TAG_BYTES),
        ("step", env.step, MAX_STEP_BYTES),
        ("reason", env.reason, MAX_REASON_BYTES),
    ):
        size = len(text.encode())
        if size > cap:
            raise ProtocolError(
                f"{src} sent a {name} of {size} bytes to {dst_of(env)}: the limit is {cap} bytes"
            )


def dst_of(env: pb.Envelope) -> str:
    return safe(env.dst, 64)


@dataclass
class _Pending:
    """Messages for a job this node has not opened yet; ``owner`` is the peer that sent the first."""

    owner: str
    events: list[tuple[pb.Envelope, bytes | memoryview, int]] = field(default_factory=list)
    seen: set[tuple[str, str, int]] = field(default_factory=set)
    since: float = field(default_factory=time.monotonic)


@dataclass
class OpenJob:
    box: Mailbox
    parties: frozenset[str]
    opened_at: float
    inflight: int = 0  # bytes of values being received for this job, reserved against its mailbox


class Inboxes:
    """The node's mailboxes, one per open job, plus a bounded buffer for jobs not opened yet.

    Every value is reserved at its declared size before its first chunk is buffered: against its
    job's mailbox when the job is open, against its sender's share of the pending buffer when not.
    """

    def __init__(self, party: str, mailbox_bytes: int | None, pending_bytes: int):
        self.party = party
        self.mailbox_bytes = mailbox_bytes
        self.pending_bytes = pending_bytes
        self.peer_count = 1
        self._jobs: dict[str, OpenJob] = {}
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._pending_by_src: dict[str, int] = {}  # buffered plus in-flight bytes per sender
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
        for env, payload, _ in events:
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
            for env, _, cost in pending.events:
                self._charge(env.src, -cost)

    def _charge(self, src: str, cost: int) -> None:
        left = self._pending_by_src.get(src, 0) + cost
        if left > 0:
            self._pending_by_src[src] = left
        else:
            self._pending_by_src.pop(src, None)

    def pending_share(self) -> int:
        """The bytes one peer may have buffered for unopened jobs (an equal share of the buffer)."""
        return self.pending_bytes // max(1, self.peer_count)

    def jobs(self) -> dict[str, OpenJob]:
        with self._lock:
            return dict(self._jobs)

    def admit(self, env: pb.Envelope, max_value_bytes: int) -> Callable[[], None]:
        """Reserve room for a value before buffering it; returns the call that gives the room back.

        Raises:
            ProtocolError: too large, closed job, or no room left (mailbox or pending share).
            AuthError: the sender is not a party of the (open) job.
        """
        if env.total_bytes > max_value_bytes:
            raise ProtocolError(
                f"{env.src} sent {safe(env.tag)!r} of {env.total_bytes} bytes to {self.party} "
                f"(job {env.job}), above its max_value_bytes limit of {max_value_bytes}; "
                "raise [limits] max_value_bytes"
            )
        cost = message_cost(env)
        if self.mailbox_bytes is not None and cost > self.mailbox_bytes:
            raise ProtocolError(
                f"{env.src} sent {safe(env.tag)!r} of {env.total_bytes} bytes to {self.party} "
                f"(job {env.job}), above its mailbox_bytes limit of {self.mailbox_bytes}; "
                "raise [limits] mailbox_bytes"
            )
        with self._lock:
            job = self._jobs.get(env.job)
            if job is not None:
                return self._reserve_open(job, env, cost)
            if env.job in self._closed:
                raise ProtocolError(f"job {env.job} is already closed at {self.party}")
            return self._reserve_pending(env, cost)

    def _reserve_open(self, job: OpenJob, env: pb.Envelope, cost: int) -> Callable[[], None]:
        if env.src not in job.parties:
            raise AuthError(f"{env.src} is not a party of job {env.job} at {self.party}")
        if self.mailbox_bytes is not None and job.box.used + job.inflight + cost > self.mailbox_bytes:
            raise ProtocolError(
                f"mailbox of {self.party} for job {env.job} is full ({self.mailbox_bytes} bytes): "
                f"{env.src} sent more than the receiver has read; raise [limits] mailbox_bytes"
            )
        job.inflight += cost

        def release() -> None:
            with self._lock:
                job.inflight -= cost

        return release

    def _reserve_pending(self, env: pb.Envelope, cost: int) -> Callable[[], None]:
        share = self.pending_share()
        if self._pending_by_src.get(env.src, 0) + cost > share:
            raise ProtocolError(
                f"{self.party} has no room for messages of job {env.job} before it starts "
                f"({share} bytes buffered at most per peer; [limits] pending_bytes)"
            )
        self._charge(env.src, cost)
        return lambda: self._release_pending(env.src, cost)

    def _release_pending(self, src: str, cost: int) -> None:
        with self._lock:
            self._charge(src, -cost)

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
            self._check_pending_jobs(env)
            pending = self._pending[env.job] = _Pending(env.src)
        key = (env.src, env.tag, env.seq) if env.kind == pb.Envelope.DATA else (env.src, "", -1 - env.kind)
        if key in pending.seen:
            return False
        cost = message_cost(env)
        # the value's reservation (admit) ends when the call does; buffered, it is charged again here
        self._charge(env.src, cost)
        pending.seen.add(key)
        pending.events.append((env, payload, cost))
        return True

    def _check_pending_jobs(self, env: pb.Envelope) -> None:
        owned = sum(1 for p in self._pending.values() if p.owner == env.src)
        if len(self._pending) >= MAX_PENDING_JOBS or owned >= MAX_PENDING_JOBS_PER_PEER:
            raise ProtocolError(
                f"{self.party} holds messages for {len(self._pending)} unopened jobs already "
                f"({owned} of them from {env.src}; at most {MAX_PENDING_JOBS_PER_PEER} per peer)"
            )

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
            f" at step {safe(env.step)!r}: {safe(env.reason, 200)!r}"
            if env.kind == pb.Envelope.ABORT
            else "",
        )
        return True


class PartyServicer(pb_grpc.PartyServicer):
    """Serves ``fedcore.v1.Party`` for one node.

    Every method is registered as client-streaming (``PeerNode._handlers``), Ping and Control
    too: on the wire a unary call is a stream of one message, and this way a handler runs, checks
    the caller's certificate and takes one of its peer's slots *before* it waits for the request.
    A unary handler would wait for the request inside a worker thread, where a peer that never
    sends it could hold every worker.
    """

    def __init__(
        self,
        party: str,
        federation: str,
        inboxes: Inboxes,
        max_value_bytes: int,
        seen: Callable[[str], None],
        control_handler: ControlHandler | None,
        membership: Membership,
        guard: StreamGuard,
    ):
        self.party = party
        self.federation = federation
        self.inboxes = inboxes
        self.max_value_bytes = max_value_bytes
        self.seen = seen
        self.control_handler = control_handler
        self.membership = membership
        self.guard = guard
        self.refusals = RateLimit()
        self._ids: dict[bytes, tuple[str, str, int]] = {}
        self._told: OrderedDict[tuple[str, str], None] = OrderedDict()  # (connection, id) refused

    def refused(self, src: str, what: str, exc: BaseException) -> None:
        """Log a refusal, at most a few lines per peer and minute (a peer cannot fill the disk)."""
        ok, dropped = self.refusals.allow(src)
        if ok:
            more = f" ({dropped} similar refusals from {safe(src)} not logged)" if dropped else ""
            log.warning(
                "party=%s refused %s from %s: %s%s", self.party, what, safe(src), safe(exc, 300), more
            )

    def peer_id(self, context: grpc.ServicerContext) -> str:
        """The caller's party id, from its verified TLS client certificate, if it is a member."""
        # grpc maps each property to a list of values (typeshed says one bytes value)
        auth = cast("Mapping[str, list[bytes]]", context.auth_context())
        certs = auth.get("x509_pem_cert") or []
        if not certs:
            abort_with(
                context,
                AuthError("no client certificate: fedcore peers use mutual TLS"),
                grpc.StatusCode.UNAUTHENTICATED,
            )
        identity = self._identity(certs[0], context)
        federation, party, serial = identity
        try:
            if federation != self.federation:
                raise AuthError(
                    f"certificate of {party} is for federation {federation!r}, not {self.federation!r}"
                )
            self.membership.check(party, serial)
        except AuthError as exc:
            self._refuse_once(context, party, exc)
            abort_with(context, exc, grpc.StatusCode.PERMISSION_DENIED)
        self.seen(party)
        return party

    def _identity(self, pem: bytes, context: grpc.ServicerContext) -> tuple[str, str, int]:
        identity = self._ids.get(pem)
        if identity is None:
            try:
                federation, party = pki.party_identity(pem)
                serial = x509.load_pem_x509_certificate(pem).serial_number
            except (AuthError, ValueError) as exc:
                error = exc if isinstance(exc, AuthError) else AuthError("unreadable client certificate")
                self.refused(context.peer(), "a peer", error)
                abort_with(context, error, grpc.StatusCode.UNAUTHENTICATED)
            if len(self._ids) > 1024:
                self._ids.clear()
            identity = self._ids[pem] = (federation, party, serial)
        return identity

    def _refuse_once(self, context: grpc.ServicerContext, party: str, exc: AuthError) -> None:
        key = (context.peer(), party)
        if key in self._told:
            return
        self._told[key] = None
        while len(self._told) > 4096:
            self._told.popitem(last=False)
        self.refused(party, f"a call on connection {safe(context.peer())}", exc)

    def _slot(self, src: str, context: grpc.ServicerContext) -> Slot:
        try:
            return self.guard.take(src, context)
        except ProtocolError as exc:
            self.refused(src, "a call", exc)
            abort_with(context, exc, grpc.StatusCode.RESOURCE_EXHAUSTED, retry=True)  # senders back off

    def _single(self, requests: Iterator[Any], slot: Slot, what: str, context: grpc.ServicerContext) -> Any:
        """The one request of a unary call, awaited under the slot's idle deadline."""
        request = next(requests, None)
        slot.waiting = False
        if request is None:
            abort_with(context, ProtocolError(f"{slot.peer} sent no {what} request"))
        return request

    def Send(
        self, request_iterator: Iterator[pb.Frame | memoryview], context: grpc.ServicerContext
    ) -> pb.SendReply:
        src = self.peer_id(context)
        slot = self._slot(src, context)
        try:
            return self._send(src, slot, request_iterator, context)
        finally:
            self.guard.give(slot)

    def _send(
        self, src: str, slot: Slot, frames: Iterator[pb.Frame | memoryview], context: grpc.ServicerContext
    ) -> pb.SendReply:
        first = next(frames, None)
        if not isinstance(first, pb.Frame) or not first.HasField("header"):
            abort_with(context, ProtocolError(f"{src} opened a Send without an envelope"))
        slot.touch()
        env = first.header
        try:
            self._check_envelope(src, env)
            payload: bytes | memoryview = b""
            if env.kind == pb.Envelope.DATA:
                release = self.inboxes.admit(env, self.max_value_bytes)
                try:
                    payload = self._assemble(src, slot, env, first.chunk, frames)
                    slot.waiting = False
                    duplicate = not self.inboxes.accept(env, payload)
                finally:
                    release()
            else:
                slot.waiting = False
                duplicate = not self.inboxes.accept(env, payload)
        except FedcoreError as exc:
            self.refused(src, f"a message for job {safe(env.job)} (tag {safe(env.tag)!r})", exc)
            abort_with(context, exc)
        except grpc.RpcError:  # the sender went away mid-stream; it retries or has given up
            log.info(
                "job=%s party=%s stream of %r from %s broke off",
                safe(env.job),
                self.party,
                safe(env.tag),
                src,
            )
            return pb.SendReply()
        if duplicate:
            log.info(
                "job=%s party=%s dropped duplicate %s#%d from %s",
                env.job,
                self.party,
                safe(env.tag),
                env.seq,
                src,
            )
        return pb.SendReply(duplicate=duplicate)

    def _check_envelope(self, src: str, env: pb.Envelope) -> None:
        if env.src != src:
            log.warning(
                "job=%s party=%s REFUSED envelope claiming src=%s from a peer whose certificate says %s",
                safe(env.job),
                self.party,
                safe(env.src),
                src,
            )
            raise AuthError(
                f"envelope claims to come from {safe(env.src)!r} but the sender's certificate is "
                f"{src!r}: refused"
            )
        if env.dst != self.party:
            raise ProtocolError(f"{src} sent a message for {dst_of(env)!r} to {self.party}")
        if not JOB_ID.match(env.job):
            raise ProtocolError(f"{src} sent a message with a malformed job id {safe(env.job, 140)!r}")
        if env.kind not in _STATUS and env.kind != pb.Envelope.DATA:
            raise ProtocolError(f"{src} sent an envelope of unknown kind {env.kind}")
        check_strings(src, env)

    def _assemble(
        self, src: str, slot: Slot, env: pb.Envelope, head: bytes, chunks: Iterator[pb.Frame | memoryview]
    ) -> bytes | memoryview:
        """Copy a value's chunks into one buffer of the declared (already admitted) size."""
        total = env.total_bytes
        pos = len(head)
        if pos > total:
            raise ProtocolError(f"{src} sent more bytes than the {total} it declared for {safe(env.tag)!r}")
        # numpy's allocator asks for huge pages and skips zeroing: filling 256 MiB costs far less
        # than filling a bytearray of the same size. Pages the sender never fills are never touched.
        big = total >= _BIG
        buf = np.empty(total, np.uint8) if big else None
        view = buf.data if buf is not None else memoryview(bytearray(total))
        view[:pos] = head
        for item in chunks:
            chunk = item.chunk if isinstance(item, pb.Frame) else item
            end = pos + len(chunk)
            if end > total:
                raise ProtocolError(
                    f"{src} sent more bytes than the {total} it declared for {safe(env.tag)!r}"
                )
            if buf is not None:
                # numpy copies without the GIL (a memoryview assignment holds it): gRPC's threads
                # read the next chunk from the socket meanwhile, and first-touch page faults of
                # the fresh buffer are paid here rather than serially
                np.copyto(buf[pos:end], np.frombuffer(chunk, np.uint8))
            else:
                view[pos:end] = chunk
            pos = end
            slot.touch()
            self.seen(src)  # a long transfer is a sign of life too
        if pos != total:
            raise ProtocolError(f"{src} sent {pos} of the {total} bytes it declared for {safe(env.tag)!r}")
        return view if big else view.tobytes()

    def Control(
        self, request_iterator: Iterator[pb.ControlRequest], context: grpc.ServicerContext
    ) -> pb.ControlReply:
        src = self.peer_id(context)
        slot = self._slot(src, context)
        try:
            request = self._single(request_iterator, slot, "control", context)
            return self._control(src, request, context)
        finally:
            self.guard.give(slot)

    def _control(
        self, src: str, request: pb.ControlRequest, context: grpc.ServicerContext
    ) -> pb.ControlReply:
        kind = safe(request.kind, MAX_KIND_BYTES)
        if self.control_handler is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{self.party} takes no control requests")
        if len(request.kind.encode()) > MAX_KIND_BYTES:
            abort_with(context, ProtocolError(f"{src} sent a control kind over {MAX_KIND_BYTES} bytes"))
        try:
            body = self.control_handler(src, request.kind, request.body)
        except FedcoreError as exc:
            self.refused(src, f"control {kind!r}", exc)
            abort_with(context, exc)
        except Exception as exc:  # a handler bug must not kill the server; the caller gets its type
            log.exception("party=%s control handler failed on %r from %s", self.party, kind, src)
            context.abort(
                grpc.StatusCode.INTERNAL,
                f"{self.party} failed to handle {kind!r}: {type(exc).__name__}",
            )
        return pb.ControlReply(body=body)

    def Ping(self, request_iterator: Iterator[pb.PingRequest], context: grpc.ServicerContext) -> pb.PingReply:
        src = self.peer_id(context)
        slot = self._slot(src, context)
        try:
            self._single(request_iterator, slot, "ping", context)
        finally:
            self.guard.give(slot)
        return pb.PingReply(party=self.party)
