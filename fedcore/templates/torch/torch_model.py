"""Your torch model, trained federatedly: each party trains on its own data, fedcore averages.

Replace ``model`` and ``load`` with yours. Rounds, strategy, sampling, secure aggregation, DP
and device are keywords of ``train_torch`` (here also ``--param``s).

    fedcore simulate torch_model.py --parties 5 --json
"""

from typing import Any

import torch
from torch import nn

from fedcore import Context, data
from fedcore.fl import train_torch


def model() -> nn.Module:
    conv = nn.Conv2d(1, 8, 3)  # 8x8 digit images -> 8 maps of 6x6
    return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), conv, nn.ReLU(), nn.Flatten(), nn.Linear(288, 10))


def load(ctx: Context) -> tuple[Any, Any]:
    """This party's share of the training rows and the common test rows (scikit-learn's digits)."""
    from sklearn.datasets import load_digits

    features, labels = load_digits(return_X_y=True)
    x, y = torch.tensor(features / 16.0, dtype=torch.float32), torch.tensor(labels)
    train, test = data.train_test_split(len(y), 0.2, ctx.seed)
    share = data.iid(len(train), len(ctx.parties), ctx.seed)[ctx.parties.index(ctx.party)]
    mine, held = torch.as_tensor(train[share]), torch.as_tensor(test)
    return (x[mine], y[mine]), (x[held], y[held])


def main(ctx: Context, rounds: int = 10, **options: Any) -> dict[str, Any]:
    """Every ``--param`` (strategy, fraction, secure, dp, device, ...) goes to ``train_torch``."""
    torch.set_num_threads(1)  # simulated parties are threads of one process
    train_data, test_data = load(ctx)
    return train_torch(ctx, model, train_data, test_data, rounds=rounds, lr=0.1, epochs=2, **options)
