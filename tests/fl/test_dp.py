"""Client-level DP: clipping bound, noise scale, and epsilon against dp_accounting itself."""

from __future__ import annotations

import itertools
import math

import dp_accounting
import numpy as np
import pytest
from dp_accounting import rdp

from fedcore.errors import ConfigError
from fedcore.fl import dp
from fedcore.fl.arrays import global_norm


def test_clip_bounds_the_global_norm_and_keeps_direction() -> None:
    delta = [np.array([3.0, 0.0]), np.array([[0.0, 4.0]])]  # norm 5
    clipped, norm = dp.clip(delta, 1.0)
    assert norm == 5.0
    assert math.isclose(global_norm(clipped), 1.0)
    assert np.allclose(clipped[0], [0.6, 0.0]) and np.allclose(clipped[1], [[0.0, 0.8]])
    small, _ = dp.clip([np.array([0.3, 0.4])], 1.0)
    assert np.allclose(small[0], [0.3, 0.4])
    zero, norm0 = dp.clip([np.zeros(3)], 1.0)
    assert norm0 == 0.0 and not zero[0].any()


def test_server_noise_std_is_sigma_times_clip() -> None:
    config = dp.DPConfig(noise_multiplier=1.3, clip_norm=0.5)
    noise = dp.gaussian_noise([np.zeros(200_000)], dp.server_noise_std(config), np.random.default_rng(1))[0]
    # std of a 200k-sample estimate is within ~0.5% of the truth with overwhelming probability
    assert abs(noise.std() / 0.65 - 1) < 0.01 and abs(noise.mean()) < 0.01


def test_party_noise_shares_sum_to_sigma_times_clip() -> None:
    config = dp.DPConfig(noise_multiplier=2.0, clip_norm=1.5, placement="party")
    rng = np.random.default_rng(2)
    std = dp.party_noise_std(config, 9)
    total = sum(dp.gaussian_noise([np.zeros(100_000)], std, rng)[0] for _ in range(9))
    assert abs(total.std() / 3.0 - 1) < 0.015
    assert dp.effective_multiplier(config, 9, 9) == 2.0
    assert math.isclose(dp.effective_multiplier(config, 4, 9), 2.0 * math.sqrt(4 / 9))
    server = dp.DPConfig(noise_multiplier=2.0)
    assert dp.effective_multiplier(server, 4, 9) == 2.0


def test_epsilon_grows_with_rounds_and_matches_the_accountant() -> None:
    ledger = dp.PrivacyLedger(delta=1e-5, accountant="rdp")
    epsilons = [ledger.record(1.1) for _ in range(5)]
    assert all(b > a for a, b in itertools.pairwise(epsilons))
    direct = rdp.RdpAccountant()
    direct.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(1.1), 5))
    assert math.isclose(epsilons[-1], direct.get_epsilon(1e-5), rel_tol=1e-12)


def test_mixed_rounds_and_sampling_compose_like_the_accountant() -> None:
    ledger = dp.PrivacyLedger(delta=1e-6, accountant="rdp")
    for sigma, q in [(1.0, 1.0), (1.0, 1.0), (0.8, 1.0), (1.2, 0.1)]:
        ledger.record(sigma, q)
    direct = rdp.RdpAccountant()
    for event in [
        dp_accounting.GaussianDpEvent(1.0),
        dp_accounting.GaussianDpEvent(1.0),
        dp_accounting.GaussianDpEvent(0.8),
        dp_accounting.PoissonSampledDpEvent(0.1, dp_accounting.GaussianDpEvent(1.2)),
    ]:
        direct.compose(event)
    assert math.isclose(ledger.epsilon(), direct.get_epsilon(1e-6), rel_tol=1e-9)


def test_no_noise_means_no_guarantee() -> None:
    ledger = dp.PrivacyLedger(delta=1e-5)
    assert ledger.epsilon() == 0.0
    assert ledger.record(0.0) == math.inf


def test_config_is_validated() -> None:
    for bad in (
        {"noise_multiplier": -1},
        {"noise_multiplier": 1, "clip_norm": 0},
        {"noise_multiplier": 1, "delta": 1.0},
        {"noise_multiplier": 1, "placement": "local"},
        {"noise_multiplier": 1, "accountant": "moments"},
    ):
        with pytest.raises(ConfigError):
            dp.DPConfig(**bad)
