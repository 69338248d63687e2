"""What a peer's control messages may carry into this daemon: ids, names, progress text."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fedcore.errors import ProtocolError
from fedcore.party import messages as m
from fedcore.party.initiate import EVENT_TEXT_CHARS, peer_event
from fedcore.party.runner import job_from_proposal


def test_a_peer_progress_event_names_the_certified_peer_and_is_cut() -> None:
    claimed = m.Progress(party="alice", step="s" * 10_000, message="x" * 10_000, done=None, total=7)
    event = peer_event("bob", claimed)
    assert event.party == "bob"  # the certified peer, never the name in the reply
    assert event.step == "s" * EVENT_TEXT_CHARS and event.message == "x" * EVENT_TEXT_CHARS
    assert event.total == 7 and event.done is None
    with pytest.raises(ProtocolError, match="done must be a number"):
        m.Progress(party="bob", done="3")  # type: ignore[arg-type]


@pytest.mark.parametrize("job_id", ["j-1\nFORGED", "x" * 200, ""])
def test_a_proposal_with_a_malformed_job_id_is_refused(job_id: str) -> None:
    with pytest.raises(ProtocolError, match="job_id: expected an id"):
        m.Propose(
            job_id=job_id,
            script="plain_sum.py",
            sha256="0" * 64,
            params={},
            seed=1,
            parties=("alice", "bob"),
            timeout_s=10.0,
        )


def test_a_proposed_script_name_is_capped() -> None:
    proposal = m.Propose(
        job_id="j-1",
        script="s" * 300,
        sha256="0" * 64,
        params={},
        seed=1,
        parties=("alice", "bob"),
        timeout_s=10.0,
    )
    with pytest.raises(ProtocolError, match="at most 256 characters"):
        job_from_proposal(proposal, initiator="alice")
    with pytest.raises(ProtocolError, match="the initiator is not a party"):
        job_from_proposal(replace(proposal, script="plain_sum.py"), initiator="carol")
