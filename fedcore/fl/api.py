"""The small API: one call trains a model federatedly, as this party.

``train_torch(ctx, model, train_data, test_data, ...)`` takes a torch model factory and this
party's own data; ``train_numpy(ctx, params, fit, evaluate, ...)`` takes any model expressed as
a list of numpy arrays (scikit-learn, JAX, hand-written). Both build a ``TrainConfig`` from the
same keywords and run ``fedcore.fl.rounds.train``: the coordinator (the first party) returns
the history, the final ``accuracy``/``loss`` and, with DP, ``epsilon``/``delta``/``accountant``;
every other party returns ``{"samples", "rounds"}``.

    def main(ctx, rounds=10):
        return train_torch(ctx, make_model, (x_train, y_train), (x_test, y_test), rounds=rounds)
"""

from __future__ import annotations

import contextlib
import inspect
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from fedcore.context import Context
from fedcore.errors import ConfigError
from fedcore.fl.arrays import Params
from fedcore.fl.dp import DPConfig
from fedcore.fl.rounds import Evaluate, Fit, TrainConfig, train
from fedcore.fl.sampling import Sampling
from fedcore.fl.strategies import Strategy, make_strategy

# Simulated parties are threads of one process: let only as many train at once as there are
# cores, so a thousand parties queue quietly instead of fighting over the GIL.
_TRAIN_SLOTS = threading.BoundedSemaphore(os.cpu_count() or 1)
_SEED_LOCK = threading.Lock()


