"""phe and fedcore read each other's keys and unpacked ciphertexts (2048 bits once)."""

import numpy as np
import phe
import pytest

from fedcore.crypto.secret import ACCESS
from fedcore.he import EncryptedVector, KeyMismatchError, PackedOperationError, PrivateKey, PublicKey


@pytest.fixture(scope="module")
def phe_keys():
    return phe.generate_paillier_keypair(n_length=2048)


def test_keys_convert_both_ways(phe_keys):
    ppk, psk = phe_keys
    pk = PublicKey.from_phe(ppk)
    sk = PrivateKey.from_phe(psk)
    assert pk.bits == 2048 and sk.public_key == pk
    assert pk.to_phe() == ppk
    with pytest.raises(TypeError, match="ACCESS"):
        sk.to_phe()
    back = sk.to_phe(ACCESS)
    assert back.p == psk.p and back.q == psk.q


def test_phe_decrypts_fedcore_unpacked(phe_keys):
    ppk, psk = phe_keys
    pk = PublicKey.from_phe(ppk)
    x = np.array([0.0, -1.5, 3.14159, 1e6, -(2.0**-30)])
    numbers = pk.encrypt(x, packed=False).to_phe()
    assert np.max(np.abs(np.array([psk.decrypt(v) for v in numbers]) - x)) <= 2.0**-33
    ints = pk.encrypt(np.array([-7, 0, 2**62]), packed=False).to_phe()
    assert [psk.decrypt(v) for v in ints] == [-7, 0, 2**62]
    weighted = (pk.encrypt(x, packed=False) * np.arange(5.0)).to_phe()  # scale 2^-64: phe exponent -16
    assert np.allclose([psk.decrypt(v) for v in weighted], x * np.arange(5.0), atol=1e-8)


def test_fedcore_decrypts_phe(phe_keys):
    ppk, psk = phe_keys
    pk, sk = PublicKey.from_phe(ppk), PrivateKey.from_phe(psk)
    values = [0.1, -2.5, 7, 123456.789, -1e-5]
    numbers = [ppk.encrypt(v) for v in values]
    enc = EncryptedVector.from_phe(pk, numbers)
    assert np.allclose(sk.decrypt(enc), values, rtol=0, atol=1e-12)
    ints = EncryptedVector.from_phe(pk, [ppk.encrypt(v) for v in (-3, 0, 5)], max_abs=10)
    total = ints + pk.encrypt(np.array([1, 1, 1]), packed=False)
    assert np.array_equal(sk.decrypt(total), [-2, 1, 6])
    # phe's own arithmetic on fedcore ciphertexts
    mixed = pk.encrypt(np.array([1.25]), packed=False).to_phe()[0] + ppk.encrypt(2.5)
    assert abs(psk.decrypt(mixed) - 3.75) < 1e-9


def test_conversion_misuse(phe_keys, keys):
    ppk, _ = phe_keys
    pk, _ = keys
    with pytest.raises(KeyMismatchError):
        EncryptedVector.from_phe(pk, [ppk.encrypt(1)])
    with pytest.raises(PackedOperationError):
        pk.encrypt(np.ones(2)).to_phe()


def test_phe_decrypts_what_the_key_owner_encrypts_with_its_factors(phe_keys):
    ppk, psk = phe_keys
    sk = PrivateKey.from_phe(psk)  # phe's primes: not necessarily DJN-admissible, still correct
    x = np.array([0.0, -1.5, 3.14159, 1e6, -(2.0**-30)])
    numbers = sk.encrypt(x, packed=False).to_phe()
    assert np.max(np.abs(np.array([psk.decrypt(v) for v in numbers]) - x)) <= 2.0**-33
    raw = sk.encrypt_ints([-7, 0, 2**62])
    assert [psk.raw_decrypt(int(c)) for c in raw] == [ppk.n - 7, 0, 2**62]
