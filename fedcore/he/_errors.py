"""Typed errors of fedcore.he.

::

    FedcoreError
    └── HEError                                  any misuse or failure of fedcore.he
        ├── KeyMismatchError   (ValueError)      operands or decryption under different keys
        ├── EncodingError      (ValueError)      a plain value outside the encodable range, NaN or inf
        ├── HeadroomError      (ValueError)      an operation could overflow a slot's headroom
        ├── DecryptionError    (ValueError)      a ciphertext does not decrypt to an encodable value
        └── PackedOperationError (TypeError)     an operation packed vectors cannot do

Every error is raised *before* a wrong number could be produced. Messages name the rule
and the sizes involved, never plaintexts or key material.
"""

from __future__ import annotations

from fedcore.errors import FedcoreError


class HEError(FedcoreError):
    """Base of every error raised by fedcore.he."""


class KeyMismatchError(HEError, ValueError):
    """Ciphertexts under different public keys were combined, or decrypted with another key."""


class EncodingError(HEError, ValueError):
    """A plain value cannot be encoded: outside the stated range, NaN or infinite."""


class HeadroomError(HEError, ValueError):
    """An operation could push a slot past its headroom; refused before computing it."""


class DecryptionError(HEError, ValueError):
    """A ciphertext did not decode (corrupted, under another key, or out of range)."""


class PackedOperationError(HEError, TypeError):
    """Packed vectors cannot do this operation (it needs one value per ciphertext)."""
