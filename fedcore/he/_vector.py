"""EncryptedVector: Paillier ciphertexts of a vector, packed or one value per ciphertext.

A vector holds its public key but does not import the key's module: ``_keys`` (whose
``encrypt`` makes vectors) sits above this one, and the vector needs of its key only what
``VectorKey`` names. The arithmetic is ``fedcore.crypto.paillier``'s, the phe conversion
``fedcore.crypto.phe_interop``'s.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from fedcore.crypto import paillier, phe_interop
from fedcore.crypto.packing import pack
from fedcore.he import _tasks
from fedcore.he._encoding import (
    UNPACKED,
    FixedPoint,
    Layout,
    is_integer_array,
    scalar_to_fixed,
    to_fixed,
)
from fedcore.he._errors import HeadroomError, KeyMismatchError, PackedOperationError


class VectorKey(Protocol):
    """What a vector uses of its public key; ``fedcore.he.PublicKey`` is the implementation."""

    n: int
    n2: int
    bits: int

    @property
    def fingerprint(self) -> str: ...

    @property
    def ciphertext_bytes(self) -> int: ...

    def djn_base(self) -> int: ...


_PACKED_HINT = "encrypt with packed=False for per-value plaintext multiplication, sums and dot products"


class EncryptedVector:
    """A vector of ``length`` values encrypted under ``public_key``.

    Operations (results are new vectors, not re-randomized; call ``rerandomize()`` before
    handing a result to the key holder if the plain operands must stay hidden from it):

    - ``a + b`` (same key and layout), ``a + plain``, ``a - b``, ``-a``;
    - ``a * scalar`` (int or float);
    - ``a * plain_array`` elementwise, ``a.sum()``, ``a.dot(M)``, ``M @ a``: unpacked only.

    ``a.dot(M)`` with M of shape (length, d) returns the length-d vector
    sum_i a_i * M[i, :] (that is M.T @ a); ``M @ a`` with M of shape (d, length) returns
    the length-d vector M @ a. Integer plain operands are used exactly; float ones are
    encoded with the vector's fixed point, which adds its fractional bits to the result's.

    Attributes:
        public_key: the key the values are encrypted under.
        length: how many values.
        layout: how values sit in plaintexts.
        encoding: the fixed point used for this vector's fresh values and plain operands.
        frac_bits: the current scale: a slot holding m means m / 2^frac_bits.
        bound: the largest |m| any slot may hold (from declared ranges, never from data).
        integer: decrypts to int64 (integer inputs, integer operands only).
        runtime: a local Runtime for heavy operations (never sent).
    """

    __array_ufunc__ = None  # numpy defers: ``M @ enc``, ``x + enc`` reach our reflected methods
    __slots__ = (
        "_cts",
        "bound",
        "encoding",
        "frac_bits",
        "integer",
        "layout",
        "length",
        "public_key",
        "runtime",
    )

    def __init__(
        self,
        public_key: VectorKey,
        ciphertexts: list[Any],
        *,
        length: int,
        layout: Layout,
        encoding: FixedPoint,
        frac_bits: int,
        bound: int,
        integer: bool,
        runtime: Any = None,
    ):
        if len(ciphertexts) != layout.ciphertexts_for(length):
            raise ValueError(
                f"{length} values need {layout.ciphertexts_for(length)} ciphertexts, got {len(ciphertexts)}"
            )
        if not 0 <= bound <= layout.capacity:
            raise HeadroomError(f"bound of {bound.bit_length()} bits exceeds the slot capacity")
        self.public_key = public_key
        self._cts = paillier.to_bigints(ciphertexts)
        self.length, self.layout, self.encoding = length, layout, encoding
        self.frac_bits, self.bound, self.integer, self.runtime = frac_bits, bound, integer, runtime

    # ------------------------------------------------------------------ basics

    @property
    def shape(self) -> tuple[int]:
        return (self.length,)

    @property
    def packed(self) -> bool:
        return self.layout.packed

    @property
    def ciphertexts(self) -> tuple[int, ...]:
        """The raw ciphertexts, as Python ints."""
        return tuple(int(c) for c in self._cts)

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        mode = f"packed {self.layout.slots}x{self.layout.slot_bits}-bit" if self.packed else "unpacked"
        return (
            f"EncryptedVector(length={self.length}, {mode}, frac_bits={self.frac_bits}, "
            f"key={self.public_key.fingerprint})"
        )

    def with_runtime(self, runtime: Any) -> EncryptedVector:
        """The same vector, using ``runtime`` for its heavy operations."""
        return self._derive(self._cts, runtime=runtime)

    def _derive(self, cts: list[Any], **changes: Any) -> EncryptedVector:
        fields = {
            "length": self.length,
            "layout": self.layout,
            "encoding": self.encoding,
            "frac_bits": self.frac_bits,
            "bound": self.bound,
            "integer": self.integer,
            "runtime": self.runtime,
        }
        fields.update(changes)
        return EncryptedVector(self.public_key, cts, **fields)

    def _checked_bound(self, bound: int, what: str) -> int:
        if bound > self.layout.capacity:
            raise HeadroomError(
                f"{what} could overflow a {self.layout.slot_bits}-bit slot (needs "
                f"{bound.bit_length() + 1} bits): decrypt first, or use a wider encoding"
                + (" (more max_terms, fewer slots) or packed=False" if self.packed else "")
            )
        return bound

    def _scaled(self, exponent: int) -> list[Any]:
        if exponent == 1:
            return list(self._cts)
        workers = getattr(self.runtime, "workers", 1)
        bounds = _tasks.chunk_bounds(len(self._cts), workers)
        args = [(self.public_key.n2, self._cts[a:b], exponent) for a, b in bounds]
        return [c for part in _tasks.run_chunks(self.runtime, _tasks.scale_chunk, args) for c in part]

    def _rescaled_to(self, frac_bits: int) -> EncryptedVector:
        shift = frac_bits - self.frac_bits
        if shift == 0:
            return self
        bound = self._checked_bound(self.bound << shift, "rescaling to a common scale")
        return self._derive(self._scaled(1 << shift), frac_bits=frac_bits, bound=bound, integer=False)

    # ------------------------------------------------------------------ addition

    def __add__(self, other: Any) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            return self._add_encrypted(other)
        return self._add_plain(other)

    __radd__ = __add__

    def __neg__(self) -> EncryptedVector:
        return self * -1

    def __sub__(self, other: Any) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            return self + (-other)
        return self + (-np.asarray(other))

    def __rsub__(self, other: Any) -> EncryptedVector:
        # an Any right operand makes mypy type the sum Any; it is our own __add__'s result
        difference: EncryptedVector = (-self) + other
        return difference

    def _add_encrypted(self, other: EncryptedVector) -> EncryptedVector:
        if other.public_key != self.public_key:
            raise KeyMismatchError(
                f"cannot add vectors under different keys ({self.public_key.fingerprint} and "
                f"{other.public_key.fingerprint})"
            )
        if other.length != self.length:
            raise ValueError(f"cannot add encrypted vectors of lengths {self.length} and {other.length}")
        if other.layout != self.layout:
            raise ValueError(f"cannot add vectors of different layouts: {self.layout} and {other.layout}")
        frac = max(self.frac_bits, other.frac_bits)
        self._checked_bound(self.bound + other.bound, "adding these vectors")
        a, b = self._rescaled_to(frac), other._rescaled_to(frac)
        bound = self._checked_bound(a.bound + b.bound, "adding these vectors")
        cts = paillier.add_many(a._cts, b._cts, self.public_key.n2)
        encoding = self.encoding if self.encoding.frac_bits >= other.encoding.frac_bits else other.encoding
        return a._derive(cts, bound=bound, encoding=encoding, integer=a.integer and b.integer)

    def _plain_operand(self, other: Any, what: str) -> tuple[np.ndarray, bool]:
        values = np.asarray(other)
        if values.dtype.kind not in "biuf":
            raise TypeError(f"cannot {what} an EncryptedVector and {type(other).__name__}")
        if values.ndim > 1 or (values.ndim == 1 and values.shape != (self.length,)):
            raise ValueError(
                f"cannot {what} an encrypted vector of length {self.length} and shape {values.shape}"
            )
        integer = is_integer_array(values)
        if self.integer and not integer:
            raise TypeError(f"cannot {what} an integer-encoded vector and floats: encrypt floats instead")
        return np.broadcast_to(values, (self.length,)), integer

    def _add_plain(self, other: Any) -> EncryptedVector:
        values, _ = self._plain_operand(other, "add")
        shift = self.frac_bits - self.encoding.frac_bits
        plain_bound = self.encoding.max_encoded << shift
        bound = self._checked_bound(self.bound + plain_bound, "adding this plain array")
        encoded = to_fixed(values, self.encoding.frac_bits, self.encoding.value_bits)
        if self.packed:
            plaintexts = pack(encoded << np.int64(shift), self.layout.slot_bits, self.layout.slots)
        else:
            plaintexts = [int(m) << shift for m in encoded.tolist()]
        cts = paillier.add_plain_many(self._cts, plaintexts, self.public_key.n, self.public_key.n2)
        return self._derive(cts, bound=bound)

    # ------------------------------------------------------------------ multiplication

    def __mul__(self, other: Any) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            raise TypeError("Paillier cannot multiply two encrypted vectors; multiply by a plain value")
        if np.ndim(other) == 0:
            return self._mul_scalar(other)
        if self.packed:
            raise PackedOperationError(f"elementwise multiplication of a packed vector: {_PACKED_HINT}")
        return self._mul_array(other)

    __rmul__ = __mul__

    def _mul_scalar(self, scalar: Any) -> EncryptedVector:
        if isinstance(scalar, np.ndarray):
            scalar = scalar.item()
        integer = isinstance(scalar, bool | int | np.integer | np.bool_)
        if not integer and not isinstance(scalar, float | np.floating):
            raise TypeError(f"cannot multiply an EncryptedVector by {type(scalar).__name__}")
        if self.integer and not integer:
            raise TypeError("cannot multiply an integer-encoded vector by a float: encrypt floats instead")
        frac = 0 if integer else self.encoding.frac_bits
        exponent = int(scalar) if integer else scalar_to_fixed(scalar, frac, self.encoding.value_bits)
        bound = self._checked_bound(self.bound * abs(exponent), "multiplying by this scalar")
        return self._derive(self._scaled(exponent), bound=bound, frac_bits=self.frac_bits + frac)

    def _mul_array(self, other: Any) -> EncryptedVector:
        values, integer = self._plain_operand(other, "multiply")
        fixed = self.encoding.integer_variant() if integer else self.encoding
        bound = self._checked_bound(self.bound * fixed.max_encoded, "multiplying by this plain array")
        exponents = to_fixed(values, fixed.frac_bits, fixed.value_bits)
        workers = getattr(self.runtime, "workers", 1)
        bounds = _tasks.chunk_bounds(len(self._cts), workers)
        args = [(self.public_key.n2, self._cts[a:b], exponents[a:b]) for a, b in bounds]
        cts = [c for part in _tasks.run_chunks(self.runtime, _tasks.mul_chunk, args) for c in part]
        return self._derive(cts, bound=bound, frac_bits=self.frac_bits + fixed.frac_bits)

    def sum(self) -> EncryptedVector:
        """The encrypted sum of all values, as a vector of length 1 (unpacked only).

        Raises:
            PackedOperationError: packed slots cannot be summed without revealing each slot's
                partial sum to the key holder.
        """
        if self.packed:
            raise PackedOperationError(f"sum() of a packed vector: {_PACKED_HINT}")
        bound = self._checked_bound(self.bound * max(self.length, 1), "summing this vector")
        workers = getattr(self.runtime, "workers", 1)
        bounds = _tasks.chunk_bounds(len(self._cts), workers)
        args = [(self.public_key.n2, self._cts[a:b]) for a, b in bounds]
        parts = _tasks.run_chunks(self.runtime, _tasks.product_chunk, args)
        total = _tasks.product_chunk(self.public_key.n2, parts)
        return self._derive([total], length=1, bound=bound)

    def dot(self, matrix: Any, *, runtime: Any = None) -> EncryptedVector:
        """sum_i self_i * matrix[i, :] for a plain matrix of shape (length, d) (unpacked only).

        Returns:
            an EncryptedVector of length d (length 1 for a 1-D ``matrix`` of shape (length,)).
        """
        if self.packed:
            raise PackedOperationError(f"dot() of a packed vector: {_PACKED_HINT}")
        values = np.asarray(matrix)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[0] != self.length:
            raise ValueError(f"dot needs a matrix of shape ({self.length}, d), got {np.shape(matrix)}")
        if values.dtype.kind not in "biuf" or (self.integer and values.dtype.kind == "f"):
            raise TypeError(f"cannot take the dot product of this vector with dtype {values.dtype}")
        fixed = self.encoding.integer_variant() if is_integer_array(values) else self.encoding
        bound = self._checked_bound(self.bound * fixed.max_encoded * max(self.length, 1), "this dot product")
        exponents = to_fixed(values, fixed.frac_bits, fixed.value_bits)
        rt = runtime or self.runtime
        bounds = _tasks.chunk_bounds(len(self._cts), getattr(rt, "workers", 1))
        args = [(self.public_key.n2, self._cts[a:b], exponents[a:b]) for a, b in bounds]
        parts = _tasks.run_chunks(rt, _tasks.dot_chunk, args) or [[paillier.BigInt(1)] * values.shape[1]]
        n2 = self.public_key.n2
        columns = [_tasks.product_chunk(n2, list(col)) for col in zip(*parts, strict=True)]
        return self._derive(
            columns, length=values.shape[1], bound=bound, frac_bits=self.frac_bits + fixed.frac_bits
        )

    def __matmul__(self, matrix: Any) -> EncryptedVector:
        return self.dot(matrix)

    def __rmatmul__(self, matrix: Any) -> EncryptedVector:
        values = np.asarray(matrix)
        if values.ndim != 2:
            raise ValueError(f"M @ enc needs a 2-D M of shape (d, {self.length}), got {values.shape}")
        return self.dot(values.T)

    def to_phe(self) -> list[Any]:
        """The values as ``phe.EncryptedNumber`` objects (unpacked vectors, frac_bits % 4 == 0).

        ``phe`` stores a value as mantissa * 16^exponent, fedcore as m / 2^frac_bits, so the
        exponent is -frac_bits / 4 (the unpacked defaults have frac_bits = 32).

        Raises:
            PackedOperationError: a packed vector (phe holds one value per ciphertext).
            ValueError: a scale phe's base-16 exponent cannot express.
        """
        if self.packed:
            raise PackedOperationError("phe holds one value per ciphertext: encrypt with packed=False")
        if self.frac_bits % 4:
            raise ValueError(f"phe's base-16 exponents cannot express a scale of 2^-{self.frac_bits}")
        return phe_interop.numbers(self.public_key.n, self._cts, -self.frac_bits // 4)

    @classmethod
    def from_phe(
        cls, public_key: VectorKey, numbers: list[Any], *, max_abs: float | None = None
    ) -> EncryptedVector:
        """An unpacked vector of ``phe.EncryptedNumber`` objects, at their smallest exponent.

        Args:
            public_key: the key the numbers are under.
            numbers: the ``phe.EncryptedNumber`` objects.
            max_abs: a bound on |value| the caller vouches for; it leaves headroom for further
                operations. Without it the vector may be decrypted but not added to.

        Raises:
            KeyMismatchError: a number is under another key.
        """
        if max_abs is not None and not (isinstance(max_abs, int | float) and 0 <= max_abs < math.inf):
            raise ValueError(f"max_abs must be a finite non-negative number, got {max_abs!r}")
        if any(n != public_key.n for n in phe_interop.moduli(numbers)):
            raise KeyMismatchError("a phe number is under a different public key")
        cts, exponent = phe_interop.aligned_ciphertexts(numbers)
        frac_bits = -4 * exponent
        layout = Layout.for_key(public_key.bits, packed=False)
        bound = layout.capacity if max_abs is None else math.ceil(max_abs * 2**frac_bits)
        encoding = UNPACKED if frac_bits >= UNPACKED.frac_bits else FixedPoint(frac_bits, UNPACKED.value_bits)
        return cls(
            public_key,
            cts,
            length=len(numbers),
            layout=layout,
            encoding=encoding,
            frac_bits=frac_bits,
            bound=min(bound, layout.capacity),
            integer=frac_bits == 0,
        )

    def rerandomize(self, *, runtime: Any = None) -> EncryptedVector:
        """The same plaintexts under fresh randomness (hides how the vector was computed)."""
        rt = runtime or self.runtime
        bounds = _tasks.chunk_bounds(len(self._cts), getattr(rt, "workers", 1))
        key = self.public_key
        args = [(key.n, key.djn_base(), self._cts[a:b]) for a, b in bounds]
        return self._derive(
            [c for part in _tasks.run_chunks(rt, _tasks.rerandomize_chunk, args) for c in part]
        )


def to_phe_numbers(enc: EncryptedVector) -> list[Any]:
    """``enc.to_phe()``: the vector as ``phe.EncryptedNumber`` objects."""
    return enc.to_phe()


def from_phe_numbers(
    public_key: VectorKey, numbers: list[Any], *, max_abs: float | None = None
) -> EncryptedVector:
    """``EncryptedVector.from_phe``: an unpacked vector of ``phe.EncryptedNumber`` objects."""
    return EncryptedVector.from_phe(public_key, numbers, max_abs=max_abs)
