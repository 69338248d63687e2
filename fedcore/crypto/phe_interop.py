"""Conversion between this tier's integers and ``phe`` (python-paillier) objects (hazmat tier).

``phe`` uses g = n + 1 as ``fedcore.crypto.paillier`` does, so keys and raw ciphertexts
carry over unchanged; only the objects differ. ``phe`` stores a value as an
``EncryptedNumber``: a ciphertext of mantissa m and an exponent e meaning m * 16^e.
These functions are the one place above ``phe`` that builds or opens its objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import SupportsInt

import phe


def public_key(n: int) -> phe.PaillierPublicKey:
    """The ``phe`` public key of modulus ``n``."""
    return phe.PaillierPublicKey(int(n))


def private_key(n: int, p: int, q: int) -> phe.PaillierPrivateKey:
    """The ``phe`` private key of n = p q (the caller has the factors out of their Secret)."""
    return phe.PaillierPrivateKey(public_key(n), int(p), int(q))


def public_modulus(key: phe.PaillierPublicKey) -> int:
    """The modulus n of a ``phe`` public key."""
    return int(key.n)


def private_factors(key: phe.PaillierPrivateKey) -> tuple[int, int, int]:
    """(n, p, q) of a ``phe`` private key."""
    return int(key.public_key.n), int(key.p), int(key.q)


def numbers(n: int, ciphertexts: Sequence[SupportsInt], exponent: int) -> list[phe.EncryptedNumber]:
    """``phe.EncryptedNumber`` objects of raw ciphertexts under modulus ``n``, all at ``exponent``."""
    key = public_key(n)
    return [phe.EncryptedNumber(key, int(c), exponent) for c in ciphertexts]


def moduli(items: Sequence[phe.EncryptedNumber]) -> set[int]:
    """The moduli the numbers are encrypted under."""
    return {int(x.public_key.n) for x in items}


def aligned_ciphertexts(items: Sequence[phe.EncryptedNumber]) -> tuple[list[int], int]:
    """The raw ciphertexts of ``items`` at one exponent (their smallest, at most 0), and that exponent.

    A number above it is brought down homomorphically (times 16^(its exponent - e)), as
    ``phe`` does before adding; none is re-randomized.
    """
    exponent = min([0, *(x.exponent for x in items)])
    aligned = [x if x.exponent == exponent else x.decrease_exponent_to(exponent) for x in items]
    return [int(x.ciphertext(be_secure=False)) for x in aligned], exponent
