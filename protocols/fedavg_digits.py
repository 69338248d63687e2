"""Federated training of a small MLP on scikit-learn's bundled digits (8x8 images, 10 classes).

Every party builds the same split from the job seed: a held-out test set (20%) that nobody
trains on, and the training rows partitioned across ``ctx.parties`` (``iid`` or label-skewed
``dirichlet`` with ``alpha``); each party keeps the share at its own index. The first party
coordinates (and trains on its share too): it runs ``rounds`` rounds of ``strategy`` through
``fedcore.fl``, optionally with secure aggregation (``secure``) and client-level DP (``dp`` =
noise multiplier, ``clip`` = L2 bound), and returns the per-round test accuracy and loss,
the parties in each round and those lost. Every party returns ``{"samples": n}``.

Files stay in the coordinator's own output folder (``ctx.output_path``): ``checkpoint=ckpt``
writes ``<output folder>/ckpt/round-NNNNN.npz``, ``plot=history.png`` draws there, and
``resume=<earlier job id>/ckpt`` continues from an earlier job of the same party. An absolute
path or one with ``..`` is refused (PolicyRefused): the initiator of a job never chooses where
another party writes.

    fedcore simulate protocols/fedavg_digits.py --parties 10 --param rounds=20 --json
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any, Literal

import numpy as np

from fedcore import Context
from fedcore.errors import ConfigError

_LOCK = threading.Lock()
# In simulation every party is a thread of one process: let only as many train at once as there
# are cores, so a thousand parties queue quietly instead of fighting over the GIL.
_TRAIN_SLOTS = threading.BoundedSemaphore(os.cpu_count() or 1)
HIDDEN = 32
SERVER_LR = {"fedadam": 0.03, "fedyogi": 0.03, "fedadagrad": 0.1}


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)


@functools.cache
def _split(seed: int, parties: int, partition: str, alpha: float) -> tuple[np.ndarray, list[np.ndarray]]:
    from fedcore import data

    _, y = _digits()
    train, test = data.train_test_split(len(y), 0.2, seed)
    if partition == "iid":
        shares = data.iid(len(train), parties, seed)
    elif partition == "dirichlet":
        shares = data.dirichlet(y[train], parties, alpha, seed)
    else:
        raise ConfigError(f"partition must be iid or dirichlet, got {partition!r}")
    return test, [train[s] for s in shares]


def dataset(seed: int, parties: int, partition: str, alpha: float) -> Any:
    """(x, y, test indices, per-party train indices), computed once per process."""
    with _LOCK:
        x, y = _digits()
        test, shares = _split(seed, parties, partition, alpha)
    return x, y, test, shares


def build_model() -> Any:
    from torch import nn

    return nn.Sequential(nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10))


def initial_params(seed: int) -> list[np.ndarray]:
    """PyTorch's default Linear init (uniform in +-1/sqrt(fan_in)), drawn from a seeded numpy rng."""
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in ((64, HIDDEN), (HIDDEN, 10)):
        bound = 1 / np.sqrt(fan_in)
        params.append(rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32))
        params.append(rng.uniform(-bound, bound, fan_out).astype(np.float32))
    return params


def _strategy(
    name: str, min_parties: Any, server_lr: float | None, mu: float, trim: float, krum_f: int
) -> Any:
    from fedcore.fl import make_strategy

    options: dict[str, Any] = {"min_parties": int(min_parties)}
    if name in ("fedadam", "fedyogi", "fedadagrad"):
        # server learning rates tuned on this job (20 rounds, 10 parties); Reddi et al. tune eta per task
        options["eta"] = SERVER_LR[name] if server_lr is None else float(server_lr)
    elif name in ("fedavg", "fedprox") and server_lr is not None:
        options["server_lr"] = float(server_lr)
    if name == "fedprox":
        options["mu"] = float(mu)
    if name == "trimmed_mean":
        options["beta"] = float(trim)
    if name == "krum":
        options["f"] = int(krum_f)
    return make_strategy(name, **options)


class Trainer:
    """This party's model and data: ``fit`` for the round loop, ``score`` on the test split."""

    def __init__(
        self,
        ctx: Context,
        train: tuple[np.ndarray, np.ndarray],
        test: tuple[np.ndarray, np.ndarray],
        local_epochs: int,
        lr: float,
        batch_size: int,
    ):
        self.seed = ctx.seed * 1_000_003 + ctx.parties.index(ctx.party) * 1009
        self.train, self.test = train, test
        self.options = {"epochs": int(local_epochs), "lr": float(lr), "batch_size": int(batch_size)}
        self.model = build_model()
        self.rounds = 0

    def fit(self, params: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int]:
        from fedcore.fl.torch import get_params, set_params, train_local

        self.rounds += 1
        mu = float(config.get("mu", 0.0))
        with _TRAIN_SLOTS:
            set_params(self.model, params)
            result = train_local(self.model, *self.train, mu=mu, seed=self.seed + self.rounds, **self.options)
            return get_params(self.model), result.samples

    def score(self, params: list[np.ndarray]) -> dict[str, float]:
        from fedcore.fl.torch import evaluate, set_params

        set_params(self.model, params)
        metrics = evaluate(self.model, *self.test)
        return {"accuracy": metrics["accuracy"], "loss": metrics["loss"]}


def _dp(dp: float | None, clip: float, secure: bool) -> Any:
    from fedcore.fl.dp import DPConfig

    if not dp:
        return None
    return DPConfig(float(dp), float(clip), placement="party" if secure else "server")


def main(
    ctx: Context,
    rounds: int = 5,
    strategy: str = "fedavg",
    partition: Literal["iid", "dirichlet"] = "iid",
    alpha: float = 0.5,
    secure: bool = False,
    dp: float | None = None,
    clip: float = 1.0,
    local_epochs: int = 2,
    lr: float = 0.2,
    batch_size: int = 16,
    min_parties: int | Literal["all"] = 1,
    server_lr: float | None = None,
    mu: float = 0.01,
    trim: float = 0.1,
    krum_f: int = 1,
    checkpoint: str | None = None,
    resume: str | None = None,
    plot: str | None = None,
    data: str | None = None,
) -> dict:
    """Train; ``data`` names a local data source (.npz with x and y, or .csv with a y column) to
    train on instead of this party's share of the digits."""
    import torch

    from fedcore.fl.rounds import TrainConfig, train

    torch.set_num_threads(1)
    x, y, test, shares = dataset(ctx.seed, len(ctx.parties), str(partition), float(alpha))
    mine = shares[ctx.parties.index(ctx.party)]
    own = (x[mine], y[mine])
    if data:
        from fedcore.data import xy_from_table

        own = xy_from_table(ctx.data(data))
    trainer = Trainer(ctx, own, (x[test], y[test]), local_epochs, lr, batch_size)
    floor = len(ctx.parties) if min_parties == "all" else min_parties
    coordinator = ctx.party == ctx.parties[0]  # only the coordinator holds the global model
    config = TrainConfig(
        rounds=int(rounds),
        strategy=_strategy(str(strategy), floor, server_lr, mu, trim, krum_f),
        secure=secure,
        dp=_dp(dp, clip, secure),
        checkpoint=str(ctx.output_path(checkpoint)) if checkpoint and coordinator else None,
        resume=str(ctx.output_path(resume, scope="party")) if resume and coordinator else None,
    )
    result = train(ctx, initial_params(ctx.seed), trainer.fit, trainer.score, config)
    result["samples"] = len(own[1])
    if plot and "history" in result:
        from fedcore.fl.checkpoint import plot_history

        result["plot"] = plot_history(result["history"], ctx.output_path(plot))
    return result
