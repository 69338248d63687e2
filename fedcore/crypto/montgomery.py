"""Residues mod an odd modulus as rows of 64-bit limbs, multiplied in Montgomery form.

For the hot loops of Paillier (a host's histogram sums mod n^2, the key owner's fixed-base
powers mod p^2 and q^2) numbers are kept as a (count, k) uint64 array, least significant
limb first, in Montgomery form x R mod m (R = 2^(64 k)), so each product is a
multiplication and a REDC with no division and no Python object per number.

The products come from the C extension ``fedcore.crypto._mont`` when it was built (it
needs GMP's headers; see setup.py) and otherwise from ``_PyMont`` here, which computes the
same bytes with gmpy2 (tests check the two agree). ``NATIVE`` says which one this process
uses.

Hazmat: no checks that residues are ciphertexts; callers load them through ``Ring.load``,
which checks the range.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

try:
    import fedcore.crypto._mont as _native  # type: ignore[import-not-found]
except ImportError:  # built without GMP's headers: the gmpy2 twin below
    _native = None

NATIVE = _native is not None
LIMB = 64


class _PyMont:
    """The C extension's three functions, byte for byte, in gmpy2 (the fallback and its reference)."""

    @staticmethod
    def _rows(blob: bytes, k: int) -> list[mpz]:
        width = 8 * k
        return [mpz(int.from_bytes(blob[i : i + width], "little")) for i in range(0, len(blob), width)]

    @staticmethod
    def _join(values: Sequence[Any], k: int) -> bytes:
        return b"".join(int(v).to_bytes(8 * k, "little") for v in values)

    @classmethod
    def _ring(cls, modulus: bytes) -> tuple[mpz, int, mpz]:
        m = mpz(int.from_bytes(modulus, "little"))
        k = len(modulus) // 8
        return m, k, gmpy2.invert(mpz(1) << (LIMB * k), m)

    @classmethod
    def mul_rows(cls, modulus: bytes, minv: int, a: bytes, b: bytes) -> bytes:
        m, k, r_inv = cls._ring(modulus)
        xs, ys = cls._rows(a, k), cls._rows(b, k)
        if len(ys) == 1:
            ys = ys * len(xs)
        if len(ys) != len(xs):
            raise ValueError("b: one row or as many rows as a expected")
        return cls._join([x * y % m * r_inv % m for x, y in zip(xs, ys, strict=True)], k)

    @classmethod
    def sums_by_key(cls, modulus: bytes, minv: int, one: bytes, rows: bytes, keys: bytes, size: int) -> bytes:
        m, k, r_inv = cls._ring(modulus)
        items, order = cls._rows(rows, k), np.frombuffer(keys, dtype=np.int64).tolist()
        if len(order) != len(items) or any(not 0 <= key < size for key in order):
            raise ValueError("keys: one per row, each in [0, size) expected")
        sums: list[Any] = [None] * size
        for key, x in zip(order, items, strict=True):
            acc = sums[key]
            sums[key] = x if acc is None else acc * x % m * r_inv % m
        unit = int.from_bytes(one, "little")
        return cls._join([unit if acc is None else acc for acc in sums], k)

    @classmethod
    def fixed_base_powers(
        cls, modulus: bytes, minv: int, one: bytes, table: bytes, digits: bytes, width: int
    ) -> bytes:
        m, k, r_inv = cls._ring(modulus)
        entries = cls._rows(table, k)
        out = []
        for start in range(0, len(digits), width):
            acc = None
            for j, digit in enumerate(digits[start : start + width]):
                if digit:
                    entry = entries[j * 256 + digit]
                    acc = entry if acc is None else acc * entry % m * r_inv % m
            out.append(int.from_bytes(one, "little") if acc is None else acc)
        return cls._join(out, k)


def _pick_backend() -> str:
    """ "ifma" (AVX-512 IFMA, radix 2^52), "mpn" (GMP's mpn layer) or "py" (gmpy2).

    FEDCORE_MONT names one to force it (for tests and benchmarks); unset, the fastest here.
    """
    forced = os.environ.get("FEDCORE_MONT", "")
    if forced:
        if forced not in BACKENDS:
            raise ValueError(f"FEDCORE_MONT={forced!r}: one of {', '.join(BACKENDS)} expected")
        return forced
    if _native is None:
        return "py"
    return "ifma" if _native.ifma_available() else "mpn"


