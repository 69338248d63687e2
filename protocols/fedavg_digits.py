"""Federated training of a small MLP on scikit-learn's bundled digits, on ``fedcore.fl.train_torch``.

Every party builds the same split from the job seed: a held-out test set (20%) that nobody
trains on, and the training rows partitioned across ``ctx.parties`` (``iid`` or label-skewed
``dirichlet`` with ``alpha``); each party keeps its share (or trains on ``data``, a local
.npz/.csv source). The first party coordinates ``rounds`` rounds of ``strategy``, sampling a
``fraction`` of the parties per round, optionally with secure aggregation and client-level DP
(``dp`` = noise multiplier, ``clip`` = L2 bound), and returns the per-round test accuracy
and loss, epsilon with DP, and the parties lost. Every party returns its ``samples``.

Files stay in the coordinator's own output folder: ``checkpoint=ckpt`` writes ``ckpt/round-NNNNN.npz``
there, ``plot=history.png`` draws there, ``resume=<earlier job id>/ckpt`` continues an earlier job of
the same party; an absolute path or ``..`` is refused (PolicyRefused), as the initiator of a job
never chooses where another party writes.

    fedcore simulate protocols/fedavg_digits.py --parties 10 --param rounds=20 --json
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Literal

import numpy as np

from fedcore import Context, data
from fedcore.errors import ConfigError
from fedcore.fl import train_torch

_LOCK = threading.Lock()
SERVER_LR = {"fedadam": 0.03, "fedyogi": 0.03, "fedadagrad": 0.1}  # tuned on this job (20 x 10)


@functools.cache
def _split(seed: int, parties: int, partition: str, alpha: float) -> Any:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    train, test = data.train_test_split(len(y), 0.2, seed)
    if partition not in ("iid", "dirichlet"):
        raise ConfigError(f"partition must be iid or dirichlet, got {partition!r}")
    shares = (
        data.iid(len(train), parties, seed)
        if partition == "iid"
        else data.dirichlet(y[train], parties, alpha, seed)
    )
    return x, y, test, [train[s] for s in shares]


def model() -> Any:
    from torch import nn

    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def _options(strategy: str, server_lr: float | None, mu: float, trim: float, krum_f: int) -> dict:
    if strategy in SERVER_LR:
        return {"eta": SERVER_LR[strategy] if server_lr is None else float(server_lr)}
    extra = {"fedprox": {"mu": float(mu)}, "trimmed_mean": {"beta": float(trim)}, "krum": {"f": int(krum_f)}}
    lr = (
        {"server_lr": float(server_lr)} if server_lr is not None and strategy in ("fedavg", "fedprox") else {}
    )
    return {**extra.get(strategy, {}), **lr}


def main(ctx: Context, rounds: int = 5, strategy: str = "fedavg",
         partition: Literal["iid", "dirichlet"] = "iid", alpha: float = 0.5, secure: bool = False,
         dp: float | None = None, clip: float = 1.0,
         fraction: float = 1.0, min_parties: int | Literal["all"] = 1, max_parties: int | None = None,
         local_epochs: int = 4, lr: float = 0.2, batch_size: int = 8, server_lr: float | None = None,
         mu: float = 0.01, trim: float = 0.1, krum_f: int = 1, device: str = "cpu",
         checkpoint: str | None = None, resume: str | None = None, plot: str | None = None,
         data: str | None = None) -> dict:  # fmt: skip
    """Train; ``data`` names a local data source (.npz with x and y, or .csv with a y column)."""
    import torch

    from fedcore.data import xy_from_table

    torch.set_num_threads(1)  # simulated parties are threads: one math thread each
    with _LOCK:
        x, y, test, shares = _split(ctx.seed, len(ctx.parties), str(partition), float(alpha))
    mine = shares[ctx.parties.index(ctx.party)]
    own = xy_from_table(ctx.data(data)) if data else (x[mine], y[mine])
    local = {"lr": lr, "epochs": local_epochs, "batch_size": batch_size, "device": device}
    sampling = {"fraction": fraction, "min_parties": min_parties, "max_parties": max_parties}
    # checkpoint= and resume= are resolved inside the coordinator's own output folder by fedcore.fl
    privacy = {"secure": secure, "dp": dp, "clip": clip, "checkpoint": checkpoint, "resume": resume}
    options = _options(str(strategy), server_lr, mu, trim, krum_f)
    fl = {"rounds": rounds, "strategy": str(strategy), "strategy_options": options, **sampling, **privacy}
    result = train_torch(ctx, model, own, (x[test], y[test]), **local, **fl)
    if plot and "history" in result:
        from fedcore.fl.checkpoint import plot_history

        title = f"{strategy}, {len(ctx.parties)} parties, {rounds} rounds"
        result["plot"] = plot_history(result["history"], ctx.output_path(plot), title=title)
    return result
