"""Paillier vectors: encrypt numpy arrays, add and weight them encrypted, decrypt fast.

Keys are ``phe``'s (g = n + 1; ``PublicKey.from_phe`` / ``.to_phe``, same for private keys,
whose ``to_phe(ACCESS)`` takes the token of ``fedcore.crypto.secret``)
and unpacked ciphertexts are interchangeable with ``phe.EncryptedNumber``
(``EncryptedVector.to_phe`` / ``from_phe``). What fedcore adds (issue 5):

- Packing (``packed=True``, the default): 48 values of 32 bits per 2048-bit ciphertext,
  each slot with 10 bits of headroom so 1024 fresh vectors can be added (BatchCrypt,
  USENIX ATC 2020). Packed vectors support ``+`` (encrypted or plain) and ``*`` by a
  scalar; per-value products, ``sum`` and ``dot`` need ``packed=False``.
- Fixed point with stated precision (``fedcore.he.PACKED``: 2^-20 steps, |x| < 2048;
  ``UNPACKED``: 2^-32 steps, |x| < 2^31; integers exact) -- see ``_encoding``.
- DJN short-exponent randomness from a fixed-base table (fresh for every ciphertext),
  optionally made ahead in the background (``PublicKey.precompute(count, runtime=)``;
  each precomputed r^n is removed from the pool as it is used), CRT decryption, and work
  split over a ``fedcore.runtime`` Runtime (``runtime=``).
- The key owner encrypts with its factors: ``PrivateKey.encrypt`` (same arguments as
  ``PublicKey.encrypt``) and ``PrivateKey.encrypt_ints`` (raw integers, as
  ``PublicKey.encrypt_ints``) make the very ciphertexts the public key makes (same DJN
  randomness, same distribution), computed mod p^2 and q^2 and joined by CRT: about 1.3x
  the public key's rate at 2048 bits. Use them wherever a party encrypts under its own key.
- Errors instead of wrong numbers: ``KeyMismatchError``, ``HeadroomError``,
  ``EncodingError``, ``DecryptionError``, ``PackedOperationError`` (see ``_errors``).
- Wire: ``PublicKey``, ``EncryptedVector`` and (only when asked for)
  ``PrivateKey.export(ACCESS)`` go through ``fedcore.wire``; a ``PrivateKey`` refuses
  the codec, pickle and ``bool``, and its repr shows only the public fingerprint.

Example::

    pk, sk = generate_keypair(2048)
    total = pk.encrypt(x) + pk.encrypt(y)
    sk.decrypt(total)               # == x + y within 2 * 2^-21
    mine = sk.encrypt(x, packed=False)  # the owner's encryption: an ordinary EncryptedVector
"""

from fedcore.he._encoding import PACKED, PACKED_INT, UNPACKED, UNPACKED_INT, FixedPoint
from fedcore.he._errors import (
    DecryptionError,
    EncodingError,
    HeadroomError,
    HEError,
    KeyMismatchError,
    PackedOperationError,
)
from fedcore.he._keys import ExportedPrivateKey, PrivateKey, PublicKey, generate_keypair
from fedcore.he._vector import EncryptedVector, from_phe_numbers, to_phe_numbers
from fedcore.he._wire import WIRE_MIN_KEY_BITS, register_types

register_types()

__all__ = [
    "PACKED",
    "PACKED_INT",
    "UNPACKED",
    "UNPACKED_INT",
    "WIRE_MIN_KEY_BITS",
    "DecryptionError",
    "EncodingError",
    "EncryptedVector",
    "ExportedPrivateKey",
    "FixedPoint",
    "HEError",
    "HeadroomError",
    "KeyMismatchError",
    "PackedOperationError",
    "PrivateKey",
    "PublicKey",
    "from_phe_numbers",
    "generate_keypair",
    "to_phe_numbers",
]
