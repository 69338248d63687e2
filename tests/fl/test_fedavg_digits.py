"""End to end: protocols/fedavg_digits.py in simulation reaches a sane accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedcore import simulate
from fedcore.runtime import make_runtime

SCRIPT = Path(__file__).parents[2] / "protocols" / "fedavg_digits.py"


@pytest.fixture(scope="module")
def runtime():
    rt = make_runtime("inline")
    yield rt
    rt.close()


def test_fedavg_digits_learns(runtime, tmp_path) -> None:
    params = {"rounds": 4, "checkpoint": "ckpt"}
    where = {"output_dir": tmp_path, "runtime": runtime}
    out = simulate(SCRIPT, parties=3, params=params, timeout_s=60, job_id="first", **where).parties
    coordinator = out["p0"]
    assert [h["round"] for h in coordinator["history"]] == [1, 2, 3, 4]
    assert coordinator["accuracy"] > 0.85 and coordinator["history"][-1]["parties"] == 3
    # 80% of the 1797 digits are trained on; the rest is the test split
    assert sum(r["samples"] for r in out.values()) == 1438
    # only the coordinator holds the model, and it writes in its own output folder
    assert (tmp_path / "p0/first/ckpt/round-00004.npz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p0"]
    params = {"rounds": 5, "resume": "first/ckpt"}
    resumed = simulate(SCRIPT, parties=3, params=params, job_id="second", **where).parties
    assert [h["round"] for h in resumed["p0"]["history"]] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("param", ["checkpoint", "plot", "resume"])
def test_an_initiator_cannot_choose_where_the_coordinator_writes(runtime, tmp_path, param) -> None:
    target = tmp_path / "elsewhere" / "x"
    for value in (str(target), "../../elsewhere/x"):
        params = {"rounds": 1, param: value}
        result = simulate(SCRIPT, parties=2, params=params, runtime=runtime, output_dir=tmp_path / "out")
        error = result.outcomes["p0"]
        assert not error.ok and error.kind == "PolicyRefused" and "p0 refuses" in error.message
    assert not (tmp_path / "elsewhere").exists()


def test_fedavg_digits_secure_dirichlet_dp(runtime) -> None:
    params = {"rounds": 2, "partition": "dirichlet", "alpha": 0.5, "secure": True, "dp": 0.5, "clip": 2.0}
    out = simulate(SCRIPT, parties=3, params=params, runtime=runtime, timeout_s=60).parties
    history = out["p0"]["history"]
    assert len(history) == 2 and 0 < history[0]["epsilon"] < history[1]["epsilon"]
    assert out["p0"]["epsilon"] == history[1]["epsilon"]


def test_parties_can_train_on_their_own_data_files(runtime, tmp_path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "p1.npz", x=digits.data[:300] / 16.0, y=digits.target[:300])
    data = {
        "p0": {"digits": {"x": digits.data[300:500] / 16.0, "y": digits.target[300:500]}},
        "p1": {"digits": str(tmp_path / "p1.npz")},
    }
    params = {"rounds": 1, "data": "digits"}
    out = simulate(SCRIPT, parties=2, params=params, runtime=runtime, data=data, timeout_s=60).parties
    assert out["p0"]["samples"] == 200 and out["p1"]["samples"] == 300
    assert out["p0"]["accuracy"] > 0.5


def test_a_tenth_of_the_parties_per_round_learns_about_as_well_as_all(runtime) -> None:
    # the Done-when comparison at CI size (the README quotes the 100-party, 20-round figures)
    full = simulate(SCRIPT, parties=20, params={"rounds": 8}, runtime=runtime, timeout_s=60).parties["p0"]
    sampled = simulate(
        SCRIPT, parties=20, params={"rounds": 8, "fraction": 0.25}, runtime=runtime, timeout_s=60
    ).parties["p0"]
    assert [h["parties"] for h in sampled["history"]] == [5] * 8 and sampled["sampling"] == "fixed"
    assert full["accuracy"] > 0.9 and abs(sampled["accuracy"] - full["accuracy"]) < 0.02


def test_dp_with_fraction_is_poisson_sampled_and_accounted_by_pld(runtime) -> None:
    from fedcore.fl.dp import PrivacyLedger

    params = {"rounds": 3, "fraction": 0.2, "dp": 1.0}
    out = simulate(SCRIPT, parties=10, params=params, runtime=runtime, timeout_s=60).parties["p0"]
    ledger = PrivacyLedger(1e-5)
    expected = [ledger.record(1.0, 0.2) for _ in range(3)]
    assert out["accountant"] == "pld" and out["sampling"] == "poisson" and out["delta"] == 1e-5
    assert [h["epsilon"] for h in out["history"]] == expected and out["epsilon"] == expected[-1]
    assert 0 <= out["accuracy"] <= 1


def test_plot_is_titled_with_strategy_parties_and_rounds(runtime, tmp_path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    titles = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, path, **kw: titles.append(fig._suptitle.get_text()))
    params = {"rounds": 1, "plot": "history.png"}  # inside the coordinator's own output folder
    result = simulate(
        SCRIPT, parties=2, params=params, runtime=runtime, timeout_s=60, output_dir=tmp_path, job_id="j"
    )
    want = tmp_path / "p0" / "j" / "history.png"
    assert titles == ["fedavg, 2 parties, 1 rounds"] and result.parties["p0"]["plot"] == str(want)
