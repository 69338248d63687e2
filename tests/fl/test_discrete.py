"""Distributed Skellam DP: the integer encoding, the noise, its accounting, and secure rounds."""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
from dp_accounting import rdp

from fedcore import simulate
from fedcore.fl import FedAvg, discrete
from fedcore.fl.dp import DPConfig
from fedcore.fl.rounds import TrainConfig, train
from fedcore.fl.sampling import Sampling
from fedcore.runtime import make_runtime


@pytest.fixture(scope="module")
def runtime():
    rt = make_runtime("inline")
    yield rt
    rt.close()


def test_rounding_is_unbiased_and_within_the_stated_sensitivity() -> None:
    plan = discrete.SkellamPlan(dim=50, clip_norm=1.0, noise_multiplier=0.0)
    rng = np.random.default_rng(0)
    delta = [rng.normal(size=50)]  # norm ~7: clipped to 1
    codes = np.array([discrete.encode(delta, plan, 1, rng) for _ in range(400)])
    assert codes.dtype == np.int64
    assert np.all(np.linalg.norm(codes, axis=1) <= plan.l2_sensitivity)
    clipped = delta[0] / np.linalg.norm(delta[0])
    assert np.allclose(discrete.decode(codes.mean(axis=0), plan), clipped, atol=3 * plan.gamma)


def test_noise_shares_sum_to_the_gaussian_variance() -> None:
    plan = discrete.SkellamPlan(dim=4000, clip_norm=1.0, noise_multiplier=1.5)
    rng = np.random.default_rng(1)
    zero = [np.zeros(4000)]
    total = sum(discrete.encode(zero, plan, 8, rng) for _ in range(8))
    # the sum of 8 shares is Sk(sigma^2 D2^2 / 2): std sigma * D2
    assert abs(total.std() / (1.5 * plan.l2_sensitivity) - 1) < 0.04


def test_skellam_rdp_approaches_the_gaussian_and_is_never_below_it() -> None:
    plan = discrete.SkellamPlan(dim=2410, clip_norm=1.0, noise_multiplier=1.0)
    ledger = discrete.SkellamLedger(1e-5, plan)
    for _ in range(10):
        eps = ledger.record(plan.party_mu(1))
    gaussian = rdp.RdpAccountant(orders=list(discrete.ORDERS))
    gaussian.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(1.0), 10))
    assert gaussian.get_epsilon(1e-5) <= eps <= gaussian.get_epsilon(1e-5) * 1.001
    d2, d1 = plan.l2_sensitivity, plan.l1_sensitivity
    mu = plan.party_mu(1)
    assert discrete.skellam_rdp(3, mu, d1, d2) == 3 * d2**2 / (4 * mu) + min(
        (6 * d2**2 + 6 * d1) / (16 * mu**2), 3 * d1 / (4 * mu)
    )
    half = discrete.SkellamLedger(1e-5, plan)
    assert half.record(plan.party_mu(2)) > discrete.SkellamLedger(1e-5, plan).record(plan.party_mu(1))


def secure_main(sampling, sigma):
    def main(ctx, rounds: int = 2):
        i = ctx.parties.index(ctx.party)

        def fit(params, cfg):
            return [p + 0.1 * (i + 1) for p in params], 1

        def evaluate(params):
            return {"loss": float(params[0].mean()), "accuracy": 0.5}

        dp = DPConfig(noise_multiplier=sigma, clip_norm=10.0)
        config = TrainConfig(rounds=rounds, strategy=FedAvg(), secure=True, dp=dp, sampling=sampling)
        return train(ctx, [np.zeros(64)], fit, evaluate, config)

    return main


def test_secure_dp_round_sums_integers_in_the_ring(runtime) -> None:
    out = simulate(secure_main(Sampling(), 0.01), parties=4, runtime=runtime, timeout_s=30).parties
    result = out["p0"]
    assert result["accountant"] == "skellam-rdp" and result["delta"] == 1e-5
    # mean delta 0.25 per round; the noise on the mean has std 0.01 * 10 / 4 per coordinate
    assert [h["parties"] for h in result["history"]] == [4, 4]
    assert abs(result["history"][-1]["loss"] - 0.5) < 0.01
    plan = discrete.SkellamPlan(64, 10.0, 0.01)
    ledger = discrete.SkellamLedger(1e-5, plan)
    ledger.record(plan.party_mu(4) * 4)
    assert math.isclose(result["epsilon"], ledger.record(plan.party_mu(4) * 4), rel_tol=1e-12)


def test_secure_dp_with_poisson_sampling_and_an_unpicked_coordinator(runtime) -> None:
    out = simulate(secure_main(Sampling(fraction=0.5), 1.0), parties=6, runtime=runtime, timeout_s=30)
    assert not out.errors()
    result = out.parties["p0"]
    draws = [Sampling(fraction=0.5, poisson=True).pick(r, 0, [f"p{i}" for i in range(6)]) for r in (1, 2)]
    assert [h["parties"] for h in result["history"]] == [len(d) for d in draws]
    assert result["epsilon"] > 0 and result["sampling"] == "poisson"
