"""SecureBoost end to end in simulation: lossless against scikit-learn's HistGradientBoosting.

Real Paillier (1024-bit keys) on breast cancer with 2 and 3 parties: the test trains the
federated model through protocols/secureboost.py and a central HistGradientBoostingClassifier
with the same trees, depth, learning rate, bins and leaf constraints on the same aligned
rows, and compares test AUC; then mode=predict on the held-out rows must give the
predictions of the saved parts evaluated centrally.

The 100,000 x 50 make_classification check (10 guest / 40 host columns) runs the same
sessions through the PlainScheme seam (identity "encryption", documented in
fedcore.vertical._sb_crypto): Paillier at that size takes minutes per tree on 2 cores, far
past the suite's budget; its speed is measured by ``fedcore bench secureboost`` instead.
"""

import json

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from fedcore import data
from fedcore.context import party_rng
from fedcore.runtime import make_runtime
from fedcore.sim import simulate
from fedcore.vertical import BoostParams, model_path, predict_secureboost, train_secureboost

from .sb_central import SCRIPT, central_predictions

PLAN = {"trees": 8, "max_depth": 3, "learning_rate": 0.3, "bins": 32, "min_samples_leaf": 20}


def central(seed: int, parties: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Central HGB on the same aligned train rows; (test AUC, test rows, train rows)."""
    x, y = load_breast_cancer(return_X_y=True)
    held = set(range(len(x)))
    for i in range(parties):
        held &= set(data.held_rows(party_rng(seed, f"p{i}"), len(x)).tolist())
    rows = np.array(sorted(held))
    is_test = np.isin(rows, data.test_rows(seed, len(x)))
    model = HistGradientBoostingClassifier(
        max_iter=PLAN["trees"],
        max_depth=PLAN["max_depth"],
        learning_rate=PLAN["learning_rate"],
        max_bins=PLAN["bins"],
        min_samples_leaf=PLAN["min_samples_leaf"],
        max_leaf_nodes=None,
        early_stopping=False,
        l2_regularization=0.0,
    ).fit(x[rows[~is_test]], y[rows[~is_test]])
    test = rows[is_test]
    return float(roc_auc_score(y[test], model.predict_proba(x[test])[:, 1])), test, rows[~is_test]


@pytest.fixture(scope="module")
def runtime():
    rt = make_runtime("processes", workers=2)
    yield rt
    rt.close()


@pytest.mark.parametrize("parties", [2, 3])
def test_paillier_matches_central_hgb_and_predict_matches_saved_parts(runtime, parties, tmp_path) -> None:
    result = simulate(
        SCRIPT,
        parties=parties,
        seed=0,
        runtime=runtime,
        timeout_s=300,
        params={**PLAN, "model": "sb"},
        output_dir=tmp_path,
        job_id="train",
    )
    assert not result.errors(), result.errors()
    guest = result.parties["p0"]
    reference, test, train = central(0, parties)
    assert abs(guest["auc"] - reference) <= 0.005, (guest["auc"], reference)
    assert guest["accuracy"] > 0.9 and guest["samples"] == len(train) and guest["test_samples"] == len(test)
    assert all("auc" not in result.parties[f"p{i}"] for i in range(1, parties))
    host_doc = json.loads((tmp_path / "p1" / "train" / "sb.p1.json").read_text())
    assert host_doc["role"] == "host" and "trees" not in host_doc  # a host keeps only its thresholds
    assert all(
        "threshold" not in n
        for t in json.loads((tmp_path / "p0" / "train" / "sb.p0.json").read_text())["trees"]
        for n in t
        if n.get("owner") == "p1"
    )  # ...and the guest never has them

    predicted = simulate(
        SCRIPT,
        parties=parties,
        seed=0,
        runtime=runtime,
        timeout_s=120,
        params={"mode": "predict", "model": "train/sb"},  # the parts the training job saved
        output_dir=tmp_path,
        job_id="predict",
    )
    assert not predicted.errors(), predicted.errors()
    out = predicted.parties["p0"]
    rows = np.array([int(i.split("-")[1]) for i in out["ids"]])
    assert set(rows) <= set(test) and len(rows) > 0.9 * len(test)
    np.testing.assert_allclose(
        out["predictions"],
        central_predictions(lambda p: tmp_path / p / "train", "sb", [f"p{i}" for i in range(parties)], rows),
        atol=1e-12,
    )
    assert "predictions" not in predicted.parties["p1"]
    assert abs(out["auc"] - guest["auc"]) < 0.02


def _big_main(ctx, rows: int, scheme: str) -> dict:
    x, y = make_classification(n_samples=rows, n_features=50, n_informative=20, random_state=7)
    train, test = np.arange(int(rows * 0.8)), np.arange(int(rows * 0.8), rows)
    cols = np.arange(10) if ctx.party == "p0" else np.arange(10, 50)
    params = BoostParams(trees=10, max_depth=3, learning_rate=0.3, bins=32, min_samples_leaf=20)
    model = train_secureboost(
        ctx, x[train][:, cols], y[train] if ctx.party == "p0" else None, params=params, scheme=scheme
    )
    probabilities = predict_secureboost(ctx, model, x[test][:, cols])
    return {} if probabilities is None else {"auc": float(roc_auc_score(y[test], probabilities))}


def test_lossless_on_100k_rows_through_the_plain_seam() -> None:
    rows = 100_000
    result = simulate(_big_main, parties=2, seed=0, timeout_s=300, params={"rows": rows, "scheme": "plain"})
    assert not result.errors(), result.errors()
    x, y = make_classification(n_samples=rows, n_features=50, n_informative=20, random_state=7)
    cut = int(rows * 0.8)
    reference = HistGradientBoostingClassifier(
        max_iter=10,
        max_depth=3,
        learning_rate=0.3,
        max_bins=32,
        min_samples_leaf=20,
        max_leaf_nodes=None,
        early_stopping=False,
    )
    reference.fit(x[:cut], y[:cut])
    want = roc_auc_score(y[cut:], reference.predict_proba(x[cut:])[:, 1])
    assert abs(result.parties["p0"]["auc"] - want) <= 0.005, (result.parties["p0"]["auc"], want)


def test_model_names_cannot_leave_the_party_folder(tmp_path) -> None:
    from fedcore import Context
    from fedcore.errors import ConfigError, PolicyRefused
    from fedcore.runtime import make_runtime
    from fedcore.transport import LocalNetwork

    network = LocalNetwork(["alice", "bob"])
    ctx = Context(
        "bob",
        network.transport("bob"),
        make_runtime("inline"),
        job_id="j2",
        output_dir=tmp_path / "bob" / "j2",
        output_root=tmp_path / "bob",
    )
    assert model_path(ctx, "m.v1") == tmp_path / "bob" / "j2" / "m.v1.bob.json"
    assert model_path(ctx, "j1/m.v1") == tmp_path / "bob" / "j1" / "m.v1.bob.json"  # an earlier job's part
    for bad in ("", ".hidden", "a/b/", "j1/.."):  # not a plain name
        with pytest.raises(ConfigError, match="plain NAME"):
            model_path(ctx, bad)
    for outside in ("../x", "j1/../x", "../j1/x", "/etc/x"):  # out of bob's folders
        with pytest.raises(PolicyRefused, match="bob refuses the path"):
            model_path(ctx, outside)