BACKENDS = ("ifma", "mpn", "py")


def available(backend: str) -> bool:
    """Can this process use ``backend``?"""
    if backend not in BACKENDS:
        return False
    if backend == "py":
        return True
    if _native is None:
        return False
    return backend == "mpn" or bool(_native.ifma_available())


BACKEND = _pick_backend()


class Ring:
    """Arithmetic mod one odd ``modulus`` on rows in Montgomery form.

    Rows are a (count, limbs) uint64 array whose layout depends on the backend (64-bit limbs
    for "mpn" and "py", 52-bit limbs below 2 m for "ifma"): make them with ``from_ints``,
    ``enter`` or ``load`` and read them with ``to_ints``, ``leave`` or ``dump``. Cheap to
    build (two modular inverses); pickles as its modulus and backend.

    Args:
        modulus: an odd modulus > 2 of at most 4096 bits.
        backend: one of BACKENDS; default ``BACKEND`` (FEDCORE_MONT, or the fastest here).
    """

    def __init__(self, modulus: int, *, backend: str | None = None):
        m = int(modulus)
        if m < 3 or not m & 1 or m.bit_length() > 4096:
            raise ValueError("Montgomery arithmetic needs an odd modulus > 2 of at most 4096 bits")
        backend = backend or BACKEND
        if not available(backend):
            raise ValueError(f"the {backend!r} Montgomery kernel is not available here")
        self.modulus, self.backend = m, backend
        self.k = -(-m.bit_length() // LIMB)  # 64-bit limbs of a plain residue
        radix = 52 if backend == "ifma" else LIMB
        self.limbs = -(-(m.bit_length() + 2) // 52) if backend == "ifma" else self.k
        self._minv = (-pow(m, -1, 1 << radix)) % (1 << radix)
        r = 1 << (radix * self.limbs)
        self._m, self._one = self._cut(m), self._cut(r % m)
        self._r2, self._raw = self._cut(r * r % m), self._cut(1)
        kernel: Any = _PyMont if backend == "py" else _native
        suffix = "52" if backend == "ifma" else ""
        self._mul = getattr(kernel, "mul_rows" + suffix)
        self._sums = getattr(kernel, "sums_by_key" + suffix)
        self._powers = getattr(kernel, "fixed_base_powers" + suffix)
        self._pow = getattr(kernel, "pow_rows" + suffix, None)  # the gmpy2 twin does it in Python
        self._multi = getattr(kernel, "multi_pow_rows" + suffix, None)

    def _cut(self, value: int) -> bytes:
        """``value`` as one row of this backend's limbs."""
        if self.backend != "ifma":
            return value.to_bytes(8 * self.limbs, "little")
        mask = (1 << 52) - 1
        return np.array([(value >> (52 * j)) & mask for j in range(self.limbs)], dtype="<u8").tobytes()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_ring, (self.modulus, self.backend))

    # ------------------------------------------------------------------ in and out

    def _array(self, blob: bytes, limbs: int = 0) -> np.ndarray:
        return np.frombuffer(blob, dtype="<u8").reshape(-1, limbs or self.limbs)

    def _bytes(self, rows: np.ndarray, limbs: int = 0) -> memoryview:
        """A read-only view of ``rows`` for the kernel (no copy when already contiguous)."""
        rows = np.ascontiguousarray(rows, dtype="<u8")
        if rows.ndim != 2 or rows.shape[1] != (limbs or self.limbs):
            raise ValueError(f"rows of {limbs or self.limbs} limbs expected, got shape {rows.shape}")
        return rows.data.cast("B")

    def enter(self, rows: np.ndarray) -> np.ndarray:
        """Plain residues (rows of 64-bit limbs, each below the modulus) into Montgomery form."""
        blob = self._bytes(rows, self.k)
        if self.backend == "ifma":
            assert _native is not None
            blob = _native.to52(blob, self.k, self.limbs)
        return self._array(self._mul(self._m, self._minv, blob, self._r2))

    def leave(self, rows: np.ndarray) -> np.ndarray:
        """Montgomery rows back to plain residues (rows of 64-bit limbs)."""
        blob = self._mul(self._m, self._minv, self._bytes(rows), self._raw)
        if self.backend == "ifma":
            assert _native is not None
            blob = _native.from52(self._m, blob, self.k)
        return self._array(blob, self.k)

    def from_ints(self, values: Sequence[Any]) -> np.ndarray:
        """Montgomery rows of integers, each reduced mod the modulus first."""
        blob = b"".join((int(v) % self.modulus).to_bytes(8 * self.k, "little") for v in values)
        return self.enter(self._array(blob, self.k))

    def to_ints(self, rows: np.ndarray) -> list[int]:
        """The plain integers of Montgomery ``rows``."""
        plain = self.leave(rows).tobytes()
        width = 8 * self.k
        return [int.from_bytes(plain[i : i + width], "little") for i in range(0, len(plain), width)]

    def load(self, blob: bytes, width: int) -> np.ndarray:
        """Montgomery rows of a blob of fixed-width big-endian integers, each in (0, modulus).

        Raises:
            ValueError: a malformed blob or a value out of range.
        """
        if width <= 0 or len(blob) % width:
            raise ValueError(f"ciphertext blob of {len(blob)} bytes is not a multiple of {width}")
        full = 8 * self.k
        if (self.modulus.bit_length() + 7) // 8 > width:
            raise ValueError(f"{width}-byte values cannot hold this modulus")
        big = np.frombuffer(blob, dtype=np.uint8).reshape(-1, width)
        if width > full:  # leading bytes beyond the limbs must be zero
            if big[:, : width - full].any():
                raise ValueError("a ciphertext is outside (0, n^2)")
            big = big[:, width - full :]
        padded = np.zeros((len(big), full), dtype=np.uint8)
        padded[:, full - big.shape[1] :] = big
        _check_range(padded, self.modulus.to_bytes(full, "big"))
        return self.enter(np.ascontiguousarray(padded[:, ::-1]).view("<u8"))

    def dump(self, rows: np.ndarray, width: int) -> bytes:
        """Montgomery ``rows`` as a blob of fixed-width big-endian integers (as ``load`` reads)."""
        full = 8 * self.k
        big = np.ascontiguousarray(self.leave(rows).view(np.uint8).reshape(-1, full)[:, ::-1])
        if width >= full:
            out = np.zeros((len(big), width), dtype=np.uint8)
            out[:, width - full :] = big
            return out.tobytes()
        if big[:, : full - width].any():
            raise ValueError(f"a value does not fit {width} bytes")
        return np.ascontiguousarray(big[:, full - width :]).tobytes()

    # ------------------------------------------------------------------ products

    def one(self, count: int = 1) -> np.ndarray:
        """``count`` rows of 1 (in Montgomery form)."""
        return np.tile(self._array(self._one), (count, 1))

    def mul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Row-wise products (``b`` may be a single row)."""
        return self._array(self._mul(self._m, self._minv, self._bytes(a), self._bytes(b)))

    def sums_by_key(self, rows: np.ndarray, keys: np.ndarray, size: int) -> np.ndarray:
        """The product of the rows of each key 0..size-1 (1 where a key has none)."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        if len(keys) != len(rows):
            raise ValueError("one key per row expected")
        blob = self._sums(self._m, self._minv, self._one, self._bytes(rows), keys.data.cast("B"), size)
        return self._array(blob)

    def square(self, rows: np.ndarray, times: int) -> np.ndarray:
        """Each row raised to 2^times."""
        return self.pow(rows, 1 << times)

    def pow(self, rows: np.ndarray, exponent: int) -> np.ndarray:
        """Each row raised to the same ``exponent`` >= 0 (4-bit fixed windows)."""
        if exponent < 0:
            raise ValueError("a non-negative exponent expected")
        if self._pow is not None:
            digits = exponent.to_bytes(max(1, (exponent.bit_length() + 7) // 8), "big")
            return self._array(self._pow(self._m, self._minv, self._one, self._bytes(rows), digits))
        table = [self.one(len(rows)), rows]
        for _ in range(2, 16):
            table.append(self.mul(table[-1], rows))
        acc: np.ndarray | None = None
        for shift in range(4 * ((exponent.bit_length() + 3) // 4) - 4, -1, -4):
            digit = (exponent >> shift) & 15
            if acc is not None:
                for _ in range(4):
                    acc = self.mul(acc, acc)
                if digit:
                    acc = self.mul(acc, table[digit])
            elif digit:
                acc = table[digit]
        return self.one(len(rows)) if acc is None else acc

    def multi_pow(self, bases: np.ndarray, exponents: np.ndarray) -> np.ndarray:
        """For each row j of the (columns, len(bases)) uint64 ``exponents``, prod_i bases_i^e[j, i].

        Straus with 4-bit windows and tables shared by every column (eight columns per
        instruction with IFMA).
        """
        exponents = np.ascontiguousarray(exponents, dtype=np.uint64)
        if exponents.ndim != 2 or exponents.shape[1] != len(bases):
            raise ValueError(f"exponents of shape (columns, {len(bases)}) expected, got {exponents.shape}")
        if not len(bases) or not len(exponents):
            return self.one(len(exponents))
        if self._multi is None:
            return self._multi_py(bases, exponents)
        blob = self._multi(self._m, self._minv, self._one, self._bytes(bases), exponents.data.cast("B"))
        return self._array(blob)

    def _multi_py(self, bases: np.ndarray, exponents: np.ndarray) -> np.ndarray:
        m = self.modulus
        plain = self.to_ints(bases)
        out = []
        for column in exponents.tolist():
            acc = 1
            for b, e in zip(plain, column, strict=True):
                acc = acc * pow(b, e, m) % m
            out.append(acc)
        return self.from_ints(out)

    def powers(self, table: bytes, digits: bytes, width: int) -> np.ndarray:
        """Products of table rows picked by exponent bytes (see ``FixedBase``)."""
        return self._array(self._powers(self._m, self._minv, self._one, table, digits, width))


def _ring(modulus: int, backend: str) -> Ring:
    return Ring(modulus, backend=backend if available(backend) else None)


def _check_range(padded: np.ndarray, modulus: bytes) -> None:
    """Raise ValueError unless every big-endian row is in (0, modulus)."""
    if not len(padded):
        return
    m = np.frombuffer(modulus, dtype=np.uint8)
    differs = padded != m
    first = np.argmax(differs, axis=1)
    equal = ~differs[np.arange(len(padded)), first]
    below = padded[np.arange(len(padded)), first] < m[first]
    if equal.any() or not below.all() or (~padded.any(axis=1)).any():
        raise ValueError("a ciphertext is outside (0, n^2)")


class FixedBase:
    """base^e mod ``modulus`` for many exponents below 2^exponent_bits, from byte-window tables.

    table[i][d] = base^(d 2^(8i)) in Montgomery form: one product per non-zero exponent byte.
    """

    def __init__(self, ring: Ring, base: int, exponent_bits: int):
        self.ring = ring
        self.width = (exponent_bits + 7) // 8
        m = mpz(ring.modulus)
        bases = [mpz(base) % m]  # base^(2^(8i)) for each exponent byte i
        for _ in range(1, self.width):
            bases.append(gmpy2.powmod(bases[-1], 256, m))
        first = ring.from_ints(bases)
        columns = [ring.one(self.width), first]  # column d holds every row's entry for digit d
        for _ in range(2, 256):
            columns.append(ring.mul(columns[-1], first))
        self._table = np.stack(columns, axis=1).tobytes()  # row-major: (byte, digit, limbs)

    def powers(self, exponents: Sequence[int]) -> np.ndarray:
        """Montgomery rows of base^e for each exponent."""
        width = self.width
        return self.of_digits(b"".join(int(e).to_bytes(width, "little") for e in exponents))

    def of_digits(self, digits: bytes) -> np.ndarray:
        """Montgomery rows of base^e for exponents given as ``width`` little-endian bytes each."""
        return self.ring.powers(self._table, digits, self.width)


def random_digits(count: int, exponent_bits: int) -> bytes:
    """``count`` exponents uniform in [0, 2^exponent_bits), as ``FixedBase.of_digits`` reads them."""
    width = (exponent_bits + 7) // 8
    raw = np.frombuffer(secrets.token_bytes(count * width), dtype=np.uint8).reshape(count, width).copy()
    spare = 8 * width - exponent_bits
    if spare:
        raw[:, -1] &= (1 << (8 - spare)) - 1
    return raw.tobytes()


def supports(modulus: Any) -> bool:
    """Can a Ring work modulo ``modulus`` (odd, above 2, at most 4096 bits)?"""
    m = int(modulus)
    return m > 2 and bool(m & 1) and m.bit_length() <= 4096
