"""Item 5: mixed keys, headroom, undecodable decryptions and packed misuse raise typed errors."""

import numpy as np
import pytest

from fedcore.errors import FedcoreError
from fedcore.he import (
    DecryptionError,
    EncodingError,
    EncryptedVector,
    HeadroomError,
    HEError,
    KeyMismatchError,
    PackedOperationError,
)


def test_error_types_are_fedcore_and_builtin():
    assert issubclass(HEError, FedcoreError)
    assert issubclass(KeyMismatchError, ValueError) and issubclass(HeadroomError, ValueError)
    assert issubclass(DecryptionError, ValueError) and issubclass(EncodingError, ValueError)
    assert issubclass(PackedOperationError, TypeError)


@pytest.mark.parametrize("packed", [True, False])
def test_adding_under_different_keys(keys, other_keys, packed):
    a = keys[0].encrypt(np.ones(3), packed=packed)
    b = other_keys[0].encrypt(np.ones(3), packed=packed)
    with pytest.raises(KeyMismatchError, match="different keys"):
        a + b
    with pytest.raises(KeyMismatchError):
        other_keys[1].decrypt(a)


def test_shape_and_layout_mismatches(keys):
    pk, _ = keys
    with pytest.raises(ValueError):
        pk.encrypt(np.ones(3)) + pk.encrypt(np.ones(4))
    with pytest.raises(ValueError):
        pk.encrypt(np.ones(3)) + pk.encrypt(np.ones(3), packed=False)
    with pytest.raises(ValueError):
        pk.encrypt(np.ones(3)) + np.ones(4)
    with pytest.raises(TypeError):
        pk.encrypt(np.ones(3)) * pk.encrypt(np.ones(3))


def test_packed_refuses_per_value_operations(keys):
    pk, _ = keys
    e = pk.encrypt(np.ones(4))
    for op in (lambda: e * np.ones(4), e.sum, lambda: e.dot(np.ones((4, 2))), lambda: np.ones((2, 4)) @ e):
        with pytest.raises(PackedOperationError, match="packed=False"):
            op()


def test_packed_float_scalar_beyond_headroom(keys):
    pk, _ = keys
    with pytest.raises(HeadroomError, match="overflow"):
        pk.encrypt(np.ones(4)) * 0.5  # 2^31 * 2^19 does not fit a 42-bit slot


def test_plain_operand_out_of_range(keys):
    pk, _ = keys
    e = pk.encrypt(np.ones(2))
    with pytest.raises(EncodingError):
        e + np.array([1e9, 0.0])
    with pytest.raises(EncodingError):
        pk.encrypt(np.ones(2), packed=False) * np.array([np.nan, 1.0])


def test_integer_vectors_refuse_float_operands(keys):
    pk, _ = keys
    e = pk.encrypt(np.arange(3), packed=False)
    for op in (
        lambda: e + np.ones(3),
        lambda: e * 0.5,
        lambda: e * np.ones(3),
        lambda: e.dot(np.ones((3, 1))),
    ):
        with pytest.raises(TypeError):
            op()


def _tampered(enc: EncryptedVector, index: int, value: int) -> EncryptedVector:
    cts = list(enc.ciphertexts)
    cts[index] = value
    return enc._derive(cts)


@pytest.mark.parametrize("packed", [True, False])
def test_corrupted_ciphertext_does_not_decode(keys, packed):
    pk, sk = keys
    e = pk.encrypt(np.linspace(-1, 1, 30), packed=packed)
    bad = _tampered(e, 0, e.ciphertexts[0] * 3 % pk.n2)
    with pytest.raises(DecryptionError, match="did not decode"):
        sk.decrypt(bad)


@pytest.mark.parametrize("packed", [True, False])
def test_ciphertext_from_another_key_does_not_decode(keys, other_keys, packed):
    pk, sk = keys
    foreign = other_keys[0].encrypt(np.ones(30), packed=packed).ciphertexts[0] % pk.n2
    with pytest.raises(DecryptionError):
        sk.decrypt(_tampered(pk.encrypt(np.ones(30), packed=packed), 0, foreign))


def test_value_pushed_outside_its_bound_does_not_decode(keys):
    pk, sk = keys
    e = pk.encrypt(np.array([1.0, 2.0]), packed=False)
    big = e * 2**40
    # claim a bound too small for the actual contents: decryption refuses rather than trusting it
    lying = big._derive(list(big.ciphertexts), bound=e.bound)
    with pytest.raises(DecryptionError):
        sk.decrypt(lying)
