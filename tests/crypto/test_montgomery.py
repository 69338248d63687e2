"""fedcore.crypto.montgomery: every backend against plain integer arithmetic, and each other.

Known answers come from Python's own ``pow`` and ``%``; the C kernels ("mpn", "ifma") must
also give byte-identical rows to the gmpy2 twin where they share a layout. CI sets
FEDCORE_REQUIRE_NATIVE=1 so that a machine where the C extension failed to build fails
here instead of quietly testing only the fallback.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

from fedcore.crypto import montgomery
from fedcore.crypto.montgomery import BACKENDS, FixedBase, Ring

HERE = [b for b in BACKENDS if montgomery.available(b)]
BITS = [61, 130, 1024, 2047, 2048, 4096]


def _modulus(bits: int, seed: int) -> int:
    rng = random.Random(seed)
    return rng.getrandbits(bits) | 1 | (1 << (bits - 1))


def test_the_native_kernel_was_built_where_ci_requires_it() -> None:
    if os.environ.get("FEDCORE_REQUIRE_NATIVE") != "1":
        pytest.skip("FEDCORE_REQUIRE_NATIVE is not set (only CI requires the C kernel)")
    assert montgomery.NATIVE and montgomery.available("mpn")
    assert montgomery.BACKEND in ("ifma", "mpn")


@pytest.mark.parametrize("backend", HERE)
@pytest.mark.parametrize("bits", BITS)
def test_products_sums_and_powers_equal_plain_arithmetic(backend: str, bits: int) -> None:
    m = _modulus(bits, bits)
    rng = random.Random(bits + 1)
    ring = Ring(m, backend=backend)
    xs = [rng.randrange(m) for _ in range(37)] + [0, 1, m - 1]
    rows = ring.from_ints(xs)
    assert ring.to_ints(rows) == xs
    ys = [rng.randrange(m) for _ in xs]
    products = ring.to_ints(ring.mul(rows, ring.from_ints(ys)))
    assert products == [x * y % m for x, y in zip(xs, ys, strict=True)]
    assert ring.to_ints(ring.mul(rows, ring.from_ints([7]))) == [x * 7 % m for x in xs]
    keys = np.array([rng.randrange(6) for _ in xs])
    want = [1] * 8  # keys 6 and 7 have no rows: their product is 1
    for x, k in zip(xs, keys.tolist(), strict=True):
        want[k] = want[k] * x % m
    assert ring.to_ints(ring.sums_by_key(rows, keys, 8)) == want
    assert ring.to_ints(ring.square(rows[:5], 3)) == [pow(x, 8, m) for x in xs[:5]]
    e = rng.getrandbits(200)
    assert ring.to_ints(ring.pow(rows, e)) == [pow(x, e, m) for x in xs]  # 40 rows: five lane groups
    assert ring.to_ints(ring.pow(rows[:3], 2**64 + 1)) == [pow(x, 2**64 + 1, m) for x in xs[:3]]
    assert ring.to_ints(ring.pow(rows[:2], 0)) == [1, 1]


@pytest.mark.parametrize("backend", HERE)
@pytest.mark.parametrize("bits", [130, 1024, 2048])
def test_fixed_base_powers_equal_pow(backend: str, bits: int) -> None:
    m = _modulus(bits, 7 * bits)
    rng = random.Random(bits)
    ring = Ring(m, backend=backend)
    base = rng.randrange(2, m)
    table = FixedBase(ring, base, 300)
    exponents = [rng.getrandbits(300) for _ in range(11)] + [0, 1, 2**300 - 1]
    assert ring.to_ints(table.powers(exponents)) == [pow(base, e, m) for e in exponents]
    digits = montgomery.random_digits(9, 300)
    width = table.width
    drawn = [int.from_bytes(digits[i : i + width], "little") for i in range(0, len(digits), width)]
    assert all(e < 2**300 for e in drawn) and len(set(drawn)) == 9
    assert ring.to_ints(table.of_digits(digits)) == [pow(base, e, m) for e in drawn]


@pytest.mark.skipif(not montgomery.available("mpn"), reason="the C kernel is not built here")
def test_the_mpn_kernel_and_the_gmpy2_twin_give_the_same_bytes() -> None:
    m = _modulus(2048, 3)
    rng = random.Random(3)
    native, twin = Ring(m, backend="mpn"), Ring(m, backend="py")
    xs = [rng.randrange(m) for _ in range(20)]
    a, b = native.from_ints(xs), twin.from_ints(xs)
    assert np.array_equal(a, b)
    keys = np.array([rng.randrange(3) for _ in xs])
    assert np.array_equal(native.sums_by_key(a, keys, 4), twin.sums_by_key(b, keys, 4))
    assert np.array_equal(native.mul(a, a[:1]), twin.mul(b, b[:1]))


@pytest.mark.parametrize("backend", HERE)
def test_load_and_dump_round_trip_and_refuse_out_of_range_values(backend: str) -> None:
    m = _modulus(2048, 5)
    ring = Ring(m, backend=backend)
    rng = random.Random(5)
    xs = [rng.randrange(1, m) for _ in range(10)] + [1, m - 1]
    for width in (256, 260):  # exactly the modulus's bytes, and wider (leading zeros)
        blob = b"".join(x.to_bytes(width, "big") for x in xs)
        rows = ring.load(blob, width)
        assert ring.to_ints(rows) == xs
        assert ring.dump(rows, width) == blob
    for bad in (0, m, m + 1, 2**2048 - 1):
        with pytest.raises(ValueError, match="outside"):
            ring.load(xs[0].to_bytes(256, "big") + bad.to_bytes(256, "big"), 256)
    with pytest.raises(ValueError, match="outside"):
        ring.load(b"\x01" + xs[0].to_bytes(259, "big"), 260)  # a set byte above the modulus
    with pytest.raises(ValueError, match="multiple"):
        ring.load(b"\x01" * 255, 256)
    with pytest.raises(ValueError, match="cannot hold"):
        ring.load(b"\x01" * 255, 255)


@pytest.mark.parametrize("backend", HERE)
def test_kernels_refuse_malformed_arguments(backend: str) -> None:
    ring = Ring(_modulus(1024, 9), backend=backend)
    rows = ring.from_ints([2, 3, 4])
    with pytest.raises(ValueError):
        ring.sums_by_key(rows, np.array([0, 1, 5]), 3)  # a key beyond size
    with pytest.raises(ValueError):
        ring.sums_by_key(rows, np.array([0, -1, 1]), 3)
    with pytest.raises(ValueError, match="one key per row"):
        ring.sums_by_key(rows, np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="limbs expected"):
        ring.mul(rows, rows[:, :-1])
    with pytest.raises(ValueError):
        ring.mul(rows, ring.from_ints([1, 2]))  # neither one row nor as many rows
    with pytest.raises(ValueError, match="odd modulus"):
        Ring(2**64)
    with pytest.raises(ValueError, match="odd modulus"):
        Ring(_modulus(4097, 1))


def test_an_unknown_forced_backend_is_named() -> None:
    with pytest.raises(ValueError, match="is not available"):
        Ring(101, backend="gpu")


def test_rings_pickle_by_modulus() -> None:
    import pickle

    ring = Ring(_modulus(1024, 11))
    copy = pickle.loads(pickle.dumps(ring))
    assert copy.modulus == ring.modulus and copy.backend == ring.backend
    rows = ring.from_ints([5, 6])
    assert copy.to_ints(copy.mul(rows, rows)) == [25, 36]


@pytest.mark.parametrize("backend", HERE)
@pytest.mark.parametrize("bits", [130, 2048])
def test_multi_powers_equal_products_of_pow(backend: str, bits: int) -> None:
    m = _modulus(bits, 3 * bits)
    rng = random.Random(bits)
    ring = Ring(m, backend=backend)
    xs = [rng.randrange(m) for _ in range(13)]
    exponents = np.array([[rng.getrandbits(64) for _ in xs] for _ in range(11)], dtype=np.uint64)
    exponents[3] = 0  # a column of zeros is 1
    exponents[4, :5] = 0
    exponents[5] = 2**64 - 1
    want = []
    for column in exponents.tolist():
        acc = 1
        for x, e in zip(xs, column, strict=True):
            acc = acc * pow(x, e, m) % m
        want.append(acc)
    assert ring.to_ints(ring.multi_pow(ring.from_ints(xs), exponents)) == want  # 11 columns: 2 lane groups
    with pytest.raises(ValueError, match="columns"):
        ring.multi_pow(ring.from_ints(xs), exponents[:, :-1])


@pytest.mark.skipif(not montgomery.NATIVE, reason="the C kernel is not built here")
def test_the_c_entry_points_refuse_malformed_buffers_without_crashing() -> None:
    native = montgomery._native
    assert native is not None
    rng = random.Random(12)
    good = Ring(_modulus(1024, 12), backend="mpn")
    m, minv, one = good._m, good._minv, good._one
    rows = bytes(good._bytes(good.from_ints([3, 5])))
    for blob in (b"", b"\x01" * 7, rng.randbytes(8 * 17)):
        with pytest.raises(ValueError):
            native.mul_rows(m, minv, blob or b"\x00" * 3, rows)
    with pytest.raises(ValueError):
        native.mul_rows(m[:-8] + b"\x00" * 8, minv, rows, rows)  # top limb zero
    with pytest.raises(ValueError):
        native.mul_rows(m, minv ^ 1, rows, rows)  # a wrong inverse
    with pytest.raises(ValueError):
        native.sums_by_key(m, minv, one, rows, np.array([0, 9], dtype=np.int64).tobytes(), 2)
    with pytest.raises(ValueError):
        native.fixed_base_powers(m, minv, one, rows, b"\x01\x02", 1)  # a table of the wrong size
    with pytest.raises(ValueError):
        native.multi_pow_rows(m, minv, one, rows, b"\x00" * 12)
    if montgomery.available("ifma"):
        wide = Ring(_modulus(1024, 12), backend="ifma")
        limbs = bytes(wide._bytes(wide.from_ints([3, 5])))
        over = bytearray(limbs)
        over[7] = 0xFF  # a limb above 2^52
        with pytest.raises(ValueError, match="below 2\\^52"):
            native.mul_rows52(wide._m, wide._minv, bytes(over), limbs)
        with pytest.raises(ValueError):
            native.sums_by_key52(wide._m, wide._minv, wide._one, limbs, b"\x00" * 16, 0)
        with pytest.raises(ValueError):
            native.from52(wide._m, bytes(over), wide.k)
