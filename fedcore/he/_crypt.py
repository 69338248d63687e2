"""Encrypting arrays into EncryptedVectors and decrypting them, split over a Runtime.

Below ``_keys`` (whose keys call these): a key is whatever offers ``EncryptingKey``.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from fedcore.crypto.paillier import BigInt, CRTDecryptor
from fedcore.he import _tasks
from fedcore.he._encoding import FixedPoint, Layout, default_encoding, from_fixed, is_integer_array, to_fixed
from fedcore.he._errors import DecryptionError
from fedcore.he._vector import EncryptedVector, VectorKey


class EncryptingKey(VectorKey, Protocol):
    """A vector's key that also hands out precomputed randomizers (``fedcore.he.PublicKey``)."""

    def take_randomizers(self, count: int) -> list[Any]: ...


def encrypt_array(
    key: EncryptingKey,
    array: Any,
    *,
    packed: bool,
    runtime: Any,
    encoding: FixedPoint | None,
    owner: CRTDecryptor | None = None,
) -> EncryptedVector:
    """Encode, pack and encrypt ``array`` under ``key`` in chunks on ``runtime``.

    With ``owner`` (the key's CRT constants, only ever passed by ``PrivateKey.encrypt``)
    the chunks encrypt with the factors; the ciphertexts are the same either way.
    """
    values = np.asarray(array)
    if values.ndim != 1:
        raise ValueError(f"encrypt takes a 1-D array, got shape {values.shape}: flatten it first")
    if values.dtype.kind not in "biuf":
        raise TypeError(f"encrypt takes floats, ints or bools, got dtype {values.dtype}")
    integer_input = is_integer_array(values)
    fixed = encoding or default_encoding(packed, integer_input)
    layout = Layout.for_key(key.bits, packed, fixed.packed_slot_bits if packed else None)
    if fixed.max_encoded > layout.capacity:
        raise ValueError(f"a {key.bits}-bit key cannot hold {fixed.value_bits}-bit values")
    encoded = to_fixed(values, fixed.frac_bits, fixed.value_bits)
    workers = getattr(runtime, "workers", 1)
    bounds = _tasks.chunk_bounds(len(encoded), workers, align=layout.slots)
    hs = key.djn_base()
    pool = key.take_randomizers(layout.ciphertexts_for(len(encoded)))
    args = []
    for a, b in bounds:
        start, stop = a // layout.slots, layout.ciphertexts_for(b)
        args.append(
            (
                key.n if owner is None else owner,
                hs,
                encoded[a:b],
                layout.slot_bits,
                layout.slots,
                packed,
                pool[start:stop],
            )
        )
    task = _tasks.encrypt_chunk if owner is None else _tasks.owner_encrypt_chunk
    cts = [c for part in _tasks.run_chunks(runtime, task, args) for c in part]
    return EncryptedVector(
        key,
        cts,
        length=len(values),
        layout=layout,
        encoding=fixed,
        frac_bits=fixed.frac_bits,
        bound=fixed.max_encoded,
        integer=integer_input and fixed.frac_bits == 0,
        runtime=runtime,
    )


def encrypt_integers(
    key: EncryptingKey, plaintexts: Any, *, runtime: Any, owner: CRTDecryptor | None = None
) -> list[Any]:
    """Raw ciphertexts of signed integers (each taken mod n), one per ciphertext, on ``runtime``."""
    ints = [_plain_int(v) for v in plaintexts]
    hs = key.djn_base()
    args = [
        (key.n if owner is None else owner, hs, ints[a:b])
        for a, b in _tasks.chunk_bounds(len(ints), getattr(runtime, "workers", 1))
    ]
    task = _tasks.encrypt_ints_chunk if owner is None else _tasks.owner_encrypt_ints_chunk
    return [c for part in _tasks.run_chunks(runtime, task, args) for c in part]


def _plain_int(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, BigInt)):
        raise TypeError(f"encrypt_ints takes integers, got {type(value).__name__}")
    return int(value)


def decrypt_integers(
    decryptor: CRTDecryptor, ciphertexts: list[Any], *, runtime: Any, field_bits: int = 0
) -> list[int]:
    """Raw plaintexts in [0, n) of ``ciphertexts``, in chunks on ``runtime``.

    With ``field_bits`` each plaintext is promised below 2^field_bits and they are decrypted
    several to one exponentiation (``CRTDecryptor.decrypt_fields``); one that breaks the
    promise raises ``ValueError``.
    """
    n_bits = int(decryptor.n).bit_length()
    per = max(1, (n_bits - 1) // field_bits) if field_bits else 1
    bounds = _tasks.chunk_bounds(len(ciphertexts), getattr(runtime, "workers", 1), align=per)
    args = [(decryptor, ciphertexts[a:b], field_bits, per) for a, b in bounds]
    return [v for part in _tasks.run_chunks(runtime, _tasks.decrypt_ints_chunk, args) for v in part]


def decrypt_vector(decryptor: CRTDecryptor, enc: EncryptedVector, *, runtime: Any) -> np.ndarray:
    """Decrypt ``enc`` in chunks on ``runtime`` (inline without one) and decode it."""
    layout = enc.layout
    cts = enc._cts
    bounds = _tasks.chunk_bounds(len(cts), getattr(runtime, "workers", 1))
    args = []
    for a, b in bounds:
        length = min(b * layout.slots, enc.length) - a * layout.slots
        args.append((decryptor, cts[a:b], layout.slot_bits, layout.slots, layout.packed, length, enc.bound))
    parts = _tasks.run_chunks(runtime, _tasks.decrypt_chunk, args)
    if any(part is None for part in parts):
        raise DecryptionError(
            "decryption did not decode: a ciphertext is corrupted, was made under another key, "
            "or holds a value outside its encodable range"
        )
    if not parts:
        return from_fixed(np.zeros(0, dtype=np.int64), enc.frac_bits, enc.integer)
    if all(isinstance(part, np.ndarray) for part in parts):
        return from_fixed(np.concatenate(parts), enc.frac_bits, enc.integer)
    return from_fixed([int(v) for part in parts for v in part], enc.frac_bits, enc.integer)
