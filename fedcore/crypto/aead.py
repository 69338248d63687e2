"""Authenticated encryption bound to its place in a protocol: ChaCha20-Poly1305 (RFC 8439).

``encrypt(key, plaintext, binding)`` draws a fresh 96-bit random nonce itself (callers never
choose one) and authenticates the ``Binding`` — job, round, sender, recipient and stage — as
associated data, so a ciphertext opens only in the exact place it was made for: replaying it
to another recipient, round, job or stage fails. Output: nonce (12 bytes) || ciphertext || tag.

``decrypt`` raises ``DecryptionFailed`` for every failure (wrong key, wrong binding, tampered
or truncated ciphertext) and never says which check failed. With random nonces a key may
seal up to 2^32 messages before the nonce-collision bound matters; protocol keys here seal
a handful.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from fedcore.crypto.secret import ACCESS, Secret
from fedcore.errors import AuthError

NONCE_BYTES = 12
TAG_BYTES = 16
_VERSION = b"fedcore-aead-v1"


class DecryptionFailed(AuthError):
    """A ciphertext did not authenticate; deliberately says nothing more."""


@dataclass(frozen=True)
class Binding:
    """Where a ciphertext belongs: authenticated, not encrypted."""

    job: str
    round: str
    sender: str
    recipient: str
    stage: str

    def __post_init__(self) -> None:
        for name in ("job", "round", "sender", "recipient", "stage"):
            if type(getattr(self, name)) is not str:
                raise TypeError(f"Binding.{name} must be a str")

    def associated_data(self) -> bytes:
        parts = [_VERSION] + [
            s.encode() for s in (self.job, self.round, self.sender, self.recipient, self.stage)
        ]
        return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def _cipher(key: Secret) -> ChaCha20Poly1305:
    if not isinstance(key, Secret) or len(key) != 32:
        raise TypeError("an AEAD key is a 32-byte Secret")
    return ChaCha20Poly1305(key.reveal(ACCESS))


def encrypt(key: Secret, plaintext: bytes, binding: Binding) -> bytes:
    """Seal ``plaintext`` for ``binding`` under ``key`` with a fresh random nonce."""
    if not isinstance(binding, Binding):
        raise TypeError("encrypt needs a Binding naming job, round, sender, recipient and stage")
    if not isinstance(plaintext, bytes):
        raise TypeError("encrypt takes bytes")
    nonce = os.urandom(NONCE_BYTES)
    return nonce + _cipher(key).encrypt(nonce, plaintext, binding.associated_data())


def decrypt(key: Secret, sealed: bytes, binding: Binding) -> bytes:
    """Open a ciphertext from ``encrypt``; ``DecryptionFailed`` on any mismatch."""
    if not isinstance(binding, Binding):
        raise TypeError("decrypt needs a Binding naming job, round, sender, recipient and stage")
    cipher = _cipher(key)
    if not isinstance(sealed, bytes) or len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionFailed("decryption failed")
    try:
        return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], binding.associated_data())
    except InvalidTag:
        raise DecryptionFailed("decryption failed") from None
