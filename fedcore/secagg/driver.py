"""``secure_sum``: the thin driver that runs a SecAgg+ session over a ``Context``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedcore import wire
from fedcore.context import Context
from fedcore.crypto import fixedpoint
from fedcore.errors import ConfigError, DecodeError, PartyDropped, ProtocolError, Timeout
from fedcore.secagg.aggregator import AggregatorSession
from fedcore.secagg.client import ClientSession
from fedcore.secagg.protocol import RoundSetup, Stage, make_setup

CLIENT_WAIT_FACTOR = 3  # a client waits this many stage timeouts for the aggregator's next message


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


def _tags(setup: RoundSetup) -> tuple[str, str]:
    return f"secagg/{setup.round_id}/up", f"secagg/{setup.round_id}/down"


def _send(ctx: Context, dst: str, tag: str, msg: Any, stats: RoundStats) -> None:
    payload = wire.encode(msg)
    stats.bytes_sent += len(payload)
    with contextlib.suppress(PartyDropped):  # a client that is gone needs no answer
        ctx.transport.send(dst, tag, payload)


def _collect(
    ctx: Context, tag: str, sources: Iterable[str], timeout_s: float, stats: RoundStats
) -> Iterable[tuple[str, Any]]:
    """Yield (sender, message) from each source until one shared deadline; skip dropped/late/garbled."""
    deadline = time.monotonic() + timeout_s
    for src in sources:
        try:
            payload = ctx.transport.recv(src, tag, max(0.0, deadline - time.monotonic()))
            stats.bytes_received += len(payload)
            yield src, wire.decode(payload)
        except (PartyDropped, Timeout, DecodeError):
            continue


def _run_aggregator(ctx: Context, setup: RoundSetup, words: np.ndarray, timeout_s: float) -> SecureSumResult:
    stats = RoundStats()
    up, down = _tags(setup)
    session = AggregatorSession(setup, words)
    while session.stage not in (Stage.DONE, Stage.FAILED):
        ctx.progress(step=f"secagg:{session.stage.name.lower()}")
        for sender, msg in _collect(ctx, up, session.awaiting(), timeout_s, stats):
            with contextlib.suppress(ProtocolError):  # a rule-breaking sender counts as dropped
                session.receive(sender, msg)
        out = session.close_stage()
        for dst, reply in out.items():
            _send(ctx, dst, down, reply, stats)
    stats.mask_bytes = session.mask_bytes
    stats.agreements = session.agreements
    if session.stage is Stage.FAILED:
        raise PartyDropped(
            f"secure sum round {setup.round_id!r} failed: {session.failure}", lost=session.lost, step=ctx.step
        )
    return SecureSumResult(session.total, session.included, stats)


def _run_client(ctx: Context, setup: RoundSetup, words: np.ndarray, timeout_s: float) -> SecureSumResult:
    stats = RoundStats()
    up, down = _tags(setup)
    session = ClientSession(setup, ctx.party, words)
    ctx.progress(step="secagg:advertise_keys")
    _send(ctx, setup.aggregator, up, session.start(), stats)
    while session.stage is not Stage.DONE:
        try:
            payload = ctx.transport.recv(setup.aggregator, down, CLIENT_WAIT_FACTOR * timeout_s)
        except PartyDropped as exc:
            raise PartyDropped(
                f"secure sum round {setup.round_id!r}: the aggregator {setup.aggregator} dropped ({exc})",
                party=setup.aggregator,
                step=ctx.step,
            ) from None
        stats.bytes_received += len(payload)
        reply = session.receive(wire.decode(payload))
        if reply is not None:
            ctx.progress(step=f"secagg:{session.stage.name.lower()}")
            _send(ctx, setup.aggregator, up, reply, stats)
    stats.mask_bytes = session.mask_bytes
    stats.agreements = session.agreements
    outcome = session.outcome
    assert outcome is not None  # DONE implies an outcome
    return SecureSumResult(outcome.total, outcome.included, stats)
