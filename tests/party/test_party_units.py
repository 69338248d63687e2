"""Policy decisions and the job state machine, without daemons."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from fedcore.errors import PolicyRefused, ProtocolError
from fedcore.party import messages as m
from fedcore.party.config import PolicyConfig
from fedcore.party.jobs import Job, JobState, JobTable
from fedcore.party.policy import Policy
from fedcore.party.runner import job_from_proposal
from fedcore.party.store import JobStore


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    folder = tmp_path / "protocols"
    folder.mkdir()
    (folder / "sum.py").write_text("def main(ctx):\n    return 1\n")
    single = tmp_path / "single.py"
    single.write_text("def main(ctx):\n    return 2\n")
    return Policy("bob", PolicyConfig((folder, single), ("alice", "bob")))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_policy_accepts_allowed_script_with_same_hash(policy: Policy, tmp_path: Path) -> None:
    allowed = policy.check("sum.py", _sha(tmp_path / "protocols" / "sum.py"), "alice")
    assert allowed.path == tmp_path / "protocols" / "sum.py"
    assert policy.check("single.py", _sha(tmp_path / "single.py"), "bob").path == tmp_path / "single.py"


@pytest.mark.parametrize(
    ("name", "sha", "initiator", "reason"),
    [
        ("sum.py", "0" * 64, "alice", "bob refuses the job: hash differs"),
        ("other.py", "0" * 64, "alice", "bob refuses the job: script not allowed"),
        ("../single.py", "0" * 64, "alice", "script not allowed"),
        ("sum.py", None, "carol", "bob refuses the job: initiator not allowed (carol"),
    ],
)
def test_policy_refusals_name_party_and_reason(
    policy: Policy, tmp_path: Path, name: str, sha: str | None, initiator: str, reason: str
) -> None:
    sha = sha or _sha(tmp_path / "protocols" / "sum.py")
    with pytest.raises(PolicyRefused, match=reason.replace("(", r"\(")):
        policy.check(name, sha, initiator)


def _job(job_id: str = "j-1") -> Job:
    return Job(job_id, "sum.py", "0" * 64, "alice", ("alice", "bob"), {}, 0, 10.0)


@pytest.fixture
def table(tmp_path: Path) -> JobTable:
    return JobTable(JobStore(tmp_path / "state"))


def test_job_state_machine(table: JobTable) -> None:
    table.add(_job())
    with pytest.raises(ProtocolError, match="already exists"):
        table.add(_job())
    with pytest.raises(ProtocolError, match="cannot go from proposed to succeeded"):
        table.move("j-1", JobState.SUCCEEDED)
    table.move("j-1", JobState.RUNNING)
    table.add_event("j-1", m.Progress("alice", "s1"))
    table.add_event("j-1", m.Progress("bob", "peer"), own=False)
    job = table.move("j-1", JobState.FAILED, error="boom")
    assert (job.step, job.error, job.events_total) == ("s1", "boom", 2)
    assert job.events_since(1) == [m.Progress("bob", "peer")]
    assert [s["state"] for s in table.store.states("j-1")] == ["proposed", "running", "failed"]
    assert table.store.job("j-1")["step"] == "s1"
    with pytest.raises(ProtocolError, match="cannot go from failed to running"):
        table.move("j-1", JobState.RUNNING)
    with pytest.raises(ProtocolError, match="no live job 'j-2'"):
        table.get("j-2")
    assert table.running() == [] and table.wait_change("j-1", 2, 0.0).state is JobState.FAILED


def test_wait_change_wakes_on_event(table: JobTable) -> None:
    table.add(_job())
    timer = threading.Timer(0.05, table.add_event, args=("j-1", m.Progress("alice", "x")))
    timer.start()
    assert table.wait_change("j-1", 0, 30.0).events_total == 1


def test_table_keeps_only_recent_finished_jobs(tmp_path: Path) -> None:
    table = JobTable(JobStore(tmp_path), keep=2)
    for i in range(4):
        table.add(_job(f"j-{i}"))
        table.move(f"j-{i}", JobState.CANCELLED)
    table.add(_job("j-live"))
    assert [j.job_id for j in table.all()] == ["j-2", "j-3", "j-live"]
    assert len(table.store.jobs()) == 5  # the store keeps every job


def test_proposal_validation_takes_initiator_from_certificate() -> None:
    body = {
        "job_id": "j-1",
        "script": "sum.py",
        "sha256": "0" * 64,
        "params": {},
        "seed": 0,
        "parties": ["alice", "bob"],
        "timeout_s": 5,
    }
    proposal = m.from_wire(m.MessageKind.PROPOSE, body)
    assert isinstance(proposal, m.Propose)
    assert job_from_proposal(proposal, initiator="alice").initiator == "alice"
    with pytest.raises(ProtocolError, match="initiator is not a party"):
        job_from_proposal(proposal, initiator="mallory")
    with pytest.raises(ProtocolError, match="seed: expected an integer"):
        m.from_wire(m.MessageKind.PROPOSE, {**body, "seed": True})


def test_exported_names() -> None:
    import fedcore.party

    assert fedcore.party.__all__ == [
        "Job",
        "JobState",
        "Ok",
        "Outcome",
        "PartyConfig",
        "PartyDaemon",
        "Policy",
        "RemoteError",
        "load_config",
        "load_federation",
        "provision",
        "verify_tls",
    ]
