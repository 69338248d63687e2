"""The sending end of the gRPC transport: one channel per peer, sends with retry, peer checks."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from fedcore.crypto import pki
from fedcore.errors import AuthError, ConfigError, FedcoreError, PartyDropped
from fedcore.transport._grpc_wire import (
    BULK,
    CHUNK_BYTES,
    TlsMaterial,
    client_options,
    error_from_rpc,
    is_retryable,
    log,
    serialize_frame,
)
from fedcore.transport.base import Payload
from fedcore.wire import party_pb2 as pb

SEND = "/fedcore.v1.Party/Send"
CONTROL = "/fedcore.v1.Party/Control"
PING = "/fedcore.v1.Party/Ping"
_SMALL = 64 << 10  # values up to this size travel in the envelope's frame


@dataclass(frozen=True)
class PeerCheck:
    """What dialing one peer showed: the operator's first debugging tool.

    Attributes:
        peer: the party id we expected at ``address``.
        address: the address dialed.
        reachable: a TCP connection was made.
        tls_verified: the peer's certificate chains to our federation CA.
        identity: the party id in the peer's certificate (even when unverified), if any.
        error: why the link does not work, or None when it does.
    """

    peer: str
    address: str
    reachable: bool
    tls_verified: bool
    identity: str | None
    error: str | None


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"bad address {address!r}: expected host:port")
    return host.strip("[]"), int(port)


class PeerLink:
    """A reusable mutual-TLS channel to one peer, verified against the peer's id (DNS SAN)."""

    def __init__(
        self,
        me: str,
        peer: str,
        address: str,
        tls: TlsMaterial,
        max_reply_bytes: int = 2**31 - 1,
        keepalive_s: float = 30.0,
    ):
        self.me, self.peer, self.address = me, peer, address
        options = [
            ("grpc.ssl_target_name_override", peer),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
            *client_options(max_reply_bytes, keepalive_s),
            *BULK,
        ]
        self.channel = grpc.secure_channel(address, tls.channel_credentials(), options=options)
        self._send = self.channel.stream_unary(
            SEND, request_serializer=serialize_frame, response_deserializer=pb.SendReply.FromString
        )
        self._control = self.channel.unary_unary(
            CONTROL,
            request_serializer=pb.ControlRequest.SerializeToString,
            response_deserializer=pb.ControlReply.FromString,
        )
        self._ping = self.channel.unary_unary(
            PING,
            request_serializer=pb.PingRequest.SerializeToString,
            response_deserializer=pb.PingReply.FromString,
        )
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()
        self.channel.close()

    def send(
        self, env: pb.Envelope, parts: list[memoryview], retry_window_s: float, rpc_timeout_s: float
    ) -> bool:
        """Stream one message until acknowledged; retry with backoff while the peer is unreachable.

        Returns:
            True when the peer already had the message (a retry after a lost acknowledgement).

        Raises:
            PartyDropped: the peer stayed unreachable for ``retry_window_s``.
            FedcoreError: the peer refused the message (its error, with its type).
        """
        give_up = time.monotonic() + retry_window_s
        delay_s = 0.05
        what = f"{env.tag!r} of job {env.job}"
        while True:
            try:
                reply = self._send(_frames(env, parts), timeout=rpc_timeout_s)
                return bool(reply.duplicate)
            except grpc.RpcError as err:
                if not is_retryable(err) or self.closed.is_set() or time.monotonic() + delay_s > give_up:
                    raise error_from_rpc(err, self.peer, self.address, f"sending {what}") from None
                log.info(
                    "job=%s party=%s retrying %s#%d to %s in %.2f s: %s",
                    env.job,
                    self.me,
                    env.tag,
                    env.seq,
                    self.peer,
                    delay_s,
                    err.code().name if isinstance(err, grpc.Call) else type(err).__name__,
                )
            if self.closed.wait(delay_s):
                raise PartyDropped(f"{self.me} stopped while sending {what} to {self.peer}", party=self.peer)
            delay_s = min(delay_s * 2, 1.0)

    def call(self, kind: str, body: bytes, timeout_s: float) -> bytes:
        try:
            reply = self._control(pb.ControlRequest(kind=kind, body=body), timeout=timeout_s)
        except grpc.RpcError as err:
            raise error_from_rpc(err, self.peer, self.address, f"control {kind!r}") from None
        return bytes(reply.body)

    def ping_future(self, timeout_s: float) -> grpc.Future[pb.PingReply]:
        """Start a heartbeat ping; ``result()`` raises ``grpc.RpcError`` if it failed."""
        return self._ping.future(pb.PingRequest(src=self.me), timeout=timeout_s)

    def ping(self, timeout_s: float) -> str:
        try:
            return str(self._ping(pb.PingRequest(src=self.me), timeout=timeout_s).party)
        except grpc.RpcError as err:
            raise error_from_rpc(err, self.peer, self.address, "ping") from None


