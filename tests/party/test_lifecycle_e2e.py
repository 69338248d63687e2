"""End to end, with real daemon processes: a job's lifecycle through the operator API and CLI.

Detach and wait, results after the CLI exited and after a daemon restart, Ctrl-C detaching,
cancel reaching every party, a second uid refused, and a party leaving on SIGTERM mid-FedAvg.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
WAIT_STEP = REPO / "tests/party/scripts/wait_step.py"
Federation = Any  # the conftest fixture's object


def _json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)


def _job_cli(fed: Federation, party: str, *args: str) -> subprocess.CompletedProcess[str]:
    return fed.cli("job", *args, "--config", str(fed.config(party)))


def _wait_state(fed: Federation, party: str, job_id: str, want: str, step: str | None = None) -> dict:
    """Poll ``party``'s API until the job is in state ``want`` at a step starting with ``step``."""
    deadline = time.monotonic() + 60
    job = None
    with fed.api(party) as api:
        while time.monotonic() < deadline:
            job = api.get(f"/api/v1/jobs/{job_id}") if _known(api, job_id) else None
            if job and job["state"] == want and (step is None or (job["step"] or "").startswith(step)):
                return job
            time.sleep(0.02)  # polling another process's job state
    raise AssertionError(f"{party} never had job {job_id} {want} (step {step}): {job}")


def _known(api: Any, job_id: str) -> bool:
    return any(j["job_id"] == job_id for j in api.get("/api/v1/jobs")["jobs"])


def test_detach_wait_and_result_after_cli_exit_and_restart(federation: Federation) -> None:
    script = REPO / "protocols" / "plain_sum.py"
    detached = federation.job(script, "alice", "--param", "dim=3", "--detach")
    assert detached.returncode == 0, detached.stderr
    job_id = _json(detached)["job_id"]
    assert set(_json(detached)) == {"job_id"}  # --detach --json: the id, at once
    waited = _job_cli(federation, "alice", "wait", job_id, "--json")
    assert waited.returncode == 0, waited.stderr
    result = _json(waited)
    assert set(result) == {"job_id", "parties", "seconds"} and result["job_id"] == job_id
    assert sorted(result["parties"]) == ["alice", "bob", "carol"] and result["seconds"] > 0
    assert len(result["parties"]["alice"]["sum"]) == 3
    later = _json(_job_cli(federation, "alice", "result", job_id, "--json"))  # the CLI that ran it exited
    assert later == result
    assert federation.stop("alice", signal.SIGINT) == 0  # Ctrl-C on a daemon: a clean stop
    assert "Traceback" not in federation.log("alice") and "KeyboardInterrupt" not in federation.log("alice")
    federation.start("alice")
    restarted = _job_cli(federation, "alice", "result", job_id, "--json")
    assert restarted.returncode == 0, restarted.stderr
    assert _json(restarted) == result  # from the job store, arrays and all
    listing = _job_cli(federation, "alice", "list")
    header, *rows = listing.stdout.splitlines()
    assert header.split() == ["JOB", "STATE", "SCRIPT", "STARTED", "DURATION", "PARTIES", "INITIATOR"]
    row = next(r for r in rows if r.startswith(job_id)).split()
    assert row[1:3] == ["succeeded", "plain_sum.py"] and row[-2:] == ["alice,bob,carol", "alice"]
    logs = _job_cli(federation, "bob", "logs", job_id)
    assert "accepted plain_sum.py from alice" in logs.stdout and "succeeded" in logs.stdout
    text = _job_cli(federation, "carol", "result", job_id)
    assert text.returncode == 0 and f"job {job_id}: succeeded" in text.stdout  # carol knows her own


