"""Chunk tasks for a Runtime: top-level functions on plain ints, arrays and gmpy2 mpz.

They run in worker processes of the party's own runtime (never another party's), so
their arguments are pickled only locally. Each returns plain data the parent reassembles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from fedcore.crypto import paillier
from fedcore.crypto._paillier_pack import pack, unpack, unpack_single

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
    n: int, hs: int, values: np.ndarray, slot_bits: int, slots: int, packed: bool, randomizers: list[mpz]
) -> list[mpz]:
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
    randomizers: list[mpz],
) -> list[mpz]:
    """As ``encrypt_chunk``, with the key owner's factors (``paillier.CRTEncryptor``)."""
    plaintexts = pack(values, slot_bits, slots) if packed else [int(v) for v in values]
    return paillier.owner_encrypt_many(decryptor, hs, plaintexts, randomizers)


def owner_encrypt_ints_chunk(decryptor: paillier.CRTDecryptor, hs: int, plaintexts: list[int]) -> list[mpz]:
    """As ``encrypt_ints_chunk``, with the key owner's factors."""
    return paillier.owner_encrypt_many(decryptor, hs, plaintexts)


def randomizers_chunk(n: int, hs: int, count: int) -> list[mpz]:
    return paillier.randomizers_many(n, hs, count)


def encrypt_ints_chunk(n: int, hs: int, plaintexts: list[int]) -> list[mpz]:
    """Encrypt one chunk of (signed, arbitrary-size) integers, one per ciphertext."""
    return paillier.encrypt_many(n, hs, plaintexts)


def rerandomize_chunk(n: int, hs: int, ciphertexts: list[mpz]) -> list[mpz]:
    return paillier.rerandomize_many(n, hs, ciphertexts)


def decrypt_chunk(
    decryptor: paillier.CRTDecryptor,
    ciphertexts: list[mpz],
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


def mul_chunk(n2: int, ciphertexts: list[mpz], exponents: np.ndarray) -> list[mpz]:
    """c_i^e_i mod n^2 for signed exponents."""
    n2 = mpz(n2)
    return [paillier.mul_plain(c, int(e), n2) for c, e in zip(ciphertexts, exponents, strict=True)]


def scale_chunk(n2: int, ciphertexts: list[mpz], exponent: int) -> list[mpz]:
    """c_i^exponent mod n^2 for one signed exponent."""
    n2 = mpz(n2)
    return [paillier.mul_plain(c, exponent, n2) for c in ciphertexts]


def dot_chunk(n2: int, ciphertexts: list[mpz], matrix: np.ndarray) -> list[mpz]:
    """prod_i c_i^M[i, j] mod n^2 for every column j of an int64 matrix chunk (bucket method)."""
    n2 = mpz(n2)
    inverses: dict[int, mpz] = {}
    columns = []
    for column in matrix.T.tolist():
        bases, exponents = [], []
        for i, (c, e) in enumerate(zip(ciphertexts, column, strict=True)):
            if e > 0:
                bases.append(c)
                exponents.append(e)
            elif e < 0:
                if i not in inverses:
                    inverses[i] = gmpy2.invert(c, n2)
                bases.append(inverses[i])
                exponents.append(-e)
        columns.append(paillier.multi_pow(bases, exponents, n2))
    return columns


def product_chunk(n2: int, ciphertexts: list[mpz]) -> mpz:
    """The product of ciphertexts mod n^2 (their plaintext sum)."""
    n2 = mpz(n2)
    acc = mpz(1)
    for c in ciphertexts:
        acc = acc * c % n2
    return acc
