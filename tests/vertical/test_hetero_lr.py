"""protocols/hetero_lr.py end to end (PSI + Paillier LR) against scikit-learn on the same split."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from fedcore import data
from fedcore.context import party_rng
from fedcore.runtime import make_runtime
from fedcore.sim import simulate

SCRIPT = Path(__file__).resolve().parents[2] / "protocols" / "hetero_lr.py"


def sklearn_baseline(seed: int, parties: int) -> tuple[float, int]:
    """Central LogisticRegression on the same aligned train rows, test rows and (all) features."""
    x, y = load_breast_cancer(return_X_y=True)
    held = set(range(len(x)))
    for i in range(parties):
        held &= set(data.held_rows(party_rng(seed, f"p{i}"), len(x)).tolist())
    rows = np.array(sorted(held))
    is_test = np.isin(rows, data.test_rows(seed, len(x)))
    train, test = rows[~is_test], rows[is_test]
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    model = LogisticRegression(max_iter=5000).fit((x[train] - mean) / std, y[train])
    return float(model.score((x[test] - mean) / std, y[test])), len(train)


@pytest.fixture(scope="module")
def runtime():
    rt = make_runtime("processes", workers=2)
    yield rt
    rt.close()


@pytest.mark.parametrize("parties", [2, 3])
def test_accuracy_within_002_of_sklearn(runtime, parties) -> None:
    result = simulate(SCRIPT, parties=parties, seed=0, runtime=runtime, timeout_s=120)
    assert not result.errors(), result.errors()
    baseline, train_rows = sklearn_baseline(0, parties)
    guest = result.parties["p0"]
    assert abs(guest["accuracy"] - baseline) <= 0.02, (guest["accuracy"], baseline)
    assert guest["auc"] > 0.97
    assert all(r["samples"] == train_rows for r in result.parties.values())
    assert guest["aligned"] < 569  # the parties dropped rows, so PSI mattered
    assert "accuracy" not in result.parties["p1"]


def test_extra_parties_stay_idle_and_bad_hosts_are_refused(runtime) -> None:
    result = simulate(SCRIPT, parties=3, params={"hosts": 1, "epochs": 1}, runtime=runtime)
    assert result.parties["p2"] == {"samples": 0, "role": "idle"}
    assert "accuracy" in result.parties["p0"]
    bad = simulate(SCRIPT, parties=2, params={"hosts": 2}, runtime=runtime)
    assert "hosts must be 1..1" in bad.parties["p0"]["error"]


def test_predict_mode_scores_held_out_rows_with_the_saved_parts(runtime, tmp_path) -> None:
    import json

    where = {"output_dir": tmp_path, "runtime": runtime, "seed": 0, "parties": 2}
    trained = simulate(SCRIPT, job_id="train", params={"epochs": 1, "model": "lr"}, **where)
    assert not trained.errors(), trained.errors()
    predicted = simulate(SCRIPT, job_id="predict", params={"mode": "predict", "model": "train/lr"}, **where)
    assert not predicted.errors(), predicted.errors()
    out = predicted.parties["p0"]
    x = load_breast_cancer(return_X_y=True)[0]
    rows = np.array([int(i.split("-")[1]) for i in out["ids"]])
    z = np.zeros(len(rows))
    for i, columns in enumerate(data.vertical(x.shape[1], 2)):
        part = json.loads((tmp_path / f"p{i}" / "train" / f"lr.p{i}.json").read_text())
        block = (x[rows][:, columns] - np.array(part["mean"])) / np.array(part["std"])
        if i == 0:
            block = np.hstack([block, np.ones((len(rows), 1))])
        z += block @ np.array(part["weights"])
    np.testing.assert_allclose(out["predictions"], 1 / (1 + np.exp(-z)), rtol=1e-9)
    assert out["auc"] > 0.95 and predicted.parties["p1"] == {"rows": len(rows)}
