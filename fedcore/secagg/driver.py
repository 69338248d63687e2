"""``secure_sum``: the thin driver that runs a SecAgg+ session over a ``Context``.

Both roles are ``fedcore.session`` sessions (``AggregatorSession``, ``ClientSession``: the
stages, tags and waits are theirs); this module encodes the input, hands the session to
``drive`` and turns the end state into a result or an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedcore.context import Context, Traffic
from fedcore.crypto import fixedpoint
from fedcore.errors import ConfigError, PartyDropped
from fedcore.secagg.aggregator import AggregatorSession
from fedcore.secagg.client import CLIENT_WAIT_FACTOR, ClientSession
from fedcore.secagg.protocol import RoundSetup, Stage, make_setup
from fedcore.session import Session, drive

__all__ = ["CLIENT_WAIT_FACTOR", "RoundStats", "SecureSumResult", "secure_sum"]


@dataclass
class RoundStats:
    """What one party spent on a round.

    ``compute_s`` is the CPU time of the calling thread over the whole call (encoding, crypto,
    message coding; time spent waiting for messages or for the GIL is not counted), ``wall_s``
    the whole call, ``mask_bytes`` the keystream bytes expanded, ``agreements`` the X25519
    exchanges done; bytes are encoded message sizes.
    """

    compute_s: float = 0.0
    wall_s: float = 0.0
    bytes_sent: int = 0
    bytes_received: int = 0
    mask_bytes: int = 0
    agreements: int = 0


@dataclass(frozen=True)
class SecureSumResult:
    """The outcome at one party.

    Attributes:
        total: the sum (float64 for float inputs, int64 for integers, in the input's shape) at the
            aggregator, or at everyone with reveal="all"; otherwise None.
        included: the parties whose inputs the sum contains, the aggregator first.
        stats: this party's costs.
    """

    total: np.ndarray | None
    included: tuple[str, ...]
    stats: RoundStats = field(default_factory=RoundStats, compare=False)


def secure_sum(
    ctx: Context,
    vector: Any,
    *,
    aggregator: str,
    parties: Sequence[str] | None = None,
    threshold: int | None = None,
    graph: str = "auto",
    neighbours: int | None = None,
    value_range: float | None = None,
    bits: int | None = None,
    overflow: str = "refuse",
    reveal: str = "aggregator",
    timeout: float | None = None,
    round_id: str = "secagg",
) -> SecureSumResult:
    """Sum every party's ``vector`` so that the aggregator learns only the sum (SecAgg+).

    Every party of ``parties`` (default: all of the job's) calls this with a vector of the same
    shape. Defaults: the Shamir threshold is ceil(2h/3) of each client's h share holders (always
    a strict majority); the graph is complete for small rounds and a random k-regular graph,
    k = 2*ceil(2*log2 n), when n > 3k clients (``fedcore.secagg.protocol``); the ring is 32 bits for
    4-byte inputs and 64 bits otherwise (so every party must pass the same dtype width, or the
    same ``bits``: parties whose parameters differ are left out). Float inputs need
    ``value_range`` (the largest |x| any party may hold); values beyond it are refused
    (``overflow="refuse"``, before any message) or clipped ("clip"), never wrapped. Floats are
    encoded with resolution 2^-F, F = bits - 2 - ceil(log2 N) - ceil(log2 value_range) for N
    parties, so the total is within N * 2^-(F+1) of the exact sum (``fedcore.crypto.fixedpoint``).

    Args:
        ctx: this party's context.
        vector: this party's numbers (float or integer numpy array of any shape).
        aggregator: the party that learns the sum (it contributes its own vector too).
        parties: the parties of this round, in the same order everywhere.
        threshold: Shamir threshold per client neighbourhood.
        graph: "complete", "sparse" or "auto".
        neighbours: the graph's degree K (at least 2) instead of the default; fewer is faster and
            tolerates fewer dropouts per neighbourhood (``fedcore.secagg.protocol``, "Choosing the
            degree"). Every party passes the same.
        value_range: float inputs: max |x|; integer inputs: optional max |x|.
        bits: ring width, 32 or 64.
        overflow: "refuse" or "clip" for values beyond ``value_range``.
        reveal: "aggregator" or "all" (the sum is sent back to every included client).
        timeout: seconds the aggregator waits for each stage (default: the context's).
        round_id: distinguishes rounds of one job; every party passes the same.

    Raises:
        PartyDropped: too many parties dropped (``lost`` says how many), the aggregator dropped,
            or this party was left out of the round.
        ConfigError: inconsistent parameters. ValueError: input out of range with "refuse".
    """
    start, cpu_start = time.perf_counter(), time.thread_time()
    x = np.asarray(vector)
    members = tuple(ctx.parties if parties is None else parties)
    if ctx.party not in members:
        raise ConfigError(f"{ctx.party} calls secure_sum but is not one of its parties")
    setup, words = _prepare(
        ctx,
        x,
        members,
        aggregator,
        threshold,
        graph,
        value_range,
        bits,
        overflow,
        reveal,
        round_id,
        neighbours,
    )
    timeout_s = ctx.timeout_s if timeout is None else float(timeout)
    if ctx.party == aggregator:
        result = _run_aggregator(ctx, setup, words, timeout_s)
    else:
        result = _run_client(ctx, setup, words, timeout_s)
    result.stats.wall_s = time.perf_counter() - start
    result.stats.compute_s = time.thread_time() - cpu_start
    if result.total is not None:
        total = fixedpoint.decode(result.total, setup.encoding).reshape(x.shape)
        return SecureSumResult(total, result.included, result.stats)
    return result


def _prepare(
    ctx: Context,
    x: np.ndarray,
    members: tuple[str, ...],
    aggregator: str,
    threshold: int | None,
    graph: str,
    value_range: float | None,
    bits: int | None,
    overflow: str,
    reveal: str,
    round_id: str,
    neighbours: int | None = None,
) -> tuple[RoundSetup, np.ndarray]:
    if x.dtype.kind == "f":
        kind = "float"
    elif x.dtype.kind in "iub":
        kind = "int"
    else:
        raise TypeError(f"secure_sum takes a float or integer array, got {x.dtype}")
    ring_bits = fixedpoint.default_bits(x.dtype) if bits is None else bits
    enc = fixedpoint.plan(kind, len(members), value_range=value_range, bits=ring_bits)
    words = fixedpoint.encode(x, enc, overflow)  # refuses out-of-range input before any message
    setup = make_setup(
        job=ctx.job_id,
        round_id=round_id,
        seed=ctx.seed,
        aggregator=aggregator,
        parties=members,
        dim=words.size,
        encoding=enc,
        threshold=threshold,
        graph=graph,
        reveal=reveal,
        neighbours=neighbours,
    )
    return setup, words


def _reporter(ctx: Context, session: AggregatorSession | ClientSession) -> Callable[[Session], None]:
    """Before each wait: the stage this party is in, so an abort names it."""

    def report(_: Session) -> None:
        if session.stage is not None:
            ctx.progress(step=f"secagg:{session.stage.name.lower()}")

    return report


def _run_aggregator(ctx: Context, setup: RoundSetup, words: np.ndarray, timeout_s: float) -> SecureSumResult:
    session = AggregatorSession(setup, words, timeout=timeout_s)
    # lossy: a client that is gone needs no answer
    traffic = drive(ctx, session, report=_reporter(ctx, session), lossy=True)
    stats = _stats(session, traffic)
    if session.stage is Stage.FAILED:
        raise PartyDropped(
            f"secure sum round {setup.round_id!r} failed: {session.failure}", lost=session.lost, step=ctx.step
        )
    return SecureSumResult(session.total, session.included, stats)


def _run_client(ctx: Context, setup: RoundSetup, words: np.ndarray, timeout_s: float) -> SecureSumResult:
    session = ClientSession(setup, ctx.party, words, timeout=timeout_s)
    try:
        traffic = drive(ctx, session, report=_reporter(ctx, session), lossy=True)
    except PartyDropped as exc:
        if session.stage is Stage.FAILED:
            raise  # the aggregator told us: the round failed or we were left out
        raise PartyDropped(
            f"secure sum round {setup.round_id!r}: the aggregator {setup.aggregator} dropped ({exc})",
            party=setup.aggregator,
            step=ctx.step,
        ) from None
    outcome = session.outcome
    if outcome is None:
        raise RuntimeError(f"secure sum round {setup.round_id!r} ended at {ctx.party} without an outcome")
    return SecureSumResult(outcome.total, outcome.included, _stats(session, traffic))


def _stats(session: AggregatorSession | ClientSession, traffic: Traffic) -> RoundStats:
    return RoundStats(
        bytes_sent=traffic.sent,
        bytes_received=traffic.received,
        mask_bytes=session.mask_bytes,
        agreements=session.agreements,
    )
