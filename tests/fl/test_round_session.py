"""The training round's sessions fed by hand: no parties, threads or sockets."""

from __future__ import annotations

import numpy as np
import pytest

from fedcore.errors import PartyDropped, ProtocolError
from fedcore.fl import FedAvg
from fedcore.fl._session import (
    GLOBAL_TAG,
    CoordinatorSession,
    LocalFit,
    Metrics,
    PartySession,
    Phase,
    Report,
    SecureSum,
)
from fedcore.fl.config import TrainConfig
from fedcore.fl.messages import ClientUpdate, RoundStart, Stop, Wait
from fedcore.fl.sampling import Sampling
from fedcore.session import Garbled, Send

PARTIES = ("p0", "p1", "p2", "p3")


def coordinator(**config) -> CoordinatorSession:
    options = {"rounds": 1, "strategy": FedAvg(), "round_timeout": 5.0, **config}
    return CoordinatorSession(
        TrainConfig(**options),
        [np.zeros(2)],
        lambda params: {"loss": float(params[0].sum())},
        me="p0",
        parties=PARTIES,
        seed=0,
        rng=np.random.default_rng(0),
        clock=iter(range(100)).__next__,
    )


def sends(actions) -> list[tuple[str, str, type]]:
    return [(a.dst, a.tag, type(a.message)) for a in actions if isinstance(a, Send)]


def test_a_plain_round_sends_one_start_fits_collects_tolerantly_and_stops() -> None:
    session = coordinator()
    actions = session.start()
    assert actions[0] == Report("round 1", 0, 1)
    assert sends(actions) == [(p, GLOBAL_TAG, RoundStart) for p in ("p1", "p2", "p3")]
    starts = [a.message for a in actions if isinstance(a, Send)]
    assert starts[0] is starts[1] is starts[2]  # one object: the driver encodes it once
    assert isinstance(actions[-1], LocalFit) and session.expect() is None  # fitting first
    assert session.fitted([np.ones(2)], 1, 1) == []
    wait = session.expect()
    assert (wait.sources, wait.tag, wait.timeout, wait.tolerant) == (
        ("p1", "p2", "p3"),
        "fl/update/1",
        5.0,
        True,
    )
    assert session.receive("p1", ClientUpdate(1, (np.full(2, 3.0),), 3)) == []
    assert session.receive("p2", Garbled("'fl/update/1' from p2 to p0: bad bytes")) == []
    assert session.receive("p3", ClientUpdate(1, (np.zeros(5),), 1)) == []  # wrong shape
    end = session.close()
    entry = session.history[0]
    assert entry["parties"] == 2 and entry["dropped"] == ["p2", "p3"] and entry["seconds"] == 1
    assert entry["rejected"]["p2"].endswith("bad bytes") and "wrong shape" in entry["rejected"]["p3"]
    assert entry["loss"] == 2 * (1 * 1 + 3 * 3) / 4  # the weighted mean delta, two coordinates
    assert isinstance(end[0], Metrics) and end[0].values["parties"] == 2
    assert sends(end) == [("p1", GLOBAL_TAG, Stop)]  # the dropped are not told
    assert session.phase is Phase.DONE and session.expect() is None
    assert session.result["lost"] == {"p2": 1, "p3": 1}


def test_too_few_updates_fail_the_round_by_the_strategys_policy() -> None:
    session = coordinator(strategy=FedAvg(min_parties=3))
    session.start()
    session.fitted([np.ones(2)], 1, 1)
    session.receive("p1", ClientUpdate(1, (np.ones(2),), 1))
    with pytest.raises(PartyDropped, match="round 1"):
        session.close()


def test_a_secure_round_is_one_secure_sum_and_the_unpicked_wait() -> None:
    session = coordinator(secure=True, sampling=Sampling(fraction=0.5), rounds=2)
    actions = session.start()
    picked = session._picked
    waiting = [p for p in PARTIES if p not in picked and p != "p0"]
    assert sorted(d for d, _, kind in sends(actions) if kind is Wait) == sorted(waiting)
    if "p0" in picked:
        actions = session.fitted([np.ones(2)], 2, 2)
    [step] = [a for a in actions if isinstance(a, SecureSum)]
    assert step.message.parties == tuple(p for p in PARTIES if p in {*picked, "p0"})
    total = np.append(np.full(2, 0.5), 0.25)  # sum of w * delta and of w: mean delta 2
    nxt = session.summed(tuple(step.message.parties), total)
    assert session.history[0]["loss"] == 4.0 and session.history[0]["parties"] == len(picked)
    assert Report("round 2", 1, 2) in nxt  # the next round follows at once


def test_a_party_answers_each_round_and_stops() -> None:
    party = PartySession(TrainConfig(rounds=2, strategy=FedAvg()), "p0")
    assert party.start() == [] and party.expect().sources == ("p0",)
    assert not party.expect().tolerant
    start = RoundStart(1, (np.zeros(2),), PARTIES)
    assert party.receive("p0", Wait(1)) == []
    report, fit = party.receive("p0", start)
    assert report == Report("round 1", 0, 2) and fit == LocalFit(start)
    [update] = party.fitted([np.ones(2)], 4, 4)
    assert (update.dst, update.tag) == ("p0", "fl/update/1") and update.message.samples == 4
    with pytest.raises(ProtocolError, match="sent ClientUpdate under fl/global"):
        party.receive("p0", update.message)
    party.receive("p0", Stop())
    assert party.expect() is None and party.result == {"samples": 4, "rounds": 1}
