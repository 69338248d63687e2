"""Federated training: strategies, the round loop, client-level DP, checkpoints, a PyTorch adapter.

- ``fedcore.fl.train_torch(ctx, model, train_data, test_data, ...)``: the one call that trains
  a user's torch model; ``fedcore.fl.train_numpy(ctx, params, fit, evaluate, ...)``: the same for
  any model held as numpy arrays (``fedcore.fl.api``).
- ``fedcore.fl.sampling``: which parties train each round (fixed-size or Poisson).
- ``fedcore.fl.discrete``: distributed Skellam DP in the secure-aggregation ring.
- ``fedcore.fl.strategies``: FedAvg, FedProx, FedAdam/FedYogi/FedAdagrad, FedMedian, trimmed
  mean, Krum: pure functions of (round, params, updates) -> new params.
- ``fedcore.fl.rounds``: ``train(ctx, params, fit, evaluate, TrainConfig(...))``, the loop over ctx,
  optionally through secure aggregation (``fedcore.secagg``) and with DP.
- ``fedcore.fl.dp``: clipping, Gaussian noise, the privacy ledger (``dp_accounting``).
- ``fedcore.fl.checkpoint``: safe (.npz, no pickle) checkpoints and resume.
- ``fedcore.fl.torch``: model <-> arrays, local SGD (with FedProx's mu), evaluation;
  ``fedcore.fl.torchloop``: the small API's data forms (tensors, Dataset, DataLoader) and devices.

torch and dp_accounting are imported only by the modules that need them.
"""

from typing import TYPE_CHECKING

from fedcore.fl.strategies import (
    STRATEGIES,
    Aggregate,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedMedian,
    FedProx,
    FedYogi,
    Krum,
    Strategy,
    TrimmedMean,
    Update,
    make_strategy,
)

__all__ = [
    "STRATEGIES",
    "Aggregate",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedMedian",
    "FedProx",
    "FedYogi",
    "Krum",
    "Strategy",
    "TrimmedMean",
    "Update",
    "make_strategy",
    "train_numpy",
    "train_torch",
]

if TYPE_CHECKING:  # for type checkers only: at run time they load on first use (below)
    from fedcore.fl.api import train_numpy, train_torch

_LAZY = {"train_numpy", "train_torch"}  # imported on first use: the round loop pulls in dp_accounting


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from fedcore.fl import api

        return getattr(api, name)
    raise AttributeError(f"module 'fedcore.fl' has no attribute {name!r}")
