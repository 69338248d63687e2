"""Keys and vectors through fedcore.wire; the private key stays put unless exported."""

import copy
import pickle

import numpy as np
import pytest

from fedcore import wire
from fedcore.crypto.secret import ACCESS
from fedcore.errors import DecodeError
from fedcore.he import EncryptedVector, ExportedPrivateKey, PrivateKey, PublicKey, generate_keypair
from fedcore.testing import forged_encoding


def _state_of(enc):
    from fedcore.he._wire import _vector_to_state

    return _vector_to_state(enc)


def _decode_state(state):
    from fedcore.he._wire import _vector_from_state

    return _vector_from_state(state)


def test_public_key_roundtrip(keys):
    pk, _ = keys
    out = wire.decode(wire.encode(pk))
    assert isinstance(out, PublicKey) and out == pk and hash(out) == hash(pk)


@pytest.mark.parametrize("packed", [True, False])
def test_vector_roundtrip(keys, packed):
    pk, sk = keys
    x = np.random.default_rng(3).normal(size=61)
    enc = pk.encrypt(x, packed=packed) * 3
    data = wire.encode({"v": enc})
    out = wire.decode(data)["v"]
    assert isinstance(out, EncryptedVector)
    assert out.ciphertexts == enc.ciphertexts and out.bound == enc.bound and out.frac_bits == enc.frac_bits
    assert np.array_equal(sk.decrypt(out), sk.decrypt(enc))
    # compact: one fixed-width blob, a few hundred bytes of overhead
    assert len(data) < len(enc.ciphertexts) * pk.ciphertext_bytes + 400


def test_integer_vector_roundtrip(keys):
    pk, sk = keys
    out = wire.decode(wire.encode(pk.encrypt(np.arange(-3, 3))))
    assert np.array_equal(sk.decrypt(out), np.arange(-3, 3))


@pytest.mark.parametrize(
    "field,value",
    [
        ("length", 10_000),
        ("length", -1),
        ("bound", 1 << 2000),
        ("bound", -1),
        ("slot_bits", 40),
        ("frac_bits", 1),
        ("packed", 1),
        ("ct", b"\x00" * 10),
    ],
)
def test_vector_decode_refuses_inconsistent_metadata(keys, field, value):
    pk, _ = keys
    state = _state_of(pk.encrypt(np.ones(30)))
    state[field] = value
    with pytest.raises((ValueError, TypeError)):
        _decode_state(state)


@pytest.mark.parametrize("bad", [0, "n2", "n"])
def test_vector_decode_refuses_out_of_range_ciphertexts(keys, bad):
    pk, _ = keys
    enc = pk.encrypt(np.ones(30))
    width = pk.ciphertext_bytes
    value = {"n2": pk.n2, "n": pk.n, 0: 0}[bad]
    state = _state_of(enc)
    state["ct"] = value.to_bytes(width, "big") + state["ct"][width:]
    with pytest.raises(ValueError):
        _decode_state(state)
    with pytest.raises(DecodeError):
        wire.decode(forged_encoding("fedcore.he.EncryptedVector", state))


def test_public_key_decode_refuses_weak_moduli(small_keys):
    with pytest.raises(DecodeError):
        wire.decode(wire.encode(small_keys[0]))  # 512 bits: below the wire floor of 1024
    for n in (2**1100, 3**700, (2**521 - 1) ** 2):
        with pytest.raises(DecodeError):
            wire.decode(forged_encoding("fedcore.he.PublicKey", {"n": n}))


def test_private_key_refuses_wire_pickle_bool_and_hides_itself(keys):
    pk, sk = keys
    with pytest.raises(TypeError, match="export"):
        wire.encode(sk)
    with pytest.raises(TypeError):
        wire.encode({"key": sk})
    with pytest.raises(TypeError):
        pickle.dumps(sk)
    with pytest.raises(TypeError):
        bool(sk)
    assert copy.deepcopy(sk) is sk
    text = repr(sk) + str(sk)
    p, q = sk._primes()
    assert str(p)[:12] not in text and str(q)[:12] not in text and hex(p)[2:14] not in text
    with pytest.raises(DecodeError):
        wire.decode(forged_encoding("fedcore.he.PrivateKey", {"n": pk.n, "p": p, "q": q}))


def test_explicit_export_roundtrip(keys):
    pk, sk = keys
    for door in (lambda: sk.export(), lambda: sk.export(object()), lambda: sk.export(confirm=True)):
        with pytest.raises(TypeError):
            door()  # the factors leave only with the token
    with pytest.raises(TypeError, match="ACCESS"):
        ExportedPrivateKey(sk)  # no side door around export(ACCESS)
    exported = sk.export(ACCESS)
    with pytest.raises(TypeError):
        pickle.dumps(exported)
    out = wire.decode(wire.encode(exported))
    assert isinstance(out, ExportedPrivateKey) and isinstance(out.private_key, PrivateKey)
    assert np.array_equal(out.private_key.decrypt(pk.encrypt(np.arange(4))), np.arange(4))
    p, q = sk._primes()
    forged = {"n": pk.n, "p": p, "q": q + 2}
    with pytest.raises(DecodeError):
        wire.decode(forged_encoding("fedcore.he.ExportedPrivateKey", forged))


def test_keypair_size_checks():
    with pytest.raises(ValueError):
        generate_keypair(511)
    with pytest.raises(ValueError):
        generate_keypair(256)
