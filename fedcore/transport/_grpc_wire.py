"""gRPC plumbing shared by both ends: TLS material, frame (de)serializers, error mapping."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import grpc

from fedcore.crypto.secret import ACCESS, Secret
from fedcore.errors import (
    AuthError,
    ConfigError,
    DecodeError,
    FedcoreError,
    PartyDropped,
    PolicyRefused,
    ProtocolError,
    Timeout,
)
from fedcore.wire import party_pb2 as pb

log = logging.getLogger("fedcore.transport")

CHUNK_BYTES = 1 << 20  # measured: 1 MiB messages stream faster through grpcio than 4 MiB
ERROR_KEY = "fedcore-error"
PARTY_KEY = "fedcore-party"
STEP_KEY = "fedcore-step"
RETRY_KEY = "fedcore-retry"  # set on refusals that pass (a peer at its stream cap): try again

FRAME_MARGIN = 64 << 10  # room for an envelope (its strings are capped) beside a full chunk
MAX_FRAME_BYTES = CHUNK_BYTES + FRAME_MARGIN
"""The largest gRPC message the peer port takes: values travel in chunks, so no frame needs more."""
_GRPC_MAX = 2**31 - 1

# Sending has no wall (values are chunked anyway); receiving is bounded on both ends.
UNLIMITED = [("grpc.max_send_message_length", -1)]
# Larger socket reads for bulk streams (measured a little faster on loopback than the defaults).
BULK = [
    ("grpc.experimental.tcp_min_read_chunk_size", 1 << 20),
    ("grpc.experimental.tcp_max_read_chunk_size", 16 << 20),
]


def server_options(keepalive_s: float, connection_age_s: float, peer_streams: int) -> list[tuple[str, int]]:
    """gRPC server options of the peer port: frame limit, keepalive, connection age, streams."""
    age_ms = int(connection_age_s * 1000)
    return [
        *UNLIMITED,
        # a frame over the limit is refused from its length prefix, before it is buffered
        ("grpc.max_receive_message_length", MAX_FRAME_BYTES),
        ("grpc.keepalive_time_ms", int(keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(min(keepalive_s, 20.0) * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        # our clients ping every keepalive_s: accept that, refuse a peer that pings much faster
        ("grpc.http2.min_recv_ping_interval_without_data_ms", int(keepalive_s * 500)),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.max_connection_age_ms", age_ms),
        ("grpc.max_connection_age_grace_ms", min(age_ms, 600_000)),
        ("grpc.max_connection_idle_ms", 300_000),
        ("grpc.max_concurrent_streams", 4 * peer_streams),
    ]


def client_options(max_reply_bytes: int, keepalive_s: float) -> list[tuple[str, int]]:
    """gRPC channel options toward a peer: replies (a peer's job result) bounded by our value limit."""
    return [
        *UNLIMITED,
        ("grpc.max_receive_message_length", min(max_reply_bytes + FRAME_MARGIN, _GRPC_MAX)),
        ("grpc.keepalive_time_ms", int(keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(min(keepalive_s, 20.0) * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


@dataclass(frozen=True)
class TlsFiles:
    """Paths of a party's TLS files: the federation CA, its certificate and its private key."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True, repr=False)
class TlsMaterial:
    """A party's TLS material: CA and certificate PEM bytes, the private key PEM as a ``Secret``.

    The key's bytes are revealed only where they are handed to gRPC (the two credential
    methods). Its repr never shows the key; it refuses pickling.
    """

    ca_pem: bytes
    cert_pem: bytes
    key_pem: Secret

    def __post_init__(self) -> None:
        if not isinstance(self.key_pem, Secret):
            raise TypeError(
                f"TlsMaterial takes the private key as a Secret, got {type(self.key_pem).__name__}"
            )

    @classmethod
    def from_files(cls, files: TlsFiles) -> TlsMaterial:
        """Read the three PEM files.

        Raises:
            ConfigError: a file is missing or unreadable (naming the file).
        """
        parts = []
        for name in ("ca", "cert", "key"):
            path = Path(getattr(files, name))
            try:
                parts.append(path.read_bytes())
            except OSError as exc:
                raise ConfigError(f"cannot read TLS {name} file: {exc.strerror}", file=str(path)) from None
        ca, cert, key = parts
        return cls(ca, cert, Secret(key, "TLS private key"))

    def __repr__(self) -> str:
        return "TlsMaterial(ca_pem=..., cert_pem=..., key_pem=<hidden>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("TlsMaterial holds a private key and cannot be pickled")

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key_pem.reveal(ACCESS), self.cert_pem)],
            root_certificates=self.ca_pem,
            require_client_auth=True,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem,
            private_key=self.key_pem.reveal(ACCESS),
            certificate_chain=self.cert_pem,
        )


# ------------------------------------------------------------------------------------ frames
# A Frame holding only a chunk is encoded by hand (tag 0x12, varint length, bytes) straight from a
# memoryview of the value, and decoded back to a memoryview of the received bytes: one copy less
# each way than building and parsing ``pb.Frame`` for every chunk. Both forms are valid protobuf.

_CHUNK_TAG = 0x12


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def serialize_frame(item: pb.Frame | memoryview | bytes) -> bytes:
    if isinstance(item, pb.Frame):
        return item.SerializeToString()
    return b"".join((bytes((_CHUNK_TAG,)), _varint(len(item)), item))


def deserialize_frame(data: bytes) -> pb.Frame | memoryview:
    if data[:1] == b"\x12":
        length, shift, pos = 0, 0, 1
        while pos < len(data) and pos < 11:
            byte = data[pos]
            length |= (byte & 0x7F) << shift
            pos += 1
            shift += 7
            if not byte & 0x80:
                break
        if length == len(data) - pos:
            return memoryview(data)[pos:]
    return pb.Frame.FromString(data)


# ------------------------------------------------------------------------------------ errors

_ERRORS: dict[str, type[FedcoreError]] = {
    cls.__name__: cls
    for cls in (AuthError, ConfigError, DecodeError, PolicyRefused, ProtocolError, Timeout, PartyDropped)
}
_CODES: list[tuple[type[FedcoreError], grpc.StatusCode]] = [
    (AuthError, grpc.StatusCode.PERMISSION_DENIED),
    (PolicyRefused, grpc.StatusCode.FAILED_PRECONDITION),
    (ConfigError, grpc.StatusCode.INVALID_ARGUMENT),
    (DecodeError, grpc.StatusCode.INVALID_ARGUMENT),
    (Timeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (PartyDropped, grpc.StatusCode.ABORTED),
    (ProtocolError, grpc.StatusCode.FAILED_PRECONDITION),
]


def _ascii(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii")


def abort_with(
    context: grpc.ServicerContext,
    exc: FedcoreError,
    code: grpc.StatusCode | None = None,
    *,
    retry: bool = False,
) -> NoReturn:
    """End an RPC with ``exc``: a status code, its message, and its type in trailing metadata."""
    if code is None:
        code = next((c for cls, c in _CODES if isinstance(exc, cls)), grpc.StatusCode.UNKNOWN)
    name = type(exc).__name__ if type(exc).__name__ in _ERRORS else "FedcoreError"
    metadata = [(ERROR_KEY, name)]
    party, step = getattr(exc, "party", None), getattr(exc, "step", None)
    if party:
        metadata.append((PARTY_KEY, _ascii(party)))
    if step:
        metadata.append((STEP_KEY, _ascii(step)))
    if retry:
        metadata.append((RETRY_KEY, "1"))
    context.set_trailing_metadata(tuple(metadata))
    context.abort(code, str(exc))
    raise AssertionError("unreachable: grpc context.abort raises")  # pragma: no cover


def error_from_rpc(err: grpc.RpcError, peer: str, address: str, what: str) -> FedcoreError:
    """Turn a failed call into the fedcore error it stands for (a remote one keeps its type)."""
    code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (err.details() if isinstance(err, grpc.Call) else None) or str(code)
    meta: dict[str, Any] = dict(err.trailing_metadata() or ()) if isinstance(err, grpc.Call) else {}
    remote = _ERRORS.get(str(meta.get(ERROR_KEY, "")))
    if remote is not None:
        return _rebuild(remote, details, meta)
    if meta.get(ERROR_KEY) == "FedcoreError":
        return FedcoreError(details)
    if code == grpc.StatusCode.UNAVAILABLE:
        return PartyDropped(f"{peer} at {address} is unreachable ({what}): {details}", party=peer)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Timeout(f"{peer} at {address} did not answer in time ({what}): {details}", party=peer)
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return AuthError(f"{peer} at {address} refused us ({what}): {details}")
    return ProtocolError(f"{what} to {peer} at {address} failed: {code.name}: {details}")


def _rebuild(cls: type[FedcoreError], details: str, meta: dict[str, Any]) -> FedcoreError:
    party, step = meta.get(PARTY_KEY), meta.get(STEP_KEY)
    if cls is PartyDropped:
        return PartyDropped(details, party=party, step=step)
    if cls is Timeout:
        return Timeout(details, party=party)
    return cls(details)


def is_retryable(err: grpc.RpcError) -> bool:
    """Whether a failed send may be tried again (the peer was not reached or did not answer)."""
    if not isinstance(err, grpc.Call):
        return False
    meta = dict(err.trailing_metadata() or ())
    if meta.get(RETRY_KEY):
        return True
    return err.code() == grpc.StatusCode.UNAVAILABLE and not meta.get(ERROR_KEY)
