"""Messages of the vertical logistic regression protocol: small frozen dataclasses, validated.

The wire tag each travels under is chosen by the session (``fedcore.vertical._protocol.TAGS``).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedcore import wire
from fedcore.he import EncryptedVector


class EncryptedOperand(abc.ABC):  # noqa: B024 - a marker: the protocol's operations are the scheme's
    """What a message's ``enc`` may be: an unpacked vector of an HE scheme ``train`` accepts.

    ``fedcore.he.EncryptedVector`` is one (registered here); a benchmark baseline's vector
    subclasses it (``fedcore.bench._phe_baseline.PheVector``), so this module never imports it.
    """


EncryptedOperand.register(EncryptedVector)


def _check_batch(batch: Any, what: str) -> None:
    if type(batch) is not int or batch < 0:
        raise ValueError(f"{what}.batch must be a non-negative int")


def _check_plain(values: Any, what: str) -> None:
    if not isinstance(values, np.ndarray) or values.ndim != 1 or values.dtype != np.float64:
        raise ValueError(f"{what}.values must be a 1-D float64 array")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what}.values must be finite")


def _check_encrypted(enc: Any, what: str) -> None:
    if not isinstance(enc, EncryptedOperand) or getattr(enc, "packed", False):
        raise ValueError(f"{what}.enc must be an unpacked encrypted vector")


@wire.message("fedcore.vertical.HostScore", layout=wire.Layout.TUPLE)
@dataclass(frozen=True)
class HostScore:
    """Host -> guest: ``[[u_h]]_h``, the host's partial scores X_h w_h on the batch, under the host's key."""

    batch: int
    enc: Any

    def __post_init__(self) -> None:
        _check_batch(self.batch, "HostScore")
        _check_encrypted(self.enc, "HostScore")


@wire.message("fedcore.vertical.Residual", layout=wire.Layout.TUPLE)
@dataclass(frozen=True)
class Residual:
    """Guest -> first host, host -> next host: ``[[0.25 z_partial + 0.5 - y]]_g`` under the guest's key."""

    batch: int
    enc: Any

    def __post_init__(self) -> None:
        _check_batch(self.batch, "Residual")
        _check_encrypted(self.enc, "Residual")


@wire.message("fedcore.vertical.FinalResidual", layout=wire.Layout.TUPLE)
@dataclass(frozen=True)
class FinalResidual:
    """Last host -> other hosts: the complete ``[[d]]_g = [[0.25 z + 0.5 - y]]_g``."""

    batch: int
    enc: Any

    def __post_init__(self) -> None:
        _check_batch(self.batch, "FinalResidual")
        _check_encrypted(self.enc, "FinalResidual")


@wire.message("fedcore.vertical.HostGradient", layout=wire.Layout.TUPLE)
@dataclass(frozen=True)
class HostGradient:
    """Host -> guest: ``[[X_h^T d + r_h]]_g``, re-randomized; the guest sees only the masked sum."""

    batch: int
    enc: Any

    def __post_init__(self) -> None:
        _check_batch(self.batch, "HostGradient")
        _check_encrypted(self.enc, "HostGradient")


@wire.message("fedcore.vertical.MaskedTerm", layout=wire.Layout.TUPLE)
@dataclass(frozen=True)
class MaskedTerm:
    """Guest -> host: ``[[X_g^T u_h + r'_h]]_h``, re-randomized, for the host to decrypt."""

    batch: int
    enc: Any

    def __post_init__(self) -> None:
        _check_batch(self.batch, "MaskedTerm")
        _check_encrypted(self.enc, "MaskedTerm")


@wire.message("fedcore.vertical.TermReply", layout=wire.Layout.TUPLE)
@dataclass(frozen=True)
class TermReply:
    """Host -> guest: the decrypted ``X_g^T u_h + r'_h``."""

    batch: int
    values: np.ndarray

    def __post_init__(self) -> None:
        _check_batch(self.batch, "TermReply")
        _check_plain(self.values, "TermReply")


@wire.message("fedcore.vertical.Unmasked", layout=wire.Layout.TUPLE)
@dataclass(frozen=True)
class Unmasked:
    """Guest -> host: the decrypted ``X_h^T d + r_h``."""

    batch: int
    values: np.ndarray

    def __post_init__(self) -> None:
        _check_batch(self.batch, "Unmasked")
        _check_plain(self.values, "Unmasked")


MESSAGES = (HostScore, Residual, FinalResidual, HostGradient, MaskedTerm, TermReply, Unmasked)
