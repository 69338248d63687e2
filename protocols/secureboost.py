"""SecureBoost (vertical gradient-boosted trees with Paillier) on breast cancer: PSI, train, predict.

Rows are patients with ids ``patient-0000``..; each party holds all rows but ``drop`` of
them (chosen by its own ``ctx.rng``), so PSI (fedcore.psi) finds the rows all share. The
30 columns are split between the guest (the first party, which also holds the labels) and
``hosts`` hosts (default: every other party). Test rows are chosen by the shared job seed.

``mode=train`` (default) trains fedcore.vertical's SecureBoost (the guest's key, packed
encrypted g/h histograms; see its theory header), then predicts the test rows
federatedly: the guest returns {"accuracy", "auc", "samples", "trees", ...}, each host
{"samples", "splits"}. With ``model=NAME`` every party saves only its own part, as JSON,
to NAME.<party>.json in its own output folder of the job (``fedcore.vertical.model_path``).

``mode=predict model=<training job id>/NAME`` loads each party's part from its own output
folder of the training job (``ctx.output_path``) and predicts rows aligned by id:
``data=heldout`` (default) the test rows, or ``data=SOURCE`` a local data source of the
party (an .npz with ``id`` and ``x``, the guest's optionally ``y``). Each party walks its
own splits; only the guest learns the predictions, returned with the ids.

``key_bits`` 1024 (default) keeps the simulation fast and is about 80-bit security: fine
for a demonstration, not for real data -- pass 2048 there. ``scheme=plain`` switches
encryption OFF (for lossless checks in tests only).
"""

import numpy as np

from fedcore import Context
from fedcore.data import held_rows, test_rows, vertical
from fedcore.errors import ConfigError
from fedcore.psi import intersect
from fedcore.vertical import (
    BoostParams,
    load_model,
    model_path,
    predict_secureboost,
    save_model,
    train_secureboost,
)

ROWS = 569
PLAN_KEYS = (
    "trees",
    "max_depth",
    "learning_rate",
    "bins",
    "min_child_weight",
    "min_samples_leaf",
    "l2",
    "subsample",
    "colsample",
    "validation_fraction",
    "patience",
)


def _plan(params: dict) -> BoostParams:
    kinds = {"trees": int, "max_depth": int, "bins": int, "min_samples_leaf": int, "patience": int}
    values = {k: kinds.get(k, float)(params[k]) for k in PLAN_KEYS if k in params}
    return BoostParams(objective="binary", **values)


def _metrics(y: np.ndarray, probabilities: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    out = {"accuracy": float(np.mean((probabilities >= 0.5) == y))}
    if len(set(y.tolist())) == 2:
        out["auc"] = float(roc_auc_score(y, probabilities))
    return out


def _local_rows(
    ctx: Context,
    data: str,
    held: np.ndarray,
    x_all: np.ndarray,
    columns: np.ndarray,
    seed: int,
    fraction: float,
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """(ids, this party's columns, labels or None) of the rows to predict."""
    if data == "heldout":
        rows = np.intersect1d(held, test_rows(seed, ROWS, fraction))
        from sklearn.datasets import load_breast_cancer

        y_all = load_breast_cancer(return_X_y=True)[1]
        return [f"patient-{i:04d}" for i in rows], x_all[rows][:, columns], y_all[rows]
    table = ctx.data(data)
    if "id" not in table or "x" not in table:
        raise ConfigError(f"data source {data!r} must hold 'id' and 'x' arrays")
    return [str(i) for i in table["id"].tolist()], np.asarray(table["x"], dtype=np.float64), table.get("y")


def main(
    ctx: Context,
    mode: str = "train",
    model: str = "",
    data: str = "heldout",
    hosts: int = 0,
    drop: int = 5,
    test_fraction: float = 0.2,
    key_bits: int = 1024,
    scheme: str = "paillier",
    **plan: float,
) -> dict:
    from sklearn.datasets import load_breast_cancer

    unknown = set(plan) - set(PLAN_KEYS)
    if unknown:
        raise ConfigError(f"unknown parameters {sorted(unknown)}; the plan takes {list(PLAN_KEYS)}")
    if mode not in ("train", "predict"):
        raise ConfigError(f"mode must be 'train' or 'predict', got {mode!r}")
    n_hosts = int(hosts) or len(ctx.parties) - 1
    if not 1 <= n_hosts <= len(ctx.parties) - 1:
        raise ConfigError(
            f"hosts must be 1..{len(ctx.parties) - 1} for {len(ctx.parties)} parties, got {hosts}"
        )
    roles = ctx.parties[: 1 + n_hosts]
    if ctx.party not in roles:
        return {"samples": 0, "role": "idle"}
    x_all, y_all = load_breast_cancer(return_X_y=True)
    columns = vertical(x_all.shape[1], len(roles))[roles.index(ctx.party)]
    held = held_rows(ctx.rng, len(x_all), int(drop))
    guest, host_names = roles[0], roles[1:]
    if mode == "predict":
        if not model:
            raise ConfigError("mode=predict needs model=NAME (the name the training job saved)")
        part = load_model(model_path(ctx, str(model)))
        ids, x, y = _local_rows(ctx, str(data), held, x_all, columns, ctx.seed, float(test_fraction))
        return _predict(ctx, part, ids, x, y, roles)
    ctx.progress(step="psi")
    positions = intersect(ctx, [f"patient-{i:04d}" for i in held], parties=roles, return_positions=True)
    aligned = held[np.asarray(positions, dtype=np.int64)]
    is_test = np.isin(aligned, test_rows(ctx.seed, len(x_all), float(test_fraction)))
    train_rows, eval_rows = aligned[~is_test], aligned[is_test]
    ctx.progress(step="train")
    part = train_secureboost(
        ctx,
        x_all[train_rows][:, columns],
        y_all[train_rows] if ctx.party == guest else None,
        params=_plan(plan),
        guest=guest,
        hosts=host_names,
        key_bits=int(key_bits),
        scheme=str(scheme),
    )
    result: dict = {"samples": len(train_rows), "aligned": len(aligned)}
    if model:
        result["model_file"] = str(save_model(part, model_path(ctx, str(model))))
    ctx.progress(step="predict")
    probabilities = predict_secureboost(ctx, part, x_all[eval_rows][:, columns])
    if probabilities is None:
        return {**result, "splits": len(part.splits)}
    return {
        **result,
        **_metrics(y_all[eval_rows], probabilities),
        "trees": len(part.trees),
        "test_samples": len(eval_rows),
    }


def _predict(ctx: Context, part, ids: list[str], x: np.ndarray, y, roles: tuple[str, ...]) -> dict:
    ctx.progress(step="psi")
    positions = np.asarray(intersect(ctx, ids, parties=roles, return_positions=True), dtype=np.int64)
    ctx.progress(step="predict")
    probabilities = predict_secureboost(ctx, part, x[positions])
    if probabilities is None:
        return {"rows": len(positions)}
    out = {"rows": len(positions), "ids": [ids[i] for i in positions], "predictions": probabilities.tolist()}
    if y is not None:
        out.update(_metrics(np.asarray(y)[positions], probabilities))
    return out
