"""``TrainConfig``: how a federated training job runs (``fedcore.fl.rounds``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from fedcore.errors import ConfigError
from fedcore.fl import dp as dpm
from fedcore.fl.sampling import Sampling
from fedcore.fl.strategies import Strategy


@dataclass(frozen=True)
class TrainConfig:
    """How a federated training job runs.

    Args:
        rounds: number of rounds (counted from 1; a resumed job continues to this number).
        strategy: the aggregation strategy and its failure policy.
        secure: aggregate through ``fedcore.secagg`` (weighted strategies only).
        dp: client-level DP settings, or None. With ``secure`` the noise is distributed
            Skellam noise added by the parties (placement ``party``).
        sampling: which parties train each round; with DP and ``fraction < 1`` it is always
            Poisson sampling at rate ``fraction``.
        coordinator: the coordinating party (default: the first party).
        round_timeout: seconds to wait for updates or the next round (default: ctx's).
        weight_cap: secure mode: a public bound on sample counts, the same at every party; a party
            sends weight ``min(n, weight_cap) / weight_cap`` (so at most 1).
        secure_clip: secure mode: every delta coordinate is clamped to [-secure_clip, secure_clip].
        checkpoint: directory to save a checkpoint into after each round, inside the party's output
            folder (``ctx.output_path``).
        resume: a checkpoint file or directory to continue from, inside the party's output
            folders (``ctx.output_path(..., scope="party")``: ``<earlier job id>/ckpt``).
    """

    rounds: int
    strategy: Strategy
    secure: bool = False
    dp: dpm.DPConfig | None = None
    sampling: Sampling = dataclasses.field(default_factory=Sampling)
    coordinator: str | None = None
    round_timeout: float | None = None
    weight_cap: int = 1_000_000
    secure_clip: float = 4.0
    checkpoint: str | None = None
    resume: str | None = None

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise ConfigError(f"rounds must be >= 0, got {self.rounds}")
        if (self.secure or self.dp) and not self.strategy.weighted:
            raise ConfigError(
                f"strategy {self.strategy.name} aggregates per coordinate; secure aggregation and DP "
                "need a weighted-average strategy (fedavg, fedprox, fedadam, fedyogi, fedadagrad)"
            )
        if self.weight_cap < 1 or not self.secure_clip > 0:
            raise ConfigError("weight_cap must be >= 1 and secure_clip > 0")
        if self.dp is not None and self.secure and self.dp.placement != "party":
            # the coordinator sees only the secure sum: the noise has to come from the parties
            object.__setattr__(self, "dp", dataclasses.replace(self.dp, placement="party"))
        if self.dp is not None and not self.sampling.everyone and not self.sampling.poisson:
            object.__setattr__(self, "sampling", dataclasses.replace(self.sampling, poisson=True))
