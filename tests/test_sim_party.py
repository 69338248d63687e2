"""``run_party``: one party's script run to its end, as every engine and the daemon's runner do it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fedcore.context import Context
from fedcore.errors import PartyDropped, ProtocolError, Timeout
from fedcore.results import Ok, RemoteError
from fedcore.runtime import make_runtime
from fedcore.sim._party import KILLED_BEFORE_START, Run, killed_before_start, run_party
from fedcore.sim.faults import FaultPlan, FaultyNetwork


def _pair(plan: FaultPlan | None = None) -> tuple[Context, Context]:
    network = FaultyNetwork(["alice", "bob"], plan)
    run = Run(lambda ctx: None, {}, 0, 5.0, "job-1", Path("unused"))
    runtime = make_runtime("inline")
    alice = run.context("alice", network.transport("alice"), runtime)
    return alice, run.context("bob", network.transport("bob"), runtime)


def test_a_returning_script_is_ok_and_its_peer_sees_it_finished() -> None:
    alice, bob = _pair()
    assert run_party(lambda ctx, n: {"n": n}, alice, {"n": 3}) == Ok({"n": 3})
    with pytest.raises(ProtocolError, match="alice") as caught:
        bob.transport.recv("alice", "never-sent", 5.0)
    assert not isinstance(caught.value, PartyDropped)


def _buggy(ctx: Context) -> Any:
    ctx.step = "round-2"
    return {}["missing"]


def test_a_script_bug_names_party_step_and_line_and_aborts_the_peer() -> None:
    alice, bob = _pair()
    outcome = run_party(_buggy, alice, {})
    assert isinstance(outcome, RemoteError)
    assert (outcome.party, outcome.step, outcome.kind) == ("alice", "round-2", "KeyError")
    assert "test_sim_party.py:" in outcome.message
    with pytest.raises(PartyDropped) as caught:
        bob.transport.recv("alice", "x", 5.0)
    assert caught.value.party == "alice" and caught.value.step == "round-2"


def test_a_stopped_side_does_not_abort_its_peers() -> None:
    alice, bob = _pair()
    outcome = run_party(_buggy, alice, {}, stopped=lambda: True)
    assert isinstance(outcome, RemoteError) and outcome.kind == "KeyError"
    with pytest.raises(Timeout):  # nobody told bob anything
        bob.transport.recv("alice", "x", 0.2)


def test_a_killed_party_ends_as_killed_and_its_peer_sees_it_drop() -> None:
    alice, bob = _pair(FaultPlan(kill={"alice": 1}))

    def send_twice(ctx: Context) -> None:
        ctx.send("bob", "a", 1)
        ctx.send("bob", "b", 2)  # never reached

    outcome = run_party(send_twice, alice, {})
    assert isinstance(outcome, RemoteError) and outcome.kind == "PartyKilled"
    assert bob.recv("alice", "a") == 1  # what it sent before it died still arrives
    with pytest.raises(PartyDropped):
        bob.transport.recv("alice", "b", 5.0)


def test_killed_before_start_tells_the_peer_at_once() -> None:
    alice, bob = _pair()
    outcome = killed_before_start("alice", alice.transport)
    assert outcome == RemoteError("alice", None, "PartyKilled", KILLED_BEFORE_START)
    with pytest.raises(PartyDropped, match="before it started"):
        bob.transport.recv("alice", "x", 5.0)
