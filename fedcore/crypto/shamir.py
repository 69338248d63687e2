"""Shamir secret sharing of 32-byte secrets over the prime field GF(2^256 + 297).

A secret s (32 bytes, read big-endian as an integer below 2^256 < p) is the constant term
of a random polynomial f of degree ``threshold - 1``; the share of the holder with
x-coordinate x (1 <= x < p) is (x, f(x)). Any ``threshold`` shares give s back by Lagrange
interpolation at zero; fewer reveal nothing about s (Shamir 1979). p = 2^256 + 297 is the
smallest prime above 2^256, so every 32-byte string is a field element and the share values
fit in 33 bytes.

A ``Share`` is itself secret: its ``repr`` hides the value, it refuses ``bool`` and pickle,
and its value leaves only by ``to_bytes(ACCESS)``.
``combine`` refuses too few shares and repeated x-coordinates, and a result at or above
2^256 (not a 32-byte secret) raises ``ValueError``. That check catches only some inconsistent
shares: Shamir alone does not detect wrong shares, so callers verify what they recover (secagg
checks a recovered private key against the public key advertised for it).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from fedcore.crypto.secret import ACCESS, RandomBytes, Secret, SecretAccess, check_access

PRIME = 2**256 + 297
SECRET_BYTES = 32
SHARE_BYTES = 33


class Share:
    """One share: the holder's x-coordinate (public) and the value f(x) (secret)."""

    __slots__ = ("_y", "x")

    def __init__(self, x: int, y: int):
        if type(x) is not int or not 0 < x < PRIME:
            raise ValueError("a share's x-coordinate is an integer in [1, p)")
        if type(y) is not int or not 0 <= y < PRIME:
            raise ValueError("a share's value is an integer in [0, p)")
        self.x = x
        self._y = y

    def to_bytes(self, access: SecretAccess | None = None) -> bytes:
        """The value as 33 big-endian bytes (the x-coordinate travels separately): ``to_bytes(ACCESS)``.

        Raises:
            TypeError: ``access`` is not ``fedcore.crypto.secret.ACCESS``.
        """
        check_access(access, "Share.to_bytes")
        return self._y.to_bytes(SHARE_BYTES, "big")

    @classmethod
    def from_bytes(cls, x: int, data: bytes) -> Share:
        if type(data) is not bytes or len(data) != SHARE_BYTES:
            raise ValueError(f"a share value is {SHARE_BYTES} bytes")
        return cls(x, int.from_bytes(data, "big"))

    def __repr__(self) -> str:
        return f"<Share x={self.x}>"

    def __bool__(self) -> NoReturn:
        raise TypeError("a Share has no truth value")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a Share cannot be pickled")


def _random_element(random_bytes: RandomBytes) -> int:
    while True:  # rejection sampling: uniform in [0, p), accepts about half the draws
        value = int.from_bytes(random_bytes(SHARE_BYTES), "big") & ((1 << 257) - 1)
        if value < PRIME:
            return value


def split(
    secret: Secret, threshold: int, xs: Sequence[int], random_bytes: RandomBytes = os.urandom
) -> list[Share]:
    """Shares of ``secret`` for the holders at ``xs``, any ``threshold`` of which recover it.

    Raises:
        ValueError: a bad threshold, repeated or out-of-range x-coordinates, a secret not 32 bytes.
    """
    if not isinstance(secret, Secret) or len(secret) != SECRET_BYTES:
        raise TypeError("split takes a 32-byte Secret")
    if len(set(xs)) != len(xs) or not all(type(x) is int and 0 < x < PRIME for x in xs):
        raise ValueError("x-coordinates must be distinct integers in [1, p)")
    if type(threshold) is not int or not 1 <= threshold <= len(xs):
        raise ValueError(f"threshold must be in [1, {len(xs)}] for {len(xs)} holders, got {threshold!r}")
    coefficients = [int.from_bytes(secret.reveal(ACCESS), "big")]
    coefficients += [_random_element(random_bytes) for _ in range(threshold - 1)]
    return [Share(x, _evaluate(coefficients, x)) for x in xs]


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    value = 0
    for c in reversed(coefficients):  # Horner; holders' x are small, so reduce once at the end
        value = value * x + c
    return value % PRIME


@functools.lru_cache(maxsize=4096)
def _lagrange_at_zero(xs: tuple[int, ...]) -> tuple[int, ...]:
    """w_i = prod_{j != i} x_j / (x_j - x_i) mod p, with one modular inversion for all of them.

    A round recombines many secrets from the same holder sets, hence the cache (the weights
    are public: they depend only on the x-coordinates).
    """
    nums, dens = [], []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if j != i:
                num *= xj
                den *= xj - xi
        nums.append(num % PRIME)
        dens.append(den % PRIME)
    prefix = [1]  # batch inversion (Montgomery): invert the product once, peel off each factor
    for d in dens:
        prefix.append(prefix[-1] * d % PRIME)
    inverse = pow(prefix[-1], -1, PRIME)
    weights = [0] * len(xs)
    for i in range(len(xs) - 1, -1, -1):
        weights[i] = nums[i] * inverse * prefix[i] % PRIME
        inverse = inverse * dens[i] % PRIME
    return tuple(weights)


def combine(shares: Iterable[Share], threshold: int, label: str = "secret") -> Secret:
    """The secret behind ``threshold`` (or more; the first ``threshold`` are used) shares.

    Raises:
        ValueError: fewer than ``threshold`` shares, repeated x-coordinates, or a result that is
            not a 32-byte secret (some inconsistent shares).
    """
    chosen = list(shares)[:threshold] if threshold >= 1 else []
    if threshold < 1 or len(chosen) < threshold:
        raise ValueError(f"need {threshold} shares to recover a secret, got {len(chosen)}")
    if not all(isinstance(s, Share) for s in chosen):
        raise TypeError("combine takes Share objects")
    xs = [s.x for s in chosen]
    if len(set(xs)) != len(xs):
        raise ValueError("shares have repeated x-coordinates")
    weights = _lagrange_at_zero(tuple(xs))
    value = sum(share._y * w for share, w in zip(chosen, weights, strict=True)) % PRIME
    if value >= 1 << (8 * SECRET_BYTES):
        raise ValueError("shares are inconsistent: they do not interpolate to a 32-byte secret")
    return Secret(value.to_bytes(SECRET_BYTES, "big"), label)
