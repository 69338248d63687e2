"""The default PLD accountant against computations that do not use dp_accounting.

Unsampled: T Gaussian rounds of multiplier sigma are one Gaussian mechanism of sensitivity
sqrt(T)/sigma, whose exact (epsilon, delta) curve is Balle and Wang 2018, Theorem 8. Sampled:
the privacy loss distribution of the Poisson-subsampled Gaussian is built here from its
definition (losses rounded up onto a grid, composed by FFT, both neighbouring directions).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from fedcore.fl import dp


def analytic_gaussian_epsilon(mu: float, delta: float) -> float:
    def excess(eps: float) -> float:
        return norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2) - delta

    return brentq(excess, 0.0, 500.0)


def _loss_pmf(loss: np.ndarray, weight: np.ndarray, step: float) -> tuple[np.ndarray, int]:
    bins = np.ceil(loss / step).astype(np.int64)  # rounding losses up: an upper bound on delta
    low = int(bins.min())
    return np.bincount(bins - low, weights=weight), low


def _delta_of(pmfs: tuple[np.ndarray, int], rounds: int, step: float, eps: float) -> float:
    pmf, low = pmfs
    size = rounds * (len(pmf) - 1) + 1
    composed = np.fft.irfft(np.fft.rfft(pmf, 2 * size) ** rounds, 2 * size)[:size].clip(min=0)
    losses = (np.arange(size) + rounds * low) * step
    above = losses > eps
    return float(np.sum(composed[above] * -np.expm1(eps - losses[above])))


def numeric_sampled_epsilon(sigma: float, q: float, rounds: int, delta: float, step: float = 2e-3) -> float:
    x = np.linspace(-14 * sigma, 1 + 14 * sigma, 400_001)
    dx = x[1] - x[0]
    ratio = np.log1p(q * np.expm1((2 * x - 1) / (2 * sigma**2)))  # log P/Q, P = (1-q)N(0) + qN(1)
    p_density = (1 - q) * norm.pdf(x, 0, sigma) + q * norm.pdf(x, 1, sigma)
    remove = _loss_pmf(ratio, p_density * dx, step)
    add = _loss_pmf(-ratio, norm.pdf(x, 0, sigma) * dx, step)

    def worst(eps: float) -> float:
        return max(_delta_of(remove, rounds, step, eps), _delta_of(add, rounds, step, eps)) - delta

    return brentq(worst, 0.0, 60.0, xtol=1e-4)


def test_pld_is_the_default_and_matches_the_exact_gaussian_value() -> None:
    ledger = dp.PrivacyLedger(delta=1e-5)
    assert ledger.accountant == "pld" and dp.DPConfig(1.0).accountant == "pld"
    per_round = [ledger.record(1.0) for _ in range(20)]
    exact = analytic_gaussian_epsilon(math.sqrt(20) / 1.0, 1e-5)
    assert abs(exact - 28.37) < 0.01  # the figure the issue quotes
    assert exact <= per_round[-1] <= exact * 1.001
    for t in (1, 5, 10):
        assert math.isclose(per_round[t - 1], analytic_gaussian_epsilon(math.sqrt(t), 1e-5), rel_tol=2e-3)


def test_rdp_is_looser_than_pld_for_the_same_rounds() -> None:
    pld_ledger, rdp_ledger = dp.PrivacyLedger(1e-5), dp.PrivacyLedger(1e-5, accountant="rdp")
    for _ in range(20):
        pld_ledger.record(1.0)
        rdp_ledger.record(1.0)
    assert abs(rdp_ledger.epsilon() - 30.13) < 0.01 and pld_ledger.epsilon() < rdp_ledger.epsilon() - 1.5


def test_poisson_sampled_rounds_match_an_independent_loss_distribution() -> None:
    ledger = dp.PrivacyLedger(delta=1e-5)
    for _ in range(20):
        eps = ledger.record(1.0, 0.1)
    independent = numeric_sampled_epsilon(1.0, 0.1, 20, 1e-5)
    assert math.isclose(eps, independent, rel_tol=0.01), (eps, independent)
    assert eps < 4.0  # sampling amplifies: the unsampled figure is 28.4


def test_resumed_ledger_replays_its_rounds() -> None:
    ledger = dp.PrivacyLedger(delta=1e-5)
    for _ in range(3):
        ledger.record(1.2, 0.5)
    again = dp.PrivacyLedger(delta=1e-5)
    again.rounds = list(ledger.rounds)
    assert math.isclose(again.epsilon(), ledger.epsilon(), rel_tol=1e-9)
    assert math.isclose(again.record(1.2, 0.5), ledger.record(1.2, 0.5), rel_tol=1e-9)
