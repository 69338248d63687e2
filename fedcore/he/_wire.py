"""Wire registration of fedcore.he types: public keys, encrypted vectors, exported private keys.

An EncryptedVector travels as its public key, its metadata and one bytes blob of
fixed-width big-endian ciphertexts. Decoding validates everything: the key (odd, no small
factors, >= ``WIRE_MIN_KEY_BITS``), the layout against the key, the ciphertext count
against the length, every ciphertext in (0, n^2) and coprime to n, and the bound within
the slot capacity. A ``PrivateKey`` is refused; only ``ExportedPrivateKey`` is carried.
"""

from __future__ import annotations

from typing import Any, NoReturn

from fedcore import wire
from fedcore.crypto.paillier import check_ciphertexts, ciphertexts_from_bytes, ciphertexts_to_bytes
from fedcore.he._encoding import FixedPoint, Layout
from fedcore.he._keys import ExportedPrivateKey, PrivateKey, PublicKey, check_modulus
from fedcore.he._vector import EncryptedVector

WIRE_MIN_KEY_BITS = 1024
MAX_FRAC_BITS_ON_WIRE = 4096
_VECTOR_FIELDS = {
    "key",
    "ct",
    "length",
    "packed",
    "slot_bits",
    "frac_bits",
    "value_bits",
    "max_terms",
    "enc_frac_bits",
    "bound",
    "integer",
}


def _public_from_state(state: Any) -> PublicKey:
    if type(state) is not dict or set(state) != {"n"} or type(state["n"]) is not int:
        raise ValueError("malformed public key")
    return PublicKey(check_modulus(state["n"], WIRE_MIN_KEY_BITS))


def _vector_to_state(vec: EncryptedVector) -> dict[str, Any]:
    return {
        "key": vec.public_key,
        "ct": ciphertexts_to_bytes(vec._cts, vec.public_key.ciphertext_bytes),
        "length": vec.length,
        "packed": vec.layout.packed,
        "slot_bits": vec.layout.slot_bits,
        "frac_bits": vec.frac_bits,
        "enc_frac_bits": vec.encoding.frac_bits,
        "value_bits": vec.encoding.value_bits,
        "max_terms": vec.encoding.max_terms,
        "bound": vec.bound,
        "integer": vec.integer,
    }


def _vector_from_state(state: Any) -> EncryptedVector:
    if type(state) is not dict or set(state) != _VECTOR_FIELDS:
        raise ValueError("malformed encrypted vector")
    key = state["key"]
    if not isinstance(key, PublicKey):
        raise ValueError("encrypted vector without a public key")
    ints = ("length", "slot_bits", "frac_bits", "enc_frac_bits", "value_bits", "max_terms", "bound")
    if any(type(state[k]) is not int for k in ints) or type(state["ct"]) is not bytes:
        raise ValueError("malformed encrypted vector fields")
    if type(state["packed"]) is not bool or type(state["integer"]) is not bool:
        raise ValueError("malformed encrypted vector flags")
    encoding = FixedPoint(state["enc_frac_bits"], state["value_bits"], state["max_terms"])
    layout = Layout.for_key(key.bits, state["packed"], state["slot_bits"] if state["packed"] else None)
    if layout.slot_bits != state["slot_bits"] or (
        layout.packed and layout.slot_bits != encoding.packed_slot_bits
    ):
        raise ValueError("encrypted vector layout does not match its key and encoding")
    if state["length"] < 0 or not encoding.frac_bits <= state["frac_bits"] <= MAX_FRAC_BITS_ON_WIRE:
        raise ValueError("encrypted vector length or scale out of range")
    if state["integer"] and state["frac_bits"] != 0:
        raise ValueError("an integer vector has no fractional bits")
    width = key.ciphertext_bytes
    if len(state["ct"]) != layout.ciphertexts_for(state["length"]) * width:
        raise ValueError("ciphertext blob does not match the vector length")
    cts = ciphertexts_from_bytes(state["ct"], width)
    check_ciphertexts(cts, key.n, key.n2)
    return EncryptedVector(
        key,
        cts,
        length=state["length"],
        layout=layout,
        encoding=encoding,
        frac_bits=state["frac_bits"],
        bound=state["bound"],
        integer=state["integer"],
    )


def _refuse_private_key(key: PrivateKey) -> NoReturn:
    raise TypeError("a PrivateKey is never encoded: wrap it with private_key.export(ACCESS) if you mean to")


def _refuse_private_state(state: Any) -> NoReturn:
    raise ValueError("a bare private key is not accepted; only an exported one")


def register_types() -> None:
    """Register fedcore.he's types with fedcore.wire (idempotent; importing this module does it)."""
    wire.register(
        PublicKey, "fedcore.he.PublicKey", to_state=lambda k: {"n": k.n}, from_state=_public_from_state
    )
    wire.register(
        EncryptedVector,
        "fedcore.he.EncryptedVector",
        to_state=_vector_to_state,
        from_state=_vector_from_state,
    )
    wire.register(
        ExportedPrivateKey,
        "fedcore.he.ExportedPrivateKey",
        to_state=lambda e: e._state(),
        from_state=ExportedPrivateKey._from_state,
    )
    wire.register(
        PrivateKey, "fedcore.he.PrivateKey", to_state=_refuse_private_key, from_state=_refuse_private_state
    )


register_types()  # here, at import: fedcore.wire's catalog imports this module by name