def test_ctrl_c_detaches_and_cancel_reaches_every_party(federation: Federation) -> None:
    cmd = [
        sys.executable,
        "-m",
        "fedcore.cli",
        "job",
        "run",
        str(WAIT_STEP),
        "--config",
        str(federation.config("alice")),
        "--parties",
        "alice,bob,carol",
    ]
    run = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert run.stderr is not None
    first = run.stderr.readline()
    while not first.startswith("job "):  # "job j-...: started with alice, bob, carol"
        assert first, "job run ended without printing its job id"  # EOF, not a hang
        first = run.stderr.readline()
    job_id = first.split()[1].rstrip(":")
    _wait_state(federation, "carol", job_id, "running", "waiting")
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=30)
    assert run.returncode == 130, err
    assert "Traceback" not in err and f"fedcore job wait {job_id} --config" in err  # says how to reattach
    assert _wait_state(federation, "alice", job_id, "running")  # the job went on without its terminal
    cancelled = _job_cli(federation, "alice", "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled; told bob, carol" in cancelled.stdout
    for party in ("alice", "bob", "carol"):
        status = _job_cli(federation, party, "status", job_id, "--json")
        assert _json(status)["job"]["state"] == "cancelled", (party, status.stdout)
    waited = _job_cli(federation, "alice", "wait", job_id, "--json")  # the sides stopped: it ends now
    assert waited.returncode == 1
    assert {v["kind"] for v in _json(waited)["parties"].values()} == {"Cancelled"}
    again = federation.job(REPO / "protocols" / "plain_sum.py", "alice")
    assert again.returncode == 0, again.stderr


def test_a_bad_param_is_refused_before_any_party_starts(federation: Federation) -> None:
    proc = federation.job(REPO / "protocols" / "plain_sum.py", "alice", "--param", "dim=2.5")
    assert proc.returncode == 2 and "--param dim=2.5" in proc.stderr.replace("'", ""), proc.stderr


NOBODY_REQUESTS = r"""
import http.client, json, socket, sys
port, token_path, sock_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = {}
for name, headers in (("none", {}), ("wrong", {"Authorization": "Bearer guessed"})):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/api/v1/jobs", body="{}", headers=headers)
    out[name] = c.getresponse().status
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request("GET", "/api/v1/jobs?token=guessed")
out["query"] = c.getresponse().status
try:
    open(token_path).read()
    out["token"] = "read"
except PermissionError:
    out["token"] = "denied"
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sock_path)
    out["unix"] = "connected"
except PermissionError:
    out["unix"] = "denied"
print(json.dumps(out))
"""


def test_a_second_uid_is_refused(federation: Federation) -> None:
    from fedcore.party.config import load_config

    alice = load_config(federation.config("alice"))
    sock = federation.config("bob").parent / "control.sock"
    # the system python: nobody cannot enter /root, where the test's interpreter may live
    cmd = [
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "/usr/bin/python3",
        "-c",
        NOBODY_REQUESTS,
        str(alice.control.port),
        str(alice.api_token_file),
        str(sock),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "none": 401,
        "wrong": 401,
        "query": 401,
        "token": "denied",
        "unix": "denied",
    }
    with federation.api("alice") as api:  # the operator with the token is served
        assert api.get("/api/v1/ping")["party"] == "alice"
    assert not any(j["script"] == "nobody.py" for j in federation.api("alice").get("/api/v1/jobs")["jobs"])


def test_token_query_sets_a_cookie_for_a_browser(federation: Federation) -> None:
    import httpx

    port = int(federation.config("carol").read_text().split('control = "127.0.0.1:')[1].split('"')[0])
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as browser:
        assert browser.get("/api/v1/status").status_code == 401
        first = browser.get(f"/api/v1/jobs?token={federation.token('carol')}&x=1")
        assert first.status_code == 303 and first.headers["location"] == "/api/v1/jobs?x=1"
        assert "httponly" in first.headers["set-cookie"].lower()
        assert browser.get("/api/v1/jobs").status_code == 200  # the cookie now carries the credential
        metrics = browser.get("/metrics")
        assert metrics.status_code == 200 and 'fedcore_jobs{state="succeeded"}' in metrics.text
        assert 'fedcore_peer_bytes_total{direction="sent",peer="alice"}' in metrics.text
        schema = browser.get("/api/v1/openapi.json").json()
        assert "/api/v1/jobs/{job_id}/result" in schema["paths"]


def test_sigterm_party_leaves_fedavg_and_the_others_finish(federation: Federation) -> None:
    started = federation.job(
        REPO / "protocols" / "fedavg_digits.py",
        "alice",
        "--param",
        "rounds=10",
        "--param",
        "local_epochs=25",
        "--param",
        "min_parties=2",
        "--detach",
    )
    assert started.returncode == 0, started.stderr
    job_id = _json(started)["job_id"]
    _wait_state(federation, "carol", job_id, "running", "round 2")  # training, past the start-up
    assert federation.stop("carol") == 0  # SIGTERM: carol leaves, then exits 0
    log = federation.log("carol")
    assert "Traceback" not in log and "left 1 running job" in log
    waited = _job_cli(federation, "alice", "wait", job_id, "--json")
    parties = _json(waited)["parties"]
    assert parties["alice"]["accuracy"] > 0.5 and len(parties["alice"]["history"]) == 10
    assert "error" not in parties["bob"]
    assert parties["carol"]["kind"] == "PartyDropped" and "carol is leaving" in parties["carol"]["error"]
    with federation.api("alice") as api:
        metrics = api.get(f"/api/v1/jobs/{job_id}")["metrics"]
        scrape = api.http.get("/metrics").text
    assert [r["round"] for r in metrics if r["party"] == "alice"] == list(range(1, 11))
    assert all(0 <= r["accuracy"] <= 1 and r["seconds"] > 0 for r in metrics)
    assert 'fedcore_round_seconds_count{script="fedavg_digits.py"} 10.0' in scrape
    history = parties["alice"]["history"]
    assert any("carol" in h["dropped"] for h in history)  # a dropout to the coordinator, not a failure
    federation.start("carol")
    status = _json(_job_cli(federation, "carol", "status", job_id, "--json"))["job"]
    assert status["state"] == "interrupted"
    assert os.environ.get("FEDCORE_CONFIG") is None  # the CLI above was told --config each time


def test_an_oversized_or_malformed_run_request_is_refused(federation: Federation) -> None:
    with federation.api("alice") as api:
        big = api.http.post("/api/v1/jobs", content=b"{" + b" " * (2 << 20) + b"}")
        assert big.status_code == 413
        bad = api.http.post("/api/v1/jobs", json={"script": "x.py", "parties": "alice"})
        assert bad.status_code == 400 and "sha256 must be" in bad.json()["error"]["message"]
        assert api.http.get("/api/v1/jobs/j-nope").status_code == 404
        assert api.get("/api/v1/ping")["party"] == "alice"  # still serving
