"""Commutative blinding on Curve25519 for ECDH private set intersection (raw tier).

Theory of operation
-------------------
ECDH-PSI (Meadows 1986; Huberman, Franklin and Hogg 1999; the "DH-PSI" of De Cristofaro and
Tsudik, "Practical private set intersection protocols with linear complexity", FC 2010, sec. 3)
needs a hash ``H`` from identifiers to group elements and a blinding ``x -> x^a`` that
commutes: ``(H(x)^a)^b == (H(x)^b)^a``. Two parties with secret exponents ``a`` and ``b`` can
then compare ``H(x)^(ab)`` without either seeing the other's ``H(x)``.

We use X25519 (RFC 7748) through ``cryptography``, which only offers the x-only Montgomery
ladder ``X25519(k, u)``. That is enough:

* ``hash_to_u(item) = SHA-256(DOMAIN || item)`` with the top bit cleared. RFC 7748 accepts any
  255-bit string as a u-coordinate; it names a point either on Curve25519 or on its quadratic
  twist, and Curve25519 is twist-secure (the twist's large prime subgroup has order ~2^252 too,
  Bernstein 2006, sec. 3), so discrete logs stay hard for both halves of the hash range.
* ``X25519(a, X25519(b, u)) == X25519(b, X25519(a, u))``: the ladder computes ``x([k]P)`` and
  ``[a][b]P == [b][a]P`` for points of either curve, so blinding commutes (tested).
* Scalars are clamped by X25519 (multiples of 8), so every blinded value lies in the
  prime-order subgroup of the curve or of the twist: small-subgroup information is cleared.
  A point of low order gives the all-zero output, which ``cryptography`` refuses; we surface
  that as ``ValueError`` (only a dishonest peer can produce one: 2^-250 chance for a hash).

Security holds in the random-oracle model under the (one-more) decisional Diffie-Hellman
assumption in those prime-order groups, against semi-honest parties. Secret scalars come from
``os.urandom``, never from a job-seeded generator (every party knows the job seed).

This module is the raw tier: callers above it use ``fedcore.psi.intersect``. The batch
functions are top level and take plain ``bytes`` so a process pool can run them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import NoReturn

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from fedcore.crypto.secret import SecretAccess, check_access

POINT_BYTES = 32
DOMAIN = b"fedcore/psi/x25519-sha256/v1\x00"

__all__ = [
    "DOMAIN",
    "POINT_BYTES",
    "BlindingKey",
    "blind_batch",
    "hash_and_blind_batch",
    "hash_to_u",
    "x25519",
]


def hash_to_u(item: bytes) -> bytes:
    """Hash an encoded identifier to a 32-byte X25519 u-coordinate (top bit cleared)."""
    digest = bytearray(hashlib.sha256(DOMAIN + item).digest())
    digest[31] &= 0x7F
    return bytes(digest)


def x25519(scalar: bytes, u: bytes) -> bytes:
    """One X25519 scalar multiplication (RFC 7748 sec. 5), clamping ``scalar`` as it specifies.

    Raises:
        ValueError: wrong lengths, or ``u`` has low order (the result would be all zero).
    """
    _check_scalar(scalar)
    return X25519PrivateKey.from_private_bytes(scalar).exchange(X25519PublicKey.from_public_bytes(u))


def _check_scalar(scalar: bytes) -> None:
    if not isinstance(scalar, bytes) or len(scalar) != POINT_BYTES:
        raise ValueError(f"an X25519 scalar is {POINT_BYTES} bytes")


def _ladder(scalar: bytes) -> Callable[[bytes], bytes]:
    _check_scalar(scalar)
    exchange = X25519PrivateKey.from_private_bytes(scalar).exchange
    load = X25519PublicKey.from_public_bytes

    def mul(u: bytes) -> bytes:
        return exchange(load(u))

    return mul


def hash_and_blind_batch(scalar: bytes, items: Sequence[bytes]) -> bytes:
    """``X25519(scalar, hash_to_u(item))`` for every item, concatenated (32 bytes each).

    Raises:
        ValueError: a bad scalar (a hash of low order cannot happen in practice).
    """
    mul = _ladder(scalar)
    sha = hashlib.sha256
    out = bytearray()
    for item in items:
        digest = bytearray(sha(DOMAIN + item).digest())
        digest[31] &= 0x7F
        out += mul(bytes(digest))
    return bytes(out)


def blind_batch(scalar: bytes, points: bytes) -> bytes:
    """``X25519(scalar, u)`` for every 32-byte ``u`` in ``points``, concatenated.

    Raises:
        ValueError: ``points`` is not a whole number of points, or one has low order.
    """
    if not isinstance(points, bytes) or len(points) % POINT_BYTES:
        raise ValueError(f"a batch of points is a multiple of {POINT_BYTES} bytes")
    mul = _ladder(scalar)
    view = memoryview(points)
    out = bytearray()
    try:
        for start in range(0, len(points), POINT_BYTES):
            out += mul(bytes(view[start : start + POINT_BYTES]))
    except ValueError:
        raise ValueError("a point in the batch has low order") from None
    return bytes(out)


class BlindingKey:
    """A secret X25519 blinding scalar, fresh from ``os.urandom``.

    It refuses ``bool``, ``pickle`` and a revealing ``repr``. The one place the scalar leaves
    is ``scalar_for_local_worker(ACCESS)``, for this party's own worker processes.
    """

    __slots__ = ("_scalar",)

    def __init__(self, scalar: bytes):
        _check_scalar(scalar)
        self._scalar = scalar

    @classmethod
    def generate(cls, random_bytes: Callable[[int], bytes] = os.urandom) -> BlindingKey:
        """A new key; ``random_bytes`` is replaceable only so tests can be deterministic."""
        return cls(random_bytes(POINT_BYTES))

    def scalar_for_local_worker(self, access: SecretAccess | None = None) -> bytes:
        """The raw scalar, to hand to this party's own workers (never to another party).

        Raises:
            TypeError: ``access`` is not ``fedcore.crypto.secret.ACCESS``.
        """
        check_access(access, "BlindingKey.scalar_for_local_worker")
        return self._scalar

    def blind(self, points: bytes) -> bytes:
        """Blind a batch of points in this process (see ``blind_batch``)."""
        return blind_batch(self._scalar, points)

    def hash_and_blind(self, items: Sequence[bytes]) -> bytes:
        """Hash and blind a batch of encoded identifiers in this process."""
        return hash_and_blind_batch(self._scalar, items)

    def __repr__(self) -> str:
        return "<BlindingKey (secret)>"

    def __bool__(self) -> bool:
        raise TypeError("a BlindingKey has no truth value")

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a BlindingKey cannot be pickled; pass scalar_for_local_worker(ACCESS) to your own workers"
        )
