"""Chunk tasks for a Runtime: top-level functions on plain ints, arrays and gmpy2 mpz.

They run in worker processes of the party's own runtime (never another party's), so
their arguments are pickled only locally. Each returns plain data the parent reassembles.
The arithmetic is ``fedcore.crypto.paillier``'s and the packing ``fedcore.crypto.packing``'s:
a task only cuts, packs and calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from fedcore.crypto import paillier
from fedcore.crypto.packing import pack, unpack, unpack_single
from fedcore.crypto.paillier import BigInt

TASKS_PER_WORKER = 4
MIN_CHUNK = 8


def chunk_bounds(count: int, workers: int, align: int = 1) -> list[tuple[int, int]]:
    """Split range(count) into about ``workers * TASKS_PER_WORKER`` pieces, each a multiple of align."""
    if count == 0:
        return []
    pieces = max(1, min(workers * TASKS_PER_WORKER, count // max(MIN_CHUNK, 1) or 1))
    size = -(-count // pieces)
    size = -(-size // align) * align
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def run_chunks(runtime: Any, fn: Callable[..., Any], args_per_chunk: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Run ``fn(*args)`` for every chunk on ``runtime`` (or inline when None), results in order."""
    if runtime is None or len(args_per_chunk) <= 1:
        return [fn(*args) for args in args_per_chunk]
    futures: list[Future[Any]] = [runtime.submit(fn, *args) for args in args_per_chunk]
    return [f.result() for f in futures]


def encrypt_chunk(
    n: int, hs: int, values: np.ndarray, slot_bits: int, slots: int, packed: bool, randomizers: list[BigInt]
) -> list[BigInt]:
    """Pack (when ``packed``) and encrypt one chunk of int64 fixed-point values.

    ``randomizers`` are precomputed r^n values taken from the key's pool (used once each).
    """
    plaintexts = pack(values, slot_bits, slots) if packed else [int(v) for v in values]
    return paillier.encrypt_many(n, hs, plaintexts, randomizers)


def owner_encrypt_chunk(
    decryptor: paillier.CRTDecryptor,
    hs: int,
    values: np.ndarray,
    slot_bits: int,
    slots: int,
    packed: bool,
    randomizers: list[BigInt],
) -> list[BigInt]:
    """As ``encrypt_chunk``, with the key owner's factors (``paillier.CRTEncryptor``)."""
    plaintexts = pack(values, slot_bits, slots) if packed else [int(v) for v in values]
    return paillier.owner_encrypt_many(decryptor, hs, plaintexts, randomizers)


def owner_encrypt_ints_chunk(
    decryptor: paillier.CRTDecryptor, hs: int, plaintexts: list[int]
) -> list[BigInt]:
    """As ``encrypt_ints_chunk``, with the key owner's factors."""
    return paillier.owner_encrypt_many(decryptor, hs, plaintexts)


def randomizers_chunk(n: int, hs: int, count: int) -> list[BigInt]:
    return paillier.randomizers_many(n, hs, count)


def encrypt_ints_chunk(n: int, hs: int, plaintexts: list[int]) -> list[BigInt]:
    """Encrypt one chunk of (signed, arbitrary-size) integers, one per ciphertext."""
    return paillier.encrypt_many(n, hs, plaintexts)


def rerandomize_chunk(n: int, hs: int, ciphertexts: list[BigInt]) -> list[BigInt]:
    return paillier.rerandomize_many(n, hs, ciphertexts)


def decrypt_chunk(
    decryptor: paillier.CRTDecryptor,
    ciphertexts: list[BigInt],
    slot_bits: int,
    slots: int,
    packed: bool,
    length: int,
    bound: int,
) -> np.ndarray | list[int] | None:
    """Decrypt and decode one chunk; None when any plaintext does not decode.

    ``decryptor`` carries the key's precomputed CRT constants, so no chunk rebuilds them.
    """
    plaintexts = decryptor.decrypt_many(ciphertexts)
    n = int(decryptor.n)
    if packed:
        return unpack(plaintexts, n, slot_bits, slots, length, bound)
    values = unpack_single(plaintexts, n, bound)
    if values is not None and bound < 2**63:
        return np.array(values, dtype=np.int64)
    return values


def decrypt_ints_chunk(
    decryptor: paillier.CRTDecryptor, ciphertexts: list[BigInt], field_bits: int, per: int
) -> list[int]:
    """Raw plaintexts of one chunk, ``per`` to one exponentiation when each is below 2^field_bits."""
    return decryptor.decrypt_fields(ciphertexts, field_bits, per)


def mul_chunk(n2: int, ciphertexts: list[BigInt], exponents: np.ndarray) -> list[BigInt]:
    """c_i^e_i mod n^2 for signed exponents."""
    return paillier.mul_plain_many(ciphertexts, exponents, n2)


def scale_chunk(n2: int, ciphertexts: list[BigInt], exponent: int) -> list[BigInt]:
    """c_i^exponent mod n^2 for one signed exponent."""
    return paillier.scale_many(ciphertexts, exponent, n2)


def dot_chunk(n2: int, ciphertexts: list[BigInt], matrix: np.ndarray) -> list[BigInt]:
    """prod_i c_i^M[i, j] mod n^2 for every column j of an int64 matrix chunk (bucket method)."""
    return paillier.dot_columns(ciphertexts, matrix.T.tolist(), n2)


def product_chunk(n2: int, ciphertexts: list[BigInt]) -> BigInt:
    """The product of ciphertexts mod n^2 (their plaintext sum)."""
    return paillier.product(ciphertexts, n2)
