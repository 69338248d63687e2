"""The party daemon: mTLS peer node, operator API, job manager and store (``fedcore party serve``).

Leaving cleanly (SIGTERM, or Ctrl-C): the daemon refuses new jobs, tells the peers of each
running job that it is leaving (the transport's abort: to them it is a dropout, exactly as a
crash), lets its own sides end for up to ``DRAIN_S``, then stops and exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
from cryptography import x509

from fedcore.errors import ConfigError, FedcoreError
from fedcore.party.api import build_app
from fedcore.party.config import Endpoint, PartyConfig
from fedcore.party.metrics import DaemonMetrics
from fedcore.party.runner import JobRunner
from fedcore.party.store import JobStore
from fedcore.party.tlscheck import verify_tls
from fedcore.runtime import Runtime, make_runtime
from fedcore.transport.grpc import (
    PeerNode,
    PortLimits,
    Revoked,
    TlsFiles,
    TlsMaterial,
    peer_certificate,
    split_address,
)

log = logging.getLogger("fedcore.party")

DRAIN_S = 10.0  # how long a leaving daemon lets its sides of running jobs end
PEER_CHECK_TIMEOUT_S = 3.0


def make_party_runtime(config: PartyConfig) -> Runtime:
    """The ``[runtime]`` backend of this party."""
    options: dict[str, Any] = {}
    if config.runtime.backend == "ray" and config.runtime.address:
        options["address"] = config.runtime.address
    return make_runtime(config.runtime.backend, config.runtime.workers, **options)


def make_node(config: PartyConfig, handler: Any, *, listen: str | None = None) -> Any:
    """A ``PeerNode`` for this party (not started); ``listen`` overrides the bind address."""
    tls = TlsMaterial.from_files(TlsFiles(ca=config.tls.ca, cert=config.tls.cert, key=config.tls.key))
    limits = config.limits
    return PeerNode(
        config.party_id, listen or str(config.listen), dict(config.peers), tls,
        max_value_bytes=limits.max_value_bytes, mailbox_bytes=limits.mailbox_bytes,
        heartbeat_s=limits.heartbeat_s, peer_timeout_s=limits.peer_timeout_s,
        control_handler=handler, **port_guard(config),
    )  # fmt: skip


def port_guard(config: PartyConfig) -> dict[str, Any]:
    """``PeerNode``'s ``limits`` and ``revoked`` arguments from ``[limits]`` and ``[revocation]``."""
    limits = config.limits
    port = PortLimits(
        peer_streams=limits.peer_streams,
        stream_idle_s=limits.stream_idle_s,
        keepalive_s=limits.keepalive_s,
        connection_age_s=limits.connection_age_s,
        pending_bytes=limits.pending_bytes,
    )
    revoked = Revoked(frozenset(config.revocation.ids), frozenset(config.revocation.serials))
    return {"limits": port, "revoked": revoked}


