"""A hostile peer for the hardening tests: raw gRPC calls with a real CA-signed certificate.

It speaks ``fedcore.v1.Party`` below fedcore's own client, so it can send what a well-behaved
node never would: frames over the limit, lies about sizes, stalled streams, floods.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc

from fedcore.crypto import pki
from fedcore.errors import FedcoreError
from fedcore.party.rotation import kit_ca
from fedcore.transport._grpc_wire import error_from_rpc
from fedcore.transport.grpc import TlsFiles, TlsMaterial
from fedcore.wire import party_pb2 as pb

SEND = "/fedcore.v1.Party/Send"
PING = "/fedcore.v1.Party/Ping"
CONTROL = "/fedcore.v1.Party/Control"


def kit_tls(kit: Path, party: str) -> TlsMaterial:
    """A kit party's own TLS material."""
    folder = kit / party
    return TlsMaterial.from_files(TlsFiles(folder / "ca.pem", folder / "party.pem", folder / "party.key"))


def outsider_tls(kit: Path, party: str, federation: str = "testfed") -> TlsMaterial:
    """A certificate the kit's CA signs for ``party``, which is not in the federation."""
    ca_pem, ca_key = kit_ca(kit)
    cert, key = pki.make_party_cert(ca_pem, ca_key, party, federation, ["127.0.0.1"])
    return TlsMaterial(ca_pem, cert, key)


def status_kib(pid: int, field: str) -> int:
    """A field of /proc/PID/status as a number (VmRSS in KiB, Threads as a count)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class Hostile:
    """Raw calls to ``address`` (which serves ``target``) under ``tls``'s certificate."""

    def __init__(self, tls: TlsMaterial, address: str, target: str):
        self.target, self.address = target, address
        self.channel = grpc.secure_channel(
            address,
            tls.channel_credentials(),
            options=[("grpc.ssl_target_name_override", target), ("grpc.max_send_message_length", -1)],
        )
        self.send_raw = self.channel.stream_unary(SEND)  # frames go as the bytes given
        self.ping_raw = self.channel.unary_unary(PING)
        self.control_raw = self.channel.unary_unary(CONTROL)

    def close(self) -> None:
        self.channel.close()

    def typed(self, err: grpc.RpcError, what: str) -> FedcoreError:
        return error_from_rpc(err, self.target, self.address, what)

    def frames(self, *frames: bytes, timeout_s: float = 10.0) -> None:
        """One Send call of these raw frames; raises the typed fedcore error it ended with."""
        try:
            self.send_raw(iter(frames), timeout=timeout_s)
        except grpc.RpcError as err:
            raise self.typed(err, "send") from None

    def message(self, env: pb.Envelope, chunk: bytes = b"") -> None:
        self.frames(pb.Frame(header=env, chunk=chunk).SerializeToString())

    def ping(self, timeout_s: float = 5.0) -> None:
        try:
            self.ping_raw(pb.PingRequest().SerializeToString(), timeout=timeout_s)
        except grpc.RpcError as err:
            raise self.typed(err, "ping") from None

    def control(self, kind: str, body: bytes, timeout_s: float = 10.0) -> bytes:
        try:
            reply = self.control_raw(
                pb.ControlRequest(kind=kind, body=body).SerializeToString(), timeout=timeout_s
            )
        except grpc.RpcError as err:
            raise self.typed(err, f"control {kind}") from None
        return bytes(pb.ControlReply.FromString(reply).body)

    def stalled_send(self, release: threading.Event, timeout_s: float = 60.0) -> grpc.Future:
        """A Send stream that opens and then sends nothing until ``release`` is set."""

        def nothing() -> Iterator[bytes]:
            release.wait()
            yield from ()

        return self.send_raw.future(nothing(), timeout=timeout_s)


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 to ``upstream`` that resets every connection every ``cut_s``."""

    def __init__(self, upstream: tuple[str, int], cut_s: float):
        self.upstream, self.cut_s = upstream, cut_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cuts = 0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        for target in (self._accept, self._cutter):
            threading.Thread(target=target, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._cut()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
                server = socket.create_connection(self.upstream)
            except OSError:
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.close()

    def _cutter(self) -> None:
        while not self._stop.wait(self.cut_s):
            self._cut()

    def _cut(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        if conns:
            self.cuts += 1
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
                sock.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv: close alone does not
            with contextlib.suppress(OSError):
                sock.close()
