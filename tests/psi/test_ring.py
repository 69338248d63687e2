"""The ring PSI state machine for three or more parties, driven in memory (no runtime, no sockets)."""

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedcore.crypto.ecdh_psi import BlindingKey
from fedcore.errors import ProtocolError
from fedcore.psi import encode_id
from fedcore.psi._protocol import HashBlind
from fedcore.psi._ring import (
    TAG_COMMON,
    TAG_HOP,
    TAG_TAGS,
    Blind,
    Common,
    Hop,
    RingSession,
    RingStage,
    Tags,
    permute,
)
from fedcore.session import Recv, Send
from fedcore.testing import run_sessions

BATCH = 4


def run_ring(sets: dict[str, list[bytes]], seed: int = 0) -> tuple[dict[str, RingSession], list]:
    """Run every party's session to the end through the session contract alone
    (``fedcore.testing.run_sessions``: work done at once, every (src, dst, tag) a FIFO);
    returns the sessions and every delivered (src, dst, message)."""
    rng = np.random.default_rng(seed)
    ring = tuple(sets)
    keys = {p: BlindingKey.generate() for p in ring}
    sessions = {
        p: RingSession(p, ring, len(s), shuffle=rng.permutation, batch_items=BATCH) for p, s in sets.items()
    }

    def work(me, action):
        session, key = sessions[me], keys[me]
        if isinstance(action, HashBlind):
            return [session.own_blinded(key.hash_and_blind(sets[me][action.start : action.stop]))]
        assert isinstance(action, Blind)
        return session.blinded(action.origin, action.index, key.blind(action.values))

    delivered, left = run_sessions(sessions, work)
    assert not left
    return sessions, [(src, dst, message) for src, dst, _, message in delivered]


def leader_result(sessions, sets) -> set[bytes]:
    leader = next(iter(sets))
    return {sets[leader][k] for k in sessions[leader].matches()}


@pytest.mark.parametrize("parties", [3, 4, 5])
def test_ring_finds_the_intersection(parties) -> None:
    rnd = random.Random(parties)
    pool = [encode_id(i) for i in range(40)]
    sets = {f"p{i}": rnd.sample(pool, rnd.randint(15, 35)) for i in range(parties)}
    sessions, _ = run_ring(sets)
    assert all(s.stage is RingStage.DONE for s in sessions.values())
    assert leader_result(sessions, sets) == set.intersection(*(set(s) for s in sets.values()))


@pytest.mark.parametrize("empty", ["p0", "p1", "p2"])
def test_ring_with_an_empty_set(empty) -> None:
    sets = {p: ([] if p == empty else [encode_id(i) for i in range(6)]) for p in ("p0", "p1", "p2")}
    sessions, _ = run_ring(sets)
    assert leader_result(sessions, sets) == set()


def test_the_leader_sees_only_its_tags_and_the_common_count() -> None:
    sets = {
        "L": [encode_id(i) for i in range(10)],
        "C": [encode_id(i) for i in range(5, 20)],
        "Q": [encode_id(i) for i in range(0, 30, 2)],
    }
    _, log = run_ring(sets)
    to_leader = [m for src, dst, m in log if dst == "L"]
    assert {type(m) for m in to_leader} == {Hop, Tags, Common}
    assert all(m.origin == "L" for m in to_leader if isinstance(m, Tags))
    common = next(m for m in to_leader if isinstance(m, Common))
    assert len(common.values) // 32 == len(set(sets["C"]) & set(sets["Q"]))  # not pairwise with L's set
    assert all(m.origin != "L" for m in to_leader if isinstance(m, Hop))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.sets(st.integers(0, 12), max_size=10), min_size=3, max_size=4))
def test_property_ring_equals_set_intersection(raw_sets) -> None:
    sets = {f"p{i}": [encode_id(v) for v in sorted(s)] for i, s in enumerate(raw_sets)}
    sessions, _ = run_ring(sets)
    assert leader_result(sessions, sets) == set.intersection(*(set(s) for s in sets.values()))


def session(me: str = "C") -> RingSession:
    shuffle = np.random.default_rng(0).permutation
    return RingSession(me, ("L", "C", "Q"), 2, shuffle=shuffle, batch_items=BATCH)


def test_the_contract_waits_polling_for_hops_then_tags_then_common() -> None:
    s = session("L")
    assert s.start() == [HashBlind(0, 2)]
    assert s.expect() == Recv(("Q",), TAG_HOP, poll_first=True)  # L's predecessor on (L, C, Q)
    assert s.own_blinded(b"\x01" * 64) == Send("C", TAG_HOP, Hop("L", 0, 2, b"\x01" * 64))
    for origin in ("Q", "C"):
        [work] = [a for a in s.receive("Q", Hop(origin, 0, 1, b"\x01" * 32)) if isinstance(a, Blind)]
        s.blinded(work.origin, work.index, b"\x02" * 32)
    assert s.expect() == Recv(("Q",), TAG_TAGS, poll_first=True)  # L's own tags, from its last hop
    s.receive("Q", Tags("L", 0, 2, b"\x03" * 64))
    assert s.expect() == Recv(("C",), TAG_COMMON, poll_first=True)
    s.receive("C", Common(b"\x03" * 32))
    assert s.expect() is None and s.stage is RingStage.DONE and s.close() == []
    assert s.matches() == [0, 1]


def test_misrouted_messages_are_refused() -> None:
    s = session()
    with pytest.raises(ProtocolError, match="unexpected Hop"):
        s.receive("Q", Hop("L", 0, 1, b"\x01" * 32))  # Hops come only from the predecessor (L)
    with pytest.raises(ProtocolError, match="unexpected Hop"):
        s.receive("L", Hop("C", 0, 1, b"\x01" * 32))  # our own route never comes back as a Hop
    with pytest.raises(ProtocolError, match="unexpected Tags"):
        s.receive("Q", Tags("C", 0, 1, b"\x01" * 32))  # C's tags come from its last hop, L
    with pytest.raises(ProtocolError, match="unexpected Common"):
        s.receive("L", Common(b""))
    with pytest.raises(ProtocolError, match="sent a bytes"):
        s.receive("L", b"junk")


def test_out_of_order_and_oversized_batches_are_refused() -> None:
    s = session()
    with pytest.raises(ProtocolError, match="expected batch 0"):
        s.receive("L", Hop("Q", 1, 2, b"\x01" * 32))
    s.receive("L", Hop("Q", 0, 2, b"\x01" * 32))
    with pytest.raises(ProtocolError, match="set size changed"):
        s.receive("L", Hop("Q", 1, 3, b"\x01" * 32))
    with pytest.raises(ProtocolError, match="more values"):
        s.receive("L", Hop("Q", 1, 2, b"\x01" * 64))


def test_bad_rings_and_early_results_are_refused() -> None:
    with pytest.raises(ValueError, match="three or more"):
        RingSession("a", ("a", "b"), 0, shuffle=np.arange, batch_items=1)
    with pytest.raises(ProtocolError, match="no ring result"):
        session("L").matches()
    assert permute(b"a" * 32 + b"b" * 32, [1, 0]) == b"b" * 32 + b"a" * 32
