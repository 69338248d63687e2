"""An in-memory SecAgg+ round: sessions wired together with drops, late messages and shuffles."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedcore.crypto import fixedpoint
from fedcore.errors import PartyDropped
from fedcore.secagg import AggregatorSession, ClientSession, Stage, make_setup
from fedcore.secagg.protocol import RoundSetup
from fedcore.session import Send

AGG = "agg"


@dataclass
class Round:
    """One round's parties and what they saw."""

    setup: RoundSetup
    inputs: dict[str, np.ndarray]
    clients: dict[str, ClientSession]
    agg: AggregatorSession
    upstream: list[tuple[str, Any]] = field(default_factory=list)  # every message the aggregator got
    downstream: list[tuple[str, Any]] = field(default_factory=list)
    errors: dict[str, PartyDropped] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    dead: set[str] = field(default_factory=set)


def make_round(
    n_clients: int,
    dim: int,
    *,
    seed: int = 0,
    threshold: int | None = None,
    graph: str = "auto",
    inputs: dict[str, np.ndarray] | None = None,
    neighbours: int | None = None,
) -> Round:
    """A fresh round of ``n_clients`` clients plus the aggregator, inputs in [-1000, 1000]."""
    parties = (AGG, *(f"c{i:03d}" for i in range(n_clients)))
    enc = fixedpoint.plan("int", len(parties), value_range=1000, bits=32)
    setup = make_setup(
        job="job-test",
        round_id="r1",
        seed=seed,
        aggregator=AGG,
        parties=parties,
        dim=dim,
        encoding=enc,
        threshold=threshold,
        graph=graph,
        neighbours=neighbours,
    )
    rng = np.random.default_rng(seed)
    inputs = inputs or {p: rng.integers(-1000, 1001, size=dim) for p in parties}
    randbytes = random.Random(seed).randbytes
    clients = {
        c: ClientSession(setup, c, fixedpoint.encode(inputs[c], enc), randbytes) for c in setup.clients
    }
    agg = AggregatorSession(setup, fixedpoint.encode(inputs[AGG], enc))
    return Round(setup, inputs, clients, agg)


def messages(actions: list[Send]) -> dict[str, Any]:
    """A session's ``Send`` actions as {recipient: message}."""
    return {a.dst: a.message for a in actions}


def reply(actions: list[Send]) -> Any:
    """A client's one reply to the aggregator, or None once its round is over."""
    return actions[0].message if actions else None


def run_round(rnd: Round, *, sends: dict[str, int] | None = None, shuffle_seed: int | None = None) -> Round:
    """Drive the round to its end; client c in ``sends`` dies after sending sends[c] messages."""
    sends = sends or {}
    sent = dict.fromkeys(rnd.clients, 0)
    shuffler = random.Random(shuffle_seed)
    outbox: dict[str, Any] = {c: reply(s.start()) for c, s in rnd.clients.items()}
    rnd.dead.update(c for c in rnd.clients if sends.get(c, 99) == 0)
    while rnd.agg.stage not in (Stage.DONE, Stage.FAILED):
        batch = [(c, m) for c, m in outbox.items() if sent[c] < sends.get(c, 99)]
        if shuffle_seed is not None:
            shuffler.shuffle(batch)
        for c, m in batch:
            rnd.upstream.append((c, m))
            rnd.agg.take(c, m)
            sent[c] += 1
            if sent[c] >= sends.get(c, 99):
                rnd.dead.add(c)
        outbox = {}
        for dst, msg in messages(rnd.agg.close()).items():
            rnd.downstream.append((dst, msg))
            if sent[dst] >= sends.get(dst, 99):
                continue  # dead
            try:
                answer = reply(rnd.clients[dst].receive(AGG, msg))
            except PartyDropped as exc:
                rnd.errors[dst] = exc
                continue
            if answer is None:
                rnd.finished.add(dst)
            else:
                outbox[dst] = answer
    return rnd


def plain_sum(rnd: Round, parties: Any) -> np.ndarray:
    return np.sum([rnd.inputs[p].astype(np.int64) for p in parties], axis=0)


def total(rnd: Round) -> np.ndarray:
    assert rnd.agg.total is not None
    return fixedpoint.decode(rnd.agg.total, rnd.setup.encoding)


def transcript(seed: int = 1) -> list[list[Any]]:
    """A seeded 4-client round with one dropout, as [direction, party, type, sha256 or sizes] rows.

    Everything but the AEAD ciphertexts is deterministic (keys, seeds and Shamir coefficients
    come from the seeded generator); ciphertexts carry fresh random nonces, so for them only
    the sizes are pinned.
    """
    import hashlib

    from fedcore import wire
    from fedcore.secagg.messages import ForwardedShares, SealedShares

    rnd = run_round(make_round(4, 6, seed=seed), sends={"c002": 2})
    rows: list[list[Any]] = []
    for direction, log in (("up", rnd.upstream), ("down", rnd.downstream)):
        for party, msg in log:
            if isinstance(msg, (SealedShares, ForwardedShares)):
                pinned: Any = sorted((k, len(v)) for k, v in msg.sealed.items())
            else:
                pinned = hashlib.sha256(wire.encode(msg)).hexdigest()
            rows.append([direction, party, type(msg).__name__, pinned])
    rows.append(["total", AGG, "sum", total(rnd).tolist()])
    return rows
