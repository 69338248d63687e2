"""Raw Paillier tier: known answers (phe + Python pow), CRT, DJN table, packing."""

import json
from pathlib import Path

import gmpy2
import numpy as np
import phe
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedcore.crypto import packing, paillier

KAT = json.loads((Path(__file__).parent / "vectors" / "paillier_kat.json").read_text())
CASES = KAT["cases"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{int(c['n']).bit_length()}bit")
def test_known_answers_encrypt_and_crt_decrypt(case):
    p, q, n = int(case["p"]), int(case["q"]), int(case["n"])
    assert p * q == n
    decryptor = paillier.CRTDecryptor(p, q)
    for item in case["encryptions"]:
        m, r, c = int(item["m"]), int(item["r"]), int(item["c"])
        rn = pow(r, n, n * n)
        assert paillier.encrypt_with(n, m, rn) == c
        assert decryptor.decrypt(c) == m


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{int(c['n']).bit_length()}bit")
def test_known_answers_djn_fixed_base_table(case):
    n = int(case["n"])
    hs = int(case["djn"]["hs"])
    x = int(case["djn"]["x"])
    assert hs == gmpy2.powmod((-x * x) % n, n, n * n)
    encryptor = paillier.DJNEncryptor(n, hs)
    for item in case["djn"]["powers"]:
        assert encryptor.power(int(item["a"])) == int(item["hs_a"])


def test_djn_ciphertexts_are_fresh_and_phe_decrypts_them():
    p, q = paillier.generate_primes(512)
    n = int(p * q)
    encryptor = paillier.DJNEncryptor(n, paillier.make_hs(n))
    cts = [encryptor.encrypt(-7) for _ in range(5)]
    assert len(set(cts)) == 5
    sk = phe.PaillierPrivateKey(phe.PaillierPublicKey(n), int(p), int(q))
    assert all(sk.raw_decrypt(int(c)) == n - 7 for c in cts)
    assert encryptor.exponent_bits == 256  # ceil(k/2) for k = 512 (DJN's exponent length)


def test_generate_primes_sizes_and_refusals():
    p, q = paillier.generate_primes(256)
    assert p != q and (p * q).bit_length() == 256 and gmpy2.is_prime(p) and gmpy2.is_prime(q)
    assert p % 4 == 3 and q % 4 == 3 and gmpy2.gcd(p - 1, q - 1) == 2  # admissible (DJN)
    with pytest.raises(ValueError):
        paillier.generate_primes(255)
    with pytest.raises(ValueError):
        paillier.CRTDecryptor(7, 7)


def test_mul_plain_negative_and_blob_roundtrip():
    p, q = paillier.generate_primes(256)
    n = int(p * q)
    enc = paillier.DJNEncryptor(n, paillier.make_hs(n))
    dec = paillier.CRTDecryptor(int(p), int(q))
    c = enc.encrypt(5)
    assert dec.decrypt(paillier.mul_plain(c, -3, n * n)) == n - 15
    assert dec.decrypt(paillier.add_plain(c, -6, n)) == n - 1
    width = ((n * n).bit_length() + 7) // 8
    blob = paillier.ciphertexts_to_bytes([c, 1], width)
    assert paillier.ciphertexts_from_bytes(blob, width) == [c, 1]
    with pytest.raises(ValueError):
        paillier.ciphertexts_from_bytes(blob[:-1], width)


@settings(max_examples=60, deadline=None)
@given(
    slot_bits=st.integers(4, 63),
    data=st.data(),
)
def test_pack_unpack_roundtrip(slot_bits, data):
    n = (1 << 511) + 187  # only the size matters for packing
    slots = packing.slots_per_plaintext(n.bit_length(), slot_bits)
    limit = (1 << (slot_bits - 1)) - 1
    values = np.array(data.draw(st.lists(st.integers(-limit, limit), max_size=3 * slots)), dtype=np.int64)
    plaintexts = [p % n for p in packing.pack(values, slot_bits, slots)]
    out = packing.unpack(plaintexts, n, slot_bits, slots, len(values), limit)
    assert out is not None and np.array_equal(out, values)


def test_unpack_refuses_out_of_bound_slots_and_garbage():
    n = (1 << 511) + 187
    values = np.array([5, -5, 100], dtype=np.int64)
    plaintexts = [p % n for p in packing.pack(values, 16, 31)]
    assert packing.unpack(plaintexts, n, 16, 31, 3, 99) is None  # 100 > bound
    assert packing.unpack(plaintexts, n, 16, 31, 2, 100) is None  # non-zero padding slot
    assert packing.unpack([n // 2 - 1], n, 16, 31, 3, 100) is None  # bits beyond the slots
    assert packing.unpack_single([n - 3, 4], n, 4) == [-3, 4]
    assert packing.unpack_single([n // 2], n, 4) is None


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 2**64), st.integers(-(2**64), 2**64)), max_size=40))
def test_signed_multi_pow_matches_pow(terms):
    case = CASES[1]
    n = int(case["n"])
    n2 = gmpy2.mpz(n * n)
    bases = [gmpy2.mpz(b) * 7919 % n2 for b, _ in terms]
    exponents = [e for _, e in terms]
    expected = 1
    for b, e in zip(bases, exponents):
        expected = expected * pow(int(b), e, n * n) % (n * n)
    assert paillier.signed_multi_pow(bases, exponents, n2) == expected


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{int(c['n']).bit_length()}bit")
def test_batched_crt_decryption_matches_phe_and_survives_pickle(case):
    import pickle

    p, q, n = int(case["p"]), int(case["q"]), int(case["n"])
    cts = [int(item["c"]) for item in case["encryptions"]]
    sk = phe.PaillierPrivateKey(phe.PaillierPublicKey(n), p, q)
    decryptor = pickle.loads(pickle.dumps(paillier.CRTDecryptor(q, p)))
    assert decryptor.decrypt_many(cts) == [sk.raw_decrypt(c) for c in cts]
    assert decryptor.decrypt_many([]) == []
    assert [decryptor.decrypt(c) for c in cts] == [int(item["m"]) for item in case["encryptions"]]


@pytest.mark.parametrize("slot_bits", [2, 5, 8, 42, 57, 58, 63])
def test_unpack_extreme_slots_on_both_field_paths(slot_bits):
    n = (1 << 1023) + 1155  # only the size matters for packing
    slots = packing.slots_per_plaintext(n.bit_length(), slot_bits)
    limit = (1 << (slot_bits - 1)) - 1
    values = np.resize(np.array([limit, -limit, 0, -1, 1], dtype=np.int64), 2 * slots + 3)
    plaintexts = [p % n for p in packing.pack(values, slot_bits, slots)]
    out = packing.unpack(plaintexts, n, slot_bits, slots, len(values), limit)
    assert out is not None and np.array_equal(out, values)
    assert packing.unpack(plaintexts, n, slot_bits, slots, len(values), limit - 1) is None


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{int(c['n']).bit_length()}bit")
def test_known_answers_owner_crt_tables(case):
    p, q = int(case["p"]), int(case["q"])
    encryptor = paillier.CRTEncryptor(p, q, int(case["djn"]["hs"]))
    for item in case["djn"]["powers"]:
        assert encryptor.power(int(item["a"])) == int(item["hs_a"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{int(c['n']).bit_length()}bit")
def test_owner_ciphertexts_equal_public_ones_and_the_plain_formula(case, monkeypatch):
    p, q, n = int(case["p"]), int(case["q"]), int(case["n"])
    hs, n2 = int(case["djn"]["hs"]), n * n
    public, owner = paillier.DJNEncryptor(n, hs), paillier.CRTEncryptor(q, p, hs)
    sk = phe.PaillierPrivateKey(phe.PaillierPublicKey(n), p, q)
    for a in (0, 1, 2**owner.exponent_bits - 1, 0x5DEECE66D * 0xB + 12345):
        monkeypatch.setattr(paillier.secrets, "randbits", lambda bits, a=a: a % 2**bits)
        for m in (0, 1, -1, n - 1, 0xFEDC0123 % n, -(n // 3)):
            expected = (1 + (m % n) * n) * pow(hs, a % 2**owner.exponent_bits, n2) % n2
            assert owner.encrypt(m) == public.encrypt(m) == expected
            assert sk.raw_decrypt(int(owner.encrypt(m))) == m % n


def test_owner_encryptor_stays_in_its_process_and_hides_its_factors():
    import pickle

    p, q = paillier.generate_primes(256)
    encryptor = paillier.CRTEncryptor(p, q, paillier.make_hs(int(p * q)))
    with pytest.raises(TypeError):
        pickle.dumps(encryptor)
    assert str(p)[:10] not in repr(encryptor) and str(q)[:10] not in repr(encryptor)
    decryptor = paillier.CRTDecryptor(p, q)
    cts = paillier.owner_encrypt_many(decryptor, paillier.make_hs(int(p * q)), [3, -3, 7], [1, 1])
    assert cts[:2] == [1 + 3 * p * q, 1 + (p * q - 3) * p * q]  # the given randomizers, once each
    assert decryptor.decrypt_many(cts) == [3, p * q - 3, 7]
