"""The decode budget: what decoding may allocate is charged, from the bytes, before it is built.

A message of ``L`` encoded bytes may allocate at most ``AMPLIFICATION * L + SLACK_BYTES``
while it decodes. Before msgpack's C unpacker builds a structure, :func:`charge_structure`
walks its tokens and charges each one what CPython will allocate for it: a list header
``56 + 8n`` (its slot array is allocated up front, even if the elements never arrive), a
map header the size of a dict of ``n`` entries, a string or bytes object its header and
content, a non-cached int or float its object. Extensions (arrays, big ints, tuples,
registered types) are charged by the codec when it builds them.

The walk is fast where the input is dense: runs of one-byte tokens (small ints, ``None``,
booleans, small container headers: the "lists of empty maps" shape) are counted with one
``numpy.bincount``, runs of one fixed-width scalar type with one regular-expression match,
and mixed runs of fixed-width scalars are charged a per-byte upper bound. Every step of the
walk charges at least ``STEP_FLOOR`` bytes, so the number of Python-level steps is bounded
by the budget itself: no input, however it interleaves token types, makes the walk slow.
"""

from __future__ import annotations

import functools
import re
import struct

import numpy as np

from fedcore.errors import DecodeError

AMPLIFICATION = 4
SLACK_BYTES = 4 * 2**20
STEP_FLOOR = 256
TOKEN_FLOOR = 48  # per token of a short payload, walked one token at a time
TINY_MESSAGE = 512  # decoding this many bytes cannot allocate SLACK_BYTES (nested headers: ~2 MB): no walk
_SHORT_BLOB = 512

_LIST_BASE, _SLOT = 56, 8
_STR_BASE, _BYTES_BASE = 76, 33  # a compact non-ASCII str header; a bytes header

_ONE_BYTE_TOKENS = re.compile(rb"[\x00-\xa0\xc0\xc2\xc3\xe0-\xff]++")
# One-byte tokens and fixed-width scalars, in any order: the shape a hostile peer interleaves.
_SCALARS = re.compile(
    rb"(?:[\x00-\xa0\xc0\xc2\xc3\xe0-\xff]|[\xcc\xd0].|[\xcd\xd1].{2}|[\xca\xce\xd2].{4}|[\xcb\xcf\xd3].{8})++",
    re.DOTALL,
)
# type byte -> (token size, bytes allocated): non-cached ints are 28-36 bytes, floats 24
_FIXED = {
    0xCC: (2, 0), 0xCD: (3, 28), 0xCE: (5, 32), 0xCF: (9, 36),
    0xD0: (2, 28), 0xD1: (3, 28), 0xD2: (5, 32), 0xD3: (9, 36),
    0xCA: (5, 24), 0xCB: (9, 24),
}  # fmt: skip
_HOMOGENEOUS = {
    t: re.compile(b"(?:" + re.escape(bytes([t])) + b".{%d})++" % (size - 1), re.DOTALL)
    for t, (size, _) in _FIXED.items()
}
_LENGTH = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC7: 1, 0xC8: 2, 0xC9: 4}
_COUNT = {0xDC: (2, False), 0xDD: (4, False), 0xDE: (2, True), 0xDF: (4, True)}
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
_CHUNK = 1 << 16
_RUN_TOKEN_LIMIT = 1024  # longer tokens are few per byte: one step each is cheap enough
_EXT_HOLD_FLOOR = 512
_UINT = {1: struct.Struct(">B"), 2: struct.Struct(">H"), 4: struct.Struct(">I")}


def dict_bytes(entries: int) -> int:
    """An upper bound on a CPython dict of ``entries`` items (measured on 3.11: 224 for 1..5)."""
    return 64 if entries == 0 else 232 + 48 * entries


def list_bytes(items: int) -> int:
    return _LIST_BASE + _SLOT * items


