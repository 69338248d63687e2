"""Fixed-point encoding of plain numbers into Paillier plaintext slots, and back.

Precision and range (the contract every test checks):

- A float x is encoded as the integer m = round(x * 2^F); decoding gives m / 2^F, so the
  absolute error of one value is at most 2^-(F+1). Integers (integer dtypes, with F = 0)
  are exact. A value must satisfy |m| <= 2^(B-1) - 1 (B = ``value_bits``), otherwise
  ``EncodingError``; NaN and infinities are always refused.
- Packed default (``PACKED``): F = 20, B = 32: |x| <= 2047.999999, error <= 4.8e-7 per value.
  Each slot is W = B + ceil(log2(max_terms)) = 42 bits wide (``max_terms`` = 1024 fresh
  values may be added into a slot), so a 2048-bit key holds floor(2047 / 42) = 48 slots.
- Unpacked default (``UNPACKED``): F = 32, B = 64: |x| < 2^31, error <= 1.2e-10 per value;
  a slot is the whole plaintext (|m| < 2^(bits(n)-3), inside ``phe``'s n/3 window), so
  thousands of products and sums fit. F is a multiple of 4 so ``phe`` (base 16) can read it.
- Integer inputs use the same B with F = 0 (``PACKED_INT``, ``UNPACKED_INT``).

Every encrypted vector carries ``bound``: the largest |m| any of its slots can hold, computed
from the declared ranges and the operations applied (sum of bounds for additions, product
for multiplications by plain arrays), never from the data, so it reveals nothing about the
values. An operation whose result bound would exceed the slot capacity raises
``HeadroomError`` before it is computed. Multiplying by a plain *scalar* records that
scalar's encoded magnitude in the bound (scalars are usually public: a learning rate, 1/N).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedcore.crypto.packing import MAX_SLOT_BITS, slots_per_plaintext
from fedcore.he._errors import EncodingError

MAX_VALUE_BITS = 64
MAX_FRAC_BITS = 62


@dataclass(frozen=True)
class FixedPoint:
    """A fixed-point format: scale 2^-frac_bits, signed values of value_bits bits.

    Attributes:
        frac_bits: fractional bits F (0 for exact integers).
        value_bits: signed width B of one encoded value: |round(x * 2^F)| <= 2^(B-1) - 1.
        max_terms: packed headroom: a slot can hold the sum of this many fresh values.
    """

    frac_bits: int
    value_bits: int
    max_terms: int = 1024

    def __post_init__(self) -> None:
        for name, value in (
            ("frac_bits", self.frac_bits),
            ("value_bits", self.value_bits),
            ("max_terms", self.max_terms),
        ):
            if type(value) is not int:
                raise TypeError(f"FixedPoint.{name} must be an int, got {type(value).__name__}")
        if not 0 <= self.frac_bits <= MAX_FRAC_BITS:
            raise ValueError(f"frac_bits must be in 0..{MAX_FRAC_BITS}, got {self.frac_bits}")
        if not 2 <= self.value_bits <= MAX_VALUE_BITS:
            raise ValueError(f"value_bits must be in 2..{MAX_VALUE_BITS}, got {self.value_bits}")
        if self.max_terms < 1:
            raise ValueError(f"max_terms must be >= 1, got {self.max_terms}")

    @property
    def max_encoded(self) -> int:
        """The largest |m| of one fresh value."""
        return (1 << (self.value_bits - 1)) - 1

    @property
    def max_abs(self) -> float:
        """The largest float |x| that encodes (m itself rounded down to a double)."""
        top = float(self.max_encoded)
        if top > self.max_encoded:
            top = float(np.nextafter(top, 0.0))
        return float(np.ldexp(top, -self.frac_bits))

    @property
    def packed_slot_bits(self) -> int:
        """Slot width W = value_bits + ceil(log2(max_terms)) for packing."""
        return self.value_bits + (self.max_terms - 1).bit_length()

    def integer_variant(self) -> FixedPoint:
        """The same widths with F = 0, for integer inputs."""
        return FixedPoint(0, self.value_bits, self.max_terms)


PACKED = FixedPoint(frac_bits=20, value_bits=32, max_terms=1024)
PACKED_INT = PACKED.integer_variant()
UNPACKED = FixedPoint(frac_bits=32, value_bits=64, max_terms=1024)
UNPACKED_INT = UNPACKED.integer_variant()


@dataclass(frozen=True)
class Layout:
    """How values sit in plaintexts: ``slots`` signed slots of ``slot_bits`` bits each.

    Unpacked vectors have one slot per plaintext, as wide as ``phe`` allows.
    """

    packed: bool
    slot_bits: int
    slots: int

    @property
    def capacity(self) -> int:
        """The largest |m| a slot can hold and still decode."""
        return (1 << (self.slot_bits - 1)) - 1

    def ciphertexts_for(self, length: int) -> int:
        return -(-length // self.slots)

    @classmethod
    def for_key(cls, n_bits: int, packed: bool, slot_bits: int | None = None) -> Layout:
        """The layout of a vector under an ``n_bits``-bit key.

        Raises:
            ValueError: the slot width does not fit the key.
        """
        if not packed:
            return cls(False, n_bits - 2, 1)
        if slot_bits is None or not 2 <= slot_bits <= MAX_SLOT_BITS:
            raise ValueError(f"packed slots must be 2..{MAX_SLOT_BITS} bits wide, got {slot_bits}")
        slots = slots_per_plaintext(n_bits, slot_bits)
        if slots < 1:
            raise ValueError(f"a {n_bits}-bit key cannot hold one {slot_bits}-bit slot")
        return cls(True, slot_bits, slots)


def default_encoding(packed: bool, integer: bool) -> FixedPoint:
    if packed:
        return PACKED_INT if integer else PACKED
    return UNPACKED_INT if integer else UNPACKED


def is_integer_array(values: np.ndarray) -> bool:
    return values.dtype.kind in "biu"


def to_fixed(values: np.ndarray, frac_bits: int, value_bits: int) -> np.ndarray:
    """Encode a 1-D or 2-D numeric array as int64 m = round(x * 2^frac_bits).

    Raises:
        EncodingError: a value is NaN, infinite or beyond |m| <= 2^(value_bits-1) - 1.
        TypeError: the array is not numeric.
    """
    limit = (1 << (value_bits - 1)) - 1
    if is_integer_array(values):
        wide = values.astype(object) if values.dtype.kind == "u" else values.astype(np.int64)
        if wide.size and (wide.max() > limit >> frac_bits or wide.min() < -(limit >> frac_bits)):
            raise EncodingError(_range_message(frac_bits, value_bits))
        return wide.astype(np.int64) << np.int64(frac_bits)
    if values.dtype.kind != "f":
        raise TypeError(f"fedcore.he encodes float, int or bool arrays, not dtype {values.dtype}")
    floats = values.astype(np.float64)
    if not np.all(np.isfinite(floats)):
        raise EncodingError("cannot encode NaN or infinite values")
    scaled = np.rint(np.ldexp(floats, frac_bits))
    if scaled.size and np.max(np.abs(scaled)) >= 2.0 ** (value_bits - 1):
        raise EncodingError(_range_message(frac_bits, value_bits))
    return scaled.astype(np.int64)


def _range_message(frac_bits: int, value_bits: int) -> str:
    max_abs = ((1 << (value_bits - 1)) - 1) / 2.0**frac_bits
    return (
        f"value outside the encodable range |x| <= {max_abs:.6g} (fixed point with {frac_bits} "
        f"fractional bits in {value_bits} signed bits): scale the data or pass a wider encoding"
    )


def scalar_to_fixed(value: object, frac_bits: int, value_bits: int) -> int:
    """Encode one plain scalar (Python or numpy int/float) like ``to_fixed``."""
    if isinstance(value, bool | np.bool_ | int | np.integer):
        limit = (1 << (value_bits - 1)) - 1
        if abs(int(value)) > limit >> frac_bits:
            raise EncodingError(_range_message(frac_bits, value_bits))
        return int(value) << frac_bits
    if isinstance(value, float | np.floating):
        return int(to_fixed(np.array([value], dtype=np.float64), frac_bits, value_bits)[0])
    raise TypeError(f"a plain scalar must be an int or a float, got {type(value).__name__}")


def from_fixed(values: np.ndarray | list[int], frac_bits: int, integer: bool) -> np.ndarray:
    """Decode integers m to floats m / 2^frac_bits (or ints when ``integer`` and F = 0)."""
    if isinstance(values, np.ndarray):
        if integer and frac_bits == 0:
            return values.astype(np.int64)
        return np.ldexp(values.astype(np.float64), -frac_bits)
    if integer and frac_bits == 0:
        if all(-(2**63) <= v < 2**63 for v in values):
            return np.array(values, dtype=np.int64)
        return np.array(values, dtype=object)
    scale = 1 << frac_bits
    return np.array([v / scale for v in values], dtype=np.float64)