def as_parts(payload: Payload) -> list[memoryview]:
    """A payload as a list of flat byte views (a value's ``wire.encode_parts`` need not be joined)."""
    parts = [payload] if isinstance(payload, bytes | bytearray | memoryview) else list(payload)
    return [memoryview(p).cast("B") for p in parts]


def _frames(env: pb.Envelope, parts: list[memoryview]) -> Iterator[pb.Frame | memoryview]:
    small = env.total_bytes <= _SMALL
    yield pb.Frame(header=env, chunk=b"".join(parts) if small else b"")
    if small:
        return
    for part in parts:
        for start in range(0, len(part), CHUNK_BYTES):
            yield part[start : start + CHUNK_BYTES]


# ------------------------------------------------------------------------------- peer check


def peer_certificate(host: str, port: int, tls: TlsMaterial, verify: bool, timeout_s: float) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # the identity is compared with the expected party below
    if verify:
        ctx.load_verify_locations(cadata=tls.ca_pem.decode("ascii"))
    else:
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, port), timeout=timeout_s) as raw,
        ctx.wrap_socket(raw, server_hostname=None) as tls_sock,
    ):
        der = tls_sock.getpeercert(binary_form=True)
    if not der:
        raise AuthError("the peer presented no certificate")
    return der


def _identity(der: bytes) -> str | None:
    try:
        return pki.party_id_from_cert(der)
    except AuthError:
        return None


def check_peer(link: PeerLink, tls: TlsMaterial, timeout_s: float) -> PeerCheck:
    """Dial ``link``'s peer: TCP, then TLS against our CA, then a mutual-TLS ping."""
    peer, address = link.peer, link.address
    try:
        host, port = split_address(address)
        socket.create_connection((host, port), timeout=timeout_s).close()
    except (OSError, ConfigError) as exc:
        return PeerCheck(peer, address, False, False, None, f"cannot connect to {address}: {exc}")
    try:
        identity = _identity(peer_certificate(host, port, tls, True, timeout_s))
    except ssl.SSLCertVerificationError as exc:
        try:
            claimed = _identity(peer_certificate(host, port, tls, False, timeout_s))
        except (OSError, ssl.SSLError, AuthError):
            claimed = None
        return PeerCheck(
            peer,
            address,
            True,
            False,
            claimed,
            f"certificate at {address} does not chain to our federation CA: {exc.verify_message}",
        )
    except (OSError, ssl.SSLError, AuthError) as exc:
        return PeerCheck(peer, address, True, False, None, f"TLS handshake with {address} failed: {exc}")
    if identity != peer:
        return PeerCheck(
            peer,
            address,
            True,
            True,
            identity,
            f"{address} answers with the certificate of {identity!r}, expected {peer!r}",
        )
    try:
        link.ping(timeout_s)
    except FedcoreError as exc:
        return PeerCheck(
            peer,
            address,
            True,
            True,
            identity,
            (
                f"{peer}'s certificate verifies, but {peer} refused our call or our certificate "
                f"(is ours issued by the CA {peer} trusts?): {exc}"
            ),
        )
    return PeerCheck(peer, address, True, True, identity, None)
