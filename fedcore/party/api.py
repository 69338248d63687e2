"""The operator API: HTTP/JSON (Starlette on uvicorn) for the CLI, the status page and Prometheus.

Where it listens: ``[party] control`` in party.toml, a Unix socket (created mode 0600: only the
daemon's user may connect; the default ``fedcore provision`` writes) or loopback TCP for
containers, where every request needs the operator token of ``[api] token_file`` (mode 0600):
``Authorization: Bearer <token>``, or for a browser ``?token=<token>`` once, which sets an
HttpOnly SameSite=Strict cookie ``fedcore_token`` and redirects (303) to the URL without it.
A request without the credential gets 401. The schema is ``GET /api/v1/openapi.json``.

Routes (all JSON; times are Unix seconds as floats, ``null`` when not yet known):

- ``GET /api/v1/ping`` -> ``{"party", "federation", "closing"}``
- ``GET /api/v1/status`` -> ``{"party", "federation", "certificate", "jobs_running",
  "peers": [{"id", "address", "reachable", "tls_verified", "identity", "error", "cert_expires",
  "last_seen"}]}``
- ``GET /api/v1/jobs`` -> ``{"jobs": [{"job_id", "state", "script", "parties", "step", "started",
  "seconds", "initiator", "created", "ended", "error"}]}`` (newest first)
- ``POST /api/v1/jobs`` with ``RunRequest`` JSON -> 201 ``{"job_id", "parties"}``; the job runs on
  at the daemon whatever the client does next
- ``GET /api/v1/jobs/{id}`` -> the job's summary plus ``"params"``, ``"states": [{"state", "at",
  "reason"}]``, ``"outcomes": {party: outcome_json}``, ``"progress": [{"party", "step", "done",
  "total", "message", "at"}]``, ``"metrics": [{"round", "party", name: value}]``, ``"log": [lines]``
- ``GET /api/v1/jobs/{id}/wait?since=N&timeout_s=T`` -> ``{"job_id", "state", "done", "total",
  "events": [...]}`` (long poll: returns at a new event, when done, or after T <= 30 s)
- ``GET /api/v1/jobs/{id}/result`` -> ``{"job_id", "state", "parties": {party: outcome_json},
  "seconds", "files": {party: [paths under its output folder]}}`` (``files`` only for this party)
- ``POST /api/v1/jobs/{id}/cancel`` -> ``{"job_id", "state", "told": [parties]}``
- ``GET /api/v1/jobs/{id}/logs`` -> ``{"job_id", "log": [lines]}``
- ``GET /metrics`` -> Prometheus text (jobs by state, bytes/messages per peer, refusals, rounds)
- the status page of ``fedcore.party.web.routes()`` at ``/``, ``/jobs/{id}`` and ``/static/``.

Errors are ``{"error": {"type", "message"}}`` with 400 (ConfigError), 401 (no credential),
403 (PolicyRefused), 404 (unknown job or path), 409 (another FedcoreError).
"""

from __future__ import annotations

import hmac
import importlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fedcore.errors import ConfigError, FedcoreError, PolicyRefused
from fedcore.party import initiate
from fedcore.party import messages as m
from fedcore.party.jobs import outcomes_json
from fedcore.party.metrics import DaemonMetrics
from fedcore.party.openapi import OPENAPI
from fedcore.party.runner import JobRunner
from fedcore.results import jsonable


class Daemon(Protocol):
    """What the API needs of its daemon (``fedcore.party.daemon.PartyDaemon``, which builds it)."""

    runner: JobRunner
    metrics: DaemonMetrics

    def ping(self) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...


COOKIE = "fedcore_token"
MAX_WAIT_S = 30.0
MAX_BODY_BYTES = 1 << 20


class NotFound(FedcoreError):
    """No such job here."""


class TokenAuth:
    """ASGI middleware: every HTTP request must carry ``token`` (header, cookie, or ``?token=``)."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        query = request.query_params.get("token")
        if query is not None and self._ok(query) and request.method == "GET":
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            target = request.url.path + (f"?{rest}" if rest else "")
            response: Response = RedirectResponse(target, status_code=303)
            response.set_cookie(COOKIE, query, httponly=True, samesite="strict", path="/")
            await response(scope, receive, send)
            return
        header = request.headers.get("authorization", "")
        bearer = header[7:] if header.lower().startswith("bearer ") else None
        if self._ok(bearer) or self._ok(request.cookies.get(COOKIE)):
            await self.app(scope, receive, send)
            return
        message = "this API needs the operator token: Authorization: Bearer <the [api] token_file>"
        await _error(401, "AuthError", message)(scope, receive, send)

    def _ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token)


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def _status_of(exc: FedcoreError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, ConfigError):
        return 400
    if isinstance(exc, PolicyRefused):
        return 403
    return 409


Handler = Callable[[Request], Awaitable[Response]]


def build_app(daemon: Daemon, token: str | None) -> Starlette:
    """The API of ``daemon``; ``token`` set means every request must carry it (TCP)."""
    api = OperatorApi(daemon)
    routes: list[BaseRoute] = [
        Route("/api/v1/ping", api.ping),
        Route("/api/v1/status", api.status),
        Route("/api/v1/jobs", api.jobs, methods=["GET"]),
        Route("/api/v1/jobs", api.run, methods=["POST"]),
        Route("/api/v1/jobs/{job_id}", api.job),
        Route("/api/v1/jobs/{job_id}/wait", api.wait),
        Route("/api/v1/jobs/{job_id}/result", api.result),
        Route("/api/v1/jobs/{job_id}/cancel", api.cancel, methods=["POST"]),
        Route("/api/v1/jobs/{job_id}/logs", api.logs),
        Route("/api/v1/openapi.json", api.openapi),
        Route("/metrics", api.metrics),
        *_web_routes(),
    ]
    middleware = [Middleware(TokenAuth, token=token)] if token else []
    handlers: dict[Any, Callable[[Request, Exception], Response]] = {
        FedcoreError: lambda _r, exc: _error(_status_of(exc), type(exc).__name__, str(exc)),  # type: ignore[arg-type]
        404: lambda _r, _e: _error(404, "NotFound", "no such path: see GET /api/v1/openapi.json"),
    }
    return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)


def _web_routes() -> list[BaseRoute]:
    """The status page's routes (``fedcore.party.web``), when that package is installed."""
    try:
        web = importlib.import_module("fedcore.party.web")
    except ModuleNotFoundError as exc:
        if exc.name != "fedcore.party.web":
            raise
        return []
    return list(web.routes())


