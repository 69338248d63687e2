"""Conversion between unpacked EncryptedVectors and lists of ``phe.EncryptedNumber``.

``phe`` stores a value as mantissa * 16^exponent; fedcore as m / 2^frac_bits. So a vector
converts to phe when frac_bits is a multiple of 4 (exponent = -frac_bits / 4, the unpacked
defaults are), and phe numbers convert to one vector at their smallest exponent (the others
are brought down to it homomorphically, as ``phe`` itself does before adding).
"""

from __future__ import annotations

import math
from typing import Any

from fedcore.he._encoding import UNPACKED, FixedPoint, Layout
from fedcore.he._errors import KeyMismatchError, PackedOperationError
from fedcore.he._keys import PublicKey
from fedcore.he._vector import EncryptedVector


def to_phe_numbers(enc: EncryptedVector) -> list[Any]:
    """The vector as ``phe.EncryptedNumber`` objects (unpacked vectors, frac_bits % 4 == 0).

    Raises:
        PackedOperationError: a packed vector (phe holds one value per ciphertext).
        ValueError: a scale phe's base-16 exponent cannot express.
    """
    import phe

    if enc.packed:
        raise PackedOperationError("phe holds one value per ciphertext: encrypt with packed=False")
    if enc.frac_bits % 4:
        raise ValueError(f"phe's base-16 exponents cannot express a scale of 2^-{enc.frac_bits}")
    key = enc.public_key.to_phe()
    return [phe.EncryptedNumber(key, int(c), -enc.frac_bits // 4) for c in enc.ciphertexts]


def from_phe_numbers(
    public_key: PublicKey, numbers: list[Any], *, max_abs: float | None = None
) -> EncryptedVector:
    """An unpacked EncryptedVector of ``phe.EncryptedNumber`` objects.

    Args:
        public_key: the key the numbers are under.
        numbers: the ``phe.EncryptedNumber`` objects.
        max_abs: a bound on |value| the caller vouches for; it leaves headroom for further
            operations. Without it the vector may be decrypted but not added to.

    Raises:
        KeyMismatchError: a number is under another key.
    """
    if max_abs is not None and not (isinstance(max_abs, int | float) and 0 <= max_abs < math.inf):
        raise ValueError(f"max_abs must be a finite non-negative number, got {max_abs!r}")
    if any(int(x.public_key.n) != public_key.n for x in numbers):
        raise KeyMismatchError("a phe number is under a different public key")
    exponent = min([0, *(x.exponent for x in numbers)])
    aligned = [x if x.exponent == exponent else x.decrease_exponent_to(exponent) for x in numbers]
    frac_bits = -4 * exponent
    layout = Layout.for_key(public_key.bits, packed=False)
    bound = layout.capacity if max_abs is None else math.ceil(max_abs * 2**frac_bits)
    encoding = UNPACKED if frac_bits >= UNPACKED.frac_bits else FixedPoint(frac_bits, UNPACKED.value_bits)
    return EncryptedVector(
        public_key,
        [x.ciphertext(be_secure=False) for x in aligned],
        length=len(numbers),
        layout=layout,
        encoding=encoding,
        frac_bits=frac_bits,
        bound=min(bound, layout.capacity),
        integer=frac_bits == 0,
    )
