"""Aggregation strategies: pure functions of (round, global params, updates) -> new global params.

Theory of operation (after Flower's ``Strategy``: configure / aggregate with no I/O).
Each round the coordinator sends the global parameters ``x_t`` and ``strategy.client_config(t)``
to the parties; each party trains locally and answers with an ``Update``: its *delta*
``Δ_i = x_i - x_t`` and its sample count ``n_i``. The strategy turns the updates into
``x_{t+1}``. No strategy does any I/O, holds a clock or draws randomness, so every one is
tested against a hand computation without a network.

Strategies (all deltas are lists of arrays; "mean" is coordinate-wise):

- ``FedAvg`` (McMahan et al. 2017): ``x + Σ n_i Δ_i / Σ n_i``.
- ``FedProx`` (Li et al. 2020): FedAvg on the server; the proximal term ``mu/2 ||w - x_t||²``
  is added by each party's local training (``client_config`` carries ``mu``).
- ``FedAdagrad`` / ``FedYogi`` / ``FedAdam`` (Reddi et al. 2021, "Adaptive Federated
  Optimization", Algorithm 2): with the weighted mean delta ``Δ`` as pseudo-gradient,
  ``m = β1 m + (1-β1) Δ``; ``v`` is ``v + Δ²`` (Adagrad), ``v - (1-β2) Δ² sign(v - Δ²)``
  (Yogi) or ``β2 v + (1-β2) Δ²`` (Adam); ``x + η m / (sqrt(v) + τ)``. ``v`` starts at ``τ²``
  and ``m`` at 0, as in the paper (no bias correction).
- ``FedMedian`` (Yin et al. 2018): ``x + median_i Δ_i``, unweighted.
- ``TrimmedMean`` (Yin et al. 2018): per coordinate drop the ``floor(beta n)`` smallest and
  largest values, average the rest; unweighted.
- ``Krum`` (Blanchard et al. 2017): score each update by the summed squared distance to its
  ``n - f - 2`` nearest others; take the lowest score (or the mean of the ``m`` lowest:
  Multi-Krum). Needs ``n >= 2f + 3``.

Weighted strategies (``weighted = True``) split into ``weighted_mean`` and ``apply``, so the
round loop can replace the mean by a secure sum or a noised (DP) sum and still run the same
server step.

Failure policy: a round aggregates the updates that arrived. If fewer than ``min_parties``
arrived (``check_quorum``) the round fails with ``PartyDropped`` naming the lost parties and
the job stops; ``min_parties = number of parties`` makes any loss fatal. Updates with zero
samples count as answers but carry no weight and are left out of the robust statistics.
Krum also refuses a round with fewer than ``2f + 3`` such updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fedcore.errors import ConfigError, PartyDropped, ProtocolError
from fedcore.fl.arrays import Params, flatten, unflatten

State = dict[str, Params]


@dataclass(frozen=True)
class Update:
    """One party's answer to a round: its parameter delta and how many samples it trained on."""

    party: str
    delta: Params
    samples: int

    def __post_init__(self) -> None:
        if not isinstance(self.samples, int) or self.samples < 0:
            raise ValueError(f"samples of {self.party} must be a non-negative int, got {self.samples!r}")


@dataclass(frozen=True)
class Aggregate:
    """A strategy's result: the new global parameters and the server state to carry forward."""

    params: Params
    state: State = field(default_factory=dict)


@dataclass(frozen=True)
class Strategy:
    """Base of all strategies.

    Args:
        min_parties: fewest updates (with samples) a round may aggregate; fewer fails the round.
    """

    min_parties: int = 1
    name: ClassVar[str] = "strategy"
    weighted: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.min_parties < 1:
            raise ConfigError(f"min_parties must be at least 1, got {self.min_parties}")

    def client_config(self, rnd: int) -> dict[str, Any]:
        """Settings sent to every party with round ``rnd``'s parameters."""
        return {}

    def init_state(self, params: Params) -> State:
        """The server state before round 1 (empty for stateless strategies)."""
        return {}

    def check_quorum(self, rnd: int, arrived: Sequence[str], expected: Sequence[str]) -> None:
        """Apply the failure policy: raise ``PartyDropped`` if too few parties answered.

        Raises:
            PartyDropped: fewer than ``min_parties`` of ``expected`` are in ``arrived``.
        """
        lost = [p for p in expected if p not in set(arrived)]
        named = ", ".join(lost[:10]) or "none"
        if len(arrived) < self.min_parties:
            raise PartyDropped(
                f"round {rnd}: {len(arrived)} of {len(expected)} parties sent updates but the "
                f"{self.name} policy needs min_parties={self.min_parties}; lost: {named}",
                party=lost[0] if len(lost) == 1 else None,
                step=f"round {rnd}",
                lost=len(lost),
            )

    def aggregate(self, rnd: int, params: Params, updates: Sequence[Update], state: State) -> Aggregate:
        """Turn round ``rnd``'s updates into the next global parameters."""
        raise NotImplementedError


