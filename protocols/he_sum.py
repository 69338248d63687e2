"""Homomorphic sum: parties add their vectors under the first party's Paillier key.

Theory of operation
-------------------
Additively homomorphic aggregation (Paillier, "Public-key cryptosystems based on composite
degree residuosity classes", Eurocrypt 1999, section 8: E(a) * E(b) = E(a + b)), with many
values packed per ciphertext (BatchCrypt, USENIX ATC 2020).

Stages (``Stage``), with parties in job order, F = the first party, L = the last:

1. KEYS: F generates a key pair (``key_bits``) and broadcasts the public key. The others
   check its size before using it.
2. ENCRYPT: every party encrypts its own vector (drawn from ``ctx.rng`` before any message)
   under that key on its runtime; every party but L sends its ciphertexts to L.
3. ADD: L checks each vector (same key, length ``dim``) and multiplies the ciphertexts,
   which adds the plaintexts slot by slot; the headroom of the packing (1024 summands by
   default) is checked, so too many parties fail loudly instead of wrapping.
4. DECRYPT: L sends the encrypted total to F, who decrypts it. With one party, F = L.

What each party learns: F learns the sum (and its own input); L sees only ciphertexts
under a key it does not hold. The protocol is secure against honest-but-curious parties
that do not collude with F; F colluding with L reads every party's vector. A silent party
makes the job fail with PartyDropped or Timeout naming it; a malformed or foreign-key
vector raises ProtocolError naming its sender; nothing is ever silently left out.

Returns {"input": vector} at every party and also "sum" at F, as ``plain_sum.py`` does.
"""

import enum

import numpy as np

from fedcore import Context
from fedcore.errors import ProtocolError
from fedcore.he import EncryptedVector, PublicKey, generate_keypair


class Stage(enum.Enum):
    KEYS = "keys"
    ENCRYPT = "encrypt"
    ADD = "add"
    DECRYPT = "decrypt"


TAG_KEY = "he_sum/public_key"
TAG_VECTOR = "he_sum/vector"
TAG_TOTAL = "he_sum/total"


def checked_key(value: object, key_bits: int, sender: str) -> PublicKey:
    """The public key ``sender`` sent, if it is one of the agreed size."""
    if not isinstance(value, PublicKey):
        raise ProtocolError(f"{TAG_KEY} from {sender}: expected a PublicKey, got {type(value).__name__}")
    if value.bits < key_bits:
        raise ProtocolError(f"{TAG_KEY} from {sender}: expected a {key_bits}-bit key, got {value.bits} bits")
    return value


def checked_vector(value: object, key: PublicKey, dim: int, sender: str, tag: str) -> EncryptedVector:
    """The encrypted vector ``sender`` sent, if it is under ``key`` and of length ``dim``."""
    if not isinstance(value, EncryptedVector):
        raise ProtocolError(f"{tag} from {sender}: expected an EncryptedVector, got {type(value).__name__}")
    if value.public_key != key:
        raise ProtocolError(
            f"{tag} from {sender}: vector is under key {value.public_key.fingerprint}, "
            f"expected {key.fingerprint}"
        )
    if len(value) != dim:
        raise ProtocolError(f"{tag} from {sender}: expected {dim} values, got {len(value)}")
    return value


def main(ctx: Context, dim: int = 10, key_bits: int = 2048, packed: bool = True) -> dict:
    vector = ctx.rng.normal(size=dim)
    first, last = ctx.parties[0], ctx.parties[-1]

    ctx.progress(step=Stage.KEYS.value)
    if ctx.party == first:
        public_key, private_key = generate_keypair(key_bits)
        ctx.broadcast(TAG_KEY, public_key)
    else:
        public_key = checked_key(ctx.recv(first, TAG_KEY), key_bits, first)

    ctx.progress(step=Stage.ENCRYPT.value)
    mine = public_key.encrypt(vector, packed=packed, runtime=ctx.runtime)
    if ctx.party != last:
        ctx.send(last, TAG_VECTOR, mine)
    else:
        ctx.progress(step=Stage.ADD.value)
        total = mine
        for sender, value in ctx.gather(TAG_VECTOR).items():
            total = total + checked_vector(value, public_key, dim, sender, TAG_VECTOR)
        if last != first:
            ctx.send(first, TAG_TOTAL, total)

    result: dict = {"input": vector}
    if ctx.party == first:
        ctx.progress(step=Stage.DECRYPT.value)
        if first != last:
            total = checked_vector(ctx.recv(last, TAG_TOTAL), public_key, dim, last, TAG_TOTAL)
        result["sum"] = np.asarray(private_key.decrypt(total, runtime=ctx.runtime), dtype=np.float64)
    return result
