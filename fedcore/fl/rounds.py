"""``train``: the federated training round over ``ctx``, one party's session driven by ``drive``.

The round's rules (who picks, sends, waits for and aggregates what, the dropout and failure
policy) are the sessions of ``fedcore.fl._session`` (its docstring is the theory of operation);
this module carries out their work items: the local fit, the secure sum, progress, metrics and
checkpoints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from fedcore.context import Context
from fedcore.errors import ConfigError
from fedcore.fl import _secure
from fedcore.fl import dp as dpm
from fedcore.fl._session import (
    GLOBAL_TAG,
    CoordinatorSession,
    Evaluate,
    LocalFit,
    Metrics,
    PartySession,
    Report,
    SaveCheckpoint,
    SecureSum,
    progress_message,
    update_tag,
)
from fedcore.fl.arrays import Params, subtract
from fedcore.fl.checkpoint import Checkpoint, job_path, load_checkpoint, save_checkpoint
from fedcore.fl.config import TrainConfig
from fedcore.fl.messages import RoundStart
from fedcore.session import drive

__all__ = [
    "GLOBAL_TAG",
    "Evaluate",
    "Fit",
    "TrainConfig",
    "local_update",
    "progress_message",
    "train",
    "update_tag",
]

Fit = Callable[[Params, dict[str, Any]], tuple[Params, int]]


def train(
    ctx: Context, params: Params, fit: Fit, evaluate: Evaluate | None, config: TrainConfig
) -> dict[str, Any]:
    """Run the job as this party: the coordinator's rounds or a party's answers."""
    coordinator = config.coordinator or ctx.parties[0]
    if coordinator not in ctx.parties:
        raise ConfigError(f"coordinator {coordinator!r} is not a party of this job")
    session: CoordinatorSession | PartySession
    if ctx.party == coordinator:
        resume = _load_resume(ctx, params, config.resume) if config.resume else None
        session = CoordinatorSession(
            config,
            params,
            evaluate,
            me=ctx.party,
            parties=ctx.parties,
            seed=ctx.seed,
            rng=ctx.rng,
            clock=time.perf_counter,
            resume=resume,
        )
    else:
        session = PartySession(config, coordinator)
    drive(ctx, session, handle=_worker(ctx, session, fit, config, coordinator))
    return session.result


def _worker(
    ctx: Context, session: CoordinatorSession | PartySession, fit: Fit, config: TrainConfig, coordinator: str
) -> Callable[[Any], Iterable[Any] | None]:
    """Carry out the session's work items; the local fit and the secure sum answer it."""

    def handle(action: Any) -> Iterable[Any] | None:
        if isinstance(action, LocalFit):
            return session.fitted(*local_update(ctx, fit, action.message, config))
        if isinstance(action, SecureSum):
            res = _secure.contribute(ctx, action.message, action.delta, action.weight, coordinator, config)
            return session.summed(res.included, res.total)
        if isinstance(action, Report):
            ctx.progress(action.message, step=action.step, done=action.done, total=action.total)
        elif isinstance(action, Metrics):
            ctx.metrics(action.round, **action.values)
        elif isinstance(action, SaveCheckpoint):
            save_checkpoint(job_path(ctx, str(config.checkpoint)), action.checkpoint)
        else:
            raise TypeError(f"the training session returned {type(action).__name__}")
        return None

    return handle


def local_update(ctx: Context, fit: Fit, message: RoundStart, config: TrainConfig) -> tuple[Params, int, int]:
    """Train from the round's parameters; return (delta to send, weight, samples trained on)."""
    params = list(message.params)
    new, samples = fit(params, dict(message.config))
    delta = subtract(new, params)
    weight = samples
    if config.dp is not None:
        delta, _ = dpm.clip(delta, config.dp.clip_norm)
        weight = 1
        if config.dp.placement == "party" and not config.secure:
            std = dpm.party_noise_std(config.dp, message.picked or len(message.parties))
            delta = [d + n for d, n in zip(delta, dpm.gaussian_noise(delta, std, ctx.rng), strict=True)]
    return delta, weight, samples


def _load_resume(ctx: Context, params: Params, path: str) -> Checkpoint:
    ckpt = load_checkpoint(job_path(ctx, path, scope="party"))
    if len(ckpt.params) != len(params) or any(
        np.shape(a) != np.shape(b) for a, b in zip(ckpt.params, params, strict=True)
    ):
        raise ConfigError(f"resume: checkpoint {path} does not fit this model")
    return ckpt
