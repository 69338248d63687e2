"""The safe wire codec: every value that crosses parties goes through ``encode``/``decode``.

Types beyond plain values are registered where they are defined: ``@message(name)`` on a
frozen dataclass, ``register(cls, name, ...)`` for anything else, in a module listed in
``fedcore.wire._catalog`` so that any process can decode them whatever it imported.
"""

from fedcore.wire._codec import MAGIC, decode, encode, encode_parts
from fedcore.wire._registry import Layout, message, register

__all__ = ["MAGIC", "Layout", "decode", "encode", "encode_parts", "message", "register"]
