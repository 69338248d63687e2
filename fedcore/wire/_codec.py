"""The safe codec: values <-> bytes, with no pickle and bounded allocation.

Theory of operation
-------------------
An encoding is ``MAGIC | u64 struct_len | struct | pad | buffers``. ``struct`` is msgpack of the
value with every non-msgpack type carried as an extension; numpy arrays are *out of band*:
the struct holds ``[dtype, shape, offset, nbytes]`` and the raw bytes live in ``buffers``,
so a large array costs one copy to encode (the final join, none with ``encode_parts``) and
one to decode (so the result is writable and does not pin the input). Buffers start on
64-byte boundaries, so a receiver that owns a writable buffer (a transport's receive buffer)
may decode with ``copy=False`` and get aligned, writable arrays viewing it: no copy at all.

Decoding trusts nothing: a dtype must be on an allow-list, an array's ``nbytes`` must equal
``prod(shape) * itemsize`` and fit inside the bytes actually received, msgpack's own
length limits are bounded by the input size, nesting is bounded, and any failure becomes
``DecodeError``. So a 100-byte message claiming a 10^12-element array is refused before
anything is allocated.

Decoding allocates at most ``4 * len(data) + 4 MiB`` (``fedcore.wire._budget``): before
msgpack builds a structure, a walk over its bytes charges each container, map, string,
number and extension what CPython will allocate for it (a list header its whole slot array,
even if the elements never arrive), and a message that would need more is a ``DecodeError``
naming the limit; nothing past the limit is built. The walk runs at C speed on dense input
(lists of empty maps are counted with one ``numpy.bincount`` per 64 KiB), and every Python
step of it is charged a floor, so hostile structures are refused at well over 50 MB/s
(``fedcore bench codec``). The price: large Python lists of small objects (numbers, short
strings, small dicts) cost more than 4x their encoding and are refused past the 4 MiB slack;
send numbers as numpy arrays, which travel out of band and cost their size once (nothing
with ``copy=False``).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import msgpack
import numpy as np

from fedcore.errors import DecodeError
from fedcore.wire._budget import Budget, charge_structure, ext_hold
from fedcore.wire._registry import by_name, by_type

MAGIC = b"FCW\x01"
_HEADER = struct.Struct("<4sQ")
ALIGN = 64


def _pad(length: int) -> int:
    return -length % ALIGN


MAX_DEPTH = 64
MAX_NDIM = 32

_EXT_ARRAY = 1
_EXT_BIGINT = 2
_EXT_TUPLE = 3
_EXT_REGISTERED = 4
_EXT_SCALAR = 5

_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1

# What decoding an extension allocates beyond what the structure walk charged (CPython 3.11,
# numpy 2): generous where it covers the temporary objects built on the way.
_INT_BASE = 28
_TUPLE_BASE = 40
_ARRAY_BYTES = 512  # the ndarray object, its flat view and the shape tuple
_REGISTERED_BYTES = 256  # the instance from_state returns; what it builds beyond that is its own
_HEADER_LIMIT = 32 * 10 + 64  # MAX_NDIM dims of at most 9 bytes each, plus dtype, offset, size

_ALLOWED_KINDS = "biufc"  # bool, signed, unsigned, float, complex: never object or void
_ALLOWED_DTYPES = frozenset(
    np.dtype(f"{order}{code}").str
    for order in "<>"
    for code in ("b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8", "c8", "c16")
)


# --------------------------------------------------------------------------- encode


class _Encoder:
    def __init__(self) -> None:
        self.buffers: list[memoryview] = []
        self.offset = 0

    def convert(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError(f"value nests deeper than {MAX_DEPTH} levels")
        kind = type(value)
        if value is None or kind in (bool, float, str, bytes):
            return value
        if kind is int:
            if _INT64_MIN <= value <= _UINT64_MAX:
                return value
            return msgpack.ExtType(_EXT_BIGINT, _bigint_bytes(value))
        if kind in (bytearray, memoryview):
            return bytes(value)
        if kind is list:
            return [self.convert(v, depth + 1) for v in value]
        if kind is tuple:
            items = [self.convert(v, depth + 1) for v in value]
            return msgpack.ExtType(_EXT_TUPLE, _pack(items))
        if kind is dict:
            return {self.convert(k, depth + 1): self.convert(v, depth + 1) for k, v in value.items()}
        entry = by_type(kind)
        if entry is not None:
            state = self.convert(entry.to_state(value), depth + 1)
            return msgpack.ExtType(_EXT_REGISTERED, _pack([entry.name, state]))
        if isinstance(value, np.ndarray):
            return self._array(value)
        if isinstance(value, np.generic):
            return self._scalar(value)
        if _is_torch_tensor(value):
            return self._array(value.detach().cpu().numpy())
        raise TypeError(
            f"fedcore.wire cannot encode {kind.__module__}.{kind.__qualname__}: use None, bool, "
            "int, float, str, bytes, list, tuple, dict, numpy arrays, torch tensors or a "
            "type registered with fedcore.wire (message or register)"
        )

    def _array(self, array: np.ndarray) -> msgpack.ExtType:
        dtype = _checked_dtype(array.dtype)
        if not array.flags.c_contiguous:  # ascontiguousarray would turn 0-d into 1-d
            array = array.copy(order="C")
        view = array.data.cast("B") if array.nbytes else memoryview(b"")
        gap = _pad(self.offset)
        if gap:
            self.buffers.append(memoryview(bytes(gap)))
            self.offset += gap
        header = [dtype.str, list(array.shape), self.offset, array.nbytes]
        self.buffers.append(view)
        self.offset += array.nbytes
        return msgpack.ExtType(_EXT_ARRAY, _pack(header))

    def _scalar(self, value: np.generic) -> msgpack.ExtType:
        dtype = _checked_dtype(value.dtype)
        return msgpack.ExtType(_EXT_SCALAR, _pack([dtype.str, value.tobytes()]))


def _checked_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind not in _ALLOWED_KINDS or dtype.str not in _ALLOWED_DTYPES:
        raise TypeError(f"fedcore.wire cannot encode arrays of dtype {dtype}: use a numeric dtype")
    return dtype


def _is_torch_tensor(value: Any) -> bool:
    module = type(value).__module__
    return module.startswith("torch") and hasattr(value, "detach") and hasattr(value, "numpy")


def _bigint_bytes(value: int) -> bytes:
    magnitude = abs(value)
    sign = b"\x01" if value < 0 else b"\x00"
    return sign + magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big")


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True, strict_types=True)


def encode_parts(value: Any) -> list[bytes | memoryview]:
    """Encode ``value`` as a list of buffers whose concatenation is ``encode(value)``.

    Array data is not copied: the parts are views of the arrays, so a transport can stream
    them directly. The arrays must not change until the parts are consumed.
    """
    encoder = _Encoder()
    body = _pack(encoder.convert(value))
    head = _HEADER.pack(MAGIC, len(body))
    if not encoder.buffers:
        return [head, body]
    return [head, body, bytes(_pad(len(head) + len(body))), *encoder.buffers]


def encode(value: Any) -> bytes:
    """Encode a value to bytes; raises ``TypeError`` for a type the codec does not carry."""
    return b"".join(encode_parts(value))


# --------------------------------------------------------------------------- decode


class _Decoder:
    def __init__(self, buffers: memoryview, copy: bool, budget: Budget) -> None:
        self.buffers = buffers
        self.copy = copy
        self.budget = budget
        self.depth = 0

    def unpack(self, data: bytes | memoryview) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise DecodeError(f"value nests deeper than {MAX_DEPTH} levels")
        try:
            if self.budget.walk:
                charge_structure(data, self.budget)
            return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True, ext_hook=self.ext)
        finally:
            self.depth -= 1

    def ext(self, code: int, data: bytes) -> Any:
        value = self._build(code, data)
        self.budget.used -= ext_hold(len(data))  # the walk held msgpack's copy of the payload
        return value

    def _build(self, code: int, data: bytes) -> Any:
        if code == _EXT_ARRAY:
            return self._array(_small_header(data))
        if code == _EXT_BIGINT:
            return self._bigint(data)
        if code == _EXT_TUPLE:
            items = self.unpack(data)
            if type(items) is not list:
                raise DecodeError("malformed tuple")
            self.budget.charge(_TUPLE_BASE + 8 * len(items))
            return tuple(items)
        if code == _EXT_REGISTERED:
            item = self.unpack(data)
            self.budget.charge(_REGISTERED_BYTES)
            return self._registered(item)
        if code == _EXT_SCALAR:
            return self._scalar(_small_header(data))
        raise DecodeError(f"unknown extension type {code}")

    def _bigint(self, data: bytes) -> int:
        if len(data) < 2 or data[0] not in (0, 1):
            raise DecodeError("malformed big integer")
        size = _INT_BASE + 4 * -(-8 * (len(data) - 1) // 30)  # CPython stores 30 bits per 4 bytes
        self.budget.charge(2 * size if data[0] else size)  # negating makes a second int
        magnitude = int.from_bytes(memoryview(data)[1:], "big")
        if data[0]:
            self.budget.release(size)
            return -magnitude
        return magnitude

    def _array(self, header: Any) -> np.ndarray:
        if type(header) is not list or len(header) != 4:
            raise DecodeError("malformed array header")
        dtype_str, shape, offset, nbytes = header
        dtype = _dtype_from_wire(dtype_str)
        if type(shape) is not list or len(shape) > MAX_NDIM:
            raise DecodeError("malformed array shape")
        if not all(type(n) is int and n >= 0 for n in shape):
            raise DecodeError("array shape must be non-negative integers")
        if type(offset) is not int or type(nbytes) is not int or offset < 0 or nbytes < 0:
            raise DecodeError("malformed array offset")
        count = math.prod(shape)
        if count * dtype.itemsize != nbytes:
            raise DecodeError(f"array of shape {shape} and dtype {dtype} cannot hold {nbytes} bytes")
        if offset + nbytes > len(self.buffers):
            raise DecodeError(
                f"array claims {nbytes} bytes at offset {offset} but the message carries {len(self.buffers)}"
            )
        self.budget.charge(_ARRAY_BYTES + (nbytes if self.copy else 0))
        flat = np.frombuffer(self.buffers, dtype=dtype, count=count, offset=offset)
        return flat.reshape(shape).copy() if self.copy else flat.reshape(shape)

    def _scalar(self, header: Any) -> np.generic:
        if type(header) is not list or len(header) != 2 or type(header[1]) is not bytes:
            raise DecodeError("malformed numpy scalar")
        dtype = _dtype_from_wire(header[0])
        if len(header[1]) != dtype.itemsize:
            raise DecodeError("numpy scalar has the wrong size")
        self.budget.charge(_ARRAY_BYTES)
        scalar: np.generic = np.frombuffer(header[1], dtype=dtype)[0]
        return scalar

    def _registered(self, item: Any) -> Any:
        if type(item) is not list or len(item) != 2 or type(item[0]) is not str:
            raise DecodeError("malformed registered value")
        entry = by_name(item[0])
        if entry is None:
            raise DecodeError(
                f"unknown registered type {item[0]!r}: no module in the wire catalog defines it"
            )
        return entry.from_state(item[1])


def _small_header(data: bytes) -> Any:
    """Unpack an array or scalar header: small by construction, so no walk, and no extensions."""
    if len(data) > _HEADER_LIMIT:
        raise DecodeError(f"array header of {len(data)} bytes is over the {_HEADER_LIMIT}-byte limit")
    return msgpack.unpackb(data, raw=False, use_list=True)


def _dtype_from_wire(dtype_str: Any) -> np.dtype:
    if type(dtype_str) is not str or dtype_str not in _ALLOWED_DTYPES:
        raise DecodeError(f"array dtype {dtype_str!r} is not allowed")
    return np.dtype(dtype_str)


def decode(data: bytes | bytearray | memoryview, *, copy: bool = True) -> Any:
    """Decode bytes made by ``encode``.

    Args:
        data: the encoding.
        copy: copy array data out of ``data`` (default). With ``copy=False`` arrays are views
            of ``data``: only for a caller that owns ``data`` and will not reuse it; they are
            writable only when ``data`` is.

    Raises:
        DecodeError: for any input that is not a valid encoding, and for nothing else.
    """
    try:
        view = memoryview(data).cast("B")
        if len(view) < _HEADER.size:
            raise DecodeError(f"message of {len(view)} bytes is shorter than the header")
        magic, body_len = _HEADER.unpack_from(view)
        if magic != MAGIC:
            raise DecodeError("not a fedcore wire message (bad magic)")
        if body_len > len(view) - _HEADER.size:
            raise DecodeError("message is shorter than its declared structure")
        body_end = _HEADER.size + body_len
        decoder = _Decoder(view[body_end + _pad(body_end) :], copy, Budget(len(view)))
        return decoder.unpack(view[_HEADER.size : body_end])
    except DecodeError:
        raise
    except Exception as exc:  # hostile bytes can trip any check below us: report, never crash
        raise DecodeError(f"malformed fedcore wire message ({type(exc).__name__})") from None
