"""Mask expansion: a 256-bit seed -> a vector of ring words, by AES-256-CTR.

The keystream of AES-256 in counter mode under the seed, starting from counter block zero,
read as little-endian ``uint32`` or ``uint64`` words, is the mask. Each seed keys exactly
one mask (seeds come from HKDF with a per-purpose ``info`` or are fresh random), so the
fixed starting counter never repeats a keystream across purposes.

Speed: the keystream is written with ``update_into`` from a shared block of zeros into a
reused scratch buffer (no allocation per mask), then added to or subtracted from the
accumulator in place with numpy's wrapping unsigned arithmetic. ``apply`` streams many masks
at once in cache-sized chunks (each seed's cipher context continues where its previous chunk
stopped, so the result is identical to whole-vector expansion) so that the keystream is added
while still in cache. ``keystream_seconds`` times the bare cipher for the benchmark's bound.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fedcore.crypto.secret import ACCESS, Secret

WORD_DTYPES: dict[int, np.dtype[np.unsignedinteger[Any]]] = {32: np.dtype("<u4"), 64: np.dtype("<u8")}
_BLOCK = 16
# 512 KiB: a chunk of keystream stays in L2 while it is added, and numpy's add (which releases
# the GIL, a thread switch where parties are threads) runs a quarter as often as with 128 KiB
CHUNK_BYTES = 1 << 19
# AES-CTR in `cryptography` holds the GIL, so expansions running in more threads than there are
# cores only convoy on it (a simulation runs every party as a thread): admit one per core.
_EXPANSIONS = threading.BoundedSemaphore(max(1, len(os.sched_getaffinity(0))))
_ZERO_COUNTER = bytes(_BLOCK)
_zeros_lock = threading.Lock()
_zeros = b""


def _zero_source(nbytes: int) -> memoryview:
    global _zeros
    with _zeros_lock:
        if len(_zeros) < nbytes:
            _zeros = bytes(nbytes)
        return memoryview(_zeros)[:nbytes]


def word_dtype(bits: int) -> np.dtype:
    """The numpy dtype of a ring of ``bits`` (32 or 64) bits."""
    if bits not in WORD_DTYPES:
        raise ValueError(f"ring words are 32 or 64 bits, got {bits}")
    return WORD_DTYPES[bits]


class Expander:
    """Expands seeds into masks of ``count`` words of ``bits`` bits, reusing one scratch buffer.

    Not thread-safe: use one ``Expander`` per thread.
    """

    def __init__(self, count: int, bits: int):
        if count < 0:
            raise ValueError(f"a mask has a non-negative number of words, got {count}")
        self.dtype = word_dtype(bits)
        self.count = count
        self.nbytes = count * self.dtype.itemsize
        self._scratch = bytearray()  # allocated by the first expand(); apply() needs only a chunk
        self.bytes_expanded = 0

    def expand(self, seed: Secret) -> np.ndarray:
        """The mask of ``seed``: a read-only view into the scratch buffer, valid until the next call."""
        encryptor = _encryptor(seed)
        if not self._scratch:
            self._scratch = bytearray(self.nbytes + _BLOCK - 1)
        written = encryptor.update_into(_zero_source(self.nbytes), self._scratch)
        if written != self.nbytes:
            raise RuntimeError(f"AES-CTR wrote {written} of {self.nbytes} bytes")
        self.bytes_expanded += self.nbytes
        return np.frombuffer(self._scratch, dtype=self.dtype, count=self.count)

    def add(self, acc: np.ndarray, seed: Secret) -> None:
        """``acc += mask(seed)`` in the ring, in place."""
        self._check(acc)
        np.add(acc, self.expand(seed), out=acc)

    def subtract(self, acc: np.ndarray, seed: Secret) -> None:
        """``acc -= mask(seed)`` in the ring, in place."""
        self._check(acc)
        np.subtract(acc, self.expand(seed), out=acc)

    def apply(self, acc: np.ndarray, masks: Sequence[tuple[Secret, int]]) -> None:
        """``acc += sum(sign * mask(seed))`` over ``masks`` (sign +1 or -1), chunk by chunk, in place."""
        self._check(acc)
        if any(sign not in (1, -1) for _, sign in masks):
            raise ValueError("a mask's sign is +1 or -1")
        streams = [(_encryptor(seed), np.add if sign > 0 else np.subtract) for seed, sign in masks]
        with _EXPANSIONS:
            self._apply(acc, streams)
        self.bytes_expanded += len(streams) * self.nbytes

    def _apply(self, acc: np.ndarray, streams: list[tuple[Any, Any]]) -> None:
        step = max(1, CHUNK_BYTES // self.dtype.itemsize)
        scratch = bytearray(step * self.dtype.itemsize + _BLOCK - 1)
        zeros = _zero_source(step * self.dtype.itemsize)
        for start in range(0, self.count, step):
            part = acc[start : start + step]
            nbytes = part.size * self.dtype.itemsize
            words = np.frombuffer(scratch, dtype=self.dtype, count=part.size)
            for encryptor, op in streams:
                encryptor.update_into(zeros[:nbytes], scratch)
                op(part, words, out=part)

    def _check(self, acc: np.ndarray) -> None:
        if acc.dtype != self.dtype or acc.shape != (self.count,):
            raise ValueError(
                f"accumulator must be {self.dtype} of shape ({self.count},), got {acc.dtype} {acc.shape}"
            )


def _encryptor(seed: Secret) -> Any:
    if not isinstance(seed, Secret) or len(seed) != 32:
        raise TypeError("a mask seed is a 32-byte Secret")
    return Cipher(algorithms.AES(seed.reveal(ACCESS)), modes.CTR(_ZERO_COUNTER)).encryptor()


def expand(seed: Secret, count: int, bits: int = 32) -> np.ndarray:
    """A fresh copy of the ``count``-word mask of ``seed`` (for tests and one-off use)."""
    return Expander(count, bits).expand(seed).copy()


def keystream_seconds(total_bytes: int, chunk_bytes: int) -> float:
    """Seconds to produce ``total_bytes`` of AES-256-CTR keystream in chunks, the bare cipher only."""
    chunk_bytes = max(1, min(chunk_bytes, total_bytes or 1))
    scratch = bytearray(chunk_bytes + _BLOCK - 1)
    zeros = _zero_source(chunk_bytes)
    key = bytes(range(32))
    done = 0
    start = time.perf_counter()
    while done < total_bytes:
        Cipher(algorithms.AES(key), modes.CTR(_ZERO_COUNTER)).encryptor().update_into(zeros, scratch)
        done += chunk_bytes
    return time.perf_counter() - start
