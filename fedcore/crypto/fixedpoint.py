"""Fixed-point encoding of vectors into the ring Z_{2^k} (k = 32 or 64) and back.

Secure aggregation adds vectors in a ring of unsigned words, where overflow would wrap
silently. This module makes that impossible for the declared inputs:

- A plan (``plan``) fixes, before the round and identically at every party, the ring width
  k, the fractional bits F and the per-party bound B on |encoded value|, such that
  ``parties * B < 2^(k-1)``: the sum of every party's encoding, read as a signed k-bit
  integer, is exact.
- Floats: value_range R (required: max |x| each party may contribute) gives
  F = k - 2 - ceil(log2 parties) - ceil(log2 R) and B = ceil(R * 2^F); x encodes as
  round(x * 2^F), so the decoded sum is within parties * 2^-(F+1) of the true sum.
  F below ``MIN_FRAC_BITS`` is refused (ConfigError: widen the ring or narrow R).
- Integers: B = value_range if given, else the largest bound that fits (2^(k-1)-1) // parties.
- Values beyond the range are refused (ValueError, the default) or clipped to [-R, R], as the
  caller chooses; never wrapped. NaN and infinities are always refused.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from fedcore.crypto.prg import word_dtype
from fedcore.errors import ConfigError

MIN_FRAC_BITS = 8


class Overflow(enum.StrEnum):
    """What ``encode`` does with a value beyond the declared range: ``refuse`` it or ``clip`` it."""

    REFUSE = "refuse"
    CLIP = "clip"


OVERFLOW_POLICIES = tuple(Overflow)


@dataclass(frozen=True)
class RingEncoding:
    """How vectors map into Z_{2^ring_bits}: the same at every party of a round."""

    kind: str  # "float" or "int"
    ring_bits: int
    frac_bits: int
    bound: int
    parties: int

    def __post_init__(self) -> None:
        if self.kind not in ("float", "int"):
            raise ValueError(f"kind is 'float' or 'int', got {self.kind!r}")
        word_dtype(self.ring_bits)
        if self.parties < 1 or self.bound < 1 or self.frac_bits < 0:
            raise ValueError("parties and bound must be positive and frac_bits non-negative")
        if self.parties * self.bound >= 1 << (self.ring_bits - 1):
            raise ConfigError(
                f"{self.parties} parties x bound {self.bound} overflows the {self.ring_bits}-bit ring: "
                "use bits=64 or a smaller value_range"
            )

    @property
    def dtype(self) -> np.dtype:
        return word_dtype(self.ring_bits)

    @property
    def resolution(self) -> float:
        return 2.0**-self.frac_bits

    def as_tuple(self) -> tuple[str, int, int, int, int]:
        return (self.kind, self.ring_bits, self.frac_bits, self.bound, self.parties)


def default_bits(dtype: np.dtype) -> int:
    """32 for inputs of 4 bytes or fewer (float32, int32, ...), else 64."""
    return 32 if np.dtype(dtype).itemsize <= 4 else 64


def plan(kind: str, parties: int, *, value_range: float | None, bits: int) -> RingEncoding:
    """The encoding for ``parties`` inputs of ``kind`` within ``value_range``.

    Raises:
        ConfigError: a float plan without a valid ``value_range``, too few fractional bits,
            or a bound that cannot fit.
    """
    if bits not in (32, 64):
        raise ConfigError(f"bits is the ring width, 32 or 64; got {bits!r}")
    if kind == "int":
        top = (1 << (bits - 1)) - 1
        bound = top // parties if value_range is None else _int_range(value_range)
        return RingEncoding("int", bits, 0, bound, parties)
    if value_range is None or not math.isfinite(value_range) or value_range <= 0:
        raise ConfigError(
            f"float inputs need value_range, the largest |x| any party may contribute (got {value_range!r})"
        )
    frac = bits - 2 - math.ceil(math.log2(parties)) - math.ceil(math.log2(value_range))
    if frac < MIN_FRAC_BITS:
        raise ConfigError(
            f"value_range {value_range} with {parties} parties leaves {frac} fractional bits in a "
            f"{bits}-bit ring (need {MIN_FRAC_BITS}): use bits=64 or a smaller value_range"
        )
    frac = min(frac, 52 if bits == 64 else frac)
    return RingEncoding("float", bits, frac, math.ceil(value_range * 2.0**frac), parties)


def _int_range(value_range: float) -> int:
    if value_range < 1 or value_range != int(value_range):
        raise ConfigError(f"integer inputs take a positive whole value_range, got {value_range!r}")
    return int(value_range)


def encode(x: np.ndarray, enc: RingEncoding, overflow: Overflow | str = Overflow.REFUSE) -> np.ndarray:
    """``x`` as ring words under ``enc`` (a new array).

    Float32 input in a 32-bit ring is scaled in float32: multiplying by 2^F and rounding to an
    integer are exact there, so the result equals the float64 computation, with half the
    memory traffic.

    Raises:
        ValueError: a value beyond the range with ``overflow="refuse"``, or a NaN/infinity.
    """
    if overflow not in OVERFLOW_POLICIES:
        raise ValueError(f"overflow is one of {', '.join(OVERFLOW_POLICIES)}, got {overflow!r}")
    x = np.asarray(x).reshape(-1)
    signed = np.int32 if enc.ring_bits == 32 else np.int64
    if enc.kind == "float":
        if x.dtype.kind != "f":
            raise TypeError(f"float encoding takes a float vector, got {x.dtype}")
        work = np.float32 if x.dtype == np.float32 and enc.ring_bits == 32 else np.float64
        scaled = x.astype(work)  # a copy, scaled in place below
        if not np.isfinite(scaled).all():
            raise ValueError("input has NaN or infinite values")
        np.multiply(scaled, work(2.0**enc.frac_bits), out=scaled)
        np.rint(scaled, out=scaled)
    else:
        if x.dtype.kind not in "iub":
            raise TypeError(f"integer encoding takes an integer vector, got {x.dtype}")
        scaled = x.astype(np.int64)
    if scaled.size and max(float(scaled.max()), -float(scaled.min())) > enc.bound:
        if overflow == Overflow.REFUSE:
            raise ValueError(
                f"input exceeds the declared range (|x| <= {enc.bound * enc.resolution:g}): "
                "pass overflow='clip' or a larger value_range"
            )
        np.clip(scaled, -enc.bound, enc.bound, out=scaled)  # now castable; exact bound below
        words = scaled.astype(signed)
        np.clip(words, -enc.bound, enc.bound, out=words)
        return words.view(enc.dtype)
    return scaled.astype(signed).view(enc.dtype)


def decode(acc: np.ndarray, enc: RingEncoding) -> np.ndarray:
    """A ring sum back to numbers: float64 for floats, int64 for integers."""
    signed = acc.view(np.int32 if enc.ring_bits == 32 else np.int64)
    if enc.kind == "int":
        return signed.astype(np.int64)
    return signed.astype(np.float64) * enc.resolution
