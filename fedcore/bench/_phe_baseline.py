"""The baseline scheme for ``fedcore bench vertical``: per-element ``phe``, no packing, no runtime.

It offers the subset of the ``fedcore.he`` API the vertical protocol uses, with plain
``phe.EncryptedNumber`` objects underneath, so the same protocol code runs on both and the
bench compares like with like. Floats are encoded with a fixed exponent (2^-32, phe base 16)
so additions need no exponent alignment.

It is a benchmark's yardstick, not a part of the protocol: ``hetero_lr(scheme="phe")``
loads it by name (``fedcore.vertical.SCHEMES``) only when that scheme is chosen, and its
vector is an ``EncryptedOperand`` so the vertical messages accept it.
"""

from __future__ import annotations

from typing import Any, NoReturn

import numpy as np
import phe

from fedcore import wire
from fedcore.vertical._messages import EncryptedOperand

_PRECISION = 2.0**-32
_MIN_BITS = 1024


class PhePublicKey:
    """A ``phe`` public key behind the ``fedcore.he.PublicKey`` calls the protocol makes."""

    def __init__(self, key: Any):
        self.key = key

    def encrypt(self, array: Any, *, packed: bool = False, runtime: Any = None) -> PheVector:
        encode = phe.EncodedNumber.encode
        values = np.asarray(array, dtype=np.float64).ravel()
        return PheVector(self, [self.key.encrypt(encode(self.key, float(v), _PRECISION)) for v in values])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PhePublicKey) and other.key.n == self.key.n

    def __hash__(self) -> int:
        return hash(self.key.n)


class PhePrivateKey:
    """A ``phe`` private key; refuses pickle."""

    def __init__(self, public_key: PhePublicKey, key: Any):
        self.public_key, self._key = public_key, key

    def decrypt(self, enc: PheVector, *, runtime: Any = None) -> np.ndarray:
        if enc.public_key != self.public_key:
            raise ValueError("cannot decrypt a vector under another key")
        return np.array([self._key.decrypt(c) for c in enc.items], dtype=np.float64)

    def __repr__(self) -> str:
        return "<PhePrivateKey (secret)>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a private key cannot be pickled")


class PheVector(EncryptedOperand):
    """A list of ``phe.EncryptedNumber`` with the vector operations the protocol uses."""

    def __init__(self, public_key: PhePublicKey, items: list[Any]):
        self.public_key, self.items = public_key, items

    def __len__(self) -> int:
        return len(self.items)

    def __add__(self, other: Any) -> PheVector:
        if isinstance(other, PheVector):
            return PheVector(self.public_key, [a + b for a, b in zip(self.items, other.items, strict=True)])
        plain = np.broadcast_to(np.asarray(other, dtype=np.float64), (len(self.items),))
        return PheVector(self.public_key, [a + float(b) for a, b in zip(self.items, plain, strict=True)])

    def __mul__(self, scalar: float) -> PheVector:
        return PheVector(self.public_key, [a * float(scalar) for a in self.items])

    def dot(self, matrix: Any, *, runtime: Any = None) -> PheVector:
        """sum_i self_i * matrix[i, :], one phe multiplication per element."""
        encode = phe.EncodedNumber.encode
        values = np.asarray(matrix, dtype=np.float64)
        key = self.public_key.key
        out = []
        for j in range(values.shape[1]):
            column = values[:, j]
            terms = [c * encode(key, float(m), _PRECISION) for c, m in zip(self.items, column, strict=True)]
            total = terms[0]
            for term in terms[1:]:
                total = total + term
            out.append(total)
        return PheVector(self.public_key, out)

    def rerandomize(self, *, runtime: Any = None) -> PheVector:
        for c in self.items:
            c.obfuscate()
        return self


def generate_keypair(bits: int = 2048) -> tuple[PhePublicKey, PhePrivateKey]:
    """A ``phe`` key pair wrapped for the protocol."""
    public, private = phe.generate_paillier_keypair(n_length=bits)
    wrapped = PhePublicKey(public)
    return wrapped, PhePrivateKey(wrapped, private)


def _key_from_state(n: Any) -> PhePublicKey:
    if type(n) is not int or n.bit_length() < _MIN_BITS or n % 2 == 0:
        raise ValueError("malformed phe public key")
    return PhePublicKey(phe.PaillierPublicKey(n))


def _vector_from_state(state: Any) -> PheVector:
    n, items = state
    key = _key_from_state(n)
    n2 = key.key.nsquare
    numbers = []
    for ct, exponent in items:
        if type(ct) is not int or not 0 < ct < n2 or type(exponent) is not int or not -4096 < exponent < 4096:
            raise ValueError("malformed phe ciphertext")
        numbers.append(phe.EncryptedNumber(key.key, ct, exponent))
    return PheVector(key, numbers)


def _vector_to_state(vec: PheVector) -> tuple[int, list[tuple[int, int]]]:
    return vec.public_key.key.n, [(c.ciphertext(be_secure=False), c.exponent) for c in vec.items]


wire.register(
    PheVector, "fedcore.vertical.PheVector", to_state=_vector_to_state, from_state=_vector_from_state
)