def _byte_costs() -> np.ndarray:
    """What a token starting with each byte allocates, at most (0 for cached objects)."""
    costs = np.zeros(256, dtype=np.int64)  # fixints, None, booleans, "" are cached objects
    for n in range(16):
        costs[0x80 + n] = dict_bytes(n)
        costs[0x90 + n] = list_bytes(n)
    costs[0xE0:0xFB] = 28  # -32..-6 are not in CPython's small-int cache
    for kind, (_, cost) in _FIXED.items():
        costs[kind] = cost
    return costs


_BYTE_COST = _byte_costs()
_BYTE_COST_LIST = [int(c) for c in _BYTE_COST]
_SCALAR_KIND = [b <= 0xA0 or b >= 0xE0 or b in (0xC0, 0xC2, 0xC3) or b in _FIXED for b in range(256)]


class Budget:
    """Bytes a decode may still allocate; ``charge`` raises ``DecodeError`` past the limit."""

    __slots__ = ("encoded", "limit", "used", "walk")

    def __init__(self, encoded: int) -> None:
        self.encoded = encoded
        self.walk = encoded > TINY_MESSAGE
        self.limit = AMPLIFICATION * encoded + SLACK_BYTES
        self.used = 0

    def charge(self, nbytes: int) -> None:
        self.used += nbytes
        if self.used > self.limit:
            raise DecodeError(
                f"decoding this {self.encoded}-byte message would allocate more than "
                f"{self.limit} bytes ({AMPLIFICATION}x its size + {SLACK_BYTES // 2**20} MiB): "
                "it holds too many small objects; send numbers as numpy arrays"
            )

    def release(self, nbytes: int) -> None:
        self.used -= nbytes


def ext_hold(payload_bytes: int) -> int:
    """What the walk holds for an extension: msgpack's copy of its payload, plus work.

    The codec releases it once the extension is built. The floor makes a flood of tiny
    extensions (each one a Python call) run out of budget long before it runs out of time.
    """
    return max(_EXT_HOLD_FLOOR, _BYTES_BASE + payload_bytes)


def charge_structure(data: bytes | memoryview, budget: Budget) -> None:
    """Charge ``budget`` for every object msgpack will build from ``data`` (extensions aside).

    Raises:
        DecodeError: the structure needs more than the budget has left, or is malformed.
    """
    end = len(data)
    if end <= _SHORT_BLOB:
        _charge_short(data, budget)
        return
    pos = 0
    while pos < end:
        kind = data[pos]
        if kind in _COUNT:
            width, is_map = _COUNT[kind]
            count = _read_uint(data, pos + 1, width)
            pos += 1 + width
            cost = dict_bytes(count) if is_map else list_bytes(count)
        elif _SCALAR_KIND[kind] and not _long_homogeneous(data, pos, kind):
            pos = _scalar_run(data, pos, budget)
            continue
        else:
            header, size, cost = _sized(data, pos, kind)
            pos, cost = _run(data, pos, header, size, cost)
        budget.charge(max(cost, STEP_FLOOR))


def _charge_short(data: bytes | memoryview, budget: Budget) -> None:
    """Token by token, for an extension's payload: cheaper than runs when there are few."""
    end = len(data)
    pos = 0
    total = 0
    while pos < end:
        kind = data[pos]
        if kind in _FIXED:
            size, cost = _FIXED[kind]
            pos += size
        elif _SCALAR_KIND[kind]:
            pos, cost = pos + 1, _BYTE_COST_LIST[kind]
        elif kind == 0xC7 and pos + 1 < end:  # ext8: a big int or a tuple, the common payload
            length = data[pos + 1]
            pos, cost = pos + 3 + length, max(_EXT_HOLD_FLOOR, _BYTES_BASE + length)
        elif kind in _COUNT:
            width, is_map = _COUNT[kind]
            count = _read_uint(data, pos + 1, width)
            pos += 1 + width
            cost = dict_bytes(count) if is_map else list_bytes(count)
        else:
            _, size, cost = _sized(data, pos, kind)
            pos += size
        total += cost if cost > TOKEN_FLOOR else TOKEN_FLOOR
    if pos > end:
        raise DecodeError("malformed fedcore wire message (truncated value)")
    budget.charge(total)


