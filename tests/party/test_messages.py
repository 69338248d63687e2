"""The typed control plane: every message round-trips, and hostile bodies are refused at the edge."""

from __future__ import annotations

import pytest

from fedcore import wire
from fedcore.errors import ConfigError, PolicyRefused, ProtocolError
from fedcore.party import messages as m

PROPOSAL = m.Propose("j-1", "sum.py", "a" * 64, {"dim": 4}, 7, ("alice", "bob"), 30.0)


@pytest.mark.parametrize("message", [
    PROPOSAL, m.Accept("j-1"), m.Refuse("j-1", "bob", "PolicyRefused", "bob refuses the job: hash differs"),
    m.Start("j-1"), m.Wait("j-1", 3, 1.5), m.Cancel("j-1", "operator"), m.Abort("j-1", "round 2", "deadline"),
    m.Progress("bob", "round 1", 1, 5, "ok", 12.5),
    m.Status("j-1", "succeeded", (m.Progress("bob", "x"),), 1, "x", m.Ok({"sum": [1, 2]})),
    m.Status("j-1", "failed", (), 0, None, m.RemoteError("bob", "boom", "ValueError", "bad")),
])  # fmt: skip
def test_every_message_round_trips_through_the_wire(message: m.Message) -> None:
    assert m.decode(m.encode(message), message.kind) == message


@pytest.mark.parametrize(("kind", "body", "match"), [
    (m.MessageKind.PROPOSE, {**m.to_wire(PROPOSAL), "sha256": "zz"}, "sha256 must be 64 hex"),
    (m.MessageKind.PROPOSE, {**m.to_wire(PROPOSAL), "parties": ["alice", "alice"]}, "twice"),
    (m.MessageKind.PROPOSE, {**m.to_wire(PROPOSAL), "parties": ["../etc"]}, "expected a party name"),
    (m.MessageKind.PROPOSE, {**m.to_wire(PROPOSAL), "timeout_s": float("nan")}, "finite number"),
    (m.MessageKind.PROPOSE, {k: v for k, v in m.to_wire(PROPOSAL).items() if k != "seed"}, "seed"),
    (m.MessageKind.WAIT, {"job_id": "j-1", "seen": -1}, "seen must be >= 0"),
    (m.MessageKind.WAIT, {"job_id": "j-1", "wait_s": 1e9}, "wait_s must be 0-60"),
    (m.MessageKind.START, {"job_id": "x" * 500}, "job_id"),
    (m.MessageKind.STATUS, {"job_id": "j-1", "state": "ok", "total": 0, "events": [{"party": 5}]}, "party"),
    (m.MessageKind.STATUS, {"job_id": "j-1", "state": "ok", "total": 0, "events": [],
                            "outcome": {"ok": "yes"}}, "ok true or false"),
])  # fmt: skip
def test_malformed_bodies_are_protocol_errors(kind: m.MessageKind, body: dict, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        m.decode(wire.encode({"kind": kind.value, **body}), kind)


def test_unexpected_or_unknown_kinds_are_refused() -> None:
    with pytest.raises(ProtocolError, match=r"expected a job\.accept"):
        m.decode(m.encode(m.Start("j-1")), m.MessageKind.ACCEPT)
    with pytest.raises(ProtocolError, match="unknown control message kind"):
        m.decode(wire.encode({"kind": "job.exec"}))
    with pytest.raises(ProtocolError, match="expected a map"):
        m.decode(wire.encode([1, 2]))


def test_outcome_json_and_refusal_errors() -> None:
    assert m.outcome_json(m.Ok({"a": (1, 2)})) == {"a": [1, 2]}
    error = m.RemoteError.from_exception("carol", "round 3", ValueError("bad input"), " (at s.py:9)")
    assert error.kind == "ValueError" and str(error) == "ValueError: bad input (at s.py:9)"
    assert m.outcome_json(error) == {
        "error": "ValueError: bad input (at s.py:9)",
        "party": "carol",
        "step": "round 3",
        "kind": "ValueError",
    }
    refused = m.refusal_error(m.Refuse("j-1", "bob", "PolicyRefused", "bob refuses the job: hash differs"))
    assert isinstance(refused, PolicyRefused) and "hash differs" in str(refused)


def test_run_request_names_the_bad_field() -> None:
    good = {
        "script": "s.py",
        "sha256": "a" * 64,
        "parties": ["alice"],
        "params": {},
        "seed": 1,
        "timeout_s": 5,
    }
    assert m.RunRequest.from_json(good).parties == ("alice",)
    for key, value in (("parties", []), ("seed", True), ("timeout_s", -1), ("params", [1])):
        with pytest.raises(ConfigError, match=f"run request: {key} must be"):
            m.RunRequest.from_json({**good, key: value})
