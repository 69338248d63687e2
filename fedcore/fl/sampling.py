"""Which parties train in a round: fixed-size or Poisson client sampling from the job seed.

Theory of operation. The coordinator alone draws the sample of round ``t``, from a generator
seeded with ``(job seed, t)``, so a job is reproducible and a resumed job draws the same
parties again. The population is the round's *active* parties (those not lost earlier).

- Fixed size (runs without DP): ``k = clamp(round(fraction * n), min_parties, max_parties)``
  parties drawn without replacement (Flower's ``fraction_fit`` / ``min_fit_clients``).
- Poisson (runs with DP and ``fraction < 1``): each active party is in the round
  independently with probability ``q = fraction``; the round may even be empty. This is the
  sampling that the accountant's ``PoissonSampledDpEvent(q, ...)`` assumes (privacy
  amplification by sampling, Abadi et al. 2016; McMahan et al. 2018 for parties). The
  guarantee is towards those who see the released models, not towards parties who know the
  job seed and could recompute the sample.

Parties that are not picked are told so (``fedcore.fl.messages.Wait``) and wait for the next
round; they are not counted as dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedcore.errors import ConfigError

_STREAM = 0x5A4D50  # separates the sampling stream from every other use of the job seed


@dataclass(frozen=True)
class Sampling:
    """Client sampling settings.

    Args:
        fraction: share of the active parties that train in a round, in (0, 1].
        min_parties: fixed-size sampling: pick at least this many (capped by who is active).
        max_parties: fixed-size sampling: pick at most this many (None: no cap).
        poisson: pick each party independently with probability ``fraction`` (DP runs).
    """

    fraction: float = 1.0
    min_parties: int = 1
    max_parties: int | None = None
    poisson: bool = False

    def __post_init__(self) -> None:
        if not (0 < self.fraction <= 1) or not math.isfinite(self.fraction):
            raise ConfigError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.min_parties < 1:
            raise ConfigError(f"min_parties must be at least 1, got {self.min_parties}")
        if self.max_parties is not None and self.max_parties < self.min_parties:
            raise ConfigError(
                f"max_parties ({self.max_parties}) must be at least min_parties ({self.min_parties})"
            )

    @property
    def everyone(self) -> bool:
        """True when every active party trains in every round (no sampling at all)."""
        return self.fraction >= 1 and self.max_parties is None

    @property
    def rate(self) -> float:
        """The per-party sampling probability the accountant is charged (1 without Poisson)."""
        return self.fraction if self.poisson else 1.0

    def size(self, population: int) -> int:
        """Fixed-size sampling: how many of ``population`` parties train."""
        k = max(self.min_parties, round(self.fraction * population))
        if self.max_parties is not None:
            k = min(k, self.max_parties)
        return min(k, population)

    def pick(self, rnd: int, seed: int, active: Sequence[str]) -> list[str]:
        """The parties of round ``rnd`` among ``active``, in ``active``'s order."""
        if self.everyone and not self.poisson:
            return list(active)
        rng = np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, rnd, _STREAM])
        if self.poisson:
            chosen = rng.random(len(active)) < self.fraction
            return [p for p, c in zip(active, chosen, strict=True) if c]
        index = set(rng.choice(len(active), size=self.size(len(active)), replace=False).tolist())
        return [p for i, p in enumerate(active) if i in index]
