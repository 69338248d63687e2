"""decrypt(encrypt(x)) == x within the stated precision, packed and unpacked."""

import numpy as np
import pytest

from fedcore.he import PACKED, PACKED_INT, UNPACKED, UNPACKED_INT, EncodingError, FixedPoint, generate_keypair
from fedcore.runtime import make_runtime

PACKED_ERR = 2.0 ** -(PACKED.frac_bits + 1)
UNPACKED_ERR = 2.0 ** -(UNPACKED.frac_bits + 1)


def test_stated_defaults():
    assert FixedPoint(frac_bits=20, value_bits=32, max_terms=1024) == PACKED
    assert PACKED.packed_slot_bits == 42
    assert FixedPoint(frac_bits=32, value_bits=64) == UNPACKED
    assert PACKED_INT.frac_bits == UNPACKED_INT.frac_bits == 0


def test_2048_bit_keys_hold_48_packed_slots(keys):
    from fedcore.he._encoding import Layout

    assert Layout.for_key(2048, True, PACKED.packed_slot_bits).slots == 48
    assert Layout.for_key(1024, True, PACKED.packed_slot_bits).slots == 24


@pytest.mark.parametrize("packed,err", [(True, PACKED_ERR), (False, UNPACKED_ERR)])
def test_random_floats_roundtrip(keys, packed, err):
    pk, sk = keys
    x = np.random.default_rng(1).normal(scale=50, size=307)
    out = sk.decrypt(pk.encrypt(x, packed=packed))
    assert out.dtype == np.float64 and out.shape == x.shape
    assert np.max(np.abs(out - x)) <= err


@pytest.mark.parametrize("packed,fixed", [(True, PACKED), (False, UNPACKED)])
def test_edge_floats_roundtrip(keys, packed, fixed):
    pk, sk = keys
    x = np.array([0.0, -0.0, -1.0, 1e-12, -(2.0**-fixed.frac_bits), fixed.max_abs, -fixed.max_abs])
    out = sk.decrypt(pk.encrypt(x, packed=packed))
    assert np.max(np.abs(out - x)) <= 2.0 ** -(fixed.frac_bits + 1)
    assert out[-2] == fixed.max_abs and out[-1] == -fixed.max_abs


@pytest.mark.parametrize("packed,fixed", [(True, PACKED_INT), (False, UNPACKED_INT)])
def test_integers_exact_including_extremes(keys, packed, fixed):
    pk, sk = keys
    top = fixed.max_encoded
    x = np.array([0, 1, -1, top, -top, 12345, -98765], dtype=np.int64)
    out = sk.decrypt(pk.encrypt(x, packed=packed))
    assert out.dtype == np.int64 and np.array_equal(out, x)


def test_bools_and_int32_encrypt_as_integers(keys):
    pk, sk = keys
    assert np.array_equal(sk.decrypt(pk.encrypt(np.array([True, False, True]))), [1, 0, 1])
    assert np.array_equal(sk.decrypt(pk.encrypt(np.arange(-3, 3, dtype=np.int32))), np.arange(-3, 3))


@pytest.mark.parametrize("packed", [True, False])
def test_beyond_range_nan_and_inf_are_refused(keys, packed):
    pk, _ = keys
    fixed = PACKED if packed else UNPACKED
    step = max(2.0**-fixed.frac_bits, float(np.spacing(fixed.max_abs)))
    for bad in (fixed.max_abs + step, -fixed.max_abs * 2, np.nan, np.inf):
        with pytest.raises(EncodingError):
            pk.encrypt(np.array([0.0, bad]), packed=packed)
    with pytest.raises(EncodingError):
        pk.encrypt(np.array([2**31], dtype=np.int64), packed=True)
    with pytest.raises(EncodingError):
        pk.encrypt(np.array([2**64 - 1], dtype=np.uint64), packed=False)


def test_lengths_around_slot_boundaries_and_empty(keys):
    pk, sk = keys
    slots = 24
    for length in (0, 1, slots - 1, slots, slots + 1, 3 * slots):
        x = np.arange(length, dtype=np.int64) - 7
        enc = pk.encrypt(x)
        assert len(enc) == enc.shape[0] == length
        assert len(enc.ciphertexts) == -(-length // slots)
        assert np.array_equal(sk.decrypt(enc), x)


def test_custom_encoding(keys):
    pk, sk = keys
    fixed = FixedPoint(frac_bits=8, value_bits=20, max_terms=4)
    x = np.array([1.5, -3.25, 1000.0])
    enc = pk.encrypt(x, encoding=fixed)
    assert enc.layout.slot_bits == 22
    assert np.array_equal(sk.decrypt(enc), x)


def test_bad_shapes_and_dtypes(keys):
    pk, _ = keys
    with pytest.raises(ValueError):
        pk.encrypt(np.zeros((2, 2)))
    with pytest.raises(TypeError):
        pk.encrypt(np.array(["a"]))


def test_process_runtime_splits_work_and_agrees(keys):
    pk, sk = keys
    x = np.random.default_rng(2).normal(size=2000)
    with make_runtime("processes", workers=2) as runtime:
        packed = pk.encrypt(x, runtime=runtime)
        unpacked = pk.encrypt(x[:200], packed=False, runtime=runtime)
        assert np.max(np.abs(sk.decrypt(packed, runtime=runtime) - x)) <= PACKED_ERR
        weights = np.arange(200.0) / 100
        dotted = unpacked.dot(np.stack([weights, -weights], axis=1))
        assert np.allclose(sk.decrypt(dotted, runtime=runtime), [x[:200] @ weights, -(x[:200] @ weights)])
        product = unpacked * weights
        assert np.max(np.abs(sk.decrypt(product) - x[:200] * weights)) < 1e-8


def test_precomputed_randomizers_are_used_once_each():
    from fedcore.he import PublicKey

    pk, sk = generate_keypair(1024)  # a modulus of its own: its pool starts empty
    key = PublicKey(pk.n)  # another object for the same modulus shares that pool
    with make_runtime("threads", workers=2) as runtime:
        futures = key.precompute(30, runtime=runtime)
        for future in futures:
            future.result()
    assert key.precomputed == 30 and pk.precomputed == 30
    pool = list(key._state.pool)
    x = np.linspace(-3, 3, 20)
    enc = key.encrypt(x, packed=False)
    assert key.precomputed == 10
    n, n2 = pk.n, pk.n2
    expected = [(1 + (m % n) * n) * r % n2 for m, r in zip(np.rint(x * 2.0**32).astype(int).tolist(), pool)]
    assert list(enc.ciphertexts) == [int(c) for c in expected]
    packed = key.encrypt(np.arange(100.0))  # 5 ciphertexts: 5 from the pool, the rest fresh
    assert key.precomputed == 5
    more = key.encrypt(np.arange(100.0))  # pool partly drained inside the call
    assert key.precomputed == 0
    assert set(packed.ciphertexts).isdisjoint(more.ciphertexts)
    assert np.max(np.abs(sk.decrypt(enc) - x)) <= UNPACKED_ERR
    assert np.array_equal(sk.decrypt(more), np.arange(100.0))
    assert key.precompute(3)[0].done() and key.precomputed == 3
