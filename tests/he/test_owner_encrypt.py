"""The key owner's encryption (PrivateKey.encrypt / encrypt_ints): public-key ciphertexts, via CRT."""

import pickle

import numpy as np
import pytest

from fedcore.crypto import paillier
from fedcore.crypto.secret import Secret
from fedcore.he import EncodingError, generate_keypair
from fedcore.runtime import make_runtime


def test_owner_vectors_decrypt_and_mix_with_public_ones(keys):
    pk, sk = keys
    x = np.arange(-40, 40) / 16  # exact in the default fractional bits
    for packed in (True, False):
        mine, theirs = sk.encrypt(x, packed=packed), pk.encrypt(x, packed=packed)
        assert mine.public_key == pk and mine.packed == packed and len(mine) == len(x)
        assert mine.layout == theirs.layout and len(mine.ciphertexts) == len(theirs.ciphertexts)
        assert set(mine.ciphertexts).isdisjoint(theirs.ciphertexts)
        assert np.array_equal(sk.decrypt(mine + theirs), 2 * x)
    ints = np.array([-(2**40), -1, 0, 7])
    assert np.array_equal(sk.decrypt(sk.encrypt(ints, packed=False) * 3), ints * 3)


def test_owner_encrypt_ints_matches_plain_arithmetic(keys):
    pk, sk = keys
    values = [-1, 0, 5, 2**200, pk.n + 3]
    cts = sk.encrypt_ints(values)
    assert [int(c) for c in sk._crt().decrypt_many(cts)] == [v % pk.n for v in values]
    product = 1
    for c in cts:
        product = product * int(c) % int(pk.n2)
    assert sk._crt().decrypt(product) == sum(values) % pk.n  # homomorphic sum, checked in plain ints
    assert sk.encrypt_ints([]) == [] and pk.encrypt_ints([]) == []
    with pytest.raises(TypeError, match="integers"):
        sk.encrypt_ints([1.5])
    with pytest.raises(TypeError, match="integers"):
        pk.encrypt_ints([True])


def test_owner_encrypt_errors_match_public_ones(keys):
    pk, sk = keys
    for bad in (np.array([np.nan]), np.array([1e12])):
        with pytest.raises(EncodingError):
            pk.encrypt(bad)
        with pytest.raises(EncodingError):
            sk.encrypt(bad)
    with pytest.raises(ValueError, match="1-D"):
        sk.encrypt(np.ones((2, 2)))


def test_owner_uses_precomputed_randomizers_once(small_keys):
    pk, sk = small_keys
    pk.take_randomizers(10**6)
    pk.precompute(2)
    enc = sk.encrypt(np.arange(3.0), packed=False)
    assert pk.precomputed == 0
    assert np.array_equal(sk.decrypt(enc), np.arange(3.0))


@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_owner_encrypt_on_a_runtime_equals_inline_results(backend):
    pk, sk = generate_keypair(1024)
    x = np.linspace(-3, 3, 200)
    with make_runtime(backend, workers=2) as runtime:
        enc = sk.encrypt(x, packed=False, runtime=runtime)
        raw = sk.encrypt_ints(list(range(-50, 50)), runtime=runtime)
        assert np.allclose(sk.decrypt(enc, runtime=runtime), x, atol=2.0**-30)
    assert sk._crt().decrypt_many(raw) == [v % pk.n for v in range(-50, 50)]
    owner_tables = [key for key in paillier.OWNER_ENCRYPTORS if key[0] == pk.n]
    assert owner_tables in ([], [(pk.n, pk.djn_base())])  # built in the workers (processes) or here


def test_factors_stay_in_their_secret(keys):
    _, sk = keys
    assert isinstance(sk._factors, Secret)
    p, q = sk._primes()
    assert p * q == sk.public_key.n and p < q
    text = repr(sk) + repr(sk._factors) + str(sk._factors)
    assert str(p)[:12] not in text and str(q)[:12] not in text
    with pytest.raises(TypeError):
        pickle.dumps(sk)
    with pytest.raises(TypeError):
        sk._factors.reveal(object())


def test_decrypt_ints_matches_plain_arithmetic_grouped_and_on_a_runtime(keys):
    pk, sk = keys
    values = [-1, 0, 5, 2**200, pk.n + 3]
    assert sk.decrypt_ints(pk.encrypt_ints(values)) == [v % pk.n for v in values]
    bits = 100  # ten 100-bit fields per 1024-bit plaintext: 23 values in groups of 10, 10, 3
    fields = [(v * 0x9E3779B97F4A7C15) % 2**bits for v in range(23)]
    cts = sk.encrypt_ints(fields)
    with make_runtime("threads", workers=2) as runtime:
        assert sk.decrypt_ints(cts, field_bits=bits, runtime=runtime) == fields
    assert sk.decrypt_ints(cts, field_bits=bits) == fields == sk.decrypt_ints(cts)
    with pytest.raises(ValueError, match="wider"):
        sk.decrypt_ints(sk.encrypt_ints([1, 2**bits]), field_bits=bits)
    with pytest.raises(ValueError, match="field_bits"):
        sk.decrypt_ints(cts, field_bits=-1)
