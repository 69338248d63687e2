"""crypto.paillier's checks and many-ciphertext operations against plain integers and phe."""

import json
from pathlib import Path

import numpy as np
import phe
import pytest

from fedcore.crypto import montgomery, paillier, phe_interop

KAT = json.loads((Path(__file__).parent / "vectors" / "paillier_kat.json").read_text())
CASE = KAT["cases"][0]
P, Q, N = int(CASE["p"]), int(CASE["q"]), int(CASE["n"])
N2 = N * N


@pytest.fixture(scope="module")
def tools() -> tuple[paillier.DJNEncryptor, paillier.CRTDecryptor]:
    return paillier.DJNEncryptor(N, paillier.make_hs(N)), paillier.CRTDecryptor(P, Q)


def _signed(m: int) -> int:
    return m - N if m > N // 2 else m


def test_check_modulus_factors_and_ciphertexts() -> None:
    assert paillier.check_modulus(N, 32) == N
    for bad, error in ((N + 1, ValueError), (N * 3, ValueError), (P * P, ValueError), (float(N), TypeError)):
        with pytest.raises(error):
            paillier.check_modulus(bad, 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"32\.\.40 bits"):
        paillier.check_modulus(N, 32, max_bits=40)
    paillier.check_factors(N, P, Q)
    for p, q in ((P, Q + 2), (Q, Q), (1, N)):
        with pytest.raises(ValueError, match="do not match"):
            paillier.check_factors(N, p, q)
    paillier.check_ciphertexts([paillier.BigInt(1), paillier.BigInt(N2 - 1)], N, N2)
    for bad in ([0], [N2], [P * 5]):  # out of range, out of range, shares the factor p
        with pytest.raises(ValueError):
            paillier.check_ciphertexts(paillier.to_bigints(bad), N, N2)


def test_homomorphic_operations_match_plain_integers(tools) -> None:
    enc, dec = tools
    a, b = [5, -7, 0, 2**40], [-5, 3, 11, 1]
    ca, cb = [enc.encrypt(m) for m in a], [enc.encrypt(m) for m in b]
    plain = [_signed(int(m)) for m in dec.decrypt_many(paillier.add_many(ca, cb, N2))]
    assert plain == [x + y for x, y in zip(a, b)]
    assert [_signed(int(m)) for m in dec.decrypt_many(paillier.add_plain_many(ca, b, N, N2))] == plain
    ks = np.array([3, -2, 9, 0], dtype=np.int64)
    products = dec.decrypt_many(paillier.mul_plain_many(ca, ks, N2))
    assert [_signed(int(m)) for m in products] == [x * int(k) for x, k in zip(a, ks)]
    assert [_signed(int(m)) for m in dec.decrypt_many(paillier.scale_many(ca, -4, N2))] == [-4 * x for x in a]
    assert _signed(int(dec.decrypt(paillier.product(ca, N2)))) == sum(a)
    assert paillier.product([], N2) == 1
    columns = [[1, 2, 3, 4], [-1, 0, 5, -3], [0, 0, 0, 0]]
    dots = dec.decrypt_many(paillier.dot_columns(ca, columns, N2))
    assert [_signed(int(m)) for m in dots] == [sum(x * w for x, w in zip(a, col)) for col in columns]


def test_sums_by_key_is_a_product_per_key() -> None:
    items = [3, 5, 7, 11, 13]
    keys = [2, 0, 2, 2, 0]
    assert paillier.sums_by_key(1000, items, keys, 4) == [65, 1, 3 * 7 * 11 % 1000, 1]


def test_decrypt_fields_equals_one_by_one_and_refuses_wide_groups(tools) -> None:
    enc, dec = tools
    bits = 60  # the KAT key is small: a few fields per plaintext
    per = (N.bit_length() - 1) // bits
    rng = np.random.default_rng(5)
    plain = [int(v) for v in rng.integers(0, 2**60, 2 * per + 1, dtype=np.uint64)] + [0, 2**bits - 1]
    cts = [enc.encrypt(m) for m in plain]
    assert dec.decrypt_fields(cts, bits, per) == plain == dec.decrypt_fields(cts, bits, 1)
    assert dec.decrypt_fields(cts, 0, 1) == [int(m) for m in dec.decrypt_many(cts)]
    with pytest.raises(ValueError, match="wider"):
        dec.decrypt_fields([enc.encrypt(1), enc.encrypt(2**bits)], bits, per)  # the group's top field
    with pytest.raises(ValueError, match="wider"):
        dec.decrypt_fields([enc.encrypt(2**bits)], bits, 1)


