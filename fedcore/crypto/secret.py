"""Secret byte strings that cannot leak by accident.

A ``Secret`` holds key material (a seed, a private key, a derived key). It refuses
``bool()``, ``pickle`` and ``copy``, its ``repr`` names only its label and length, and its
bytes come out only through ``reveal(ACCESS)``, so ``grep -n "reveal(ACCESS)"`` lists every
place a secret leaves its wrapper (the idea of Tink's ``_secret_key_access.py``).

Other holders of secret material (a Paillier private key, a PSI blinding key, a Shamir
share) open the same way: each door that hands the material out takes ``ACCESS`` and
checks it with ``check_access``, so ``grep -n "(ACCESS)"`` finds those too.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import Any, NoReturn

RandomBytes = Callable[[int], bytes]


class SecretAccess:
    """The token that unlocks ``Secret.reveal``; there is one instance, ``ACCESS``."""

    _made = False

    def __init__(self) -> None:
        if SecretAccess._made:
            raise TypeError("SecretAccess is a singleton: import fedcore.crypto.secret.ACCESS")
        SecretAccess._made = True

    def __repr__(self) -> str:
        return "<SecretAccess>"


ACCESS = SecretAccess()


def check_access(access: object, what: str) -> None:
    """Refuse unless ``access`` is ``ACCESS``; ``what`` names the door in the error.

    Raises:
        TypeError: any other value (a missing token included).
    """
    if access is not ACCESS:
        raise TypeError(f"{what} needs the ACCESS token from fedcore.crypto.secret")


class Secret:
    """A secret byte string.

    Args:
        value: the secret bytes (copied).
        label: a non-secret name shown in ``repr`` (e.g. ``"self-mask seed"``).
    """

    __slots__ = ("_value", "label")

    def __init__(self, value: bytes | bytearray | memoryview, label: str = "secret"):
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"Secret takes bytes, got {type(value).__name__}")
        self._value = bytes(value)
        self.label = label

    @classmethod
    def generate(
        cls, size: int = 32, label: str = "secret", random_bytes: RandomBytes = os.urandom
    ) -> Secret:
        """A fresh uniformly random secret of ``size`` bytes from ``random_bytes``."""
        if size < 16:
            raise ValueError(f"a secret needs at least 16 bytes, got {size}")
        value = random_bytes(size)
        if len(value) != size:
            raise ValueError(f"random_bytes({size}) returned {len(value)} bytes")
        return cls(value, label)

    def reveal(self, access: SecretAccess) -> bytes:
        """The secret bytes; ``access`` must be ``fedcore.crypto.secret.ACCESS``."""
        check_access(access, "Secret.reveal")
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"<Secret {self.label} ({len(self._value)} bytes)>"

    __str__ = __repr__

    def __bool__(self) -> NoReturn:
        raise TypeError("a Secret has no truth value; compare lengths or use `is None`")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    __hash__ = None  # type: ignore[assignment]

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a Secret cannot be pickled or copied; send it only through fedcore.crypto")

    def __copy__(self) -> NoReturn:
        raise TypeError("a Secret cannot be copied")

    def __deepcopy__(self, memo: Any) -> NoReturn:
        raise TypeError("a Secret cannot be copied")
