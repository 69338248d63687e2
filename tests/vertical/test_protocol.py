"""Vertical LR sessions driven in memory: secure training equals plain Taylor SGD; misuse is refused."""

import numpy as np
import pytest

from fedcore import he
from fedcore.bench._phe_baseline import generate_keypair as phe_keypair
from fedcore.errors import ProtocolError
from fedcore.session import Recv
from fedcore.testing import run_sessions
from fedcore.vertical import GuestSession, HostSession, Stage, make_plan
from fedcore.vertical._messages import HostScore, Residual, TermReply, Unmasked
from fedcore.vertical._protocol import TAGS

KEY_BITS = 1024  # the smallest size fedcore.wire accepts for keys


def data(rows: int = 40, cols: tuple[int, ...] = (3, 2), seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, sum(cols)))
    y = (x @ rng.normal(size=sum(cols)) + 0.3 * rng.normal(size=rows) > 0).astype(float)
    blocks = np.split(x, np.cumsum(cols)[:-1], axis=1)
    blocks[0] = np.hstack([blocks[0], np.ones((rows, 1))])
    return blocks, y


def plain_taylor_sgd(blocks, y, plan) -> list[np.ndarray]:
    x = np.hstack(blocks)
    w = np.zeros(x.shape[1])
    for rows in plan.batches:
        d = 0.25 * x[rows] @ w + 0.5 - y[rows]
        w = w - plan.lr * (x[rows].T @ d / len(rows) + plan.l2 * w)
    return np.split(w, np.cumsum([b.shape[1] for b in blocks])[:-1])


def sessions(blocks, y, plan, keypair=he.generate_keypair):
    names = ["g"] + [f"h{i}" for i in range(1, len(blocks))]
    rng = np.random.default_rng(99)
    out = {"g": GuestSession("g", names[1:], blocks[0], y, plan, keypair(KEY_BITS), rng)}
    for name, block in zip(names[1:], blocks[1:], strict=True):
        out[name] = HostSession(name, "g", names[1:], block, plan, keypair(KEY_BITS), rng)
    return out


def run(parties: dict, *, through_wire: bool = True) -> None:
    """Deliver messages in memory until every session is done (``fedcore.testing.run_sessions``)."""
    _, left = run_sessions(parties, through_wire=through_wire)
    assert not left
    assert all(s.stage is Stage.DONE for s in parties.values())


@pytest.mark.parametrize("cols", [(3, 2), (2, 2, 2)])
def test_secure_training_equals_plain(cols) -> None:
    blocks, y = data(cols=cols)
    plan = make_plan(len(y), epochs=2, batch_size=16, seed=3, lr=0.3, l2=0.01)
    parties = sessions(blocks, y, plan)
    run(parties)
    expected = plain_taylor_sgd(blocks, y, plan)
    for session, want in zip(parties.values(), expected, strict=True):
        np.testing.assert_allclose(session.weights, want, atol=1e-6)


def test_phe_baseline_equals_plain() -> None:
    blocks, y = data(rows=12)
    plan = make_plan(len(y), epochs=1, batch_size=6, seed=1, lr=0.5)
    parties = sessions(blocks, y, plan, keypair=phe_keypair)
    run(parties)
    for session, want in zip(parties.values(), plain_taylor_sgd(blocks, y, plan), strict=True):
        np.testing.assert_allclose(session.weights, want, atol=1e-6)


@pytest.fixture(scope="module")
def started():
    blocks, y = data(rows=8)
    plan = make_plan(len(y), epochs=1, batch_size=8, seed=0, lr=0.1)
    parties = sessions(blocks, y, plan)
    starts = {name: s.start() for name, s in parties.items()}
    return parties, starts