def _long_homogeneous(data: bytes | memoryview, pos: int, kind: int) -> bool:
    """Whether a fixed-width scalar starts a run of its own kind worth charging exactly."""
    if kind not in _FIXED:
        return False
    size = _FIXED[kind][0]
    return bytes(data[pos : pos + 4 * size : size]) == bytes([kind]) * 4


def _scalar_run(data: bytes | memoryview, pos: int, budget: Budget) -> int:
    """Charge a run of one-byte tokens and fixed-width scalars at C speed.

    Every byte of the run is charged as if a token started there: exact when all tokens are
    one byte (lists of empty maps, of small ints), an upper bound when some carry content.
    """
    window = min(len(data), pos + _CHUNK)  # charge as we go: refuse before scanning it all
    match = _ONE_BYTE_TOKENS.match(data, pos, window)
    if match is None or match.end() - pos < 32:
        match = _SCALARS.match(data, pos, window)
    if match is None:
        raise DecodeError("malformed fedcore wire message (truncated scalar)")
    stop = match.end()
    if stop - pos < 32:
        budget.charge(max(sum(_BYTE_COST_LIST[b] for b in data[pos:stop]), STEP_FLOOR))
    else:  # bincount widens to intp: the window keeps that copy small
        counts = np.bincount(np.frombuffer(data, np.uint8, stop - pos, pos), minlength=256)
        budget.charge(int(counts @ _BYTE_COST))
    return stop


def _sized(data: bytes | memoryview, pos: int, kind: int) -> tuple[int, int, int]:
    """(header length, token length, bytes allocated) of the token at ``pos``."""
    if kind in _FIXED:
        size, cost = _FIXED[kind]
        return 1, size, cost
    if 0xA1 <= kind <= 0xBF:
        return 1, 1 + kind - 0xA0, _str_bytes(data, pos + 1, kind - 0xA0)
    if kind in _FIXEXT:
        return 2, 2 + _FIXEXT[kind], ext_hold(_FIXEXT[kind])
    if kind not in _LENGTH:
        raise DecodeError(f"malformed fedcore wire message (msgpack type byte 0x{kind:02x})")
    width = _LENGTH[kind]
    length = _read_uint(data, pos + 1, width)
    header = 1 + width
    if kind in (0xD9, 0xDA, 0xDB):
        return header, header + length, _str_bytes(data, pos + header, length)
    if kind in (0xC4, 0xC5, 0xC6):
        return header, header + length, _BYTES_BASE + length if length > 1 else 0
    return header + 1, header + 1 + length, ext_hold(length)


def _run(data: bytes | memoryview, pos: int, header: int, size: int, cost: int) -> tuple[int, int]:
    """Consume the run of tokens identical in header and length to the one at ``pos``."""
    if pos + size > len(data):
        raise DecodeError("malformed fedcore wire message (truncated value)")
    if size > _RUN_TOKEN_LIMIT:
        return pos + size, cost
    match = _homogeneous(bytes(data[pos : pos + header]), size - header).match(data, pos)
    count = (match.end() - pos) // size if match else 1
    return pos + count * size, count * cost


@functools.lru_cache(maxsize=1024)
def _homogeneous(header: bytes, body: int) -> re.Pattern[bytes]:
    return re.compile(b"(?:" + re.escape(header) + b".{%d})++" % body, re.DOTALL)


def _str_bytes(data: bytes | memoryview, start: int, length: int) -> int:
    if length <= 1:
        return 0 if length == 0 else _STR_BASE + 4
    if length < 256 or start + length > len(data):
        return _STR_BASE + 4 * length
    top = int(np.frombuffer(data, np.uint8, length, start).max())
    width = 1 if top < 0x80 else 2 if top < 0xF0 else 4  # latin-1 / UCS-2 / UCS-4 characters
    return _STR_BASE + width * length


def _read_uint(data: bytes | memoryview, pos: int, width: int) -> int:
    if pos + width > len(data):
        raise DecodeError("malformed fedcore wire message (truncated header)")
    value: int = _UINT[width].unpack_from(data, pos)[0]
    return value
