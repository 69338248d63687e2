"""Homomorphic operations match numpy; packed and unpacked agree."""

import numpy as np
import pytest

from fedcore.he import PACKED, UNPACKED, HeadroomError

RNG = np.random.default_rng(7)
X = RNG.normal(size=50)
Y = RNG.normal(scale=3, size=50)
P_ERR = 2.0 ** -(PACKED.frac_bits + 1)
U_ERR = 2.0 ** -(UNPACKED.frac_bits + 1)


@pytest.mark.parametrize("packed,err", [(True, P_ERR), (False, U_ERR)])
def test_additions_match_numpy(keys, packed, err):
    pk, sk = keys
    ex, ey = pk.encrypt(X, packed=packed), pk.encrypt(Y, packed=packed)
    assert np.max(np.abs(sk.decrypt(ex + ey) - (X + Y))) <= 2 * err
    assert np.max(np.abs(sk.decrypt(ex + Y) - (X + Y))) <= 2 * err
    assert np.max(np.abs(sk.decrypt(Y + ex) - (X + Y))) <= 2 * err
    assert np.max(np.abs(sk.decrypt(ex - ey) - (X - Y))) <= 2 * err
    assert np.max(np.abs(sk.decrypt(Y - ex) - (Y - X))) <= 2 * err
    assert np.max(np.abs(sk.decrypt(-ex) + X)) <= err
    assert np.max(np.abs(sk.decrypt(ex + 2.5) - (X + 2.5))) <= 2 * err
    assert np.max(np.abs(sk.decrypt(ex * 3) - 3 * X)) <= 3 * err
    assert np.max(np.abs(sk.decrypt(ex * -2 + ey) - (Y - 2 * X))) <= 3 * err


def test_packed_and_unpacked_agree(keys):
    pk, sk = keys
    packed = sk.decrypt(pk.encrypt(X) + pk.encrypt(Y) + X)
    unpacked = sk.decrypt(pk.encrypt(X, packed=False) + pk.encrypt(Y, packed=False) + X)
    assert np.max(np.abs(packed - unpacked)) <= 3 * P_ERR + 3 * U_ERR


def test_integer_vectors_are_exact(keys):
    pk, sk = keys
    a = np.arange(-20, 20, dtype=np.int64) * 1000
    b = np.arange(40, dtype=np.int64)
    for packed in (True, False):
        ea, eb = pk.encrypt(a, packed=packed), pk.encrypt(b, packed=packed)
        out = sk.decrypt(ea * 7 + eb - b * 2 + 5)
        assert out.dtype == np.int64 and np.array_equal(out, a * 7 + b - b * 2 + 5)
    ua = pk.encrypt(a, packed=False)
    assert np.array_equal(sk.decrypt(ua * b), a * b)
    assert sk.decrypt(ua.sum())[0] == a.sum()


def test_unpacked_products_sum_and_dot(keys):
    pk, sk = keys
    ex = pk.encrypt(X, packed=False)
    w = RNG.normal(size=50)
    assert np.max(np.abs(sk.decrypt(ex * w) - X * w)) < 1e-8
    assert np.max(np.abs(sk.decrypt(ex * 0.25) - X * 0.25)) < 1e-9
    assert abs(sk.decrypt(ex.sum())[0] - X.sum()) < 1e-8
    m = RNG.normal(size=(50, 4))
    assert np.allclose(sk.decrypt(ex.dot(m)), X @ m, atol=1e-7)
    assert np.allclose(sk.decrypt(ex @ m), X @ m, atol=1e-7)
    assert np.allclose(sk.decrypt(m.T @ ex), m.T @ X, atol=1e-7)
    assert np.allclose(sk.decrypt(ex.dot(w)), [X @ w], atol=1e-7)
    ints = RNG.integers(-5, 5, size=(50, 3))
    assert np.allclose(sk.decrypt(ex.dot(ints)), X @ ints, atol=1e-7)


def test_mixed_scales_are_aligned(keys):
    pk, sk = keys
    ex = pk.encrypt(X, packed=False)
    ey = pk.encrypt(Y, packed=False) * 0.5  # frac_bits 64
    assert ey.frac_bits == 64
    assert np.max(np.abs(sk.decrypt(ex + ey) - (X + Y * 0.5))) < 1e-8
    ints = pk.encrypt(np.arange(50), packed=False)
    assert np.max(np.abs(sk.decrypt(ints + ex) - (np.arange(50) + X))) < 1e-9


def test_gradient_step_of_vertical_lr(keys):
    """enc(residual) of n samples times features (n, d): the shape vertical LR uses."""
    pk, sk = keys
    residual = RNG.uniform(-1, 1, size=40)
    features = RNG.normal(size=(40, 5))
    grad = pk.encrypt(residual, packed=False).dot(features) * (1 / 40)
    assert len(grad) == 5
    assert np.allclose(sk.decrypt(grad), features.T @ residual / 40, atol=1e-7)


def test_packed_headroom_allows_exactly_max_terms_additions(small_keys):
    pk, sk = small_keys
    x = np.array([PACKED.max_abs, -PACKED.max_abs, 1.0])
    e = pk.encrypt(x)
    total = e
    for _ in range(PACKED.max_terms - 1):
        total = total + e
    assert np.allclose(sk.decrypt(total), x * PACKED.max_terms)
    with pytest.raises(HeadroomError):
        total + e
    assert np.allclose(sk.decrypt(e * 1024), x * 1024)
    with pytest.raises(HeadroomError):
        e * 1025


def test_rerandomize_keeps_values_and_changes_ciphertexts(keys):
    pk, sk = keys
    e = pk.encrypt(X)
    r = e.rerandomize()
    assert set(r.ciphertexts).isdisjoint(e.ciphertexts)
    assert np.array_equal(sk.decrypt(r), sk.decrypt(e))


def test_fresh_encryptions_never_repeat(keys):
    pk, _ = keys
    zeros = np.zeros(200)
    cts = pk.encrypt(zeros, packed=False).ciphertexts + pk.encrypt(zeros, packed=False).ciphertexts
    assert len(set(cts)) == 400
