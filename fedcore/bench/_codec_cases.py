"""Worst-case codec messages: valid msgpack that costs far more to decode than it weighs."""

from __future__ import annotations

import struct

import msgpack

from fedcore import wire


def _frame(body: bytes, buffers: bytes = b"") -> bytes:
    head = struct.pack("<4sQ", wire.MAGIC, len(body)) + body
    return head + bytes(-len(head) % 64) + buffers if buffers else head


def _array32(count: int, items: bytes) -> bytes:
    return b"\xdd" + struct.pack(">I", count) + items


def _chunks(unit: bytes, size: int) -> bytes:
    """Fixarrays of 15 ``unit`` tokens each, in one outer list, about ``size`` bytes."""
    inner = b"\x9f" + unit * 15
    count = max(1, size // len(inner))
    return _array32(count, inner * count)


def worst_case_messages(size: int) -> dict[str, bytes]:
    """Messages of about ``size`` bytes, by name."""
    tiny_array = msgpack.packb(msgpack.ExtType(1, msgpack.packb(["<f4", [1], 0, 4])))
    accepted_floats = max(1, size // 9 - 8)
    return {
        "list of empty maps": _frame(_array32(size, b"\x80" * size)),
        "fixarrays of empty maps": _frame(_chunks(b"\x80", size)),
        "nested small containers [[]]": _frame(_array32(size // 2, b"\x91\x90" * (size // 2))),
        "deep nesting": _frame(b"\x91" * size + b"\x90"),
        "interleaved map/int16": _frame(_chunks(b"\x80\xcd\x12\x34", size)),
        "2-char strings": _frame(_chunks(b"\xa2ab", size)),
        "tiny big ints": _frame(_chunks(b"\xd5\x02\x00\x05", size)),
        "empty tuples": _frame(_chunks(b"\xd4\x03\x90", size)),
        "tiny arrays": _frame(_chunks(tiny_array, size), bytes(64)),
        "huge int": wire.encode(2 ** (8 * size) - 1),
        "list of floats (accepted)": _frame(msgpack.packb([1.5] * accepted_floats)),
        "list of 32-byte bytes (accepted)": wire.encode([bytes(32)] * (size // 34)),
    }
