"""``train`` and ``score``: run the vertical LR sessions over a ``Context``."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedcore.context import Context
from fedcore.errors import ConfigError, ProtocolError
from fedcore.session import Session, drive
from fedcore.vertical._protocol import GuestSession, HostSession, Training

SCHEMES = {"fedcore": "fedcore.he", "phe": "fedcore.bench._phe_baseline"}
TAG_TEST_SCORE = "vlr/test_score"


@dataclass(frozen=True)
class VerticalModel:
    """One party's share of a trained model: its role and its own weights (never sent)."""

    role: str
    weights: np.ndarray = field(repr=False)
    batches: int = 0


def make_plan(rows: int, *, epochs: int, batch_size: int, seed: int, lr: float, l2: float = 0.0) -> Training:
    """The shared schedule: per epoch a permutation of the aligned rows from the job seed, cut in batches."""
    if epochs < 0 or batch_size < 1 or not lr > 0:
        raise ConfigError(f"need epochs >= 0, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
    rng = np.random.default_rng([seed, rows, 0x5F1])
    batches: list[np.ndarray] = []
    for _ in range(epochs):
        order = rng.permutation(rows)
        batches += [order[i : i + batch_size] for i in range(0, rows, batch_size)]
    return Training(tuple(batches), float(lr), float(l2))


def roles(
    ctx: Context, guest: str | None, hosts: Sequence[str] | None, protocol: str = "vertical LR"
) -> tuple[str, tuple[str, ...]]:
    """The guest (default: the first party) and the hosts (default: every other party)."""
    guest = guest or ctx.parties[0]
    chosen = tuple(hosts) if hosts is not None else tuple(p for p in ctx.parties if p != guest)
    if not chosen or guest in chosen or any(p not in ctx.parties for p in (guest, *chosen)):
        raise ConfigError(f"{protocol} needs a guest and >= 1 distinct hosts among {list(ctx.parties)}")
    if ctx.party != guest and ctx.party not in chosen:
        raise ConfigError(f"{ctx.party} is neither the guest {guest} nor a host {list(chosen)}")
    return guest, chosen


def train(
    ctx: Context,
    features: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    guest: str | None = None,
    hosts: Sequence[str] | None = None,
    epochs: int = 3,
    lr: float = 0.1,
    batch_size: int = 64,
    l2: float = 0.0,
    key_bits: int = 1024,
    scheme: str = "fedcore",
    keys: tuple[Any, Any] | None = None,
    timeout: float | None = None,
) -> VerticalModel:
    """Train hetero logistic regression on aligned rows (see ``fedcore.vertical``).

    Args:
        ctx: this party's context.
        features: this party's columns for the aligned rows, in the aligned order (the guest
            includes a bias column if it wants an intercept).
        labels: the guest's labels in {0, 1}; hosts pass None.
        guest: the label holder (default: the first party); hosts: default all others.
        epochs, lr, batch_size, l2: the public training plan.
        key_bits: Paillier modulus size of every party's key (1024: fast, ~80-bit security;
            2048 for real data).
        scheme: "fedcore" (fedcore.he fast paths) or "phe" (per-element baseline).
        keys: this party's own (public, private) key pair of ``scheme``, to reuse one; by
            default a fresh pair of ``key_bits`` bits.
        timeout: per-receive deadline (default: the job's).

    Raises:
        ConfigError: bad roles or plan. ProtocolError: a peer broke the protocol.
    """
    guest, hosts = roles(ctx, guest, hosts)
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ConfigError(f"features must be a 2-D array, got shape {x.shape}")
    if (ctx.party == guest) != (labels is not None):
        raise ConfigError("the guest passes labels and the hosts do not")
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown HE scheme {scheme!r}: use one of {sorted(SCHEMES)}")
    plan = make_plan(len(x), epochs=epochs, batch_size=batch_size, seed=ctx.seed, lr=lr, l2=l2)
    keys = keys or importlib.import_module(SCHEMES[scheme]).generate_keypair(key_bits)
    session = _make_session(ctx, guest, hosts, x, labels, plan, keys)
    _drive(ctx, session, timeout)
    return VerticalModel("guest" if ctx.party == guest else "host", session.weights, len(plan.batches))


def _make_session(
    ctx: Context,
    guest: str,
    hosts: tuple[str, ...],
    x: np.ndarray,
    labels: np.ndarray | None,
    plan: Training,
    keys: tuple[Any, Any],
) -> GuestSession | HostSession:
    mask_rng = np.random.default_rng(int.from_bytes(os.urandom(32), "big"))
    if ctx.party != guest:
        return HostSession(ctx.party, guest, hosts, x, plan, keys, mask_rng, ctx.runtime)
    y = np.asarray(labels, dtype=np.float64)
    if y.shape != (len(x),) or not np.all((y == 0) | (y == 1)):
        raise ConfigError(f"labels must be {len(x)} values in {{0, 1}}")
    return GuestSession(ctx.party, hosts, x, y, plan, keys, mask_rng, ctx.runtime)


def _drive(ctx: Context, session: GuestSession | HostSession, timeout: float | None) -> None:
    total = len(session.plan.batches)

    def report(_: Session) -> None:
        ctx.progress(step=f"vlr/{session.stage.value}", done=session.batch, total=total)

    drive(ctx, session, timeout=timeout, report=report)


def score(
    ctx: Context,
    model: VerticalModel,
    features: np.ndarray,
    *,
    guest: str | None = None,
    hosts: Sequence[str] | None = None,
    timeout: float | None = None,
) -> np.ndarray | None:
    """Probabilities for rows every party holds in the same order: the guest gets them, hosts None.

    Hosts send their partial scores X_h w_h for these rows to the guest in the clear.
    """
    guest, hosts = roles(ctx, guest, hosts)
    partial = np.asarray(features, dtype=np.float64) @ model.weights
    if ctx.party != guest:
        ctx.send(guest, TAG_TEST_SCORE, partial)
        return None
    total = partial.copy()
    for host, value in ctx.gather(TAG_TEST_SCORE, timeout, parties=hosts).items():
        if not isinstance(value, np.ndarray) or value.shape != partial.shape or value.dtype != np.float64:
            raise ProtocolError(f"vertical LR scores from {host}: expected {partial.shape[0]} float64 values")
        total += value
    probabilities: np.ndarray = 1.0 / (1.0 + np.exp(-total))
    return probabilities
