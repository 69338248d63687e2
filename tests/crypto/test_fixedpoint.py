"""fedcore.crypto.fixedpoint: ring encoding that refuses or clips, never wraps."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedcore.crypto import fixedpoint
from fedcore.errors import ConfigError


def test_float_plan_and_resolution():
    enc = fixedpoint.plan("float", 100, value_range=8.0, bits=32)
    assert enc.frac_bits == 32 - 2 - 7 - 3 and enc.parties * enc.bound < 2**31
    x = np.array([-8.0, -1.5, 0.0, 2**-20, 7.999])
    np.testing.assert_allclose(fixedpoint.decode(fixedpoint.encode(x, enc), enc), x, atol=enc.resolution)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 50), bits=st.sampled_from([32, 64]), data=st.data())
def test_sum_of_encodings_decodes_to_the_sum(n, bits, data):
    enc = fixedpoint.plan("float", n, value_range=4.0, bits=bits)
    xs = data.draw(st.lists(st.lists(st.floats(-4, 4), min_size=3, max_size=3), min_size=n, max_size=n))
    acc = np.zeros(3, dtype=enc.dtype)
    for x in xs:
        acc += fixedpoint.encode(np.array(x), enc)
    np.testing.assert_allclose(fixedpoint.decode(acc, enc), np.sum(xs, axis=0), atol=n * enc.resolution)


def test_extremes_sum_without_wrapping():
    for bits in (32, 64):
        enc = fixedpoint.plan("int", 7, value_range=None, bits=bits)
        acc = np.zeros(2, dtype=enc.dtype)
        for _ in range(7):
            acc += fixedpoint.encode(np.array([enc.bound, -enc.bound]), enc)
        assert fixedpoint.decode(acc, enc).tolist() == [7 * enc.bound, -7 * enc.bound]


def test_out_of_range_is_refused_or_clipped_never_wrapped():
    enc = fixedpoint.plan("float", 3, value_range=1.0, bits=32)
    with pytest.raises(ValueError, match="exceeds the declared range"):
        fixedpoint.encode(np.array([0.5, 1.5]), enc)
    clipped = fixedpoint.decode(fixedpoint.encode(np.array([0.5, 1.5, -9.0]), enc, "clip"), enc)
    np.testing.assert_allclose(clipped, [0.5, 1.0, -1.0], atol=enc.resolution)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="NaN"):
            fixedpoint.encode(np.array([bad]), enc, "clip")
    with pytest.raises(ValueError):
        fixedpoint.encode(np.array([0.0]), enc, "wrap")


def test_plans_that_cannot_fit_are_refused():
    with pytest.raises(ConfigError, match="value_range"):
        fixedpoint.plan("float", 3, value_range=None, bits=32)
    with pytest.raises(ConfigError, match="fractional bits"):
        fixedpoint.plan("float", 2**20, value_range=2.0**10, bits=32)
    with pytest.raises(ConfigError, match="overflows"):
        fixedpoint.plan("int", 10, value_range=2**31, bits=32)
    with pytest.raises(ConfigError, match="32 or 64"):
        fixedpoint.plan("int", 10, value_range=None, bits=16)
    with pytest.raises(TypeError):
        fixedpoint.encode(np.array([1.5]), fixedpoint.plan("int", 2, value_range=None, bits=32))
