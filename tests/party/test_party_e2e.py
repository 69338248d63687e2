"""End to end: three daemons as real processes on 127.0.0.1, jobs run through the CLI."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
Federation = Any  # the conftest fixture's object


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedcore.cli", *args], capture_output=True, text=True, timeout=60, cwd=REPO
    )


def _results(proc: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(proc.stdout)["parties"]


def test_plain_sum_job_sums_every_input(federation: Federation) -> None:
    # -v: a line per party per step on stderr (without it, only the result is printed)
    proc = federation.cli(
        "-v",
        "job",
        "run",
        str(REPO / "protocols" / "plain_sum.py"),
        "--config",
        str(federation.config("alice")),
        "--parties",
        "alice,bob,carol",
        "--json",
        "--param",
        "dim=4",
        "--seed",
        "7",
    )
    assert proc.returncode == 0, proc.stderr
    parties = _results(proc)
    inputs = [np.array(parties[p]["input"]) for p in ("alice", "bob", "carol")]
    np.testing.assert_allclose(parties["alice"]["sum"], np.sum(inputs, axis=0))
    assert "step gather" in proc.stderr and "step send" in proc.stderr  # progress reached the operator


def test_status_and_job_list(federation: Federation) -> None:
    status = cli("party", "status", str(federation.config("bob")), "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert {p["peer"]: (p["reachable"], p["tls_verified"], p["identity"]) for p in report["peers"]} == {
        "alice": (True, True, "alice"),
        "carol": (True, True, "carol"),
    }
    assert report["certificate"]["days_left"] > 800
    assert all(p["cert_expires"] and p["cert_expires"][:2] == "20" for p in report["peers"])
    socket_path = federation.config("bob").parent / "control.sock"
    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600  # bob's operator API: owner only
    assert report["jobs_running"] == 0
    listing = cli("job", "list", "--config", str(federation.config("carol")), "--json")
    jobs = json.loads(listing.stdout)["jobs"]
    assert [j["state"] for j in jobs if j["script"] == "plain_sum.py"] == ["succeeded"]
    shown = cli("job", "status", jobs[0]["job_id"], "--config", str(federation.config("alice")), "--json")
    assert json.loads(shown.stdout)["job"]["state"] == "succeeded"


def test_check_peers_reports_each_identity(federation: Federation) -> None:
    proc = cli("party", "check", str(federation.config("carol")), "--peers")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "alice at 127.0.0.1" in proc.stdout and "identity alice" in proc.stdout
    assert "identity bob" in proc.stdout and "TLS verified" in proc.stdout


@pytest.mark.parametrize(
    ("script", "initiator", "reason"),
    [
        ("variant.py", "alice", "carol refuses the job: hash differs"),
        ("tests/party/scripts/wait_step.py", "bob", "not_allowed"),
        ("plain_sum.py", "carol", "alice refuses the job: initiator not allowed (carol is not in"),
    ],
)
def test_refusals_name_party_and_reason(federation: Federation, tmp_path, script, initiator, reason) -> None:
    if script == "variant.py":  # the operator's copy equals alice's and bob's, not carol's
        path = tmp_path / "variant.py"
        path.write_text("def main(ctx):\n    return {'variant': 'shared'}\n")
    elif reason == "not_allowed":  # a script no party's policy lists
        path = tmp_path / "not_listed.py"
        path.write_text("def main(ctx):\n    return 1\n")
        reason = "bob refuses the job: script not allowed ('not_listed.py'"
    else:
        path = REPO / "protocols" / script
    proc = federation.job(path, initiator)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("fedcore: PolicyRefused: ") and reason in last, proc.stderr
    again = federation.job(REPO / "protocols" / "plain_sum.py", "bob")  # the daemons still serve
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""  # no -v, not a terminal: nothing but the result


def test_failing_party_aborts_others_naming_it_and_the_step(federation: Federation) -> None:
    proc = federation.job(REPO / "tests/party/scripts/fail_step.py", "alice")
    assert proc.returncode == 1
    parties = _results(proc)
    assert "bob's script failed on purpose" in parties["bob"]["error"]
    for other in ("alice", "carol"):
        error = parties[other]["error"]
        assert error.startswith("PartyDropped") and "bob dropped out at step 'boom'" in error, error


def _wait_until_waiting(federation: Federation, party: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with federation.api(party) as api:
            jobs = api.get("/api/v1/jobs")["jobs"]
        for job in jobs:
            if job["script"] == "wait_step.py" and job["state"] == "running" and job["step"] == "waiting":
                return job["job_id"]
        time.sleep(0.05)  # polling the daemon's job table
    raise AssertionError(f"{party} never reached step 'waiting'")


def test_killed_daemon_fails_job_naming_it_then_restart_runs_next(federation: Federation) -> None:
    script = REPO / "tests/party/scripts/wait_step.py"
    cmd = [
        sys.executable,
        "-m",
        "fedcore.cli",
        "job",
        "run",
        str(script),
        "--config",
        str(federation.config("alice")),
        "--parties",
        "alice,bob,carol",
        "--json",
    ]
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        _wait_until_waiting(federation, "carol")
        federation.kill("carol")
        # the script would wait 60 s; heartbeats (peer_timeout_s = 2) must end it long before
        out, err = job.communicate(timeout=30)
    finally:
        job.kill()
    assert job.returncode == 1, err
    parties = json.loads(out)["parties"]
    for party in ("alice", "bob", "carol"):
        assert "carol" in parties[party]["error"], parties
    assert parties["alice"]["error"].startswith("PartyDropped")
    federation.start("carol")
    proc = federation.job(REPO / "protocols" / "plain_sum.py", "alice")
    assert proc.returncode == 0, proc.stderr
    assert len(_results(proc)["alice"]["sum"]) == 10


def test_sigterm_exits_cleanly(federation: Federation) -> None:
    assert federation.stop("bob") == 0
    assert "party=bob daemon stopped" in federation.log("bob")
    assert "BEGIN" not in federation.log("bob")  # no key material in logs


def test_job_with_a_stopped_party_fails_clearly_and_others_still_serve(federation: Federation) -> None:
    assert "bob" not in federation.procs  # stopped by the SIGTERM test above
    proc = federation.job(REPO / "protocols" / "plain_sum.py", "alice")
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("fedcore: PartyDropped: bob at 127.0.0.1:"), proc.stderr
    proc = federation.job(REPO / "protocols" / "plain_sum.py", "alice", parties="alice,carol")
    assert proc.returncode == 0, proc.stderr
    assert set(_results(proc)) == {"alice", "carol"}