class OperatorApi:
    """The handlers; each is a plain function run in Starlette's thread pool (the daemon is threaded)."""

    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        self.runner = daemon.runner
        self.store = daemon.runner.store

    def ping(self, request: Request) -> Response:
        return JSONResponse(self.daemon.ping())

    def status(self, request: Request) -> Response:
        return JSONResponse(jsonable(self.daemon.status()))

    def jobs(self, request: Request) -> Response:
        return JSONResponse({"jobs": [summary(j) for j in self.store.jobs()]})

    async def run(self, request: Request) -> Response:
        chunks, size = [], 0
        async for chunk in request.stream():  # bounded while reading, not after
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return _error(413, "ConfigError", f"a run request is at most {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        try:
            payload = json.loads(body)
        except ValueError:
            raise ConfigError("a run request is a JSON object") from None
        req = m.RunRequest.from_json(payload)
        job = await run_in_threadpool(initiate.submit, self.runner, req)
        return JSONResponse({"job_id": job.job_id, "parties": list(job.parties)}, status_code=201)

    def _row(self, request: Request) -> dict[str, Any]:
        job_id = request.path_params["job_id"]
        try:
            return self.store.job(job_id)
        except FedcoreError:
            raise NotFound(f"no job {job_id!r} at {self.runner.me} (see: fedcore job list)") from None

    def job(self, request: Request) -> Response:
        row = self._row(request)
        job_id = row["job_id"]
        detail = {
            **summary(row), "params": row["params"], "sha256": row["sha256"], "seed": row["seed"],
            "states": self.store.states(job_id), "outcomes": outcomes_json(self.store.outcomes(job_id)),
            "progress": self.store.events(job_id), "metrics": self.store.metrics(job_id),
            "log": self.store.logs(job_id),
        }  # fmt: skip
        return JSONResponse(jsonable(detail))

    def wait(self, request: Request) -> Response:
        row = self._row(request)
        since = _int_query(request, "since", 0)
        timeout_s = min(max(float(_int_query(request, "timeout_s", 10)), 0.0), MAX_WAIT_S)
        live = self.runner.jobs.find(row["job_id"])
        if live is None:  # from an earlier run of the daemon, or long finished: the store has it all
            return JSONResponse(
                {"job_id": row["job_id"], "state": row["state"], "done": True, "total": since, "events": []}
            )
        job = self.runner.jobs.wait_change(live.job_id, since, timeout_s, me=self.runner.me)
        done = job.collected or (job.state.final and job.initiator != self.runner.me)
        events = [e.to_json() for e in job.events_since(since)]
        return JSONResponse(
            jsonable(
                {
                    "job_id": job.job_id,
                    "state": job.state.value,
                    "done": done,
                    "total": job.events_total,
                    "events": events,
                }
            )
        )

    def result(self, request: Request) -> Response:
        row = self._row(request)
        outcomes = self.store.outcomes(row["job_id"])
        output = self.store.folder / "jobs" / row["job_id"] / "output"
        files = sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file())
        return JSONResponse(
            jsonable(
                {
                    "job_id": row["job_id"],
                    "state": row["state"],
                    "parties": outcomes_json(outcomes),
                    "seconds": row["seconds"],
                    "files": {self.runner.me: files},
                    "output_dir": str(output),
                }
            )
        )

    def cancel(self, request: Request) -> Response:
        row = self._row(request)
        told = initiate.cancel(self.runner, row["job_id"])
        return JSONResponse(
            {"job_id": row["job_id"], "state": self.store.job(row["job_id"])["state"], "told": told}
        )

    def logs(self, request: Request) -> Response:
        row = self._row(request)
        return JSONResponse({"job_id": row["job_id"], "log": self.store.logs(row["job_id"])})

    def openapi(self, request: Request) -> Response:
        return JSONResponse(OPENAPI)

    def metrics(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(self.daemon.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """A job row as ``GET /api/v1/jobs`` shows it (no params, no results)."""
    seconds = row.get("seconds")
    if seconds is None and row.get("started") is not None:  # still running, or not the initiator
        seconds = (row.get("ended") or time.time()) - row["started"]
    return {
        "job_id": row["job_id"], "state": row["state"], "script": row["script"], "parties": row["parties"],
        "step": row["step"], "started": row["started"], "seconds": seconds, "initiator": row["initiator"],
        "created": row["created"], "ended": row["ended"], "error": row["error"],
    }  # fmt: skip


def _int_query(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise ConfigError(f"query parameter {name} must be a non-negative integer, got {raw[:40]!r}")
    return int(raw)
