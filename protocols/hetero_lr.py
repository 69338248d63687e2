"""Hetero (vertical) logistic regression on the breast-cancer dataset: PSI, then Paillier LR.

Rows are patients with ids ``patient-0000``..; each party holds all rows but ``drop`` of
them (chosen by its own ``ctx.rng``), so PSI (fedcore.psi) finds the rows all share. The
30 columns are split between the guest (the first party, which also holds the labels) and
``hosts`` hosts (default: every other party). Test rows are chosen by the shared job seed;
each party standardises its own columns with its train statistics. Training runs
fedcore.vertical (guest-held key, masked gradients; see its theory header). The guest
returns {"accuracy", "auc", "samples", ...}; every host returns {"samples": rows trained on}.

With ``model=NAME`` every party saves only its own part (its weights and its columns'
standardisation), as JSON, to NAME.<party>.json in its own output folder of the job
(``fedcore.vertical.model_path``). ``mode=predict model=<training job id>/NAME`` (run with
the training job's seed) loads the parts from those folders and scores the held-out rows,
aligned by id with PSI: hosts send their partial scores, and only the guest learns the
probabilities, returned with the ids.

``key_bits`` 1024 (default) keeps the simulation fast and is about 80-bit security: fine
for a demonstration, not for real data -- pass 2048 there.
"""

import json

import numpy as np

from fedcore import Context
from fedcore.data import held_rows, test_rows, vertical
from fedcore.errors import ConfigError
from fedcore.psi import intersect
from fedcore.vertical import VerticalModel, model_path, score, train

FORMAT = "fedcore.hetero_lr/1"

ROWS = 569


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(axis=0), train.std(axis=0)
    std[std == 0] = 1.0
    return (train - mean) / std, (test - mean) / std


def save_part(ctx: Context, name: str, model: VerticalModel, mean: np.ndarray, std: np.ndarray) -> str:
    """Write this party's weights and standardisation as JSON in its own folder."""
    path = model_path(ctx, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": FORMAT,
        "role": model.role,
        "weights": model.weights.tolist(),
        "mean": mean.tolist(),
        "std": std.tolist(),
    }
    path.write_text(json.dumps(doc))
    return str(path)


def load_part(ctx: Context, name: str) -> tuple[VerticalModel, np.ndarray, np.ndarray]:
    path = model_path(ctx, name)
    try:
        doc = json.loads(path.read_text())
        if doc["format"] != FORMAT:
            raise ValueError("not a hetero_lr model")
        weights, mean, std = (np.asarray(doc[k], dtype=np.float64) for k in ("weights", "mean", "std"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read hetero_lr model part {path}: {exc}") from None
    return VerticalModel(str(doc["role"]), weights), mean, std


def predict(
    ctx: Context,
    name: str,
    roles: tuple[str, ...],
    columns: np.ndarray,
    held: np.ndarray,
    test_fraction: float,
) -> dict:
    """Score the held-out rows this party holds, aligned by id; the guest gets the probabilities."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import roc_auc_score

    model, mean, std = load_part(ctx, name)
    x_all, y_all = load_breast_cancer(return_X_y=True)
    rows = np.intersect1d(held, test_rows(ctx.seed, len(x_all), test_fraction))
    ctx.progress(step="psi")
    positions = intersect(ctx, [f"patient-{i:04d}" for i in rows], parties=roles, return_positions=True)
    aligned = rows[np.asarray(positions, dtype=np.int64)]
    x = (x_all[aligned][:, columns] - mean) / std
    if ctx.party == roles[0]:
        x = np.hstack([x, np.ones((len(x), 1))])
    ctx.progress(step="predict")
    probabilities = score(ctx, model, x, guest=roles[0], hosts=roles[1:])
    if probabilities is None:
        return {"rows": len(aligned)}
    y = y_all[aligned]
    return {
        "rows": len(aligned),
        "ids": [f"patient-{i:04d}" for i in aligned],
        "predictions": probabilities.tolist(),
        "accuracy": float(np.mean((probabilities >= 0.5) == y)),
        "auc": float(roc_auc_score(y, probabilities)),
    }


def main(
    ctx: Context,
    epochs: int = 3,
    lr: float = 0.1,
    batch_size: int = 64,
    key_bits: int = 1024,
    hosts: int = 0,
    drop: int = 5,
    test_fraction: float = 0.2,
    scheme: str = "fedcore",
    mode: str = "train",
    model: str = "",
) -> dict:
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import roc_auc_score

    n_hosts = int(hosts) or len(ctx.parties) - 1
    if not 1 <= n_hosts <= len(ctx.parties) - 1:
        most = len(ctx.parties) - 1
        raise ConfigError(f"hosts must be 1..{most} for {len(ctx.parties)} parties, got {hosts}")
    roles = ctx.parties[: 1 + n_hosts]
    if ctx.party not in roles:
        return {"samples": 0, "role": "idle"}
    if mode not in ("train", "predict"):
        raise ConfigError(f"mode must be 'train' or 'predict', got {mode!r}")
    x_all, y_all = load_breast_cancer(return_X_y=True)
    mine = roles.index(ctx.party)
    columns = vertical(x_all.shape[1], len(roles))[mine]
    held = held_rows(ctx.rng, len(x_all), int(drop))
    if mode == "predict":
        if not model:
            raise ConfigError("mode=predict needs model=NAME (the name the training job saved)")
        return predict(ctx, str(model), roles, columns, held, float(test_fraction))
    ctx.progress(step="psi")
    positions = intersect(ctx, [f"patient-{i:04d}" for i in held], parties=roles, return_positions=True)
    aligned = held[np.asarray(positions, dtype=np.int64)]
    is_test = np.isin(aligned, test_rows(ctx.seed, len(x_all), float(test_fraction)))
    train_rows, eval_rows = aligned[~is_test], aligned[is_test]
    x_train_raw = x_all[train_rows][:, columns]
    mean, std = x_train_raw.mean(axis=0), x_train_raw.std(axis=0)
    std[std == 0] = 1.0
    x_train, x_test = _standardise(x_train_raw, x_all[eval_rows][:, columns])
    guest, host_names = roles[0], roles[1:]
    labels = y_all[train_rows] if ctx.party == guest else None
    if ctx.party == guest:  # the intercept lives with the guest
        x_train = np.hstack([x_train, np.ones((len(x_train), 1))])
        x_test = np.hstack([x_test, np.ones((len(x_test), 1))])
    ctx.progress(step="train")
    trained = train(
        ctx,
        x_train,
        labels,
        guest=guest,
        hosts=host_names,
        epochs=int(epochs),
        lr=float(lr),
        batch_size=int(batch_size),
        key_bits=int(key_bits),
        scheme=str(scheme),
    )
    probabilities = score(ctx, trained, x_test, guest=guest, hosts=host_names)
    result = {"samples": len(train_rows), "aligned": len(aligned)}
    if model:
        result["model_file"] = save_part(ctx, str(model), trained, mean, std)
    if probabilities is not None:
        y_test = y_all[eval_rows]
        result["accuracy"] = float(np.mean((probabilities >= 0.5) == y_test))
        result["auc"] = float(roc_auc_score(y_test, probabilities))
        result["test_samples"] = len(eval_rows)
    return result
