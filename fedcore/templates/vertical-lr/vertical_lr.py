"""Vertical logistic regression: the parties hold different columns of the same rows.

The first party (the guest) holds the labels and its columns; every other party (a host)
holds its own columns. fedcore.vertical trains one model with Paillier-encrypted, masked
gradients: no party sees another's features or the labels. Rows are already aligned here
(run fedcore.psi first when they are not; see protocols/hetero_lr.py).

    fedcore simulate vertical_lr.py --parties 5 --json
"""

from typing import Any

import numpy as np

from fedcore import Context
from fedcore.vertical import score, train


def columns(ctx: Context, rows: int = 400, per_party: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """This party's columns and the labels, from data every party draws alike from the job seed."""
    rng = np.random.default_rng(ctx.seed)
    x = rng.normal(size=(rows, per_party * len(ctx.parties)))
    y = (x @ rng.normal(size=x.shape[1]) > 0).astype(np.int64)
    i = ctx.parties.index(ctx.party)
    return x[:, i * per_party : (i + 1) * per_party], y


def main(ctx: Context, epochs: int = 3, lr: float = 0.2, key_bits: int = 1024) -> dict[str, Any]:
    x, y = columns(ctx)
    guest, hosts = ctx.parties[0], ctx.parties[1:]
    train_x, test_x = x[:300], x[300:]
    labels = y[:300] if ctx.party == guest else None
    model = train(ctx, train_x, labels, guest=guest, hosts=hosts, epochs=epochs, lr=lr, key_bits=key_bits)
    probabilities = score(ctx, model, test_x, guest=guest, hosts=hosts)
    if probabilities is None:
        return {"samples": len(train_x)}
    return {"accuracy": float(np.mean((np.asarray(probabilities) > 0.5) == y[300:])), "samples": len(train_x)}
