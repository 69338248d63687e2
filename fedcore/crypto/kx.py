"""X25519 key agreement with HKDF-SHA256 (RFC 7748, RFC 5869).

``KeyPair.generate()`` makes a key pair whose private half is a ``Secret``; ``agree`` turns
our private key and a peer's public key into a 32-byte ``Secret`` through HKDF, with a
caller-given ``info`` naming the purpose (so one Diffie-Hellman value never keys two things)
and a ``salt`` binding the session (job and round). A public key is 32 raw bytes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fedcore.crypto.secret import ACCESS, RandomBytes, Secret

KEY_BYTES = 32


class KeyPair:
    """An X25519 key pair: ``private`` (a ``Secret``) and ``public`` (32 bytes)."""

    __slots__ = ("_key", "private", "public")

    def __init__(self, private: Secret):
        if not isinstance(private, Secret) or len(private) != KEY_BYTES:
            raise TypeError("KeyPair takes a 32-byte Secret private key")
        self.private = private
        self._key = X25519PrivateKey.from_private_bytes(private.reveal(ACCESS))  # parsed once
        self.public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls, random_bytes: RandomBytes = os.urandom) -> KeyPair:
        """A fresh key pair from ``random_bytes`` (the OS generator by default)."""
        return cls(Secret.generate(KEY_BYTES, "x25519 private key", random_bytes))

    def __repr__(self) -> str:
        return f"<KeyPair public={self.public[:4].hex()}...>"

    def __bool__(self) -> NoReturn:
        raise TypeError("a KeyPair has no truth value")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a KeyPair cannot be pickled")


def public_key(private: Secret) -> bytes:
    """The 32-byte X25519 public key of ``private``."""
    key = X25519PrivateKey.from_private_bytes(private.reveal(ACCESS))
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def check_public(value: object) -> bytes:
    """``value`` if it is a 32-byte public key, else ``ValueError``."""
    if type(value) is not bytes or len(value) != KEY_BYTES:
        raise ValueError(f"an X25519 public key is {KEY_BYTES} bytes")
    return value


def agree(
    private: Secret | KeyPair, peer_public: bytes, *, info: bytes, salt: bytes, label: str = "shared key"
) -> Secret:
    """HKDF-SHA256(salt, X25519(private, peer_public), info) -> a 32-byte ``Secret``.

    ``private`` is our private key, or our ``KeyPair`` (faster when agreeing with many peers).

    Raises:
        ValueError: ``peer_public`` is malformed or a low-order point (all-zero shared value).
    """
    if isinstance(private, KeyPair):
        ours = private._key
    elif isinstance(private, Secret):
        ours = X25519PrivateKey.from_private_bytes(private.reveal(ACCESS))
    else:
        raise TypeError("agree takes our private key as a Secret or KeyPair")
    if not info:
        raise ValueError("agree needs a non-empty info naming the key's purpose")
    peer = X25519PublicKey.from_public_bytes(check_public(peer_public))
    try:
        shared = ours.exchange(peer)
    except ValueError:
        raise ValueError("key agreement failed: the peer's public key is not acceptable") from None
    derived = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info).derive(shared)
    return Secret(derived, label)


def agree_many(
    private: KeyPair, peer_publics: Sequence[bytes], *, info: bytes, salt: bytes, label: str = "shared key"
) -> list[Secret]:
    """``agree(private, pk, ...)`` for each ``pk`` of ``peer_publics``, in order (one HKDF setup)."""
    if not isinstance(private, KeyPair):
        raise TypeError("agree_many takes our KeyPair")
    if not info:
        raise ValueError("agree needs a non-empty info naming the key's purpose")
    ours = private._key
    out = []
    for peer_public in peer_publics:
        peer = X25519PublicKey.from_public_bytes(check_public(peer_public))
        try:
            shared = ours.exchange(peer)
        except ValueError:
            raise ValueError("key agreement failed: the peer's public key is not acceptable") from None
        out.append(
            Secret(HKDF(algorithm=_SHA256, length=KEY_BYTES, salt=salt, info=info).derive(shared), label)
        )
    return out


_SHA256 = hashes.SHA256()


def exchange_seconds(count: int) -> float:
    """Seconds for ``count`` bare X25519 exchanges on one core (the benchmark's key-agreement bound)."""
    ours = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    peers = [X25519PrivateKey.from_private_bytes(bytes([i % 251 + 1]) * 32).public_key() for i in range(64)]
    start = time.perf_counter()
    for i in range(count):
        ours.exchange(peers[i % 64])
    return time.perf_counter() - start
