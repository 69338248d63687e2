"""The operator API's OpenAPI 3.1 document (served at ``GET /api/v1/openapi.json``)."""

from __future__ import annotations

from typing import Any

_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
_ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _get(summary: str, schema: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    ok = {"description": "ok", "content": {"application/json": {"schema": {"$ref": _ref(schema)}}}}
    responses = {"200": ok, "401": _ERROR, "404": _ERROR}
    return {"summary": summary, "parameters": params or [], "responses": responses}


def _ref(schema: str) -> str:
    return f"#/components/schemas/{schema}"


def _obj(*required: str, **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": props}


_NUM = {"type": ["number", "null"]}
_STR = {"type": ["string", "null"]}
_LIST = {"type": "array", "items": {"type": "string"}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "fedcore party operator API", "version": "1"},
    "components": {
        "securitySchemes": {
            "token": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "fedcore_token"},
        },
        "schemas": {
            "Error": _obj(
                "error", error=_obj("type", "message", type={"type": "string"}, message={"type": "string"})
            ),
            "Ping": _obj(
                "party",
                "federation",
                "closing",
                party={"type": "string"},
                federation={"type": "string"},
                closing={"type": "boolean"},
            ),
            "Status": _obj(
                "party",
                "peers",
                "jobs_running",
                party={"type": "string"},
                jobs_running={"type": "integer"},
                peers={
                    "type": "array",
                    "items": _obj(
                        "id",
                        "address",
                        "reachable",
                        id={"type": "string"},
                        address={"type": "string"},
                        reachable={"type": "boolean"},
                        cert_expires=_STR,
                        last_seen=_NUM,
                    ),
                },
            ),
            "JobSummary": _obj(
                "job_id",
                "state",
                "script",
                "parties",
                "step",
                "started",
                "seconds",
                "initiator",
                job_id={"type": "string"},
                state={
                    "type": "string",
                    "enum": [
                        "proposed",
                        "running",
                        "succeeded",
                        "failed",
                        "refused",
                        "cancelled",
                        "interrupted",
                    ],
                },
                script={"type": "string"},
                parties=_LIST,
                step=_STR,
                started=_NUM,
                seconds=_NUM,
                initiator={"type": "string"},
            ),
            "Jobs": _obj(
                "jobs", jobs={"type": "array", "items": {"$ref": "#/components/schemas/JobSummary"}}
            ),
            "Job": {
                "allOf": [
                    {"$ref": "#/components/schemas/JobSummary"},
                    _obj(
                        "states",
                        "outcomes",
                        "progress",
                        "metrics",
                        "log",
                        states={
                            "type": "array",
                            "items": _obj("state", "at", state={"type": "string"}, at={"type": "number"}),
                        },
                        outcomes={"type": "object"},
                        progress={"type": "array", "items": {"type": "object"}},
                        metrics={"type": "array", "items": {"type": "object"}},
                        log=_LIST,
                    ),
                ]
            },
            "RunRequest": _obj(
                "script",
                "sha256",
                "parties",
                script={"type": "string"},
                sha256={"type": "string"},
                parties=_LIST,
                params={"type": "object"},
                seed={"type": "integer"},
                timeout_s={"type": "number"},
            ),
            "Started": _obj("job_id", "parties", job_id={"type": "string"}, parties=_LIST),
            "Wait": _obj(
                "job_id",
                "state",
                "done",
                "total",
                "events",
                job_id={"type": "string"},
                state={"type": "string"},
                done={"type": "boolean"},
                total={"type": "integer"},
                events={"type": "array", "items": {"type": "object"}},
            ),
            "Result": _obj(
                "job_id",
                "parties",
                "seconds",
                job_id={"type": "string"},
                parties={"type": "object"},
                seconds=_NUM,
                files={"type": "object"},
            ),
            "Cancelled": _obj(
                "job_id", "state", "told", job_id={"type": "string"}, state={"type": "string"}, told=_LIST
            ),
            "Logs": _obj("job_id", "log", job_id={"type": "string"}, log=_LIST),
        },
    },
    "security": [{"token": []}, {"cookie": []}],
    "paths": {
        "/api/v1/ping": {"get": _get("the daemon's party and whether it is shutting down", "Ping")},
        "/api/v1/status": {"get": _get("the party, its peers and its running jobs", "Status")},
        "/api/v1/jobs": {
            "get": _get("every job in this party's job store, newest first", "Jobs"),
            "post": {
                "summary": "propose a job to its parties and start it",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RunRequest"}}},
                },
                "responses": {
                    "201": {
                        "description": "started",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Started"}}},
                    },
                    "400": _ERROR,
                    "401": _ERROR,
                    "403": _ERROR,
                },
            },
        },
        "/api/v1/jobs/{job_id}": {
            "get": _get("one job with states, outcomes, progress, metrics, log", "Job", [_JOB_ID])
        },
        "/api/v1/jobs/{job_id}/wait": {
            "get": _get(
                "long poll for new progress or the end",
                "Wait",
                [
                    _JOB_ID,
                    {"name": "since", "in": "query", "schema": {"type": "integer"}},
                    {"name": "timeout_s", "in": "query", "schema": {"type": "integer", "maximum": 30}},
                ],
            )
        },
        "/api/v1/jobs/{job_id}/result": {
            "get": _get("every party's outcome, as job run --json", "Result", [_JOB_ID])
        },
        "/api/v1/jobs/{job_id}/cancel": {
            "post": {**_get("cancel the job at every party", "Cancelled", [_JOB_ID])}
        },
        "/api/v1/jobs/{job_id}/logs": {"get": _get("the job's log lines at this party", "Logs", [_JOB_ID])},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
    },
}
