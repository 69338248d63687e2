"""What a peer's control messages may carry into this daemon: ids, names, progress text."""

from __future__ import annotations

import pytest

from fedcore.errors import ProtocolError
from fedcore.party.initiate import EVENT_TEXT_CHARS, peer_event
from fedcore.party.runner import job_from_proposal


def test_a_peer_progress_event_names_the_certified_peer_and_is_cut() -> None:
    event = peer_event(
        "bob",
        {
            "party": "alice",
            "step": "s" * 10_000,
            "message": None,
            "done": "3",
            "total": 7,
            "extra": "x" * 10_000,
        },
    )
    assert event == {
        "party": "bob",
        "step": "s" * EVENT_TEXT_CHARS,
        "message": None,
        "done": None,
        "total": 7,
    }
    assert peer_event("bob", ["not", "a", "map"])["party"] == "bob"


@pytest.mark.parametrize("job_id", ["j-1\nFORGED", "x" * 200, ""])
def test_a_proposal_with_a_malformed_job_id_is_refused(job_id: str) -> None:
    req = {
        "job_id": job_id,
        "script": "plain_sum.py",
        "sha256": "0" * 64,
        "params": {},
        "seed": 1,
        "parties": ["alice", "bob"],
        "timeout_s": 10.0,
    }
    with pytest.raises(ProtocolError, match="malformed job id"):
        job_from_proposal(req, initiator="alice")
