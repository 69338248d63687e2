"""The round loop over simulated parties with a deterministic fake trainer (exact numbers)."""

from __future__ import annotations

import numpy as np
import pytest

from fedcore import simulate
from fedcore.fl import FedAdam, FedAvg, FedMedian
from fedcore.fl.checkpoint import load_checkpoint
from fedcore.fl.dp import DPConfig
from fedcore.fl.messages import ClientUpdate
from fedcore.fl.rounds import GLOBAL_TAG, TrainConfig, train
from fedcore.runtime import make_runtime

# party i trains to params + (i + 1) on i + 1 samples: with 4 parties the weighted mean delta is
# (1*1 + 2*2 + 3*3 + 4*4) / (1 + 2 + 3 + 4) = 3 per coordinate per round.


@pytest.fixture(scope="module")
def runtime():
    rt = make_runtime("inline")
    yield rt
    rt.close()


def fake_main(**config):
    def main(ctx, rounds: int = 2):
        i = ctx.parties.index(ctx.party)

        def fit(params, cfg):
            return [p + (i + 1) for p in params], i + 1

        def evaluate(params):
            return {"loss": float(params[0].sum()), "accuracy": 0.5}

        options = {"strategy": FedAvg(), **config}
        return train(ctx, [np.zeros(3)], fit, evaluate, TrainConfig(rounds=rounds, **options))

    return main


def run(runtime, main, parties=4, **kw):
    return simulate(main, parties=parties, runtime=runtime, timeout_s=20, **kw).parties


def test_fedavg_rounds_exact(runtime) -> None:
    out = run(runtime, fake_main(), params={"rounds": 2})
    history = out["p0"]["history"]
    assert [h["loss"] for h in history] == [9.0, 18.0]  # params 3 then 6, three coordinates
    assert [h["parties"] for h in history] == [4, 4] and history[0]["dropped"] == []
    assert out["p0"]["samples"] == 1 and out["p3"] == {"samples": 4, "rounds": 2}


def test_secure_equals_plain(runtime) -> None:
    out = run(runtime, fake_main(secure=True), params={"rounds": 2})
    history = out["p0"]["history"]
    assert np.allclose([h["loss"] for h in history], [9.0, 18.0], atol=1e-9)
    assert [h["parties"] for h in history] == [4, 4]


def test_dropped_party_is_left_out_and_reported(runtime) -> None:
    out = run(runtime, fake_main(), params={"rounds": 3}, kill={"p2": 1})  # dies after its round-1 update
    history = out["p0"]["history"]
    assert [h["parties"] for h in history] == [4, 3, 3]
    assert history[1]["dropped"] == ["p2"] and history[2]["dropped"] == []
    # round 2 and 3 mean delta without p2: (1 + 4 + 16) / 7 = 3
    assert [h["loss"] for h in history] == [9.0, 18.0, 27.0]
    assert "error" in out["p2"] and out["p1"]["rounds"] == 3
    assert out["p0"]["lost"] == {"p2": 2}


def test_min_parties_policy_fails_the_job(runtime) -> None:
    out = run(runtime, fake_main(strategy=FedAvg(min_parties=4)), params={"rounds": 3}, kill={"p2": 1})
    assert "PartyDropped" in out["p0"]["error"] and "min_parties=4" in out["p0"]["error"]


def test_dp_clips_every_update_and_reports_epsilon(runtime) -> None:
    clipped = run(runtime, fake_main(dp=DPConfig(noise_multiplier=0.0, clip_norm=0.5)), params={"rounds": 1})
    # every delta (norm >= sqrt(3)) is clipped to 0.5 along [1, 1, 1]: the mean moves by 0.5 / sqrt(3) each
    assert np.isclose(clipped["p0"]["history"][0]["loss"], 3 * 0.5 / np.sqrt(3))
    noised = run(runtime, fake_main(dp=DPConfig(noise_multiplier=1.0, clip_norm=0.5)), params={"rounds": 3})
    eps = [h["epsilon"] for h in noised["p0"]["history"]]
    assert eps[0] < eps[1] < eps[2] and noised["p0"]["epsilon"] == eps[2]


def test_dp_with_secure_aggregation_adds_noise_at_the_parties(runtime) -> None:
    config = {"secure": True, "dp": DPConfig(noise_multiplier=0.0, clip_norm=0.5, placement="party")}
    out = run(runtime, fake_main(**config), params={"rounds": 1})
    assert np.isclose(out["p0"]["history"][0]["loss"], 3 * 0.5 / np.sqrt(3), atol=1e-9)


