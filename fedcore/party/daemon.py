"""The party daemon: mTLS peer node, operator control endpoint, job manager (``fedcore party serve``)."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fedcore.errors import ConfigError, FedcoreError
from fedcore.party import control
from fedcore.party.config import PartyConfig
from fedcore.party.initiate import run_job
from fedcore.party.runner import JobRunner
from fedcore.party.tlscheck import verify_tls
from fedcore.runtime import Runtime, make_runtime

log = logging.getLogger("fedcore.party")

DRAIN_S = 5.0  # how long SIGTERM lets running jobs finish before aborting them
PEER_CHECK_TIMEOUT_S = 3.0


def make_party_runtime(config: PartyConfig) -> Runtime:
    """The ``[runtime]`` backend of this party."""
    options: dict[str, Any] = {}
    if config.runtime.backend == "ray" and config.runtime.address:
        options["address"] = config.runtime.address
    return make_runtime(config.runtime.backend, config.runtime.workers, **options)


def make_node(config: PartyConfig, handler: Any, *, listen: str | None = None) -> Any:
    """A ``PeerNode`` for this party (not started); ``listen`` overrides the bind address."""
    from fedcore.transport.grpc import PeerNode, TlsFiles, TlsMaterial

    tls = TlsMaterial.from_files(TlsFiles(ca=config.tls.ca, cert=config.tls.cert, key=config.tls.key))
    limits = config.limits
    return PeerNode(
        config.party_id, listen or str(config.listen), dict(config.peers), tls,
        max_value_bytes=limits.max_value_bytes, mailbox_bytes=limits.mailbox_bytes,
        heartbeat_s=limits.heartbeat_s, peer_timeout_s=limits.peer_timeout_s,
        control_handler=handler,
    )


class PartyDaemon:
    """One party's daemon. ``start()``, then ``shutdown()`` (``serve()`` does both around signals).

    Args:
        config: the loaded party configuration; its TLS files are checked first.
    """

    def __init__(self, config: PartyConfig):
        self.config = config
        self.cert_info = verify_tls(config)
        self.node = make_node(config, self._peer_handler)
        self.runner = JobRunner(config, self.node, lambda: make_party_runtime(config))
        self.control: control.ControlServer | None = None
        self.stopped = threading.Event()

    def _peer_handler(self, src: str, kind: str, body: bytes) -> bytes:
        return self.runner.handle_peer(src, kind, body)

    def start(self) -> None:
        """Bind the control endpoint, then serve peers, then accept operator requests."""
        self.control = control.ControlServer(
            self.config.control, self._control_handler, config_file=str(self.config.path)
        )
        try:
            port = self.node.start()
        except BaseException:
            self.control.stop()
            raise
        self.control.start()
        log.info(
            "party=%s serving peers on %s (port %s), control on %s; certificate expires in %s days",
            self.config.party_id, self.config.listen, port, self.config.control,
            self.cert_info.get("days_left"),
        )

    def shutdown(self, drain_s: float = DRAIN_S) -> None:
        """Refuse new jobs, let running ones finish for ``drain_s``, abort the rest, stop."""
        me = self.config.party_id
        self.runner.closing = True
        running = self.runner.jobs.running()
        if running:
            log.info("party=%s draining %d running job(s) for up to %g s", me, len(running), drain_s)
        if not self.runner.wait_idle(drain_s):
            self.runner.abort_all(f"the daemon of {me} shut down")
            self.runner.wait_idle(1.0)
        if self.control is not None:
            self.control.stop()
        self.node.stop(1.0)
        self.runner.close_runtime()
        self.stopped.set()
        log.info("party=%s daemon stopped", me)

    def serve(self) -> int:
        """Run until SIGTERM or SIGINT, then shut down cleanly; returns the exit code 0."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        while not stop.wait(3600):
            pass
        log.info("party=%s signal received, shutting down", self.config.party_id)
        self.shutdown()
        return 0

    # ------------------------------------------------------------------ operator requests

    def _control_handler(self, req: dict[str, Any], reply: control.Reply) -> None:
        op = req.get("op")
        if op == "run":
            run_job(self.runner, req, reply)
            return
        handlers = {"ping": self._ping, "status": self._status, "jobs": self._jobs, "job": self._job}
        handler = handlers.get(str(op))
        if handler is None:
            raise ConfigError(f"unknown control request {op!r}: use one of run, {', '.join(handlers)}")
        reply({**handler(req), "final": True})

    def _ping(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"party": self.config.party_id, "federation": self.config.federation,
                "closing": self.runner.closing}

    def _status(self, req: dict[str, Any]) -> dict[str, Any]:
        peers = list(self.config.peers)
        with ThreadPoolExecutor(max_workers=max(1, len(peers))) as pool:
            checks = list(pool.map(self._check_peer, peers))
        info = self.cert_info
        return {
            **self._ping(req),
            "certificate": {"not_after": info.get("not_after"), "days_left": info.get("days_left"),
                            "party_id": info.get("party_id")},
            "peers": checks,
            "jobs": [j.summary() for j in self.runner.jobs.running()],
        }

    def _check_peer(self, peer: str) -> dict[str, Any]:
        try:
            check = self.node.check_peer(peer, timeout_s=PEER_CHECK_TIMEOUT_S)
        except FedcoreError as exc:
            return {"peer": peer, "address": self.config.peers[peer], "reachable": False,
                    "tls_verified": False, "identity": None, "error": str(exc)}
        return peer_check_dict(check)

    def _jobs(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"jobs": [j.summary() for j in self.runner.jobs.all()]}

    def _job(self, req: dict[str, Any]) -> dict[str, Any]:
        job = self.runner.jobs.get(str(req.get("job_id")))
        return {"job": {**job.summary(), "events": job.events[-20:]}}


def peer_check_dict(check: Any) -> dict[str, Any]:
    """A ``PeerCheck`` as a JSON-able dict."""
    return {
        "peer": check.peer, "address": check.address, "reachable": bool(check.reachable),
        "tls_verified": bool(check.tls_verified), "identity": check.identity, "error": check.error,
    }
