"""Paillier keys of fedcore.he: generation, phe interop, and a private key that stays put.

The top of fedcore.he's own imports: keys make vectors (``_crypt``, ``_vector``) and
nothing below imports this module. Every check and every big-integer operation is
``fedcore.crypto.paillier``'s; the factors leave a ``PrivateKey`` only by ``reveal(ACCESS)``
here, and a caller takes them out only with the same token (``export``, ``to_phe``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, NoReturn

import numpy as np

from fedcore.crypto import paillier, phe_interop
from fedcore.crypto.cache import Cache
from fedcore.crypto.paillier import BigInt
from fedcore.crypto.secret import ACCESS, Secret, SecretAccess, check_access
from fedcore.he import _tasks
from fedcore.he._crypt import decrypt_integers, decrypt_vector, encrypt_array, encrypt_integers
from fedcore.he._encoding import FixedPoint
from fedcore.he._errors import KeyMismatchError
from fedcore.he._vector import EncryptedVector

DEFAULT_KEY_BITS = 2048
MIN_KEY_BITS = 512  # for fast tests only; use 2048 or more for real data
MAX_KEY_BITS = paillier.MAX_KEY_BITS


def check_modulus(n: int, min_bits: int = MIN_KEY_BITS) -> int:
    """Validate a Paillier modulus from outside (another party, phe): ``paillier.check_modulus``.

    Raises:
        ValueError: not an odd, non-square integer of min_bits..MAX_KEY_BITS bits free of small factors.
    """
    return paillier.check_modulus(n, min_bits, MAX_KEY_BITS)


class _EncryptionState:
    """What encryption under one modulus keeps in one process: the DJN base and the pool.

    Shared by every PublicKey object with that modulus in this process (see ``_state_for``).
    """

    __slots__ = ("hs", "lock", "pool")

    def __init__(self) -> None:
        self.hs: int | None = None
        self.lock = threading.Lock()
        self.pool: list[Any] = []


STATES: Cache[int, _EncryptionState] = Cache("encryption states by modulus", 64)
"""Moduli whose state outlives their key objects (a few hundred bytes each, pools aside)."""


def _state_for(n: int) -> _EncryptionState:
    """This process's encryption state for modulus ``n`` (LRU-bounded; live keys keep theirs).

    Every key object for the same n -- in particular each one decoded from the wire --
    gets the same state, hence the same h_s, so worker processes (whose DJN tables are
    cached by (n, h_s)) build a table once per modulus, not once per received vector.
    Sharing h_s is what one key object always did for all its ciphertexts: h_s is a
    public base drawn once by this process (never by a peer), and each ciphertext still
    draws its own fresh exponent. Precomputed randomizers are shared the same way and
    still leave the pool as they are taken, so none is ever used twice.
    """
    return STATES.get(n, _EncryptionState)


class PublicKey:
    """A Paillier public key (g = n + 1, as in ``phe``).

    The encryptor's DJN base h_s is made on first use, once per process and modulus
    (shared by every key object with this n), and never sent.

    Args:
        n: the modulus.
    """

    __slots__ = ("_state", "bits", "n", "n2")

    def __init__(self, n: int):
        self.n = check_modulus(n)
        self.n2 = self.n * self.n
        self.bits = self.n.bit_length()
        self._state = _state_for(self.n)

    @property
    def fingerprint(self) -> str:
        """First 16 hex digits of SHA-256 of n: a short public name for the key."""
        return hashlib.sha256(self.n.to_bytes((self.bits + 7) // 8, "big")).hexdigest()[:16]

    @property
    def ciphertext_bytes(self) -> int:
        """Width of one ciphertext on the wire."""
        return (self.n2.bit_length() + 7) // 8

    def djn_base(self) -> int:
        """This process's DJN base h_s for this modulus (made once, see ``fedcore.crypto.paillier``)."""
        state = self._state
        with state.lock:
            if state.hs is None:
                state.hs = int(paillier.make_hs(self.n))
            return state.hs

    def precompute(self, count: int, *, runtime: Any = None) -> list[Future[Any]]:
        """Make ``count`` randomizers r^n ahead, in the background on ``runtime``.

        Later encryptions under this modulus in this process (any key object for it)
        take them from the pool (each exactly once, removed as taken) before drawing
        fresh ones, so waiting time (for a peer, for the network) can pay for the
        expensive part of encryption.

        Returns:
            the futures of the background tasks (already done without a runtime).
        """
        if type(count) is not int or count < 0:
            raise ValueError(f"count must be a non-negative int, got {count!r}")
        workers = getattr(runtime, "workers", 1)
        futures = []
        for a, b in _tasks.chunk_bounds(count, workers):
            if runtime is None:
                future: Future[Any] = Future()
                future.set_result(_tasks.randomizers_chunk(self.n, self.djn_base(), b - a))
            else:
                future = runtime.submit(_tasks.randomizers_chunk, self.n, self.djn_base(), b - a)
            future.add_done_callback(self._absorb)
            futures.append(future)
        return futures

    def _absorb(self, future: Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            with self._state.lock:
                self._state.pool.extend(future.result())

    @property
    def precomputed(self) -> int:
        """How many precomputed randomizers are ready."""
        with self._state.lock:
            return len(self._state.pool)

    def take_randomizers(self, count: int) -> list[Any]:
        """Remove and return up to ``count`` precomputed randomizers (never handed out twice)."""
        state = self._state
        with state.lock:
            taken = state.pool[:count]
            del state.pool[:count]
        return taken

    def encrypt(
        self,
        array: Any,
        *,
        packed: bool = True,
        runtime: Any = None,
        encoding: FixedPoint | None = None,
    ) -> EncryptedVector:
        """Encrypt a 1-D array of floats or ints (see ``fedcore.he`` for precision and packing).

        Args:
            array: values to encrypt (a 1-D array-like of floats, ints or bools).
            packed: many values per ciphertext (fast; add / add-plain / integer-scalar
                multiply only) or one per ciphertext (every operation, ``phe``-compatible).
            runtime: a fedcore Runtime to split the work across its workers.
            encoding: a FixedPoint overriding the default for this mode and dtype.

        Raises:
            EncodingError: a value outside the encoding's range, NaN or infinite.
        """
        return encrypt_array(self, array, packed=packed, runtime=runtime, encoding=encoding)

    def encrypt_ints(self, plaintexts: Sequence[int], *, runtime: Any = None) -> list[BigInt]:
        """Raw ciphertexts (mod n^2) of signed integers, one each, with no encoding.

        Each integer is taken mod n (so -1 decrypts to n - 1); the caller encodes and
        bounds its values (SecureBoost's packed gradients, for one).

        Raises:
            TypeError: an element is not an integer.
        """
        return encrypt_integers(self, plaintexts, runtime=runtime)

    @classmethod
    def from_phe(cls, key: Any) -> PublicKey:
        """The key of a ``phe.PaillierPublicKey``."""
        return cls(phe_interop.public_modulus(key))

    def to_phe(self) -> Any:
        """The same key as a ``phe.PaillierPublicKey`` (public: no token needed)."""
        return phe_interop.public_key(self.n)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.n == self.n

    def __hash__(self) -> int:
        return hash(("fedcore.he.PublicKey", self.n))

    def __repr__(self) -> str:
        return f"PublicKey(bits={self.bits}, fingerprint={self.fingerprint})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (PublicKey, (self.n,))


class PrivateKey:
    """A Paillier private key: decrypts with CRT. It refuses pickle, the wire codec and bool.

    Its owner can also encrypt with it (``encrypt``, ``encrypt_ints``): the same
    ciphertexts ``public_key.encrypt`` makes, computed with the factors, about 1.3x faster.
    The factors live in a ``fedcore.crypto.secret.Secret``: every place they come out is a
    ``reveal(ACCESS)`` in this module, and a caller gets them out only by passing the same
    token: ``private_key.export(ACCESS)`` (to move the key through ``fedcore.wire``) or
    ``private_key.to_phe(ACCESS)``, so ``grep ACCESS`` lists every place they leave.

    Args:
        public_key: the matching public key.
        p: one prime factor of n.
        q: the other.
    """

    __slots__ = ("_decryptor", "_factors", "public_key")

    def __init__(self, public_key: PublicKey, p: int, q: int):
        if not isinstance(public_key, PublicKey):
            raise TypeError(f"public_key must be a fedcore.he.PublicKey, got {type(public_key).__name__}")
        p, q = int(p), int(q)
        paillier.check_factors(public_key.n, p, q)
        self.public_key = public_key
        width = _factor_width(public_key)
        low, high = min(p, q), max(p, q)
        self._factors = Secret(low.to_bytes(width, "big") + high.to_bytes(width, "big"), "Paillier factors")
        self._decryptor: paillier.CRTDecryptor | None = None

    def _primes(self) -> tuple[int, int]:
        """(p, q) with p < q, out of their Secret."""
        raw, width = self._factors.reveal(ACCESS), _factor_width(self.public_key)
        return int.from_bytes(raw[:width], "big"), int.from_bytes(raw[width:], "big")

    def _crt(self) -> paillier.CRTDecryptor:
        """The CRT constants of this key, computed once (primes already checked above).

        It carries the factors to this party's own runtime workers (decryption and the
        owner's encryption), never further.
        """
        if self._decryptor is None:
            p, q = self._primes()
            self._decryptor = paillier.CRTDecryptor(p, q, check=False)
        return self._decryptor

    def encrypt(
        self,
        array: Any,
        *,
        packed: bool = True,
        runtime: Any = None,
        encoding: FixedPoint | None = None,
    ) -> EncryptedVector:
        """Encrypt under ``public_key`` with the factors: for a party encrypting under its own key.

        Arguments, result and errors are those of ``PublicKey.encrypt``, and so are the
        ciphertexts' distribution (DJN randomness h_s^a, fresh a of k/2 bits, this
        process's base h_s, precomputed randomizers used first): only the arithmetic
        runs mod p^2 and q^2 (``fedcore.crypto.paillier.CRTEncryptor``). Nobody who
        receives the vector can tell which of the two made it.
        """
        return encrypt_array(
            self.public_key, array, packed=packed, runtime=runtime, encoding=encoding, owner=self._crt()
        )

    def encrypt_ints(self, plaintexts: Sequence[int], *, runtime: Any = None) -> list[BigInt]:
        """``public_key.encrypt_ints`` computed with the factors (same ciphertexts, faster)."""
        return encrypt_integers(self.public_key, plaintexts, runtime=runtime, owner=self._crt())

    def decrypt(self, enc: EncryptedVector, *, runtime: Any = None) -> np.ndarray:
        """Decrypt and decode an EncryptedVector to a numpy array.

        Floats come back as float64 (within the encoding's precision), integer vectors
        as int64.

        Raises:
            KeyMismatchError: ``enc`` is under another public key.
            DecryptionError: a ciphertext does not decode to an in-range value.
        """
        if not isinstance(enc, EncryptedVector):
            raise TypeError(f"decrypt takes an EncryptedVector, got {type(enc).__name__}")
        if enc.public_key != self.public_key:
            raise KeyMismatchError(
                f"cannot decrypt a vector under key {enc.public_key.fingerprint} with the private "
                f"key of {self.public_key.fingerprint}"
            )
        return decrypt_vector(self._crt(), enc, runtime=runtime or enc.runtime)

    def decrypt_ints(
        self, ciphertexts: Sequence[Any], *, runtime: Any = None, field_bits: int = 0
    ) -> list[int]:
        """Raw plaintexts in [0, n) of ciphertexts made by ``encrypt_ints`` (or sums of them).

        Args:
            ciphertexts: raw ciphertexts under ``public_key``.
            runtime: a fedcore Runtime to split the work across its workers.
            field_bits: when every plaintext is known to be below 2^field_bits, several are
                decrypted with one exponentiation (``CRTDecryptor.decrypt_fields``: about
                (field_bits + bits(n) / k) half-size squarings each instead of bits(n)).

        Raises:
            ValueError: a plaintext breaks the ``field_bits`` promise.
        """
        if type(field_bits) is not int or field_bits < 0:
            raise ValueError(f"field_bits must be a non-negative int, got {field_bits!r}")
        return decrypt_integers(self._crt(), list(ciphertexts), runtime=runtime, field_bits=field_bits)

    def export(self, access: SecretAccess | None = None) -> ExportedPrivateKey:
        """Wrap this key so the wire codec may carry it: ``export(ACCESS)``.

        Raises:
            TypeError: ``access`` is not ``fedcore.crypto.secret.ACCESS``.
        """
        check_access(access, "exporting a private key, export(ACCESS),")
        return ExportedPrivateKey(self, access)

    @classmethod
    def from_phe(cls, key: Any) -> PrivateKey:
        """The key of a ``phe.PaillierPrivateKey``."""
        n, p, q = phe_interop.private_factors(key)
        return cls(PublicKey(n), p, q)

    def to_phe(self, access: SecretAccess | None = None) -> Any:
        """The same key as a ``phe.PaillierPrivateKey``: ``to_phe(ACCESS)``.

        Raises:
            TypeError: ``access`` is not ``fedcore.crypto.secret.ACCESS``.
        """
        check_access(access, "handing the factors to phe, to_phe(ACCESS),")
        p, q = self._primes()
        return phe_interop.private_key(self.public_key.n, p, q)

    def __repr__(self) -> str:
        return f"PrivateKey(bits={self.public_key.bits}, public={self.public_key.fingerprint})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a fedcore.he.PrivateKey cannot be pickled: use export(ACCESS) and fedcore.wire")

    def __bool__(self) -> NoReturn:
        raise TypeError("a PrivateKey has no truth value")

    def __copy__(self) -> PrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> PrivateKey:
        return self