def test_phe_interop_round_trips_keys_and_numbers(tools) -> None:
    enc, _ = tools
    assert phe_interop.public_key(N) == phe.PaillierPublicKey(N)
    sk = phe_interop.private_key(N, P, Q)
    assert phe_interop.private_factors(sk) == (N, min(P, Q), max(P, Q))
    cts = [int(enc.encrypt(m)) for m in (4, -9)]
    numbers = phe_interop.numbers(N, cts, -1)
    assert [sk.decrypt(x) for x in numbers] == [4 / 16, -9 / 16]
    assert phe_interop.moduli(numbers) == {N}
    mixed = [numbers[0], phe.PaillierPublicKey(N).encrypt(3)]  # exponents -1 and 0
    aligned, exponent = phe_interop.aligned_ciphertexts(mixed)
    assert exponent == -1 and aligned[0] == cts[0]
    assert sk.raw_decrypt(aligned[1]) == 3 * 16


@pytest.mark.parametrize("backend", [b for b in montgomery.BACKENDS if montgomery.available(b)])
def test_batch_encryption_decrypts_with_phe_on_every_backend(backend: str, monkeypatch) -> None:
    monkeypatch.setattr(montgomery, "BACKEND", backend)
    hs = paillier.make_hs(N)
    public, owner = paillier.DJNEncryptor(N, hs), paillier.CRTEncryptor(P, Q, hs)
    sk = phe_interop.private_key(N, P, Q)
    plain = [0, 1, -1, 2**40 + 3, N - 1, 12345]
    for encryptor in (public, owner):
        cts = encryptor.encrypt_batch(plain)
        assert [sk.raw_decrypt(int(c)) for c in cts] == [m % N for m in plain]
        again = encryptor.encrypt_batch(plain)
        assert all(a != b for a, b in zip(cts, again))  # fresh randomness every time
        assert all(0 < c < N2 for c in cts)
    # a randomizer is an n-th residue: it encrypts 0
    assert [sk.raw_decrypt(int(r)) for r in public.randomizers(3)] == [0, 0, 0]
    assert public.encrypt_batch([]) == [] == owner.encrypt_batch([])


@pytest.mark.parametrize("backend", [b for b in montgomery.BACKENDS if montgomery.available(b)])
def test_folded_decryption_on_rows_equals_the_gmpy2_fold(backend: str, monkeypatch) -> None:
    monkeypatch.setattr(montgomery, "BACKEND", backend)
    enc, dec = paillier.DJNEncryptor(N, paillier.make_hs(N)), paillier.CRTDecryptor(P, Q)
    bits = 60
    per = (N.bit_length() - 1) // bits
    plain = [int(v) for v in np.random.default_rng(6).integers(0, 2**60, 3 * per - 1, dtype=np.uint64)]
    cts = [enc.encrypt(m) for m in plain]
    for prime2, exponent in ((dec.p2, dec.p1), (dec.q2, dec.q1)):
        assert dec._fold_rows(cts, bits, per, prime2, exponent) == dec._fold(cts, bits, per, prime2, exponent)
    assert dec.decrypt_fields(cts, bits, per) == plain


@pytest.mark.parametrize("backend", [b for b in montgomery.BACKENDS if montgomery.available(b)])
def test_many_decryptions_in_lock_step_equal_phe(backend: str, monkeypatch) -> None:
    monkeypatch.setattr(montgomery, "BACKEND", backend)
    enc, dec = paillier.DJNEncryptor(N, paillier.make_hs(N)), paillier.CRTDecryptor(P, Q)
    sk = phe_interop.private_key(N, P, Q)
    plain = [0, 1, N - 1, *range(2**50, 2**50 + 13)]  # above the lock-step threshold
    cts = [enc.encrypt(m) for m in plain]
    assert [int(m) for m in dec.decrypt_many(cts)] == plain == [sk.raw_decrypt(int(c)) for c in cts]
    assert [int(m) for m in dec.decrypt_many(cts[:3])] == plain[:3]  # below it: gmpy2


def test_dot_columns_on_rows_equals_the_bucket_method(tools, monkeypatch) -> None:
    enc, dec = tools
    rng = np.random.default_rng(9)
    plain = [int(v) for v in rng.integers(-(2**20), 2**20, 9)]
    cts = [enc.encrypt(m) for m in plain]
    columns = [*rng.integers(-(2**40), 2**40, (5, 9)).tolist(), [-3] * 9, [0] * 9]
    fast = paillier.dot_columns(cts, columns, N2)
    monkeypatch.setattr(montgomery, "BACKEND", "py")  # the gmpy2 bucket method
    assert paillier.dot_columns(cts, columns, N2) == fast
    sums = [_signed(int(m)) for m in dec.decrypt_many(fast)]
    assert sums == [sum(x * w for x, w in zip(plain, col)) for col in columns]
    wide = paillier.mul_plain(paillier.product(cts, N2), 2**70, N2)  # beyond int64: the bucket method
    assert paillier.dot_columns(cts, [[2**70] * 9], N2) == [wide]
