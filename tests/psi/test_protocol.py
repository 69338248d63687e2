"""The two-party PSI state machine, driven in memory with no runtime, sockets or sleeps."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedcore.crypto.ecdh_psi import BlindingKey
from fedcore.errors import ProtocolError
from fedcore.psi import Blinded, PairSession, Reblind, Reblinded, Send, Stage, encode_id
from fedcore.psi._protocol import TAG_BLINDED, TAG_REBLINDED, HashBlind
from fedcore.session import Recv
from fedcore.testing import run_sessions

BATCH = 3


def run_pair(xs: list[bytes], ys: list[bytes], *, a_learns: bool = True, b_learns: bool = True):
    """Both sides through the session contract alone (``fedcore.testing.run_sessions``): start,
    expect, receive, the work done at once; every (src, dst, tag) is a FIFO, so the two sides
    interleave as they would over a network.
    """
    sets = {"a": xs, "b": ys}
    keys = {"a": BlindingKey.generate(), "b": BlindingKey.generate()}
    sessions = {
        "a": PairSession(
            "a", "b", i_learn=a_learns, peer_learns=b_learns, own_items=len(xs), batch_items=BATCH
        ),
        "b": PairSession(
            "b", "a", i_learn=b_learns, peer_learns=a_learns, own_items=len(ys), batch_items=BATCH
        ),
    }

    def work(me: str, action):
        session, key = sessions[me], keys[me]
        if isinstance(action, HashBlind):
            return [session.blinded(key.hash_and_blind(sets[me][action.start : action.stop]))]
        assert isinstance(action, Reblind)
        return session.reblinded(action.index, key.blind(action.values))

    delivered, left = run_sessions(sessions, work)
    assert not left and {tag for *_, tag, _ in delivered} <= {TAG_BLINDED, TAG_REBLINDED}
    return sessions["a"], sessions["b"]


def matched(session: PairSession, items: list[bytes]) -> set[bytes]:
    return {items[k] for k in session.matches()}


@pytest.mark.parametrize(
    ("xs", "ys"),
    [
        (["1", "2", "3", "4", "5"], ["4", "5", "6", "7"]),
        ([], ["1", "2"]),
        (["1"], []),
        ([], []),
        (["1", "2"], ["3", "4"]),
        (["x", 1, "1"], [1, "y"]),
    ],
)
def test_both_sides_learn_the_intersection(xs, ys) -> None:
    ex, ey = [encode_id(x) for x in xs], [encode_id(y) for y in ys]
    a, b = run_pair(ex, ey)
    assert a.stage is Stage.DONE and b.stage is Stage.DONE
    expected = set(ex) & set(ey)
    assert matched(a, ex) == expected and matched(b, ey) == expected
    assert a.peer_size == len(ys) and b.peer_size == len(xs)


def test_only_the_receiver_gets_a_result() -> None:
    ex, ey = [encode_id(i) for i in range(10)], [encode_id(i) for i in range(5, 12)]
    a, b = run_pair(ex, ey, b_learns=False)
    assert matched(a, ex) == set(ex[5:])
    assert b.stage is Stage.DONE and not b.peer_double
    with pytest.raises(ProtocolError, match="no result"):
        b.matches()


def test_the_contract_starts_with_our_batches_and_waits_polling() -> None:
    s = PairSession("a", "b", i_learn=True, peer_learns=False, own_items=7, batch_items=BATCH)
    assert s.start() == [HashBlind(0, 3), HashBlind(3, 6), HashBlind(6, 7)]
    assert s.expect() == Recv(("b",), TAG_BLINDED, poll_first=True)
    assert PairSession("a", "b", i_learn=True, peer_learns=True, own_items=0).start() == [HashBlind(0, 0)]
    assert s.close() == []
    sent = s.blinded(b"\x01" * 96)
    assert sent == Send("b", TAG_BLINDED, Blinded(0, 7, b"\x01" * 96))
    [work] = s.receive("b", batch(0, 1, 1))
    assert s.expect() == Recv(("b",), TAG_REBLINDED, poll_first=True)  # we learn: our values come back
    assert s.reblinded(work.index, b"\x02" * 32) == []  # the peer does not learn: nothing goes back


def test_a_side_that_does_not_learn_expects_nothing_after_the_peer_stream() -> None:
    s = PairSession("a", "b", i_learn=False, peer_learns=True, own_items=1)
    [work] = s.receive("b", batch(0, 1, 1))
    assert s.expect() is None
    assert s.reblinded(work.index, b"\x02" * 32) == [Send("b", TAG_REBLINDED, Reblinded(0, b"\x02" * 32))]


def test_batch_items_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_items"):
        PairSession("a", "b", i_learn=True, peer_learns=True, own_items=1, batch_items=0)


def fresh() -> PairSession:
    return PairSession("a", "b", i_learn=True, peer_learns=True, own_items=2)


def batch(index: int, total: int, count: int) -> Blinded:
    return Blinded(index, total, b"\x09" * 32 * count)


def test_message_from_the_wrong_party_is_refused() -> None:
    with pytest.raises(ProtocolError, match="from mallory"):
        fresh().receive("mallory", batch(0, 1, 1))


def test_out_of_order_replayed_and_oversized_batches_are_refused() -> None:
    s = fresh()
    with pytest.raises(ProtocolError, match="expected batch 0"):
        s.receive("b", batch(1, 4, 1))
    s.receive("b", batch(0, 4, 2))
    with pytest.raises(ProtocolError, match="expected batch 1"):
        s.receive("b", batch(0, 4, 2))  # replay
    with pytest.raises(ProtocolError, match="set size changed"):
        s.receive("b", batch(1, 5, 1))
    with pytest.raises(ProtocolError, match="more values"):
        s.receive("b", batch(1, 4, 3))
    s.receive("b", batch(1, 4, 2))
    with pytest.raises(ProtocolError, match="already complete"):
        s.receive("b", batch(2, 4, 1))


def test_empty_batch_from_non_empty_set_is_refused() -> None:
    with pytest.raises(ProtocolError, match="empty batch"):
        fresh().receive("b", batch(0, 3, 0))


def test_reblinded_values_must_match_what_was_sent() -> None:
    s = fresh()
    with pytest.raises(ProtocolError, match="only 0 batches"):
        s.receive("b", Reblinded(0, b"\x01" * 32))
    s.blinded(b"\x01" * 64)
    with pytest.raises(ProtocolError, match="expected 2 values, got 1"):
        s.receive("b", Reblinded(0, b"\x01" * 32))


def test_reblinded_to_a_party_that_does_not_learn_is_refused() -> None:
    s = PairSession("a", "b", i_learn=False, peer_learns=True, own_items=1)
    s.blinded(b"\x01" * 32)
    with pytest.raises(ProtocolError, match="does not receive"):
        s.receive("b", Reblinded(0, b"\x01" * 32))


def test_unexpected_message_kinds_and_malformed_messages() -> None:
    with pytest.raises(ProtocolError, match="sent a str"):
        fresh().receive("b", "hello")
    with pytest.raises(ValueError, match="multiple of 32"):
        Blinded(0, 1, b"\x00" * 31)
    with pytest.raises(ValueError, match="non-negative"):
        Reblinded(-1, b"")
    with pytest.raises(ValueError, match="more blinded values"):
        fresh().blinded(b"\x01" * 96)


def test_result_before_done_is_refused() -> None:
    with pytest.raises(ProtocolError, match="stage blinding"):
        fresh().matches()


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.one_of(st.text(max_size=4), st.integers(-5, 30)), max_size=15),
    st.lists(st.one_of(st.text(max_size=4), st.integers(-5, 30)), max_size=15),
    st.booleans(),
)
def test_property_pair_result_is_the_set_intersection(xs, ys, b_learns) -> None:
    ex = list(dict.fromkeys(encode_id(x) for x in xs))
    ey = list(dict.fromkeys(encode_id(y) for y in ys))
    a, b = run_pair(ex, ey, b_learns=b_learns)
    assert matched(a, ex) == set(ex) & set(ey)
    if b_learns:
        assert matched(b, ey) == set(ex) & set(ey)
