"""PyTorch adapter: a model <-> a list of numpy arrays, local training, evaluation.

The parameter list is the model's ``state_dict`` values in order (weights and buffers), so
``set_params(model, get_params(model))`` is the identity. Local training is plain minibatch
SGD; with ``mu > 0`` it adds FedProx's proximal term ``mu/2 ||w - w_global||^2`` (Li et al.
2020, "Federated Optimization in Heterogeneous Networks", eq. 2) to the loss.

In simulation every party is a thread of one process: call ``torch.set_num_threads(1)``
once so a thousand parties do not each start a pool of math threads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from fedcore.errors import ProtocolError
from fedcore.fl.arrays import Params
from fedcore.fl.torchloop import FitResult, LossFn, batches, fit_local


def get_params(model: nn.Module) -> Params:
    """The model's parameters and buffers as numpy arrays (copies), in ``state_dict`` order."""
    return [t.detach().cpu().numpy().copy() for t in model.state_dict().values()]


def set_params(model: nn.Module, params: Sequence[np.ndarray]) -> None:
    """Load ``params`` (in ``state_dict`` order) into ``model``.

    Raises:
        ProtocolError: the count or a shape does not match the model.
    """
    keys = list(model.state_dict().keys())
    current = model.state_dict()
    if len(params) != len(keys):
        raise ProtocolError(f"got {len(params)} parameter arrays for a model with {len(keys)}")
    new = {}
    for key, value in zip(keys, params, strict=True):
        if tuple(np.shape(value)) != tuple(current[key].shape):
            raise ProtocolError(
                f"parameter {key} has shape {np.shape(value)}, the model needs {tuple(current[key].shape)}"
            )
        new[key] = torch.as_tensor(np.asarray(value), dtype=current[key].dtype)
    model.load_state_dict(new)


def train_local(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 1,
    lr: float = 0.05,
    batch_size: int = 32,
    mu: float = 0.0,
    seed: int = 0,
    loss_fn: LossFn | None = None,
) -> FitResult:
    """Train ``model`` in place with minibatch SGD on ``(x, y)``.

    Args:
        model: the model, holding the global parameters on entry.
        x: features, shape (n, ...).
        y: integer labels, shape (n,).
        epochs: passes over the data.
        lr: SGD learning rate.
        batch_size: minibatch size.
        mu: FedProx proximal coefficient (0 = plain local SGD).
        seed: seed of the minibatch shuffling.
        loss_fn: loss (default cross-entropy).
    """
    if len(x) == 0:
        return FitResult(0, 0, 0.0)
    data = batches((np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)), batch_size)
    return fit_local(
        model,
        data,
        optimizer=torch.optim.SGD(model.parameters(), lr=lr),
        loss_fn=loss_fn or nn.functional.cross_entropy,
        epochs=epochs,
        device=torch.device("cpu"),
        mu=mu,
        seed=seed,
    )


@torch.no_grad()
def evaluate(
    model: nn.Module, x: np.ndarray, y: np.ndarray, *, batch_size: int = 512, loss_fn: LossFn | None = None
) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``(x, y)``: ``{"loss", "accuracy", "samples"}``."""
    n = len(x)
    if n == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "samples": 0}
    loss_fn = loss_fn or nn.functional.cross_entropy
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, n, batch_size):
        xs = torch.as_tensor(np.asarray(x[start : start + batch_size], dtype=np.float32))
        ys = torch.as_tensor(np.asarray(y[start : start + batch_size], dtype=np.int64))
        out = model(xs)
        loss_sum += float(loss_fn(out, ys, reduction="sum"))
        correct += int((out.argmax(dim=1) == ys).sum())
    return {"loss": loss_sum / n, "accuracy": correct / n, "samples": n}