def test_wrong_sender_kind_and_batch_are_refused(started) -> None:
    parties, starts = started
    guest, host = parties["g"], parties["h1"]
    score = starts["h1"][0].message
    with pytest.raises(ProtocolError, match="expected HostScore from h1, got HostScore from mallory"):
        guest.receive("mallory", score)
    with pytest.raises(ProtocolError, match="got Unmasked"):
        guest.receive("h1", Unmasked(0, np.zeros(3)))
    with pytest.raises(ProtocolError, match="for batch 5"):
        guest.receive("h1", HostScore(5, score.enc))
    with pytest.raises(ProtocolError, match="expected Residual from g"):
        host.receive("g", TermReply(0, np.zeros(2)))


def test_wrong_sizes_are_refused(started) -> None:
    parties, _ = started
    host = parties["h1"]
    short = he.generate_keypair(KEY_BITS)[0].encrypt(np.zeros(3), packed=False)
    with pytest.raises(ProtocolError, match="has 3 values, expected 8"):
        host.receive("g", Residual(0, short))


def test_messages_validate_fields() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        Unmasked(-1, np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        TermReply(0, np.array([np.nan]))
    with pytest.raises(ValueError, match="float64"):
        TermReply(0, np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="encrypted vector"):
        HostScore(0, np.zeros(2))


def test_nothing_is_accepted_after_training() -> None:
    blocks, y = data(rows=6)
    plan = make_plan(len(y), epochs=1, batch_size=6, seed=0, lr=0.1)
    parties = sessions(blocks, y, plan)
    run(parties, through_wire=False)
    assert parties["g"].expect() is None
    with pytest.raises(ProtocolError, match="after training ended"):
        parties["g"].receive("h1", TermReply(1, np.zeros(4)))


def test_hosts_rerandomize_what_they_pass_on() -> None:
    blocks, y = data(rows=8, cols=(2, 2, 2))
    plan = make_plan(len(y), epochs=1, batch_size=8, seed=0, lr=0.1)
    parties = sessions(blocks, y, plan)
    residual = parties["g"].start()[0].message
    host = parties["h1"]
    host.weights = np.array([0.5, -1.0])
    host.start()
    forwarded = host.receive("g", residual)[0].message
    deterministic = residual.enc + 0.25 * (blocks[1][plan.batches[0]] @ host.weights)
    assert isinstance(forwarded, Residual)
    assert set(forwarded.enc.ciphertexts).isdisjoint(deterministic.ciphertexts)
    guest_secret = parties["g"]._secret_key
    np.testing.assert_allclose(guest_secret.decrypt(forwarded.enc), guest_secret.decrypt(deterministic))


def test_sessions_follow_the_session_contract() -> None:
    blocks, y = data(rows=8)
    plan = make_plan(len(y), epochs=1, batch_size=8, seed=0, lr=0.1)
    parties = sessions(blocks, y, plan)
    guest, host = parties["g"], parties["h1"]
    [send] = guest.start()
    assert (send.dst, send.tag, type(send.message)) == ("h1", "vlr/residual", Residual)
    assert guest.expect() == Recv(("h1",), "vlr/score")
    [score] = host.start()
    assert (score.dst, score.tag, type(score.message)) == ("g", "vlr/score", HostScore)
    assert host.expect() == Recv(("g",), "vlr/residual")
    assert guest.close() == [] and host.close() == []


def test_the_wire_tags_are_pinned() -> None:
    assert {kind.__name__: tag for kind, tag in TAGS.items()} == {
        "HostScore": "vlr/score",
        "Residual": "vlr/residual",
        "FinalResidual": "vlr/final",
        "HostGradient": "vlr/gradient",
        "MaskedTerm": "vlr/term",
        "TermReply": "vlr/term_reply",
        "Unmasked": "vlr/unmasked",
    }


def test_an_empty_plan_is_done_at_once() -> None:
    blocks, y = data(rows=6)
    plan = make_plan(len(y), epochs=0, batch_size=6, seed=0, lr=0.1)
    for session in sessions(blocks, y, plan).values():
        assert session.start() == [] and session.expect() is None and session.stage is Stage.DONE
