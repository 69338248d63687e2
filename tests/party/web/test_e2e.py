"""End to end: three real daemons run fedavg_digits; the status page of alice's daemon, opened
in headless Chromium with her operator token, shows the finished job as the job store holds it."""

from __future__ import annotations

import json

from fedcore.party.config import load_config


def test_the_page_of_a_finished_training_job_from_real_daemons(federation, browser) -> None:
    script = federation.kit.parent / "protocols_alice" / "fedavg_digits.py"
    run = federation.job(script, "alice", "--param", "rounds=3", "--param", "plot=history.png", timeout=240)
    assert run.returncode == 0, run.stderr
    job_id = json.loads(run.stdout)["job_id"]
    with federation.api("alice") as api:
        job = api.get(f"/api/v1/jobs/{job_id}")
        files = api.get(f"/api/v1/jobs/{job_id}/result")["files"]
    assert job["state"] == "succeeded" and len(job["metrics"]) == 3
    assert any(str(f).endswith("history.png") for f in files["alice"])  # in alice's own output folder

    control = load_config(federation.config("alice")).control
    base = f"http://127.0.0.1:{control.port}"
    # the token once in the URL: the daemon sets its cookie and redirects to the bare URL
    assert browser.open(f"{base}/?token={federation.token('alice')}") == "true"
    assert browser.script("return location.search") == ""
    assert browser.text("#party-id") == "alice"
    peers = {row.get_attribute("data-peer"): row.text for row in browser.all("#peers tbody tr")}
    assert set(peers) == {"bob", "carol"} and all("reachable" in text for text in peers.values())
    row = browser.text(f'#past-jobs tr[data-job="{job_id}"]')
    assert "succeeded" in row and "fedavg_digits.py" in row and "alice, bob, carol" in row

    assert browser.open(f"{base}/jobs/{job_id}") == "true"
    browser.shot("status-job.png")
    assert browser.text('[data-fact="state"]') == "succeeded"
    accuracy = browser.all('svg[data-metric="accuracy"] circle.point')
    assert [int(p.get_attribute("data-round")) for p in accuracy] == [1, 2, 3]
    expected = [m["accuracy"] for m in sorted(job["metrics"], key=lambda m: m["round"])]
    assert [float(p.get_attribute("data-value")) for p in accuracy] == expected
    assert len(browser.all('svg[data-metric="loss"] circle.point')) == 3
    outcomes = {r.get_attribute("data-party"): r.text for r in browser.all("#outcomes tbody tr")}
    assert set(outcomes) == {"alice", "bob", "carol"} and all(" ok " in f" {t} " for t in outcomes.values())
    assert job_id in browser.text("#log") or "succeeded" in browser.text("#log")
    browser.open(f"{base}/")
    browser.shot("status-home.png")
