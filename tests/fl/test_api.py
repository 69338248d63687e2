"""The small API: train_torch over tensors, a Dataset or a DataLoader; train_numpy; devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedcore import simulate
from fedcore.errors import ConfigError
from fedcore.fl import torchloop, train_numpy, train_torch
from fedcore.runtime import make_runtime

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def runtime():
    rt = make_runtime("inline")
    yield rt
    rt.close()


def blobs(seed: int, n: int = 120) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 2)) * 0.4 + np.where(y[:, None] == 1, 1.0, -1.0)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def model() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))


def as_form(form: str, data: tuple[torch.Tensor, torch.Tensor]):
    if form == "tensors":
        return data
    if form == "arrays":
        return data[0].numpy().astype(np.float64), data[1].numpy()
    if form == "dataset":
        return TensorDataset(*data)
    return DataLoader(TensorDataset(*data), batch_size=16, shuffle=True)


@pytest.mark.parametrize("form", ["tensors", "arrays", "dataset", "loader"])
def test_train_torch_learns_from_every_data_form(runtime, form) -> None:
    def main(ctx, rounds: int = 3):
        i = ctx.parties.index(ctx.party)
        return train_torch(
            ctx, model, as_form(form, blobs(i)), as_form(form, blobs(99)), rounds=rounds, lr=0.1
        )

    out = simulate(main, parties=3, runtime=runtime, timeout_s=30).parties
    assert out["p0"]["accuracy"] > 0.9 and len(out["p0"]["history"]) == 3
    assert out["p1"] == {"samples": 120, "rounds": 3}


def test_own_optimizer_and_loss_are_used(runtime) -> None:
    calls = []

    def loss(out, target):
        calls.append(1)
        return nn.functional.cross_entropy(out, target)

    def main(ctx):
        return train_torch(
            ctx, model, blobs(1), blobs(2), rounds=2, loss=loss, epochs=1, batch_size=60,
            optimizer=lambda ps: torch.optim.Adam(ps, lr=0.05), fraction=0.5,
        )  # fmt: skip

    out = simulate(main, parties=4, runtime=runtime, timeout_s=30).parties
    assert [h["parties"] for h in out["p0"]["history"]] == [2, 2]
    # 2 rounds x 2 picked parties x 2 batches, plus 2 evaluations of 1 batch each
    assert len(calls) == 2 * 2 * 2 + 2


def test_the_initial_model_comes_from_the_job_seed(runtime) -> None:
    def main(ctx):
        return train_torch(ctx, model, blobs(0), blobs(1), rounds=0)

    a = simulate(main, parties=2, runtime=runtime, seed=5).parties["p0"]["loss"]
    b = simulate(main, parties=2, runtime=runtime, seed=5).parties["p0"]["loss"]
    c = simulate(main, parties=2, runtime=runtime, seed=6).parties["p0"]["loss"]
    assert a == b != c


def test_train_numpy_with_a_hand_written_model(runtime) -> None:
    def main(ctx):
        target = np.array([1.0, -2.0])

        def fit(params, config):
            return [params[0] + 0.5 * (target - params[0])], 10

        def evaluate(params):
            return {"loss": float(np.sum((params[0] - target) ** 2))}

        return train_numpy(ctx, [np.zeros(2)], fit, evaluate, rounds=3, strategy="fedavg")

    out = simulate(main, parties=3, runtime=runtime).parties["p0"]
    assert np.isclose(out["loss"], 5.0 / 64)  # the distance halves every round


def test_bad_options_are_refused_clearly(runtime) -> None:
    def main(ctx):
        return train_numpy(ctx, [np.zeros(1)], lambda p, c: (p, 1), None, fraction=0.5, min_parties="all")

    out = simulate(main, parties=2, runtime=runtime)
    assert "min_parties=all" in out.parties["p0"]["error"]

    def typo(ctx):
        return train_torch(ctx, model, blobs(0), rounds=1, fractoin=0.5)

    error = simulate(typo, parties=2, runtime=runtime).parties["p1"]["error"]
    assert error.startswith("ConfigError: unknown training option 'fractoin'") and "fraction" in error
    with pytest.raises(ConfigError):
        torchloop.batches("not data", 8)
    with pytest.raises(ConfigError):
        torchloop.batches((torch.zeros(3, 2), torch.zeros(4)), 8)


def test_devices_resolve_to_cpu_here_and_spread_over_gpus(monkeypatch) -> None:
    assert torchloop.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError):
        torchloop.resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert torchloop.resolve_device("auto", 3) == torch.device("cpu")
    with pytest.raises(ConfigError, match="no GPU"):
        torchloop.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [torchloop.resolve_device("auto", i) for i in range(3)] == [
        torch.device("cuda:0"), torch.device("cuda:1"), torch.device("cuda:0"),
    ]  # fmt: skip
