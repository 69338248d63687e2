"""Every strategy against a hand computation on tiny arrays, and the failure policy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedcore.errors import ConfigError, PartyDropped, ProtocolError
from fedcore.fl import (
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedMedian,
    FedProx,
    FedYogi,
    Krum,
    TrimmedMean,
    Update,
    make_strategy,
)
from fedcore.fl.strategies import krum_scores, weighted_mean

X = [np.array([1.0, 2.0])]
# weighted mean delta of these two: (1*[1, 0] + 3*[3, 4]) / 4 = [2.5, 3.0]
TWO = [Update("a", [np.array([1.0, 0.0])], 1), Update("b", [np.array([3.0, 4.0])], 3)]


def run(strategy, updates, params=X, state=None):
    state = strategy.init_state(params) if state is None else state
    return strategy.aggregate(1, params, updates, state)


def test_fedavg_weights_by_samples() -> None:
    assert np.allclose(run(FedAvg(), TWO).params[0], [3.5, 5.0])
    assert np.allclose(run(FedAvg(server_lr=0.5), TWO).params[0], [1 + 1.25, 2 + 1.5])


def test_weighted_mean_ignores_zero_sample_updates_and_needs_one() -> None:
    with_empty = [*TWO, Update("c", [np.array([100.0, 100.0])], 0)]
    assert np.allclose(weighted_mean(1, with_empty)[0], [2.5, 3.0])
    with pytest.raises(ProtocolError):
        weighted_mean(1, [Update("c", [np.array([1.0, 1.0])], 0)])


def test_fedprox_aggregates_like_fedavg_and_sends_mu() -> None:
    assert np.allclose(run(FedProx(mu=0.1), TWO).params[0], [3.5, 5.0])
    assert FedProx(mu=0.1).client_config(3) == {"mu": 0.1}
    assert FedAvg().client_config(3) == {}


OPT = {"eta": 0.1, "beta1": 0.9, "beta2": 0.99, "tau": 0.5}  # v starts at tau^2 = 0.25; m = 0.1 * [2.5, 3]


def expected_x(v: list[float]) -> list[float]:
    m = [0.25, 0.3]
    return [x + 0.1 * mk / (math.sqrt(vk) + 0.5) for x, mk, vk in zip([1.0, 2.0], m, v, strict=True)]


def test_fedadam_hand_computed() -> None:
    # v = 0.99 * 0.25 + 0.01 * [6.25, 9]
    out = run(FedAdam(**OPT), TWO)
    assert np.allclose(out.state["v"][0], [0.31, 0.3375])
    assert np.allclose(out.state["m"][0], [0.25, 0.3])
    assert np.allclose(out.params[0], expected_x([0.31, 0.3375]))


def test_fedyogi_hand_computed() -> None:
    # v = 0.25 - 0.01 * [6.25, 9] * sign(0.25 - [6.25, 9]) = 0.25 + [0.0625, 0.09]
    out = run(FedYogi(**OPT), TWO)
    assert np.allclose(out.state["v"][0], [0.3125, 0.34])
    assert np.allclose(out.params[0], expected_x([0.3125, 0.34]))


def test_fedadagrad_hand_computed_and_state_carries_over() -> None:
    strategy = FedAdagrad(**OPT)
    first = run(strategy, TWO)  # v = 0.25 + [6.25, 9]
    assert np.allclose(first.params[0], expected_x([6.5, 9.25]))
    second = strategy.aggregate(2, first.params, TWO, first.state)
    # m = 0.9 * [0.25, 0.3] + 0.1 * [2.5, 3] = [0.475, 0.57]; v = [6.5, 9.25] + [6.25, 9]
    assert np.allclose(second.state["m"][0], [0.475, 0.57])
    assert np.allclose(second.state["v"][0], [12.75, 18.25])
    step = [0.1 * 0.475 / (math.sqrt(12.75) + 0.5), 0.1 * 0.57 / (math.sqrt(18.25) + 0.5)]
    assert np.allclose(second.params[0], first.params[0] + step)
    assert np.allclose(first.state["v"][0], [6.5, 9.25]), "aggregate must not mutate its input state"


THREE = [
    Update("a", [np.array([1.0, 10.0])], 1),
    Update("b", [np.array([2.0, -5.0])], 50),
    Update("c", [np.array([100.0, 0.0])], 1),
]


def test_fedmedian_is_unweighted_coordinate_median() -> None:
    assert np.allclose(run(FedMedian(), THREE).params[0], [1 + 2.0, 2 + 0.0])


def test_trimmed_mean_drops_extremes_per_coordinate() -> None:
    four = [*THREE, Update("d", [np.array([3.0, 7.0])], 1)]
    # coordinate 0: sorted [1, 2, 3, 100] -> mean(2, 3); coordinate 1: [-5, 0, 7, 10] -> mean(0, 7)
    assert np.allclose(run(TrimmedMean(beta=0.25), four).params[0], [1 + 2.5, 2 + 3.5])
    assert np.allclose(run(TrimmedMean(beta=0.0), four).params[0], [1 + 26.5, 2 + 3.0])
    with pytest.raises(ConfigError):
        TrimmedMean(beta=0.5)


KRUM = [Update(f"p{i}", [np.array([v])], 1) for i, v in enumerate([0.0, 1.0, 2.0, 3.5, 100.0])]


def test_krum_scores_and_choice() -> None:
    # f=1, n=5: each score sums the squared distances to the 2 nearest others
    stacked = np.array([[0.0], [1.0], [2.0], [3.5], [100.0]])
    assert np.allclose(krum_scores(stacked, 1), [1 + 4, 1 + 1, 1 + 2.25, 2.25 + 6.25, 96.5**2 + 98**2])
    assert np.allclose(run(Krum(f=1), KRUM, params=[np.array([10.0])]).params[0], [11.0])
    assert np.allclose(run(Krum(f=1, m=2), KRUM, params=[np.array([10.0])]).params[0], [11.5])


def test_krum_refuses_too_few_updates() -> None:
    with pytest.raises(PartyDropped, match="at least 5"):
        run(Krum(f=1), KRUM[:4], params=[np.array([0.0])])


def test_quorum_policy() -> None:
    strategy = FedAvg(min_parties=3)
    strategy.check_quorum(1, ["a", "b", "c"], ["a", "b", "c", "d"])
    with pytest.raises(PartyDropped) as caught:
        strategy.check_quorum(4, ["a", "b"], ["a", "b", "c", "d"])
    assert caught.value.lost == 2 and "c, d" in str(caught.value) and "round 4" in str(caught.value)
    with pytest.raises(ConfigError):
        FedAvg(min_parties=0)


def test_make_strategy_by_name() -> None:
    assert make_strategy("fedadam", eta=0.2) == FedAdam(eta=0.2)
    assert make_strategy("krum", f=2).f == 2
    with pytest.raises(ConfigError, match="unknown strategy"):
        make_strategy("fedsgdx")
    with pytest.raises(ConfigError):
        make_strategy("fedavg", beta=0.3)


def test_update_validates_samples() -> None:
    with pytest.raises(ValueError):
        Update("a", [np.zeros(1)], -1)
