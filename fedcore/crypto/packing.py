"""Packing signed integers into Paillier plaintexts as W-bit signed digits (hazmat tier).

A plaintext holds k slots: P = sum_j m_j * 2^(W*j) as a *signed* integer, stored mod n.
Each slot value satisfies |m_j| <= 2^(W-1) - 1, so |P| < 2^(W*k - 1) <= n/2 whenever
W*k <= bits(n) - 1 (``slots_per_plaintext``). Because P is a polynomial in 2^W with
signed coefficients, Paillier's additions and multiplications by integers act on every
slot at once, exactly, as long as every slot stays within the bound: the caller tracks
that bound and refuses an operation before it could be exceeded (BatchCrypt, USENIX ATC
2020, packs the same way with per-slot padding bits).

Unpacking centres P into (-n/2, n/2], adds O = sum_j 2^(W-1) * 2^(W*j) so every digit is
non-negative, and reads the bit fields. A P' outside [0, 2^(W*k)) cannot have come from
in-bound slots and is reported as a decode failure, as is any slot above the bound or a
padding slot that is not zero: a corrupted ciphertext decrypts to a uniform P and passes
these checks with probability below 2^-(k * headroom_bits).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import SupportsInt

import numpy as np

MAX_SLOT_BITS = 63


def slots_per_plaintext(n_bits: int, slot_bits: int) -> int:
    """How many ``slot_bits``-wide signed slots fit a plaintext of an ``n_bits``-bit modulus."""
    return (n_bits - 1) // slot_bits


def _offset(slot_bits: int, slots: int) -> int:
    digit = 1 << (slot_bits - 1)
    return sum(digit << (slot_bits * j) for j in range(slots))


def pack(values: np.ndarray, slot_bits: int, slots: int) -> list[int]:
    """Pack int64 ``values`` (|v| < 2^(slot_bits-1)) into ceil(len/slots) signed integers.

    The last integer is padded with zero slots.
    """
    if not 1 < slot_bits <= MAX_SLOT_BITS:
        raise ValueError(f"slot width must be 2..{MAX_SLOT_BITS} bits, got {slot_bits}")
    count = -(-len(values) // slots)
    padded = np.zeros(count * slots, dtype=np.int64)
    padded[: len(values)] = values
    digits = (padded + np.int64(1 << (slot_bits - 1))).astype("<u8")
    bits = np.unpackbits(digits.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    rows = bits[:, :slot_bits].reshape(count, slots * slot_bits)
    packed = np.packbits(rows, axis=1, bitorder="little")
    offset = _offset(slot_bits, slots)
    return [int.from_bytes(row.tobytes(), "little") - offset for row in packed]


def centre(plaintext: SupportsInt, n: int) -> int:
    """The representative of ``plaintext`` mod n in (-n/2, n/2]."""
    plaintext = int(plaintext)
    return plaintext - n if plaintext > n // 2 else plaintext


def unpack(
    plaintexts: Sequence[SupportsInt], n: int, slot_bits: int, slots: int, length: int, bound: int
) -> np.ndarray | None:
    """Unpack plaintexts (in [0, n)) made of ``slots`` slots into ``length`` int64 values.

    Each plaintext costs three big-int operations (centre, add the offset, one
    ``to_bytes``); the slots are then cut out of the byte buffer with numpy.

    Returns:
        the values, or None when the plaintexts do not decode: a value beyond the bound,
        a non-zero padding slot, or bits outside the slots.
    """
    width = slots * slot_bits
    stride = (width + 7) // 8 + 7  # 7 spare zero bytes: every slot can be read as 8 bytes
    offset = _offset(slot_bits, slots)
    limit = 1 << width
    half = n // 2
    rows = []
    for plaintext in plaintexts:
        plaintext = int(plaintext)
        shifted = (plaintext - n if plaintext > half else plaintext) + offset
        if not 0 <= shifted < limit:
            return None
        rows.append(shifted.to_bytes(stride, "little"))
    raw = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), stride)
    digits = _fields(raw, slot_bits, slots)
    values = digits.astype(np.int64) - np.int64(1 << (slot_bits - 1))
    if np.any(values[length:]) or np.any(np.abs(values[:length]) > bound):
        return None
    return values[:length]


def _fields(raw: np.ndarray, slot_bits: int, slots: int) -> np.ndarray:
    """The ``slots`` little-endian ``slot_bits``-bit fields of every row of bytes, flattened, as uint64."""
    starts = np.arange(slots, dtype=np.int64) * slot_bits
    if slot_bits + 7 <= 64:  # a field and its bit shift fit one unaligned 8-byte read
        index = (starts >> 3)[:, None] + np.arange(8, dtype=np.int64)
        words = np.ascontiguousarray(raw[:, index]).view("<u8").reshape(len(raw), slots)
        mask = np.uint64((1 << slot_bits) - 1)
        return ((words >> (starts & 7).astype(np.uint64)) & mask).reshape(-1)
    bits = np.unpackbits(raw, axis=1, bitorder="little")[:, : slots * slot_bits].reshape(-1, slot_bits)
    wide = np.zeros((bits.shape[0], 64), dtype=np.uint8)
    wide[:, :slot_bits] = bits
    return np.packbits(wide, axis=1, bitorder="little").view("<u8").reshape(-1)


def unpack_single(plaintexts: Sequence[SupportsInt], n: int, bound: int) -> list[int] | None:
    """Decode one signed value per plaintext; None if any lies beyond ``bound``."""
    values = [centre(p, n) for p in plaintexts]
    if any(abs(v) > bound for v in values):
        return None
    return values