class PartyDaemon:
    """One party's daemon. ``start()``, then ``shutdown()`` (``serve()`` does both around signals).

    Args:
        config: the loaded party configuration; its TLS files are checked first.
    """

    def __init__(self, config: PartyConfig):
        self.config = config
        self.cert_info = verify_tls(config)
        self.store = JobStore(config.state_dir)
        self.metrics = DaemonMetrics(self.store.counts)
        self.node = make_node(config, self._peer_handler)
        self.runner = JobRunner(
            config, self.node, lambda: make_party_runtime(config), self.store, self.metrics
        )
        self._server: Any = None
        self._server_thread: threading.Thread | None = None
        self.stopped = threading.Event()

    def _peer_handler(self, src: str, kind: str, body: bytes) -> bytes:
        return self.runner.handle_peer(src, kind, body)

    def start(self) -> None:
        """Mark jobs a dead daemon left as interrupted, bind the API, serve peers, then the operator."""
        cut = self.store.interrupt_unfinished("the daemon stopped while the job ran")
        for job_id in cut:
            log.info(
                "job=%s party=%s interrupted (the daemon stopped while it ran)", job_id, self.config.party_id
            )
        sock = listen(self.config.control, config_file=str(self.config.path))
        try:
            port = self.node.start()
        except BaseException:
            sock.close()
            raise
        self._serve_api(sock)
        log.info(
            "party=%s serving peers on %s (port %s), operator API on %s; certificate expires in %s days",
            self.config.party_id, self.config.listen, port, self.config.control,
            self.cert_info.get("days_left"),
        )  # fmt: skip

    def _serve_api(self, sock: socket.socket) -> None:
        token = None
        if self.config.control.unix_path is None:
            assert self.config.api_token_file is not None  # config requires it for TCP
            token = self.config.api_token_file.read_text(encoding="utf-8").strip()
        app = build_app(self, token)
        server_config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(server_config)
        self._server_thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="operator-api", daemon=True
        )
        self._server_thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._server_thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)  # uvicorn has no ready callback; its flag flips within milliseconds

    def shutdown(self, drain_s: float = DRAIN_S) -> None:
        """Refuse new jobs, leave running ones (peers see a dropout), drain for ``drain_s``, stop."""
        me = self.config.party_id
        self.runner.closing = True
        left = self.runner.leave(f"{me} is leaving: its daemon is shutting down")
        if left:
            log.info("party=%s left %d running job(s); draining for up to %g s", me, len(left), drain_s)
        self.runner.wait_idle(drain_s)
        if self._server is not None:
            self._server.should_exit = True
            if self._server_thread is not None:
                self._server_thread.join(timeout=5)
        if self.config.control.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.config.control.unix_path.unlink()
        self.node.stop(1.0)
        self.runner.close_runtime()
        self.store.close()
        self.stopped.set()
        log.info("party=%s daemon stopped", me)

    def serve(self) -> int:
        """Run until SIGTERM or SIGINT, then leave cleanly; returns the exit code 0."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        while not stop.wait(3600):
            pass
        log.info("party=%s signal received, shutting down", self.config.party_id)
        self.shutdown()
        return 0

    # ------------------------------------------------------------------ operator views

    def ping(self) -> dict[str, Any]:
        return {"party": self.config.party_id, "federation": self.config.federation,
                "closing": self.runner.closing}  # fmt: skip

    def status(self) -> dict[str, Any]:
        peers = list(self.config.peers)
        with ThreadPoolExecutor(max_workers=max(1, len(peers))) as pool:
            checks = list(pool.map(self._check_peer, peers))
        info = self.cert_info
        return {
            **self.ping(),
            "certificate": {"not_after": info.get("not_after"), "days_left": info.get("days_left"),
                            "party_id": info.get("party_id")},
            "peers": checks,
            "jobs_running": len(self.runner.jobs.running()),
        }  # fmt: skip

    def _check_peer(self, peer: str) -> dict[str, Any]:
        try:
            check = self.node.check_peer(peer, timeout_s=PEER_CHECK_TIMEOUT_S)
            view = peer_check_dict(check)
        except FedcoreError as exc:
            view = {"peer": peer, "address": self.config.peers[peer], "reachable": False,
                    "tls_verified": False, "identity": None, "error": str(exc)}  # fmt: skip
        seen = self.node.last_contact(peer)  # monotonic time of the last exchange, 0.0 if none
        last_seen = time.time() - (time.monotonic() - seen) if seen else None
        if view["reachable"] and view["tls_verified"]:
            last_seen = time.time()
        expires = self._peer_cert_expiry(peer) if view["tls_verified"] else None
        return {"id": peer, **view, "cert_expires": expires, "last_seen": last_seen}

    def _peer_cert_expiry(self, peer: str) -> str | None:
        """When the certificate ``peer`` presents expires (ISO 8601), from one more TLS handshake."""
        try:
            host, port = split_address(self.config.peers[peer])
            der = peer_certificate(host, port, self.node.tls, True, PEER_CHECK_TIMEOUT_S)
            return x509.load_der_x509_certificate(der).not_valid_after_utc.isoformat()
        except (OSError, ValueError, FedcoreError):
            return None


def peer_check_dict(check: Any) -> dict[str, Any]:
    """A ``PeerCheck`` as a JSON-able dict."""
    return {
        "peer": check.peer, "address": check.address, "reachable": bool(check.reachable),
        "tls_verified": bool(check.tls_verified), "identity": check.identity, "error": check.error,
    }  # fmt: skip


def listen(endpoint: Endpoint, *, config_file: str | None = None) -> socket.socket:
    """A listening socket for the operator API: a 0600 Unix socket, or loopback TCP.

    Raises:
        ConfigError: the endpoint cannot be bound, or a running daemon holds the socket.
    """
    try:
        return _listen_unix(endpoint) if endpoint.unix_path is not None else _listen_tcp(endpoint)
    except ConfigError as exc:
        raise ConfigError(str(exc), file=config_file, key="party.control") from None


def _listen_tcp(endpoint: Endpoint) -> socket.socket:
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((endpoint.host, endpoint.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot bind the operator API on {endpoint}: {exc}") from None
    sock.listen(64)
    return sock


def _listen_unix(endpoint: Endpoint) -> socket.socket:
    path = endpoint.unix_path
    assert path is not None
    if path.exists():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(os.fspath(path))
            raise ConfigError(f"the operator socket {path} is in use by a running daemon")
        except OSError:
            path.unlink()  # left by a daemon that died
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # created 0600: only the daemon's own user may connect
    try:
        sock.bind(os.fspath(path))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot bind the operator socket {path}: {exc}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(64)
    return sock
