"""The messages of a training round, as frozen dataclasses the wire codec carries.

Each is registered with ``fedcore.wire`` under ``fedcore.fl.*``; decoding a message from
another party rebuilds it through the constructor, whose checks run on hostile input (a
failed check becomes ``DecodeError`` at the receiver). Shapes are checked against the
global model by the receiver (``fedcore.fl.arrays.check_like``), which alone knows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedcore import wire

_CONFIG_TYPES = (bool, int, float, str)


def _arrays(values: Any, what: str) -> tuple[np.ndarray, ...]:
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, np.ndarray) for v in values):
        raise ValueError(f"{what} must be a list of numpy arrays")
    if any(v.dtype.kind not in "fiu" for v in values):
        raise ValueError(f"{what} must be numeric arrays")
    return tuple(values)


def _round(value: Any) -> int:
    if type(value) is not int or value < 1:
        raise ValueError(f"round must be a positive int, got {value!r}")
    return value


@wire.message("fedcore.fl.RoundStart", layout=wire.Layout.TUPLE, lists=("params", "parties"))
@dataclass(frozen=True)
class RoundStart:
    """Coordinator -> party: train from ``params`` in round ``round`` with ``config``.

    ``parties`` are the round's members (with secure aggregation: the members of its secure
    sum, the coordinator always among them); ``picked`` is how many of them were sampled to
    train (0: every member), which sizes each party's share of distributed DP noise.
    """

    round: int
    params: tuple[np.ndarray, ...]
    parties: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict)
    picked: int = 0

    def __post_init__(self) -> None:
        _round(self.round)
        if type(self.picked) is not int or not 0 <= self.picked <= len(self.parties):
            raise ValueError(f"picked must be an int in [0, {len(self.parties)}], got {self.picked!r}")
        object.__setattr__(self, "params", _arrays(self.params, "params"))
        if not isinstance(self.parties, (list, tuple)) or not all(isinstance(p, str) for p in self.parties):
            raise ValueError("parties must be a list of party names")
        object.__setattr__(self, "parties", tuple(self.parties))
        config = self.config
        if not isinstance(config, dict) or not all(
            isinstance(k, str) and isinstance(v, _CONFIG_TYPES) for k, v in config.items()
        ):
            raise ValueError("config must map names to bool, int, float or str")


@wire.message("fedcore.fl.Wait", layout=wire.Layout.SINGLE)
@dataclass(frozen=True)
class Wait:
    """Coordinator -> party: you were not picked for round ``round``; wait for the next."""

    round: int

    def __post_init__(self) -> None:
        _round(self.round)


@wire.message("fedcore.fl.Stop", layout=wire.Layout.SINGLE)
@dataclass(frozen=True)
class Stop:
    """Coordinator -> party: training is over."""

    reason: str = "done"

    def __post_init__(self) -> None:
        if not isinstance(self.reason, str):
            raise ValueError("reason must be a string")


@wire.message("fedcore.fl.ClientUpdate", layout=wire.Layout.TUPLE, lists=("delta",))
@dataclass(frozen=True)
class ClientUpdate:
    """Party -> coordinator (plain aggregation): this round's delta and weight."""

    round: int
    delta: tuple[np.ndarray, ...]
    samples: int

    def __post_init__(self) -> None:
        _round(self.round)
        object.__setattr__(self, "delta", _arrays(self.delta, "delta"))
        if type(self.samples) is not int or self.samples < 0:
            raise ValueError(f"samples must be a non-negative int, got {self.samples!r}")
