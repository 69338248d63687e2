"""SecureBoost: gradient-boosted trees on columns split between the parties.

The first party (the guest) holds the labels and its columns; every other party (a host)
holds its own columns. The guest sends Paillier-encrypted gradients; each host returns
encrypted per-bin sums and keeps its split thresholds to itself; only the guest learns the
predictions. Rows are already aligned here (run fedcore.psi first when they are not; see
protocols/secureboost.py, which also saves the model and predicts with it later).

    fedcore simulate secureboost.py --parties 3 --json
"""

from typing import Any

import numpy as np

from fedcore import Context
from fedcore.vertical import BoostParams, predict_secureboost, train_secureboost


def columns(ctx: Context, rows: int = 600, per_party: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """This party's columns and the labels, from data every party draws alike from the job seed."""
    rng = np.random.default_rng(ctx.seed)
    x = rng.normal(size=(rows, per_party * len(ctx.parties)))
    y = ((x**2) @ rng.normal(size=x.shape[1]) > 0).astype(np.int64)  # not linear: trees' turf
    i = ctx.parties.index(ctx.party)
    return x[:, i * per_party : (i + 1) * per_party], y


def main(ctx: Context, trees: int = 20, max_depth: int = 3, key_bits: int = 1024) -> dict[str, Any]:
    x, y = columns(ctx)
    guest, hosts = ctx.parties[0], ctx.parties[1:]
    labels = y[:450] if ctx.party == guest else None
    plan = BoostParams(trees=trees, max_depth=max_depth, learning_rate=0.3, min_samples_leaf=10)
    model = train_secureboost(ctx, x[:450], labels, params=plan, guest=guest, hosts=hosts, key_bits=key_bits)
    scores = predict_secureboost(ctx, model, x[450:])
    if scores is None:
        return {"samples": 450}
    return {"accuracy": float(np.mean((np.asarray(scores) > 0.5) == y[450:])), "samples": 450}
