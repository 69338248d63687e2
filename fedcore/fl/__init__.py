"""Federated training: strategies, the round loop, client-level DP, checkpoints, a PyTorch adapter.

- ``fedcore.fl.strategies``: FedAvg, FedProx, FedAdam/FedYogi/FedAdagrad, FedMedian, trimmed
  mean, Krum: pure functions of (round, params, updates) -> new params.
- ``fedcore.fl.rounds``: ``train(ctx, params, fit, evaluate, TrainConfig(...))``, the loop over ctx,
  optionally through secure aggregation (``fedcore.secagg``) and with DP.
- ``fedcore.fl.dp``: clipping, Gaussian noise, the privacy ledger (``dp_accounting``).
- ``fedcore.fl.checkpoint``: safe (.npz, no pickle) checkpoints and resume.
- ``fedcore.fl.torch``: model <-> arrays, local SGD (with FedProx's mu), evaluation.

torch and dp_accounting are imported only by the modules that need them.
"""

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
]
