"""The daemon's read-only status page: the party, its peers, its jobs, and one job's progress,
per-round metrics (drawn as inline SVG charts) and log.

``routes()`` gives Starlette routes that the operator API mounts at its root, behind the same
credential: ``/`` (party and jobs), ``/jobs/{job_id}`` (one job) and ``/static/...`` (the page's
own script and style, shipped in this package). The page needs nothing from the internet: no
CDN, no fonts, no chart library; its script reads the API's JSON (``api/v1/status``,
``api/v1/jobs``, ``api/v1/jobs/{id}``) relative to where the app is mounted, and puts every
value into the page as text, never as markup, since job logs and peer errors carry text that
other parties chose.
"""

from __future__ import annotations

import html
from pathlib import Path
from string import Template

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PAGE = Template((STATIC / "page.html").read_text(encoding="utf-8"))

# The page runs only its own files: no inline script, nothing from elsewhere, never framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a ?token= URL never leaks through a link
    "Cache-Control": "no-store",
}


def routes() -> list[BaseRoute]:
    """The status page's routes, to mount at the root of the operator API's Starlette app."""
    return [
        Route("/", _page, methods=["GET"], name="web-home"),
        Route("/jobs/{job_id}", _page, methods=["GET"], name="web-job"),
        Mount("/static", app=StaticFiles(directory=STATIC), name="web-static"),
    ]


def _page(request: Request) -> Response:
    """The one HTML shell; its script draws the home or the job view from the path."""
    root = request.scope.get("root_path", "").rstrip("/") + "/"
    body = PAGE.substitute(root=html.escape(root, quote=True))
    return HTMLResponse(body, headers=SECURITY_HEADERS)


__all__ = ["routes"]
