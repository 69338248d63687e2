"""The SQLite job store: schema migrations, restarts, outcomes with .npy arrays, bounds."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest

from fedcore.errors import ConfigError, ProtocolError
from fedcore.party import store as store_mod
from fedcore.party.messages import Ok, Progress, RemoteError
from fedcore.party.store import JobStore


def _record(job_id: str = "j-1", state: str = "proposed") -> dict:
    return {
        "job_id": job_id,
        "script": "sum.py",
        "sha256": "0" * 64,
        "params": {"rounds": 2},
        "seed": 3,
        "timeout_s": 10.0,
        "initiator": "alice",
        "parties": ("alice", "bob"),
        "state": state,
        "created": 100.0,
    }


def test_job_survives_reopen_and_running_jobs_become_interrupted(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "state")
    store.add_job(_record("j-1"))
    store.set_state("j-1", "running", at=101.0, started=101.0)
    store.add_job(_record("j-2"))
    store.set_state("j-2", "running", at=102.0, started=102.0)
    store.set_state("j-2", "succeeded", at=103.0, ended=103.0)
    store.close()
    assert stat.S_IMODE((tmp_path / "state" / "jobs.sqlite3").stat().st_mode) == 0o600
    again = JobStore(tmp_path / "state")  # the daemon restarted
    assert again.interrupt_unfinished("the daemon stopped") == ["j-1"]
    assert again.job("j-1")["state"] == "interrupted" and again.job("j-1")["params"] == {"rounds": 2}
    assert again.job("j-2")["state"] == "succeeded"
    assert [s["state"] for s in again.states("j-1")] == ["proposed", "running", "interrupted"]
    assert again.counts() == {"interrupted": 1, "succeeded": 1}
    with pytest.raises(ProtocolError, match="no job 'j-9'"):
        again.job("j-9")


def test_large_arrays_go_to_npy_files_and_come_back(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    store.add_job(_record())
    weights = np.arange(1000, dtype=np.float32).reshape(10, 100)
    store.set_outcome("j-1", "alice", Ok({"weights": [weights], "small": np.arange(3), "acc": 0.9}))
    store.set_outcome("j-1", "bob", RemoteError("bob", "round 2", "PartyDropped", "carol left"))
    files = list((tmp_path / "jobs" / "j-1").glob("*.npy"))
    assert [f.name for f in files] == ["result-alice-0.npy"]
    (text,) = (
        sqlite3.connect(tmp_path / "jobs.sqlite3")
        .execute("SELECT result FROM outcomes WHERE party = 'alice'")
        .fetchone()
    )
    assert len(text) < 200  # the weights are not in the JSON text
    outcomes = JobStore(tmp_path).outcomes("j-1")
    alice = outcomes["alice"]
    assert isinstance(alice, Ok)
    np.testing.assert_array_equal(alice.result["weights"][0], weights)
    assert alice.result["small"] == [0, 1, 2] and alice.result["acc"] == 0.9
    assert outcomes["bob"] == RemoteError("bob", "round 2", "PartyDropped", "carol left")


def test_migrates_a_version_1_file_and_refuses_a_newer_one(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(f"BEGIN; {store_mod.MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    db.execute(
        "INSERT INTO jobs VALUES ('j-old', 's.py', ?, '{}', 0, 5.0, 'bob', '[\"bob\"]', 'succeeded', "
        "NULL, NULL, 1.0, 1.0, 2.0)",
        ("0" * 64,),
    )
    db.commit()
    db.close()
    store = JobStore(tmp_path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (store_mod.SCHEMA_VERSION,)
    assert store.job("j-old")["seconds"] is None  # the column version 2 added
    store.add_metrics("j-old", "bob", 1, {"accuracy": 0.5, "seconds": 0.2})
    assert store.metrics("j-old") == [{"round": 1, "party": "bob", "accuracy": 0.5, "seconds": 0.2}]
    store.close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {store_mod.SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(ConfigError, match="newer than this fedcore"):
        JobStore(tmp_path)


def test_events_and_logs_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "MAX_EVENTS", 50)
    monkeypatch.setattr(store_mod, "MAX_LOG_LINES", 20)
    store = JobStore(tmp_path)
    store.add_job(_record())
    for seq in range(1, 301):
        store.add_event("j-1", seq, Progress("alice", f"s{seq}"))
        store.add_log("j-1", f"line {seq}")
    events = store.events("j-1", limit=1000)
    assert len(events) <= 150 and events[-1]["step"] == "s300"
    logs = store.logs("j-1")
    assert len(logs) == 20 and logs[-1].endswith("line 300")
