"""Client sampling: the draw itself, and rounds where only the picked parties train."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedcore import simulate
from fedcore.errors import ConfigError
from fedcore.fl import FedAvg
from fedcore.fl.dp import DPConfig
from fedcore.fl.rounds import TrainConfig, train
from fedcore.fl.sampling import Sampling
from fedcore.runtime import make_runtime

PARTIES = [f"p{i}" for i in range(100)]


@pytest.fixture(scope="module")
def runtime():
    rt = make_runtime("inline")
    yield rt
    rt.close()


def test_fixed_size_draw_is_seeded_clamped_and_ordered() -> None:
    s = Sampling(fraction=0.1)
    first = s.pick(3, 7, PARTIES)
    assert len(first) == 10 and first == s.pick(3, 7, PARTIES)
    assert first == sorted(first, key=PARTIES.index)
    assert first != s.pick(4, 7, PARTIES) and first != s.pick(3, 8, PARTIES)
    assert len(Sampling(fraction=0.01, min_parties=5).pick(1, 0, PARTIES)) == 5
    assert len(Sampling(fraction=0.5, max_parties=7).pick(1, 0, PARTIES)) == 7
    assert Sampling().pick(1, 0, PARTIES) == PARTIES


def test_poisson_draw_has_rate_fraction() -> None:
    s = Sampling(fraction=0.1, poisson=True)
    sizes = [len(s.pick(r, 0, PARTIES)) for r in range(1, 401)]
    # 40,000 Bernoulli(0.1) draws: mean 10 per round, std of the mean 0.015
    assert abs(np.mean(sizes) - 10) < 0.1 and len(set(sizes)) > 5 and s.rate == 0.1


def test_bad_sampling_settings_are_refused() -> None:
    for bad in ({"fraction": 0}, {"fraction": 1.5}, {"min_parties": 0}, {"min_parties": 3, "max_parties": 2}):
        with pytest.raises(ConfigError):
            Sampling(**bad)


def sampled_main(sampling, dp=None):
    def main(ctx, rounds: int = 6):
        i = ctx.parties.index(ctx.party)

        def fit(params, cfg):
            return [p + (i + 1) for p in params], 1

        def evaluate(params):
            return {"loss": float(params[0][0]), "accuracy": 0.5}

        config = TrainConfig(rounds=rounds, strategy=FedAvg(), sampling=sampling, dp=dp)
        return train(ctx, [np.zeros(2)], fit, evaluate, config)

    return main


def test_only_picked_parties_train_and_the_others_wait(runtime) -> None:
    sampling = Sampling(fraction=0.25)
    # a short receive timeout: a party left out for several rounds in a row must not time out
    out = simulate(sampled_main(sampling), parties=8, runtime=runtime, timeout_s=10).parties
    history = out["p0"]["history"]
    assert [h["parties"] for h in history] == [2] * 6 and all(h["dropped"] == [] for h in history)
    trained = {p: r.get("rounds", 0) for p, r in out.items() if p != "p0"}
    picked = [sampling.pick(r, 0, [f"p{i}" for i in range(8)]) for r in range(1, 7)]
    assert trained == {p: sum(p in s for s in picked) for p in trained}
    # each round's global model moves by the mean of exactly the picked parties' deltas
    expected = np.cumsum([np.mean([int(p[1:]) + 1 for p in s]) for s in picked])
    assert np.allclose([h["loss"] for h in history], expected)
    assert out["p0"]["sampling"] == "fixed" and out["p0"]["fraction"] == 0.25


def test_dp_runs_are_poisson_sampled_and_charged_at_that_rate(runtime) -> None:
    dp = DPConfig(noise_multiplier=1.0, clip_norm=1.0)
    out = simulate(sampled_main(Sampling(fraction=0.3), dp), parties=10, runtime=runtime, timeout_s=10)
    result = out.parties["p0"]
    assert result["sampling"] == "poisson" and result["accountant"] == "pld" and result["delta"] == 1e-5
    from fedcore.fl.dp import PrivacyLedger

    ledger = PrivacyLedger(1e-5)
    for _ in range(6):
        ledger.record(1.0, 0.3)
    assert math.isclose(result["epsilon"], ledger.epsilon(), rel_tol=1e-9)
    assert [h["epsilon"] for h in result["history"]] == sorted(h["epsilon"] for h in result["history"])
    sizes = [h["parties"] for h in result["history"]]
    draws = [
        len(Sampling(fraction=0.3, poisson=True).pick(r, 0, [f"p{i}" for i in range(10)]))
        for r in range(1, 7)
    ]
    assert sizes == draws


def test_secure_sampled_rounds_average_exactly_the_picked_parties(runtime) -> None:
    def main(ctx, rounds: int = 3):
        i = ctx.parties.index(ctx.party)
        config = TrainConfig(rounds=rounds, strategy=FedAvg(), secure=True, sampling=Sampling(fraction=0.4))
        fit = lambda params, cfg: ([p + 0.1 * (i + 1) for p in params], 1)  # noqa: E731
        return train(ctx, [np.zeros(2)], fit, lambda params: {"loss": float(params[0][0])}, config)

    out = simulate(main, parties=5, runtime=runtime, timeout_s=30).parties["p0"]
    picked = [Sampling(fraction=0.4).pick(r, 0, [f"p{i}" for i in range(5)]) for r in (1, 2, 3)]
    assert any("p0" not in s for s in picked)  # the coordinator sums a zero vector in those rounds
    expected = np.cumsum([np.mean([0.1 * (int(p[1:]) + 1) for p in s]) for s in picked])
    assert np.allclose([h["loss"] for h in out["history"]], expected, atol=1e-9)
    assert [h["parties"] for h in out["history"]] == [2, 2, 2]