def flag(value: Any) -> bool:
    """A boolean from a job parameter (``--param secure=true`` may arrive as a string)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _dp_config(dp: Any, clip: float, delta: float, accountant: str) -> DPConfig | None:
    if isinstance(dp, DPConfig):
        return dp
    if dp in (None, "", 0, False, "none", "off"):
        return None
    return DPConfig(float(dp), float(clip), delta=float(delta), accountant=str(accountant))


def _strategy(strategy: str | Strategy, min_parties: int, options: dict[str, Any]) -> Strategy:
    if isinstance(strategy, Strategy):
        return strategy
    return make_strategy(str(strategy), min_parties=min_parties, **options)


def config_from(
    ctx: Context,
    *,
    rounds: int = 5,
    strategy: str | Strategy = "fedavg",
    strategy_options: dict[str, Any] | None = None,
    secure: Any = False,
    dp: Any = None,
    clip: float = 1.0,
    delta: float = 1e-5,
    accountant: str = "pld",
    fraction: float = 1.0,
    min_parties: int | str = 1,
    max_parties: int | None = None,
    checkpoint: str | None = None,
    resume: str | None = None,
    round_timeout: float | None = None,
) -> TrainConfig:
    """The ``TrainConfig`` the keywords of ``train_torch``/``train_numpy`` describe.

    ``dp`` is a noise multiplier (or a ``DPConfig``); ``min_parties`` is the fewest parties a
    round is drawn with and may aggregate, ``"all"`` for every party every round (any loss
    fails the job); ``fraction < 1`` samples (Poisson at that rate when DP is on).
    """
    fraction = float(fraction)
    if min_parties == "all":
        if fraction < 1:
            raise ConfigError(
                "min_parties=all means every party in every round; it cannot go with fraction < 1"
            )
        floor = len(ctx.parties)
    else:
        floor = int(min_parties)
    sampling = Sampling(fraction, floor, None if max_parties is None else int(max_parties))
    return TrainConfig(
        rounds=int(rounds),
        strategy=_strategy(strategy, floor, dict(strategy_options or {})),
        secure=flag(secure),
        dp=_dp_config(dp, clip, delta, accountant),
        sampling=sampling,
        checkpoint=checkpoint,
        resume=resume,
        round_timeout=round_timeout,
    )


def _checked(ctx: Context, options: dict[str, Any], allowed: tuple[str, ...] = ()) -> TrainConfig:
    """``config_from(ctx, **options)``, with a clear error for a keyword it does not take."""
    known = [name for name in inspect.signature(config_from).parameters if name != "ctx"]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown training option {', '.join(map(repr, unknown))}; the options are "
            f"{', '.join([*allowed, *known])}"
        )
    return config_from(ctx, **options)


def train_numpy(
    ctx: Context, params: Params, fit: Fit, evaluate: Evaluate | None = None, **options: Any
) -> dict[str, Any]:
    """Train a model held as numpy arrays.

    Args:
        ctx: this party's context.
        params: the initial global parameters (the coordinator's are the ones used).
        fit: ``fit(params, config) -> (new_params, samples)``: local training from ``params``.
        evaluate: ``evaluate(params) -> {"accuracy": ..., "loss": ...}`` at the coordinator.
        **options: the keywords of ``config_from`` (rounds, strategy, secure, dp, fraction, ...).
    """
    return train(ctx, [np.asarray(p) for p in params], fit, evaluate, _checked(ctx, options))


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    import torch

    # torch's generator is process-wide and simulated parties are threads: one at a time
    with _SEED_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed & 0x7FFFFFFFFFFFFFFF)
        yield


def train_torch(
    ctx: Context,
    model: Callable[[], Any],
    train_data: Any,
    test_data: Any = None,
    *,
    optimizer: Callable[[Any], Any] | None = None,
    loss: Callable[..., Any] | None = None,
    lr: float = 0.05,
    epochs: int = 1,
    batch_size: int = 32,
    device: str = "cpu",
    **options: Any,
) -> dict[str, Any]:
    """Train a torch model federatedly on this party's ``train_data``; score it on ``test_data``.

    Args:
        ctx: this party's context.
        model: a factory returning a fresh ``nn.Module``; the coordinator's, built under the job
            seed, gives the initial global model.
        train_data: ``(x, y)`` tensors or arrays, a ``Dataset`` or a ``DataLoader``.
        test_data: the same forms; the coordinator evaluates every round's model on its own.
        optimizer: ``optimizer(model.parameters())`` (default SGD at ``lr``), rebuilt every round.
        loss: ``loss(output, target)`` (default cross-entropy).
        lr: SGD's learning rate when ``optimizer`` is not given.
        epochs: local passes over the data per round.
        batch_size: minibatch size for tensors and Datasets.
        device: ``cpu``, ``cuda`` or ``auto`` (GPUs shared round-robin by party index).
        **options: the keywords of ``config_from`` (rounds, strategy, secure, dp, fraction, ...).
    """
    from fedcore.fl.torch import get_params

    config = _checked(ctx, options, ("optimizer", "loss", "lr", "epochs", "batch_size", "device"))
    party = TorchParty(ctx, model, train_data, test_data, optimizer, loss, lr, epochs, batch_size, device)
    result = train(ctx, get_params(party.model), party.fit, party.evaluate, config)
    result["samples"] = len(party.train)
    return result


class TorchParty:
    """This party's model, data and training settings: ``fit`` and ``evaluate`` for the loop."""

    def __init__(
        self,
        ctx: Context,
        model: Callable[[], Any],
        train_data: Any,
        test_data: Any,
        optimizer: Callable[[Any], Any] | None,
        loss: Callable[..., Any] | None,
        lr: float,
        epochs: int,
        batch_size: int,
        device: str,
    ):
        import torch

        from fedcore.fl import torchloop

        index = ctx.parties.index(ctx.party)
        self.device = torchloop.resolve_device(device, index)
        with _seeded(ctx.seed):
            self.model = model().to(self.device)
        self.train = torchloop.batches(train_data, int(batch_size))
        self.test = None if test_data is None else torchloop.batches(test_data, 512, shuffle=False)
        self.make_optimizer = optimizer or (lambda ps: torch.optim.SGD(ps, lr=float(lr)))
        self.loss = loss or torch.nn.functional.cross_entropy
        self.epochs = int(epochs)
        self.seed = ctx.seed * 1_000_003 + index * 1009
        self.rounds = 0

    def fit(self, params: Params, config: dict[str, Any]) -> tuple[Params, int]:
        from fedcore.fl import torchloop
        from fedcore.fl.torch import get_params, set_params

        self.rounds += 1
        with _TRAIN_SLOTS:
            set_params(self.model, params)
            torchloop.fit_local(
                self.model,
                self.train,
                optimizer=self.make_optimizer(self.model.parameters()),
                loss_fn=self.loss,
                epochs=self.epochs,
                device=self.device,
                mu=float(config.get("mu", 0.0)),
                seed=self.seed + self.rounds,
            )
            return get_params(self.model), len(self.train)

    def evaluate(self, params: Params) -> dict[str, float]:
        from fedcore.fl import torchloop
        from fedcore.fl.torch import set_params

        if self.test is None:
            return {}
        set_params(self.model, params)
        return torchloop.score(self.model, self.test, self.loss, self.device)
