"""The secure-aggregation side of a training round (plain weighted sums and distributed DP).

Without DP each member gives ``[w Δ, w]`` (fixed point, ``fedcore.secagg``) and the coordinator
takes the ratio. With DP each member gives its clipped, rounded delta plus its Skellam noise
share as integers (``fedcore.fl.discrete``): the ring adds them, the coordinator decodes and
divides by a public count. The coordinator is always a member of the secure sum (it is its
aggregator); when it was not picked it gives zeros and adds no noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fedcore.context import Context
from fedcore.errors import ProtocolError
from fedcore.fl import discrete
from fedcore.fl import dp as dpm
from fedcore.fl.arrays import Params, flatten, unflatten
from fedcore.fl.config import TrainConfig
from fedcore.fl.messages import RoundStart
from fedcore.secagg import secure_sum

SECURE_BITS = 64  # ring width of secure aggregation: about 50 fractional bits at our ranges


def members(picked: Sequence[str], coordinator: str, population: Sequence[str]) -> list[str]:
    """The secure sum's parties: the picked ones and the coordinator, in job order."""
    chosen = {*picked, coordinator}
    return [p for p in population if p in chosen]


def make_ledger(config: TrainConfig, like: Params) -> Any:
    """The privacy ledger of a job: Skellam (secure) or Gaussian (plain), or None without DP."""
    if config.dp is None:
        return None
    if config.secure:
        return discrete.SkellamLedger(config.dp.delta, discrete.plan_for(config.dp, like))
    return dpm.PrivacyLedger(config.dp.delta, accountant=config.dp.accountant)


def round_mu(ledger: discrete.SkellamLedger, included: int, picked: int) -> float:
    """The total Skellam parameter of a round: the included shares (a full one if none picked)."""
    if picked == 0:
        return ledger.plan.party_mu(1)  # charged as if one party had been drawn
    return ledger.plan.party_mu(picked) * min(included, picked)


def _vector(
    ctx: Context, message: RoundStart, delta: Params | None, weight: int, config: TrainConfig
) -> tuple[np.ndarray, float | None]:
    """What this member gives the ring, and its value range (None: integers)."""
    if config.dp is not None:
        plan = discrete.plan_for(config.dp, message.params)
        if delta is None:
            return np.zeros(plan.dim, dtype=np.int64), None
        return discrete.encode(delta, plan, message.picked, ctx.rng), None
    bound = max(1.0, config.secure_clip)  # w <= 1 must fit too
    if delta is None:
        return np.zeros(sum(np.size(p) for p in message.params) + 1), bound
    w = min(weight, config.weight_cap) / config.weight_cap
    return np.append(w * np.clip(flatten(delta), -bound, bound), w), bound


def contribute(
    ctx: Context,
    message: RoundStart,
    delta: Params | None,
    weight: int,
    coordinator: str,
    config: TrainConfig,
) -> Any:
    """Give this member's vector to round ``message.round``'s secure sum (None: not picked)."""
    vector, bound = _vector(ctx, message, delta, weight, config)
    return secure_sum(
        ctx,
        vector,
        aggregator=coordinator,
        parties=tuple(message.parties),
        value_range=bound,
        bits=SECURE_BITS,
        timeout=config.round_timeout,
        round_id=f"fl/{message.round}",
    )


def mean_delta(config: TrainConfig, params: Params, rnd: int, total: Any, count: float) -> Params:
    """The weighted mean delta a round's secure sum ``total`` stands for (``count``: the public
    count a DP round divides by)."""
    flat = np.asarray(total, dtype=np.float64)
    if config.dp is not None:
        mean_flat = discrete.decode(flat, discrete.plan_for(config.dp, params)) / max(count, 1e-12)
    else:
        if not flat[-1] > 0:
            raise ProtocolError(f"round {rnd}: the secure sum carries no weight")
        mean_flat = flat[:-1] / flat[-1]
    return unflatten(mean_flat, [np.zeros(np.shape(p)) for p in params])
