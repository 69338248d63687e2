"""The safe wire codec: every value that crosses parties goes through ``encode``/``decode``."""

from fedcore.wire._codec import MAGIC, decode, encode, encode_parts, register

__all__ = ["MAGIC", "decode", "encode", "encode_parts", "register"]
