"""The operator's control endpoint: length-prefixed msgpack frames on loopback TCP or a unix socket.

One connection carries one request frame (a map with ``op``) from the operator's CLI and one
or more reply frames from the daemon; the last has ``"final": True``. Long requests send a
``{"event": "tick"}`` frame every few seconds so the client can keep a read deadline. The
endpoint is never the peer port, is bound to loopback only (``config`` refuses anything else)
and, as a unix socket, is created with mode 0600. Nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import msgpack

from fedcore.errors import ConfigError, DecodeError, FedcoreError, Timeout
from fedcore.party.config import Endpoint

log = logging.getLogger("fedcore.party.control")

MAX_FRAME_BYTES = 1 << 30
_HEADER = struct.Struct(">I")

Reply = Callable[[dict[str, Any]], None]
Handler = Callable[[dict[str, Any], Reply], None]


def write_frame(sock: socket.socket, value: dict[str, Any]) -> None:
    """Send one msgpack frame."""
    data = msgpack.packb(value, use_bin_type=True)
    sock.sendall(_HEADER.pack(len(data)) + data)


def read_frame(sock: socket.socket) -> dict[str, Any] | None:
    """Read one frame; None on a clean end of stream.

    Raises:
        DecodeError: oversized, truncated or not a msgpack map.
    """
    header = _read_exact(sock, _HEADER.size, allow_eof=True)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME_BYTES:
        raise DecodeError(f"control frame of {size} bytes is over the {MAX_FRAME_BYTES} byte limit")
    body = _read_exact(sock, size, allow_eof=False)
    try:
        value = msgpack.unpackb(body, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise DecodeError(f"control frame is not valid msgpack: {exc}") from None
    if not isinstance(value, dict):
        raise DecodeError("control frame is not a map")
    return value


def _read_exact(sock: socket.socket, size: int, *, allow_eof: bool) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            if allow_eof and left == size:
                return None
            raise DecodeError("control connection closed in the middle of a frame")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class ControlServer:
    """Accepts operator connections and hands each request to ``handler`` in its own thread.

    Args:
        endpoint: loopback ``host:port`` or a unix socket path.
        handler: called as ``handler(request, reply)``; must send a final frame.
    """

    def __init__(self, endpoint: Endpoint, handler: Handler, *, config_file: str | None = None):
        self.endpoint = endpoint
        self.handler = handler
        try:
            self._sock = _listen(endpoint)
        except ConfigError as exc:
            raise ConfigError(str(exc).removeprefix("key 'party.control': "), file=config_file,
                              key="party.control") from None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="control-accept", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)
        if self.endpoint.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.endpoint.unix_path.unlink()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="control-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        lock = threading.Lock()

        def reply(frame: dict[str, Any]) -> None:
            with lock:
                write_frame(conn, frame)

        with conn:
            try:
                conn.settimeout(30.0)
                request = read_frame(conn)
                if request is None:
                    return
                conn.settimeout(120.0)  # a reader that stops reading must not block us forever
                self.handler(request, reply)
            except FedcoreError as exc:
                with contextlib.suppress(OSError):
                    reply(error_frame(exc))
            except OSError as exc:  # the operator went away; the job goes on
                log.info("control connection closed early: %s", exc)
            except Exception as exc:  # a daemon bug: tell the operator, keep serving
                log.exception("control request failed")
                failure = FedcoreError(f"the daemon failed on this request: {type(exc).__name__}")
                with contextlib.suppress(OSError):
                    reply(error_frame(failure))


def error_frame(exc: BaseException) -> dict[str, Any]:
    """The final frame reporting ``exc`` by type name and message."""
    return {"event": "error", "type": type(exc).__name__, "message": str(exc), "final": True}


def _listen(endpoint: Endpoint) -> socket.socket:
    if endpoint.unix_path is not None:
        return _listen_unix(endpoint.unix_path)
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((endpoint.host, endpoint.port))
    except OSError as exc:
        sock.close()
        message = f"cannot bind the control endpoint {endpoint}: {exc}"
        raise ConfigError(message, key="party.control") from None
    sock.listen(16)
    return sock


def _listen_unix(path: os.PathLike[str]) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        if _answers(path):
            sock.close()
            raise ConfigError(f"control socket {path} is in use by a running daemon", key="party.control")
        os.unlink(path)
    old = os.umask(0o177)  # the socket is created 0600: only the daemon's own user may connect
    try:
        sock.bind(os.fspath(path))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot bind the control socket {path}: {exc}", key="party.control") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(16)
    return sock


def _answers(path: os.PathLike[str]) -> bool:
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fspath(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def request(
    endpoint: Endpoint, req: dict[str, Any], *, idle_timeout_s: float = 30.0
) -> Iterator[dict[str, Any]]:
    """Send one request to a daemon and yield its reply frames up to the final one.

    Raises:
        ConfigError: no daemon listens at ``endpoint``.
        Timeout: the daemon sent nothing for ``idle_timeout_s``.
        FedcoreError subclasses: the daemon's error frame, re-raised by type name.
    """
    sock = _connect(endpoint)
    with sock:
        sock.settimeout(idle_timeout_s)
        write_frame(sock, req)
        while True:
            try:
                frame = read_frame(sock)
            except TimeoutError:
                raise Timeout(f"the daemon at {endpoint} sent nothing for {idle_timeout_s:g} s") from None
            if frame is None:
                raise FedcoreError(f"the daemon at {endpoint} closed the connection without an answer")
            if frame.get("event") == "error":
                raise remote_error(frame)
            if frame.get("event") != "tick":
                yield frame
            if frame.get("final"):
                return


def call(endpoint: Endpoint, req: dict[str, Any], *, idle_timeout_s: float = 30.0) -> dict[str, Any]:
    """A request with a single reply frame."""
    frames = list(request(endpoint, req, idle_timeout_s=idle_timeout_s))
    return frames[-1]


def _connect(endpoint: Endpoint) -> socket.socket:
    if endpoint.unix_path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: Any = os.fspath(endpoint.unix_path)
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET, socket.SOCK_STREAM)
        target = (endpoint.host, endpoint.port)
    sock.settimeout(5.0)
    try:
        sock.connect(target)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"no party daemon answers at the control endpoint {endpoint} ({exc.strerror or exc}); "
            "start it with: fedcore party serve CONFIG",
            key="party.control",
        ) from None
    return sock


def remote_error(frame: dict[str, Any]) -> FedcoreError:
    """Rebuild a daemon's error frame as the fedcore error type it names."""
    from fedcore import errors

    cls = getattr(errors, str(frame.get("type")), None)
    message = str(frame.get("message", "unknown error"))
    if isinstance(cls, type) and issubclass(cls, FedcoreError):
        return cls(message)
    return FedcoreError(message)
