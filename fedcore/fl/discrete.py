"""Distributed discrete DP in the integer ring: the distributed Skellam mechanism.

Theory of operation (Agarwal, Kairouz and Liu 2021, "The Skellam Mechanism for Differentially
Private Federated Learning"; the discrete setting of Kairouz, Liu and Steinke 2021). Used by
``fedcore.fl.rounds`` when a job has both ``secure=true`` and DP. In round ``t`` with ``k``
picked parties, each party ``i``:

1. clips its delta to L2 norm ``C`` (client-level DP, as in ``fedcore.fl.dp``);
2. scales it by ``1/gamma`` and rounds every coordinate randomly and without bias to an
   integer; rounding moves each coordinate by less than 1, so the integer vector ``z_i`` has
   ``||z_i||_2 <= D2 = C/gamma + sqrt(d)`` and, being integer, ``||z_i||_1 <= D1 =
   min(D2^2, sqrt(d) D2)``, for every input (``d`` = number of parameters);
3. adds integer noise ``Sk(mu_i)`` (the difference of two Poisson(``mu_i``) draws) to every
   coordinate, with ``mu_i = sigma^2 D2^2 / (2k)``, and gives the result to the secure sum,
   which adds the ``k`` vectors in Z_2^64.

Sums of Skellam variables are Skellam: ``j`` included parties give noise ``Sk(j mu_i)``, of
variance ``2 j mu_i`` (``= (sigma D2)^2`` when none dropped), exactly as a Gaussian mechanism
of multiplier ``sigma`` would. The aggregator decodes the sum as signed integers, multiplies it
by ``gamma`` and divides by a public count. It adds no noise of its own.

Accounting: the Skellam mechanism with total parameter ``mu`` and sensitivities ``D1, D2`` is
``(alpha, eps(alpha))``-RDP with ``eps(alpha) = alpha D2^2 / (4 mu) + min(((2 alpha - 1) D2^2
+ 6 D1) / (16 mu^2), 3 D1 / (4 mu))`` (Agarwal et al., Theorem 3.5; we round ``2 alpha - 1`` up to
``2 alpha``). Rounds compose by adding RDP curves over integer orders, converted to
``(epsilon, delta)`` by ``dp_accounting``. Each round is charged its realized ``mu`` (``j``
included parties), and no amplification by sampling is claimed: the reported epsilon holds
whatever the sample was, a conservative figure for sampled runs.

Modular clipping: the ring is 64 bits. A coordinate of the sum wraps only if its magnitude
reaches 2^63; ``gamma`` is chosen so ``C/gamma = 1000 sqrt(d)`` (the rounding term then adds
0.1% to ``D2``), so ``k`` parties contribute at most ``k (C/gamma + 1)`` and the noise has std
``sigma D2``: with 10^8 parameters and 10^4 parties a coordinate stays below 2^44 (sigma < 100),
and the secure sum refuses (never wraps) a party value beyond ``2^63 / k``. No random rotation
is needed at this width (Kairouz et al. rotate to survive rings of 2^16 to 2^20).

Who learns what. A party learns the global model of each round it is picked for (as in the
plain protocol). The aggregator learns only the noised integer sum of the included parties'
vectors and which parties are included (``fedcore.secagg``): never one party's clipped delta.
Guarantee: if every included party adds its noise, the released models are DP with the
reported epsilon towards everyone, the aggregator included. Parties that skip their noise or
collude remove their shares: with ``h`` honest parties of ``j`` the noise is ``Sk(h mu_i)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from dp_accounting.rdp import rdp_privacy_accountant

from fedcore.errors import ConfigError
from fedcore.fl.arrays import flatten
from fedcore.fl.dp import DPConfig, clip

ORDERS = tuple(range(2, 257))
SCALE_OVER_ROUNDING = 1000.0  # C / gamma in units of sqrt(d): rounding adds 1/1000 to D2


@dataclass(frozen=True)
class SkellamPlan:
    """The public constants of the mechanism for a model of ``dim`` parameters."""

    dim: int
    clip_norm: float
    noise_multiplier: float

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ConfigError("the distributed Skellam mechanism needs a model with parameters")

    @property
    def gamma(self) -> float:
        """The value of one integer step: ``C / (1000 sqrt(d))``."""
        return self.clip_norm / (SCALE_OVER_ROUNDING * math.sqrt(self.dim))

    @property
    def l2_sensitivity(self) -> float:
        """``D2 = C/gamma + sqrt(d)``, a bound on every party's rounded integer vector."""
        return self.clip_norm / self.gamma + math.sqrt(self.dim)

    @property
    def l1_sensitivity(self) -> float:
        """``D1 = min(D2^2, sqrt(d) D2)`` (integer vectors: |z| <= z^2 per coordinate)."""
        d2 = self.l2_sensitivity
        return min(d2 * d2, math.sqrt(self.dim) * d2)

    def party_mu(self, picked: int) -> float:
        """Each of ``picked`` parties' Skellam parameter, so they sum to ``sigma^2 D2^2 / 2``."""
        return self.noise_multiplier**2 * self.l2_sensitivity**2 / (2 * max(1, picked))