def _used(rnd: int, updates: Sequence[Update]) -> list[Update]:
    used = [u for u in updates if u.samples > 0]
    if not used:
        raise ProtocolError(f"round {rnd}: no update with samples to aggregate")
    return used


def weighted_mean(rnd: int, updates: Sequence[Update]) -> Params:
    """``Σ n_i Δ_i / Σ n_i`` over updates with samples (float64)."""
    used = _used(rnd, updates)
    total = float(sum(u.samples for u in used))
    means: Params = []
    for k in range(len(used[0].delta)):
        parts = [np.asarray(u.delta[k], dtype=np.float64) * (u.samples / total) for u in used]
        means.append(sum(parts[1:], parts[0]))  # summed in update order, as plain sum() does
    return means


@dataclass(frozen=True)
class WeightedStrategy(Strategy):
    """A strategy that needs only the sample-weighted mean delta (secure aggregation works)."""

    weighted: ClassVar[bool] = True

    def aggregate(self, rnd: int, params: Params, updates: Sequence[Update], state: State) -> Aggregate:
        return self.apply(rnd, params, weighted_mean(rnd, updates), state)

    def apply(self, rnd: int, params: Params, mean_delta: Params, state: State) -> Aggregate:
        """The server step from the mean delta (computed in the clear, securely, or with noise)."""
        raise NotImplementedError


@dataclass(frozen=True)
class FedAvg(WeightedStrategy):
    """Federated averaging; ``server_lr`` scales the mean delta (1.0 = plain FedAvg)."""

    server_lr: float = 1.0
    name: ClassVar[str] = "fedavg"

    def apply(self, rnd: int, params: Params, mean_delta: Params, state: State) -> Aggregate:
        new = [
            (np.asarray(x, np.float64) + self.server_lr * d).astype(np.asarray(x).dtype)
            for x, d in zip(params, mean_delta, strict=True)
        ]
        return Aggregate(new, state)


@dataclass(frozen=True)
class FedProx(FedAvg):
    """FedAvg whose parties add the proximal term ``mu/2 ||w - x_t||²`` to their local loss."""

    mu: float = 0.01
    name: ClassVar[str] = "fedprox"

    def client_config(self, rnd: int) -> dict[str, Any]:
        return {"mu": float(self.mu)}


