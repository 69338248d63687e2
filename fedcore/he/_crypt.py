"""Encrypting arrays into EncryptedVectors and decrypting them, split over a Runtime."""

from __future__ import annotations

from typing import Any

import numpy as np

from fedcore.crypto.paillier import CRTDecryptor
from fedcore.he import _tasks
from fedcore.he._encoding import FixedPoint, Layout, default_encoding, from_fixed, is_integer_array, to_fixed
from fedcore.he._errors import DecryptionError
from fedcore.he._keys import PublicKey
from fedcore.he._vector import EncryptedVector


def encrypt_array(
    key: PublicKey, array: Any, *, packed: bool, runtime: Any, encoding: FixedPoint | None
) -> EncryptedVector:
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
        chunk = (key.n, hs, encoded[a:b], layout.slot_bits, layout.slots, packed, pool[start:stop])
        args.append(chunk)
    cts = [c for part in _tasks.run_chunks(runtime, _tasks.encrypt_chunk, args) for c in part]
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