class ExportedPrivateKey:
    """An explicitly exported private key: the only form fedcore.wire carries.

    Made by ``PrivateKey.export(ACCESS)``; building one directly takes the token too, as
    encoding it puts the factors on the wire.

    Attributes:
        private_key: the wrapped key.
    """

    __slots__ = ("private_key",)

    def __init__(self, private_key: PrivateKey, access: SecretAccess | None = None):
        check_access(access, "exporting a private key, ExportedPrivateKey(key, ACCESS),")
        if not isinstance(private_key, PrivateKey):
            raise TypeError(f"ExportedPrivateKey wraps a PrivateKey, got {type(private_key).__name__}")
        self.private_key = private_key

    def _state(self) -> dict[str, int]:
        key = self.private_key
        p, q = key._primes()
        return {"n": key.public_key.n, "p": p, "q": q}

    @classmethod
    def _from_state(cls, state: Any) -> ExportedPrivateKey:
        if type(state) is not dict or set(state) != {"n", "p", "q"}:
            raise ValueError("malformed exported private key")
        if not all(type(v) is int for v in state.values()):
            raise ValueError("malformed exported private key")
        # the factors arrived in an export someone made on purpose: rewrap them as it was
        return cls(PrivateKey(PublicKey(state["n"]), state["p"], state["q"]), ACCESS)

    def __repr__(self) -> str:
        return f"ExportedPrivateKey({self.private_key!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("an exported private key travels only through fedcore.wire, never pickle")


def _factor_width(public_key: PublicKey) -> int:
    return (public_key.bits + 7) // 8  # each factor is below n


def generate_keypair(bits: int = DEFAULT_KEY_BITS) -> tuple[PublicKey, PrivateKey]:
    """A fresh Paillier key pair whose modulus has exactly ``bits`` bits.

    Args:
        bits: modulus size; 2048 (the default) or more for real data, >= 512 for tests.

    Raises:
        ValueError: ``bits`` odd, below 512 or above 16384.
    """
    if type(bits) is not int or bits % 2 or not MIN_KEY_BITS <= bits <= MAX_KEY_BITS:
        raise ValueError(
            f"key size must be an even number of bits in {MIN_KEY_BITS}..{MAX_KEY_BITS}, got {bits!r}"
        )
    p, q = (int(f) for f in paillier.generate_primes(bits))
    public_key = PublicKey(p * q)
    return public_key, PrivateKey(public_key, p, q)