def test_resume_continues_exactly(runtime, tmp_path) -> None:
    adam = FedAdam(eta=0.1, tau=0.01)
    out = {"output_dir": tmp_path}  # checkpoints go to tmp_path/<party>/<job id>/<name>
    run(runtime, fake_main(strategy=adam, checkpoint="full"), params={"rounds": 3}, job_id="a", **out)
    run(runtime, fake_main(strategy=adam, checkpoint="part"), params={"rounds": 1}, job_id="b", **out)
    resumed = run(
        runtime,
        fake_main(strategy=adam, checkpoint="part", resume="b/part"),
        params={"rounds": 3},
        job_id="c",
        **out,
    )
    full, part = load_checkpoint(tmp_path / "p0/a/full"), load_checkpoint(tmp_path / "p0/c/part")
    assert full.round == part.round == 3
    assert np.array_equal(full.params[0], part.params[0])
    assert all(np.array_equal(full.state[k][0], part.state[k][0]) for k in ("m", "v"))
    assert [h["round"] for h in resumed["p0"]["history"]] == [1, 2, 3]


def test_checkpoint_paths_outside_the_party_folder_are_refused(runtime, tmp_path) -> None:
    outside = tmp_path / "outside"
    for config in ({"checkpoint": str(outside)}, {"checkpoint": "../x"}, {"resume": str(outside)}):
        out = run(runtime, fake_main(**config), params={"rounds": 1}, output_dir=tmp_path / "o")
        assert "PolicyRefused" in out["p0"]["error"], config
    assert not outside.exists()


def test_each_round_reports_its_metrics_to_the_context(runtime) -> None:
    seen: list[tuple[str, int, dict]] = []

    def main(ctx, rounds: int = 2):
        ctx._metrics_sink = lambda rnd, values: seen.append((ctx.party, rnd, values))
        return fake_main()(ctx, rounds)

    run(runtime, main, params={"rounds": 2})
    coordinator = [(rnd, v) for party, rnd, v in seen if party == "p0"]
    assert [rnd for rnd, _ in coordinator] == [1, 2]
    assert [v["loss"] for _, v in coordinator] == [9.0, 18.0] and coordinator[0][1]["parties"] == 4
    assert all(party == "p0" for party, _, _ in seen)


def test_malformed_updates_are_rejected_not_fatal(runtime) -> None:
    def main(ctx):
        if ctx.party in ("p1", "p3"):
            message = ctx.recv("p0", GLOBAL_TAG)
            if ctx.party == "p1":
                ctx.send("p0", f"fl/update/{message.round}", ClientUpdate(message.round, (np.zeros(5),), 1))
            else:
                ctx.transport.send("p0", f"fl/update/{message.round}", b"\xc1 not a fedcore encoding")
            return {}
        return fake_main(strategy=FedMedian())(ctx, rounds=1)

    out = run(runtime, main, parties=4)
    entry = out["p0"]["history"][0]
    assert entry["parties"] == 2 and entry["dropped"] == ["p1", "p3"]
    assert "wrong shape" in entry["rejected"]["p1"] and "p3" in entry["rejected"]
    assert entry["loss"] == 3 * 2.0  # median of deltas 1 (p0) and 3 (p2)


def test_messages_validate_what_they_decode() -> None:
    from fedcore import wire
    from fedcore.errors import DecodeError
    from fedcore.fl.messages import RoundStart, Stop

    start = RoundStart(2, (np.ones(3),), ("p0", "p1"), {"mu": 0.1})
    back = wire.decode(wire.encode(start))
    assert back.round == 2 and back.parties == ("p0", "p1") and np.array_equal(back.params[0], np.ones(3))
    assert wire.decode(wire.encode(Stop())) == Stop()
    # the constructors are the decoders' validation (the codec turns their errors into DecodeError)
    for bad in (
        lambda: RoundStart(0, (np.ones(1),), ("p0",)),
        lambda: RoundStart(1, [[1.0]], ("p0",)),
        lambda: RoundStart(1, (), ("p0",), {"f": object()}),
        lambda: ClientUpdate(1, (np.array(["a"]),), 1),
        lambda: ClientUpdate(1, (), -1),
    ):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(DecodeError):
        wire.decode(b"\xc1 not a fedcore encoding")


def test_secure_and_dp_need_a_weighted_strategy() -> None:
    from fedcore.errors import ConfigError

    with pytest.raises(ConfigError, match="weighted"):
        TrainConfig(rounds=1, strategy=FedMedian(), secure=True)


def test_robust_strategies_ignore_one_byzantine_party(runtime) -> None:
    from fedcore.fl import Krum, TrimmedMean

    def main(ctx, strategy):
        def fit(params, cfg):
            return [p + (1e6 if ctx.party == "p4" else 1.0) for p in params], 10

        return train(ctx, [np.zeros(2)], fit, lambda p: {"loss": float(p[0].sum())}, TrainConfig(1, strategy))

    for strategy, expected in [
        (FedMedian(), 2.0),
        (Krum(f=1), 2.0),
        (TrimmedMean(beta=0.2), 2.0),
        (FedAvg(), None),
    ]:
        out = simulate(main, parties=5, params={"strategy": strategy}, runtime=runtime, timeout_s=20).parties
        loss = out["p0"]["history"][0]["loss"]
        assert loss == expected if expected is not None else loss > 1e5
