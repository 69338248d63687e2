"""Decoding allocates at most 4x the encoded size plus a constant, measured with tracemalloc."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedcore import wire
from fedcore.errors import DecodeError
from fedcore.wire._budget import AMPLIFICATION, SLACK_BYTES

BOUND_SLACK = SLACK_BYTES + 2**20  # the budget's constant, plus tracemalloc's own bookkeeping


def frame(body: bytes, buffers: bytes = b"") -> bytes:
    head = struct.pack("<4sQ", wire.MAGIC, len(body)) + body
    return head + bytes(-len(head) % 64) + buffers if buffers else head


def peak_of(fn: Callable[[], object]) -> tuple[int, object]:
    """Peak bytes allocated while ``fn`` runs, and what it returned or raised."""
    tracemalloc.start()
    try:
        try:
            outcome: object = fn()
        except DecodeError as exc:
            outcome = exc
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, outcome


def assert_bounded(data: bytes, *, copy: bool = True) -> object:
    peak, outcome = peak_of(lambda: wire.decode(data, copy=copy))
    assert peak <= AMPLIFICATION * len(data) + BOUND_SLACK, (
        f"decoding {len(data)} bytes allocated {peak} at peak ({peak / len(data):.1f}x)"
    )
    return outcome


def array32(count: int, items: bytes) -> bytes:
    return b"\xdd" + struct.pack(">I", count) + items


def ext(code: int, payload: bytes) -> bytes:
    return msgpack.packb(msgpack.ExtType(code, payload))


TINY_ARRAY = ext(1, msgpack.packb(["<f4", [1], 0, 4]))
# Tokens that cost far more in memory than on the wire, or a Python call each to build.
WORST_TOKENS = [
    b"\x80",  # {}
    b"\x90",  # []
    b"\x91\x90",  # [[]]
    b"\x81\x01\x80",  # {1: {}}
    b"\x01",  # a cached small int: 8 bytes of list slot per byte
    b"\xe0",  # -32: not cached
    b"\xcd\x12\x34",  # a 28-byte int from 3 bytes
    b"\xa2ab",  # a 51-byte str from 3 bytes
    b"\xa3\xe2\x82\xac",  # a UCS-2 str
    b"\xc4\x02xy",  # a 35-byte bytes from 4 bytes
    b"\xcb" + bytes(8),  # a float
    b"\xd5\x02\x00\x05",  # a tiny big int
    b"\xd4\x03\x90",  # an empty tuple
    TINY_ARRAY,  # many arrays viewing one 64-byte buffer
]


@st.composite
def worst_case_messages(draw: st.DrawFn) -> bytes:
    """A message of 64 KiB-1 MiB made of worst-case tokens, flat, chunked or nested."""
    unit = b"".join(draw(st.lists(st.sampled_from(WORST_TOKENS), min_size=1, max_size=4)))
    target = draw(st.integers(64 * 1024, 1024 * 1024))
    repeats = max(1, target // len(unit))
    tokens_per_unit = _count_tokens(unit)
    shape = draw(st.sampled_from(["flat", "chunks", "nested"]))
    if shape == "flat":
        body = array32(repeats * tokens_per_unit, unit * repeats)
    elif shape == "chunks":  # fixarrays of one unit each, in one outer list
        inner = (
            bytes([0x90 + tokens_per_unit]) + unit if tokens_per_unit < 16 else array32(tokens_per_unit, unit)
        )
        body = array32(repeats, inner * repeats)
    else:  # [unit..., [unit..., [...]]] as deep as msgpack lets a peer go
        depth = min(repeats, 1000)
        body = (array32(tokens_per_unit + 1, unit)) * depth + b"\x90"
    return frame(body, bytes(64))


def _count_tokens(unit: bytes) -> int:
    unpacker = msgpack.Unpacker(ext_hook=lambda code, data: None, strict_map_key=False)
    unpacker.feed(unit)
    return sum(1 for _ in unpacker)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worst_case_messages())
def test_worst_case_structures_stay_within_the_allocation_bound(data: bytes) -> None:
    outcome = assert_bounded(data)
    assert not isinstance(outcome, Exception) or isinstance(outcome, DecodeError)


def test_a_megabyte_of_empty_maps_is_refused_without_building_them() -> None:
    n = 2**20
    data = frame(array32(n, b"\x80" * n))
    outcome = assert_bounded(data)
    assert isinstance(outcome, DecodeError)
    assert "would allocate more than" in str(outcome) and "numpy arrays" in str(outcome)


def test_fixarrays_of_empty_maps_are_refused() -> None:
    n = 2**16
    data = frame(array32(n, (b"\x9f" + b"\x80" * 15) * n))
    assert isinstance(assert_bounded(data), DecodeError)


def test_deeply_nested_small_containers_are_refused() -> None:
    pairs = 2**19
    assert isinstance(assert_bounded(frame(array32(pairs, b"\x91\x90" * pairs))), DecodeError)
    assert isinstance(assert_bounded(frame(b"\x91" * 2**20 + b"\x90")), DecodeError)


def test_truncated_nested_headers_cannot_allocate_their_declared_counts() -> None:
    # each level declares 4000 slots that never arrive: msgpack would allocate them all up front
    data = frame(array32(4000, b"") * 1000)
    peak, outcome = peak_of(lambda: wire.decode(data))
    assert isinstance(outcome, DecodeError)
    assert peak <= AMPLIFICATION * len(data) + BOUND_SLACK


def test_payload_copies_of_nested_extensions_are_charged() -> None:
    value: object = b"x" * (4 * 2**20)
    for _ in range(8):
        value = (value,)
    assert isinstance(assert_bounded(wire.encode(value)), DecodeError)
    shallow = wire.encode(((b"x" * (4 * 2**20),),))
    assert assert_bounded(shallow) == ((b"x" * (4 * 2**20),),)


def test_a_16_mib_hostile_value_is_refused_within_the_bound() -> None:
    n = 16 * 2**20
    data = frame(array32(n // 16, (b"\x9f" + b"\x80" * 15) * (n // 16)))
    assert isinstance(assert_bounded(data), DecodeError)


def test_a_16_mib_legitimate_value_decodes_within_the_bound() -> None:
    rng = np.random.default_rng(0)
    value = {
        "weights": rng.random(2**20, dtype=np.float64),  # 8 MiB, out of band
        "blob": rng.bytes(4 * 2**20),
        "ciphertexts": [int.from_bytes(rng.bytes(256), "big") | 1 for _ in range(8000)],
        "ids": tuple(rng.bytes(32) for _ in range(20000)),
        "meta": {"round": 3, "loss": 0.25, "tags": ["a", "b"]},
    }
    data = wire.encode(value)
    assert len(data) > 14 * 2**20
    out = assert_bounded(data)
    assert isinstance(out, dict) and out["ciphertexts"] == value["ciphertexts"]
    assert out["ids"] == value["ids"] and np.array_equal(out["weights"], value["weights"])


def test_huge_ints_decode_within_the_bound() -> None:
    for n in (2 ** (8 * 2**22) - 1, -(2 ** (8 * 2**22)) + 3):
        assert assert_bounded(wire.encode(n)) == n


def test_zero_copy_decode_allocates_nothing_for_the_array() -> None:
    owned = bytearray(wire.encode({"w": np.ones(2**22, np.float32)}))
    peak, out = peak_of(lambda: wire.decode(owned, copy=False))
    assert isinstance(out, dict) and out["w"].base is not None
    assert peak < 2**20  # a 16 MiB array, viewed in place


@pytest.mark.parametrize("token", WORST_TOKENS)
def test_small_messages_of_worst_tokens_still_decode(token: bytes) -> None:
    data = frame(array32(100, token * 100), bytes(64))
    assert isinstance(wire.decode(data), list)