def plan_for(config: DPConfig, like: Sequence[np.ndarray]) -> SkellamPlan:
    """The plan of ``config`` for a model shaped like ``like``."""
    return SkellamPlan(int(sum(np.size(a) for a in like)), config.clip_norm, config.noise_multiplier)


def encode(
    delta: Sequence[np.ndarray], plan: SkellamPlan, picked: int, rng: np.random.Generator
) -> np.ndarray:
    """Steps 1-3 at a party: clip, scale, round randomly, add ``Sk(mu_i)``; int64 for the ring."""
    clipped, _ = clip(delta, plan.clip_norm)
    scaled = flatten(clipped) / plan.gamma
    low = np.floor(scaled)
    z = low + (rng.random(scaled.shape) < (scaled - low))
    mu = plan.party_mu(picked)
    noise = rng.poisson(mu, z.shape) - rng.poisson(mu, z.shape) if mu > 0 else 0
    return (z + noise).astype(np.int64)


def decode(total: np.ndarray, plan: SkellamPlan) -> np.ndarray:
    """The aggregator's float sum from the ring's signed integer sum."""
    return np.asarray(total, dtype=np.float64) * plan.gamma


def skellam_rdp(alpha: float, mu: float, d1: float, d2: float) -> float:
    """RDP of order ``alpha`` of the Skellam mechanism ``Sk(mu)`` (Agarwal et al. 2021, Thm 3.5)."""
    if mu <= 0:
        return math.inf
    correction = min((2 * alpha * d2 * d2 + 6 * d1) / (16 * mu * mu), 3 * d1 / (4 * mu))
    return alpha * d2 * d2 / (4 * mu) + correction


@dataclass
class SkellamLedger:
    """The privacy spent by distributed Skellam rounds: one (total mu, 1.0) pair per round.

    The pairs mirror ``PrivacyLedger``'s (multiplier, rate) so checkpoints store both alike.
    """

    delta: float
    plan: SkellamPlan
    rounds: list[tuple[float, float]] = field(default_factory=list)
    accountant: str = "skellam-rdp"

    def record(self, mu_total: float, sampling_rate: float = 1.0) -> float:
        """Charge one round of total noise ``mu_total``; return epsilon so far."""
        self.rounds.append((float(mu_total), 1.0))
        return self.epsilon()

    def epsilon(self) -> float:
        """Epsilon at ``delta`` of every recorded round (RDP composition over integer orders)."""
        if not self.rounds:
            return 0.0
        if any(mu <= 0 for mu, _ in self.rounds):
            return math.inf
        d1, d2 = self.plan.l1_sensitivity, self.plan.l2_sensitivity
        curve = [sum(skellam_rdp(a, mu, d1, d2) for mu, _ in self.rounds) for a in ORDERS]
        eps, _ = rdp_privacy_accountant.compute_epsilon(ORDERS, curve, self.delta)
        return float(eps)
