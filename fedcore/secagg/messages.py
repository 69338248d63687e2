"""SecAgg+ messages: frozen dataclasses validated when built and when decoded from the wire.

The stage each message belongs to is its ``STAGE``; who sends it to whom is in the theory of
operation in ``fedcore.secagg.protocol``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fedcore import wire
from fedcore.crypto import kx, shamir
from fedcore.secagg.protocol import Stage


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _check_round(round_id: object) -> None:
    _check(type(round_id) is str and 0 < len(round_id) <= 200, "round id must be a short str")


def _check_blobs(mapping: object, size: int | None, what: str) -> None:
    _check(type(mapping) is dict, f"{what} must be a dict")
    for key, value in mapping.items():  # type: ignore[attr-defined]
        _check(type(key) is str and type(value) is bytes, f"{what} maps names to bytes")
        _check(size is None or len(value) == size, f"{what}: each entry is {size} bytes")


@wire.message("fedcore.secagg.Advertise")
@dataclass(frozen=True)
class Advertise:
    """Client -> aggregator, stage 1: the client's two X25519 public keys."""

    STAGE: ClassVar[Stage] = Stage.ADVERTISE_KEYS
    round: str
    enc_pk: bytes
    mask_pk: bytes
    setup_digest: bytes

    def __post_init__(self) -> None:
        _check_round(self.round)
        kx.check_public(self.enc_pk)
        kx.check_public(self.mask_pk)
        _check(type(self.setup_digest) is bytes and len(self.setup_digest) == 32, "digest is 32 bytes")
        _check(self.enc_pk != self.mask_pk, "the two public keys must differ")


@wire.message("fedcore.secagg.PeerKeys")
@dataclass(frozen=True)
class PeerKeys:
    """Aggregator -> client, stage 1: public keys (enc, mask) of the client's neighbours in U1."""

    STAGE: ClassVar[Stage] = Stage.ADVERTISE_KEYS
    round: str
    keys: dict[str, tuple[bytes, bytes]]

    def __post_init__(self) -> None:
        _check_round(self.round)
        _check(type(self.keys) is dict, "keys must be a dict")
        for name, pair in self.keys.items():
            _check(type(name) is str and type(pair) in (tuple, list) and len(pair) == 2, "bad key entry")
            kx.check_public(pair[0])
            kx.check_public(pair[1])


@wire.message("fedcore.secagg.SealedShares")
@dataclass(frozen=True)
class SealedShares:
    """Client -> aggregator, stage 2: for each neighbour, its shares sealed with AEAD."""

    STAGE: ClassVar[Stage] = Stage.SHARE_KEYS
    round: str
    sealed: dict[str, bytes]

    def __post_init__(self) -> None:
        _check_round(self.round)
        _check_blobs(self.sealed, None, "sealed shares")


@wire.message("fedcore.secagg.ForwardedShares")
@dataclass(frozen=True)
class ForwardedShares:
    """Aggregator -> client, stage 2: the ciphertexts sealed to this client, by sender."""

    STAGE: ClassVar[Stage] = Stage.SHARE_KEYS
    round: str
    sealed: dict[str, bytes]

    def __post_init__(self) -> None:
        _check_round(self.round)
        _check_blobs(self.sealed, None, "forwarded shares")


@wire.message("fedcore.secagg.MaskedInput")
@dataclass(frozen=True)
class MaskedInput:
    """Client -> aggregator, stage 3: the masked vector y_u in Z_{2^k}."""

    STAGE: ClassVar[Stage] = Stage.MASKED_INPUT
    round: str
    vector: np.ndarray

    def __post_init__(self) -> None:
        _check_round(self.round)
        v = self.vector
        _check(
            isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.str in ("<u4", "<u8"),
            "masked input is a 1-d uint32/uint64 vector",
        )


@wire.message("fedcore.secagg.Survivors")
@dataclass(frozen=True)
class Survivors:
    """Aggregator -> client, stage 4: U3, the clients whose masked input is in the sum."""

    STAGE: ClassVar[Stage] = Stage.UNMASKING
    round: str
    survivors: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_round(self.round)
        _check(
            type(self.survivors) is tuple and all(type(s) is str for s in self.survivors),
            "survivors is a tuple of names",
        )
        _check(len(set(self.survivors)) == len(self.survivors), "survivors are distinct")


@wire.message("fedcore.secagg.UnmaskShares")
@dataclass(frozen=True)
class UnmaskShares:
    """Client -> aggregator, stage 4: shares of b_v (survivors v) and of s_v (dropped v)."""

    STAGE: ClassVar[Stage] = Stage.UNMASKING
    round: str
    seed_shares: dict[str, bytes]
    key_shares: dict[str, bytes]

    def __post_init__(self) -> None:
        _check_round(self.round)
        _check_blobs(self.seed_shares, shamir.SHARE_BYTES, "self-mask seed shares")
        _check_blobs(self.key_shares, shamir.SHARE_BYTES, "mask key shares")
        _check(
            not set(self.seed_shares) & set(self.key_shares),
            "double-masking rule: never both shares for one party",
        )


@wire.message("fedcore.secagg.Outcome")
@dataclass(frozen=True)
class Outcome:
    """Aggregator -> client, end: who is included, and the total with reveal='all'."""

    STAGE: ClassVar[Stage] = Stage.DONE
    round: str
    included: tuple[str, ...]
    total: np.ndarray | None

    def __post_init__(self) -> None:
        _check_round(self.round)
        _check(
            type(self.included) is tuple and all(type(s) is str for s in self.included),
            "included is a tuple of names",
        )
        _check(
            self.total is None or (isinstance(self.total, np.ndarray) and self.total.ndim == 1),
            "total is a 1-d array or None",
        )


@wire.message("fedcore.secagg.Abort")
@dataclass(frozen=True)
class Abort:
    """Aggregator -> client, any stage: the round failed, or this client was left out."""

    STAGE: ClassVar[Stage] = Stage.FAILED
    round: str
    lost: int
    reason: str

    def __post_init__(self) -> None:
        _check_round(self.round)
        _check(type(self.lost) is int and self.lost >= 0, "lost is a non-negative int")
        _check(type(self.reason) is str and len(self.reason) <= 500, "reason is a short str")


UP_MESSAGES = (Advertise, SealedShares, MaskedInput, UnmaskShares)
DOWN_MESSAGES = (PeerKeys, ForwardedShares, Survivors, Outcome, Abort)
