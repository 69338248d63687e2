"""The PyTorch adapter: parameters round trip, local SGD learns, FedProx pulls toward the anchor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedcore.errors import ProtocolError
from fedcore.fl.arrays import global_norm, subtract
from fedcore.fl.torch import evaluate, get_params, set_params, train_local

torch.set_num_threads(1)


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))


def blobs(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 2)) * 0.3 + np.where(y[:, None] == 1, 1.0, -1.0)
    return x.astype(np.float32), y


def test_params_round_trip_and_shape_check() -> None:
    m = model()
    params = get_params(m)
    assert [p.shape for p in params] == [(8, 2), (8,), (2, 8), (2,)]
    changed = [p + 1 for p in params]
    set_params(m, changed)
    assert all(np.array_equal(a, b) for a, b in zip(get_params(m), changed))
    with pytest.raises(ProtocolError, match="shape"):
        set_params(m, [np.zeros((3, 3)), *params[1:]])
    with pytest.raises(ProtocolError):
        set_params(m, params[:2])


def test_local_training_learns_and_is_reproducible() -> None:
    x, y = blobs()
    m = model()
    before = evaluate(m, x, y)
    fit = train_local(m, x, y, epochs=5, lr=0.1, batch_size=16, seed=1)
    after = evaluate(m, x, y)
    assert fit.samples == 200 and fit.steps == 5 * 13
    assert after["accuracy"] > 0.95 and after["loss"] < before["loss"]
    again = model()
    train_local(again, x, y, epochs=5, lr=0.1, batch_size=16, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(get_params(m), get_params(again)))


def test_fedprox_term_keeps_weights_near_the_global_model() -> None:
    x, y = blobs()
    start = get_params(model())
    drift = {}
    for mu in (0.0, 10.0):
        m = model()
        train_local(m, x, y, epochs=3, lr=0.05, mu=mu, seed=2)
        drift[mu] = global_norm(subtract(get_params(m), start))
    assert drift[10.0] < 0.7 * drift[0.0]


def test_empty_data() -> None:
    m = model()
    assert train_local(m, np.zeros((0, 2)), np.zeros(0)).samples == 0
    assert evaluate(m, np.zeros((0, 2)), np.zeros(0))["samples"] == 0