@dataclass(frozen=True)
class FedOpt(WeightedStrategy):
    """Server optimiser of Reddi et al. 2021 (Algorithm 2); subclasses define the ``v`` update."""

    eta: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3

    def init_state(self, params: Params) -> State:
        return {
            "m": [np.zeros(np.shape(x)) for x in params],
            "v": [np.full(np.shape(x), self.tau**2) for x in params],
        }

    def second_moment(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def apply(self, rnd: int, params: Params, mean_delta: Params, state: State) -> Aggregate:
        state = state or self.init_state(params)
        m = [self.beta1 * m0 + (1 - self.beta1) * d for m0, d in zip(state["m"], mean_delta, strict=True)]
        v = [self.second_moment(v0, np.square(d)) for v0, d in zip(state["v"], mean_delta, strict=True)]
        new = [
            (np.asarray(x, np.float64) + self.eta * mk / (np.sqrt(vk) + self.tau)).astype(np.asarray(x).dtype)
            for x, mk, vk in zip(params, m, v, strict=True)
        ]
        return Aggregate(new, {"m": m, "v": v})


@dataclass(frozen=True)
class FedAdagrad(FedOpt):
    """``v = v + Δ²``."""

    name: ClassVar[str] = "fedadagrad"

    def second_moment(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        total: np.ndarray = v + d2
        return total


@dataclass(frozen=True)
class FedYogi(FedOpt):
    """``v = v - (1-β2) Δ² sign(v - Δ²)``."""

    name: ClassVar[str] = "fedyogi"

    def second_moment(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        moment: np.ndarray = v - (1 - self.beta2) * d2 * np.sign(v - d2)
        return moment


@dataclass(frozen=True)
class FedAdam(FedOpt):
    """``v = β2 v + (1-β2) Δ²``."""

    name: ClassVar[str] = "fedadam"

    def second_moment(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        return self.beta2 * v + (1 - self.beta2) * d2


def _stack(rnd: int, updates: Sequence[Update]) -> tuple[np.ndarray, list[Update]]:
    used = _used(rnd, updates)
    return np.stack([flatten(u.delta) for u in used]), used


def _step(params: Params, delta_vector: np.ndarray) -> Params:
    deltas = unflatten(delta_vector, [np.zeros(np.shape(x)) for x in params])
    return [
        (np.asarray(x, np.float64) + d).astype(np.asarray(x).dtype)
        for x, d in zip(params, deltas, strict=True)
    ]


@dataclass(frozen=True)
class FedMedian(Strategy):
    """Coordinate-wise median of the deltas (robust to a minority of outliers)."""

    name: ClassVar[str] = "fedmedian"

    def aggregate(self, rnd: int, params: Params, updates: Sequence[Update], state: State) -> Aggregate:
        stacked, _ = _stack(rnd, updates)
        return Aggregate(_step(params, np.median(stacked, axis=0)), state)


@dataclass(frozen=True)
class TrimmedMean(Strategy):
    """Coordinate-wise mean after dropping the ``floor(beta n)`` lowest and highest values."""

    beta: float = 0.1
    name: ClassVar[str] = "trimmed_mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.beta < 0.5:
            raise ConfigError(f"trimmed mean beta must be in [0, 0.5), got {self.beta}")

    def aggregate(self, rnd: int, params: Params, updates: Sequence[Update], state: State) -> Aggregate:
        stacked, _ = _stack(rnd, updates)
        k = int(np.floor(self.beta * stacked.shape[0]))
        ordered = np.sort(stacked, axis=0)
        kept = ordered[k : stacked.shape[0] - k]
        return Aggregate(_step(params, kept.mean(axis=0)), state)


@dataclass(frozen=True)
class Krum(Strategy):
    """(Multi-)Krum: the delta(s) closest to their ``n - f - 2`` nearest neighbours.

    Args:
        f: how many Byzantine parties to tolerate.
        m: how many best-scored deltas to average (1 = Krum).
    """

    f: int = 1
    m: int = 1
    name: ClassVar[str] = "krum"

    def aggregate(self, rnd: int, params: Params, updates: Sequence[Update], state: State) -> Aggregate:
        stacked, _ = _stack(rnd, updates)
        n = stacked.shape[0]
        if n < 2 * self.f + 3:
            raise PartyDropped(
                f"round {rnd}: Krum with f={self.f} needs at least {2 * self.f + 3} updates, got {n}",
                step=f"round {rnd}",
                lost=None,
            )
        scores = krum_scores(stacked, self.f)
        best = np.argsort(scores, kind="stable")[: max(1, min(self.m, n))]
        return Aggregate(_step(params, stacked[best].mean(axis=0)), state)


def krum_scores(stacked: np.ndarray, f: int) -> np.ndarray:
    """Krum score of each row: the sum of squared distances to its ``n - f - 2`` nearest rows."""
    sq = np.sum(stacked**2, axis=1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2 * stacked @ stacked.T, 0.0)
    n = stacked.shape[0]
    closest = n - f - 2
    scores = np.empty(n)
    for i in range(n):
        others = np.delete(dist[i], i)
        scores[i] = np.sum(np.sort(others)[:closest])
    return scores


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (FedAvg, FedProx, FedAdam, FedYogi, FedAdagrad, FedMedian, TrimmedMean, Krum)
}


def make_strategy(name: str, **options: Any) -> Strategy:
    """Build a strategy by name (``fedavg``, ``fedprox``, ``fedadam``, ...) with its options.

    Raises:
        ConfigError: unknown name or option.
    """
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ConfigError(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"strategy {name}: {exc}") from None
