"""The status page in headless Chromium against fixture JSON served beside ``web.routes()``.

The fixture API answers exactly the shapes of the operator API (``fedcore.party.api``), so what
is checked here is the page itself: what it shows for a party, its peers and a finished job,
that peer-chosen text stays text, and that it loads nothing from anywhere but the daemon.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from fedcore.party import web

NOW = time.time()
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"
ROUNDS = [(1, 0.62, 1.31), (2, 0.81, 0.74), (3, 0.88, 0.45), (4, 0.91, 0.33), (5, 0.93, 0.27)]

STATUS = {
    "party": "alice",
    "jobs_running": 1,
    "peers": [
        {
            "id": "bob",
            "address": "127.0.0.1:7102",
            "reachable": True,
            "cert_expires": NOW + 200 * 86400,
            "last_seen": NOW - 3,
        },
        {
            "id": "carol",
            "address": "127.0.0.1:7103",
            "reachable": False,
            "cert_expires": NOW + 10 * 86400,
            "last_seen": None,
            "error": HOSTILE,
        },
    ],
}
FINISHED = {
    "job_id": "j-fedavg",
    "state": "succeeded",
    "script": "fedavg_digits.py",
    "parties": ["alice", "bob", "carol"],
    "step": "round 5",
    "started": NOW - 60,
    "seconds": 12.0,
    "initiator": "bob",
}
RUNNING = {
    "job_id": "j-running",
    "state": "running",
    "script": "secure_sum.py",
    "parties": ["alice", "bob"],
    "step": "share_keys",
    "started": NOW - 5,
    "seconds": 5.0,
    "initiator": "alice",
}
DETAIL = {
    **FINISHED,
    "params": {"rounds": 5},
    "states": [
        {"state": "proposed", "at": NOW - 61},
        {"state": "running", "at": NOW - 60},
        {"state": "succeeded", "at": NOW - 48},
    ],
    "outcomes": {
        "alice": {"accuracy": 0.93, "loss": 0.27, "samples": 479},
        "bob": {"samples": 480},
        "carol": {"error": "PartyDropped: lost", "party": "carol", "step": "round 5", "kind": "PartyDropped"},
    },
    "progress": [
        {"party": "alice", "step": f"round {r}", "done": r, "total": 5, "message": None, "at": NOW - 60 + r}
        for r in range(1, 6)
    ],
    "metrics": [
        {"round": r, "party": "alice", "accuracy": a, "loss": loss, "seconds": 2.1} for r, a, loss in ROUNDS
    ],
    "log": [
        "job=j-fedavg party=alice accepted fedavg_digits.py from bob",
        f"peer said {HOSTILE}",
        "job=j-fedavg party=alice succeeded",
    ],
}


def fixture_api() -> list[Any]:
    async def status(request: Request) -> JSONResponse:
        return JSONResponse(STATUS)

    async def jobs(request: Request) -> JSONResponse:
        return JSONResponse({"jobs": [RUNNING, FINISHED]})

    async def job(request: Request) -> JSONResponse:
        job_id = request.path_params["job_id"]
        if job_id == "j-locked":
            return JSONResponse({"error": {"type": "AuthError", "message": "no credential"}}, status_code=401)
        if job_id != DETAIL["job_id"]:
            return JSONResponse({"error": {"type": "ConfigError", "message": f"no job {job_id}"}}, 404)
        return JSONResponse(DETAIL)

    return [
        Route("/api/v1/status", status),
        Route("/api/v1/jobs", jobs),
        Route("/api/v1/jobs/{job_id}", job),
    ]


@pytest.fixture
def site(serve):
    return serve(Starlette(routes=[*fixture_api(), *web.routes()]))


def test_home_shows_the_party_its_peers_and_jobs(browser, site) -> None:
    assert browser.open(site.url + "/") == "true"
    assert browser.text("#party-id") == "alice" and browser.text("#jobs-running") == "1"
    bob, carol = browser.all("#peers tbody tr")
    assert "reachable" in bob.text and "127.0.0.1:7102" in bob.text and "in 199 days" in bob.text
    assert "unreachable" in carol.text and "never" in carol.text and "in 9 days" in carol.text
    assert HOSTILE in carol.text and not browser.all("#peers img")  # peer text is shown, never run
    running = browser.text("#running-jobs")
    assert "j-running" in running and "share_keys" in running and "secure_sum.py" in running
    past = browser.all("#past-jobs tbody tr")
    assert len(past) == 1 and "succeeded" in past[0].text and "12 s" in past[0].text
    assert "alice, bob, carol" in past[0].text and "bob" in past[0].text.split()[-1]
    link = browser.all("#past-jobs a")[0].get_attribute("href")
    assert link == site.url + "/jobs/j-fedavg"
    browser.shot("status-home-fixture.png")


def test_the_page_of_a_finished_job_charts_its_metrics(browser, site) -> None:
    assert browser.open(site.url + "/jobs/j-fedavg") == "true"
    assert browser.text("#job-id") == "j-fedavg"
    assert browser.text('[data-fact="state"]') == "succeeded"
    assert browser.text('[data-fact="initiator"]') == "bob"
    assert browser.text('[data-fact="duration"]') == "12 s"
    names = [c.get_attribute("data-metric") for c in browser.all("#charts svg.chart")]
    assert names[:2] == ["accuracy", "loss"] and "seconds" in names
    accuracy = browser.all('svg[data-metric="accuracy"] circle.point')
    assert [float(p.get_attribute("data-value")) for p in accuracy] == [a for _, a, _ in ROUNDS]
    assert [int(p.get_attribute("data-round")) for p in accuracy] == [1, 2, 3, 4, 5]
    ys = [float(p.get_attribute("cy")) for p in accuracy]
    assert ys == sorted(ys, reverse=True)  # rising accuracy is drawn rising (SVG y grows downward)
    loss_ys = [float(p.get_attribute("cy")) for p in browser.all('svg[data-metric="loss"] circle.point')]
    assert loss_ys == sorted(loss_ys)
    assert browser.all('svg[data-metric="loss"] polyline')
    outcomes = {r.get_attribute("data-party"): r.text for r in browser.all("#outcomes tbody tr")}
    assert "ok" in outcomes["alice"] and "0.93" in outcomes["alice"]
    assert "failed" in outcomes["carol"] and "PartyDropped: lost (step round 5)" in outcomes["carol"]
    progress = browser.text('#progress tr[data-party="alice"]')
    assert "round 5" in progress and "5/5" in progress
    assert [s.text.split()[0] for s in browser.all("#states li")] == ["proposed", "running", "succeeded"]
    log = browser.text("#log")
    assert "accepted fedavg_digits.py from bob" in log and HOSTILE in log
    assert not browser.all("#log img") and browser.script("return document.title") == "fedcore · job j-fedavg"
    browser.shot("status-job-fixture.png")


def test_the_page_loads_nothing_from_elsewhere(browser, site) -> None:
    browser.open(site.url + "/jobs/j-fedavg")
    urls = browser.script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(url.startswith(site.url + "/") for url in urls), urls
    assert {u.rsplit("/", 1)[-1] for u in urls} >= {"app.js", "style.css", "j-fedavg"}


def test_unknown_job_and_missing_credential_say_what_to_do(browser, site) -> None:
    assert browser.open(site.url + "/jobs/nope") == "error"
    assert "no job nope" in browser.text("#error")
    assert browser.open(site.url + "/jobs/j-locked") == "error"
    assert "?token=" in browser.text("#error")


def test_the_shell_is_strict_and_works_under_a_prefix(serve) -> None:
    server = serve(Starlette(routes=[Mount("/party", routes=web.routes())]))
    with httpx.Client(base_url=server.url) as client:
        page = client.get("/party/jobs/x")
        assert page.status_code == 200 and '<meta name="fedcore-root" content="/party/">' in page.text
        assert 'src="/party/static/app.js"' in page.text and "http" not in page.text.split("<body>")[0]
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy and page.headers["referrer-policy"] == "no-referrer"
        script = client.get("/party/static/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert client.post("/party/").status_code == 405  # read-only
        assert client.get("/party/static/%2e%2e/__init__.py").status_code == 404
