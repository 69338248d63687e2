"""Policy decisions, the job state machine and the control endpoint's framing, without daemons."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from fedcore.errors import DecodeError, PolicyRefused, ProtocolError
from fedcore.party import control
from fedcore.party.config import Endpoint, PolicyConfig
from fedcore.party.jobs import Job, JobState, JobTable
from fedcore.party.policy import Policy
from fedcore.party.runner import job_from_proposal


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
def test_policy_refusals_name_party_and_reason(policy: Policy, tmp_path: Path, name: str, sha: str | None,
                                               initiator: str, reason: str) -> None:
    sha = sha or _sha(tmp_path / "protocols" / "sum.py")
    with pytest.raises(PolicyRefused, match=reason.replace("(", r"\(")):
        policy.check(name, sha, initiator)


def _job(job_id: str = "j-1") -> Job:
    return Job(job_id, "sum.py", "0" * 64, "alice", ("alice", "bob"), {}, 0, 10.0)


def test_job_state_machine() -> None:
    table = JobTable()
    table.add(_job())
    with pytest.raises(ProtocolError, match="already exists"):
        table.add(_job())
    with pytest.raises(ProtocolError, match="cannot go from proposed to succeeded"):
        table.move("j-1", JobState.SUCCEEDED)
    table.move("j-1", JobState.RUNNING)
    table.add_event("j-1", {"party": "alice", "step": "s1"})
    table.add_event("j-1", {"party": "bob", "step": "peer"}, own=False)
    job = table.move("j-1", JobState.FAILED, error="boom")
    assert (job.step, job.error, job.events_total) == ("s1", "boom", 2)
    assert job.events_since(1) == [{"party": "bob", "step": "peer"}]
    with pytest.raises(ProtocolError, match="cannot go from failed to running"):
        table.move("j-1", JobState.RUNNING)
    with pytest.raises(ProtocolError, match="no job 'j-2'"):
        table.get("j-2")
    assert table.running() == [] and table.wait_change("j-1", 2, 0.0).state is JobState.FAILED


def test_wait_change_wakes_on_event() -> None:
    table = JobTable()
    table.add(_job())
    timer = threading.Timer(0.05, table.add_event, args=("j-1", {"party": "alice", "step": "x"}))
    timer.start()
    assert table.wait_change("j-1", 0, 30.0).events_total == 1


def test_table_keeps_only_recent_finished_jobs() -> None:
    table = JobTable(keep=2)
    for i in range(4):
        table.add(_job(f"j-{i}"))
        table.move(f"j-{i}", JobState.CANCELLED)
    table.add(_job("j-live"))
    assert [j.job_id for j in table.all()] == ["j-2", "j-3", "j-live"]


def test_proposal_validation_takes_initiator_from_certificate() -> None:
    body = {"job_id": "j-1", "script": "sum.py", "sha256": "0" * 64, "params": {}, "seed": 0,
            "parties": ["alice", "bob"], "timeout_s": 5}
    assert job_from_proposal(body, initiator="alice").initiator == "alice"
    with pytest.raises(ProtocolError, match="initiator is not a party"):
        job_from_proposal(body, initiator="mallory")
    with pytest.raises(ProtocolError, match="seed is missing"):
        job_from_proposal({**body, "seed": True}, initiator="alice")


def test_control_unix_socket_is_owner_only_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"

    def handler(req: dict, reply: control.Reply) -> None:
        if req["op"] == "fail":
            raise PolicyRefused("bob refuses the job: test")
        reply({"event": "tick"})
        reply({"echo": req["x"], "blob": b"\x00\x01", "final": True})

    server = control.ControlServer(Endpoint(unix_path=path), handler)
    server.start()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert control.call(Endpoint(unix_path=path), {"op": "echo", "x": [1, "a"]}) == {
            "echo": [1, "a"], "blob": b"\x00\x01", "final": True}
        with pytest.raises(PolicyRefused, match="bob refuses the job: test"):
            control.call(Endpoint(unix_path=path), {"op": "fail"})
    finally:
        server.stop()
    assert not path.exists()


def test_control_rejects_oversized_and_non_map_frames() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall((control.MAX_FRAME_BYTES + 1).to_bytes(4, "big"))
        with pytest.raises(DecodeError, match="over the"):
            control.read_frame(b)
        a.sendall(b"\x00\x00\x00\x01\x05")  # msgpack 5: not a map
        with pytest.raises(DecodeError, match="not a map"):
            control.read_frame(b)


def test_exported_names() -> None:
    import fedcore.party

    assert fedcore.party.__all__ == [
        "Job", "JobState", "PartyConfig", "PartyDaemon", "Policy", "load_config", "load_federation",
        "provision", "verify_tls",
    ]
