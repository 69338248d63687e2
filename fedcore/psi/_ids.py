"""Canonical byte encoding of set identifiers: ``str`` and ``int`` only, typed so "1" != 1."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

Identifier = str | int


def encode_id(value: Any) -> bytes:
    """``b"s" + UTF-8`` for a str, ``b"i" + decimal`` for an int (numpy ints too).

    Raises:
        TypeError: any other type (float, None, bytes, bool, ...), with the rule.
    """
    if isinstance(value, str):
        return b"s" + value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("PSI identifiers are str or int; got a bool (True would equal 1)")
    if isinstance(value, (int, np.integer)):
        return b"i" + str(int(value)).encode("ascii")
    raise TypeError(
        f"PSI identifiers are str or int; got {type(value).__name__} "
        "(convert floats, bytes or None to a str or int first)"
    )


def decode_id(encoded: bytes) -> Identifier:
    """The inverse of ``encode_id``.

    Raises:
        ValueError: not an encoding ``encode_id`` produces.
    """
    kind, body = encoded[:1], encoded[1:]
    if kind == b"s":
        return body.decode("utf-8", "surrogatepass")
    if kind == b"i" and body:
        value = int(body.decode("ascii"))
        if str(value).encode("ascii") == body:
            return value
    raise ValueError("not a canonical PSI identifier encoding")


def unique_encoded(ids: Iterable[Any]) -> tuple[list[bytes], dict[bytes, int]]:
    """Encode and deduplicate ``ids``: the distinct encodings and the first position of each.

    Raises:
        TypeError: an identifier of a refused type (the message gives its position).
    """
    first: dict[bytes, int] = {}
    for position, value in enumerate(ids):
        try:
            encoded = encode_id(value)
        except TypeError as exc:
            raise TypeError(f"identifier at position {position}: {exc}") from None
        first.setdefault(encoded, position)
    return list(first), first
