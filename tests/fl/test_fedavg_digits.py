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
