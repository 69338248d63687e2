"""Misuse: replays, wrong stage, wrong sender, wrong round, malformed messages, late parties."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from fedcore import wire
from fedcore.crypto.secret import ACCESS
from fedcore.errors import DecodeError, PartyDropped, ProtocolError
from fedcore.secagg import Stage
from fedcore.secagg.messages import (
    Abort,
    Advertise,
    ForwardedShares,
    MaskedInput,
    Outcome,
    PeerKeys,
    SealedShares,
    Survivors,
    UnmaskShares,
)
from fedcore.session import Garbled

from .conftest import AGG, make_round, messages, reply, run_round


def _advertise_all(rnd):
    return {c: reply(s.start()) for c, s in rnd.clients.items()}


def test_replayed_message_is_refused():
    rnd = make_round(4, 3)
    ads = _advertise_all(rnd)
    rnd.agg.take("c000", ads["c000"])
    with pytest.raises(ProtocolError, match="twice"):
        rnd.agg.take("c000", ads["c000"])


def test_message_from_wrong_stage_is_refused():
    rnd = make_round(4, 3)
    _advertise_all(rnd)
    with pytest.raises(ProtocolError, match="stage ADVERTISE_KEYS"):
        rnd.agg.take("c000", MaskedInput("r1", np.zeros(3, np.uint32)))


def test_message_from_unknown_sender_or_other_round_is_refused():
    rnd = make_round(4, 3)
    ads = _advertise_all(rnd)
    with pytest.raises(ProtocolError, match="not in round"):
        rnd.agg.take("mallory", ads["c000"])
    other = Advertise("r2", ads["c000"].enc_pk, ads["c000"].mask_pk, ads["c000"].setup_digest)
    with pytest.raises(ProtocolError, match="round"):
        rnd.agg.take("c000", other)


def test_advertisement_for_a_different_setup_is_refused():
    rnd = make_round(4, 3)
    ads = _advertise_all(rnd)
    with pytest.raises(ProtocolError, match="different parameters"):
        rnd.agg.take("c000", Advertise("r1", ads["c000"].enc_pk, ads["c000"].mask_pk, bytes(32)))


def test_sessions_name_their_waits_and_answer_with_send_actions():
    rnd = make_round(3, 2)
    rnd.agg.timeout = 4.0
    wait = rnd.agg.expect()
    assert (wait.sources, wait.tag, wait.timeout, wait.tolerant) == (
        rnd.setup.clients,
        "secagg/r1/up",
        4.0,
        True,
    )
    client = rnd.clients["c000"]
    client.timeout = 4.0
    assert client.expect() is None  # not started
    [advertise] = client.start()
    assert (advertise.dst, advertise.tag) == (AGG, "secagg/r1/up") and isinstance(
        advertise.message, Advertise
    )
    wait = client.expect()
    assert (wait.sources, wait.tag, wait.timeout, wait.tolerant) == ((AGG,), "secagg/r1/down", 12.0, False)
    with pytest.raises(ProtocolError, match="c001 sent a message"):
        client.receive("c001", PeerKeys("r1", {}))
    # the aggregator's tolerant receive: garbled bytes and rule-breaking messages count as silence
    assert rnd.agg.receive("c000", Garbled("not an encoding")) == []
    assert rnd.agg.receive("c000", advertise.message) == []
    assert rnd.agg.receive("c000", advertise.message) == []  # a replay, ignored
    assert rnd.agg.awaiting() == ("c001", "c002")
    down = rnd.agg.close()  # one client advertised, threshold 2: the round fails
    assert [(s.dst, s.tag, type(s.message)) for s in down] == [
        (c, "secagg/r1/down", Abort) for c in ("c001", "c002", "c000")
    ]
    assert rnd.agg.stage is Stage.FAILED and rnd.agg.expect() is None


def test_client_refuses_out_of_turn_messages():
    rnd = make_round(4, 3)
    client = rnd.clients["c000"]
    with pytest.raises(ProtocolError, match="not started"):
        client.receive(AGG, PeerKeys("r1", {}))
    client.start()
    with pytest.raises(ProtocolError, match="expected PeerKeys"):
        client.receive(AGG, Survivors("r1", ("c000",)))
    with pytest.raises(ProtocolError, match="another round"):
        client.receive(AGG, PeerKeys("other", {}))
    with pytest.raises(PartyDropped) as caught:
        client.receive(AGG, Abort("r1", 2, "test"))
    assert caught.value.lost == 2 and client.stage is Stage.FAILED


def test_client_refuses_keys_of_non_neighbours_and_too_few_peers():
    rnd = make_round(4, 3)
    ads = _advertise_all(rnd)
    with pytest.raises(ProtocolError, match="threshold"):
        rnd.clients["c000"].receive(AGG, PeerKeys("r1", {}))
    with pytest.raises(ProtocolError, match="not our neighbours"):
        rnd.clients["c001"].receive(AGG, PeerKeys("r1", {"zed": (ads["c000"].enc_pk, ads["c000"].mask_pk)}))


def test_late_masked_input_of_a_declared_dropped_party_is_not_unmasked():
    """The double-masking rule: c003 is declared dropped; its late y never gets its b removed."""
    rnd = make_round(5, 8)
    outbox = _advertise_all(rnd)
    for _ in range(2):  # stages 1 and 2 for everyone
        for c, m in outbox.items():
            rnd.agg.take(c, m)
        outbox = {d: reply(rnd.clients[d].receive(AGG, m)) for d, m in messages(rnd.agg.close()).items()}
    late = outbox.pop("c003")
    for c, m in outbox.items():
        rnd.agg.take(c, m)
    down = messages(rnd.agg.close())
    assert isinstance(down["c003"], Abort)
    with pytest.raises(ProtocolError, match="not in round"):
        rnd.agg.take("c003", late)  # arrives after the deadline: refused
    replies = {d: reply(rnd.clients[d].receive(AGG, m)) for d, m in down.items() if d != "c003"}
    for answer in replies.values():
        assert "c003" not in answer.seed_shares and "c003" in answer.key_shares
    forged = UnmaskShares("r1", {"c003": bytes(33)}, {})
    with pytest.raises(ProtocolError, match="seed shares"):
        rnd.agg.take("c000", forged)
    for c, m in replies.items():
        rnd.agg.take(c, m)
    rnd.agg.close()
    assert "c003" not in rnd.agg.included


def test_client_answers_one_survivor_list_only():
    rnd = run_round(make_round(4, 2), sends={})
    with pytest.raises(ProtocolError):
        rnd.clients["c000"].receive(AGG, Survivors("r1", ("c000", "c001", "c002")))


@pytest.mark.parametrize(
    "build",
    [
        lambda: Advertise("r1", b"short", bytes(32), bytes(32)),
        lambda: Advertise("r1", bytes(32), bytes(32), bytes(32)),  # the two keys must differ
        lambda: SealedShares("r1", {"a": "not bytes"}),
        lambda: MaskedInput("r1", np.zeros(3, np.float64)),
        lambda: MaskedInput("r1", np.zeros((2, 2), np.uint32)),
        lambda: UnmaskShares("r1", {"a": bytes(33)}, {"a": bytes(33)}),
        lambda: UnmaskShares("r1", {"a": bytes(32)}, {}),
        lambda: Survivors("r1", ("a", "a")),
        lambda: Abort("r1", -1, "x"),
        lambda: Outcome("", (), None),
    ],
)
def test_malformed_messages_are_refused_when_built(build):
    with pytest.raises(ValueError):
        build()


def test_messages_round_trip_on_the_wire_and_garbage_is_refused():
    msgs = [
        SealedShares("r1", {"a": b"x"}),
        ForwardedShares("r1", {"b": b"y"}),
        MaskedInput("r1", np.arange(4, dtype=np.uint32)),
        Survivors("r1", ("a", "b")),
        UnmaskShares("r1", {"a": bytes(33)}, {"b": bytes(33)}),
        Outcome("r1", ("a",), None),
        PeerKeys("r1", {"a": (bytes(range(32)), bytes(range(1, 33)))}),
        Abort("r1", 1, "why"),
    ]
    for msg in msgs:
        back = wire.decode(wire.encode(msg))
        assert type(back) is type(msg)
        assert wire.encode(back) == wire.encode(msg)
    bad = wire.encode(Survivors("r1", ("ab", "ac"))).replace(b"ac", b"ab")  # now repeats a name
    with pytest.raises(DecodeError):
        wire.decode(bad)


def test_sessions_and_secrets_refuse_pickle_bool_and_repr_leaks():
    rnd = run_round(make_round(3, 2))
    client = rnd.clients["c000"]
    with pytest.raises(TypeError):
        pickle.dumps(client)
    secret = client._mask.private
    for attempt in (lambda: pickle.dumps(secret), lambda: bool(secret), lambda: bool(client._mask)):
        with pytest.raises(TypeError):
            attempt()
    assert secret.reveal(ACCESS).hex() not in repr(secret) and "bytes" in repr(secret)
    with pytest.raises(TypeError):
        secret.reveal(object())


def test_threshold_must_be_a_strict_majority_and_graph_choice_is_public():
    from fedcore.errors import ConfigError

    from .conftest import make_round as mk

    with pytest.raises(ConfigError, match="strict majority"):
        mk(6, 2, threshold=3)  # 6 holders: 3 is not > 3
    with pytest.raises(ConfigError, match="strict majority"):
        mk(6, 2, threshold=7)
    assert mk(6, 2, threshold=6).setup.threshold == 6
    small, large = mk(30, 1), mk(120, 1)
    assert all(len(n) == 29 for n in small.setup.neighbours.values())  # auto: complete
    assert all(len(n) < 119 for n in large.setup.neighbours.values())  # auto: sparse


def test_public_surface_is_pinned():
    import fedcore.secagg

    assert sorted(fedcore.secagg.__all__) == [
        "AggregatorSession",
        "ClientSession",
        "RoundSetup",
        "RoundStats",
        "SecureSumResult",
        "Stage",
        "make_setup",
        "secure_sum",
    ]
