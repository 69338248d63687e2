"""Messages of the SecureBoost sessions: small frozen dataclasses, validated when built.

Ciphertexts travel as one bytes blob of fixed-width big-endian integers (``pack_cts``);
the receiving session checks each against its key (``unpack_cts``). The wire tags are the
session's (``fedcore.vertical._sb_protocol.TO_HOST`` / ``TO_GUEST``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fedcore import he, wire  # he: registers PublicKey, which Setup carries
from fedcore.crypto import paillier

MAX_LEVEL = 64


def pack_cts(cts: list[Any], width: int) -> bytes:
    return b"".join(int(c).to_bytes(width, "big") for c in cts)


def unpack_cts(blob: bytes, width: int, modulus: int) -> list[Any]:
    """Ciphertexts from a blob; each must lie in (0, modulus) (any value >= 0 when modulus is 0).

    Raises:
        ValueError: a malformed blob or a value out of range.
    """
    if width <= 0 or len(blob) % width:
        raise ValueError(f"ciphertext blob of {len(blob)} bytes is not a multiple of {width}")
    view = memoryview(blob)
    out = [int.from_bytes(view[i : i + width], "big") for i in range(0, len(blob), width)]
    if modulus:
        if any(not 0 < c < modulus for c in out):
            raise ValueError("a ciphertext is outside (0, n^2)")
        return paillier.to_bigints(out)
    return out


def _int(value: Any, what: str, top: int = 2**62) -> None:
    if type(value) is not int or not 0 <= value < top:
        raise ValueError(f"{what} must be an int in 0..{top - 1}")


def _rows(value: Any, what: str) -> None:
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype != np.int64:
        raise ValueError(f"{what} must be a 1-D int64 array")


def _row_list(value: Any, what: str) -> None:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list of arrays")
    for item in value:
        _rows(item, what)


@wire.message("fedcore.vertical.sb.Setup")
@dataclass(frozen=True)
class Setup:
    """Guest -> host, once: the scheme, the guest's public key (None for "plain") and max rows per tree."""

    scheme: str
    public_key: Any
    max_rows: int

    def __post_init__(self) -> None:
        if self.scheme not in ("paillier", "plain"):
            raise ValueError("Setup.scheme must be 'paillier' or 'plain'")
        if (self.scheme == "paillier") != isinstance(self.public_key, he.PublicKey):
            raise ValueError(
                "Setup.public_key must be a fedcore.he.PublicKey for 'paillier', None for 'plain'"
            )
        _int(self.max_rows, "Setup.max_rows", 2**40)


@wire.message("fedcore.vertical.sb.TreeStart")
@dataclass(frozen=True)
class TreeStart:
    """Guest -> host: tree number, its sampled rows and [[(g, h, 1)]] of each; the root histogram is due."""

    tree: int
    rows: np.ndarray
    cts: bytes

    def __post_init__(self) -> None:
        _int(self.tree, "TreeStart.tree")
        _rows(self.rows, "TreeStart.rows")
        if type(self.cts) is not bytes:
            raise ValueError("TreeStart.cts must be bytes")


@wire.message("fedcore.vertical.sb.HistQuery")
@dataclass(frozen=True)
class HistQuery:
    """Guest -> host: build the histograms of these row sets (the smaller child of each pair)."""

    tree: int
    level: int
    rows: list[np.ndarray]

    def __post_init__(self) -> None:
        _int(self.tree, "HistQuery.tree")
        _int(self.level, "HistQuery.level", MAX_LEVEL)
        _row_list(self.rows, "HistQuery.rows")


@wire.message("fedcore.vertical.sb.Histograms")
@dataclass(frozen=True)
class Histograms:
    """Host -> guest: encrypted bin sums, nodes x slots x bins, in the host's private column order."""

    tree: int
    level: int
    slots: int
    bins: int
    cts: bytes

    def __post_init__(self) -> None:
        _int(self.tree, "Histograms.tree")
        _int(self.level, "Histograms.level", MAX_LEVEL)
        _int(self.slots, "Histograms.slots", 2**20)
        _int(self.bins, "Histograms.bins", 257)
        if type(self.cts) is not bytes:
            raise ValueError("Histograms.cts must be bytes")


@wire.message("fedcore.vertical.sb.SplitQuery")
@dataclass(frozen=True)
class SplitQuery:
    """Guest -> host: split these nodes at (slot, bin); ``rows`` are every row routed to each node."""

    tree: int
    level: int
    slots: np.ndarray
    bins: np.ndarray
    rows: list[np.ndarray]

    def __post_init__(self) -> None:
        _int(self.tree, "SplitQuery.tree")
        _int(self.level, "SplitQuery.level", MAX_LEVEL)
        _rows(self.slots, "SplitQuery.slots")
        _rows(self.bins, "SplitQuery.bins")
        _row_list(self.rows, "SplitQuery.rows")
        if not len(self.slots) == len(self.bins) == len(self.rows):
            raise ValueError("SplitQuery needs as many slots, bins and row sets")


@wire.message("fedcore.vertical.sb.SplitAnswer")
@dataclass(frozen=True)
class SplitAnswer:
    """Host -> guest: an opaque id per split and, per node, which of its rows go left."""

    tree: int
    level: int
    ids: np.ndarray
    left: list[np.ndarray]

    def __post_init__(self) -> None:
        _int(self.tree, "SplitAnswer.tree")
        _int(self.level, "SplitAnswer.level", MAX_LEVEL)
        _rows(self.ids, "SplitAnswer.ids")
        if not isinstance(self.left, list) or len(self.left) != len(self.ids):
            raise ValueError("SplitAnswer.left must be a list with one mask per id")
        for mask in self.left:
            if not isinstance(mask, np.ndarray) or mask.ndim != 1 or mask.dtype != np.bool_:
                raise ValueError("SplitAnswer.left must hold 1-D bool arrays")


@wire.message("fedcore.vertical.sb.Finish")
@dataclass(frozen=True)
class Finish:
    """Guest -> host: training is over; keep the splits of the first ``trees`` trees."""

    trees: int

    def __post_init__(self) -> None:
        _int(self.trees, "Finish.trees")


MESSAGES = (Setup, TreeStart, HistQuery, Histograms, SplitQuery, SplitAnswer, Finish)
