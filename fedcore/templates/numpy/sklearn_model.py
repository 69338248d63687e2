"""A scikit-learn SGDClassifier trained federatedly through fedcore's numpy-parameter interface.

Any model whose parameters are numpy arrays works the same way: give ``train_numpy`` the
initial arrays, ``fit(params, config) -> (new params, samples)`` for local training and
``evaluate(params) -> {"accuracy", "loss"}`` for the coordinator's test set.

    fedcore simulate sklearn_model.py --parties 5 --json
"""

from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss

from fedcore import Context, data
from fedcore.fl import train_numpy

CLASSES = np.arange(10)


def main(
    ctx: Context, rounds: int = 10, epochs: int = 2, fraction: float = 1.0, secure: bool = False
) -> dict[str, Any]:
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    train, test = data.train_test_split(len(y), 0.2, ctx.seed)
    mine = train[data.iid(len(train), len(ctx.parties), ctx.seed)[ctx.parties.index(ctx.party)]]
    clf = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=0.05, random_state=ctx.seed)
    clf.partial_fit(x[mine[:1]], y[mine[:1]], classes=CLASSES)  # sets classes_; weights come from params

    def load(params: list[np.ndarray]) -> None:
        clf.coef_, clf.intercept_ = params[0].copy(), params[1].copy()

    def fit(params: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int]:
        load(params)
        for _ in range(epochs):
            clf.partial_fit(x[mine], y[mine])
        return [clf.coef_.copy(), clf.intercept_.copy()], len(mine)

    def evaluate(params: list[np.ndarray]) -> dict[str, float]:
        load(params)
        loss = log_loss(y[test], clf.predict_proba(x[test]), labels=CLASSES)
        return {"accuracy": float(clf.score(x[test], y[test])), "loss": float(loss)}

    start = [np.zeros((10, 64)), np.zeros(10)]
    return train_numpy(ctx, start, fit, evaluate, rounds=rounds, fraction=fraction, secure=secure)
