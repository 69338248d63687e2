"""The safe codec: round trips, refusals, and hostile input."""

from __future__ import annotations

import contextlib
import pickle
import struct

import msgpack
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedcore import wire
from fedcore.errors import DecodeError

scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # any size: big ints travel as extensions
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
keys = st.none() | st.booleans() | st.integers() | st.text() | st.binary()
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=5).map(tuple)
        | st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=30,
)
dtypes = st.sampled_from(
    [
        "bool",
        "int8",
        "uint8",
        "int16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
        ">i4",
        ">f8",
    ]
)


def same(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return a == b


@given(values)
def test_values_round_trip_with_their_types(value: object) -> None:
    assert same(wire.decode(wire.encode(value)), value)


@given(hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)))
def test_arrays_round_trip_exactly(array: np.ndarray) -> None:
    out = wire.decode(wire.encode(array))
    assert out.dtype == array.dtype and out.shape == array.shape
    assert out.tobytes() == array.tobytes()
    assert out.flags.writeable


def test_non_contiguous_and_fortran_arrays() -> None:
    a = np.arange(24, dtype=np.int32).reshape(4, 6)
    for view in (a[:, ::2], a.T, np.asfortranarray(a)):
        assert np.array_equal(wire.decode(wire.encode(view)), view)


def test_arrays_nested_in_structures_keep_their_offsets() -> None:
    value = {"a": [np.arange(3), (np.ones((2, 2), np.float32), "x")], "b": np.zeros(0)}
    assert same(wire.decode(wire.encode(value)), value)


def test_big_ints_and_numpy_scalars() -> None:
    for n in (2**64, -(2**63) - 1, 2**4096 + 12345, -(2**2048)):
        assert wire.decode(wire.encode(n)) == n
    scalar = wire.decode(wire.encode(np.float32(1.5)))
    assert type(scalar) is np.float32 and scalar == 1.5


def test_torch_tensors_travel_as_numpy() -> None:
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    out = wire.decode(wire.encode({"w": tensor}))["w"]
    assert isinstance(out, np.ndarray) and np.array_equal(out, tensor.numpy())


def test_encode_parts_concatenate_to_encode() -> None:
    value = [np.arange(10.0), {"k": np.ones(3, np.int8)}]
    assert b"".join(bytes(p) for p in wire.encode_parts(value)) == wire.encode(value)


@pytest.mark.parametrize(
    "value", [object(), {1, 2}, np.array([None], dtype=object), np.array(["a"]), lambda: 0, 1j]
)
def test_unsupported_types_are_refused_on_encode(value: object) -> None:
    with pytest.raises(TypeError, match="cannot encode"):
        wire.encode(value)


class Point:
    def __init__(self, x: int, y: int):
        self.x, self.y = x, y


def _point_from_state(state: object) -> Point:
    if not (isinstance(state, list) and len(state) == 2 and all(type(v) is int for v in state)):
        raise ValueError("a Point is two ints")
    return Point(*state)


wire.register(Point, "tests.Point", to_state=lambda p: [p.x, p.y], from_state=_point_from_state)


def test_registered_types_round_trip_and_validate() -> None:
    p = wire.decode(wire.encode({"p": Point(3, -4)}))["p"]
    assert isinstance(p, Point) and (p.x, p.y) == (3, -4)
    forged = wire.encode({"p": Point(1, 2)}).replace(b"\x01\x02", b"\xa1a\x02")
    with pytest.raises(DecodeError):
        wire.decode(forged)


def test_unknown_registered_name_is_refused() -> None:
    body = msgpack.packb(msgpack.ExtType(4, msgpack.packb(["evil.Type", 1])))
    data = struct.pack("<4sQ", wire.MAGIC, len(body)) + body
    with pytest.raises(DecodeError, match="unknown registered type"):
        wire.decode(data)


def _array_message(dtype: str, shape: list[int], nbytes: int, payload: bytes = b"") -> bytes:
    header = msgpack.packb([dtype, shape, 0, nbytes])
    body = msgpack.packb(msgpack.ExtType(1, header))
    return struct.pack("<4sQ", wire.MAGIC, len(body)) + body + payload


def test_huge_array_claim_is_refused_before_allocating() -> None:
    data = _array_message("<f4", [10**12], 4 * 10**12)
    assert len(data) < 100
    with pytest.raises(DecodeError, match="claims"):
        wire.decode(data)


def test_shape_and_size_must_agree() -> None:
    with pytest.raises(DecodeError, match="cannot hold"):
        wire.decode(_array_message("<f4", [10**6, 10**6], 8, b"\0" * 8))


@pytest.mark.parametrize("dtype", ["|O", "<M8[s]", "|V8", "<U1", "|S4", "not-a-dtype"])
def test_dangerous_or_unknown_dtypes_are_refused(dtype: str) -> None:
    with pytest.raises(DecodeError, match="not allowed"):
        wire.decode(_array_message(dtype, [1], 8, b"\0" * 8))


def test_pickle_bytes_are_refused() -> None:
    with pytest.raises(DecodeError):
        wire.decode(pickle.dumps({"a": 1}))


def test_deep_nesting_is_refused_both_ways() -> None:
    value: object = 1
    for _ in range(200):
        value = (value,)
    with pytest.raises(ValueError, match="deeper"):
        wire.encode(value)
    inner = msgpack.packb(1)
    for _ in range(200):
        inner = msgpack.packb(msgpack.ExtType(3, msgpack.packb([msgpack.ExtType(3, inner)])))
    data = struct.pack("<4sQ", wire.MAGIC, len(inner)) + inner
    with pytest.raises(DecodeError):
        wire.decode(data)


SAMPLES = [
    wire.encode({"a": [1, 2.5, "x", b"y", None, True], "t": (1, 2**100)}),
    wire.encode({"arr": np.arange(12, dtype=np.float32).reshape(3, 4), "s": np.int64(7)}),
    wire.encode([np.zeros((2, 0)), {"n": -(2**80)}]),
]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_only_raise_decode_error(data: bytes) -> None:
    for candidate in (data, wire.MAGIC + data, struct.pack("<4sQ", wire.MAGIC, len(data)) + data):
        with contextlib.suppress(DecodeError):
            wire.decode(candidate)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(SAMPLES), st.data())
def test_fuzz_mutated_encodings_only_raise_decode_error(sample: bytes, data: st.DataObject) -> None:
    mutated = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 6))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(mutated) - 1)))
        if action == "flip" and mutated:
            mutated[pos] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del mutated[pos : pos + data.draw(st.integers(1, 8))]
        else:
            mutated[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    with contextlib.suppress(DecodeError):
        wire.decode(bytes(mutated))


def test_array_buffers_are_64_byte_aligned() -> None:
    value = {"a": np.arange(3, dtype=np.int8), "b": np.arange(5.0)}
    encoded = wire.encode(value)
    b = value["b"].tobytes()
    assert encoded.index(b) % 64 == 0


def test_decode_without_copy_views_an_owned_writable_buffer() -> None:
    owned = bytearray(wire.encode({"w": np.arange(4.0)}))
    w = wire.decode(owned, copy=False)["w"]
    assert w.flags.writeable and w.flags.aligned and w.tolist() == [0.0, 1.0, 2.0, 3.0]
    w[0] = 42.0
    assert wire.decode(bytes(owned))["w"][0] == 42.0  # the array was a view of the buffer
    frozen = wire.decode(bytes(owned), copy=False)["w"]
    assert not frozen.flags.writeable  # immutable input: read-only view, never a shared write
